//! Whole-graph checks of the caller policies (SecurityPolicy, ModelAccessPolicy, and the
//! BackendTrafficPolicy `rateLimit`): sections aigw does not apply, two policies of one kind on
//! one target, and a ModelAccessPolicy on a route where no caller is
//! authenticated (its client IDs are the SecurityPolicy `apiKeyAuth`'s in force there: the
//! route's own, else its listener's, else its Gateway's, as Envoy Gateway ranks them).

use crate::diagnostics;
use aigw_diag::Diagnostic;
use aigw_ir::{Edge, Ir, Node, NodeId};
use aigw_syntax::model::{AI_GATEWAY_METADATA_NAMESPACE, RateLimitCostFrom, RateLimitRule};
use aigw_syntax::{Kind, Object, Spec};

pub(crate) fn check(ir: &Ir, out: &mut Vec<Diagnostic>) {
    unsupported(ir, out);
    traffic(ir, out);
    for kind in [Kind::Gateway, Kind::HTTPRoute, Kind::AIGatewayRoute] {
        for (key, id) in ir.nodes_of(kind) {
            // Objects and listeners (a Gateway's parts); rules are no policy target.
            if !key.part.is_empty() && !key.part.starts_with("listeners[") {
                continue;
            }
            for policy in [
                Kind::SecurityPolicy,
                Kind::ModelAccessPolicy,
                Kind::BackendTrafficPolicy,
                Kind::PromptGuardPolicy,
                Kind::ResponseCachePolicy,
                Kind::EnvoyExtensionPolicy,
            ] {
                conflicts(ir, id, policy, out);
            }
        }
    }
    for (id, route) in ir.objects(Kind::AIGatewayRoute) {
        let Some(access) = policy_of(ir, id, Kind::ModelAccessPolicy) else {
            continue;
        };
        let authenticated = match policy_of(ir, id, Kind::SecurityPolicy) {
            Some(policy) => authenticates(ir, policy),
            None => gateways(ir, id)
                .iter()
                .all(|g| authenticated_on_gateway(ir, *g)),
        };
        if !authenticated {
            out.push(unauthenticated(ir, access, route));
        }
    }
    for (id, gateway) in ir.objects(Kind::Gateway) {
        let Some(access) = policy_of(ir, id, Kind::ModelAccessPolicy) else {
            continue;
        };
        // A route of this Gateway with its own SecurityPolicy is covered; one without needs the
        // Gateway's.
        let uncovered = ir
            .sources(id, |e| e == Edge::Parent)
            .into_iter()
            .filter(|(_, r)| {
                ir.object(*r)
                    .is_some_and(|o| o.kind == Kind::AIGatewayRoute)
            })
            .any(|(_, r)| {
                policy_of(ir, r, Kind::SecurityPolicy).is_none()
                    && policy_of(ir, r, Kind::ModelAccessPolicy).is_none()
            });
        if uncovered && !authenticated_on_gateway(ir, id) {
            out.push(unauthenticated(ir, access, gateway));
        }
    }
}

/// The policy of `kind` that targets node `id` directly (the first, by name, if several do).
pub fn policy_of(ir: &Ir, id: NodeId, kind: Kind) -> Option<NodeId> {
    let mut policies: Vec<NodeId> = ir
        .sources(id, |e| e == Edge::Targets)
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| ir.object(*p).is_some_and(|o| o.kind == kind && applies(o)))
        .collect();
    policies.sort_by_key(|p| ir.key_of(*p).clone());
    policies.first().copied()
}

/// A SecurityPolicy counts only with a section aigw applies.
fn applies(policy: &Object) -> bool {
    match &policy.spec {
        Some(Spec::SecurityPolicy(spec)) => spec.applies(),
        Some(Spec::BackendTrafficPolicy(spec)) => spec.rate_limit.is_some(),
        Some(Spec::EnvoyExtensionPolicy(spec)) => !spec.wasm.is_empty(),
        _ => true,
    }
}

/// Whether the SecurityPolicy `policy` authenticates callers (`apiKeyAuth` or `jwt`): one
/// with only `cors` or `authorization` leaves them unknown, and it replaces a Gateway's.
fn authenticates(ir: &Ir, policy: NodeId) -> bool {
    ir.object(policy).is_some_and(|o| match &o.spec {
        Some(Spec::SecurityPolicy(spec)) => spec.authenticates(),
        _ => false,
    })
}

/// Whether every listener of a Gateway authenticates callers: its own SecurityPolicy, else
/// the Gateway's.
fn authenticated_on_gateway(ir: &Ir, gateway: NodeId) -> bool {
    let on_gateway = policy_of(ir, gateway, Kind::SecurityPolicy);
    let listeners: Vec<NodeId> = ir
        .targets(gateway, |e| e == Edge::Part)
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    if listeners.is_empty() {
        return on_gateway.is_some_and(|p| authenticates(ir, p));
    }
    listeners.iter().all(|l| {
        policy_of(ir, *l, Kind::SecurityPolicy)
            .or(on_gateway)
            .is_some_and(|p| authenticates(ir, p))
    })
}

fn gateways(ir: &Ir, route: NodeId) -> Vec<NodeId> {
    ir.targets(route, |e| e == Edge::Parent)
        .into_iter()
        .map(|(_, g)| g)
        .collect()
}

fn unauthenticated(ir: &Ir, access: NodeId, target: &Object) -> Diagnostic {
    let what = format!(
        "{} `{}/{}`",
        target.kind_name, target.namespace, target.name
    );
    let policy = ir.object(access);
    let span = policy.map_or(target.origin.span_of("metadata.name"), |p| {
        p.origin.span_of("spec.targetRefs")
    });
    let d = diagnostics::access_without_callers(span, &what);
    match policy {
        Some(p) => d.with_resource(p.resource()),
        None => d,
    }
}

fn conflicts(ir: &Ir, target: NodeId, kind: Kind, out: &mut Vec<Diagnostic>) {
    let policies: Vec<&Object> = ir
        .sources(target, |e| e == Edge::Targets)
        .into_iter()
        .filter_map(|(_, p)| ir.object(p).map(|o| &**o))
        .filter(|o| o.kind == kind && applies(o))
        .collect();
    if policies.len() < 2 {
        return;
    }
    let what = match ir.node(target) {
        Node::Listener { gateway, index } => {
            let listener = match &gateway.spec {
                Some(Spec::Gateway(spec)) => spec.listeners.get(*index).map(|l| l.name.as_str()),
                _ => None,
            };
            format!(
                "listener `{}` of Gateway `{}/{}`",
                listener.unwrap_or_default(),
                gateway.namespace,
                gateway.name
            )
        }
        Node::Object(o) => format!("{} `{}/{}`", o.kind_name, o.namespace, o.name),
        _ => return,
    };
    let mut names: Vec<String> = policies.iter().map(|p| format!("`{}`", p.name)).collect();
    names.sort();
    let target_name = ir.key_of(target).name.clone();
    for policy in &policies {
        let field = target_field(policy, &target_name);
        let span = policy.origin.span_of(&field);
        let kind_name = policy.kind_name;
        out.push(
            diagnostics::conflicting_caller_policies(span, &field, &what, kind_name, &names)
                .with_resource(policy.resource()),
        );
    }
}

/// BackendTrafficPolicy: rate-limit costs and limits from Envoy's metadata are refused by
/// name (aigw has no such metadata); its sections other than `rateLimit` are Envoy's, noted.
fn traffic(ir: &Ir, out: &mut Vec<Diagnostic>) {
    const READ: [&str; 4] = ["targetRef", "targetRefs", "targetSelectors", "rateLimit"];
    for (_, policy) in ir.objects(Kind::BackendTrafficPolicy) {
        let Some(Spec::BackendTrafficPolicy(spec)) = &policy.spec else {
            continue;
        };
        if spec.target_selectors.is_some() {
            let field = "spec.targetSelectors";
            let span = policy.origin.span_of(field);
            out.push(
                diagnostics::unsupported_policy(
                    span,
                    field,
                    "`targetSelectors` yet",
                    "name the targets in `targetRefs`",
                )
                .with_resource(policy.resource()),
            );
        }
        for (at, _, rule) in spec.rules() {
            for (field, what) in refused_costs(&at, rule) {
                let span = policy.origin.span_of(&field);
                out.push(
                    diagnostics::unsupported_policy(
                        span,
                        &field,
                        what,
                        "count a fixed number, or a request cost of the route (`llmRequestCosts`) after the answer",
                    )
                    .with_resource(policy.resource()),
                );
            }
        }
        let sections = policy
            .origin
            .root
            .get("spec")
            .map(|spec| match &spec.value {
                aigw_syntax::yaml::Value::Map(entries) => entries
                    .iter()
                    .map(|(key, _)| key.name.clone())
                    .filter(|name| !READ.contains(&name.as_str()))
                    .collect(),
                _ => Vec::new(),
            });
        for section in sections.unwrap_or_default() {
            let field = format!("spec.{section}");
            let span = policy.origin.key_span_of(&field);
            out.push(
                diagnostics::policy_section_ignored(
                    span,
                    &field,
                    "BackendTrafficPolicy",
                    "`rateLimit`",
                )
                .with_resource(policy.resource()),
            );
        }
    }
}

/// The parts of a rate-limit rule that read metadata aigw does not have.
fn refused_costs(at: &str, rule: &RateLimitRule) -> Vec<(String, &'static str)> {
    let mut refused = Vec::new();
    if rule.limit.from_metadata.is_some() {
        refused.push((
            format!("{at}.limit.fromMetadata"),
            "a limit read from Envoy's metadata",
        ));
    }
    let Some(cost) = &rule.cost else {
        return refused;
    };
    if cost
        .request
        .as_ref()
        .is_some_and(|r| r.from == RateLimitCostFrom::Metadata)
    {
        refused.push((
            format!("{at}.cost.request"),
            "a request cost read from metadata: a request's costs are known after its answer",
        ));
    }
    if let Some(metadata) = cost.response.as_ref().and_then(|r| r.metadata.as_ref())
        && metadata.namespace != AI_GATEWAY_METADATA_NAMESPACE
    {
        refused.push((
            format!("{at}.cost.response.metadata.namespace"),
            "metadata outside `io.envoy.ai_gateway`: the request costs are the metadata aigw has",
        ));
    }
    refused
}

/// SecurityPolicy sections aigw does not apply are refused by name.
fn unsupported(ir: &Ir, out: &mut Vec<Diagnostic>) {
    for (_, policy) in ir.objects(Kind::SecurityPolicy) {
        let Some(Spec::SecurityPolicy(spec)) = &policy.spec else {
            continue;
        };
        for (field, what) in spec.unsupported() {
            let span = policy.origin.span_of(&field);
            out.push(
                diagnostics::unsupported_policy(
                    span,
                    &field,
                    &what,
                    "aigw applies `apiKeyAuth`, `jwt`, `authorization` and `cors` without it; until it applies this too, a request it should refuse could pass, so the policy is refused",
                )
                .with_resource(policy.resource()),
            );
        }
    }
}

/// The `targetRefs` entry of `policy` that names `target`.
fn target_field(policy: &Object, target: &str) -> String {
    let fields: Vec<(String, &str)> = match &policy.spec {
        Some(Spec::SecurityPolicy(spec)) => spec
            .targets()
            .into_iter()
            .map(|(field, t)| (field, t.name.as_str()))
            .collect(),
        Some(Spec::EnvoyExtensionPolicy(spec)) => spec
            .targets()
            .into_iter()
            .map(|(field, t)| (field, t.name.as_str()))
            .collect(),
        Some(Spec::BackendTrafficPolicy(spec)) => spec
            .targets()
            .into_iter()
            .map(|(field, t)| (field, t.name.as_str()))
            .collect(),
        Some(Spec::PromptGuardPolicy(spec)) => spec
            .target_refs
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("spec.targetRefs[{i}]"), t.name.as_str()))
            .collect(),
        Some(Spec::ResponseCachePolicy(spec)) => spec
            .target_refs
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("spec.targetRefs[{i}]"), t.name.as_str()))
            .collect(),
        Some(Spec::ModelAccessPolicy(spec)) => spec
            .target_refs
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("spec.targetRefs[{i}]"), t.name.as_str()))
            .collect(),
        _ => Vec::new(),
    };
    fields
        .into_iter()
        .find(|(_, name)| *name == target)
        .map_or_else(|| "spec.targetRefs".to_owned(), |(field, _)| field)
}
