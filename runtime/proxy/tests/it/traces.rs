//! OTLP traces end to end (issue #16): the routing case served with traces on, exported over
//! OTLP/HTTP to a loopback receiver that decodes them with the official `opentelemetry-proto`
//! package (`tests/sdk/otlp_receiver.py`). A request that comes with a `traceparent` gets a
//! server span in the client's trace, with the GenAI attributes and its token usage, and a
//! child span for the upstream attempt, whose `traceparent` the backend receives.

use crate::harness::{chat_body, compile, manifests};
use aigw_proxy::trace::TraceConfig;
use aigw_proxy::{Config, Runtime};
use aigw_testkit::MockUpstream;
use std::io::BufRead;
use std::time::Duration;

pub const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// The receiver, its port, and the spans it prints, as they come.
pub struct Receiver {
    child: std::process::Child,
    pub port: u16,
    spans: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    pub fn start(python: &std::path::Path, protocol: &str) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/otlp_receiver.py");
        let mut child = std::process::Command::new(python)
            .arg(script)
            .arg(protocol)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the receiver starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next().expect("a line").expect("text");
        let port = first
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .expect("the receiver's port");
        let (send, spans) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str(&line)
                    && send.send(value).is_err()
                {
                    break;
                }
            }
        });
        Receiver { child, port, spans }
    }

    /// The first `n` spans, or what came within 10 s.
    pub fn take(&self, n: usize) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.spans.recv_timeout(Duration::from_secs(10)) {
                Ok(span) => out.push(span),
                Err(_) => break,
            }
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_carry_the_genai_attributes_and_the_trace_goes_upstream() {
    let Some(python) = aigw_testkit::python("OTLP receiver", &["opentelemetry.proto"]) else {
        return;
    };
    check(&python, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_go_out_over_grpc_too() {
    let Some(python) = aigw_testkit::python("OTLP gRPC receiver", &["opentelemetry.proto", "grpc"])
    else {
        return;
    };
    check(&python, true).await;
}

/// The reference configures its processor's tracing by the GatewayConfig's env; so does aigw,
/// ahead of the process environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_config_turns_traces_on() {
    let Some(python) = aigw_testkit::python("OTLP receiver", &["opentelemetry.proto"]) else {
        return;
    };
    let receiver = Receiver::start(&python, "http");
    let a = MockUpstream::start("a").await.expect("upstream a");
    let dead = crate::harness::dead_port();
    let manifests = manifests(a.port(), dead, dead, dead).replacen(
        "  name: gw\n  namespace: default\n",
        "  name: gw\n  namespace: default\n  annotations:\n    aigateway.envoyproxy.io/gateway-config: traced\n",
        1,
    );
    let manifests = format!(
        "{manifests}\n---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: GatewayConfig\n\
         metadata: {{name: traced, namespace: default}}\nspec:\n  extProc:\n    kubernetes:\n      env:\n\
         \x20       - {{name: OTEL_EXPORTER_OTLP_ENDPOINT, value: 'http://127.0.0.1:{}'}}\n\
         \x20       - {{name: OTEL_SERVICE_NAME, value: from-gateway-config}}\n\
         \x20       - {{name: OTEL_BSP_SCHEDULE_DELAY, value: '100'}}\n\
         \x20       - {{name: OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, value: 'true'}}\n\
         \x20       - {{name: NOT_TELEMETRY, value: ignored}}\n",
        receiver.port
    );
    let (snapshot, secrets) = compile(&manifests);
    let gateway = &snapshot.table().gateways[0];
    assert_eq!(
        gateway.telemetry.keys().collect::<Vec<_>>(),
        [
            "OTEL_BSP_SCHEDULE_DELAY",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
            "OTEL_SERVICE_NAME"
        ]
    );
    let mut config = Config::loopback();
    config.traces = None;
    let runtime = Runtime::start(config, snapshot, &secrets)
        .await
        .expect("the runtime starts");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::post(format!(
        "http://{}/v1/chat/completions",
        runtime.addr(8080).expect("port")
    ))
    .header("content-type", "application/json")
    .body(http_body_util::Full::new(bytes::Bytes::from(
        serde_json::json!({"model": "gpt-a", "stream": true,
            "messages": [{"role": "user", "content": "Say hi"}]})
        .to_string(),
    )))
    .expect("request");
    let response = client.request(request).await.expect("answer");
    assert_eq!(response.status(), 200);
    let _ = http_body_util::BodyExt::collect(response.into_body()).await;
    let spans = receiver.take(2);
    assert_eq!(spans.len(), 2, "{spans:?}");
    let request_span = spans
        .iter()
        .find(|s| s["name"] == "chat gpt-a")
        .expect("the request's span");
    // The stream's text deltas, gathered (the test upstream sends three).
    assert_eq!(
        request_span["attributes"]["gen_ai.output.messages"],
        r#"[{"role":"assistant","parts":[{"type":"text","content":"tok0 tok1 tok2 "}]}]"#
    );
    for span in &spans {
        assert_eq!(span["service"], "from-gateway-config", "{span}");
    }
    drop(runtime);
}

async fn check(python: &std::path::Path, grpc: bool) {
    let receiver = Receiver::start(python, if grpc { "grpc" } else { "http" });
    let a = MockUpstream::start("a").await.expect("upstream");
    let dead = crate::harness::dead_port();
    let (snapshot, secrets) = compile(&manifests(a.port(), dead, dead, dead));
    let mut config = Config::loopback();
    config.traces = Some(TraceConfig {
        endpoint: if grpc {
            format!("http://127.0.0.1:{}", receiver.port)
        } else {
            format!("http://127.0.0.1:{}/v1/traces", receiver.port)
        },
        grpc,
        service: "aigw-test".into(),
        sizes: aigw_proxy::trace::Sizes {
            queue: 2048,
            batch: 512,
            interval: Duration::from_millis(100),
        },
        capture_content: !grpc,
    });
    let runtime = Runtime::start(config, snapshot, &secrets)
        .await
        .expect("the runtime starts");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::post(format!(
        "http://{}/v1/chat/completions",
        runtime.addr(8080).expect("port")
    ))
    .header("content-type", "application/json")
    .header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-01"))
    .body(http_body_util::Full::new(bytes::Bytes::from(
        chat_body("gpt-a").to_string(),
    )))
    .expect("request");
    let response = client.request(request).await.expect("answer");
    assert_eq!(response.status(), 200);
    let _ = http_body_util::BodyExt::collect(response.into_body()).await;

    let spans = receiver.take(2);
    assert_eq!(spans.len(), 2, "{spans:?}");
    let request_span = spans
        .iter()
        .find(|s| s["name"] == "chat gpt-a")
        .expect("the request's span");
    let attempt = spans
        .iter()
        .find(|s| s["name"] == "attempt default/a")
        .expect("the attempt's span");
    assert_eq!(
        request_span["trace_id"], TRACE,
        "the client's trace goes on"
    );
    assert_eq!(request_span["parent_span_id"], CLIENT_SPAN);
    assert_eq!(request_span["kind"], 2, "server");
    assert_eq!(request_span["service"], "aigw-test");
    let attributes = &request_span["attributes"];
    assert_eq!(attributes["gen_ai.operation.name"], "chat");
    assert_eq!(attributes["gen_ai.request.model"], "gpt-a");
    assert_eq!(attributes["gen_ai.provider.name"], "openai");
    assert_eq!(attributes["gen_ai.usage.input_tokens"], 10);
    assert!(
        attributes["gen_ai.usage.output_tokens"]
            .as_i64()
            .is_some_and(|n| n > 0)
    );
    assert_eq!(attributes["http.response.status_code"], 200);
    if grpc {
        // Content is opt-in: not asked for, not recorded.
        assert!(
            attributes.get("gen_ai.input.messages").is_none(),
            "{attributes}"
        );
        assert!(
            attributes.get("gen_ai.output.messages").is_none(),
            "{attributes}"
        );
    } else {
        assert_eq!(
            attributes["gen_ai.input.messages"],
            r#"[{"role":"user","content":"Say hi"}]"#
        );
        assert_eq!(
            attributes["gen_ai.output.messages"],
            r#"[{"role":"assistant","parts":[{"type":"text","content":"Hello from a"}]}]"#
        );
    }
    assert_eq!(attempt["trace_id"], TRACE);
    assert_eq!(attempt["parent_span_id"], request_span["span_id"]);
    assert_eq!(attempt["kind"], 3, "client");
    // The backend got the attempt's traceparent, not the client's.
    let seen = a.last().expect("the upstream request");
    let traceparent = seen.header("traceparent").unwrap_or_default();
    let attempt_id = attempt["span_id"].as_str().unwrap_or_default();
    assert_eq!(traceparent, format!("00-{TRACE}-{attempt_id}-01"));
    // The export is counted once the receiver has answered it; nothing was dropped.
    let admin = runtime.admin_addr().expect("admin listener");
    let mut text = String::new();
    for _ in 0..100 {
        text = crate::governance::reqwest_like_get(&format!("http://{admin}/metrics")).await;
        if text.contains("aigw_trace_spans_total{outcome=\"exported\"} 2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        text.contains("aigw_trace_spans_total{outcome=\"exported\"} 2"),
        "{text}"
    );
    assert!(!text.contains("outcome=\"dropped\""), "{text}");
    drop(runtime);
}
