//! Admission rules of the caller policies: Envoy Gateway's SecurityPolicy (its CRD's target
//! rules and `apiKeyAuth` rules, with its messages) and aigw's ModelAccessPolicy (its targets).

use crate::Cx;
use aigw_syntax::model::*;

/// The kinds a BackendTrafficPolicy or an EnvoyExtensionPolicy may target.
const ROUTE_KINDS: [&str; 7] = [
    "Gateway",
    "ListenerSet",
    "HTTPRoute",
    "GRPCRoute",
    "UDPRoute",
    "TCPRoute",
    "TLSRoute",
];

/// The target rules Envoy Gateway's policies share, with their CRDs' messages: `targetRef` or
/// `targetRefs` (unless selectors choose), the Gateway API group, one of `kinds`
/// (`kind_message` the CRD's own text).
fn policy_targets(
    cx: &mut Cx<'_>,
    (single, refs, selectors): (
        bool,
        &[PolicyTargetReferenceWithSectionName],
        &Option<serde_json::Value>,
    ),
    targets: Vec<(String, &PolicyTargetReferenceWithSectionName)>,
    kinds: &[&str],
    kind_message: &str,
) {
    let selectors = selectors
        .as_ref()
        .and_then(|s| s.as_array())
        .is_some_and(|s| !s.is_empty());
    let many = !refs.is_empty();
    if single == many && !selectors {
        cx.rule("spec", "either targetRef or targetRefs must be used");
    }
    for (field, target) in targets {
        if target.group != GATEWAY_GROUP {
            cx.rule(
                &format!("{field}.group"),
                "this policy can only have a targetRefs[*].group of gateway.networking.k8s.io",
            );
        }
        if !kinds.contains(&target.kind.as_str()) {
            cx.rule(&format!("{field}.kind"), kind_message);
        }
    }
}

/// Envoy Gateway's `x-kubernetes-validations` on SecurityPolicy that aigw's subset reaches.
pub(crate) fn admit_security_policy(cx: &mut Cx<'_>, spec: &SecurityPolicySpec) {
    policy_targets(
        cx,
        (
            spec.target_ref.is_some(),
            &spec.target_refs,
            &spec.target_selectors,
        ),
        spec.targets(),
        &[
            "Gateway",
            "ListenerSet",
            "HTTPRoute",
            "GRPCRoute",
            "TCPRoute",
        ],
        "this policy can only have a targetRefs[*].kind of Gateway/ListenerSet/HTTPRoute/GRPCRoute/TCPRoute",
    );
    if let Some(auth) = &spec.api_key_auth {
        for (i, source) in auth.extract_from.iter().enumerate() {
            let set = [&source.headers, &source.params, &source.cookies]
                .iter()
                .filter(|s| s.is_some())
                .count();
            if set != 1 {
                cx.rule(
                    &format!("spec.apiKeyAuth.extractFrom[{i}]"),
                    "exactly one of headers, params, or cookies must be specified",
                );
            }
        }
    }
}

/// Envoy Gateway's rules on BackendTrafficPolicy that its `rateLimit` reaches.
pub(crate) fn admit_traffic_policy(cx: &mut Cx<'_>, spec: &BackendTrafficPolicySpec) {
    policy_targets(
        cx,
        (
            spec.target_ref.is_some(),
            &spec.target_refs,
            &spec.target_selectors,
        ),
        spec.targets(),
        &ROUTE_KINDS,
        "this policy can only have a targetRefs[*].kind of Gateway/ListenerSet/HTTPRoute/GRPCRoute/TCPRoute/UDPRoute/TLSRoute",
    );
    for (at, global, rule) in spec.rules() {
        for (i, selector) in rule.client_selectors.iter().enumerate() {
            let any = selector.headers.is_some()
                || selector.methods.is_some()
                || selector.path.is_some()
                || selector.source_cidr.is_some()
                || selector.query_params.is_some();
            if !any {
                cx.rule(
                    &format!("{at}.clientSelectors[{i}]"),
                    "at least one of headers, methods, path, sourceCIDR or queryParams must be specified",
                );
            }
        }
        if let Some(cost) = &rule.cost {
            if !global && cost.response.is_some() {
                cx.rule(
                    &format!("{at}.cost"),
                    "response cost is not supported for Local Rate Limits",
                );
            }
            for (side, specifier) in [("request", &cost.request), ("response", &cost.response)] {
                if let Some(specifier) = specifier
                    && specifier.number.is_some()
                    && specifier.metadata.is_some()
                {
                    cx.rule(
                        &format!("{at}.cost.{side}"),
                        "only one of number or metadata can be specified",
                    );
                }
            }
        }
        if !global && rule.limit.from_metadata.is_some() {
            cx.rule(
                &format!("{at}.limit"),
                "limit fromMetadata is not supported for Local Rate Limits",
            );
        }
    }
}

/// Envoy Gateway's rules on EnvoyExtensionPolicy: its targets as a BackendTrafficPolicy's, and
/// a code source that has the part its type names.
pub(crate) fn admit_extension_policy(cx: &mut Cx<'_>, spec: &EnvoyExtensionPolicySpec) {
    policy_targets(
        cx,
        (
            spec.target_ref.is_some(),
            &spec.target_refs,
            &spec.target_selectors,
        ),
        spec.targets(),
        &ROUTE_KINDS,
        "this policy can only have a targetRefs[*].kind of Gateway/ListenerSet/HTTPRoute/GRPCRoute/UDPRoute/TCPRoute/TLSRoute",
    );
    for (i, wasm) in spec.wasm.iter().enumerate() {
        let code = &wasm.code;
        let http = code.code_type == WasmCodeType::Http;
        if http != code.http.is_some() {
            cx.rule(
                &format!("spec.wasm[{i}].code"),
                "If type is HTTP, http field needs to be set.",
            );
        }
        if (code.code_type == WasmCodeType::Image) != code.image.is_some() {
            cx.rule(
                &format!("spec.wasm[{i}].code"),
                "If type is Image, image field needs to be set.",
            );
        }
    }
}

/// A PromptGuardPolicy: targets as a ModelAccessPolicy's, one of `detector` and `pattern` per
/// check, and patterns that compile.
pub(crate) fn admit_prompt_guard(cx: &mut Cx<'_>, spec: &PromptGuardPolicySpec) {
    admit_targets(cx, &spec.target_refs);
    let checks = spec
        .request
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("spec.request[{i}]"), c))
        .chain(
            spec.response
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("spec.response[{i}]"), c)),
        );
    for (field, check) in checks {
        if check.detector.is_some() == check.pattern.is_some() {
            cx.rule(
                &field,
                "exactly one of detector or pattern must be specified",
            );
        }
        if let Some(pattern) = &check.pattern {
            crate::route::check_regex(cx, &format!("{field}.pattern"), pattern);
        }
    }
    if spec.request.is_empty() && spec.response.is_empty() {
        cx.rule(
            "spec",
            "at least one of request or response must be specified",
        );
    }
}

/// A ResponseCachePolicy: targets as a ModelAccessPolicy's; an entry no larger than the store.
pub(crate) fn admit_response_cache(cx: &mut Cx<'_>, spec: &ResponseCachePolicySpec) {
    admit_targets(cx, &spec.target_refs);
    if let (Some(entry), Some(total)) = (spec.max_entry_bytes, spec.max_bytes)
        && entry > total
    {
        cx.rule(
            "spec.maxEntryBytes",
            "maxEntryBytes must not be larger than maxBytes",
        );
    }
    if spec.store == CacheStore::Redis && spec.max_bytes.is_some() {
        cx.rule(
            "spec.maxBytes",
            "maxBytes bounds the Memory store; a Redis store is bounded by Redis's maxmemory",
        );
    }
}

/// A ModelAccessPolicy attaches to a Gateway, an HTTPRoute or an AIGatewayRoute.
pub(crate) fn admit_model_access(cx: &mut Cx<'_>, spec: &ModelAccessPolicySpec) {
    admit_targets(cx, &spec.target_refs);
}

/// aigw's policies attach to a Gateway, an HTTPRoute or an AIGatewayRoute.
fn admit_targets(cx: &mut Cx<'_>, targets: &[LocalPolicyTargetReference]) {
    for (i, target) in targets.iter().enumerate() {
        let valid = matches!(
            (target.group.as_str(), target.kind.as_str()),
            (GATEWAY_GROUP, "Gateway" | "HTTPRoute") | (AIGW_GROUP, "AIGatewayRoute")
        );
        if !valid {
            cx.rule(
                &format!("spec.targetRefs[{i}]"),
                "targetRefs must name a Gateway or HTTPRoute (gateway.networking.k8s.io) or an AIGatewayRoute (aigateway.envoyproxy.io)",
            );
        }
    }
}
