//! The GatewayConfig kind (aigateway.envoyproxy.io, v1alpha1 and v1beta1: one schema serves
//! both): gateway-wide settings of the external processor, the upstream forward proxy, and the
//! default LLM request costs. Also owns the LLM request cost shape that AIGatewayRoute reuses.

use schemars::JsonSchema;
use serde::Deserialize;

/// The `spec` of a GatewayConfig.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayConfigSpec {
    pub ext_proc: Option<GatewayConfigExtProc>,
    pub forward_proxy: Option<GatewayConfigForwardProxy>,
    /// Default request costs of every route on the gateway; a route may override them.
    #[serde(rename = "globalLLMRequestCosts", default)]
    pub global_llm_request_costs: Vec<LlmRequestCost>,
}

/// The external processor container.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayConfigExtProc {
    pub kubernetes: Option<GatewayConfigExtProcKubernetes>,
}

/// How the external processor runs as a Kubernetes container. At most one of `image` and
/// `imageRepository` (checked by a rule).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayConfigExtProcKubernetes {
    /// Kubernetes `EnvVar` list, carried opaque and checked by its owner.
    #[serde(default)]
    pub env: Vec<serde_json::Value>,
    /// An image with a tag; a rule requires it to match
    /// `^[a-zA-Z0-9._-]+(:[0-9]+)?(/[a-zA-Z0-9._/-]+)?(:[a-zA-Z0-9._-]+)?(@sha256:[a-z0-9]+)?$`.
    pub image: Option<String>,
    /// A repository without a tag; a rule requires it to match
    /// `^[a-zA-Z0-9._-]+(:[0-9]+)?[a-zA-Z0-9._/-]+$`.
    pub image_repository: Option<String>,
    /// Kubernetes `ResourceRequirements`, carried opaque and checked by its owner.
    pub resources: Option<serde_json::Value>,
    /// Kubernetes `SecurityContext`, carried opaque and checked by its owner.
    pub security_context: Option<serde_json::Value>,
    /// Kubernetes `VolumeMount` list, carried opaque and checked by its owner.
    #[serde(default)]
    pub volume_mounts: Vec<serde_json::Value>,
}

/// An HTTP CONNECT proxy all upstream AI traffic is tunnelled through.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayConfigForwardProxy {
    /// `host:port`; the port is required.
    #[schemars(length(min = 1))]
    pub address: String,
}

/// A request cost stored in dynamic metadata under `metadataKey` (also used by AIGatewayRoute
/// `llmRequestCosts`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LlmRequestCost {
    pub metadata_key: String,
    #[serde(rename = "type")]
    pub cost_type: LlmRequestCostType,
    /// For type `CEL`: an expression returning a non-negative integer.
    pub cel: Option<String>,
}

/// What a request cost counts: a token usage figure, or a CEL expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum LlmRequestCostType {
    OutputToken,
    InputToken,
    CachedInputToken,
    CacheCreationInputToken,
    TotalToken,
    ReasoningToken,
    CEL,
}

impl LlmRequestCostType {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutputToken => "OutputToken",
            Self::InputToken => "InputToken",
            Self::CachedInputToken => "CachedInputToken",
            Self::CacheCreationInputToken => "CacheCreationInputToken",
            Self::TotalToken => "TotalToken",
            Self::ReasoningToken => "ReasoningToken",
            Self::CEL => "CEL",
        }
    }
}
