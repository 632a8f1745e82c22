//! WASM extensions (issue #17), over real loopback: `testdata/runtime/wasm.yaml` with the
//! proxy-wasm modules and the components of aigw's plugin world in `testdata/wasm` (WAT text)
//! in front of a recording upstream. With the `wasm` feature they run; without it, a route
//! that needs one answers 501 and the others serve.

use crate::harness::{Reply, chat_body, compile, send};
use aigw_proxy::{Config, Runtime};
use aigw_testkit::MockUpstream;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");

pub fn manifests(upstream: u16) -> String {
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
    async fn post(&self, path: &str, body: String) -> Reply {
        let url = format!("http://{}{path}", self.runtime.addr(8080).expect("port"));
        let headers = [("content-type", "application/json")];
        send(&self.client, "POST", &url, Bytes::from(body), &headers).await
    }

    #[cfg(feature = "wasm")]
    async fn ask(&self, model: &str, content: &str, stream: bool) -> Reply {
        let body = serde_json::json!({"model": model, "stream": stream,
            "messages": [{"role": "user", "content": content}]});
        self.post("/v1/chat/completions", body.to_string()).await
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

#[cfg(feature = "wasm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_of_another_world_is_not_loaded() {
    let upstream = MockUpstream::start("a").await.expect("upstream");
    let text = manifests(upstream.port()).replacen("/spin_component.wat", "/not_a_plugin.wat", 1);
    let (snapshot, secrets) = compile(&text);
    let Err(error) = Runtime::start(Config::loopback(), snapshot, &secrets).await else {
        panic!("the table is refused");
    };
    let text = error.to_string();
    assert!(
        text.contains("`spinner-component` is not an aigw plugin") && text.contains("on-request"),
        "{text}"
    );
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

#[cfg(feature = "wasm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_reads_the_body_and_answers_or_marks_the_request() {
    let g = Gateway::start().await;
    let passed = g.ask("guarded-model", "Say hi", false).await;
    assert_eq!(passed.status, 200, "{}", passed.text());
    let seen = g.upstream.last().expect("the upstream was called");
    assert_eq!(seen.header("x-plugin"), Some("component"));
    assert_eq!(seen.json()["messages"][0]["content"], "Say hi");
    assert_eq!(passed.header("x-plugin-answer"), Some("seen"));
    assert_eq!(
        passed.json()["choices"][0]["message"]["content"],
        "Hello from a"
    );
    assert_eq!(
        passed.header("content-length"),
        Some(passed.body.len().to_string().as_str()),
        "a whole answer keeps an exact length"
    );

    let refused = g
        .ask("guarded-model", "tell me the forbidden thing", false)
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(refused.error_message(), "refused by the word-guard plugin");
    assert_eq!(g.upstream.count(), 1, "the refused request went no further");

    let streamed = g.ask("guarded-model", "Say hi", true).await;
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    assert_eq!(streamed.header("x-plugin-answer"), Some("seen"));
    assert!(
        streamed.text().contains("tok2") && streamed.text().ends_with("data: [DONE]\n\n"),
        "{}",
        streamed.text()
    );

    // On a plain route the body is read whole for the plugin, and forwarded as it was.
    let upload = g.post("/upload/notes", "a plain body".to_owned()).await;
    assert_eq!(upload.status, 200, "{}", upload.text());
    let seen = g.upstream.last().expect("the upstream was called");
    assert_eq!(seen.body.as_ref(), b"a plain body");
    assert_eq!(seen.header("x-plugin"), Some("component"));
    let upload = g.post("/upload/notes", "forbidden words".to_owned()).await;
    assert_eq!(upload.status, 403, "{}", upload.text());
}

#[cfg(feature = "wasm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_sees_each_chunk_of_an_answer() {
    let g = Gateway::start().await;
    // Events apart, so that each is a chunk of its own.
    g.upstream.set_behavior(aigw_testkit::Behavior {
        interval: std::time::Duration::from_millis(50),
        ..Default::default()
    });
    let whole = g.ask("answer-guarded-model", "Say hi", false).await;
    assert_eq!(whole.status, 200, "{}", whole.text());
    assert_eq!(whole.header("x-plugin-answer"), Some("seen"));

    // The guard's word is in the third event: the stream ends there, with the refusal.
    let cut = g.ask("answer-guarded-model", "Say hi", true).await;
    assert_eq!(cut.status, 200, "the head went out with the first event");
    assert_eq!(cut.header("x-plugin-answer"), Some("seen"));
    let text = cut.text();
    assert!(text.contains("tok0") && text.contains("tok1"), "{text}");
    assert!(!text.contains("tok2") && !text.contains("[DONE]"), "{text}");
    assert!(
        text.ends_with(
            r#"{"error":{"message":"refused by the word-guard plugin","type":"plugin_refusal"}}"#
        ),
        "{text}"
    );

    // A chunk rewritten: the word masked in the second event, the others as they came.
    let masked = g.ask("redact-stream-model", "Say hi", true).await;
    assert_eq!(masked.status, 200, "{}", masked.text());
    let text = masked.text();
    assert!(
        text.contains("tok0") && text.contains("\"content\":\"**** \"") && !text.contains("tok1"),
        "{text}"
    );
    assert!(
        text.contains("tok2") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
}

#[cfg(feature = "wasm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_rewrites_the_body_but_not_its_model() {
    let g = Gateway::start().await;
    let masked = g.ask("redact-model", "my secret plan", false).await;
    assert_eq!(masked.status, 200, "{}", masked.text());
    let seen = g.upstream.last().expect("the upstream was called");
    assert_eq!(seen.json()["messages"][0]["content"], "my ****** plan");
    assert_eq!(seen.header("x-redacted"), Some("1"));
    // Nothing to mask: the body goes as it came, unmarked.
    assert_eq!(g.ask("redact-model", "my plan", false).await.status, 200);
    let seen = g.upstream.last().expect("the upstream was called");
    assert_eq!(seen.json()["messages"][0]["content"], "my plan");
    assert_eq!(seen.header("x-redacted"), None);

    // The word is in the model: routing chose by it, so the change is refused.
    let refused = g.ask("gpt-redact", "hello", false).await;
    assert_eq!(refused.status, 500, "{}", refused.text());
    let message = refused.error_message();
    assert!(
        message.contains("from `gpt-redact` to `gpt-******`"),
        "{message}"
    );
    assert_eq!(g.upstream.count(), 2);
}

#[cfg(feature = "wasm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_never_returns_is_stopped_by_its_fuel() {
    let g = Gateway::start().await;
    let started = std::time::Instant::now();
    let stopped = g.chat("spin-component-model", &[]).await;
    assert_eq!(stopped.status, 500, "{}", stopped.text());
    let message = stopped.error_message();
    assert!(
        message.contains("`spinner-component`") && message.contains("ran out of fuel"),
        "{message}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(g.upstream.count(), 0);
    assert_eq!(g.chat("guarded-model", &[]).await.status, 200);
}
