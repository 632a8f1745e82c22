//! Plain HTTPRoutes into the table: the routes attached to the table's Gateways, their backends
//! (Envoy Gateway Backends with their endpoints and TLS, or Services by their cluster DNS name)
//! and their matches in Gateway API precedence order.
//!
//! Decisions:
//! - precedence (Gateway API, HTTPRoute `matches`): an exact path first, then a regular
//!   expression, then the longest path prefix; then a method match, then the most header
//!   matches, then the most query parameter matches; ties keep route name and rule order;
//! - a rule with no matches matches everything (a `/` prefix), as Gateway API defaults it;
//! - a Service backend is addressed as `<name>.<namespace>.svc.cluster.local:<port>`, which
//!   resolves inside a cluster; on one machine, use an Envoy Gateway Backend;
//! - a backendRef of any other kind (an InferencePool, say) gets no endpoints, so requests to it
//!   answer 500 as Gateway API requires of invalid backends.

use aigw_ir::{Ir, Key, NodeId};
use aigw_syntax::model::{
    BackendObjectReference, HeaderMatchType, HeaderModifier, HttpRouteMatch, HttpRouteRule,
    PathMatchType, PathModifier, PathModifierType, RedirectScheme,
};
use aigw_syntax::values::parse_duration;
use aigw_syntax::{Kind, Object, Spec};
use aigw_table as t;
use std::collections::HashMap;

const ENVOY_GATEWAY_GROUP: &str = "gateway.envoyproxy.io";

/// The plain routes and their match order.
pub(crate) fn routes(
    ir: &Ir,
    gateway_index: &HashMap<NodeId, usize>,
    policies: &crate::callers::Index,
) -> (Vec<t::HttpRoute>, Vec<t::HttpMatchEntry>) {
    let mut routes = Vec::new();
    let mut matches = Vec::new();
    for (id, object) in ir.objects(Kind::HTTPRoute) {
        let Some(Spec::HTTPRoute(spec)) = &object.spec else {
            continue;
        };
        let parents = crate::parents(ir, id, object, &spec.parent_refs, gateway_index);
        if parents.is_empty() {
            continue;
        }
        let route = routes.len();
        for (r, rule) in spec.rules.iter().enumerate() {
            if rule.matches.is_empty() {
                matches.push(entry(route, r, &HttpRouteMatch::default()));
            }
            matches.extend(rule.matches.iter().map(|m| entry(route, r, m)));
        }
        routes.push(t::HttpRoute {
            name: crate::name(object),
            parents,
            hostnames: spec.hostnames.clone(),
            rules: spec.rules.iter().map(|r| rule(ir, object, r)).collect(),
            policies: t::CallerPolicies {
                access: None,
                guard: None,
                ..policies.of(ir, id)
            },
        });
    }
    // Stable: ties keep route (sorted by name), rule and match order.
    matches.sort_by_key(precedence);
    (routes, matches)
}

/// Smaller sorts first.
fn precedence(
    entry: &t::HttpMatchEntry,
) -> (
    u8,
    std::cmp::Reverse<usize>,
    bool,
    std::cmp::Reverse<usize>,
    std::cmp::Reverse<usize>,
) {
    let (class, length) = match &entry.path {
        Some(t::PathMatch {
            kind: t::PathKind::Exact,
            value,
        }) => (0, value.len()),
        Some(t::PathMatch {
            kind: t::PathKind::RegularExpression,
            value,
        }) => (1, value.len()),
        Some(t::PathMatch {
            kind: t::PathKind::PathPrefix,
            value,
        }) => (2, value.len()),
        None => (2, 1),
    };
    (
        class,
        std::cmp::Reverse(length),
        entry.method.is_none(),
        std::cmp::Reverse(entry.headers.len()),
        std::cmp::Reverse(entry.query_params.len()),
    )
}

fn entry(route: usize, rule: usize, m: &HttpRouteMatch) -> t::HttpMatchEntry {
    let value = |name: &str, kind: HeaderMatchType, value: &str| t::HeaderMatch {
        name: name.to_owned(),
        kind: match kind {
            HeaderMatchType::Exact => t::MatchKind::Exact,
            HeaderMatchType::RegularExpression => t::MatchKind::RegularExpression,
        },
        value: value.to_owned(),
    };
    t::HttpMatchEntry {
        route,
        rule,
        path: Some(match &m.path {
            Some(path) => t::PathMatch {
                kind: match path.match_type {
                    PathMatchType::Exact => t::PathKind::Exact,
                    PathMatchType::PathPrefix => t::PathKind::PathPrefix,
                    PathMatchType::RegularExpression => t::PathKind::RegularExpression,
                },
                value: path.value.clone(),
            },
            None => t::PathMatch {
                kind: t::PathKind::PathPrefix,
                value: "/".to_owned(),
            },
        }),
        method: m.method.map(|m| m.as_str().to_owned()),
        headers: m
            .headers
            .iter()
            .map(|h| value(&h.name.to_ascii_lowercase(), h.match_type, &h.value))
            .collect(),
        query_params: m
            .query_params
            .iter()
            .map(|q| value(&q.name, q.match_type, &q.value))
            .collect(),
    }
}

fn rule(ir: &Ir, route: &Object, rule: &HttpRouteRule) -> t::HttpRule {
    t::HttpRule {
        backends: rule
            .backend_refs
            .iter()
            .map(|b| {
                let weight = u32::try_from(b.weight.unwrap_or(1)).unwrap_or(0);
                backend(ir, route, &b.to_object_reference(), weight)
            })
            .collect(),
        request_timeout_ms: rule
            .timeouts
            .as_ref()
            .and_then(|t| t.get("request"))
            .and_then(|v| v.as_str())
            .and_then(parse_duration)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        filters: filters(ir, route, rule),
    }
}

/// A rule's filters as the table carries them (those aigw cannot apply are compile errors).
fn filters(ir: &Ir, route: &Object, rule: &HttpRouteRule) -> t::HttpFilters {
    let prefixes: Vec<String> = rule
        .matches
        .iter()
        .filter_map(|m| m.path.as_ref())
        .filter(|p| p.match_type == PathMatchType::PathPrefix)
        .map(|p| p.value.clone())
        .collect();
    let edits = |m: &HeaderModifier| t::HeaderEdits {
        set: m
            .set
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
        add: m
            .add
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
        remove: m.remove.clone(),
    };
    let path = |p: &PathModifier| t::PathRewrite {
        full: p.replace_full_path.clone(),
        prefix: p.replace_prefix_match.clone(),
        prefixes: if p.modifier_type == PathModifierType::ReplacePrefixMatch {
            prefixes.clone()
        } else {
            Vec::new()
        },
    };
    let mut out = t::HttpFilters::default();
    for filter in &rule.filters {
        if let Some(m) = &filter.request_header_modifier {
            out.request_headers = Some(edits(m));
        }
        if let Some(m) = &filter.response_header_modifier {
            out.response_headers = Some(edits(m));
        }
        if let Some(rewrite) = &filter.url_rewrite {
            out.rewrite_host.clone_from(&rewrite.hostname);
            out.rewrite_path = rewrite.path.as_ref().map(path);
        }
        if let Some(mirror) = &filter.request_mirror {
            let (numerator, denominator) = match (mirror.percent, mirror.fraction) {
                (Some(percent), _) => (percent, 100),
                (None, Some(f)) => (f.numerator, f.denominator),
                (None, None) => (1, 1),
            };
            out.mirrors.push(t::Mirror {
                backend: backend(ir, route, &mirror.backend_ref, 1),
                numerator: u32::try_from(numerator).unwrap_or(0),
                denominator: u32::try_from(denominator).unwrap_or(1).max(1),
            });
        }
        if let Some(redirect) = &filter.request_redirect {
            out.redirect = Some(t::Redirect {
                scheme: redirect.scheme.map(|s| match s {
                    RedirectScheme::Http => "http".to_owned(),
                    RedirectScheme::Https => "https".to_owned(),
                }),
                hostname: redirect.hostname.clone(),
                port: redirect.port.and_then(|p| u16::try_from(p).ok()),
                path: redirect.path.as_ref().map(path),
                status: redirect.status_code.code(),
            });
        }
    }
    out
}

pub(crate) fn backend(
    ir: &Ir,
    route: &Object,
    reference: &BackendObjectReference,
    weight: u32,
) -> t::ProxyBackend {
    let namespace = reference.namespace.as_deref().unwrap_or(&route.namespace);
    let name = format!("{namespace}/{}", reference.name);
    let port = reference.port.and_then(|p| u16::try_from(p).ok());
    let (endpoints, tls) = match (reference.group.as_str(), reference.kind.as_str()) {
        (ENVOY_GATEWAY_GROUP, "Backend") => {
            let id = ir.find(&Key::object(Kind::Backend, namespace, &reference.name));
            match id.and_then(|id| ir.object(id)) {
                Some(upstream) => (
                    crate::backends::endpoints(upstream),
                    crate::backends::tls(ir, id),
                ),
                None => (Vec::new(), None),
            }
        }
        ("", "Service") => (
            port.map(|port| t::Endpoint::Fqdn {
                hostname: format!("{}.{namespace}.svc.cluster.local", reference.name),
                port,
            })
            .into_iter()
            .collect(),
            None,
        ),
        _ => (Vec::new(), None),
    };
    t::ProxyBackend {
        name,
        weight,
        endpoints,
        tls,
    }
}
