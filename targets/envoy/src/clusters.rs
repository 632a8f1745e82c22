//! Clusters: the aigw runtime's external-processing cluster, and one cluster per rule whose
//! localities are the rule's backend references (weight and priority each), with the upstream
//! ext_proc chain the reference runs before every backend call, and TLS per backend chosen by
//! endpoint metadata (`transport_socket_matches`), since one rule may mix TLS and plain backends.

use crate::{EXTPROC_CLUSTER, Options, cluster_name, duration, ext_proc};
use aigw_table::{Endpoint, Table, Tls};
use serde_json::{Value, json};

/// The gRPC (HTTP/2) cluster of the aigw runtime.
pub(crate) fn extproc(options: &Options) -> Value {
    // `unix:PATH`: the processor listens on a Unix socket.
    let address = match options.extproc_host.strip_prefix("unix:") {
        Some(path) => json!({"pipe": {"path": path}}),
        None => json!({"socket_address": {
            "address": options.extproc_host,
            "port_value": options.extproc_port,
        }}),
    };
    json!({
        "name": EXTPROC_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "5s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            },
        },
        "load_assignment": {
            "cluster_name": EXTPROC_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    })
}

/// The cluster of `routes[r].rules[i]`, or `None` when no reference carries weight.
pub(crate) fn rule_cluster(table: &Table, r: usize, i: usize, options: &Options) -> Option<Value> {
    let route = &table.routes[r];
    let rule = &route.rules[i];
    let name = cluster_name(route, i);
    let refs: Vec<_> = rule.backends.iter().filter(|b| b.weight > 0).collect();
    if refs.is_empty() {
        return None;
    }
    let mut dns = false;
    let mut localities = Vec::new();
    let mut socket_matches: Vec<Value> = Vec::new();
    for backend_ref in &refs {
        let backend = &table.backends[backend_ref.backend];
        let endpoints: Vec<Value> = backend
            .endpoints
            .iter()
            .map(|e| {
                let (address, hostname) = match e {
                    Endpoint::Fqdn { hostname, port } => {
                        dns = true;
                        (
                            json!({"socket_address": {"address": hostname, "port_value": port}}),
                            Some(hostname),
                        )
                    }
                    Endpoint::Ip { address, port } => (
                        json!({"socket_address": {"address": address, "port_value": port}}),
                        None,
                    ),
                    Endpoint::Unix { path } => (json!({"pipe": {"path": path}}), None),
                };
                let mut endpoint = json!({"address": address});
                if let Some(hostname) = hostname {
                    endpoint["hostname"] = json!(hostname);
                }
                json!({
                    "endpoint": endpoint,
                    "metadata": {"filter_metadata": {
                        "aigateway.envoy.io": {"per_route_rule_backend_name": backend.name},
                        "envoy.transport_socket_match": {"backend": backend.name},
                    }},
                })
            })
            .collect();
        if endpoints.is_empty() {
            continue;
        }
        localities.push(json!({
            "locality": {"sub_zone": backend.name},
            "priority": backend_ref.priority,
            "load_balancing_weight": backend_ref.weight,
            "lb_endpoints": endpoints,
        }));
        if let Some(tls) = &backend.tls
            && !socket_matches
                .iter()
                .any(|m| m["name"] == json!(backend.name))
        {
            socket_matches.push(json!({
                "name": backend.name,
                "match": {"backend": backend.name},
                "transport_socket": upstream_tls(tls, options),
            }));
        }
    }
    if localities.is_empty() {
        return None;
    }
    // Envoy wants priorities from 0 without gaps: renumber them in order.
    let mut levels: Vec<u64> = localities
        .iter()
        .filter_map(|l| l["priority"].as_u64())
        .collect();
    levels.sort_unstable();
    levels.dedup();
    for locality in &mut localities {
        let level = locality["priority"]
            .as_u64()
            .and_then(|p| levels.iter().position(|l| *l == p))
            .unwrap_or(0);
        locality["priority"] = json!(level);
    }
    let mut cluster = json!({
        "name": name,
        "type": if dns { "STRICT_DNS" } else { "STATIC" },
        "connect_timeout": duration(10_000),
        "common_lb_config": {"locality_weighted_lb_config": {}},
        "typed_extension_protocol_options": upstream_options(table.sole_endpoint(rule).is_none()),
        "load_assignment": {"cluster_name": name, "endpoints": localities},
    });
    if dns {
        cluster["dns_lookup_family"] = json!("V4_PREFERRED");
    }
    if levels.len() > 1 {
        cluster["outlier_detection"] = json!({"consecutive_5xx": 1, "interval": "1s", "base_ejection_time": "2s", "max_ejection_percent": 100});
    }
    if !socket_matches.is_empty() {
        cluster["transport_socket_matches"] = Value::Array(socket_matches);
    }
    Some(cluster)
}

/// HTTP/1.1 upstream; with `processed`, the reference's upstream filter chain: ext_proc on
/// request headers (it rewrites path, headers and body for the backend), `content-length`
/// restored, codec last. A rule with one endpoint ([`Table::sole_endpoint`]) has its request
/// prepared in the router phase and needs none of it.
fn upstream_options(processed: bool) -> Value {
    if !processed {
        return json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http_protocol_options": {}},
            },
        });
    }
    let upstream_ext_proc = ext_proc(
        ["SEND", "NONE", "SKIP", "NONE"],
        &[
            "xds.upstream_host_metadata.filter_metadata['aigateway.envoy.io']['per_route_rule_backend_name']",
        ],
    );
    json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http_protocol_options": {}},
            "http_filters": [
                {"name": "upstream_extproc", "typed_config": upstream_ext_proc},
                {
                    "name": "envoy.filters.http.header_mutation",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                        "mutations": {"request_mutations": [{"append": {
                            "append_action": "ADD_IF_ABSENT",
                            "header": {"key": "content-length", "value": "%DYNAMIC_METADATA(io.envoy.ai_gateway:content_length)%"},
                        }}]},
                    },
                },
                {
                    "name": "envoy.filters.http.upstream_codec",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"},
                },
            ],
        },
    })
}

/// TLS to a backend: SNI and the certificate's name from the BackendTLSPolicy, verified against
/// the system CAs or the referenced CA bundle.
fn upstream_tls(tls: &Tls, options: &Options) -> Value {
    let ca = if tls.system_cas {
        Some(options.system_ca.clone())
    } else {
        tls.ca_certificates
            .first()
            .map(|c| format!("{}/{}/{}/ca.crt", options.secrets_dir, c.namespace, c.name))
    };
    let mut context = json!({});
    if let Some(ca) = ca {
        let names: Vec<Value> = std::iter::once(&tls.hostname)
            .chain(&tls.subject_alt_names)
            .map(|n| json!({"san_type": "DNS", "matcher": {"exact": n}}))
            .collect();
        context["validation_context"] =
            json!({"trusted_ca": {"filename": ca}, "match_typed_subject_alt_names": names});
    }
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": tls.hostname,
            "common_tls_context": context,
        },
    })
}
