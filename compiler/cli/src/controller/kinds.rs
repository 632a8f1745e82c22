//! The kinds `aigw controller` watches: every kind the compiler reads, each at one version.
//!
//! A CRD's objects are visible under every version it serves, so watching two versions of one
//! kind would see each object twice: each kind is watched at the version its CRD stores (the
//! reference's AI Gateway CRDs store v1beta1; QuotaPolicy has only v1alpha1), and the API
//! server converts older objects to it. The compiler reads every version it accepts, so the
//! objects it gets are the ones `kubectl get -o yaml` shows.
//!
//! A kind whose CRD is not installed is absent, not an error: its watcher reports 404, the
//! world holds none of it, and the watcher keeps retrying (with backoff) until it appears.

use kube::core::{ApiResource, GroupVersionKind};

/// One watched kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watched {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    /// Namespaced (watched per listed namespace) or cluster-scoped (always watched whole).
    pub namespaced: bool,
    /// aigw writes this kind's status conditions (the kinds of the Gateway API target's
    /// `STATUS_KINDS`).
    pub status: bool,
}

const AI: &str = "aigateway.envoyproxy.io";
const GATEWAY: &str = "gateway.networking.k8s.io";
const EG: &str = "gateway.envoyproxy.io";
const AIGW: &str = "aigw.dev";

const fn kind(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    status: bool,
) -> Watched {
    Watched {
        group,
        version,
        kind,
        plural,
        namespaced: true,
        status,
    }
}

/// Every watched kind, in a fixed order (the order of the sources the compiler reads).
pub const WATCHED: &[Watched] = &[
    kind(AI, "v1beta1", "AIGatewayRoute", "aigatewayroutes", true),
    kind(AI, "v1beta1", "AIServiceBackend", "aiservicebackends", true),
    kind(
        AI,
        "v1beta1",
        "BackendSecurityPolicy",
        "backendsecuritypolicies",
        true,
    ),
    kind(AI, "v1beta1", "GatewayConfig", "gatewayconfigs", true),
    kind(AI, "v1beta1", "MCPRoute", "mcproutes", true),
    kind(AI, "v1alpha1", "QuotaPolicy", "quotapolicies", true),
    Watched {
        namespaced: false,
        ..kind(GATEWAY, "v1", "GatewayClass", "gatewayclasses", false)
    },
    kind(GATEWAY, "v1", "Gateway", "gateways", false),
    kind(GATEWAY, "v1", "HTTPRoute", "httproutes", false),
    kind(
        GATEWAY,
        "v1beta1",
        "ReferenceGrant",
        "referencegrants",
        false,
    ),
    kind(
        GATEWAY,
        "v1",
        "BackendTLSPolicy",
        "backendtlspolicies",
        false,
    ),
    kind(EG, "v1alpha1", "Backend", "backends", false),
    kind(EG, "v1alpha1", "SecurityPolicy", "securitypolicies", false),
    kind(
        EG,
        "v1alpha1",
        "BackendTrafficPolicy",
        "backendtrafficpolicies",
        false,
    ),
    kind(
        EG,
        "v1alpha1",
        "EnvoyExtensionPolicy",
        "envoyextensionpolicies",
        false,
    ),
    kind(EG, "v1alpha1", "HTTPRouteFilter", "httproutefilters", false),
    kind(
        AIGW,
        "v1alpha1",
        "ModelAccessPolicy",
        "modelaccesspolicies",
        true,
    ),
    kind(
        AIGW,
        "v1alpha1",
        "PromptGuardPolicy",
        "promptguardpolicies",
        true,
    ),
    kind(
        AIGW,
        "v1alpha1",
        "ResponseCachePolicy",
        "responsecachepolicies",
        true,
    ),
    kind(
        "inference.networking.k8s.io",
        "v1",
        "InferencePool",
        "inferencepools",
        false,
    ),
    kind("", "v1", "Secret", "secrets", false),
];

/// Secrets of these types are never watched: they are not provider credentials, and they are
/// large and many (Helm keeps each release in one; every ServiceAccount once had a token).
pub const SECRET_FIELD_SELECTOR: &str =
    "type!=helm.sh/release.v1,type!=kubernetes.io/service-account-token";

impl Watched {
    /// The dynamic API resource of this kind.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group, self.version, self.kind),
            self.plural,
        )
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// True for Secrets, whose values the controller never keeps.
    pub fn is_secret(&self) -> bool {
        self.group.is_empty() && self.kind == "Secret"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_kind_of_the_gateway_api_target_is_watched_with_status() {
        for (kind, _) in aigw_target_gateway_api::STATUS_KINDS {
            let name = format!("{kind:?}");
            let watched = WATCHED.iter().find(|w| w.kind == name);
            assert!(
                watched.is_some_and(|w| w.status),
                "{name} is not watched with status"
            );
        }
        assert_eq!(
            WATCHED.iter().filter(|w| w.status).count(),
            aigw_target_gateway_api::STATUS_KINDS.len()
        );
    }

    #[test]
    fn each_kind_is_watched_once() {
        let mut kinds: Vec<_> = WATCHED.iter().map(|w| (w.group, w.kind)).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), WATCHED.len());
    }
}
