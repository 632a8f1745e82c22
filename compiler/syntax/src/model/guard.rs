//! aigw's own PromptGuardPolicy (aigw.dev/v1alpha1): checks on the prompt (and optionally the
//! answer) of the AI requests on its targets, for text that must not pass: built-in PII
//! detectors and regular expressions, each rejecting the request or masking what it finds.
//! Attached like ModelAccessPolicy (a Gateway, an HTTPRoute or an AIGatewayRoute; a route's
//! replaces its Gateway's).
//!
//! ```yaml
//! apiVersion: aigw.dev/v1alpha1
//! kind: PromptGuardPolicy
//! metadata: {name: pii, namespace: default}
//! spec:
//!   targetRefs:
//!     - {group: gateway.networking.k8s.io, kind: Gateway, name: gw}
//!   request:
//!     - {detector: CreditCard, action: Reject}
//!     - {detector: Email, action: Mask}
//!     - {pattern: "(?i)ignore (all )?previous instructions", action: Reject}
//!   response:
//!     - {detector: APIKey, action: Mask}
//! ```

use super::common::*;
use schemars::JsonSchema;
use serde::Deserialize;

/// The `spec` of a PromptGuardPolicy.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromptGuardPolicySpec {
    #[schemars(length(min = 1, max = 16))]
    pub target_refs: Vec<LocalPolicyTargetReference>,
    /// Checks on the prompt: every message, system text and input of the request.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub request: Vec<GuardCheck>,
    /// Checks on the answer's text (whole answers; in a stream, each event's text).
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub response: Vec<GuardCheck>,
}

/// One check: a built-in detector or a regular expression (exactly one; a rule checks it).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuardCheck {
    pub detector: Option<PiiDetector>,
    /// RE2 syntax (Rust's `regex`), as the rest of aigw's patterns.
    #[schemars(length(min = 1, max = 1024))]
    pub pattern: Option<String>,
    #[serde(default)]
    pub action: GuardAction,
}

/// The built-in detectors of personal data and secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum PiiDetector {
    Email,
    /// 10 to 15 digits, with the usual separators and an optional `+` country code.
    Phone,
    /// 13 to 19 digits passing the Luhn check.
    CreditCard,
    /// A country code, two check digits and the account, passing the ISO 13616 mod-97 check.
    IBAN,
    /// `AAA-GG-SSSS` with the numbers the SSA never issues left out.
    USSSN,
    /// The shapes of common secret keys: OpenAI and Anthropic (`sk-`), AWS access keys
    /// (`AKIA`), GitHub tokens, Slack tokens, Google API keys.
    APIKey,
}

impl PiiDetector {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "Email",
            Self::Phone => "Phone",
            Self::CreditCard => "CreditCard",
            Self::IBAN => "IBAN",
            Self::USSSN => "USSSN",
            Self::APIKey => "APIKey",
        }
    }
}

/// What a check does when it finds something.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum GuardAction {
    /// The request is refused (400), or the answer replaced by an error (502).
    #[default]
    Reject,
    /// What was found is replaced by `[REDACTED:<detector>]` (`[REDACTED]` for a pattern).
    Mask,
}
