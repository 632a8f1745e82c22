//! Routing, backend choice, failover, credentials, mutations and error answers.

use crate::harness::{Harness, chat_body};
use aigw_proxy::Config;
use aigw_testkit::Behavior;
use bytes::Bytes;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_is_routed_to_its_backend_with_the_backends_key_and_never_the_clients() {
    let gw = Harness::start().await;
    let reply = gw
        .post(
            "/v1/chat/completions",
            chat_body("gpt-a"),
            &[
                ("authorization", "Bearer client-token"),
                ("x-api-key", "client-key"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-mock-upstream"), Some("a"));
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "Hello from a"
    );
    let seen = gw.a.last().expect("a was called");
    assert_eq!(seen.uri, "/v1/chat/completions");
    assert_eq!(seen.header("authorization"), Some("Bearer sk-a-secret"));
    assert_eq!(
        seen.header("x-api-key"),
        None,
        "the client's own key is not forwarded"
    );
    assert_eq!(seen.header("x-ai-eg-model"), Some("gpt-a"));
    assert_eq!(seen.json()["model"], "gpt-a");

    // An AzureAPIKey backend gets `api-key`, and a regular expression rule takes the model.
    let reply = gw.chat("regex-anything").await;
    assert_eq!(reply.header("x-mock-upstream"), Some("b"));
    let seen = gw.b.last().expect("b was called");
    assert_eq!(
        (seen.header("api-key"), seen.header("authorization")),
        (Some("sk-b-secret"), None)
    );
    assert_eq!(gw.cohere.count() + gw.c.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_split_traffic_in_proportion() {
    let gw = Harness::start().await;
    for _ in 0..400 {
        assert_eq!(gw.chat("weighted").await.status, 200);
    }
    // Weights 3:1 over 400 requests: a expects 300 (standard deviation 8.7); ±50 is over 5σ.
    let (a, b) = (gw.a.count(), gw.b.count());
    assert_eq!(a + b, 400);
    assert!((250..=350).contains(&a), "a got {a}, b got {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_moves_to_the_next_priority_for_every_fault() {
    let gw = Harness::start().await;
    let faults = [
        (
            "503",
            Behavior {
                status: Some(503),
                ..Behavior::default()
            },
        ),
        (
            "500",
            Behavior {
                status: Some(500),
                ..Behavior::default()
            },
        ),
        (
            "429",
            Behavior {
                status: Some(429),
                ..Behavior::default()
            },
        ),
        (
            "reset",
            Behavior {
                reset: true,
                ..Behavior::default()
            },
        ),
    ];
    for (name, fault) in faults {
        gw.a.set_behavior(fault);
        gw.a.clear();
        gw.b.clear();
        let reply = gw.chat("failover").await;
        assert_eq!(
            (reply.status, reply.header("x-mock-upstream")),
            (200, Some("b")),
            "fault {name}: {}",
            reply.text()
        );
        assert_eq!(gw.a.count(), 1, "fault {name}: the primary was tried first");
    }
    // A client error is the client's: no failover.
    gw.a.set_behavior(Behavior {
        status: Some(400),
        ..Behavior::default()
    });
    gw.b.clear();
    assert_eq!(gw.chat("failover").await.status, 400);
    assert_eq!(gw.b.count(), 0);
    // When the last priority fails too, its answer is the client's.
    gw.a.set_behavior(Behavior {
        status: Some(503),
        ..Behavior::default()
    });
    gw.b.set_behavior(Behavior {
        status: Some(502),
        body: Some("{\"error\":{\"message\":\"b is down\"}}".into()),
        ..Behavior::default()
    });
    let reply = gw.chat("failover").await;
    assert_eq!(
        (reply.status, reply.json()["error"]["message"].as_str()),
        (502, Some("b is down"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_cannot_be_connected_to_fails_over_or_is_a_502() {
    let gw = Harness::start_with(Config::loopback(), true).await;
    let reply = gw.chat("failover").await;
    assert_eq!(
        (reply.status, reply.header("x-mock-upstream")),
        (200, Some("b")),
        "{}",
        reply.text()
    );
    let reply = gw.chat("gpt-a").await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(reply.json()["error"]["type"], "upstream_error");
    assert!(
        reply.text().contains("default/a"),
        "the error names the backend: {}",
        reply.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_override_and_mutations_change_what_the_backend_receives() {
    let gw = Harness::start().await;
    assert_eq!(gw.chat("override").await.status, 200);
    let seen = gw.a.last().expect("a was called");
    assert_eq!(seen.json()["model"], "real-model");
    assert_eq!(
        seen.header("x-ai-eg-model"),
        Some("override"),
        "routing saw the client's model"
    );

    let body = json!({"model": "mutate", "messages": [], "top_p": 0.9, "temperature": 1});
    let reply = gw
        .post(
            "/v1/chat/completions",
            body,
            &[
                ("x-drop", "1"),
                ("x-keep", "2"),
                ("x-ai-eg-model", "spoofed"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = gw.a.last().expect("a was called");
    assert_eq!(
        (
            seen.header("x-team"),
            seen.header("x-drop"),
            seen.header("x-keep")
        ),
        (Some("blue"), None, Some("2"))
    );
    assert_eq!(
        seen.header("x-ai-eg-model"),
        Some("mutate"),
        "the model header comes from the body"
    );
    let sent = seen.json();
    assert_eq!(
        (sent["temperature"].as_f64(), sent.get("top_p")),
        (Some(0.5), None)
    );
    assert_eq!(sent["messages"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credential_override_header_is_used_and_stripped_or_required() {
    let gw = Harness::start().await;
    let reply = gw.chat("byok").await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert!(reply.text().contains("x-customer-key"), "{}", reply.text());
    assert_eq!(gw.c.count(), 0);
    let reply = gw
        .post(
            "/v1/chat/completions",
            chat_body("byok"),
            &[("x-customer-key", "customer-123")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = gw.c.last().expect("c was called");
    assert_eq!(
        (seen.header("authorization"), seen.header("x-customer-key")),
        (Some("Bearer customer-123"), None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_without_translation_answers_501_and_the_rest_keeps_serving() {
    let gw = Harness::start().await;
    let reply = gw.chat("untranslated").await;
    assert_eq!(reply.status, 501, "{}", reply.text());
    let message = reply.error_message();
    assert!(
        message.contains("Cohere") && message.contains("default/cohere"),
        "{message}"
    );
    assert_eq!(gw.cohere.count(), 0);
    assert_eq!(gw.chat("gpt-a").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_the_client_apis_shape() {
    let gw = Harness::start_with(
        Config {
            body_limit: 4096,
            ..Config::loopback()
        },
        false,
    )
    .await;
    let unknown = gw.post("/v1/nope", json!({"model": "gpt-a"}), &[]).await;
    assert_eq!(
        (unknown.status, unknown.json()["error"]["message"].as_str()),
        (404, Some("unsupported path: /v1/nope"))
    );
    let unrouted = gw.chat("no-such-model").await;
    assert_eq!(
        (unrouted.status, unrouted.text()),
        (404, aigw_table::NOT_FOUND_BODY)
    );
    let malformed = gw
        .send(
            "POST",
            &gw.url("/v1/chat/completions"),
            Bytes::from_static(b"{\"model\": "),
            &[],
        )
        .await;
    assert_eq!(
        (malformed.status, malformed.json()["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    let no_model = gw
        .post("/v1/chat/completions", json!({"messages": []}), &[])
        .await;
    assert_eq!(no_model.status, 400);
    assert!(no_model.text().contains("model"), "{}", no_model.text());
    let large = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "gpt-a", "pad": "x".repeat(5000)}),
            &[],
        )
        .await;
    assert_eq!(large.status, 413, "{}", large.text());
    let get = gw
        .send("GET", &gw.url("/v1/chat/completions"), Bytes::new(), &[])
        .await;
    assert_eq!(get.status, 405);
    assert_eq!(gw.a.count(), 0, "no error reached the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rule_timeout_answers_504() {
    let gw = Harness::start().await;
    gw.a.set_behavior(Behavior {
        delay: std::time::Duration::from_secs(3),
        ..Behavior::default()
    });
    let started = std::time::Instant::now();
    let reply = gw.chat("slow").await;
    assert_eq!(reply.status, 504, "{}", reply.text());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the 300 ms timeout held: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_and_other_endpoints() {
    let gw = Harness::start().await;
    let models = gw
        .send("GET", &gw.url("/v1/models"), Bytes::new(), &[])
        .await;
    assert_eq!(models.status, 200);
    let list = models.json();
    let gpt = list["data"]
        .as_array()
        .and_then(|d| d.iter().find(|m| m["id"] == "gpt-a"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        gpt,
        json!({"id": "gpt-a", "object": "model", "created": 1747958400, "owned_by": "team-a"})
    );
    let ids: Vec<&str> = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"costed")
            && ids.contains(&"failover")
            && !ids.iter().any(|i| i.starts_with("regex")),
        "{ids:?}"
    );

    let embeddings = gw
        .post(
            "/v1/embeddings",
            json!({"model": "gpt-a", "input": "hi"}),
            &[],
        )
        .await;
    assert_eq!(
        (embeddings.status, embeddings.json()["object"].as_str()),
        (200, Some("list"))
    );
    assert_eq!(
        gw.a.last().map(|r| r.uri),
        Some("/v1/embeddings".to_owned())
    );
    let completions = gw
        .post(
            "/v1/completions?x=1",
            json!({"model": "gpt-a", "prompt": "hi"}),
            &[],
        )
        .await;
    assert_eq!(completions.status, 200);
    assert_eq!(
        gw.a.last().map(|r| r.uri),
        Some("/v1/completions?x=1".to_owned())
    );

    let form = b"--xyz\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-a\r\n--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF\r\n--xyz--\r\n";
    let audio = gw
        .send(
            "POST",
            &gw.url("/v1/audio/transcriptions"),
            Bytes::from_static(form),
            &[("content-type", "multipart/form-data; boundary=xyz")],
        )
        .await;
    assert_eq!(audio.status, 200, "{}", audio.text());
    let seen = gw.a.last().expect("a got the upload");
    assert_eq!(
        (seen.uri.as_str(), seen.body.as_ref()),
        ("/v1/audio/transcriptions", &form[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_reports_health_readiness_and_metrics() {
    let gw = Harness::start().await;
    assert_eq!(gw.chat("gpt-a").await.status, 200);
    let health = gw
        .send("GET", &gw.admin_url("/health"), Bytes::new(), &[])
        .await;
    assert_eq!(health.status, 200);
    let ready = gw
        .send("GET", &gw.admin_url("/ready"), Bytes::new(), &[])
        .await;
    assert_eq!(
        (ready.status, ready.text()),
        (200, "ready: table generation 1\n")
    );
    let metrics = gw
        .send("GET", &gw.admin_url("/metrics"), Bytes::new(), &[])
        .await;
    let text = metrics.text();
    assert!(
        text.contains("aigw_requests_total{code=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("aigw_usage_tokens_total{backend=\"default/a\",kind=\"total\"} 13"),
        "{text}"
    );
    assert!(text.contains("aigw_table_generation 1"), "{text}");
}
