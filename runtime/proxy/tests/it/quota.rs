//! QuotaPolicy end to end (issue #16): `testdata/runtime/quota.yaml` served in front of test
//! upstreams. A spent budget answers 429 with `Retry-After` in the OpenAI, Anthropic and
//! Cohere shapes, after failing over to a backend with budget; per-tenant buckets count apart;
//! 32 concurrent requests overshoot the budget by at most one request (reserve, then settle);
//! two gateways share one budget through a real `redis-server`, and a Redis killed mid-run
//! gives the configured fail mode within the call timeout, never a hang.

use crate::harness::{Reply, compile};
use aigw_proxy::quota::FailMode;
use aigw_proxy::{Config, Runtime};
use aigw_testkit::{Behavior, MockUpstream};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::time::Duration;

const CASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/runtime/quota.yaml"
);
/// What the test upstream reports for a whole chat: 10 prompt and 3 completion tokens.
const PER_REQUEST: u64 = 13;

struct Gateway {
    runtime: Runtime,
    client: Client<HttpConnector, Full<Bytes>>,
}

fn manifests(mock: u16, fallback: u16) -> String {
    std::fs::read_to_string(CASE)
        .expect("the quota case")
        .replace("65051", &mock.to_string())
        .replace("65052", &fallback.to_string())
}

impl Gateway {
    async fn start(text: &str, config: Config) -> Self {
        let (snapshot, secrets) = compile(text);
        let runtime = Runtime::start(config, snapshot, &secrets)
            .await
            .expect("the runtime starts");
        Gateway {
            runtime,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn post(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
        let mut request = http::Request::post(format!(
            "http://{}{path}",
            self.runtime.addr(8080).expect("port 8080")
        ))
        .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .expect("an answer in time")
            .expect("an answer");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }

    async fn chat(&self, model: &str, headers: &[(&str, &str)]) -> Reply {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3});
        self.post("/v1/chat/completions", body, headers).await
    }
}

fn retry_after(reply: &Reply) -> u64 {
    reply
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_is_429_in_each_client_shape_after_failover() {
    let mock = MockUpstream::start("mock").await.expect("upstream");
    let fallback = MockUpstream::start("fallback").await.expect("fallback");
    let gw = Gateway::start(&manifests(mock.port(), fallback.port()), Config::loopback()).await;

    // The budget of 20 tokens an hour: the first request passes an idle bucket, the second
    // still fits under the limit (13 < 20), the third finds it spent.
    assert_eq!(gw.chat("metered", &[]).await.status, 200);
    assert_eq!(gw.chat("metered", &[]).await.status, 200);
    let spent = gw.chat("metered", &[]).await;
    assert_eq!(spent.status, 429, "{}", spent.text());
    assert!(retry_after(&spent) >= 1 && retry_after(&spent) <= 3600);
    assert_eq!(spent.json()["error"]["type"], "rate_limit_error");
    assert!(
        spent.error_message().contains("default/metered/service"),
        "{}",
        spent.text()
    );
    assert_eq!(mock.count(), 2, "the refused request was not sent");

    // A backend with no budget at all: the next priority serves.
    let served = gw.chat("spent-then-fallback", &[]).await;
    assert_eq!(served.status, 200, "{}", served.text());
    assert_eq!(fallback.count(), 1);

    // The gateway's 429 in the Anthropic and Cohere shapes.
    let anthropic = gw
        .post(
            "/anthropic/v1/messages",
            json!({"model": "spent", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        )
        .await;
    assert_eq!(anthropic.status, 429, "{}", anthropic.text());
    assert_eq!(anthropic.json()["type"], "error");
    assert_eq!(anthropic.json()["error"]["type"], "rate_limit_error");
    assert!(retry_after(&anthropic) >= 1);
    let cohere = gw
        .post(
            "/cohere/v2/rerank",
            json!({"model": "rerank-v3.5", "query": "q", "documents": ["a", "b"]}),
            &[],
        )
        .await;
    assert_eq!(cohere.status, 429, "{}", cohere.text());
    assert!(
        cohere.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("quota"))
    );
    assert!(retry_after(&cohere) >= 1);
    assert_eq!(mock.count(), 2, "nothing refused reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_has_a_bucket_and_shadow_rules_never_refuse() {
    let mock = MockUpstream::start("mock").await.expect("upstream");
    let gw = Gateway::start(
        &manifests(mock.port(), crate::harness::dead_port()),
        Config::loopback(),
    )
    .await;
    for tenant in ["acme", "globex"] {
        let first = gw.chat("tenant", &[("x-tenant", tenant)]).await;
        assert_eq!(first.status, 200, "{tenant}: {}", first.text());
        let second = gw.chat("tenant", &[("x-tenant", tenant)]).await;
        assert_eq!(second.status, 429, "{tenant}'s 13 tokens are spent");
    }
    // `audit`'s shadow rule (limit 1) is counted, not enforced: its Distinct bucket decides.
    assert_eq!(
        gw.chat("tenant", &[("x-tenant", "audit")]).await.status,
        200
    );
    // A request without the header matches no rule of the model's quota: not charged.
    for _ in 0..3 {
        assert_eq!(gw.chat("tenant", &[]).await.status, 200);
    }
}

/// 32 requests at once against a budget of 100 tokens: the reference, which charges after the
/// answer, lets all 32 through (416 tokens); here at most the budget and one request more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_overshoot_by_at_most_one_request() {
    let mock = MockUpstream::start("mock").await.expect("upstream");
    mock.set_behavior(Behavior {
        delay: Duration::from_millis(300),
        ..Behavior::default()
    });
    let gw = std::sync::Arc::new(
        Gateway::start(
            &manifests(mock.port(), crate::harness::dead_port()),
            Config::loopback(),
        )
        .await,
    );
    let (served, refused) = burst(&gw, 32).await;
    eprintln!("32 at once against 100 tokens: {served} served, {refused} refused");
    assert_eq!(served + refused, 32);
    let used = served * PER_REQUEST;
    assert!(
        used <= 100 + PER_REQUEST,
        "{served} served: {used} tokens of 100"
    );
    assert!(served >= 1, "some requests are served");
    assert_eq!(
        mock.count() as u64,
        served,
        "refused requests were not sent"
    );
    // Once the first wave settled, requests fill the rest of the budget and no more.
    let mut total = served;
    loop {
        let reply = gw.chat("shared", &[]).await;
        if reply.status != 200 {
            assert_eq!(reply.status, 429);
            break;
        }
        total += 1;
        assert!(total <= 20, "the budget never runs out");
    }
    eprintln!("then one at a time: {total} served in all");
    assert!(
        total * PER_REQUEST <= 100 + PER_REQUEST,
        "{total} served in all: {} tokens",
        total * PER_REQUEST
    );
}

/// (served, refused) of `n` concurrent chats for `shared`.
async fn burst(gw: &std::sync::Arc<Gateway>, n: usize) -> (u64, u64) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let gw = gw.clone();
        tasks.spawn(async move { gw.chat("shared", &[]).await.status });
    }
    let (mut served, mut refused) = (0, 0);
    while let Some(status) = tasks.join_next().await {
        let status = status.expect("task");
        assert!(matches!(status, 200 | 429), "unexpected status {status}");
        if status == 200 {
            served += 1;
        } else {
            refused += 1;
        }
    }
    (served, refused)
}

/// A `redis-server` on a free loopback port, stopped when dropped.
pub(crate) struct RedisServer {
    child: std::process::Child,
    port: u16,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServer {
    /// `None` (after saying SKIP) where no redis-server is installed, outside CI.
    pub(crate) async fn start() -> Option<Self> {
        let port = crate::harness::dead_port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI must run the redis tests: redis-server: {error}"
                );
                eprintln!(
                    "SKIP redis tests: redis-server does not run ({error}); .ci/run installs it"
                );
                return None;
            }
        };
        let server = RedisServer { child, port };
        let mut listening = false;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                listening = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(listening, "redis-server did not listen on {port}");
        Some(server)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

fn redis_config(url: &str, fail: FailMode) -> Config {
    let mut config = Config::loopback();
    config.quota_redis = Some(url.to_owned());
    config.quota_fail = fail;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_budget_through_redis() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let mock = MockUpstream::start("mock").await.expect("upstream");
    let text = manifests(mock.port(), crate::harness::dead_port());
    let one = Gateway::start(&text, redis_config(&redis.url(), FailMode::Open)).await;
    let two = Gateway::start(&text, redis_config(&redis.url(), FailMode::Open)).await;
    // 20 tokens an hour in all: one request on each gateway spends it (13 + 13).
    assert_eq!(one.chat("metered", &[]).await.status, 200);
    // The first settlement is sent without waiting: until it lands, the first request's
    // reservation holds the budget and the second would be refused.
    let mut second = 0;
    for _ in 0..50 {
        second = two.chat("metered", &[]).await.status;
        if second == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(second, 200, "the second gateway spends what is left");
    // Settlements are sent without waiting; give them a moment to land.
    let mut refused = (0, 0);
    for _ in 0..50 {
        refused = (
            one.chat("metered", &[]).await.status,
            two.chat("metered", &[]).await.status,
        );
        if refused == (429, 429) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        refused,
        (429, 429),
        "the budget one spent is spent for the other"
    );
    assert_eq!(mock.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_gives_the_fail_mode_without_a_hang() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let mock = MockUpstream::start("mock").await.expect("upstream");
    let text = manifests(mock.port(), crate::harness::dead_port());
    let open = Gateway::start(&text, redis_config(&redis.url(), FailMode::Open)).await;
    let closed = Gateway::start(&text, redis_config(&redis.url(), FailMode::Closed)).await;
    assert_eq!(open.chat("shared", &[]).await.status, 200);
    assert_eq!(closed.chat("shared", &[]).await.status, 200);
    drop(redis);
    let started = std::time::Instant::now();
    let through = open.chat("shared", &[]).await;
    assert_eq!(through.status, 200, "fail open: {}", through.text());
    let refused = closed.chat("shared", &[]).await;
    assert_eq!(refused.status, 503, "fail closed: {}", refused.text());
    assert!(
        refused.error_message().contains("quota store"),
        "{}",
        refused.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the store's timeout: {:?}",
        started.elapsed()
    );
}
