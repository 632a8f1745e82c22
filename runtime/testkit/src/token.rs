//! A loopback OAuth2 token endpoint, strict as the real ones: it issues access tokens only to
//! a request that proves itself.
//! - `POST /token`, Google's JWT-bearer grant: the assertion must be an RS256 JWT that
//!   verifies with the service account's public key, addressed (`aud`) to this endpoint,
//!   issued by the account's email, for the `cloud-platform` scope, and not expired;
//! - `POST /{tenant}/oauth2/v2.0/token`, Azure's client-credentials grant: the tenant, client
//!   id, client secret and the Cognitive Services scope must match.
//!
//! - with a [`Federation`], an OIDC provider and the services that exchange its tokens
//!   (`identity.rs`), and Azure's grant takes the provider's token as the client assertion.
//!
//! Anything else is refused as the real endpoints refuse it (`400 invalid_grant`, `401
//! invalid_client`). Tokens are `gcp-token-<n>` and `azure-token-<n>`; the lifetime they are
//! given, a delay before answering, and a failure mode can be changed while it runs. The
//! assertions it accepted are kept, for the oracle that verifies them again.

use crate::identity::{Federation, Seen};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// Who the endpoint issues tokens to.
#[derive(Clone, Debug)]
pub struct Accounts {
    /// The service account's email and its public key (PEM).
    pub gcp_email: String,
    pub gcp_public_key: Vec<u8>,
    pub azure_tenant: String,
    pub azure_client_id: String,
    pub azure_client_secret: String,
    /// The OIDC provider and the exchanges of its tokens; `None`: not served.
    pub federation: Option<Federation>,
}

#[derive(Debug)]
struct State {
    accounts: Accounts,
    addr: SocketAddr,
    issued: AtomicU64,
    /// Exchanges received, refused ones included.
    exchanges: AtomicU64,
    control: Mutex<Control>,
    assertions: Mutex<Vec<String>>,
    federated: Mutex<Vec<Seen>>,
}

#[derive(Clone, Debug)]
struct Control {
    lifetime: u64,
    delay: Duration,
    /// Answer every exchange with this status (a broken endpoint).
    failing: Option<StatusCode>,
}

/// The running endpoint; stops when dropped.
pub struct TokenEndpoint {
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    scope: String,
}

impl TokenEndpoint {
    pub async fn start(accounts: Accounts) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let state = Arc::new(State {
            accounts,
            addr: listener.local_addr()?,
            issued: AtomicU64::new(0),
            exchanges: AtomicU64::new(0),
            control: Mutex::new(Control {
                lifetime: 3599,
                delay: Duration::ZERO,
                failing: None,
            }),
            assertions: Mutex::default(),
            federated: Mutex::default(),
        });
        let task = tokio::spawn(serve(listener, state.clone()));
        Ok(TokenEndpoint { state, task })
    }

    pub fn port(&self) -> u16 {
        self.state.addr.port()
    }

    /// `http://127.0.0.1:<port>`: Azure's authority host.
    pub fn authority(&self) -> String {
        format!("http://{}", self.state.addr)
    }

    /// Google's `token_uri`.
    pub fn token_uri(&self) -> String {
        format!("http://{}/token", self.state.addr)
    }

    /// The OIDC provider's issuer URL.
    pub fn issuer(&self) -> String {
        crate::identity::issuer(self.state.addr)
    }

    /// `AWS_ENDPOINT_URL_STS`.
    pub fn aws_sts(&self) -> String {
        format!("http://{}/aws-sts", self.state.addr)
    }

    /// Google's STS base URL.
    pub fn gcp_sts(&self) -> String {
        format!("http://{}/gcp-sts", self.state.addr)
    }

    /// Google's IAM Credentials base URL.
    pub fn gcp_iam_credentials(&self) -> String {
        format!("http://{}/gcp-iam", self.state.addr)
    }

    /// An OIDC token of the provider, for a token file (IRSA's `AWS_WEB_IDENTITY_TOKEN_FILE`,
    /// Azure's `AZURE_FEDERATED_TOKEN_FILE`, a GCP external account's `credential_source`);
    /// `None` without a federation.
    pub fn oidc_token(&self) -> Option<String> {
        let federation = self.state.accounts.federation.as_ref()?;
        crate::identity::mint(federation, self.state.addr, 3600)
    }

    /// The requests the federated services received, in order.
    pub fn federated(&self) -> Vec<Seen> {
        crate::lock(&self.state.federated).clone()
    }

    /// The `expires_in` of tokens issued from now on.
    pub fn set_lifetime(&self, seconds: u64) {
        self.control().lifetime = seconds;
    }

    pub fn set_delay(&self, delay: Duration) {
        self.control().delay = delay;
    }

    pub fn set_failing(&self, status: Option<StatusCode>) {
        self.control().failing = status;
    }

    /// Exchanges received so far.
    pub fn exchanges(&self) -> u64 {
        self.state.exchanges.load(Ordering::SeqCst)
    }

    /// The JWT assertions accepted so far.
    pub fn assertions(&self) -> Vec<String> {
        crate::lock(&self.state.assertions).clone()
    }

    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        crate::lock(&self.state.control)
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    crate::serve_each(listener, move |request| {
        let state = state.clone();
        async move { answer(&state, request).await }
    })
    .await;
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn refuse(status: StatusCode, error: &str, description: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        serde_json::json!({"error": error, "error_description": description}),
    )
}

async fn answer(state: &State, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    state.exchanges.fetch_add(1, Ordering::SeqCst);
    let control = crate::lock(&state.control).clone();
    tokio::time::sleep(control.delay).await;
    if let Some(status) = control.failing {
        return refuse(status, "temporarily_unavailable", "the endpoint is failing");
    }
    let path = request.uri().path().to_owned();
    let form_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/x-www-form-urlencoded");
    let authorization = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = request.into_body().collect().await else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unreadable body",
        );
    };
    let body = body.to_bytes();
    if let Some(federation) = &state.accounts.federation {
        let seen = Seen {
            path: path.clone(),
            authorization,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        let issued = state.issued.load(Ordering::SeqCst) + 1;
        let reply =
            crate::identity::answer(federation, state.addr, control.lifetime, issued, &seen);
        if let Some(reply) = reply {
            crate::lock(&state.federated).push(seen);
            if reply.status().is_success() {
                state.issued.fetch_add(1, Ordering::SeqCst);
            }
            return reply;
        }
    }
    if !form_type {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let accounts = &state.accounts;
    let azure_path = format!("/{}/oauth2/v2.0/token", accounts.azure_tenant);
    let prefix = if path == "/token" {
        if field("grant_type") != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            return refuse(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "jwt-bearer expected",
            );
        }
        let Some(assertion) = field("assertion") else {
            return refuse(StatusCode::BAD_REQUEST, "invalid_request", "no assertion");
        };
        if let Err(why) = verify(state, assertion) {
            return refuse(StatusCode::BAD_REQUEST, "invalid_grant", &why);
        }
        crate::lock(&state.assertions).push(assertion.to_owned());
        "gcp-token"
    } else if path == azure_path {
        let assertion = field("client_assertion");
        let proof = match (&accounts.federation, assertion) {
            (Some(federation), Some(assertion)) => {
                if let Err(why) = crate::identity::verify_oidc(federation, state.addr, assertion) {
                    return refuse(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        &format!("AADSTS700211: the client assertion is not valid: {why}"),
                    );
                }
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
            }
            _ => ("client_secret", accounts.azure_client_secret.as_str()),
        };
        let expected = [
            ("grant_type", "client_credentials"),
            ("client_id", accounts.azure_client_id.as_str()),
            proof,
            ("scope", "https://cognitiveservices.azure.com/.default"),
        ];
        if let Some((name, _)) = expected.iter().find(|(k, v)| field(k) != Some(v)) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                &format!("AADSTS7000215: `{name}` is missing or wrong."),
            );
        }
        if proof.0 == "client_assertion_type" {
            "azure-assertion-token"
        } else {
            "azure-token"
        }
    } else {
        return refuse(StatusCode::NOT_FOUND, "not_found", "no such token endpoint");
    };
    let n = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
    reply(
        StatusCode::OK,
        serde_json::json!({
            "access_token": format!("{prefix}-{n}"),
            "expires_in": control.lifetime,
            "token_type": "Bearer",
        }),
    )
}

fn verify(state: &State, assertion: &str) -> Result<(), String> {
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(&state.accounts.gcp_public_key)
        .map_err(|e| format!("the test's public key: {e}"))?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[format!("http://{}/token", state.addr)]);
    validation.set_issuer(&[&state.accounts.gcp_email]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let claims = jsonwebtoken::decode::<Claims>(assertion, &key, &validation)
        .map_err(|e| format!("Invalid JWT: {e}"))?
        .claims;
    if claims.iss != state.accounts.gcp_email
        || claims.scope != "https://www.googleapis.com/auth/cloud-platform"
    {
        return Err("Invalid JWT: wrong issuer or scope".into());
    }
    Ok(())
}
