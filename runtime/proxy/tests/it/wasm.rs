//! WASM extensions (issue #17), over real loopback: `testdata/runtime/wasm.yaml` with the
//! proxy-wasm modules of `testdata/wasm` in front of a recording upstream. With the `wasm`
//! feature the modules run; without it, a route that needs one answers 501 and the others
//! serve.

use crate::harness::{Reply, chat_body, compile, send};
use aigw_proxy::{Config, Runtime};
use aigw_testkit::MockUpstream;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");

fn manifests(upstream: u16) -> String {
    let dir = std::fs::canonicalize(format!("{ROOT}/wasm")).expect("testdata/wasm");
    std::fs::read_to_string(format!("{ROOT}/runtime/wasm.yaml"))
        .expect("the WASM case")
        .replace("WASM_DIR", dir.to_str().expect("utf-8 path"))
        .replace("65001", &upstream.to_string())
}

struct Gateway {
    runtime: Runtime,
    upstream: MockUpstream,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Gateway {
    async fn start() -> Self {
        let upstream = MockUpstream::start("a").await.expect("upstream");
        let (snapshot, secrets) = compile(&manifests(upstream.port()));
        let runtime = Runtime::start(Config::loopback(), snapshot, &secrets)
            .await
            .expect("the runtime starts");
        Gateway {
            runtime,
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn chat(&self, model: &str, headers: &[(&str, &str)]) -> Reply {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        let url = format!(
            "http://{}/v1/chat/completions",
            self.runtime.addr(8080).expect("port")
        );
        send(
            &self.client,
            "POST",
            &url,
            Bytes::from(chat_body(model).to_string()),
            &all,
        )
        .await
    }

    #[cfg(feature = "wasm")]
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let url = format!("http://{}{path}", self.runtime.addr(8080).expect("port"));
        send(&self.client, "GET", &url, Bytes::new(), headers).await
    }
}

#[cfg(feature = "wasm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_rewrites_headers_both_ways() {
    let g = Gateway::start().await;
    let reply = g
        .chat("gpt-a", &[("x-user", "alice"), ("x-secret", "hunter2")])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = g.upstream.last().expect("the upstream was called");
    assert_eq!(seen.header("x-plugin-config"), Some(r#"{"tag":"blue"}"#));
    assert_eq!(seen.header("x-seen-user"), Some("alice"));
    assert_eq!(seen.header("x-secret"), None, "removed by the module");
    assert_eq!(
        reply.header("x-wasm"),
        Some("seen"),
        "the response phase ran"
    );

    // The Gateway's policy on the plain route (the chat route's own replaces it there).
    let docs = g.get("/docs/intro", &[("x-user", "bob")]).await;
    assert_eq!(docs.status, 200, "{}", docs.text());
    let seen = g.upstream.last().expect("the upstream was called");
    assert_eq!(seen.header("x-plugin-config"), Some(r#"{"edge":true}"#));
    assert_eq!(seen.header("x-seen-user"), Some("bob"));
    assert_eq!(docs.header("x-wasm"), Some("seen"));
}

#[cfg(feature = "wasm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_answers_a_request_itself() {
    let g = Gateway::start().await;
    let blocked = g.chat("gpt-a", &[("x-block", "1")]).await;
    assert_eq!(blocked.status, 403);
    assert_eq!(blocked.text(), "blocked by policy");
    assert_eq!(blocked.header("content-type"), Some("text/plain"));
    assert_eq!(g.upstream.count(), 0, "the request went no further");
    assert_eq!(g.chat("gpt-a", &[]).await.status, 200);
}

#[cfg(feature = "wasm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_never_returns_is_stopped_by_its_fuel() {
    let g = Gateway::start().await;
    let started = std::time::Instant::now();
    let stopped = g.chat("spin-model", &[]).await;
    assert_eq!(stopped.status, 500, "{}", stopped.text());
    let message = stopped.error_message();
    assert!(
        message.contains("`spinner`") && message.contains("ran out of fuel"),
        "{message}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(g.upstream.count(), 0);
    // failOpen: the request goes on as it was.
    let through = g.chat("spin-open-model", &[]).await;
    assert_eq!(through.status, 200, "{}", through.text());
    assert_eq!(g.upstream.count(), 1);
    // The gateway still serves.
    assert_eq!(g.chat("gpt-a", &[]).await.status, 200);
}

#[cfg(feature = "wasm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_whose_digest_differs_is_not_loaded() {
    let upstream = MockUpstream::start("a").await.expect("upstream");
    let wrong = "ab".repeat(32);
    let text = manifests(upstream.port()).replacen(
        "          url: ",
        &format!("          sha256: {wrong}\n          url: "),
        1,
    );
    let (snapshot, secrets) = compile(&text);
    let Err(error) = Runtime::start(Config::loopback(), snapshot, &secrets).await else {
        panic!("the table is refused");
    };
    let text = error.to_string();
    assert!(text.contains("SHA-256") && text.contains(&wrong), "{text}");
}

#[cfg(not(feature = "wasm"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wasm_support_a_route_that_needs_it_answers_501() {
    let g = Gateway::start().await;
    let reply = g.chat("gpt-a", &[]).await;
    assert_eq!(reply.status, 501, "{}", reply.text());
    assert!(
        reply.error_message().contains("default/chat-plugins"),
        "{}",
        reply.text()
    );
    assert_eq!(g.upstream.count(), 0, "never sent without its extension");
}
