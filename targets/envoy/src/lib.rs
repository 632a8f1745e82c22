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

use aigw_table::{Gateway, MatchKind, NOT_FOUND_BODY, Protocol, Route, Table, host_matches};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Where the bootstrap points outside itself.
#[derive(Clone, Debug)]
pub struct Options {
    /// Root of mounted Secrets: `<dir>/<namespace>/<name>/<key>`.
    pub secrets_dir: String,
    /// The aigw runtime's external-processing address (the reference uses `127.0.0.1:1063`);
    /// `unix:PATH` for a Unix socket (the port is then not used).
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

/// The bootstrap of `table`: serialize it with [`to_yaml`] or [`write_yaml`].
///
/// Listeners and clusters are made one at a time while they are written: a table of ten
/// thousand routes has ten thousand clusters, and holding them all as one JSON tree cost more
/// memory than the whole checked graph.
pub fn bootstrap<'a>(table: &'a Table, options: &'a Options) -> Bootstrap<'a> {
    Bootstrap { table, options }
}

/// An Envoy bootstrap, made while it is serialized.
#[derive(Clone, Copy, Debug)]
pub struct Bootstrap<'a> {
    table: &'a Table,
    options: &'a Options,
}

impl Serialize for Bootstrap<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Bootstrap { table, options } = *self;
        let mut ports: BTreeMap<u16, Vec<(usize, usize)>> = BTreeMap::new();
        for (g, gateway) in table.gateways.iter().enumerate() {
            for (l, listener) in gateway.listeners.iter().enumerate() {
                ports.entry(listener.port).or_default().push((g, l));
            }
        }
        let listeners = Stream(|| {
            ports
                .iter()
                .map(|(port, members)| listener(table, *port, members, options))
        });
        let clusters = Stream(|| {
            let rules = table
                .routes
                .iter()
                .enumerate()
                .flat_map(|(r, route)| (0..route.rules.len()).map(move |i| (r, i)));
            std::iter::once(clusters::extproc(options))
                .chain(rules.filter_map(|(r, i)| clusters::rule_cluster(table, r, i, options)))
        });
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("node", &json!({"id": "aigw", "cluster": "aigw"}))?;
        map.serialize_entry(
            "static_resources",
            &StaticResources {
                listeners,
                clusters,
            },
        )?;
        map.end()
    }
}

#[derive(Serialize)]
struct StaticResources<L, C> {
    listeners: L,
    clusters: C,
}

/// A sequence whose items are made as they are serialized (and dropped right after).
struct Stream<F>(F);

impl<F, I> Serialize for Stream<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq((self.0)())
    }
}

/// Renders the bootstrap as YAML.
pub fn to_yaml(bootstrap: &Bootstrap<'_>) -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(bootstrap)
}

/// Writes the bootstrap as YAML into `out`.
pub fn write_yaml(
    bootstrap: &Bootstrap<'_>,
    out: impl std::io::Write,
) -> Result<(), serde_saphyr::ser::Error> {
    serde_saphyr::to_io_writer(&mut { out }, bootstrap)
}

/// An Envoy duration: whole seconds, or seconds with milliseconds.
pub(crate) fn duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}

pub(crate) fn cluster_name(route: &Route, rule: usize) -> String {
    format!("{}/rule/{rule}", route.name)
}

fn attaches(route: &Route, gateways: &[Gateway], members: &[(usize, usize)]) -> bool {
    members
        .iter()
        .any(|&(g, l)| route.attaches(g, &gateways[g].listeners[l]))
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
    filter["grpc_service"] =
        json!({"envoy_grpc": {"cluster_name": EXTPROC_CLUSTER}, "timeout": "30s"});
    filter["message_timeout"] = json!("60s");
    // The upstream phase sets the backend's `:authority` (what SigV4 signed), a routing header
    // Envoy lets a processor change only when asked to.
    if attributes.iter().any(|a| a.starts_with("xds.")) {
        filter["mutation_rules"] = json!({"allow_all_routing": true});
    }
    filter["metadata_options"] =
        json!({"receiving_namespaces": {"untyped": ["io.envoy.ai_gateway"]}});
    filter
}

fn listener<'a>(
    table: &'a Table,
    port: u16,
    members: &'a [(usize, usize)],
    options: &Options,
) -> Listener<'a> {
    // Match entries served on this port, in match order.
    let entries = || {
        (0..table.matches.len()).filter(|&m| {
            attaches(
                &table.routes[table.matches[m].route],
                &table.gateways,
                members,
            )
        })
    };
    let mut domains: Vec<&str> = entries()
        .flat_map(|m| {
            table.routes[table.matches[m].route]
                .hostnames
                .iter()
                .map(String::as_str)
        })
        .collect();
    domains.sort_unstable();
    domains.dedup();
    let mut virtual_hosts: Vec<VirtualHost<'a>> = domains
        .into_iter()
        .map(|d| VirtualHost {
            table,
            members,
            domain: d.to_owned(),
        })
        .collect();
    virtual_hosts.push(VirtualHost {
        table,
        members,
        domain: "*".to_owned(),
    });

    let name = format!("listener-{port}");
    let hcm = Hcm {
        name: "envoy.filters.network.http_connection_manager",
        typed_config: HcmConfig {
            kind: "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            stat_prefix: name.clone(),
            strip_any_host_port: true,
            access_log: access_log(table),
            route_config: RouteConfig {
                name: name.clone(),
                virtual_hosts,
            },
            http_filters: json!([
                {"name": "envoy.filters.http.ext_proc", "typed_config": ext_proc(["SEND", "BUFFERED", "SEND", "BUFFERED"], &["destination.port", "source.address"])},
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router", "suppress_envoy_headers": true},
                },
            ]),
        },
    };
    let https = members
        .iter()
        .find(|&&(g, l)| table.gateways[g].listeners[l].protocol == Protocol::Https);
    let transport_socket = https.map(|&(g, l)| {
        let certificates: Vec<Value> = table.gateways[g].listeners[l]
            .certificates
            .iter()
            .map(|c| {
                let base = format!("{}/{}/{}", options.secrets_dir, c.namespace, c.name);
                json!({"certificate_chain": {"filename": format!("{base}/tls.crt")}, "private_key": {"filename": format!("{base}/tls.key")}})
            })
            .collect();
        json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {"alpn_protocols": ["h2", "http/1.1"], "tls_certificates": certificates},
            },
        })
    });
    Listener {
        name,
        address: json!({"socket_address": {"address": "0.0.0.0", "port_value": port}}),
        per_connection_buffer_limit_bytes: BUFFER_LIMIT,
        filter_chains: [FilterChain {
            filters: [hcm],
            transport_socket,
        }],
    }
}

// The listener's frame is typed so that its routes, one per match entry per virtual host, can
// be made while they are written (`VirtualHost`), like the clusters.

#[derive(Serialize)]
struct Listener<'a> {
    name: String,
    address: Value,
    per_connection_buffer_limit_bytes: u64,
    filter_chains: [FilterChain<'a>; 1],
}

#[derive(Serialize)]
struct FilterChain<'a> {
    filters: [Hcm<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    transport_socket: Option<Value>,
}

#[derive(Serialize)]
struct Hcm<'a> {
    name: &'static str,
    typed_config: HcmConfig<'a>,
}

#[derive(Serialize)]
struct HcmConfig<'a> {
    #[serde(rename = "@type")]
    kind: &'static str,
    stat_prefix: String,
    strip_any_host_port: bool,
    access_log: Value,
    route_config: RouteConfig<'a>,
    http_filters: Value,
}

#[derive(Serialize)]
struct RouteConfig<'a> {
    name: String,
    virtual_hosts: Vec<VirtualHost<'a>>,
}

/// The virtual host of `domain` (`*`: the routes without hostnames) on the listeners `members`.
struct VirtualHost<'a> {
    table: &'a Table,
    members: &'a [(usize, usize)],
    domain: String,
}

impl Serialize for VirtualHost<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let VirtualHost {
            table,
            members,
            ref domain,
        } = *self;
        let wildcard = domain == "*";
        let serves = move |m: &usize| {
            let route = &table.routes[table.matches[*m].route];
            let hostnames = &route.hostnames;
            attaches(route, &table.gateways, members)
                && (hostnames.is_empty()
                    || (!wildcard && hostnames.iter().any(|h| host_matches(h, domain))))
        };
        let routes = Stream(|| {
            (0..table.matches.len())
                .filter(serves)
                .map(|m| route(table, m))
                .chain(std::iter::once(not_found()))
        });
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("name", domain)?;
        map.serialize_entry("domains", &[domain])?;
        map.serialize_entry("routes", &routes)?;
        map.end()
    }
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
            MatchKind::RegularExpression => {
                json!({"name": h.name, "string_match": {"safe_regex": {"regex": h.value}}})
            }
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
        "timeout": duration(rule.request_timeout_ms),
    });
    // A rule with one endpoint has its request prepared (and signed) in the router phase, for
    // that endpoint's authority; the others get theirs from the upstream phase.
    let host = table.sole_endpoint(rule).and_then(|(r, e)| {
        let tls = table
            .backends
            .get(r.backend)
            .is_some_and(|b| b.tls.is_some());
        e.host_header(tls)
    });
    match host {
        Some(host) => action["host_rewrite_literal"] = json!(host),
        None => action["auto_host_rewrite"] = json!(true),
    }
    if let Some(idle) = rule.stream_idle_timeout_ms {
        action["idle_timeout"] = json!(duration(idle));
    }
    let levels = rule.priority_levels();
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

/// How much of a request Envoy buffers for the external processor (which reads AI bodies
/// whole): the aigw data plane's own body limit, 50 MiB, as the reference's config sets.
const BUFFER_LIMIT: u64 = 50 << 20;

/// One JSON line per request on stdout: the request, and what the external processor put in
/// dynamic metadata (backend, model sent, token counts, every `llmRequestCosts` key of the
/// table).
fn access_log(table: &Table) -> Value {
    let meta = |key: &str| format!("%DYNAMIC_METADATA(io.envoy.ai_gateway:{key})%");
    let mut format = serde_json::Map::new();
    for (field, value) in [
        ("start_time", "%START_TIME%".to_owned()),
        ("method", "%REQ(:METHOD)%".to_owned()),
        ("path", "%REQ(:PATH)%".to_owned()),
        ("status", "%RESPONSE_CODE%".to_owned()),
        ("duration_ms", "%DURATION%".to_owned()),
        ("upstream_host", "%UPSTREAM_HOST%".to_owned()),
        ("route", "%ROUTE_NAME%".to_owned()),
        ("request_model", "%REQ(X-AI-EG-MODEL)%".to_owned()),
        ("backend", meta("backend_name")),
        ("model_name_override", meta("model_name_override")),
        ("input_tokens", meta("llm_input_token")),
        ("output_tokens", meta("llm_output_token")),
        ("total_tokens", meta("llm_total_token")),
    ] {
        format.insert(field.to_owned(), json!(value));
    }
    let keys = table
        .routes
        .iter()
        .flat_map(|r| &r.llm_request_costs)
        .chain(table.gateways.iter().flat_map(|g| &g.llm_request_costs))
        .map(|c| c.metadata_key.as_str());
    for key in keys {
        format.insert(format!("cost.{key}"), json!(meta(key)));
    }
    json!([{
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": {"json_format": format},
        },
    }])
}

/// The last route of every virtual host. The external processor stays on for it: every AI
/// request matches it when its headers arrive (the model header is set from the body later),
/// and per-route filter config is read then.
fn not_found() -> Value {
    json!({
        "name": "route-not-found",
        "match": {"prefix": "/"},
        "direct_response": {"status": 404, "body": {"inline_string": NOT_FOUND_BODY}},
    })
}
