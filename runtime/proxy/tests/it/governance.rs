//! Governance end to end (issue #16, first part): `testdata/runtime/providers.yaml` with request
//! costs of every type on its route, served with the access log on, in front of the test
//! upstream's canned provider answers. Each provider's usage, whole and streamed, is recorded
//! exactly as the provider reported it (every kind of token); the costs follow from it (a CEL
//! one included); a stream the client leaves still records what arrived; and `/metrics`, read by
//! `prometheus_client`'s own OpenMetrics parser, has the GenAI semantic-convention metrics.

use crate::providers::Providers;
use aigw_proxy::Config;
use aigw_proxy::access_log::Target;
use aigw_testkit::MockUpstream;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const CASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/runtime/providers.yaml"
);

/// Every cost type on the route; the CEL one weighs cached input at a tenth and output at four.
const COSTS: &str = "  llmRequestCosts:
    - {metadataKey: input, type: InputToken}
    - {metadataKey: cached, type: CachedInputToken}
    - {metadataKey: cache_creation, type: CacheCreationInputToken}
    - {metadataKey: output, type: OutputToken}
    - {metadataKey: total, type: TotalToken}
    - metadataKey: weighted
      type: CEL
      cel: \"(input_tokens - cached_input_tokens) + cached_input_tokens / 10u + output_tokens * 4u\"
  rules:
";

struct Governed {
    gw: Providers,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn start() -> Governed {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    let mock = MockUpstream::start("mock").await.expect("upstream");
    let text = std::fs::read_to_string(CASE)
        .expect("the providers case")
        .replace("65021", &mock.port().to_string())
        .replacen("  rules:\n", COSTS, 1);
    let mut config = Config::loopback();
    config.access_log = Some(Target::File(log.clone()));
    let gw = Providers::serve(mock, &text, config).await;
    Governed { gw, log, _dir: dir }
}

/// The access log's lines once it has `n` of them (bounded wait: records close when their
/// response body is dropped, just after the client read it).
async fn lines(log: &Path, n: usize) -> Vec<Value> {
    let mut found = Vec::new();
    for _ in 0..250 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        found = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        if found.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(found.len(), n, "access log lines: {found:?}");
    found
}

fn chat(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "What is 1 + 2?"}],
        "max_tokens": 64,
        "stream": stream,
    })
}

/// input, output, total, cached input, cache creation, reasoning.
type Counts = (u64, u64, u64, u64, u64, u64);

fn counts(line: &Value) -> Counts {
    let t = &line["tokens"];
    let n = |k: &str| t[k].as_u64().unwrap_or(u64::MAX);
    (
        n("input"),
        n("output"),
        n("total"),
        n("cached_input"),
        n("cache_creation_input"),
        n("reasoning"),
    )
}

fn expected_costs(c: Counts) -> Value {
    let (input, output, total, cached, created, _) = c;
    json!({
        "input": input,
        "cached": cached,
        "cache_creation": created,
        "output": output,
        "total": total,
        "weighted": (input - cached) + cached / 10 + output * 4,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_providers_usage_is_recorded_as_reported_and_costed() {
    let g = start().await;
    // (model, stream, what the provider reported, as the gateway counts it)
    let cases: [(&str, bool, Counts); 6] = [
        // Anthropic message_text.json: 21 input + 2000 cache reads + 100 cache writes.
        ("claude-direct", false, (2121, 5, 2126, 2000, 100, 0)),
        // stream_tools.sse: 472 input + 1024 cache reads at message_start, 89 output at the end.
        ("claude-direct", true, (1496, 89, 1585, 1024, 0, 0)),
        // Converse converse_text.json: the same counts in Bedrock's names, its own total.
        ("bedrock-converse", false, (2121, 5, 2126, 2000, 100, 0)),
        // ConverseStream stream_tools.jsonl: 30 input + 10 cache reads, 12 output, total 52.
        ("bedrock-converse", true, (40, 12, 52, 10, 0, 0)),
        // Bedrock InvokeModel answers in Anthropic's shape (message_text.json).
        ("bedrock-invoke", false, (2121, 5, 2126, 2000, 100, 0)),
        ("bedrock-invoke", true, (1496, 89, 1585, 1024, 0, 0)),
    ];
    for (model, stream, _) in &cases {
        let reply = g.gw.chat(chat(model, *stream)).await;
        assert_eq!(
            reply.status,
            200,
            "{model} stream={stream}: {}",
            reply.text()
        );
    }
    // OpenAI itself (the upstream's own answer, relayed), whole and streamed with its usage
    // chunk, which the client did not ask for and does not get.
    let whole = g.gw.chat(chat("gpt-direct", false)).await;
    let reported = whole.json()["usage"].clone();
    let streamed = g.gw.chat(chat("gpt-direct", true)).await;
    assert!(
        !streamed.text().contains("\"usage\""),
        "{}",
        streamed.text()
    );
    let log = lines(&g.log, cases.len() + 2).await;
    for (line, (model, stream, expected)) in log.iter().zip(&cases) {
        assert_eq!(line["request_model"], *model, "{line}");
        assert_eq!(line["stream"], *stream, "{line}");
        assert_eq!(counts(line), *expected, "{model} stream={stream}: {line}");
        assert_eq!(line["costs"], expected_costs(*expected), "{model}: {line}");
        assert_eq!(line["status"], 200);
        assert_eq!(line["attempts"], 1);
        assert_eq!(line["route"], "default/providers");
        assert!(
            line["duration_ms"].as_f64().is_some_and(|d| d > 0.0),
            "{line}"
        );
    }
    let openai = &log[cases.len()];
    assert_eq!(openai["backend"], "default/openai");
    assert_eq!(openai["tokens"]["input"], reported["prompt_tokens"]);
    assert_eq!(openai["tokens"]["output"], reported["completion_tokens"]);
    assert_eq!(openai["tokens"]["total"], reported["total_tokens"]);
    let openai_stream = &log[cases.len() + 1];
    assert!(
        openai_stream["tokens"]["output"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{openai_stream}"
    );
    assert!(
        openai_stream["time_to_first_byte_ms"].as_f64().is_some(),
        "{openai_stream}"
    );
    // No prompt or answer text, and no credential, in the log.
    let text = std::fs::read_to_string(&g.log).expect("log");
    for secret_or_text in ["What is 1 + 2", "sk-client-key", "Bearer", "x-api-key"] {
        assert!(
            !text.contains(secret_or_text),
            "{secret_or_text} in the log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_client_leaves_still_records_what_arrived() {
    let g = start().await;
    let request = http::Request::post(g.gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            chat("claude-direct", true).to_string(),
        )))
        .expect("request");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let response = client.request(request).await.expect("answer");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    // Read the first frame (message_start has come: the input counts), then leave.
    let first = http_body_util::BodyExt::frame(&mut body).await;
    assert!(first.is_some());
    drop(body);
    drop(client);
    let log = lines(&g.log, 1).await;
    let line = &log[0];
    assert_eq!(line["request_model"], "claude-direct");
    assert_eq!(line["tokens"]["input"], 1496, "{line}");
    assert_eq!(line["tokens"]["cached_input"], 1024, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_the_genai_semantic_conventions() {
    let g = start().await;
    assert_eq!(g.gw.chat(chat("claude-direct", false)).await.status, 200);
    assert_eq!(g.gw.chat(chat("bedrock-converse", true)).await.status, 200);
    let _ = lines(&g.log, 2).await;
    let admin = g.gw.runtime.admin_addr().expect("admin listener");
    let text = reqwest_like_get(&format!("http://{admin}/metrics")).await;
    let Some(python) = aigw_testkit::python("metrics parser", &["prometheus_client"]) else {
        return;
    };
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &text).expect("write");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/metrics_check.py");
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(file.path())
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "prometheus_client refuses /metrics: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let families: Value = serde_json::from_slice(&output.stdout).expect("json");
    for (name, kind) in [
        ("gen_ai_client_token_usage", "histogram"),
        ("gen_ai_server_request_duration_seconds", "histogram"),
        ("gen_ai_server_time_to_first_token_seconds", "histogram"),
        ("gen_ai_server_time_per_output_token_seconds", "histogram"),
        ("aigw_route_requests", "counter"),
        ("aigw_usage_tokens", "counter"),
        ("aigw_request_cost", "counter"),
    ] {
        assert_eq!(families[name]["type"], kind, "{name} in {families}");
    }
    let samples = families["gen_ai_client_token_usage"]["samples"]
        .as_array()
        .expect("samples");
    let sum = |provider: &str, kind: &str| {
        samples
            .iter()
            .find(|s| {
                s[0] == "gen_ai_client_token_usage_sum"
                    && s[1]["gen_ai_provider_name"] == provider
                    && s[1]["gen_ai_token_type"] == kind
            })
            .and_then(|s| s[2].as_f64())
    };
    assert_eq!(sum("anthropic", "input"), Some(2121.0));
    assert_eq!(sum("anthropic", "output"), Some(5.0));
    assert_eq!(sum("aws.bedrock", "input"), Some(40.0));
    let anthropic = samples
        .iter()
        .find(|s| s[1]["gen_ai_provider_name"] == "anthropic")
        .expect("an anthropic sample");
    assert_eq!(anthropic[1]["gen_ai_operation_name"], "chat");
    assert_eq!(anthropic[1]["gen_ai_request_model"], "claude-direct");
    assert!(
        anthropic[1]["gen_ai_response_model"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    let first_token = &families["gen_ai_server_time_to_first_token_seconds"]["samples"];
    assert!(
        first_token.as_array().is_some_and(|s| s
            .iter()
            .any(|s| s[1]["gen_ai_provider_name"] == "aws.bedrock")),
        "the stream's first token: {first_token}"
    );
}

pub(crate) async fn reqwest_like_get(url: &str) -> String {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let response = client
        .get(url.parse().expect("url"))
        .await
        .expect("metrics");
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}
