//! The official `openai` Python SDK as a client: `tests/sdk/openai_client.py` runs against the
//! runtime serving the routing case, then this side checks what the upstreams received.
//!
//! The SDK comes from the workspace's pinned venv (`.venv`, made by `.ci/run`). Where the venv or
//! the package is absent the test says SKIP and passes, except under CI (`CI` set), where a missing
//! client is a failure: CI must run it.

use crate::harness::Harness;
use aigw_proxy::Config;
use aigw_testkit::Behavior;
use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_client.py");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_client() {
    let Some(python) = aigw_testkit::python("openai_python_client", &["openai"]) else {
        return;
    };
    let config = Config {
        body_limit: 1 << 20,
        ..Config::loopback()
    };
    let h = Harness::start_with(config, false).await;
    h.c.set_behavior(Behavior {
        status: Some(429),
        ..Behavior::default()
    });
    let base = h.url("/v1");
    // The SDK blocks; run it off the runtime's threads.
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(SCRIPT)
            .env("AIGW_BASE_URL", base)
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .output()
    })
    .await
    .expect("the SDK run is joined")
    .expect("python runs");
    let report = String::from_utf8_lossy(&output.stderr);
    eprintln!("{report}");
    assert!(output.status.success(), "the SDK tests failed:\n{report}");
    assert!(
        report.contains("Ran 15 tests"),
        "every SDK test ran:\n{report}"
    );

    // What the upstreams saw: the configured keys, never the SDK's.
    let seen: Vec<_> = [&h.a, &h.b, &h.c]
        .iter()
        .flat_map(|upstream| upstream.requests())
        .collect();
    assert!(seen.len() >= 9, "the SDK's requests reached the upstreams");
    for request in &seen {
        let auth = request.header("authorization").unwrap_or_default();
        assert!(!auth.contains("sk-client-secret"), "{auth}");
    }
    let c = h.c.last().expect("the byok request reached c");
    assert_eq!(c.header("authorization"), Some("Bearer sk-customer"));
    assert!(
        h.a.requests()
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer sk-a-secret")),
        "a got its configured key"
    );
    h.runtime.shutdown().await;
}
