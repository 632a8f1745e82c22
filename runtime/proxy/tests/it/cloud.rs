//! Cloud credentials end to end: `testdata/runtime/cloud.yaml` served against the test
//! upstream and a strict loopback token endpoint (`aigw_testkit::TokenEndpoint`). Gemini and
//! Claude on Vertex AI are called with a token got by a service-account key's JWT-bearer
//! grant, Azure OpenAI with one got by client credentials; tokens are cached, refreshed five
//! minutes ahead, one refresh at a time; a failed refresh is a 503, never an unsigned call.
//! google-auth's own verifier checks the assertions the gateway signed.

use crate::providers::{Providers, ask, assert_no_client_key, events};
use aigw_proxy::Config;
use aigw_testkit::{Accounts, MockUpstream, TokenEndpoint};
use http::StatusCode;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const CASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/runtime/cloud.yaml"
);
const EMAIL: &str = "gateway@aigw-ci.iam.gserviceaccount.com";
const CLIENT_ID: &str = "00000000-aaaa-bbbb-cccc-111111111111";
pub const SECRET: &str = "azure-client-secret-value";

/// A fresh RSA key pair (PEM private key, PEM public key, the public key's file).
pub struct Keys {
    pub private: String,
    pub public: Vec<u8>,
    pub public_file: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn keys() -> Keys {
    let dir = tempfile::tempdir().expect("temp dir");
    let private = dir.path().join("key.pem");
    let public_file = dir.path().join("public.pem");
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .stderr(Stdio::null())
            .status()
            .expect("openssl (apt package `openssl`) makes the test keys");
        assert!(status.success(), "openssl {args:?}");
    };
    let private_path = private.to_str().expect("utf-8 path");
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        private_path,
    ]);
    run(&[
        "pkey",
        "-in",
        private_path,
        "-pubout",
        "-out",
        public_file.to_str().expect("utf-8 path"),
    ]);
    Keys {
        private: std::fs::read_to_string(&private).expect("key"),
        public: std::fs::read(&public_file).expect("public key"),
        public_file,
        _dir: dir,
    }
}

/// The cloud case ready to serve: a fresh key, the token endpoint, the upstream, the
/// manifests pointing at both, and the config that finds Azure's authority there.
pub struct Case {
    pub keys: Keys,
    pub tokens: TokenEndpoint,
    pub mock: MockUpstream,
    pub text: String,
    pub config: Config,
}

impl Case {
    /// The token endpoint expects `azure_secret` (the manifests give `SECRET`).
    pub async fn start(azure_secret: &str) -> Case {
        let keys = keys();
        let tokens = TokenEndpoint::start(Accounts {
            gcp_email: EMAIL.into(),
            gcp_public_key: keys.public.clone(),
            azure_tenant: "aigw-ci-tenant".into(),
            azure_client_id: CLIENT_ID.into(),
            azure_client_secret: azure_secret.into(),
            federation: None,
        })
        .await
        .expect("token endpoint");
        let mock = MockUpstream::start("mock").await.expect("upstream");
        let pem = serde_json::to_string(&keys.private).expect("json string");
        let text = std::fs::read_to_string(CASE)
            .expect("the cloud case")
            .replace("65031", &mock.port().to_string())
            .replace("65032", &tokens.port().to_string())
            .replace("PRIVATE_KEY_JSON_STRING", &pem);
        let mut config = Config::loopback();
        config.endpoints.azure_authority = Some(tokens.authority());
        Case {
            keys,
            tokens,
            mock,
            text,
            config,
        }
    }
}

struct Cloud {
    gw: Providers,
    tokens: TokenEndpoint,
    keys: Keys,
}

impl Cloud {
    async fn start() -> Self {
        Self::start_with_secret(SECRET).await
    }

    /// The token endpoint expects `azure_secret` (the manifests give `SECRET`).
    async fn start_with_secret(azure_secret: &str) -> Self {
        let case = Case::start(azure_secret).await;
        let gw = Providers::serve(case.mock, &case.text, case.config).await;
        Cloud {
            gw,
            tokens: case.tokens,
            keys: case.keys,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cloud_backend_is_called_with_its_access_token() {
    let cloud = Cloud::start().await;
    let gw = &cloud.gw;
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
        let reply = gw.chat(ask(model, false)).await;
        assert_eq!(reply.status, 200, "{model}: {}", reply.text());
        let answer = reply.json();
        assert_eq!(answer["object"], "chat.completion", "{model}");
        let seen = gw.mock.last().expect("the upstream was called");
        assert_eq!(seen.uri, path, "{model}");
        assert_no_client_key(&seen);
        let authorization = seen.header("authorization").unwrap_or_default();
        assert!(
            authorization.starts_with(token),
            "{model}: authorization `{authorization}`"
        );
        assert!(seen.header("api-key").is_none(), "{model}");
    }
    // Gemini's function calls come back as OpenAI tool calls.
    let reply = gw.chat(ask("gemini-2.5-flash", false)).await;
    let calls = &reply.json()["choices"][0]["message"]["tool_calls"];
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(reply.json()["choices"][0]["finish_reason"], "tool_calls");

    // Streamed: Gemini's SSE objects become chunks ending in usage and [DONE].
    let reply = gw.chat(ask("gemini-2.5-flash", true)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = gw.mock.last().expect("called");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_auths_verifier_accepts_the_signed_assertions() {
    let Some(python) = aigw_testkit::python("GCP JWT oracle", &["google.auth"]) else {
        return;
    };
    let cloud = Cloud::start().await;
    let reply = cloud.gw.chat(ask("gemini-2.5-flash", false)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let assertions = cloud.tokens.assertions();
    assert_eq!(assertions.len(), 1);
    let check = |input: String, expect_invalid: bool| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/jwt_check.py");
        let mut command = Command::new(&python);
        command.arg(script).arg(&cloud.keys.public_file).args([
            &cloud.tokens.token_uri(),
            EMAIL,
            "0123456789abcdef",
        ]);
        if expect_invalid {
            command.arg("--expect-invalid");
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python runs");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("python ends");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, report) = check(assertions.join("\n"), false);
    assert!(ok, "google-auth refused our assertion:\n{report}");
    assert!(report.contains("verified 1"), "{report}");
    // The oracle can fail: a tampered signature and a payload re-encoded under the old
    // signature are both refused.
    let token = &assertions[0];
    let parts: Vec<&str> = token.split('.').collect();
    // The signature's first character: all six of its bits count (the last character's low
    // bits are padding a decoder may ignore, so changing it can leave the signature intact).
    let (first, rest) = parts[2].split_at(1);
    let flipped = if first == "A" { "B" } else { "A" };
    let tampered = format!("{}.{}.{flipped}{rest}", parts[0], parts[1]);
    use base64::Engine as _;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: serde_json::Value =
        serde_json::from_slice(&url.decode(parts[1]).expect("b64")).expect("claims");
    claims["scope"] = "https://www.googleapis.com/auth/devstorage.full_control".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        url.encode(claims.to_string()),
        parts[2]
    );
    let (ok, report) = check(format!("{tampered}\n{forged}"), true);
    assert!(ok, "the oracle accepted a tampered assertion:\n{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_cached_and_fetched_once_under_concurrency() {
    let cloud = Cloud::start().await;
    // A slow endpoint: every request of the burst arrives while the one exchange is out.
    cloud.tokens.set_delay(Duration::from_millis(300));
    let gw = &cloud.gw;
    let burst = (0..16).map(|_| gw.chat(ask("gemini-2.5-flash", false)));
    for reply in futures_util::future::join_all(burst).await {
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(cloud.tokens.exchanges(), 1, "one exchange for the burst");
    let tokens: std::collections::BTreeSet<String> = gw
        .mock
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .collect();
    assert_eq!(
        tokens.into_iter().collect::<Vec<_>>(),
        ["Bearer gcp-token-1"]
    );
    // Later requests reuse it while it is more than five minutes from expiry.
    cloud.tokens.set_delay(Duration::ZERO);
    for _ in 0..3 {
        assert_eq!(gw.chat(ask("gemini-2.5-flash", false)).await.status, 200);
    }
    assert_eq!(cloud.tokens.exchanges(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_five_minutes_before_they_expire() {
    let cloud = Cloud::start().await;
    let gw = &cloud.gw;
    // Exactly five minutes of life: inside the refresh window from the start.
    cloud.tokens.set_lifetime(300);
    let authorization = |gw: &Providers| {
        gw.mock
            .last()
            .and_then(|r| r.header("authorization").map(str::to_owned))
    };
    assert_eq!(gw.chat(ask("azure-entra", false)).await.status, 200);
    assert_eq!(authorization(gw).as_deref(), Some("Bearer azure-token-1"));
    assert_eq!(gw.chat(ask("azure-entra", false)).await.status, 200);
    assert_eq!(authorization(gw).as_deref(), Some("Bearer azure-token-2"));
    assert_eq!(cloud.tokens.exchanges(), 2);
    // A failed refresh while the token is still valid: the request is served with it.
    cloud
        .tokens
        .set_failing(Some(StatusCode::INTERNAL_SERVER_ERROR));
    let reply = gw.chat(ask("azure-entra", false)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(authorization(gw).as_deref(), Some("Bearer azure-token-2"));
    assert_eq!(cloud.tokens.exchanges(), 3, "the refresh was tried");
    // Within a second of the failure the endpoint is not asked again.
    assert_eq!(gw.chat(ask("azure-entra", false)).await.status, 200);
    assert_eq!(cloud.tokens.exchanges(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_exchange_is_a_503_and_nothing_is_sent_unsigned() {
    let cloud = Cloud::start().await;
    cloud
        .tokens
        .set_failing(Some(StatusCode::SERVICE_UNAVAILABLE));
    let reply = cloud.gw.chat(ask("gemini-2.5-flash", false)).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    let message = reply.error_message();
    assert!(
        message.contains("backend `default/vertex`") && message.contains("/token"),
        "{message}"
    );
    assert!(message.contains("503"), "{message}");
    assert_eq!(cloud.gw.mock.count(), 0, "nothing reached the provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_secret_is_named_but_never_shown() {
    // The endpoint knows another secret than the manifests give.
    let cloud = Cloud::start_with_secret("the-real-secret").await;
    let reply = cloud.gw.chat(ask("azure-entra", false)).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    let text = reply.text();
    assert!(text.contains("invalid_client"), "{text}");
    assert!(text.contains("AADSTS7000215"), "{text}");
    assert!(!text.contains(SECRET), "the client secret leaked: {text}");
    assert_eq!(cloud.gw.mock.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vertex_embeddings_come_back_as_an_openai_list() {
    let cloud = Cloud::start().await;
    let gw = &cloud.gw;
    let body = serde_json::json!({
        "model": "text-embedding-005",
        "input": ["The food was delicious.", "The waiter was kind."],
        "dimensions": 4,
    });
    let reply = gw.post("/v1/embeddings", body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = gw.mock.last().expect("called");
    assert_eq!(
        seen.uri,
        "/v1/projects/aigw-ci/locations/us-east5/publishers/google/models/text-embedding-005:predict"
    );
    assert_eq!(
        seen.json(),
        serde_json::json!({
            "instances": [{"content": "The food was delicious."}, {"content": "The waiter was kind."}],
            "parameters": {"outputDimensionality": 4},
        })
    );
    assert!(
        seen.header("authorization")
            .is_some_and(|a| a.starts_with("Bearer gcp-token-"))
    );
    let answer = reply.json();
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["data"][1]["index"], 1);
    assert_eq!(answer["data"][1]["embedding"][3], 1.0);
    assert_eq!(answer["usage"]["prompt_tokens"], 10);
}

/// An Anthropic client reaches Claude on Vertex AI natively: `model` leaves the body for the
/// path, `anthropic_version` enters it; streams are relayed as Anthropic's events, and counts
/// go to `count-tokens:rawPredict` with the model in the body; all with the access token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_clients_reach_claude_on_vertex_natively() {
    let cloud = Cloud::start().await;
    let gw = &cloud.gw;
    let prefix = "/v1/projects/aigw-ci/locations/us-east5/publishers/anthropic/models/";
    let message = serde_json::json!({
        "model": "claude-vertex",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    });
    let reply = gw.post("/anthropic/v1/messages", message.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["type"], "message");
    let seen = gw.mock.last().expect("called");
    assert_eq!(
        seen.uri,
        format!("{prefix}claude-sonnet-4-5@20250929:rawPredict")
    );
    assert_eq!(
        seen.json(),
        serde_json::json!({
            "anthropic_version": "vertex-2023-10-16",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}],
        })
    );
    assert!(
        seen.header("authorization")
            .is_some_and(|a| a.starts_with("Bearer gcp-token-"))
    );
    assert_no_client_key(&seen);

    let mut streamed = message.clone();
    streamed["stream"] = true.into();
    let reply = gw.post("/anthropic/v1/messages", streamed).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = gw.mock.last().expect("called");
    assert_eq!(
        seen.uri,
        format!("{prefix}claude-sonnet-4-5@20250929:streamRawPredict")
    );
    let text = reply.text();
    assert!(text.starts_with("event: message_start\n"), "{text}");
    assert!(
        text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{text}"
    );

    let count = serde_json::json!({"model": "claude-vertex", "messages": [{"role": "user", "content": "hi"}]});
    let reply = gw.post("/anthropic/v1/messages/count_tokens", count).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), serde_json::json!({"input_tokens": 14}));
    let seen = gw.mock.last().expect("called");
    assert_eq!(seen.uri, format!("{prefix}count-tokens:rawPredict"));
    assert_eq!(seen.json()["model"], "claude-sonnet-4-5@20250929");
    assert_eq!(seen.json()["anthropic_version"], "vertex-2023-10-16");
}
