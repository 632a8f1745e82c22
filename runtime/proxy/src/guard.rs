//! Prompt guards (aigw's PromptGuardPolicy): built-in detectors of personal data and secrets,
//! and regular expressions, run over the text of a request's prompt and, when asked, of its
//! answer. A check either rejects (the request gets 400, a whole answer 502) or masks what it
//! finds (`[REDACTED:<detector>]`, `[REDACTED]` for a pattern) before the text goes on.
//!
//! - **Where text is looked for**: the request's `messages` (every content string and text
//!   part), `system`, `prompt`, `input` and `instructions`; the answer's `choices` (message
//!   content, text, stream deltas), Anthropic content blocks and deltas, and Responses API
//!   output text. Role, type, name and id fields are left alone.
//! - **Cheap when clean**: a body without JSON escapes is scanned as it is first; only when a
//!   check finds something is it parsed and walked (a match outside the prompt, in the model
//!   name say, passes). A body with escapes is always parsed, so `\u0040` cannot hide an `@`.
//! - **Detectors** validate what their pattern finds: card numbers pass the Luhn check, IBANs
//!   the ISO 13616 mod-97 check, US SSNs leave out the numbers never issued, phone numbers have
//!   10 to 15 digits.
//! - **Streams** are masked event by event; a match split across two events is not seen. A
//!   streamed request under a policy with a rejecting answer check is refused up front: once
//!   a stream has begun no status can change, and masking a split match cannot be promised.

use aigw_table::Snapshot;
use regex::Regex;
use serde_json::Value;
use std::sync::Arc;

/// The guards of a generation, parallel to the table's `guards`.
#[derive(Debug, Default)]
pub struct Guards {
    policies: Vec<Policy>,
}

#[derive(Debug)]
struct Policy {
    name: Arc<str>,
    request: Vec<Check>,
    response: Vec<Check>,
}

#[derive(Debug)]
struct Check {
    finder: Regex,
    kind: Kind,
    mask: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pattern,
    Email,
    Phone,
    CreditCard,
    Iban,
    Ssn,
    ApiKey,
}

/// A guard that cannot be compiled (a table the compiler did not write).
#[derive(Debug, thiserror::Error)]
#[error("PromptGuardPolicy `{policy}`: {reason}")]
pub struct GuardError {
    policy: String,
    reason: String,
}

/// Why a text was refused: the policy and what was found (never the text itself).
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub policy: Arc<str>,
    pub found: &'static str,
}

impl Guards {
    pub fn compile(snapshot: &Snapshot) -> Result<Self, GuardError> {
        let mut policies = Vec::new();
        for guard in &snapshot.table().guards {
            let error = |reason: String| GuardError {
                policy: guard.name.clone(),
                reason,
            };
            let compile = |checks: &[aigw_table::GuardCheck]| {
                checks
                    .iter()
                    .map(|c| Check::compile(c).map_err(error))
                    .collect::<Result<Vec<_>, _>>()
            };
            policies.push(Policy {
                name: guard.name.as_str().into(),
                request: compile(&guard.request)?,
                response: compile(&guard.response)?,
            });
        }
        Ok(Guards { policies })
    }

    /// Whether policy `index` checks answers.
    pub fn checks_answers(&self, index: usize) -> bool {
        self.policies
            .get(index)
            .is_some_and(|p| !p.response.is_empty())
    }

    /// The policy's name when one of its answer checks rejects: a stream, whose status is sent
    /// before its text, cannot be held to it, so streamed requests are refused.
    pub fn rejects_answers(&self, index: usize) -> Option<&str> {
        self.policies
            .get(index)
            .filter(|p| p.response.iter().any(|c| !c.mask))
            .map(|p| &*p.name)
    }

    /// Checks a request body: `Ok(None)` when it passes as it is, `Ok(Some(body))` masked.
    pub fn request(&self, index: usize, body: &[u8]) -> Result<Option<Vec<u8>>, Refused> {
        let Some(policy) = self.policies.get(index).filter(|p| !p.request.is_empty()) else {
            return Ok(None);
        };
        check_body(
            policy,
            &policy.request,
            body,
            &["messages", "system", "prompt", "input", "instructions"],
        )
    }

    /// Checks a whole answer body in the client's API, as [`Guards::request`].
    pub fn answer(&self, index: usize, body: &[u8]) -> Result<Option<Vec<u8>>, Refused> {
        let Some(policy) = self.policies.get(index).filter(|p| !p.response.is_empty()) else {
            return Ok(None);
        };
        check_body(
            policy,
            &policy.response,
            body,
            &["choices", "content", "output"],
        )
    }

    /// Masks what the answer checks find in whole server-sent events (their `data:` JSON);
    /// `None` when nothing was found.
    pub fn events(&self, index: usize, chunk: &[u8]) -> Option<Vec<u8>> {
        let policy = self
            .policies
            .get(index)
            .filter(|p| !p.response.is_empty())?;
        let text = std::str::from_utf8(chunk).ok()?;
        if !text.contains('\\') && !policy.response.iter().any(|c| c.find(text)) {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let data = line.strip_prefix("data:").map(str::trim);
            match data.and_then(|d| serde_json::from_str::<Value>(d).ok()) {
                Some(mut value) => {
                    walk(&mut value, &mut |s| {
                        mask_all(&policy.response, s, true)
                            .map(|_| ())
                            .map_err(|_| ())
                    });
                    out.push_str("data: ");
                    out.push_str(&value.to_string());
                    out.push_str(if line.ends_with('\n') { "\n" } else { "" });
                }
                None => out.push_str(line),
            }
        }
        Some(out.into_bytes())
    }
}

/// Checks `fields` of a JSON body with `checks`.
fn check_body(
    policy: &Policy,
    checks: &[Check],
    body: &[u8],
    fields: &[&str],
) -> Result<Option<Vec<u8>>, Refused> {
    if let Ok(text) = std::str::from_utf8(body)
        && !text.contains('\\')
        && !checks.iter().any(|c| c.find(text))
    {
        return Ok(None);
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return Ok(None);
    };
    let mut changed = false;
    let mut refused = None;
    if let Value::Object(map) = &mut value {
        for field in fields {
            if let Some(part) = map.get_mut(*field) {
                walk(part, &mut |s| match mask_all(checks, s, false) {
                    Ok(masked) => {
                        changed |= masked;
                        Ok(())
                    }
                    Err(found) => {
                        refused.get_or_insert(found);
                        Err(())
                    }
                });
            }
        }
    }
    if let Some(found) = refused {
        return Err(Refused {
            policy: policy.name.clone(),
            found,
        });
    }
    Ok(changed.then(|| value.to_string().into_bytes()))
}

/// Visits every string of `value` that is text (not a role, type, name or id); stops at the
/// first `Err`.
fn walk(value: &mut Value, visit: &mut dyn FnMut(&mut String) -> Result<(), ()>) -> bool {
    match value {
        Value::String(s) => visit(s).is_ok(),
        Value::Array(items) => items.iter_mut().all(|item| walk(item, visit)),
        Value::Object(map) => map
            .iter_mut()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "role" | "type" | "name" | "id" | "tool_call_id" | "model"
                )
            })
            .all(|(_, v)| walk(v, visit)),
        _ => true,
    }
}

/// Applies every check to `text`: `Ok(true)` when something was masked, `Err(found)` when a
/// rejecting check found something (unless `always_mask`: an answer already under way).
fn mask_all(checks: &[Check], text: &mut String, always_mask: bool) -> Result<bool, &'static str> {
    let mut masked = false;
    for check in checks {
        let found = check.matches(text);
        if found.is_empty() {
            continue;
        }
        if !check.mask && !always_mask {
            return Err(check.kind.label());
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for range in found {
            out.push_str(&text[at..range.start]);
            out.push_str(check.kind.replacement());
            at = range.end;
        }
        out.push_str(&text[at..]);
        *text = out;
        masked = true;
    }
    Ok(masked)
}

impl Check {
    fn compile(wire: &aigw_table::GuardCheck) -> Result<Self, String> {
        let (kind, pattern) = match (wire.detector.as_deref(), &wire.pattern) {
            (Some(detector), _) => detector_pattern(detector)?,
            (None, Some(pattern)) => (Kind::Pattern, pattern.clone()),
            (None, None) => return Err("a check with neither detector nor pattern".into()),
        };
        let finder = Regex::new(&pattern).map_err(|e| e.to_string())?;
        Ok(Check {
            finder,
            kind,
            mask: wire.mask,
        })
    }

    /// Whether anything valid is found (the pre-scan of a whole body).
    fn find(&self, text: &str) -> bool {
        !self.matches(text).is_empty()
    }

    /// The ranges of what the check finds. A pattern takes the longest run it can, so a card
    /// number followed by other digits (`4111 1111 1111 1111 12/25`) or an IBAN followed by a
    /// BIC is one run that fails its check: the runs of a card or an IBAN are then tried cut
    /// at their separators, and the longest valid cut is what was found.
    fn matches(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        self.finder
            .find_iter(text)
            .filter_map(|m| {
                if self.kind.valid(m.as_str()) {
                    return Some(m.range());
                }
                if !matches!(self.kind, Kind::CreditCard | Kind::Iban) {
                    return None;
                }
                let run = m.as_str();
                let cuts: Vec<usize> = run
                    .char_indices()
                    .filter(|(_, c)| *c == ' ' || *c == '-')
                    .map(|(i, _)| i)
                    .collect();
                let starts = std::iter::once(0).chain(cuts.iter().map(|i| i + 1));
                let ends: Vec<usize> = cuts
                    .iter()
                    .copied()
                    .chain(std::iter::once(run.len()))
                    .collect();
                starts
                    .flat_map(|start| {
                        ends.iter()
                            .filter(move |end| **end > start)
                            .map(move |end| start..*end)
                    })
                    .filter(|cut| self.kind.valid(&run[cut.clone()]))
                    .max_by_key(|cut| cut.len())
                    .map(|cut| m.start() + cut.start..m.start() + cut.end)
            })
            .collect()
    }
}

fn detector_pattern(name: &str) -> Result<(Kind, String), String> {
    let (kind, pattern) = match name {
        "Email" => (
            Kind::Email,
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
        ),
        // ASCII classes: a detector's validation reads digits by byte position.
        "Phone" => (Kind::Phone, r"(?-u)\+?\(?\d[\d ().-]{8,}\d"),
        "CreditCard" => (Kind::CreditCard, r"(?-u)\b\d(?:[ -]?\d){12,18}\b"),
        "IBAN" => (Kind::Iban, r"(?-u)\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
        "USSSN" => (Kind::Ssn, r"(?-u)\b\d{3}-\d{2}-\d{4}\b"),
        "APIKey" => (
            Kind::ApiKey,
            r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})",
        ),
        other => return Err(format!("unknown detector `{other}`")),
    };
    Ok((kind, pattern.to_owned()))
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Pattern => "a denied pattern",
            Kind::Email => "an e-mail address",
            Kind::Phone => "a phone number",
            Kind::CreditCard => "a credit card number",
            Kind::Iban => "an IBAN",
            Kind::Ssn => "a US social security number",
            Kind::ApiKey => "an API key",
        }
    }

    fn replacement(self) -> &'static str {
        match self {
            Kind::Pattern => "[REDACTED]",
            Kind::Email => "[REDACTED:Email]",
            Kind::Phone => "[REDACTED:Phone]",
            Kind::CreditCard => "[REDACTED:CreditCard]",
            Kind::Iban => "[REDACTED:IBAN]",
            Kind::Ssn => "[REDACTED:USSSN]",
            Kind::ApiKey => "[REDACTED:APIKey]",
        }
    }

    /// Whether a candidate the pattern found is the real thing.
    fn valid(self, found: &str) -> bool {
        let digits: Vec<u32> = found.chars().filter_map(|c| c.to_digit(10)).collect();
        match self {
            Kind::Phone => (10..=15).contains(&digits.len()),
            Kind::CreditCard => (13..=19).contains(&digits.len()) && luhn(&digits),
            Kind::Iban => iban(found),
            Kind::Ssn => {
                let (Some(area), Some(group), Some(serial)) =
                    (found.get(0..3), found.get(4..6), found.get(7..11))
                else {
                    return false;
                };
                area != "000"
                    && area != "666"
                    && !area.starts_with('9')
                    && group != "00"
                    && serial != "0000"
            }
            Kind::Pattern | Kind::Email | Kind::ApiKey => true,
        }
    }
}

fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// ISO 13616: the first four characters moved to the end, letters as 10..35, mod 97 is 1.
fn iban(found: &str) -> bool {
    let compact: Vec<char> = found.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() < 15 {
        return false;
    }
    let mut remainder: u64 = 0;
    for c in compact[4..].iter().chain(&compact[..4]) {
        let Some(value) = c.to_digit(36) else {
            return false;
        };
        remainder = if value >= 10 {
            (remainder * 100 + u64::from(value)) % 97
        } else {
            (remainder * 10 + u64::from(value)) % 97
        };
    }
    remainder == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(detector: &str, mask: bool) -> Check {
        Check::compile(&aigw_table::GuardCheck {
            detector: Some(detector.into()),
            pattern: None,
            mask,
        })
        .unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn found(detector: &str, text: &str) -> Vec<String> {
        let check = check(detector, true);
        check
            .matches(text)
            .into_iter()
            .map(|r| text[r].to_owned())
            .collect()
    }

    #[test]
    fn each_detector_finds_the_real_thing_and_not_its_lookalikes() {
        assert_eq!(
            found("Email", "write to ada.l@example.co.uk today"),
            ["ada.l@example.co.uk"]
        );
        assert!(found("Email", "not@an address").is_empty());
        assert_eq!(
            found("Phone", "call +1 (415) 555-0132 now"),
            ["+1 (415) 555-0132"]
        );
        assert!(found("Phone", "order 12345").is_empty());
        // Visa's test number passes Luhn; one digit off does not.
        assert_eq!(
            found("CreditCard", "card 4111 1111 1111 1111."),
            ["4111 1111 1111 1111"]
        );
        assert!(found("CreditCard", "card 4111 1111 1111 1112").is_empty());
        // A card followed or preceded by other digits is still found.
        assert_eq!(
            found("CreditCard", "4111 1111 1111 1111 12/25"),
            ["4111 1111 1111 1111"]
        );
        assert_eq!(
            found("CreditCard", "1 4111 1111 1111 1111"),
            ["4111 1111 1111 1111"]
        );
        assert_eq!(
            found("IBAN", "IBAN GB82 WEST 1234 5698 7654 32 please"),
            ["GB82 WEST 1234 5698 7654 32"]
        );
        assert!(
            found("IBAN", "GB83 WEST 1234 5698 7654 32").is_empty(),
            "bad check digits"
        );
        assert_eq!(
            found("IBAN", "DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX"),
            ["DE89 3704 0044 0532 0130 00"]
        );
        assert_eq!(found("USSSN", "ssn 123-45-6789"), ["123-45-6789"]);
        assert!(found("USSSN", "ssn 666-45-6789 or 123-00-6789 or 900-12-3456").is_empty());
        assert_eq!(
            found(
                "APIKey",
                "key sk-proj-abcdefghijklmnopqrstuvwx and AKIAIOSFODNN7EXAMPLE"
            ),
            ["sk-proj-abcdefghijklmnopqrstuvwx", "AKIAIOSFODNN7EXAMPLE"]
        );
        assert!(found("APIKey", "sk-short").is_empty());
        // Digits of other scripts are not ASCII digits: no match, and no panic on the byte
        // positions the SSN check reads.
        for text in [
            "ssn ١٢٣-٤٥-٦٧٨٩",
            "ssn １２３-４５-６７８９",
            "card ４１１１ １１１１ １１１１ １１１１",
        ] {
            assert!(
                found("USSSN", text).is_empty() && found("CreditCard", text).is_empty(),
                "{text}"
            );
        }
    }

    fn guards(request: Vec<aigw_table::GuardCheck>) -> Guards {
        let policy = Policy {
            name: "default/pii".into(),
            request: request
                .iter()
                .map(|c| Check::compile(c).unwrap_or_else(|e| unreachable!("{e}")))
                .collect(),
            response: Vec::new(),
        };
        Guards {
            policies: vec![policy],
        }
    }

    #[test]
    fn prompts_are_masked_or_refused_and_clean_ones_pass_untouched() {
        let g = guards(vec![
            aigw_table::GuardCheck {
                detector: Some("Email".into()),
                pattern: None,
                mask: true,
            },
            aigw_table::GuardCheck {
                detector: None,
                pattern: Some("(?i)ignore previous instructions".into()),
                mask: false,
            },
        ]);
        let clean = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(g.request(0, clean), Ok(None));
        let email = br#"{"model":"a@b.io","messages":[{"role":"user","content":[{"type":"text","text":"mail me at a@b.io"}]}]}"#;
        let masked = g
            .request(0, email)
            .unwrap_or_else(|r| unreachable!("{r:?}"))
            .unwrap_or_default();
        let masked: Value = serde_json::from_slice(&masked).unwrap_or(Value::Null);
        assert_eq!(
            masked["messages"][0]["content"][0]["text"],
            "mail me at [REDACTED:Email]"
        );
        assert_eq!(masked["model"], "a@b.io", "the model is not prompt text");
        let escaped = br#"{"model":"m","messages":[{"role":"user","content":"IGNORE previous instructions\u0021"}]}"#;
        assert_eq!(
            g.request(0, escaped),
            Err(Refused {
                policy: "default/pii".into(),
                found: "a denied pattern"
            })
        );
        // An escape cannot hide what a detector looks for.
        let hidden = br#"{"messages":[{"role":"user","content":"a\u0040b.io"}]}"#;
        assert!(matches!(g.request(0, hidden), Ok(Some(_))));
    }
}
