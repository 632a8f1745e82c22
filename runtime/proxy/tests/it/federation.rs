//! Federated cloud credentials end to end: `testdata/runtime/federation.yaml` served against
//! the test upstream and the loopback identity services of `aigw_testkit::TokenEndpoint`
//! (an OIDC provider, Azure's token endpoint, Google's STS and IAM Credentials, AWS STS).
//! Each backend gets an OIDC token by the client-credentials grant and exchanges it for its
//! cloud's credential; the credential is cached; a refused exchange is a 503 that names the
//! provider and quotes no secret. botocore signs again what the gateway signed with the keys
//! STS issued, and botocore's own STS client (`tests/sdk/sts_check.py`) sends the same
//! AssumeRoleWithWebIdentity form as the gateway and parses the mock's answer.

use crate::cloud::keys;
use crate::providers::{Providers, ask, botocore_sigv4};
use aigw_proxy::Config;
use aigw_testkit::{Accounts, Federation, MockUpstream, TokenEndpoint};

const CASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/runtime/federation.yaml"
);
const ROLE: &str = "arn:aws:iam::123456789012:role/aigw-bedrock";
const AWS_KEYS: (&str, &str, &str) = (
    "ASIAFEDERATEDEXAMPLE",
    "sts-issued-secret-key/EXAMPLEKEY",
    "sts-issued-session-token",
);
const OIDC_SECRET: &str = "oidc-client-secret-value";

struct Federated {
    gw: Providers,
    tokens: TokenEndpoint,
    _keys: crate::cloud::Keys,
}

/// The gateway and the identity services; the OIDC provider expects `oidc_secret`.
async fn start(oidc_secret: &str) -> Federated {
    let keys = keys();
    let federation = Federation {
        oidc_client_id: "aigw-gateway".into(),
        oidc_client_secret: oidc_secret.into(),
        oidc_private_key: keys.private.clone().into_bytes(),
        oidc_public_key: keys.public.clone(),
        oidc_scope: "ai-gateway".into(),
        aws_role_arn: ROLE.into(),
        aws_keys: (
            AWS_KEYS.0.into(),
            AWS_KEYS.1.into(),
            AWS_KEYS.2.into(),
        ),
        gcp_audience: "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aigw-pool/providers/aigw-provider".into(),
        gcp_service_account: "vertex-caller@aigw-ci.iam.gserviceaccount.com".into(),
    };
    let tokens = TokenEndpoint::start(Accounts {
        gcp_email: String::new(),
        gcp_public_key: Vec::new(),
        azure_tenant: "aigw-ci-tenant".into(),
        azure_client_id: "00000000-aaaa-bbbb-cccc-111111111111".into(),
        azure_client_secret: "not-used-by-the-assertion".into(),
        federation: Some(federation),
    })
    .await
    .expect("identity services");
    let mock = MockUpstream::start("mock").await.expect("upstream");
    let text = std::fs::read_to_string(CASE)
        .expect("the federation case")
        .replace("65031", &mock.port().to_string())
        .replace("65032", &tokens.port().to_string());
    let mut config = Config::loopback();
    config.endpoints.azure_authority = Some(tokens.authority());
    config.endpoints.aws_sts = Some(tokens.aws_sts());
    config.endpoints.gcp_sts = Some(tokens.gcp_sts());
    config.endpoints.gcp_iam_credentials = Some(tokens.gcp_iam_credentials());
    let gw = Providers::serve(mock, &text, config).await;
    Federated {
        gw,
        tokens,
        _keys: keys,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_federated_backend_is_called_with_its_exchanged_credential() {
    let fed = start(OIDC_SECRET).await;
    let gw = &fed.gw;
    let cases = [
        (
            "azure-oidc",
            "/openai/deployments/gpt-4o-deployment/chat/completions?api-version=2025-01-01-preview",
            "Bearer azure-assertion-token-",
            vec!["/oidc/.well-known/openid-configuration", "/oidc/token"],
        ),
        (
            "gemini-impersonated",
            "/v1/projects/aigw-ci/locations/us-east5/publishers/google/models/gemini-2.5-flash:generateContent",
            "Bearer gcp-impersonated-",
            vec![
                "/oidc/.well-known/openid-configuration",
                "/oidc/token",
                "/gcp-sts/v1/token",
                "/gcp-iam/v1/projects/-/serviceAccounts/vertex-caller@aigw-ci.iam.gserviceaccount.com:generateAccessToken",
            ],
        ),
        (
            "gemini-federated",
            "/v1/projects/aigw-ci/locations/us-east5/publishers/google/models/gemini-2.5-flash:generateContent",
            "Bearer gcp-federated-",
            vec![
                "/oidc/.well-known/openid-configuration",
                "/oidc/token",
                "/gcp-sts/v1/token",
            ],
        ),
        (
            "bedrock-oidc",
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
            "AWS4-HMAC-SHA256 Credential=ASIAFEDERATEDEXAMPLE/",
            vec![
                "/oidc/.well-known/openid-configuration",
                "/oidc/token",
                "/aws-sts/",
            ],
        ),
    ];
    for (model, path, authorization, exchanges) in cases {
        let before = fed.tokens.federated().len();
        let reply = gw.chat(ask(model, false)).await;
        assert_eq!(reply.status, 200, "{model}: {}", reply.text());
        assert_eq!(reply.json()["object"], "chat.completion", "{model}");
        let seen = gw.mock.last().expect("the upstream was called");
        assert_eq!(seen.uri, path, "{model}");
        let sent = seen.header("authorization").unwrap_or_default();
        assert!(sent.starts_with(authorization), "{model}: `{sent}`");
        let called: Vec<String> = fed.tokens.federated()[before..]
            .iter()
            .map(|s| s.path.clone())
            .collect();
        assert_eq!(called, exchanges, "{model}");
        // Cached: a second request exchanges nothing.
        let reply = gw.chat(ask(model, false)).await;
        assert_eq!(reply.status, 200, "{model}: {}", reply.text());
        assert_eq!(
            fed.tokens.federated().len(),
            before + exchanges.len(),
            "{model}: the credential is reused"
        );
    }
    // Azure's grant carried the OIDC token as the client assertion (the endpoint verified it).
    assert!(fed.tokens.exchanges() >= 1);
    // STS was asked for the role, with the reference's session name.
    let sts = fed
        .tokens
        .federated()
        .into_iter()
        .find(|s| s.path == "/aws-sts/")
        .expect("STS was called");
    let form: Vec<(String, String)> = form_urlencoded::parse(sts.body.as_bytes())
        .into_owned()
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("RoleArn"), Some(ROLE));
    assert_eq!(field("RoleSessionName"), Some("ai-gateway-bedrock-oidc"));
    // The session token STS issued signs the Bedrock call.
    let seen = gw
        .mock
        .requests()
        .into_iter()
        .rfind(|r| r.uri.starts_with("/model/"))
        .expect("bedrock was called");
    assert_eq!(seen.header("x-amz-security-token"), Some(AWS_KEYS.2));
    assert!(
        seen.header("authorization")
            .is_some_and(|a| a.contains("/us-east-1/bedrock/aws4_request")),
        "{:?}",
        seen.header("authorization")
    );
    let Some(python) = aigw_testkit::python("sigv4 oracle", &["botocore"]) else {
        return;
    };
    let (ok, report) = botocore_sigv4(&python, &seen, gw.mock.port(), AWS_KEYS);
    assert!(
        ok,
        "botocore disagrees with the signature made with STS's keys:\n{report}"
    );
}

/// botocore's own STS client sends AssumeRoleWithWebIdentity to the mock with the gateway's
/// parameters: its form must equal the gateway's, and it must parse the mock's answer into
/// the keys the mock issues (so the XML the gateway reads is what AWS's SDKs read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_sends_the_same_assume_role_form_and_reads_the_same_answer() {
    let Some(python) = aigw_testkit::python("STS oracle", &["botocore"]) else {
        return;
    };
    let fed = start(OIDC_SECRET).await;
    let reply = fed.gw.chat(ask("bedrock-oidc", false)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let ours = fed
        .tokens
        .federated()
        .into_iter()
        .find(|s| s.path == "/aws-sts/")
        .expect("STS was called");
    let pairs = |body: &str| {
        let mut form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        form.sort();
        form
    };
    let our_form = pairs(&ours.body);
    let field = |name: &str| {
        our_form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/sts_check.py");
    let args = [
        fed.tokens.aws_sts(),
        field("RoleArn"),
        field("RoleSessionName"),
        field("WebIdentityToken"),
    ];
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args(args)
            .output()
    })
    .await
    .expect("joined")
    .expect("python runs");
    let report = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    let parsed: serde_json::Value =
        serde_json::from_str(report.lines().next().unwrap_or_default()).expect("JSON verdict");
    assert_eq!(parsed["AccessKeyId"], AWS_KEYS.0, "{report}");
    assert_eq!(parsed["SecretAccessKey"], AWS_KEYS.1, "{report}");
    assert_eq!(parsed["SessionToken"], AWS_KEYS.2, "{report}");
    assert!(
        parsed["Expiration"]
            .as_str()
            .is_some_and(|e| e.starts_with("20")),
        "{report}"
    );
    let theirs = fed
        .tokens
        .federated()
        .into_iter()
        .rfind(|s| s.path.starts_with("/aws-sts"))
        .expect("botocore called STS");
    assert_eq!(
        pairs(&theirs.body),
        our_form,
        "botocore's form differs from ours"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_oidc_client_fails_the_request_and_quotes_no_secret() {
    let fed = start("the-provider-expects-another-secret").await;
    for model in ["azure-oidc", "gemini-impersonated", "bedrock-oidc"] {
        let reply = fed.gw.chat(ask(model, false)).await;
        assert_eq!(reply.status, 503, "{model}: {}", reply.text());
        let message = reply.error_message();
        assert!(
            message.contains("OIDC provider `http://127.0.0.1:")
                && message.contains("invalid_client"),
            "{model}: {message}"
        );
        assert!(!message.contains(OIDC_SECRET), "{model}: {message}");
    }
    assert!(
        fed.gw.mock.requests().is_empty(),
        "nothing was sent unsigned"
    );
}
