//! The credential services a workload finds beside it in a cloud, on loopback, as strict as the
//! real ones, for the ambient-credential tests (issue #22):
//! - EC2 instance metadata, IMDSv2 only: `PUT /latest/api/token` with
//!   `x-aws-ec2-metadata-token-ttl-seconds` (1 to 21600) gives a session token, echoing the
//!   TTL header; `GET /latest/meta-data/iam/security-credentials/` names the instance role and
//!   `GET …/{role}` gives its keys (`Code: Success`, RFC 3339 `Expiration`), each only with a
//!   valid `x-aws-ec2-metadata-token`: IMDSv1 (no token) is refused with 401, as an instance that
//!   requires IMDSv2 refuses it;
//! - the EKS Pod Identity agent: `GET /v1/credentials` with the pod's service-account token as
//!   `Authorization` gives the association's keys;
//! - the GCE metadata server: `GET /computeMetadata/v1/instance/service-accounts/default/token`
//!   and `/project/project-id`, each only with `Metadata-Flavor: Google`, answered with that
//!   header too.
//!
//! Each service hands out keys of its own, so a test knows which one the chain picked.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// AWS keys: access key id, secret key, session token.
pub type AwsKeys = (&'static str, &'static str, &'static str);

/// The instance role's keys, from IMDS.
pub const IMDS_KEYS: AwsKeys = (
    "ASIAIMDSROLEEXAMPLE",
    "imds-role-secret-key/EXAMPLEKEY",
    "imds-role-session-token",
);
/// The pod's keys, from the EKS Pod Identity agent.
pub const POD_IDENTITY_KEYS: AwsKeys = (
    "ASIAPODIDENTITYEXAMPLE",
    "pod-identity-secret-key/EXAMPLEKEY",
    "pod-identity-session-token",
);
/// The instance role IMDS names.
pub const IMDS_ROLE: &str = "aigw-instance-role";
/// The GCP project the metadata server names.
pub const GCP_PROJECT: &str = "aigw-metadata-project";

/// What the services recognise.
#[derive(Clone, Debug)]
pub struct Metadata {
    /// The token the Pod Identity agent expects as `Authorization` (the pod's projected
    /// service-account token).
    pub pod_identity_token: String,
}

/// One request received: method, path, and the credential headers sent.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub headers: http::HeaderMap,
}

struct State {
    metadata: Metadata,
    sessions: AtomicU64,
    tokens: AtomicU64,
    calls: Mutex<Vec<Call>>,
}

/// The running services; stop when dropped.
pub struct MetadataServer {
    state: Arc<State>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MetadataServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MetadataServer {
    pub async fn start(metadata: Metadata) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            metadata,
            sessions: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            calls: Mutex::default(),
        });
        let task = tokio::spawn(serve(listener, state.clone()));
        Ok(MetadataServer { state, addr, task })
    }

    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub fn imds_endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    pub fn pod_identity_uri(&self) -> String {
        format!("http://{}/v1/credentials", self.addr)
    }

    /// `GCE_METADATA_HOST`: host and port, no scheme.
    pub fn gce_metadata_host(&self) -> String {
        self.addr.to_string()
    }

    /// The requests received, in order.
    pub fn calls(&self) -> Vec<Call> {
        crate::lock(&self.state.calls).clone()
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    crate::serve_each(listener, move |request| {
        let state = state.clone();
        async move { answer(&state, &request) }
    })
    .await;
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

fn json(body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::OK, body.to_string());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn keys(keys: AwsKeys) -> serde_json::Value {
    serde_json::json!({
        "Code": "Success",
        "LastUpdated": crate::identity::rfc3339_in(0),
        "Type": "AWS-HMAC",
        "AccessKeyId": keys.0,
        "SecretAccessKey": keys.1,
        "Token": keys.2,
        "Expiration": crate::identity::rfc3339_in(6 * 3600),
    })
}

fn answer<B>(state: &State, request: &Request<B>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    crate::lock(&state.calls).push(Call {
        method: request.method().clone(),
        path: path.clone(),
        headers: request.headers().clone(),
    });
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(rest) = path.strip_prefix("/latest/") {
        return imds(state, request.method(), rest, header);
    }
    if path == "/v1/credentials" {
        if header("authorization") != Some(state.metadata.pod_identity_token.as_str()) {
            return text(
                StatusCode::UNAUTHORIZED,
                r#"{"code":"AccessDeniedException","message":"Service account token cannot be empty or is invalid"}"#.into(),
            );
        }
        let mut body = keys(POD_IDENTITY_KEYS);
        body["AccountId"] = "123456789012".into();
        return json(&body);
    }
    if let Some(rest) = path.strip_prefix("/computeMetadata/v1/") {
        if header("metadata-flavor") != Some("Google") {
            return text(
                StatusCode::FORBIDDEN,
                "Missing Metadata-Flavor:Google header.".into(),
            );
        }
        let mut response = match rest {
            "instance/service-accounts/default/token" => {
                let n = state.tokens.fetch_add(1, Ordering::SeqCst) + 1;
                json(&serde_json::json!({
                    "access_token": format!("gce-metadata-token-{n}"),
                    "expires_in": 3599,
                    "token_type": "Bearer",
                }))
            }
            "project/project-id" => text(StatusCode::OK, GCP_PROJECT.into()),
            _ => text(StatusCode::NOT_FOUND, "Not Found".into()),
        };
        response
            .headers_mut()
            .insert("metadata-flavor", HeaderValue::from_static("Google"));
        return response;
    }
    text(StatusCode::NOT_FOUND, "Not Found".into())
}

fn imds<'a>(
    state: &State,
    method: &Method,
    rest: &str,
    header: impl Fn(&str) -> Option<&'a str>,
) -> Response<Full<Bytes>> {
    if rest == "api/token" {
        let ttl = header("x-aws-ec2-metadata-token-ttl-seconds");
        let valid = ttl
            .and_then(|t| t.parse::<u32>().ok())
            .is_some_and(|t| (1..=21600).contains(&t));
        if *method != Method::PUT || !valid {
            return text(StatusCode::BAD_REQUEST, String::new());
        }
        let n = state.sessions.fetch_add(1, Ordering::SeqCst) + 1;
        let mut response = text(StatusCode::OK, format!("imds-session-{n}"));
        if let Some(ttl) = ttl.and_then(|t| HeaderValue::from_str(t).ok()) {
            response
                .headers_mut()
                .insert("x-aws-ec2-metadata-token-ttl-seconds", ttl);
        }
        return response;
    }
    let issued = state.sessions.load(Ordering::SeqCst);
    let token_ok = header("x-aws-ec2-metadata-token")
        .and_then(|t| t.strip_prefix("imds-session-"))
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| (1..=issued).contains(&n));
    if !token_ok {
        return text(StatusCode::UNAUTHORIZED, String::new());
    }
    match rest.strip_prefix("meta-data/iam/security-credentials/") {
        Some("") => text(StatusCode::OK, IMDS_ROLE.into()),
        Some(role) if role == IMDS_ROLE => json(&keys(IMDS_KEYS)),
        _ => text(StatusCode::NOT_FOUND, String::new()),
    }
}
