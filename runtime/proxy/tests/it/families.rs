//! The upstream fault matrix across the provider families (issue #21): OpenAI, Azure OpenAI,
//! Anthropic, Bedrock Converse and Claude on Bedrock (the providers case), Gemini and Claude on
//! Vertex AI (the cloud case, with its token endpoint), each served by one test upstream, each
//! behind a single-backend rule and behind a failover rule whose second priority is a plain
//! OpenAI upstream (`fallback`, a second test upstream).
//!
//! Each fault, whole and streamed: a reset before the answer (502, `closed`), 503 (passed on,
//! `status_5xx`), 429 with `Retry-After` (passed on with the header, also when the answer is
//! translated; `status_429`), headers later than the rule's timeout (504, `timeout`), and, for
//! whole answers, a body that stalls after its head (504 when the answer is translated, which
//! reads it whole; a cut body when it is passed through, whose head was already sent). A name
//! that does not resolve (`dns`) and a refused connection fail over too. Every client error is
//! in the OpenAI shape (the Anthropic shape for an Anthropic client), `aigw_upstream_faults_total`
//! counts each fault, and the access log line names it (`upstream_fault`).

use crate::providers::{Providers, ask};
use aigw_proxy::Config;
use aigw_proxy::access_log::Target;
use aigw_testkit::{Behavior, MockUpstream};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::time::Duration;

const CASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/runtime/providers.yaml"
);

/// A family: its backend in the case, the model that reaches it, whether its answer is
/// translated, and the model name its backendRef overrides with.
type Family = (&'static str, &'static str, bool, Option<&'static str>);

const CLAUDE_ON_BEDROCK: Option<&str> = Some("anthropic.claude-3-5-sonnet-20240620-v1:0");

/// The families of the providers case.
const FAMILIES: [Family; 5] = [
    ("openai", "gpt-direct", false, None),
    ("azure", "azure-gpt", false, None),
    ("anthropic", "claude-direct", true, None),
    ("bedrock", "bedrock-converse", true, CLAUDE_ON_BEDROCK),
    (
        "bedrock-anthropic",
        "bedrock-invoke",
        true,
        CLAUDE_ON_BEDROCK,
    ),
];

/// The families of the cloud case: Gemini and Claude on Vertex AI (with GCP access tokens).
const VERTEX: [Family; 2] = [
    ("vertex", "gemini-2.5-flash", true, None),
    (
        "vertex-anthropic",
        "claude-vertex",
        true,
        Some("claude-sonnet-4-5@20250929"),
    ),
];

/// Per family `<backend>`: `slow-<backend>` (one backend, a 400 ms request timeout) and
/// `failover-<backend>` (the backend, then `fallback`). Then a backend whose name does not
/// resolve, alone and failing over.
fn rules(gateway: &str, families: &[Family], fallback: u16) -> String {
    let mut out = format!(
        "---\napiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIGatewayRoute\nmetadata:\n  name: faults\n  namespace: default\nspec:\n  parentRefs:\n    - name: {gateway}\n      kind: Gateway\n      group: gateway.networking.k8s.io\n  rules:\n",
    );
    let rule = |model: &str, refs: &str, timeout: &str| {
        format!(
            "    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: {model}\n      backendRefs:\n{refs}{timeout}"
        )
    };
    for (backend, _, _, model) in families {
        let first = match model {
            Some(model) => {
                format!("        - name: {backend}\n          modelNameOverride: {model}\n")
            }
            None => format!("        - name: {backend}\n"),
        };
        out.push_str(&rule(
            &format!("slow-{backend}"),
            &first,
            "      timeouts:\n        request: 400ms\n",
        ));
        out.push_str(&rule(
            &format!("failover-{backend}"),
            &format!(
                "{first}          priority: 0\n        - name: fallback\n          priority: 1\n"
            ),
            "",
        ));
    }
    out.push_str(&rule("dns-broken", "        - name: nowhere\n", ""));
    out.push_str(&rule(
        "failover-nowhere",
        "        - name: nowhere\n          priority: 0\n        - name: fallback\n          priority: 1\n",
        "",
    ));
    for (name, endpoint) in [
        (
            "fallback",
            format!("ip:\n        address: 127.0.0.1\n        port: {fallback}"),
        ),
        (
            "nowhere",
            "fqdn:\n        hostname: nowhere.invalid\n        port: 80".to_owned(),
        ),
    ] {
        out.push_str(&format!(
            "---\napiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIServiceBackend\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  schema:\n    name: OpenAI\n  backendRef:\n    name: {name}\n    kind: Backend\n    group: gateway.envoyproxy.io\n\
---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  endpoints:\n    - {endpoint}\n\
---\napiVersion: aigateway.envoyproxy.io/v1beta1\nkind: BackendSecurityPolicy\nmetadata:\n  name: {name}-key\n  namespace: default\nspec:\n  type: APIKey\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: {name}\n  apiKey:\n    secretRef:\n      name: {name}-key\n\
---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}-key\n  namespace: default\nstringData:\n  apiKey: {name}-test-secret\n"
        ));
    }
    out
}

struct Case {
    gw: Providers,
    families: &'static [Family],
    fallback: MockUpstream,
    log: std::path::PathBuf,
    _tokens: Option<aigw_testkit::TokenEndpoint>,
    _dir: tempfile::TempDir,
}

/// The providers case with the fault rules.
async fn start() -> Case {
    let mock = MockUpstream::start("mock").await.expect("upstream");
    let text = std::fs::read_to_string(CASE)
        .expect("the providers case")
        .replace("65021", &mock.port().to_string());
    serve(mock, text, "providers", &FAMILIES, Config::loopback(), None).await
}

/// The cloud case (Vertex AI, its token endpoint) with the fault rules.
async fn start_vertex() -> Case {
    let cloud = crate::cloud::Case::start(crate::cloud::SECRET).await;
    let crate::cloud::Case {
        mock,
        text,
        config,
        tokens,
        ..
    } = cloud;
    serve(mock, text, "cloud", &VERTEX, config, Some(tokens)).await
}

async fn serve(
    mock: MockUpstream,
    text: String,
    gateway: &str,
    families: &'static [Family],
    mut config: Config,
    tokens: Option<aigw_testkit::TokenEndpoint>,
) -> Case {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    let fallback = MockUpstream::start("fallback").await.expect("upstream");
    let text = text + &rules(gateway, families, fallback.port());
    config.access_log = Some(Target::File(log.clone()));
    let gw = Providers::serve(mock, &text, config).await;
    Case {
        gw,
        families,
        fallback,
        log,
        _tokens: tokens,
        _dir: dir,
    }
}

impl Case {
    async fn faults(&self, fault: &str) -> u64 {
        let admin = self.gw.runtime.admin_addr().expect("admin");
        crate::faults::fault_count(admin, fault).await
    }

    /// The access log has a line for `model` naming `fault` (bounded wait: a line is written
    /// when its response body is dropped).
    async fn logged(&self, model: &str, fault: &str) {
        let mut found = false;
        for _ in 0..250 {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            found = text.lines().any(|line| {
                let line: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                line["request_model"] == model && line["upstream_fault"] == fault
            });
            if found {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            found,
            "no access log line for `{model}` with upstream_fault `{fault}`"
        );
    }

    /// One fault (the mock's `behavior`) on every family, whole and streamed: the single
    /// rule's answer has `status` (and `retry_after`), the failover rule is answered by
    /// `fallback`, the counter of `fault` grows and the log names it.
    async fn check(&self, behavior: &Behavior, fault: &str, status: u16, retry_after: bool) {
        self.gw.mock.set_behavior(behavior.clone());
        for (backend, model, _, _) in self.families {
            for stream in [false, true] {
                let before = self.faults(fault).await;
                let what = format!("{fault}, {backend}, stream {stream}");
                let reply = self.gw.chat(ask(model, stream)).await;
                assert_eq!(reply.status, status, "{what}: {}", reply.text());
                assert!(
                    reply.json()["error"]["message"].is_string(),
                    "{what}: the OpenAI error shape: {}",
                    reply.text()
                );
                if retry_after {
                    assert_eq!(reply.header("retry-after"), Some("7"), "{what}");
                }
                let model = format!("failover-{backend}");
                let served = self.fallback.count();
                let reply = self.gw.chat(ask(&model, stream)).await;
                assert_eq!(reply.status, 200, "{what}: failover: {}", reply.text());
                assert_eq!(
                    reply.header("x-mock-upstream"),
                    Some("fallback"),
                    "{what}: answered by the second priority"
                );
                assert_eq!(self.fallback.count(), served + 1, "{what}");
                let after = self.faults(fault).await;
                assert!(after >= before + 2, "{what}: counted {before} -> {after}");
                self.logged(&model, fault).await;
            }
        }
        self.gw.mock.set_behavior(Behavior::default());
    }
}

fn limited() -> Behavior {
    Behavior {
        status: Some(429),
        headers: vec![("retry-after".into(), "7".into())],
        ..Behavior::default()
    }
}

/// A reset, a 503 and a 429 with `Retry-After`, on each family of `case`.
async fn each_fault(case: &Case) {
    let reset = Behavior {
        reset: true,
        ..Behavior::default()
    };
    case.check(&reset, "closed", 502, false).await;
    let unavailable = Behavior {
        status: Some(503),
        ..Behavior::default()
    };
    case.check(&unavailable, "status_5xx", 503, false).await;
    case.check(&limited(), "status_429", 429, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_of_each_family_fails_over_or_answers_in_the_clients_shape() {
    let case = start().await;
    each_fault(&case).await;
    let limited = limited();

    // An Anthropic client gets the 429 in its own shape, with the header.
    case.gw.mock.set_behavior(limited);
    let reply = case
        .gw
        .post(
            "/anthropic/v1/messages",
            serde_json::json!({"model": "claude-direct", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert_eq!(reply.status, 429, "{}", reply.text());
    assert_eq!(reply.json()["type"], "error", "{}", reply.text());
    assert!(reply.json()["error"]["message"].is_string());
    assert_eq!(reply.header("retry-after"), Some("7"));
    case.gw.mock.set_behavior(Behavior::default());
    case.gw.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_of_gemini_and_claude_on_vertex_fails_over_or_answers_in_the_clients_shape() {
    let case = start_vertex().await;
    each_fault(&case).await;
    slow_and_stalled(&case).await;
    case.gw.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_and_stalled_bodies_of_each_family_end_at_the_rule_timeout() {
    let case = start().await;
    slow_and_stalled(&case).await;
    case.gw.runtime.shutdown().await;
}

/// Headers past the rule's timeout and a body that stalls, on each family of `case`.
async fn slow_and_stalled(case: &Case) {
    case.gw.mock.set_behavior(Behavior {
        delay: Duration::from_secs(3),
        ..Behavior::default()
    });
    for (backend, _, _, _) in case.families {
        for stream in [false, true] {
            let before = case.faults("timeout").await;
            let model = format!("slow-{backend}");
            let reply = case.gw.chat(ask(&model, stream)).await;
            assert_eq!(
                reply.status,
                504,
                "{backend}, stream {stream}: {}",
                reply.text()
            );
            assert!(reply.json()["error"]["message"].is_string());
            assert!(case.faults("timeout").await > before, "{backend}");
            case.logged(&model, "timeout").await;
        }
    }
    // The head arrives, then half the body, then nothing: a translated answer is read whole
    // first, so the client gets a 504; a passed-through one has sent its 200 already, so its
    // body ends in an error instead of looking whole. Either way the fault is counted.
    case.gw.mock.set_behavior(Behavior {
        stall_body: true,
        ..Behavior::default()
    });
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    for &(backend, _, translated, _) in case.families {
        let before = case.faults("timeout").await;
        let model = format!("slow-{backend}");
        let request = http::Request::post(case.gw.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(ask(&model, false).to_string())))
            .expect("request");
        let response = client.request(request).await.expect("a head");
        let status = response.status().as_u16();
        let body = response.into_body().collect().await;
        if translated {
            assert_eq!(status, 504, "{backend}");
            let body = body.expect("the 504's body").to_bytes();
            let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            assert!(error["error"]["message"].is_string(), "{backend}: {error}");
        } else {
            assert_eq!(status, 200, "{backend}: the head was passed on");
            assert!(body.is_err(), "{backend}: a cut body does not look whole");
        }
        assert!(case.faults("timeout").await > before, "{backend}");
        case.logged(&model, "timeout").await;
    }
    case.gw.mock.set_behavior(Behavior::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_fails_over_or_is_a_502() {
    let case = start().await;
    for stream in [false, true] {
        let before = case.faults("dns").await;
        let reply = case.gw.chat(ask("dns-broken", stream)).await;
        assert_eq!(reply.status, 502, "{}", reply.text());
        assert_eq!(reply.json()["error"]["type"], "upstream_error");
        assert!(
            !reply.text().contains("nowhere-test-secret"),
            "no credential in the error"
        );
        let reply = case.gw.chat(ask("failover-nowhere", stream)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("x-mock-upstream"), Some("fallback"));
        assert!(case.faults("dns").await >= before + 2);
        case.logged("failover-nowhere", "dns").await;
    }
    case.gw.runtime.shutdown().await;
}

/// Cohere's rerank, passed through to a Cohere backend: each fault reaches the Cohere client as
/// an error in Cohere's shape (`message`; a backend's body that is not in it is carried in it),
/// with the status that says what happened and the provider's `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_of_a_cohere_rerank_answers_in_cohere_s_shape() {
    let case = start().await;
    let body = serde_json::json!({
        "model": "rerank-v3.5",
        "query": "capital?",
        "documents": ["Carson City", "Washington, D.C."],
    });
    let reset = Behavior {
        reset: true,
        ..Behavior::default()
    };
    let unavailable = Behavior {
        status: Some(503),
        ..Behavior::default()
    };
    for (behavior, fault, status) in [
        (reset, "closed", 502),
        (unavailable, "status_5xx", 503),
        (limited(), "status_429", 429),
    ] {
        case.gw.mock.set_behavior(behavior);
        let before = case.faults(fault).await;
        let reply = case.gw.post("/cohere/v2/rerank", body.clone()).await;
        assert_eq!(reply.status, status, "{fault}: {}", reply.text());
        let json = reply.json();
        assert!(
            json["message"].is_string(),
            "{fault}: Cohere's shape: {json}"
        );
        if status == 429 {
            assert_eq!(reply.header("retry-after"), Some("7"));
        }
        assert!(case.faults(fault).await > before, "{fault}");
        case.logged("rerank-v3.5", fault).await;
    }
    case.gw.mock.set_behavior(Behavior::default());
    case.gw.runtime.shutdown().await;
}
