//! Admission rules of AIGatewayRoute and AIServiceBackend, and the cost expressions of
//! AIGatewayRoute, GatewayConfig and QuotaPolicy.

use crate::Cx;
use crate::diagnostics;
use aigw_syntax::model::*;
use aigw_syntax::values::{parse_duration, parse_rfc3339};

pub(crate) fn admit_route(cx: &mut Cx<'_>, spec: &AIGatewayRouteSpec) {
    if spec.parent_refs.iter().any(|p| p.kind != "Gateway") {
        cx.rule("spec.parentRefs", "only Gateway is supported");
    }
    let names: Vec<&str> = spec
        .rules
        .iter()
        .filter_map(|r| r.name.as_deref())
        .collect();
    if names
        .iter()
        .any(|n| names.iter().filter(|m| *m == n).count() > 1)
    {
        cx.rule("spec.rules", "rule name must be unique within the route");
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        admit_rule(cx, &format!("spec.rules[{i}]"), rule);
    }
    check_costs(cx, "spec.llmRequestCosts", &spec.llm_request_costs);
}

fn admit_rule(cx: &mut Cx<'_>, at: &str, rule: &RouteRule) {
    if rule.name.as_deref() == Some("route-not-found") {
        cx.rule(at, "rule name route-not-found is reserved");
    }
    let refs = &rule.backend_refs;
    let typed = |r: &RouteBackendRef| r.group.is_some() && r.kind.is_some();
    let untyped = |r: &RouteBackendRef| r.group.is_none() && r.kind.is_none();
    if !(refs.is_empty() || refs.iter().all(untyped) || refs.iter().all(typed)) {
        cx.rule(
            at,
            "cannot mix InferencePool and AIServiceBackend references in the same rule",
        );
    }
    if refs.iter().any(typed) && refs.len() > 1 {
        cx.rule(at, "only one InferencePool backend is allowed per rule");
    }
    for (j, r) in refs.iter().enumerate() {
        let at = format!("{at}.backendRefs[{j}]");
        if r.group.is_some() != r.kind.is_some() {
            cx.rule(&at, "group and kind must be specified together");
        }
        if r.group.is_some()
            && !(r.group.as_deref() == Some(INFERENCE_GROUP)
                && r.kind.as_deref() == Some("InferencePool"))
        {
            cx.rule(
                &at,
                "only InferencePool from inference.networking.k8s.io group is supported",
            );
        }
    }
    if let Some(timeouts) = &rule.timeouts {
        let request = timeouts.request.as_deref().and_then(parse_duration);
        let backend = timeouts.backend_request.as_deref().and_then(parse_duration);
        if let (Some(request), Some(backend)) = (request, backend)
            && !request.is_zero()
            && backend > request
        {
            cx.rule(
                &format!("{at}.timeouts"),
                "backendRequest timeout cannot be longer than request timeout",
            );
        }
    }
    for (m, matched) in rule.matches.iter().enumerate() {
        for (h, header) in matched.headers.iter().enumerate() {
            if header.match_type == HeaderMatchType::RegularExpression {
                check_regex(
                    cx,
                    &format!("{at}.matches[{m}].headers[{h}].value"),
                    &header.value,
                );
            }
        }
    }
    if let Some(created) = &rule.models_created_at
        && parse_rfc3339(created).is_none()
    {
        let field = format!("{at}.modelsCreatedAt");
        let span = cx.object.origin.span_of(&field);
        cx.out.push(diagnostics::bad_format(
            span,
            &field,
            created,
            "RFC 3339 date-time",
        ));
    }
}

pub(crate) fn admit_backend(cx: &mut Cx<'_>, spec: &AIServiceBackendSpec) {
    let r = &spec.backend_ref;
    if !(r.kind == "Backend" && r.group == ENVOY_GATEWAY_GROUP) {
        cx.rule(
            "spec.backendRef",
            "BackendRef must be a Backend resource of Envoy Gateway. See https://github.com/envoyproxy/ai-gateway/issues/902 for more details.",
        );
    }
    if r.group.is_empty() && r.kind == "Service" && r.port.is_none() {
        cx.rule("spec.backendRef", "Must have port for Service reference");
    }
}

pub(crate) fn admit_gateway_config(cx: &mut Cx<'_>, spec: &GatewayConfigSpec) {
    check_costs(
        cx,
        "spec.globalLLMRequestCosts",
        &spec.global_llm_request_costs,
    );
    let Some(kubernetes) = spec.ext_proc.as_ref().and_then(|e| e.kubernetes.as_ref()) else {
        return;
    };
    if kubernetes.image.is_some() && kubernetes.image_repository.is_some() {
        cx.rule(
            "spec.extProc.kubernetes",
            "Either image or imageRepository can be set.",
        );
    }
}

pub(crate) fn admit_quota(cx: &mut Cx<'_>, spec: &QuotaPolicySpec) {
    if spec
        .target_refs
        .iter()
        .any(|r| !(r.group == AIGW_GROUP && r.kind == "AIServiceBackend"))
    {
        cx.rule(
            "spec.targetRefs",
            "targetRefs must reference AIServiceBackend resources",
        );
    }
    if let Some(expr) = spec
        .service_quota
        .as_ref()
        .and_then(|q| q.cost_expression.as_deref())
    {
        check_cel(cx, "spec.serviceQuota.costExpression", expr);
    }
    for (i, per_model) in spec.per_model_quotas.iter().enumerate() {
        let at = format!("spec.perModelQuotas[{i}].quota");
        if let Some(expr) = per_model.quota.cost_expression.as_deref() {
            check_cel(cx, &format!("{at}.costExpression"), expr);
        }
        for (b, bucket) in per_model.quota.bucket_rules.iter().enumerate() {
            for (s, selector) in bucket.client_selectors.iter().enumerate() {
                let empty = selector.headers.is_none()
                    && selector.methods.is_none()
                    && selector.path.is_none()
                    && selector.source_cidr.is_none()
                    && selector.query_params.is_none();
                if empty {
                    cx.rule(
                        &format!("{at}.bucketRules[{b}].clientSelectors[{s}]"),
                        "at least one of headers, methods, path, sourceCIDR or queryParams must be specified",
                    );
                }
            }
        }
    }
}

/// `type: CEL` needs an expression that type-checks; other types take none.
fn check_costs(cx: &mut Cx<'_>, at: &str, costs: &[LlmRequestCost]) {
    for (i, cost) in costs.iter().enumerate() {
        let field = format!("{at}[{i}]");
        match (cost.cost_type, cost.cel.as_deref()) {
            (LlmRequestCostType::CEL, Some(expr)) => check_cel(cx, &format!("{field}.cel"), expr),
            (LlmRequestCostType::CEL, None) => {
                let span = cx.object.origin.span_of(&format!("{field}.type"));
                cx.out.push(diagnostics::unworkable(
                    span,
                    &format!("{field}.cel"),
                    "a cost of type CEL needs a `cel` expression".to_owned(),
                    "add `cel:` with an expression over the token counts, or pick a token type",
                ));
            }
            _ => {}
        }
    }
}

/// Type-checks a cost expression; the diagnostic points into the expression when the YAML holds
/// it as a plain or single-line quoted scalar whose text maps byte for byte.
fn check_cel(cx: &mut Cx<'_>, field: &str, expr: &str) {
    let Err(error) = crate::cel::check_cost_expression(expr) else {
        return;
    };
    let value_span = cx.object.origin.span_of(field);
    let file = cx.object.origin.root.span.file;
    let width = (value_span.end - value_span.start) as usize;
    let span = match width.checked_sub(expr.len()) {
        // Quoted scalars carry their quote characters around the text.
        Some(0) | Some(2) => {
            let base = value_span.start as usize + (width - expr.len()) / 2;
            aigw_diag::Span::new(file, (base + error.start) as u32, (base + error.end) as u32)
        }
        _ => value_span,
    };
    cx.out.push(diagnostics::cel_error(
        span,
        field,
        error.syntax,
        &error.message,
    ));
}

pub(crate) fn check_regex(cx: &mut Cx<'_>, field: &str, pattern: &str) {
    if let Err(error) = regex::Regex::new(pattern) {
        let reason = error.to_string();
        let reason = reason
            .lines()
            .last()
            .unwrap_or("invalid")
            .trim()
            .trim_start_matches("error: ");
        let span = cx.object.origin.span_of(field);
        cx.out
            .push(diagnostics::invalid_regex(span, field, pattern, reason));
    }
}
