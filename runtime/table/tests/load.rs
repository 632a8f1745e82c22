//! The table loader: versions, validation of every cross reference, and the lookup itself, on
//! tables written by hand (the compiler's own output is loaded by the compiler's tests).

#![expect(
    clippy::expect_used,
    reason = "the helpers fail the test that called them, with the reason"
)]

use aigw_table::{TableError, load};
use serde_json::json;

fn table() -> serde_json::Value {
    json!({
        "schema_version": "1.0",
        "gateways": [{"name": "default/gw", "listeners": [
            {"name": "http", "port": 8080, "protocol": "HTTP"},
            {"name": "admin", "port": 9090, "protocol": "HTTP", "hostname": "*.example.com"}
        ]}],
        "routes": [
            {"name": "default/a", "parents": [{"gateway": 0, "section_name": "http"}], "rules": [
                {"backends": [{"backend": 0, "weight": 1}], "request_timeout_ms": 60000,
                 "models": [{"name": "gpt-4o", "owned_by": "openai", "created": 1}]},
                {"backends": [{"backend": 0, "weight": 1}], "request_timeout_ms": 60000}
            ]},
            {"name": "default/b", "parents": [{"gateway": 0}], "hostnames": ["api.example.com"], "rules": [
                {"backends": [{"backend": 0, "weight": 1}], "request_timeout_ms": 1000}
            ]}
        ],
        "matches": [
            {"route": 0, "rule": 0, "headers": [{"name": "x-ai-eg-model", "type": "Exact", "value": "gpt-4o"}]},
            {"route": 1, "rule": 0, "headers": [{"name": "x-ai-eg-model", "type": "RegularExpression", "value": "claude-.*"}]},
            {"route": 0, "rule": 1}
        ],
        "backends": [{"name": "default/openai", "schema": {"name": "OpenAI", "prefix": "v1"},
                      "endpoints": [{"fqdn": {"hostname": "api.openai.com", "port": 443}}]}]
    })
}

fn load_value(value: &serde_json::Value) -> Result<aigw_table::Snapshot, TableError> {
    load(&serde_json::to_vec(value).expect("json"))
}

fn headers(model: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert("x-ai-eg-model", model.parse().expect("value"));
    headers
}

#[test]
fn versions_of_another_major_are_refused_and_minor_additions_are_read() {
    let mut newer = table();
    newer["schema_version"] = json!("1.7");
    newer["a_field_from_the_future"] = json!(true);
    assert!(load_value(&newer).is_ok());
    for bad in ["2.0", "0.9", "1", "one", "1.x"] {
        let mut other = table();
        other["schema_version"] = json!(bad);
        let error = load_value(&other).expect_err(bad);
        assert!(
            matches!(error, TableError::UnsupportedVersion { .. }),
            "{bad}: {error}"
        );
    }
}

#[test]
fn dangling_indices_and_bad_patterns_are_refused_with_their_place() {
    let cases = [
        (
            "/routes/0/rules/0/backends/0/backend",
            json!(7),
            "routes[0].rules[0].backends[0].backend",
        ),
        (
            "/routes/1/parents/0/gateway",
            json!(3),
            "routes[1].parents[0].gateway",
        ),
        ("/matches/2/rule", json!(5), "matches[2].rule"),
        (
            "/matches/1/headers/0/value",
            json!("claude-(("),
            "matches[1].headers[0]",
        ),
        (
            "/matches/1/headers/0/name",
            json!("bad header"),
            "matches[1].headers[0]",
        ),
    ];
    for (pointer, value, at) in cases {
        let mut broken = table();
        *broken.pointer_mut(pointer).expect(pointer) = value;
        let error = load_value(&broken).expect_err(pointer).to_string();
        assert!(error.contains(at), "{pointer}: {error}");
    }
    let mut https = table();
    https["gateways"][0]["listeners"][0]["protocol"] = json!("HTTPS");
    assert!(
        load_value(&https)
            .expect_err("https")
            .to_string()
            .contains("needs a certificate")
    );
    assert!(matches!(load(b"{not json"), Err(TableError::Json(_))));
}

#[test]
fn lookup_follows_match_order_attachment_and_hosts() {
    let snapshot = load_value(&table()).expect("valid");
    let listeners: Vec<_> = snapshot.listeners().map(|(id, _, _)| id).collect();
    let (http, admin) = (listeners[0], listeners[1]);
    let pick = |listener, host, model| {
        snapshot
            .select(listener, host, &headers(model))
            .map(|s| (s.route.name.as_str(), s.rule_index))
    };
    assert_eq!(pick(http, "anything", "gpt-4o"), Some(("default/a", 0)));
    // Route b is host-scoped; elsewhere the catch-all rule of route a takes it.
    assert_eq!(
        pick(http, "api.example.com:8080", "claude-3"),
        Some(("default/b", 0))
    );
    assert_eq!(
        pick(http, "other.example.com", "claude-3"),
        Some(("default/a", 1))
    );
    // Regexes match the whole value.
    assert_eq!(
        pick(http, "api.example.com", "xclaude-3"),
        Some(("default/a", 1))
    );
    // Route a attaches to the `http` listener only; the admin listener wants *.example.com.
    assert_eq!(pick(admin, "api.example.com", "gpt-4o"), None);
    assert_eq!(
        pick(admin, "api.example.com", "claude-3"),
        Some(("default/b", 0))
    );
    assert_eq!(pick(admin, "example.com", "claude-3"), None);
    let models: Vec<_> = snapshot
        .models(http, "x")
        .iter()
        .map(|m| (m.name.as_str(), m.owned_by.as_str(), m.created))
        .collect();
    assert_eq!(models, [("gpt-4o", "openai", Some(1))]);
}
