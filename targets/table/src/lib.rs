//! The routing-table target: the checked graph → [`aigw_table::Table`], the runtime's only input.
//!
//! What goes in is what a request needs: Gateways and listeners, the AIGatewayRoutes attached to
//! them with their rules in match order, the backends those rules reach (endpoints, TLS, schema,
//! auth by Secret *reference*), costs and quotas. Nothing else: no Secret value, no Kubernetes
//! deployment detail. Parts the graph could not resolve (possible only with `--open`) are left
//! out: a route with no Gateway, a backend reference with no backend.
//!
//! Decisions:
//! - match order is Gateway API precedence as Envoy Gateway applies it to the HTTPRoutes the
//!   reference generates (every rule matches the path prefix `/`): more header matches first,
//!   then route namespace/name, then rule and match order (creation time, the first tie-break
//!   in Kubernetes, does not exist in a Git repository);
//! - plain HTTPRoutes on the same Gateways go into their own match list (see `plain`);
//! - the header and body mutations of a route's backendRef are merged over the AIServiceBackend's:
//!   the route's `set` wins for a name both set; `remove` lists are united.

mod ambient;
mod backends;
mod caller_auth;
mod callers;
pub mod mcp;
mod plain;

use aigw_ir::{Edge, Ir, Key, NodeId};
use aigw_syntax::model::{HeaderMatchType, LlmRequestCost, ParentReference, RouteRule};
use aigw_syntax::values::{parse_duration, parse_rfc3339};
use aigw_syntax::{Kind, Object, Spec};
use aigw_table as t;
use std::collections::{BTreeMap, HashMap};

/// The model header the reference's router matches.
pub const MODEL_HEADER: &str = "x-ai-eg-model";
/// `timeouts.request` when a rule does not set it (the reference's default).
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 60_000;
/// `owned_by` of `/v1/models` entries when the rule does not say (the reference's default).
pub const DEFAULT_MODEL_OWNER: &str = "Envoy AI Gateway";

/// Builds the table of a checked graph.
pub fn table(ir: &Ir) -> t::Table {
    let policies = callers::Index::build(ir);
    let gateways = gateways(ir, &policies);
    let gateway_index: HashMap<NodeId, usize> = gateways
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    let mut backends = backends::Backends::new(ir);
    let mut routes = Vec::new();
    let mut matches = Vec::new();
    for (id, object) in ir.objects(Kind::AIGatewayRoute) {
        let Some(Spec::AIGatewayRoute(spec)) = &object.spec else {
            continue;
        };
        let parents = parents(ir, id, object, &spec.parent_refs, &gateway_index);
        if parents.is_empty() {
            continue;
        }
        let route_index = routes.len();
        let key = ir.key_of(id).clone();
        let rules = spec
            .rules
            .iter()
            .enumerate()
            .map(|(r, rule)| self::rule(ir, &key, r, rule, &mut backends))
            .collect();
        for (r, rule) in spec.rules.iter().enumerate() {
            matches.extend(entries(route_index, r, rule));
        }
        routes.push(t::Route {
            name: name(object),
            parents,
            hostnames: spec.hostnames.iter().map(|h| h.0.clone()).collect(),
            rules,
            llm_request_costs: costs(&spec.llm_request_costs),
            policies: policies.of(ir, id),
        });
    }
    // Stable: ties keep route, rule and match order.
    matches.sort_by_key(|m: &t::MatchEntry| std::cmp::Reverse(m.headers.len()));
    let (http_routes, http_matches) = plain::routes(ir, &gateway_index, &policies);
    let (backends, backend_index, refs) = backends.finish();
    backends::renumber(&mut routes, &refs, &backend_index);
    t::Table {
        schema_version: aigw_table::SCHEMA_VERSION.to_owned(),
        gateways: gateways.into_iter().map(|(_, g)| g).collect(),
        routes,
        matches,
        quotas: quotas(ir, &backend_index),
        backends,
        http_routes,
        http_matches,
        callers: policies.callers,
        access: policies.access,
        rate_limits: policies.rate_limits,
        guards: policies.guards,
        caches: policies.caches,
        extensions: policies.extensions,
        mcp_routes: mcp::routes(ir, &gateway_index),
    }
}

pub(crate) fn name(object: &Object) -> String {
    format!("{}/{}", object.namespace, object.name)
}

fn gateways(ir: &Ir, policies: &callers::Index) -> Vec<(NodeId, t::Gateway)> {
    let mut out = Vec::new();
    for (id, object) in ir.objects(Kind::Gateway) {
        let Some(Spec::Gateway(spec)) = &object.spec else {
            continue;
        };
        let listeners = spec
            .listeners
            .iter()
            .filter_map(|l| {
                let protocol = match l.protocol.as_str() {
                    "HTTP" => t::Protocol::Http,
                    "HTTPS" => t::Protocol::Https,
                    _ => return None,
                };
                let certificates = l
                    .tls
                    .iter()
                    .flat_map(|tls| &tls.certificate_refs)
                    .filter(|c| c.group.is_empty() && c.kind == "Secret")
                    .map(|c| t::ObjectRef {
                        kind: "Secret".to_owned(),
                        namespace: c
                            .namespace
                            .clone()
                            .unwrap_or_else(|| object.namespace.clone()),
                        name: c.name.clone(),
                    })
                    .collect();
                Some(t::Listener {
                    name: l.name.clone(),
                    port: u16::try_from(l.port).ok()?,
                    protocol,
                    hostname: l.hostname.clone(),
                    certificates,
                    policies: policies.of_listener(ir, object, &l.name),
                })
            })
            .collect();
        let mut gateway = t::Gateway {
            name: name(object),
            listeners,
            policies: policies.of(ir, id),
            ..t::Gateway::default()
        };
        if let Some((_, config_id)) = ir.targets(id, |e| e == Edge::Config).first()
            && let Some(config) = ir.object(*config_id)
        {
            gateway.config = Some(name(config));
            if let Some(Spec::GatewayConfig(spec)) = &config.spec {
                gateway.llm_request_costs = costs(&spec.global_llm_request_costs);
                gateway.forward_proxy = spec.forward_proxy.as_ref().map(|p| p.address.clone());
                gateway.telemetry = telemetry(spec);
            }
        }
        out.push((id, gateway));
    }
    out
}

/// The `OTEL_*` variables a GatewayConfig gives its processor with a literal `value`. One from
/// `valueFrom` (a Secret or ConfigMap key, or a field of the pod) is not carried: the data plane
/// reads it from its own environment, where a Deployment puts it.
fn telemetry(spec: &aigw_syntax::model::GatewayConfigSpec) -> BTreeMap<String, String> {
    let env = spec
        .ext_proc
        .as_ref()
        .and_then(|e| e.kubernetes.as_ref())
        .map(|k| k.env.as_slice())
        .unwrap_or_default();
    env.iter()
        .filter_map(|var| {
            let name = var.get("name")?.as_str()?;
            let value = var.get("value")?.as_str()?;
            name.starts_with("OTEL_")
                .then(|| (name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// The parentRefs of a route that resolved to a Gateway in the table.
pub(crate) fn parents(
    ir: &Ir,
    id: NodeId,
    object: &Object,
    parent_refs: &[ParentReference],
    gateway_index: &HashMap<NodeId, usize>,
) -> Vec<t::Parent> {
    let linked: Vec<NodeId> = ir
        .targets(id, |e| e == Edge::Parent)
        .into_iter()
        .map(|(_, g)| g)
        .collect();
    parent_refs
        .iter()
        .filter_map(|p| {
            let namespace = p.namespace.as_deref().unwrap_or(&object.namespace);
            let gateway = ir
                .find(&Key::object(Kind::Gateway, namespace, &p.name))
                .filter(|g| linked.contains(g))?;
            Some(t::Parent {
                gateway: *gateway_index.get(&gateway)?,
                section_name: p.section_name.clone(),
                port: p.port.and_then(|port| u16::try_from(port).ok()),
            })
        })
        .collect()
}

fn rule(
    ir: &Ir,
    route: &Key,
    r: usize,
    rule: &RouteRule,
    backends: &mut backends::Backends<'_>,
) -> t::Rule {
    let backend_refs = rule
        .backend_refs
        .iter()
        .enumerate()
        .filter_map(|(i, backend_ref)| {
            let ref_id = ir.find(&route.child(format!("rules[{r}].backendRefs[{i}]")))?;
            let (_, target) = *ir
                .targets(ref_id, |e| matches!(e, Edge::Backend { .. }))
                .first()?;
            backends.reference(target, backend_ref)
        })
        .collect();
    let millis = |text: &Option<String>| {
        text.as_deref()
            .and_then(parse_duration)
            .map(|d| d.as_millis() as u64)
    };
    let timeouts = rule.timeouts.as_ref();
    t::Rule {
        name: rule.name.clone(),
        backends: backend_refs,
        request_timeout_ms: timeouts
            .and_then(|t| millis(&t.request))
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS),
        backend_request_timeout_ms: timeouts.and_then(|t| millis(&t.backend_request)),
        stream_idle_timeout_ms: millis(&rule.stream_idle_timeout),
        models: models(rule),
    }
}

/// The exact model names a rule matches, for `/v1/models`.
fn models(rule: &RouteRule) -> Vec<t::Model> {
    let mut models: Vec<t::Model> = Vec::new();
    let exact = rule.matches.iter().flat_map(|m| &m.headers).filter(|h| {
        h.match_type == HeaderMatchType::Exact && h.name.eq_ignore_ascii_case(MODEL_HEADER)
    });
    for header in exact {
        if models.iter().all(|m| m.name != header.value) {
            models.push(t::Model {
                name: header.value.clone(),
                owned_by: rule
                    .models_owned_by
                    .clone()
                    .unwrap_or_else(|| DEFAULT_MODEL_OWNER.to_owned()),
                created: rule.models_created_at.as_deref().and_then(parse_rfc3339),
            });
        }
    }
    models
}

/// One match entry per match of the rule; a rule without matches takes every request.
fn entries(route: usize, rule_index: usize, rule: &RouteRule) -> Vec<t::MatchEntry> {
    if rule.matches.is_empty() {
        return vec![t::MatchEntry {
            route,
            rule: rule_index,
            headers: Vec::new(),
        }];
    }
    rule.matches
        .iter()
        .map(|m| t::MatchEntry {
            route,
            rule: rule_index,
            headers: m
                .headers
                .iter()
                .map(|h| t::HeaderMatch {
                    name: h.name.to_ascii_lowercase(),
                    kind: match h.match_type {
                        HeaderMatchType::Exact => t::MatchKind::Exact,
                        HeaderMatchType::RegularExpression => t::MatchKind::RegularExpression,
                    },
                    value: h.value.clone(),
                })
                .collect(),
        })
        .collect()
}

pub(crate) fn costs(costs: &[LlmRequestCost]) -> Vec<t::RequestCost> {
    costs
        .iter()
        .map(|c| t::RequestCost {
            metadata_key: c.metadata_key.clone(),
            kind: c.cost_type.as_str().to_owned(),
            cel: c.cel.clone(),
        })
        .collect()
}

fn quotas(ir: &Ir, backend_index: &HashMap<NodeId, usize>) -> Vec<t::Quota> {
    ir.objects(Kind::QuotaPolicy)
        .filter_map(|(id, object)| {
            let Some(Spec::QuotaPolicy(spec)) = &object.spec else {
                return None;
            };
            let targets: Vec<usize> = ir
                .targets(id, |e| e == Edge::Targets)
                .iter()
                .filter_map(|(_, b)| backend_index.get(b).copied())
                .collect();
            if targets.is_empty() {
                return None;
            }
            Some(backends::quota(object, targets, spec))
        })
        .collect()
}
