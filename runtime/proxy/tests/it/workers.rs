//! Per-core serving (`Config::workers`, the `--workers` flag; `aigw serve` and `aigw-proxy` run
//! one worker per core by default): each listener is served by that many threads with a
//! runtime of their own, which serve many connections at once, answer across a reload, and on
//! shutdown drain a stream in flight and then end.

use crate::harness::{Harness, chat_body, compile, manifests};
use aigw_proxy::Config;
use aigw_testkit::Behavior;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::time::Duration;

/// The names of this process's listener workers.
fn workers() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with("aigw-worker-"))
        .collect();
    names.sort();
    names
}

fn client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_core_workers_serve_many_connections_reload_and_drain() {
    let mut config = Config::loopback();
    config.workers = 2;
    let gw = Harness::start_with(config, false).await;
    assert_eq!(workers(), ["aigw-worker-0", "aigw-worker-1"]);

    // Sixteen connections at once, each its own client.
    let url = gw.url("/v1/chat/completions");
    let mut asked = Vec::new();
    for _ in 0..16 {
        let url = url.clone();
        asked.push(tokio::spawn(async move {
            let request = http::Request::post(url)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(chat_body("gpt-a").to_string())))
                .expect("request");
            let response = client().request(request).await.expect("an answer");
            response.status().as_u16()
        }));
    }
    for task in asked {
        assert_eq!(task.await.expect("task"), 200);
    }

    // A reload reaches both workers: backend a's traffic goes to upstream b.
    let (snapshot, secrets) = compile(&manifests(
        gw.b.port(),
        gw.b.port(),
        gw.c.port(),
        gw.cohere.port(),
    ));
    gw.runtime.reload(snapshot, &secrets).expect("reloads");
    for _ in 0..6 {
        let request = http::Request::post(url.clone())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(chat_body("gpt-a").to_string())))
            .expect("request");
        let response = client().request(request).await.expect("an answer");
        assert_eq!(
            response
                .headers()
                .get("x-mock-upstream")
                .map(|v| v.as_bytes()),
            Some(&b"b"[..])
        );
    }

    // A stream in flight when shutdown starts ends whole; then the workers are gone.
    gw.b.set_behavior(Behavior {
        chunks: Some(5),
        interval: Duration::from_millis(100),
        ..Behavior::default()
    });
    let mut body = chat_body("gpt-a");
    body["stream"] = serde_json::json!(true);
    let request = http::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let response = client().request(request).await.expect("the stream's head");
    assert_eq!(response.status(), 200);
    let stream = tokio::spawn(async move { response.into_body().collect().await });
    gw.runtime.shutdown().await;
    let whole = stream
        .await
        .expect("task")
        .expect("the stream ends whole")
        .to_bytes();
    let text = String::from_utf8_lossy(&whole);
    assert!(text.contains("tok4 ") && text.contains("[DONE]"), "{text}");
    for _ in 0..100 {
        if workers().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        workers(),
        Vec::<String>::new(),
        "the worker threads outlived the shutdown"
    );
}
