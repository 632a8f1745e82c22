//! Ambient cloud credentials end to end (issue #22): `testdata/runtime/ambient.yaml` (cloud
//! backends that no policy targets) compiled to a table and served by the real `aigw-proxy`
//! binary, in a process of its own whose environment is what a pod or VM would give it. The
//! loopback services of the testkit stand in for the clouds: AWS STS for IRSA's web identity,
//! the EKS Pod Identity agent, IMDSv2, the GCE metadata server, Google's STS and IAM
//! Credentials for an external account, and Azure's token endpoint. Each backend is called with
//! the credential its chain picked, and botocore re-verifies the SigV4 signature made with the
//! keys the service handed out. Without any of them, each request is a 503 that names what was
//! looked for, and nothing is sent upstream.

use crate::cloud::keys;
use crate::providers::{ask, botocore_sigv4};
use aigw_testkit::{
    Accounts, Federation, IMDS_KEYS, IMDS_ROLE, Metadata, MetadataServer, MockUpstream,
    POD_IDENTITY_KEYS, Recorded, TokenEndpoint, free_port,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/runtime/ambient.yaml"
);
const ROLE: &str = "arn:aws:iam::123456789012:role/aigw-irsa";
const STS_KEYS: (&str, &str, &str) = (
    "ASIAIRSAEXAMPLE",
    "irsa-sts-secret-key/EXAMPLEKEY",
    "irsa-sts-session-token",
);
const POD_TOKEN: &str = "eks-pod-identity-projected-token";
const SERVICE_ACCOUNT: &str = "vertex-caller@aigw-ci.iam.gserviceaccount.com";
const AZURE_TENANT: &str = "aigw-ci-tenant";
const AZURE_CLIENT: &str = "00000000-aaaa-bbbb-cccc-222222222222";
const AZURE_SECRET: &str = "ambient-azure-client-secret";
const BEDROCK: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const KEY_EMAIL: &str = "ambient-key@aigw-ci.iam.gserviceaccount.com";

/// The clouds' services and the test upstream, shared by every gateway process of a test.
struct Clouds {
    mock: MockUpstream,
    tokens: TokenEndpoint,
    metadata: MetadataServer,
    dir: tempfile::TempDir,
    keys: crate::cloud::Keys,
}

impl Clouds {
    async fn start() -> Self {
        let keys = keys();
        let federation = Federation {
            oidc_client_id: "aigw-workload".into(),
            oidc_client_secret: "not-used-by-token-files".into(),
            oidc_private_key: keys.private.clone().into_bytes(),
            oidc_public_key: keys.public.clone(),
            oidc_scope: "ai-gateway".into(),
            aws_role_arn: ROLE.into(),
            aws_keys: (STS_KEYS.0.into(), STS_KEYS.1.into(), STS_KEYS.2.into()),
            gcp_audience: "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aigw-pool/providers/aigw-provider".into(),
            gcp_service_account: SERVICE_ACCOUNT.into(),
        };
        let tokens = TokenEndpoint::start(Accounts {
            gcp_email: KEY_EMAIL.into(),
            gcp_public_key: keys.public.clone(),
            azure_tenant: AZURE_TENANT.into(),
            azure_client_id: AZURE_CLIENT.into(),
            azure_client_secret: AZURE_SECRET.into(),
            federation: Some(federation),
        })
        .await
        .expect("identity services");
        let metadata = MetadataServer::start(Metadata {
            pod_identity_token: POD_TOKEN.into(),
        })
        .await
        .expect("metadata services");
        let mock = MockUpstream::start("mock").await.expect("upstream");
        Clouds {
            mock,
            tokens,
            metadata,
            dir: tempfile::tempdir().expect("temp dir"),
            keys,
        }
    }

    /// A file in the test's directory.
    fn file(&self, name: &str, contents: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write");
        path.to_str().expect("utf-8 path").to_owned()
    }

    /// A projected token, as Kubernetes mounts it for IRSA, Azure and GCP workload identity
    /// (the token alone, no newline: the AWS SDK sends the file's bytes as they are).
    fn token_file(&self, name: &str) -> String {
        let token = self.tokens.oidc_token().expect("an OIDC token");
        self.file(name, &token)
    }
}

/// The `aigw-proxy` process; killed when dropped.
struct Gateway {
    child: Child,
    port: u16,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// Compiles the case against `clouds.mock` and serves it with exactly `env` (and an empty
    /// home, so no credentials file of the machine is found).
    async fn start(clouds: &Clouds, name: &str, env: &[(&str, String)]) -> Self {
        let port = free_port();
        let text = std::fs::read_to_string(CASE)
            .expect("the ambient case")
            .replace("65040", &port.to_string())
            .replace("65041", &clouds.mock.port().to_string());
        let mut sources = aigw_diag::SourceMap::new();
        sources.add("ambient.yaml", text);
        let checked = aigw_compiler::check(sources, aigw_compiler::CheckOptions::default());
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        let warned = checked
            .diagnostics
            .iter()
            .filter(|d| d.code() == aigw_diag::codes::MISSING_CREDENTIALS)
            .count();
        assert_eq!(warned, 3, "each backend is warned of its ambient chain");
        let table =
            aigw_compiler::compile::artifacts(&checked, &[aigw_compiler::compile::Target::Table])
                .expect("the table");
        let table_path = clouds.dir.path().join(format!("{name}.table.json"));
        std::fs::write(&table_path, &table[0].bytes).expect("write the table");
        let home = clouds.dir.path().join(format!("{name}-home"));
        std::fs::create_dir_all(&home).expect("home");
        let admin = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_aigw-proxy"))
            .arg("--table")
            .arg(&table_path)
            .args(["--bind", "127.0.0.1", "--admin-port", &admin.to_string()])
            .env_clear()
            .env("HOME", &home)
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("aigw-proxy starts");
        let client = Client::builder(TokioExecutor::new()).build_http();
        let gateway = Gateway {
            child,
            port,
            client,
        };
        gateway.ready(admin).await;
        gateway
    }

    async fn ready(&self, admin: u16) {
        let mut ready = false;
        for _ in 0..200 {
            let request = http::Request::get(format!("http://127.0.0.1:{admin}/ready"))
                .body(Full::new(Bytes::new()))
                .expect("request");
            let answer =
                tokio::time::timeout(Duration::from_secs(1), self.client.request(request)).await;
            if let Ok(Ok(response)) = answer
                && response.status() == 200
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "aigw-proxy did not become ready within 10 s");
    }

    /// A chat for `model`: status and body.
    async fn chat(&self, model: &str) -> (u16, serde_json::Value) {
        let request = http::Request::post(format!(
            "http://127.0.0.1:{}/v1/chat/completions",
            self.port
        ))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(ask(model, false).to_string())))
        .expect("request");
        let response = tokio::time::timeout(Duration::from_secs(20), self.client.request(request))
            .await
            .expect("an answer in time")
            .expect("an answer");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }
}

/// The request the mock received on a path containing `part`.
fn received(mock: &MockUpstream, part: &str) -> Recorded {
    mock.requests()
        .into_iter()
        .rev()
        .find(|r| r.uri.contains(part))
        .expect("a request on the path")
}

fn authorization(seen: &Recorded) -> &str {
    seen.headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// botocore signs the received Bedrock request again with `keys` and must agree.
fn botocore_agrees(mock: &MockUpstream, keys: (&str, &str, &str), chain: &str) {
    let seen = received(mock, "/converse");
    let auth = authorization(&seen);
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={}/", keys.0)),
        "{chain}: signed with other keys: {auth}"
    );
    assert_eq!(
        seen.headers
            .get("x-amz-security-token")
            .and_then(|v| v.to_str().ok()),
        Some(keys.2),
        "{chain}: the session token"
    );
    let Some(python) = aigw_testkit::python("sigv4 oracle", &["botocore"]) else {
        return;
    };
    let (ok, report) = botocore_sigv4(&python, &seen, mock.port(), keys);
    assert!(
        ok,
        "{chain}: botocore disagrees with the signature:\n{report}"
    );
}

fn base_env(clouds: &Clouds) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_REGION", "us-east-1".into()),
        ("GOOGLE_CLOUD_LOCATION", "us-central1".into()),
        ("AZURE_AUTHORITY_HOST", clouds.tokens.authority()),
        // The real addresses are never probed from a test.
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        (
            "GCE_METADATA_HOST",
            format!("127.0.0.1:{}", crate::harness::dead_port()),
        ),
    ]
}

/// IRSA's web identity for AWS, the metadata server for GCP, the environment's client secret
/// for Azure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irsa_the_gce_metadata_server_and_an_azure_client_secret_are_picked_up() {
    let clouds = Clouds::start().await;
    let mut env = base_env(&clouds);
    env.retain(|(k, _)| *k != "GCE_METADATA_HOST");
    env.extend([
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            clouds.token_file("irsa-token"),
        ),
        ("AWS_ROLE_ARN", ROLE.to_owned()),
        ("AWS_ROLE_SESSION_NAME", "aigw-ambient".to_owned()),
        ("AWS_ENDPOINT_URL_STS", clouds.tokens.aws_sts()),
        ("GCE_METADATA_HOST", clouds.metadata.gce_metadata_host()),
        ("AZURE_CLIENT_ID", AZURE_CLIENT.to_owned()),
        ("AZURE_TENANT_ID", AZURE_TENANT.to_owned()),
        ("AZURE_CLIENT_SECRET", AZURE_SECRET.to_owned()),
    ]);
    let gw = Gateway::start(&clouds, "irsa", &env).await;

    let (status, body) = gw.chat(BEDROCK).await;
    assert_eq!(status, 200, "{body}");
    botocore_agrees(&clouds.mock, STS_KEYS, "web identity");
    let sts = clouds
        .tokens
        .federated()
        .into_iter()
        .find(|s| s.path.starts_with("/aws-sts"))
        .expect("STS was called");
    assert!(
        sts.body.contains("Action=AssumeRoleWithWebIdentity"),
        "{}",
        sts.body
    );
    assert!(
        sts.body.contains("RoleSessionName=aigw-ambient"),
        "{}",
        sts.body
    );

    let (status, body) = gw.chat("gemini-2.5-flash").await;
    assert_eq!(status, 200, "{body}");
    let seen = received(&clouds.mock, ":generateContent");
    assert!(
        seen.uri.starts_with(&format!(
            "/v1/projects/{}/locations/us-central1/publishers/google/models/gemini-2.5-flash",
            aigw_testkit::GCP_PROJECT
        )),
        "the metadata server's project: {}",
        seen.uri
    );
    assert_eq!(authorization(&seen), "Bearer gce-metadata-token-1");

    let (status, body) = gw.chat("gpt-4o").await;
    assert_eq!(status, 200, "{body}");
    let seen = received(&clouds.mock, "/openai/deployments/gpt-4o/");
    assert!(
        authorization(&seen).starts_with("Bearer azure-token-"),
        "{seen:?}"
    );

    // Cached: a second round asks no service again.
    let before = (clouds.tokens.exchanges(), clouds.metadata.calls().len());
    for model in [BEDROCK, "gemini-2.5-flash", "gpt-4o"] {
        assert_eq!(gw.chat(model).await.0, 200);
    }
    assert_eq!(
        before,
        (clouds.tokens.exchanges(), clouds.metadata.calls().len())
    );
}

/// EKS Pod Identity for AWS, an external account file (workload identity federation with
/// impersonation) for GCP, Azure workload identity's token file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_identity_an_external_account_and_azure_workload_identity_are_picked_up() {
    let clouds = Clouds::start().await;
    let subject = clouds.token_file("gcp-subject-token");
    let account = serde_json::json!({
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aigw-pool/providers/aigw-provider",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/v1/token", clouds.tokens.gcp_sts()),
        "service_account_impersonation_url": format!(
            "{}/v1/projects/-/serviceAccounts/{SERVICE_ACCOUNT}:generateAccessToken",
            clouds.tokens.gcp_iam_credentials()
        ),
        "credential_source": {"file": subject},
        "quota_project_id": "aigw-external-project",
    });
    let mut env = base_env(&clouds);
    env.extend([
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            clouds.metadata.pod_identity_uri(),
        ),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            clouds.file("pod-token", POD_TOKEN),
        ),
        (
            "GOOGLE_APPLICATION_CREDENTIALS",
            clouds.file("external-account.json", &account.to_string()),
        ),
        ("AZURE_CLIENT_ID", AZURE_CLIENT.to_owned()),
        ("AZURE_TENANT_ID", AZURE_TENANT.to_owned()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            clouds.token_file("azure-token"),
        ),
    ]);
    let gw = Gateway::start(&clouds, "pod", &env).await;

    let (status, body) = gw.chat(BEDROCK).await;
    assert_eq!(status, 200, "{body}");
    botocore_agrees(&clouds.mock, POD_IDENTITY_KEYS, "EKS Pod Identity");
    let call = clouds
        .metadata
        .calls()
        .into_iter()
        .find(|c| c.path == "/v1/credentials")
        .expect("the Pod Identity agent was called");
    assert_eq!(
        call.headers.get("authorization").map(|v| v.as_bytes()),
        Some(POD_TOKEN.as_bytes())
    );

    let (status, body) = gw.chat("gemini-2.5-flash").await;
    assert_eq!(status, 200, "{body}");
    let seen = received(&clouds.mock, ":generateContent");
    assert!(
        seen.uri
            .starts_with("/v1/projects/aigw-external-project/locations/us-central1/"),
        "the file's quota project: {}",
        seen.uri
    );
    let paths: Vec<String> = clouds
        .tokens
        .federated()
        .into_iter()
        .map(|s| s.path)
        .collect();
    assert!(paths.iter().any(|p| p == "/gcp-sts/v1/token"), "{paths:?}");
    assert!(
        paths.iter().any(|p| p.contains(":generateAccessToken")),
        "impersonated: {paths:?}"
    );
    assert!(authorization(&seen).starts_with("Bearer "), "{seen:?}");
    assert!(
        !authorization(&seen).contains("gcp-federated-"),
        "the impersonated token is used"
    );

    let (status, body) = gw.chat("gpt-4o").await;
    assert_eq!(status, 200, "{body}");
    let seen = received(&clouds.mock, "/openai/deployments/gpt-4o/");
    assert!(
        authorization(&seen).starts_with("Bearer azure-assertion-token-"),
        "{seen:?}"
    );
}

/// IMDSv2 for AWS: a session token first, then the role and its keys, each with the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imdsv2_is_the_last_link_of_the_aws_chain() {
    let clouds = Clouds::start().await;
    let mut env = base_env(&clouds);
    env.retain(|(k, _)| *k != "AWS_EC2_METADATA_DISABLED");
    env.push((
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        clouds.metadata.imds_endpoint(),
    ));
    let gw = Gateway::start(&clouds, "imds", &env).await;
    let (status, body) = gw.chat(BEDROCK).await;
    assert_eq!(status, 200, "{body}");
    botocore_agrees(&clouds.mock, IMDS_KEYS, "IMDSv2");
    let calls: Vec<(String, String)> = clouds
        .metadata
        .calls()
        .into_iter()
        .map(|c| (c.method.to_string(), c.path))
        .collect();
    let role = format!("/latest/meta-data/iam/security-credentials/{IMDS_ROLE}");
    let token_at = calls
        .iter()
        .position(|c| c == &("PUT".to_owned(), "/latest/api/token".to_owned()))
        .expect("a session token");
    let keys_at = calls
        .iter()
        .position(|c| c.1 == role)
        .expect("the role's keys");
    assert!(token_at < keys_at, "{calls:?}");
}

/// With no source at all, every cloud backend answers 503 naming what was looked for, and
/// nothing reaches the upstream unsigned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_any_source_each_request_is_refused_and_never_sent_unsigned() {
    let clouds = Clouds::start().await;
    let gw = Gateway::start(&clouds, "none", &base_env(&clouds)).await;
    for (model, names) in [
        (BEDROCK, "AWS default credential chain"),
        ("gemini-2.5-flash", "metadata"),
        ("gpt-4o", "AZURE_CLIENT_ID"),
    ] {
        let (status, body) = gw.chat(model).await;
        assert_eq!(status, 503, "{model}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("backend `default/"), "{message}");
        assert!(message.contains(names), "{model}: {message}");
    }
    assert_eq!(clouds.mock.count(), 0, "nothing was sent upstream");
}

/// The first links of the AWS chain: the environment's keys, then the shared credentials file
/// under `AWS_PROFILE`; and a service-account key file as GCP's Application Default
/// Credentials, whose `project_id` names the project.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_keys_and_a_shared_credentials_profile_are_picked_up() {
    const ENV_KEYS: (&str, &str, &str) = ("AKIAENVEXAMPLE", "env-secret/EXAMPLEKEY", "env-session");
    const FILE_KEYS: (&str, &str, &str) =
        ("AKIAFILEEXAMPLE", "file-secret/EXAMPLEKEY", "file-session");
    let clouds = Clouds::start().await;
    let key_file = serde_json::json!({
        "type": "service_account",
        "project_id": "aigw-key-project",
        "private_key_id": "k1",
        "private_key": clouds.keys.private,
        "client_email": KEY_EMAIL,
        "token_uri": clouds.tokens.token_uri(),
    });
    let mut env = base_env(&clouds);
    env.extend([
        (
            "GOOGLE_APPLICATION_CREDENTIALS",
            clouds.file("service-account.json", &key_file.to_string()),
        ),
        ("AWS_ACCESS_KEY_ID", ENV_KEYS.0.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", ENV_KEYS.1.to_owned()),
        ("AWS_SESSION_TOKEN", ENV_KEYS.2.to_owned()),
    ]);
    let gw = Gateway::start(&clouds, "env", &env).await;
    assert_eq!(gw.chat(BEDROCK).await.0, 200);
    botocore_agrees(&clouds.mock, ENV_KEYS, "environment keys");
    let (status, body) = gw.chat("gemini-2.5-flash").await;
    assert_eq!(status, 200, "{body}");
    let seen = received(&clouds.mock, ":generateContent");
    assert!(
        seen.uri
            .starts_with("/v1/projects/aigw-key-project/locations/us-central1/"),
        "the key file's project: {}",
        seen.uri
    );
    assert!(
        authorization(&seen).starts_with("Bearer gcp-token-"),
        "{seen:?}"
    );
    assert_eq!(clouds.tokens.assertions().len(), 1, "one JWT-bearer grant");
    drop(gw);

    let file = clouds.file(
        "credentials",
        &format!(
            "[default]\naws_access_key_id = AKIANOTTHISONE\naws_secret_access_key = no\n\n[ci]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n",
            FILE_KEYS.0, FILE_KEYS.1, FILE_KEYS.2
        ),
    );
    let mut env = base_env(&clouds);
    env.extend([
        ("AWS_SHARED_CREDENTIALS_FILE", file),
        ("AWS_PROFILE", "ci".to_owned()),
    ]);
    let gw = Gateway::start(&clouds, "profile", &env).await;
    assert_eq!(gw.chat(BEDROCK).await.0, 200);
    botocore_agrees(&clouds.mock, FILE_KEYS, "shared credentials profile");
}
