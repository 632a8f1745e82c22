//! Envoy Gateway's EnvoyExtensionPolicy (gateway.envoyproxy.io/v1alpha1, 1.9): extensions run
//! on a Gateway's or a route's requests. aigw's data plane runs its `wasm` extensions (the
//! proxy-wasm ABI, in wasmtime); `extProc`, `lua` and `dynamicModule` are Envoy's to run, read
//! as written so that the compiler can say so by name.

use super::common::*;
use schemars::JsonSchema;
use serde::Deserialize;

/// The `spec` of an EnvoyExtensionPolicy.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyExtensionPolicySpec {
    /// The deprecated single target.
    pub target_ref: Option<PolicyTargetReferenceWithSectionName>,
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReferenceWithSectionName>,
    pub target_selectors: Option<serde_json::Value>,
    pub merge_type: Option<serde_json::Value>,
    /// Run in order on each request.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub wasm: Vec<Wasm>,
    pub ext_proc: Option<serde_json::Value>,
    pub lua: Option<serde_json::Value>,
    pub dynamic_module: Option<serde_json::Value>,
}

impl EnvoyExtensionPolicySpec {
    /// Every target, the deprecated `targetRef` first, with its field path.
    pub fn targets(&self) -> Vec<(String, &PolicyTargetReferenceWithSectionName)> {
        policy_targets(self.target_ref.as_ref(), &self.target_refs)
    }
}

/// One WASM extension.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Wasm {
    /// Unset: `<policy>/wasm/<index>`.
    pub name: Option<String>,
    /// The root context ID the module registers (proxy-wasm).
    #[serde(rename = "rootID")]
    pub root_id: Option<String>,
    pub code: WasmCodeSource,
    /// Handed to the module as its plugin configuration, in JSON.
    pub config: Option<serde_json::Value>,
    /// A module that fails (a trap, its fuel spent, a bad configuration) lets the request
    /// through unchanged instead of answering 500.
    pub fail_open: Option<bool>,
    pub env: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WasmCodeSource {
    #[serde(rename = "type")]
    pub code_type: WasmCodeType,
    pub http: Option<HttpWasmCodeSource>,
    pub image: Option<serde_json::Value>,
    pub pull_policy: Option<serde_json::Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum WasmCodeType {
    #[serde(rename = "HTTP")]
    Http,
    Image,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpWasmCodeSource {
    /// Envoy Gateway's pattern takes an `http(s)://` URL or a path; aigw reads a path.
    pub url: String,
    /// Hex SHA-256 the module must have.
    #[schemars(regex(pattern = r"^[a-f0-9]{64}$"))]
    pub sha256: Option<String>,
    pub tls: Option<serde_json::Value>,
}
