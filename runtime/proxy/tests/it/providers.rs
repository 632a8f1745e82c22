//! Translated backends end to end: the runtime serving `testdata/runtime/providers.yaml`, one
//! test upstream answering every provider's paths with the canned replies of
//! `testdata/upstream/`, real HTTP on loopback. Each schema is called on its own path with its
//! own credential (an AWS signature for Bedrock) and answers in the OpenAI shape, whole and
//! streamed.

use crate::harness::{Reply, compile};
use aigw_proxy::{Config, Runtime};
use aigw_testkit::{Behavior, MockUpstream, Recorded};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const CASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/runtime/providers.yaml"
);

pub struct Providers {
    pub runtime: Runtime,
    pub mock: MockUpstream,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Providers {
    pub async fn start() -> Self {
        let mock = MockUpstream::start("mock").await.expect("upstream");
        let text = std::fs::read_to_string(CASE)
            .expect("the providers case")
            .replace("65021", &mock.port().to_string());
        Self::serve(mock, &text, Config::loopback()).await
    }

    /// The runtime serving `manifests`, whose backends are `mock`.
    pub async fn serve(mock: MockUpstream, manifests: &str, config: Config) -> Self {
        let (snapshot, secrets) = compile(manifests);
        let runtime = Runtime::start(config, snapshot, &secrets)
            .await
            .expect("the runtime starts");
        let client = Client::builder(TokioExecutor::new()).build_http();
        Providers {
            runtime,
            mock,
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.runtime.addr(8080).expect("port 8080")
        )
    }

    pub async fn chat(&self, body: Value) -> Reply {
        self.post("/v1/chat/completions", body).await
    }

    /// A POST of `body` to `path`, with a client key the backend must never see.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        let request = http::Request::post(self.url(path))
            .header("content-type", "application/json")
            .header("authorization", "Bearer sk-client-key-never-forwarded")
            .header("accept-encoding", "gzip")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        let response = self.client.request(request).await.expect("answer");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("whole body").to_bytes();
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }
}

pub fn ask(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the weather in Tokyo?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
        "max_tokens": 300,
    })
}

/// The client's credential never travels; the backend's does.
pub fn assert_no_client_key(seen: &Recorded) {
    for (name, value) in &seen.headers {
        assert!(
            !String::from_utf8_lossy(value.as_bytes()).contains("sk-client-key"),
            "the client's key leaked in `{name}`"
        );
    }
}

/// The data events of an OpenAI stream, parsed, and whether it ended with `[DONE]`.
pub fn events(text: &str) -> (Vec<Value>, bool) {
    let mut events = Vec::new();
    let mut done = false;
    for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line == "[DONE]" {
            done = true;
        } else {
            events.push(serde_json::from_str(line).expect("every event is JSON"));
        }
    }
    (events, done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_schema_is_called_on_its_path_with_its_credential() {
    let gw = Providers::start().await;
    let cases = [
        ("claude-direct", "/v1/messages"),
        (
            "bedrock-converse",
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
        ),
        (
            "bedrock-invoke",
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke",
        ),
        (
            "azure-gpt",
            "/openai/deployments/azure-gpt/chat/completions?api-version=2025-01-01-preview",
        ),
    ];
    for (model, path) in cases {
        let reply = gw.chat(ask(model, false)).await;
        assert_eq!(reply.status, 200, "{model}: {}", reply.text());
        let answer = reply.json();
        assert_eq!(answer["object"], "chat.completion", "{model}");
        let seen = gw.mock.last().expect("the upstream was called");
        assert_eq!(seen.uri, path, "{model}");
        assert_no_client_key(&seen);
        assert!(
            seen.header("accept-encoding").is_none(),
            "{model}: translated answers come uncompressed"
        );
        match model {
            "claude-direct" => {
                assert_eq!(seen.header("x-api-key"), Some("sk-ant-test-secret"));
                assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
                assert_eq!(seen.json()["model"], "claude-direct");
            }
            "bedrock-converse" | "bedrock-invoke" => {
                let auth = seen.header("authorization").unwrap_or_default();
                assert!(
                    auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
                    "{auth}"
                );
                assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
                assert_eq!(
                    seen.header("x-amz-security-token"),
                    Some("session-token-example")
                );
            }
            _ => {
                assert_eq!(seen.header("api-key"), Some("azure-test-secret"));
                assert_eq!(
                    answer["choices"][0]["message"]["content"],
                    "Hello from mock"
                );
            }
        }
        if model != "azure-gpt" {
            // The canned tool-call answers, in OpenAI's shape.
            let message = &answer["choices"][0]["message"];
            assert_eq!(
                answer["choices"][0]["finish_reason"], "tool_calls",
                "{model}"
            );
            assert_eq!(message["content"], "Checking both.", "{model}");
            assert_eq!(
                message["tool_calls"][1]["function"]["arguments"],
                r#"{"city":"Oslo"}"#
            );
            assert_eq!(answer["usage"]["prompt_tokens"], 400, "{model}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_translated_event_by_event() {
    let gw = Providers::start().await;
    for model in [
        "claude-direct",
        "bedrock-converse",
        "bedrock-invoke",
        "azure-gpt",
    ] {
        let reply = gw.chat(ask(model, true)).await;
        assert_eq!(reply.status, 200, "{model}: {}", reply.text());
        assert_eq!(
            reply.header("content-type"),
            Some("text/event-stream"),
            "{model}"
        );
        let (events, done) = events(reply.text());
        assert!(
            done,
            "{model}: the stream ends with [DONE]:\n{}",
            reply.text()
        );
        let text: String = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
            .collect();
        let arguments: String = events
            .iter()
            .filter_map(|e| {
                e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        let usage = events
            .iter()
            .find(|e| e["usage"].is_object())
            .map(|e| e["usage"].clone());
        let seen = gw.mock.last().expect("called");
        match model {
            "azure-gpt" => assert_eq!(text, "tok0 tok1 tok2 "),
            "bedrock-converse" => {
                assert_eq!(
                    seen.uri,
                    "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
                );
                assert_eq!(text, "Let me look: Tōkyō 東京. ");
                assert_eq!(arguments, r#"{"city":"Oslo"}"#);
                assert_eq!(
                    usage.as_ref().map(|u| u["total_tokens"].clone()),
                    Some(json!(52))
                );
            }
            _ => {
                assert_eq!(text, "Let me check Tōkyō 東京. ", "{model}");
                assert_eq!(arguments, r#"{"city": "Tōkyō"}"#, "{model}");
                assert_eq!(
                    usage.as_ref().map(|u| u["prompt_tokens"].clone()),
                    Some(json!(1496)),
                    "{model}"
                );
            }
        }
        if model == "bedrock-invoke" {
            assert_eq!(
                seen.uri,
                "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke-with-response-stream"
            );
            assert!(
                seen.json().get("stream").is_none(),
                "Bedrock's invoke takes no `stream`"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_provider_cannot_honour_is_422_and_never_sent() {
    let gw = Providers::start().await;
    let mut body = ask("claude-direct", false);
    body["n"] = json!(2);
    let reply = gw.chat(body).await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    let message = reply.error_message();
    assert!(
        message.contains("`n`") && message.contains("Anthropic"),
        "{message}"
    );
    let mut body = ask("bedrock-converse", false);
    body["messages"][1]["content"] =
        json!([{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]);
    assert_eq!(gw.chat(body).await.status, 422);
    assert_eq!(gw.mock.count(), 0);
}

/// A JSON schema the answer must follow reaches each provider in its own form: Anthropic's
/// `output_config.format` (also on Bedrock's invoke), Converse's `outputConfig.textFormat`,
/// and from an Anthropic client OpenAI's `response_format`; JSON of no given shape is 422.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_outputs_reach_each_provider_in_its_form() {
    let gw = Providers::start().await;
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false});
    for model in ["claude-direct", "bedrock-invoke", "bedrock-converse"] {
        let mut body = ask(model, false);
        body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": true}});
        let reply = gw.chat(body).await;
        assert_eq!(reply.status, 200, "{model}: {}", reply.text());
        let seen = gw.mock.requests().pop().expect("sent");
        let sent = seen.json();
        if model == "bedrock-converse" {
            let format = &sent["outputConfig"]["textFormat"];
            assert_eq!(format["type"], "json_schema", "{sent}");
            let text = format["structure"]["jsonSchema"]["schema"]
                .as_str()
                .expect("Converse takes the schema as a string");
            assert_eq!(serde_json::from_str::<Value>(text).expect("json"), schema);
        } else {
            assert_eq!(
                sent["output_config"],
                json!({"format": {"type": "json_schema", "schema": schema}}),
                "{model}"
            );
        }
    }
    let reply = gw
        .post(
            "/anthropic/v1/messages",
            json!({"model": "gpt-direct", "max_tokens": 100,
                   "messages": [{"role": "user", "content": "A city?"}],
                   "output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "low"}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let sent = gw.mock.requests().pop().expect("sent").json();
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": true}})
    );
    assert_eq!(sent["reasoning_effort"], "low");
    let before = gw.mock.count();
    let mut body = ask("claude-direct", false);
    body["response_format"] = json!({"type": "json_object"});
    let reply = gw.chat(body).await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert!(reply.error_message().contains("json_object"));
    assert_eq!(gw.mock.count(), before, "a refused request is never sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_come_back_in_the_openai_shape_with_the_provider_status() {
    let gw = Providers::start().await;
    gw.mock.set_behavior(Behavior {
        status: Some(400),
        body: Some(r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: must be at most 8192"}}"#.into()),
        ..Behavior::default()
    });
    let reply = gw.chat(ask("claude-direct", true)).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let error = &reply.json()["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["message"], "max_tokens: must be at most 8192");
    gw.mock.set_behavior(Behavior {
        status: Some(400),
        body: Some(r#"{"message":"The provided model identifier is invalid."}"#.into()),
        ..Behavior::default()
    });
    let reply = gw.chat(ask("bedrock-converse", false)).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json()["error"]["message"],
        "The provided model identifier is invalid."
    );
}

/// botocore's own SigV4 signer (`tests/sdk/sigv4_check.py`) recomputes the signature of what
/// the upstream received, at the same timestamp, and must get the same `authorization`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_signatures_verify_with_botocores_signer() {
    let Some(python) = aigw_testkit::python("sigv4 oracle", &["botocore"]) else {
        return;
    };
    let gw = Providers::start().await;
    for (model, stream) in [("bedrock-converse", false), ("bedrock-invoke", true)] {
        assert_eq!(gw.chat(ask(model, stream)).await.status, 200, "{model}");
        let seen = gw.mock.last().expect("called");
        let keys = (
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "session-token-example",
        );
        let (ok, report) = botocore_sigv4(&python, &seen, gw.mock.port(), keys);
        assert!(ok, "{model}: botocore disagrees:\n{report}");
        assert!(
            report.starts_with("OK sigv4 content-type;host;x-amz-date;x-amz-security-token"),
            "{report}"
        );
    }
}

/// botocore's verdict (`tests/sdk/sigv4_check.py`) on the signature of `seen`, a request to
/// Bedrock in us-east-1 signed with `keys` (access key, secret key, session token).
pub fn botocore_sigv4(
    python: &std::path::Path,
    seen: &Recorded,
    port: u16,
    keys: (&str, &str, &str),
) -> (bool, String) {
    let headers: serde_json::Map<String, Value> = seen
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), json!(v.to_str().unwrap_or_default())))
        .collect();
    let input = json!({
        "access_key": keys.0,
        "secret_key": keys.1,
        "session_token": keys.2,
        "region": "us-east-1",
        "service": "bedrock",
        "method": seen.method.as_str(),
        "url": format!("http://127.0.0.1:{port}{}", seen.uri),
        "headers": headers,
        "body_b64": base64::engine::general_purpose::STANDARD.encode(&seen.body),
    });
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), input.to_string()).expect("write the request");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/sigv4_check.py");
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(file.path())
        .output()
        .expect("python runs");
    let report = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), report)
}

/// The SigV4 oracle refuses what AWS would refuse (a changed byte, region, path, host…).
#[test]
fn the_sigv4_oracle_refuses_bad_signatures() {
    let Some(python) = aigw_testkit::python("sigv4 oracle self-test", &["botocore"]) else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/sigv4_selftest.py");
    let output = std::process::Command::new(&python)
        .arg(script)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The official `openai` SDK parses every translated answer and stream into its own types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_parses_every_translated_schema() {
    let Some(python) = aigw_testkit::python("openai SDK through translated backends", &["openai"])
    else {
        return;
    };
    let gw = Providers::start().await;
    let (ok, report) = run_sdk(python, "providers_client.py", gw.url("/v1"), "OPENAI").await;
    assert!(ok, "the SDK refused a translated answer:\n{report}");
    assert!(report.contains("Ran 4 tests"), "{report}");
    for seen in gw.mock.requests() {
        assert_no_client_key(&seen);
    }
}

/// The official `anthropic` SDK as a client of `/anthropic/v1/messages`: Anthropic and
/// Bedrock's Claude natively, Bedrock Converse and Azure OpenAI translated; messages, streams,
/// token counts and errors all parse into the SDK's own types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_parses_every_backend() {
    let Some(python) = aigw_testkit::python("anthropic SDK through every backend", &["anthropic"])
    else {
        return;
    };
    let gw = Providers::start().await;
    let (ok, report) = run_sdk(
        python,
        "anthropic_client.py",
        gw.url("/anthropic"),
        "ANTHROPIC",
    )
    .await;
    assert!(ok, "the SDK refused an answer:\n{report}");
    assert!(report.contains("Ran 4 tests"), "{report}");
    let seen = gw.mock.requests();
    for request in &seen {
        assert_no_client_key(request);
    }
    // Each backend was called on its own API's path.
    let paths: Vec<String> = seen.iter().map(|r| r.uri.to_string()).collect();
    for expected in [
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke",
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke-with-response-stream",
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream",
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/count-tokens",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} in {paths:?}"
        );
    }
    assert!(
        paths.iter().any(|p| p.starts_with("/openai/deployments/")
            && p.contains("/chat/completions?api-version=")),
        "{paths:?}"
    );
    // OpenAI's count got the conversation as Responses items and flat, non-strict tools.
    let count = seen
        .iter()
        .find(|r| r.uri == "/v1/responses/input_tokens")
        .expect("OpenAI was asked to count");
    let body: serde_json::Value = serde_json::from_slice(&count.body).expect("json");
    assert_eq!(
        body,
        json!({
            "model": "gpt-direct",
            "input": [
                {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Be terse."}]},
                {"type": "message", "role": "user", "content": "What is the weather in Paris and Oslo?"},
            ],
            "tools": [{
                "type": "function", "name": "get_weather", "description": "The weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "strict": false,
            }],
        })
    );
}

/// A client that goes away in the middle of a translated stream cancels the upstream call:
/// the provider's stream is abandoned, not read to its end for nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_stream_cancels_the_upstream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = Providers::start().await;
    let addr = gw.url("").trim_start_matches("http://").to_owned();
    let cases = [
        ("/v1/chat/completions", ask("bedrock-converse", true)),
        (
            "/anthropic/v1/messages",
            json!({"model": "claude-direct", "max_tokens": 100, "stream": true,
                   "messages": [{"role": "user", "content": "hi"}]}),
        ),
    ];
    for (i, (path, body)) in cases.into_iter().enumerate() {
        let body = body.to_string();
        let mut socket = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        socket.write_all(head.as_bytes()).await.expect("write");
        socket.write_all(body.as_bytes()).await.expect("write");
        // Read until the first translated event has arrived, then leave.
        let mut seen = Vec::new();
        let mut buffer = [0u8; 1024];
        while !seen.windows(5).any(|w| w == b"data:") {
            let n = socket.read(&mut buffer).await.expect("read");
            assert!(n > 0, "{path}: the stream ended before its first event");
            seen.extend_from_slice(&buffer[..n]);
        }
        drop(socket);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let (finished, abandoned) = gw.mock.streams();
            assert_eq!(
                finished, 0,
                "{path}: the provider's stream was read to its end"
            );
            if abandoned == i as u64 + 1 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path}: the upstream stream was not cancelled"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// `/v1/responses` goes to OpenAI as it came (under the schema prefix) and to Azure OpenAI on
/// its Responses path, which is not per deployment: the model stays in the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_reach_openai_and_azure_on_their_paths() {
    let gw = Providers::start().await;
    for (model, path) in [
        ("gpt-direct", "/v1/responses"),
        (
            "azure-gpt",
            "/openai/responses?api-version=2025-01-01-preview",
        ),
    ] {
        let body = json!({"model": model, "input": "Say hi.", "reasoning": {"effort": "low"}});
        let reply = gw.post("/v1/responses", body.clone()).await;
        assert_eq!(reply.status, 200, "{model}: {}", reply.text());
        let seen = gw.mock.last().expect("called");
        assert_eq!(seen.uri, path, "{model}");
        assert_eq!(seen.json(), body, "{model}: the body goes as it came");
        assert_no_client_key(&seen);
        // The mock echoes the path it was asked for: the answer is relayed as it is.
        assert_eq!(reply.json()["path"], path.split('?').next().unwrap_or(path));
    }
    let seen = gw.mock.last().expect("called");
    assert_eq!(seen.header("api-key"), Some("azure-test-secret"));
}

/// `/cohere/v2/rerank` reaches a Cohere backend natively with its API key as a bearer token;
/// a rerank no backend of the rule can serve is the gateway's error in Cohere's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cohere_rerank_reaches_cohere_natively() {
    let gw = Providers::start().await;
    let body = json!({
        "model": "rerank-v3.5",
        "query": "What is the capital of the United States?",
        "documents": ["Carson City is the capital of Nevada.", "Washington, D.C. is the capital of the United States."],
        "top_n": 3,
    });
    let reply = gw.post("/cohere/v2/rerank", body.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = gw.mock.last().expect("called");
    assert_eq!(seen.uri, "/v2/rerank");
    assert_eq!(seen.json(), body);
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer cohere-test-secret")
    );
    assert_no_client_key(&seen);
    let answer = reply.json();
    assert_eq!(answer["results"][0]["index"], 3);
    assert_eq!(answer["meta"]["billed_units"]["search_units"], 1);

    // Azure OpenAI cannot rerank: a 501 that reads as Cohere's error.
    let mut other = body.clone();
    other["model"] = "azure-gpt".into();
    let reply = gw.post("/cohere/v2/rerank", other).await;
    assert_eq!(reply.status, 501, "{}", reply.text());
    let message = reply.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("/cohere/v2/rerank"), "{message}");
}

/// Runs `tests/sdk/<script>` with the gateway at `AIGW_BASE_URL`, and without the SDK's own
/// `<SDK>_API_KEY` and `<SDK>_BASE_URL` from the environment: whether it passed, and its
/// unittest report.
pub async fn run_sdk(
    python: std::path::PathBuf,
    script: &str,
    base: String,
    sdk: &str,
) -> (bool, String) {
    let script = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let (key, url) = (format!("{sdk}_API_KEY"), format!("{sdk}_BASE_URL"));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .env("AIGW_BASE_URL", base)
            .env_remove(key)
            .env_remove(url)
            .output()
    })
    .await
    .expect("joined")
    .expect("python runs");
    let report = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), report)
}
