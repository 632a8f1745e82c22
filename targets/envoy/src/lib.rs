//! The Envoy target: an Envoy bootstrap that expresses the whole routing, with AI processing
//! wired as the reference wires it (a router-level ext_proc filter and an upstream ext_proc chain
//! in every backend cluster, both pointing at the aigw runtime's gRPC port).
//!
//! It is built from the routing table (itself a pure function of the checked graph), so Envoy
//! and the aigw data plane route by the same decisions: the same match order, hostnames,
//! weights, priorities and timeouts.
//!
//! Decisions:
//! - one Envoy listener per port; the Gateway listeners sharing a port share its routes;
//! - one virtual host per concrete or wildcard hostname any route names (routes without
//!   hostnames are in every virtual host, and alone in `*`), each ending with the reference's
//!   404 `route-not-found` response; the `Host` port is ignored (`strip_any_host_port`);
//! - one cluster per rule: each backend reference is a locality of its own (weight = the
//!   reference's weight, priority = its priority), so Gateway API weights hold whatever the
//!   number of endpoints, and failover to a higher priority is retried across priorities;
//! - certificates are files under a secrets directory in the Kubernetes-mounted layout
//!   (`<dir>/<namespace>/<name>/tls.crt`): no secret value is ever inlined.

mod clusters;

use aigw_table::{host_matches, Gateway, MatchKind, Protocol, Route, Table, NOT_FOUND_BODY};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Where the bootstrap points outside itself.
#[derive(Clone, Debug)]
pub struct Options {
    /// Root of mounted Secrets: `<dir>/<namespace>/<name>/<key>`.
    pub secrets_dir: String,
    /// The aigw runtime's external-processing address (the reference uses `127.0.0.1:1063`).
    pub extproc_host: String,
    pub extproc_port: u16,
    /// The system CA bundle, for `wellKnownCACertificates: System`.
    pub system_ca: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            secrets_dir: "/etc/aigw/secrets".to_owned(),
            extproc_host: "127.0.0.1".to_owned(),
            extproc_port: 1063,
            system_ca: "/etc/ssl/certs/ca-certificates.crt".to_owned(),
        }
    }
}

pub const EXTPROC_CLUSTER: &str = "aigw-extproc";

/// The bootstrap as a JSON value (serialize it with [`to_yaml`]).
pub fn bootstrap(table: &Table, options: &Options) -> Value {
    let mut ports: BTreeMap<u16, Vec<(usize, usize)>> = BTreeMap::new();
    for (g, gateway) in table.gateways.iter().enumerate() {
        for (l, listener) in gateway.listeners.iter().enumerate() {
            ports.entry(listener.port).or_default().push((g, l));
        }
    }
    let listeners: Vec<Value> = ports.iter().map(|(port, members)| listener(table, *port, members, options)).collect();
    let mut clusters = vec![clusters::extproc(options)];
    for (r, route) in table.routes.iter().enumerate() {
        for i in 0..route.rules.len() {
            if let Some(cluster) = clusters::rule_cluster(table, r, i, options) {
                clusters.push(cluster);
            }
        }
    }
    json!({
        "node": {"id": "aigw", "cluster": "aigw"},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    })
}

/// Renders the bootstrap as YAML.
pub fn to_yaml(bootstrap: &Value) -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(bootstrap)
}

/// An Envoy duration: whole seconds, or seconds with milliseconds.
pub(crate) fn duration(ms: u64) -> String {
    if ms % 1000 == 0 { format!("{}s", ms / 1000) } else { format!("{}.{:03}s", ms / 1000, ms % 1000) }
}

pub(crate) fn cluster_name(route: &Route, rule: usize) -> String {
    format!("{}/rule/{rule}", route.name)
}

fn attaches(route: &Route, gateways: &[Gateway], members: &[(usize, usize)]) -> bool {
    members.iter().any(|&(g, l)| route.attaches(g, &gateways[g].listeners[l]))
}

/// The ext_proc filter config both chains use, pointing at the aigw runtime: `mode` says which
/// parts of the exchange it sees, `attributes` which request attributes it is sent.
pub(crate) fn ext_proc(mode: [&str; 4], attributes: &[&str]) -> Value {
    let mut filter = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
        "allow_mode_override": true,
    });
    if !attributes.is_empty() {
        filter["request_attributes"] = json!(attributes);
    }
    filter["processing_mode"] = json!({
        "request_header_mode": mode[0],
        "request_body_mode": mode[1],
        "response_header_mode": mode[2],
        "response_body_mode": mode[3],
    });
    filter["grpc_service"] = json!({"envoy_grpc": {"cluster_name": EXTPROC_CLUSTER}, "timeout": "30s"});
    filter["message_timeout"] = json!("60s");
    filter["metadata_options"] = json!({"receiving_namespaces": {"untyped": ["io.envoy.ai_gateway"]}});
    filter
}

fn listener(table: &Table, port: u16, members: &[(usize, usize)], options: &Options) -> Value {
    // Match entries served on this port, in match order.
    let entries: Vec<usize> =
        (0..table.matches.len()).filter(|&m| attaches(&table.routes[table.matches[m].route], &table.gateways, members)).collect();
    let mut domains: Vec<String> = Vec::new();
    for &m in &entries {
        for host in &table.routes[table.matches[m].route].hostnames {
            if !domains.contains(host) {
                domains.push(host.clone());
            }
        }
    }
    domains.sort();
    let mut virtual_hosts = Vec::new();
    for domain in &domains {
        let routes: Vec<Value> = entries
            .iter()
            .filter(|&&m| {
                let hostnames = &table.routes[table.matches[m].route].hostnames;
                hostnames.is_empty() || hostnames.iter().any(|h| host_matches(h, domain))
            })
            .map(|&m| route(table, m))
            .chain(std::iter::once(not_found()))
            .collect();
        virtual_hosts.push(json!({"name": domain, "domains": [domain], "routes": routes}));
    }
    let unscoped: Vec<Value> = entries
        .iter()
        .filter(|&&m| table.routes[table.matches[m].route].hostnames.is_empty())
        .map(|&m| route(table, m))
        .chain(std::iter::once(not_found()))
        .collect();
    virtual_hosts.push(json!({"name": "*", "domains": ["*"], "routes": unscoped}));

    let name = format!("listener-{port}");
    let hcm = json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": name,
            "strip_any_host_port": true,
            "route_config": {"name": name, "virtual_hosts": virtual_hosts},
            "http_filters": [
                {"name": "envoy.filters.http.ext_proc", "typed_config": ext_proc(["SEND", "BUFFERED", "SEND", "BUFFERED"], &[])},
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router", "suppress_envoy_headers": true},
                },
            ],
        },
    });
    let mut chain = json!({"filters": [hcm]});
    let https = members.iter().find(|&&(g, l)| table.gateways[g].listeners[l].protocol == Protocol::Https);
    if let Some(&(g, l)) = https {
        let certificates: Vec<Value> = table.gateways[g].listeners[l]
            .certificates
            .iter()
            .map(|c| {
                let base = format!("{}/{}/{}", options.secrets_dir, c.namespace, c.name);
                json!({"certificate_chain": {"filename": format!("{base}/tls.crt")}, "private_key": {"filename": format!("{base}/tls.key")}})
            })
            .collect();
        chain["transport_socket"] = json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {"alpn_protocols": ["h2", "http/1.1"], "tls_certificates": certificates},
            },
        });
    }
    json!({
        "name": name,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
        "filter_chains": [chain],
    })
}

fn route(table: &Table, m: usize) -> Value {
    let entry = &table.matches[m];
    let route = &table.routes[entry.route];
    let rule = &route.rules[entry.rule];
    let headers: Vec<Value> = entry
        .headers
        .iter()
        .map(|h| match h.kind {
            MatchKind::Exact => json!({"name": h.name, "string_match": {"exact": h.value}}),
            MatchKind::RegularExpression => json!({"name": h.name, "string_match": {"safe_regex": {"regex": h.value}}}),
        })
        .collect();
    let mut matcher = json!({"prefix": "/"});
    if !headers.is_empty() {
        matcher["headers"] = Value::Array(headers);
    }
    let name = format!("{}/rule/{}", route.name, entry.rule);
    if !rule.backends.iter().any(|b| b.weight > 0) {
        return json!({"name": name, "match": matcher, "direct_response": {"status": 503, "body": {"inline_string": "no backend available for this rule"}}});
    }
    let mut action = json!({
        "cluster": cluster_name(route, entry.rule),
        "auto_host_rewrite": true,
        "timeout": duration(rule.request_timeout_ms),
    });
    if let Some(idle) = rule.stream_idle_timeout_ms {
        action["idle_timeout"] = json!(duration(idle));
    }
    let mut levels: Vec<u32> = rule.backends.iter().filter(|b| b.weight > 0).map(|b| b.priority).collect();
    levels.sort_unstable();
    levels.dedup();
    if levels.len() > 1 {
        action["retry_policy"] = json!({
            "retry_on": "5xx,reset,connect-failure,retriable-status-codes",
            "retriable_status_codes": [429],
            "num_retries": levels.len() - 1,
            "retry_priority": {
                "name": "envoy.retry_priorities.previous_priorities",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
                    "update_frequency": 1,
                },
            },
        });
    }
    json!({"name": name, "match": matcher, "route": action})
}

fn not_found() -> Value {
    json!({
        "name": "route-not-found",
        "match": {"prefix": "/"},
        "direct_response": {"status": 404, "body": {"inline_string": NOT_FOUND_BODY}},
        "typed_per_filter_config": {
            "envoy.filters.http.ext_proc": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute",
                "disabled": true,
            },
        },
    })
}
