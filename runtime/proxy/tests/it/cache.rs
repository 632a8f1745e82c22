//! Response caches (issue #17), over real loopback: `testdata/runtime/cache.yaml` in front of
//! a recording upstream, which tells whether a request reached a backend; the Redis store with
//! a real `redis-server` shared by two gateways.

use crate::harness::{Reply, compile, send};
use aigw_proxy::{Config, Runtime};
use aigw_testkit::MockUpstream;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const CASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/runtime/cache.yaml"
);

struct Gateway {
    runtime: Runtime,
    client: Client<HttpConnector, Full<Bytes>>,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Gateway {
    async fn start(upstream: &MockUpstream, config: Config) -> Self {
        let manifests = std::fs::read_to_string(CASE)
            .expect("the cache case")
            .replace("65001", &upstream.port().to_string());
        let (snapshot, secrets) = compile(&manifests);
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("access.log");
        let config = Config {
            access_log: Some(aigw_proxy::access_log::Target::File(log.clone())),
            ..config
        };
        let runtime = Runtime::start(config, snapshot, &secrets)
            .await
            .expect("the runtime starts");
        Gateway {
            runtime,
            client: Client::builder(TokioExecutor::new()).build_http(),
            log,
            _dir: dir,
        }
    }

    async fn post(&self, body: &str, key: &str, extra: &[(&str, &str)]) -> Reply {
        let bearer = format!("Bearer {key}");
        let mut headers = vec![
            ("content-type", "application/json"),
            ("authorization", bearer.as_str()),
        ];
        headers.extend_from_slice(extra);
        let url = format!(
            "http://{}/v1/chat/completions",
            self.runtime.addr(8080).expect("port")
        );
        send(
            &self.client,
            "POST",
            &url,
            Bytes::from(body.to_owned()),
            &headers,
        )
        .await
    }

    async fn metrics(&self) -> String {
        let url = format!(
            "http://{}/metrics",
            self.runtime.admin_addr().expect("admin")
        );
        send(&self.client, "GET", &url, Bytes::new(), &[])
            .await
            .text()
            .to_owned()
    }

    /// The access log's lines so far (the writer flushes within a moment).
    async fn log_lines(&self) -> Vec<Value> {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

fn cold(model: &str, text: &str) -> String {
    json!({"model": model, "temperature": 0, "messages": [{"role": "user", "content": text}]})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_request_is_answered_from_the_cache_until_it_expires() {
    let upstream = MockUpstream::start("a").await.expect("upstream");
    let g = Gateway::start(&upstream, Config::loopback()).await;
    let body = cold("gpt-a", "What is 2+2?");

    let miss = g.post(&body, "sk-team-a", &[]).await;
    assert_eq!(miss.status, 200, "{}", miss.text());
    assert_eq!(miss.header("x-aigw-cache"), Some("miss"));
    assert_eq!(upstream.count(), 1);

    // The same request, its keys in another order and spaced otherwise.
    let reordered = r#"{ "messages": [ {"content": "What is 2+2?", "role": "user"} ], "temperature": 0, "model": "gpt-a" }"#;
    let hit = g.post(reordered, "sk-team-a", &[]).await;
    assert_eq!(hit.status, 200, "{}", hit.text());
    assert_eq!(hit.header("x-aigw-cache"), Some("hit"));
    assert_eq!(hit.body, miss.body, "the kept answer, byte for byte");
    assert_eq!(hit.header("content-type"), Some("application/json"));
    assert_eq!(upstream.count(), 1, "a hit calls no backend");

    // Another question, another caller (each caller's answers are its own), a sampling request.
    let other = g
        .post(&cold("gpt-a", "What is 3+3?"), "sk-team-a", &[])
        .await;
    assert_eq!(other.header("x-aigw-cache"), Some("miss"));
    let team_b = g.post(&body, "sk-team-b", &[]).await;
    assert_eq!(team_b.header("x-aigw-cache"), Some("miss"));
    let warm = json!({"model": "gpt-a", "temperature": 0.8, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    for _ in 0..2 {
        let reply = g.post(&warm, "sk-team-a", &[]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("x-aigw-cache"),
            None,
            "a sampling request is not kept"
        );
    }
    assert_eq!(upstream.count(), 5);

    // The bypass header: neither read nor written.
    let bypass = g
        .post(&body, "sk-team-a", &[("x-aigw-cache-bypass", "1")])
        .await;
    assert_eq!(bypass.header("x-aigw-cache"), Some("bypass"));
    assert_eq!(upstream.count(), 6);
    assert_eq!(
        g.post(&body, "sk-team-a", &[("x-aigw-cache-bypass", "false")])
            .await
            .header("x-aigw-cache"),
        Some("hit")
    );

    // An unauthenticated caller never reaches the cache.
    assert_eq!(g.post(&body, "sk-nobody", &[]).await.status, 401);

    // Kept 2 s.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        g.post(&body, "sk-team-a", &[]).await.header("x-aigw-cache"),
        Some("miss")
    );

    // The log says which answers came from the cache, with the usage they carried; the
    // metrics count lookups.
    let lines = g.log_lines().await;
    let hits: Vec<&Value> = lines.iter().filter(|l| l["cache"] == "hit").collect();
    assert_eq!(hits.len(), 2, "{lines:?}");
    assert!(
        hits[0]["tokens"]["input"].as_u64().is_some_and(|n| n > 0),
        "{:?}",
        hits[0]
    );
    assert_eq!(hits[0]["backend"], Value::Null);
    assert_eq!(hits[0]["caller"], "team-a");
    let metrics = g.metrics().await;
    assert!(
        metrics.contains(r#"aigw_cache_lookups_total{policy="default/answers",result="hit"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"aigw_cache_lookups_total{policy="default/answers",result="bypass"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_is_kept_as_a_stream() {
    let upstream = MockUpstream::start("a").await.expect("upstream");
    let g = Gateway::start(&upstream, Config::loopback()).await;
    let stream = json!({"model": "gpt-a", "temperature": 0, "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Tell me a story"}]})
    .to_string();
    let miss = g.post(&stream, "sk-team-a", &[]).await;
    assert_eq!(miss.status, 200, "{}", miss.text());
    assert_eq!(miss.header("x-aigw-cache"), Some("miss"));
    assert!(miss.text().ends_with("data: [DONE]\n\n"), "{}", miss.text());
    let hit = g.post(&stream, "sk-team-a", &[]).await;
    assert_eq!(hit.header("x-aigw-cache"), Some("hit"));
    assert!(
        hit.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream")),
        "{:?}",
        hit.headers
    );
    assert_eq!(hit.body, miss.body, "the same events");
    assert_eq!(upstream.count(), 1);
    // The same question asked whole is another entry.
    let whole = g
        .post(&cold("gpt-a", "Tell me a story"), "sk-team-a", &[])
        .await;
    assert_eq!(whole.header("x-aigw-cache"), Some("miss"));
    assert!(whole.json()["choices"].is_array());
    let lines = g.log_lines().await;
    let hit_line = lines
        .iter()
        .find(|l| l["cache"] == "hit")
        .expect("a hit line");
    assert!(
        hit_line["tokens"]["output"].as_u64().is_some_and(|n| n > 0),
        "{hit_line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_larger_than_an_entry_may_be_is_not_kept() {
    let upstream = MockUpstream::start("a").await.expect("upstream");
    let g = Gateway::start(&upstream, Config::loopback()).await;
    let body = cold("tiny-model", "hi");
    for _ in 0..2 {
        let reply = g.post(&body, "sk-team-a", &[]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-aigw-cache"), Some("miss"));
    }
    assert_eq!(upstream.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_share_answers_through_redis() {
    let Some(redis) = crate::quota::RedisServer::start().await else {
        return;
    };
    let upstream = MockUpstream::start("a").await.expect("upstream");
    let config = || Config {
        quota_redis: Some(redis.url()),
        ..Config::loopback()
    };
    let one = Gateway::start(&upstream, config()).await;
    let two = Gateway::start(&upstream, config()).await;
    // Shared between callers, and sampling requests too (nonDeterministic).
    let body =
        json!({"model": "faq-model", "messages": [{"role": "user", "content": "opening hours?"}]})
            .to_string();
    assert_eq!(
        one.post(&body, "sk-team-a", &[])
            .await
            .header("x-aigw-cache"),
        Some("miss")
    );
    // The answer is written to Redis without holding the client: wait for it to land.
    let mut hit = None;
    for _ in 0..50 {
        let reply = two.post(&body, "sk-team-b", &[]).await;
        if reply.header("x-aigw-cache") == Some("hit") {
            hit = Some(reply);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let hit = hit.expect("the other gateway answers from Redis");
    assert_eq!(hit.status, 200);
    assert!(hit.json()["choices"].is_array(), "{}", hit.text());
    let calls = upstream.count();
    assert_eq!(
        two.post(&body, "sk-team-b", &[("x-fresh", "yes")])
            .await
            .header("x-aigw-cache"),
        Some("bypass")
    );
    assert_eq!(upstream.count(), calls + 1);

    // Redis gone: a miss, served by the backend, never an error.
    drop(redis);
    let reply = one.post(&body, "sk-team-a", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-aigw-cache"), Some("miss"));
}
