//! aigw's own ResponseCachePolicy (aigw.dev/v1alpha1): answers of the AI requests on its
//! targets kept for a while and served again for the same request, without calling the
//! backend. Attached like ModelAccessPolicy (a Gateway, an HTTPRoute or an AIGatewayRoute; a
//! route's replaces its Gateway's).
//!
//! ```yaml
//! apiVersion: aigw.dev/v1alpha1
//! kind: ResponseCachePolicy
//! metadata: {name: cache, namespace: default}
//! spec:
//!   targetRefs:
//!     - {group: gateway.networking.k8s.io, kind: Gateway, name: gw}
//!   ttl: 10m
//!   store: Memory          # or Redis (the gateway's --quota-redis)
//!   maxBytes: 67108864     # the memory store's size
//!   maxEntryBytes: 1048576 # larger answers are not kept
//!   scope: Caller          # or Shared: callers see each other's answers
//!   bypassHeader: x-aigw-cache-bypass
//!   nonDeterministic: false
//! ```

use super::common::*;
use schemars::JsonSchema;
use serde::Deserialize;

/// The `spec` of a ResponseCachePolicy.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseCachePolicySpec {
    #[schemars(length(min = 1, max = 16))]
    pub target_refs: Vec<LocalPolicyTargetReference>,
    /// How long an answer is served again. Default `5m`.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub ttl: Option<String>,
    #[serde(default)]
    pub store: CacheStore,
    /// The memory store's size in bytes, answers and keys counted (default 64 MiB); the
    /// least used go first. A Redis store is bounded by Redis's own `maxmemory` policy.
    #[schemars(range(min = 1024))]
    pub max_bytes: Option<u64>,
    /// An answer larger than this is not kept (default 1 MiB).
    #[schemars(range(min = 1))]
    pub max_entry_bytes: Option<u64>,
    #[serde(default)]
    pub scope: CacheScope,
    /// A request with this header (any value but `false` or `0`) is neither served from the
    /// cache nor stored in it. Default `x-aigw-cache-bypass`.
    #[schemars(regex(pattern = HEADER_NAME_PATTERN))]
    pub bypass_header: Option<String>,
    /// Also keep answers to requests that sample (default false: only a request with
    /// `temperature: 0` and one choice, or an embedding, is deterministic enough to repeat).
    pub non_deterministic: Option<bool>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum CacheStore {
    /// In each replica's memory.
    #[default]
    Memory,
    /// In the Redis the gateway shares quotas and rate limits in (`--quota-redis`).
    Redis,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum CacheScope {
    /// Each caller (client ID of the SecurityPolicy in force) has its own answers.
    #[default]
    Caller,
    /// Every caller of the route shares them.
    Shared,
}
