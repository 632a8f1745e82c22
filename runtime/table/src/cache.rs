//! The wire form of a ResponseCachePolicy (since 1.4): where answers are kept, how long, and
//! which requests may be answered from them.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cache {
    /// The policy, `namespace/name`.
    pub name: String,
    pub ttl_ms: u64,
    /// In Redis (the gateway's `--quota-redis`), else in each replica's memory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redis: bool,
    /// The memory store's size.
    pub max_bytes: u64,
    /// Larger answers are not kept.
    pub max_entry_bytes: u64,
    /// Callers share answers (else each caller's are its own).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    /// Lower case.
    pub bypass_header: String,
    /// Requests that sample are cached too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub non_deterministic: bool,
}
