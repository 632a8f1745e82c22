//! The registry of diagnostic codes. A code is stable once released: `AIGW` plus four digits and a
//! kebab-case name. Codes are never reused or renumbered; retire one by leaving it here unused.
//!
//! The name is also the `reason` of the Kubernetes status condition a finding turns into.

/// A stable diagnostic code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Code {
    /// `AIGW0001` and so on.
    pub id: &'static str,
    /// kebab-case name, e.g. `unknown-field`.
    pub name: &'static str,
}

macro_rules! codes {
    ($($konst:ident = $id:literal, $name:literal;)*) => {
        $(pub const $konst: Code = Code { id: $id, name: $name };)*
        /// Every registered code, in numeric order.
        pub const ALL: &[Code] = &[$($konst),*];
    };
}

codes! {
    // Syntax: reading YAML documents into objects.
    YAML_SYNTAX = "AIGW0001", "yaml-syntax";
    NOT_AN_OBJECT = "AIGW0002", "not-an-object";
    UNKNOWN_KIND = "AIGW0003", "unknown-kind";
    UNSUPPORTED_VERSION = "AIGW0004", "unsupported-api-version";
    DUPLICATE_OBJECT = "AIGW0005", "duplicate-object";
    NOT_UTF8 = "AIGW0006", "invalid-encoding";
    NO_OBJECTS = "AIGW0007", "no-objects";
    // Structure: the OpenAPI part of the CRDs.
    UNKNOWN_FIELD = "AIGW0010", "unknown-field";
    WRONG_TYPE = "AIGW0011", "wrong-type";
    REQUIRED_FIELD = "AIGW0012", "required-field";
    UNSUPPORTED_VALUE = "AIGW0013", "unsupported-value";
    OUT_OF_RANGE = "AIGW0014", "out-of-range";
    BAD_LENGTH = "AIGW0015", "bad-length";
    PATTERN_MISMATCH = "AIGW0016", "pattern-mismatch";
    BAD_FORMAT = "AIGW0017", "bad-format";
    // Admission: the CEL validation rules of the CRDs, and what we refuse beyond them.
    VALIDATION_RULE = "AIGW0020", "validation-rule";
    UNWORKABLE = "AIGW0021", "unworkable";
    CEL_SYNTAX = "AIGW0030", "cel-syntax";
    CEL_TYPE = "AIGW0031", "cel-type";
    INVALID_REGEX = "AIGW0032", "invalid-regex";
    // Graph: the whole input set.
    UNRESOLVED_REFERENCE = "AIGW0040", "unresolved-reference";
    REFERENCE_NOT_PERMITTED = "AIGW0041", "reference-not-permitted";
    CONFLICTING_SECURITY_POLICIES = "AIGW0042", "conflicting-security-policies";
    NO_COMMON_ENDPOINT = "AIGW0043", "no-common-endpoint";
    MISSING_CREDENTIALS = "AIGW0044", "missing-credentials";
    DUPLICATE_MODEL = "AIGW0045", "duplicate-model";
    SECRET_KEY_MISSING = "AIGW0046", "secret-key-missing";
    PARENT_WITHOUT_LISTENERS = "AIGW0048", "parent-without-listeners";
    UNSUPPORTED_POLICY = "AIGW0049", "unsupported-policy";
    CONFLICTING_ACCESS_POLICIES = "AIGW0050", "conflicting-access-policies";
    ACCESS_WITHOUT_CALLERS = "AIGW0051", "access-without-callers";
    POLICY_SECTION_IGNORED = "AIGW0052", "policy-section-ignored";
    CONFLICTING_TRAFFIC_POLICIES = "AIGW0053", "conflicting-traffic-policies";
    CONFLICTING_GUARD_POLICIES = "AIGW0054", "conflicting-guard-policies";
    CONFLICTING_CACHE_POLICIES = "AIGW0055", "conflicting-cache-policies";
    CONFLICTING_EXTENSION_POLICIES = "AIGW0056", "conflicting-extension-policies";
    MCP_KEYS_UNREAD = "AIGW0057", "mcp-keys-unread";
}

/// Looks a code up by its id (`AIGW0010`) or name (`unknown-field`).
pub fn find(key: &str) -> Option<Code> {
    ALL.iter().copied().find(|c| c.id == key || c.name == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_unique_and_well_formed() {
        let mut ids: Vec<_> = ALL.iter().map(|c| c.id).collect();
        let mut names: Vec<_> = ALL.iter().map(|c| c.name).collect();
        ids.sort_unstable();
        names.sort_unstable();
        ids.dedup();
        names.dedup();
        assert_eq!(ids.len(), ALL.len());
        assert_eq!(names.len(), ALL.len());
        for code in ALL {
            assert!(
                code.id.starts_with("AIGW") && code.id.len() == 8,
                "{code:?}"
            );
            assert!(code.id[4..].chars().all(|c| c.is_ascii_digit()), "{code:?}");
            assert!(
                code.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-'),
                "{code:?}"
            );
        }
        assert_eq!(find("unknown-field"), Some(UNKNOWN_FIELD));
    }
}
