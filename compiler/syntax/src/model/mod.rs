//! The typed model of every kind aigw compiles, one internal model for both served versions.
//!
//! Conventions for every model type: `serde::Deserialize` reads it, `schemars::JsonSchema`
//! describes it (the CRD's bounds are schemars attributes: `length`, `range`, `regex`), and
//! `deny_unknown_fields` makes a typo an error. The schema derived from these types is what
//! `schema.rs` checks documents against, so the types are the single source of truth.

pub mod access;
pub mod cache;
pub mod client_auth;
pub mod client_security;
pub mod common;
pub mod extension;
pub mod filters;
pub mod gateway;
pub mod gateway_config;
pub mod guard;
pub mod mcp;
pub mod quota;
pub mod route;
pub mod security;
pub mod traffic;

pub use access::*;
pub use cache::*;
pub use client_auth::*;
pub use client_security::*;
pub use common::*;
pub use extension::*;
pub use filters::*;
pub use gateway::*;
pub use gateway_config::*;
pub use guard::*;
pub use mcp::*;
pub use quota::*;
pub use route::*;
pub use security::*;
pub use traffic::*;

use crate::yaml::Node;
use aigw_diag::{ResourceRef, Span};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// API group of the Envoy AI Gateway kinds.
pub const AIGW_GROUP: &str = "aigateway.envoyproxy.io";
/// API group of Gateway API.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
/// API group of Envoy Gateway's own kinds.
pub const ENVOY_GATEWAY_GROUP: &str = "gateway.envoyproxy.io";
/// API group of the Gateway API Inference Extension.
pub const INFERENCE_GROUP: &str = "inference.networking.k8s.io";

/// Every kind aigw recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    AIGatewayRoute,
    AIServiceBackend,
    BackendSecurityPolicy,
    GatewayConfig,
    MCPRoute,
    QuotaPolicy,
    GatewayClass,
    Gateway,
    HTTPRoute,
    ReferenceGrant,
    BackendTLSPolicy,
    Backend,
    Secret,
    InferencePool,
    /// Envoy Gateway's SecurityPolicy: caller authentication.
    SecurityPolicy,
    /// aigw's own ModelAccessPolicy: which callers may use which models.
    ModelAccessPolicy,
    /// Envoy Gateway's BackendTrafficPolicy: its `rateLimit`.
    BackendTrafficPolicy,
    /// aigw's own PromptGuardPolicy: PII detectors and patterns on prompts and answers.
    PromptGuardPolicy,
    /// aigw's own ResponseCachePolicy: answers served again.
    ResponseCachePolicy,
    /// Envoy Gateway's EnvoyExtensionPolicy: WASM extensions.
    EnvoyExtensionPolicy,
    /// An Envoy Gateway kind we carry without compiling (EnvoyProxy, policies, filters).
    EnvoyGatewayCarried,
}

/// One recognised kind: where it lives and which versions are served.
pub(crate) struct KindInfo {
    pub kind: Kind,
    pub group: &'static str,
    pub name: &'static str,
    pub versions: &'static [&'static str],
}

const AIGW_VERSIONS: &[&str] = &["v1alpha1", "v1beta1"];

/// The registry of recognised kinds.
pub(crate) const KINDS: &[KindInfo] = &[
    KindInfo {
        kind: Kind::AIGatewayRoute,
        group: AIGW_GROUP,
        name: "AIGatewayRoute",
        versions: AIGW_VERSIONS,
    },
    KindInfo {
        kind: Kind::AIServiceBackend,
        group: AIGW_GROUP,
        name: "AIServiceBackend",
        versions: AIGW_VERSIONS,
    },
    KindInfo {
        kind: Kind::BackendSecurityPolicy,
        group: AIGW_GROUP,
        name: "BackendSecurityPolicy",
        versions: AIGW_VERSIONS,
    },
    KindInfo {
        kind: Kind::GatewayConfig,
        group: AIGW_GROUP,
        name: "GatewayConfig",
        versions: AIGW_VERSIONS,
    },
    KindInfo {
        kind: Kind::MCPRoute,
        group: AIGW_GROUP,
        name: "MCPRoute",
        versions: AIGW_VERSIONS,
    },
    KindInfo {
        kind: Kind::QuotaPolicy,
        group: AIGW_GROUP,
        name: "QuotaPolicy",
        versions: &["v1alpha1"],
    },
    KindInfo {
        kind: Kind::GatewayClass,
        group: GATEWAY_GROUP,
        name: "GatewayClass",
        versions: &["v1", "v1beta1"],
    },
    KindInfo {
        kind: Kind::Gateway,
        group: GATEWAY_GROUP,
        name: "Gateway",
        versions: &["v1", "v1beta1"],
    },
    KindInfo {
        kind: Kind::HTTPRoute,
        group: GATEWAY_GROUP,
        name: "HTTPRoute",
        versions: &["v1", "v1beta1"],
    },
    KindInfo {
        kind: Kind::ReferenceGrant,
        group: GATEWAY_GROUP,
        name: "ReferenceGrant",
        versions: &["v1beta1", "v1alpha2", "v1"],
    },
    KindInfo {
        kind: Kind::BackendTLSPolicy,
        group: GATEWAY_GROUP,
        name: "BackendTLSPolicy",
        versions: &["v1alpha3", "v1"],
    },
    KindInfo {
        kind: Kind::Backend,
        group: ENVOY_GATEWAY_GROUP,
        name: "Backend",
        versions: &["v1alpha1"],
    },
    KindInfo {
        kind: Kind::Secret,
        group: "",
        name: "Secret",
        versions: &["v1"],
    },
    KindInfo {
        kind: Kind::InferencePool,
        group: INFERENCE_GROUP,
        name: "InferencePool",
        versions: &["v1"],
    },
    KindInfo {
        kind: Kind::InferencePool,
        group: "inference.networking.x-k8s.io",
        name: "InferencePool",
        versions: &["v1alpha2"],
    },
    KindInfo {
        kind: Kind::EnvoyGatewayCarried,
        group: ENVOY_GATEWAY_GROUP,
        name: "EnvoyProxy",
        versions: &["v1alpha1"],
    },
    KindInfo {
        kind: Kind::EnvoyGatewayCarried,
        group: ENVOY_GATEWAY_GROUP,
        name: "ClientTrafficPolicy",
        versions: &["v1alpha1"],
    },
    KindInfo {
        kind: Kind::BackendTrafficPolicy,
        group: ENVOY_GATEWAY_GROUP,
        name: "BackendTrafficPolicy",
        versions: &["v1alpha1"],
    },
    KindInfo {
        kind: Kind::SecurityPolicy,
        group: ENVOY_GATEWAY_GROUP,
        name: "SecurityPolicy",
        versions: &["v1alpha1"],
    },
    KindInfo {
        kind: Kind::ModelAccessPolicy,
        group: AIGW_POLICY_GROUP,
        name: "ModelAccessPolicy",
        versions: &["v1alpha1"],
    },
    KindInfo {
        kind: Kind::PromptGuardPolicy,
        group: AIGW_POLICY_GROUP,
        name: "PromptGuardPolicy",
        versions: &["v1alpha1"],
    },
    KindInfo {
        kind: Kind::ResponseCachePolicy,
        group: AIGW_POLICY_GROUP,
        name: "ResponseCachePolicy",
        versions: &["v1alpha1"],
    },
    KindInfo {
        kind: Kind::EnvoyGatewayCarried,
        group: ENVOY_GATEWAY_GROUP,
        name: "HTTPRouteFilter",
        versions: &["v1alpha1"],
    },
    KindInfo {
        kind: Kind::EnvoyExtensionPolicy,
        group: ENVOY_GATEWAY_GROUP,
        name: "EnvoyExtensionPolicy",
        versions: &["v1alpha1"],
    },
    KindInfo {
        kind: Kind::EnvoyGatewayCarried,
        group: ENVOY_GATEWAY_GROUP,
        name: "EnvoyPatchPolicy",
        versions: &["v1alpha1"],
    },
];

/// A whole document of a kind with a `spec`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: S,
    /// Status is written by controllers; accepted and ignored.
    pub status: Option<serde_json::Value>,
}

/// A kind with an optional `spec` (Gateway API allows `spec: {}` to be omitted on some kinds;
/// carried kinds are read loosely).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LooseManifest {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: Option<serde_json::Value>,
    pub status: Option<serde_json::Value>,
}

/// A core v1 Secret. aigw reads only which keys exist: values never leave this struct, and it
/// deliberately has no `Debug` of its values.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretManifest {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(rename = "type")]
    pub secret_type: Option<String>,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
    pub immutable: Option<bool>,
}

impl std::fmt::Debug for SecretManifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretManifest")
            .field("keys", &self.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretManifest {
    /// The key names present in `data` or `stringData`, without their values.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.data
            .keys()
            .chain(self.string_data.keys())
            .map(String::as_str)
    }
}

/// The typed content of an object. Specs are boxed: some are kilobytes inline, and objects are
/// sorted, moved and shared by the ten thousand (a test holds [`Object`] small).
#[derive(Clone, Debug)]
pub enum Spec {
    AIGatewayRoute(Box<AIGatewayRouteSpec>),
    AIServiceBackend(Box<AIServiceBackendSpec>),
    BackendSecurityPolicy(Box<BackendSecurityPolicySpec>),
    GatewayConfig(Box<GatewayConfigSpec>),
    MCPRoute(Box<MCPRouteSpec>),
    QuotaPolicy(Box<QuotaPolicySpec>),
    GatewayClass(Box<GatewayClassSpec>),
    Gateway(Box<GatewaySpec>),
    HTTPRoute(Box<HttpRouteSpec>),
    ReferenceGrant(Box<ReferenceGrantSpec>),
    BackendTLSPolicy(Box<BackendTlsPolicySpec>),
    Backend(Box<BackendSpec>),
    SecurityPolicy(Box<SecurityPolicySpec>),
    ModelAccessPolicy(Box<ModelAccessPolicySpec>),
    BackendTrafficPolicy(Box<BackendTrafficPolicySpec>),
    PromptGuardPolicy(Box<PromptGuardPolicySpec>),
    ResponseCachePolicy(Box<ResponseCachePolicySpec>),
    EnvoyExtensionPolicy(Box<EnvoyExtensionPolicySpec>),
    /// A Secret: only its key names.
    Secret(Vec<String>),
    /// A recognised kind carried without compiling (InferencePool, Envoy Gateway policies).
    Carried,
}

/// Where an object came from: its file's document and the spanned tree, so any later pass can
/// point at any field of it.
#[derive(Clone, Debug)]
pub struct Origin {
    /// The whole document (and so every field's span).
    pub root: Arc<Node>,
    /// Position of the document in its file.
    pub index: usize,
}

impl Origin {
    /// The span of the value at a dotted field path (`spec.rules[0].name`), or of the closest
    /// enclosing value that exists.
    pub fn span_of(&self, path: &str) -> Span {
        crate::path::span_of(&self.root, path)
    }

    /// The span of the key at a dotted field path, falling back as `span_of` does.
    pub fn key_span_of(&self, path: &str) -> Span {
        crate::path::key_span_of(&self.root, path)
    }

    /// The value at exactly this field path, as written.
    pub fn node_at(&self, path: &str) -> Option<&crate::yaml::Node> {
        crate::path::node_at(&self.root, path)
    }
}

/// One loaded object.
#[derive(Clone, Debug)]
pub struct Object {
    pub kind: Kind,
    pub group: &'static str,
    pub kind_name: &'static str,
    pub api_version: String,
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `None` when the object could not be read into the typed model (its diagnostics say why).
    pub spec: Option<Spec>,
    pub origin: Origin,
}

impl Object {
    /// The object's identity for diagnostics.
    pub fn resource(&self) -> ResourceRef {
        ResourceRef {
            group: self.group.to_owned(),
            kind: self.kind_name.to_owned(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Objects are sorted and moved by value in bulk; an unboxed spec once made each one 4 KiB
    /// and doubled the peak memory of a 10,000-route check.
    #[test]
    fn objects_stay_small() {
        assert!(
            size_of::<Object>() <= 256,
            "Object is {} bytes",
            size_of::<Object>()
        );
        assert!(
            size_of::<Spec>() <= 32,
            "Spec is {} bytes",
            size_of::<Spec>()
        );
        // Specs of the kinds a large input has thousands of.
        let sizes = [
            ("AIGatewayRouteSpec", size_of::<AIGatewayRouteSpec>()),
            ("AIServiceBackendSpec", size_of::<AIServiceBackendSpec>()),
            (
                "BackendSecurityPolicySpec",
                size_of::<BackendSecurityPolicySpec>(),
            ),
            ("BackendSpec", size_of::<BackendSpec>()),
            ("HttpRouteSpec", size_of::<HttpRouteSpec>()),
        ];
        for (name, size) in sizes {
            assert!(size <= 512, "{name} is {size} bytes");
        }
    }
}
