//! OAuth2 access tokens for the cloud backends, sent as `Authorization: Bearer`:
//! - Azure (`AzureCredentials` with a client secret): the client-credentials grant at
//!   `{authority}/{tenant}/oauth2/v2.0/token` for `https://cognitiveservices.azure.com/.default`,
//!   the authority from `AZURE_AUTHORITY_HOST` as Azure's SDKs read it (default
//!   `https://login.microsoftonline.com`);
//! - GCP (`GCPCredentials` with a service-account key): a JWT signed RS256 with the key
//!   (`jsonwebtoken`), exchanged by the JWT-bearer grant at the key file's own `token_uri`,
//!   for the `cloud-platform` scope, as Google's libraries do.
//!
//! A token is cached and refreshed five minutes before it expires (the reference's window).
//! One refresh runs at a time: requests that arrive meanwhile keep using the current token
//! while it is valid, or wait for the refresh. A failed refresh is logged, and for a second
//! after it requests use the still-valid token or fail at once with the same error instead
//! of queueing on a broken endpoint.
//!
//! *Invariant*: a request that needs a token and cannot get one fails with a 503 naming the
//! backend and the reason; it is never sent without credentials. Secrets (the client secret,
//! the private key, the tokens) never reach a log line or an error message: the endpoint's
//! own `error` and `error_description` are all that is quoted of its answer.

use crate::error::ProxyError;
use crate::upstream::{Client, UpstreamBody};
use http::{HeaderValue, Request, header};
use http_body_util::BodyExt;
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Refresh this long before the token expires.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);
/// After a failed refresh, the next one waits this long.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// The whole exchange, connect to last byte.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a token endpoint's answer that is read.
const ANSWER_LIMIT: usize = 64 * 1024;

const AZURE_AUTHORITY: &str = "https://login.microsoftonline.com";
const AZURE_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
const GCP_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Why a token source could not be made from its configuration (at load).
#[derive(Debug, thiserror::Error)]
pub enum TokenConfigError {
    #[error(
        "the service-account key is not a JSON key file with `client_email`, `private_key` and `token_uri`"
    )]
    NotAKeyFile,
    #[error("the service-account key's `private_key` is not an RSA private key in PEM")]
    NotAnRsaKey,
    #[error("the client secret is not UTF-8 text")]
    SecretNotText,
    #[error("the tenant id `{0}` is not a tenant id or domain name")]
    Tenant(String),
}

/// A cached, refreshed access token for one backend.
pub struct TokenSource {
    backend: Arc<str>,
    grant: Grant,
    client: Client,
    current: Mutex<Option<Token>>,
    /// Held by the one refresh in flight; the time and reason of the last failure.
    refresh: tokio::sync::Mutex<Option<(Instant, String)>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("backend", &self.backend)
            .field("endpoint", &self.grant.endpoint())
            .finish_non_exhaustive()
    }
}

enum Grant {
    Azure {
        url: String,
        client_id: String,
        client_secret: String,
    },
    Gcp {
        token_uri: String,
        client_email: String,
        key_id: Option<String>,
        key: jsonwebtoken::EncodingKey,
    },
}

impl Grant {
    fn endpoint(&self) -> &str {
        match self {
            Grant::Azure { url, .. } => url,
            Grant::Gcp { token_uri, .. } => token_uri,
        }
    }
}

#[derive(Clone)]
struct Token {
    value: HeaderValue,
    expires: Instant,
}

/// The fields of a service-account key file that the exchange uses.
#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    token_uri: String,
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct Answer {
    access_token: String,
    /// Seconds; some endpoints send it as a string.
    expires_in: Seconds,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(u64),
    Text(String),
}

#[derive(Deserialize)]
struct Refusal {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

impl TokenSource {
    /// Azure's client-credentials grant for `tenant`; `authority` is `AZURE_AUTHORITY_HOST`.
    pub fn azure(
        backend: Arc<str>,
        tenant: &str,
        client_id: &str,
        secret: &[u8],
        authority: Option<&str>,
        client: Client,
    ) -> Result<Self, TokenConfigError> {
        let tenant_ok = !tenant.is_empty()
            && tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !tenant_ok {
            return Err(TokenConfigError::Tenant(tenant.to_owned()));
        }
        let secret = std::str::from_utf8(secret).map_err(|_| TokenConfigError::SecretNotText)?;
        let authority = authority
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .unwrap_or(AZURE_AUTHORITY)
            .trim_end_matches('/');
        Ok(Self::new(
            backend,
            Grant::Azure {
                url: format!("{authority}/{tenant}/oauth2/v2.0/token"),
                client_id: client_id.to_owned(),
                // Mounted secrets often end with a newline.
                client_secret: secret.trim().to_owned(),
            },
            client,
        ))
    }

    /// A service-account key file's JWT-bearer grant.
    pub fn gcp(
        backend: Arc<str>,
        key_file: &[u8],
        client: Client,
    ) -> Result<Self, TokenConfigError> {
        // The parse error is not quoted: it could carry part of the key.
        let file: KeyFile =
            serde_json::from_slice(key_file).map_err(|_| TokenConfigError::NotAKeyFile)?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(file.private_key.as_bytes())
            .map_err(|_| TokenConfigError::NotAnRsaKey)?;
        Ok(Self::new(
            backend,
            Grant::Gcp {
                token_uri: file.token_uri,
                client_email: file.client_email,
                key_id: file.private_key_id,
                key,
            },
            client,
        ))
    }

    fn new(backend: Arc<str>, grant: Grant, client: Client) -> Self {
        TokenSource {
            backend,
            grant,
            client,
            current: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<Token> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The `authorization` value for the next request to the backend.
    pub async fn header(&self) -> Result<HeaderValue, ProxyError> {
        let cached = self.cached();
        if let Some(token) = &cached
            && token.expires > Instant::now() + REFRESH_AHEAD
        {
            return Ok(token.value.clone());
        }
        // A refresh is in flight: a valid token serves meanwhile.
        let mut failed = match self.refresh.try_lock() {
            Ok(guard) => guard,
            Err(_) => match cached.filter(|t| t.expires > Instant::now()) {
                Some(token) => return Ok(token.value.clone()),
                None => self.refresh.lock().await,
            },
        };
        let now = Instant::now();
        let cached = self.cached();
        if let Some(token) = &cached
            && token.expires > now + REFRESH_AHEAD
        {
            return Ok(token.value.clone());
        }
        let valid = cached.filter(|t| t.expires > now);
        if let Some((at, reason)) = failed.as_ref()
            && now < *at + RETRY_AFTER_FAILURE
        {
            return valid.map(|t| t.value).ok_or_else(|| self.error(reason));
        }
        match self.exchange().await {
            Ok(token) => {
                *failed = None;
                let value = token.value.clone();
                *self
                    .current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token);
                Ok(value)
            }
            Err(reason) => {
                tracing::warn!(backend = %self.backend, endpoint = self.grant.endpoint(), %reason, "access token refresh failed");
                let error = self.error(&reason);
                *failed = Some((Instant::now(), reason));
                valid.map(|t| t.value).ok_or(error)
            }
        }
    }

    fn error(&self, reason: &str) -> ProxyError {
        ProxyError::unavailable(format!(
            "backend `{}`: no access token could be obtained from {}: {reason}",
            self.backend,
            self.grant.endpoint()
        ))
    }

    /// One exchange at the token endpoint; the error says why, without secrets.
    async fn exchange(&self) -> Result<Token, String> {
        let started = Instant::now();
        let (url, form) = self.form()?;
        let request = Request::post(url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(UpstreamBody::full(form.into()))
            .map_err(|_| format!("`{url}` is not a valid URL"))?;
        self.answer(request, started).await
    }

    /// The endpoint and the form of the grant.
    fn form(&self) -> Result<(&str, String), String> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        let url = match &self.grant {
            Grant::Azure {
                url,
                client_id,
                client_secret,
            } => {
                form.append_pair("grant_type", "client_credentials")
                    .append_pair("client_id", client_id)
                    .append_pair("client_secret", client_secret)
                    .append_pair("scope", AZURE_SCOPE);
                url
            }
            Grant::Gcp {
                token_uri,
                client_email,
                key_id,
                key,
            } => {
                let iat = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let claims = Claims {
                    iss: client_email,
                    scope: GCP_SCOPE,
                    aud: token_uri,
                    iat,
                    exp: iat + 3600,
                };
                let mut head = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                head.kid = key_id.clone();
                let assertion = jsonwebtoken::encode(&head, &claims, key)
                    .map_err(|_| "the service-account key could not sign the assertion")?;
                form.append_pair("grant_type", JWT_BEARER)
                    .append_pair("assertion", &assertion);
                token_uri
            }
        };
        Ok((url, form.finish()))
    }

    /// Waits for the token endpoint's answer and reads the token from it.
    async fn answer(
        &self,
        request: Request<UpstreamBody>,
        started: Instant,
    ) -> Result<Token, String> {
        let answer = tokio::time::timeout(EXCHANGE_TIMEOUT, async {
            let response =
                self.client.request(request).await.map_err(|e| {
                    crate::upstream::describe(&e).replace("backend", "token endpoint")
                })?;
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), ANSWER_LIMIT)
                .collect()
                .await
                .map_err(|_| "the token endpoint's answer could not be read".to_owned())?
                .to_bytes();
            Ok::<_, String>((status, body))
        })
        .await
        .map_err(|_| format!("no answer within {}s", EXCHANGE_TIMEOUT.as_secs()))??;
        let (status, body) = answer;
        if !status.is_success() {
            let refusal = serde_json::from_slice::<Refusal>(&body).ok();
            let said = refusal
                .map(|r| {
                    [r.error, r.error_description]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(": ")
                })
                .filter(|s| !s.is_empty())
                .map(|s| s.chars().take(300).collect::<String>())
                .unwrap_or_else(|| "no reason given".to_owned());
            return Err(format!("the token endpoint answered {status}: {said}"));
        }
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|_| "the token endpoint's answer has no `access_token` and `expires_in`")?;
        let lifetime = match answer.expires_in {
            Seconds::Number(n) => n,
            Seconds::Text(t) => t
                .trim()
                .parse()
                .map_err(|_| "the token endpoint's `expires_in` is not a number")?,
        };
        let mut value = HeaderValue::try_from(format!("Bearer {}", answer.access_token))
            .map_err(|_| "the access token is not a valid header value")?;
        value.set_sensitive(true);
        Ok(Token {
            value,
            expires: started + Duration::from_secs(lifetime),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        crate::upstream::Clients::new().plain()
    }

    #[test]
    fn a_broken_key_file_is_refused_without_quoting_it() {
        let not_json = TokenSource::gcp("b".into(), b"private_key: hunter2", client());
        assert!(matches!(not_json, Err(TokenConfigError::NotAKeyFile)));
        let file = br#"{"client_email":"a@b","private_key":"hunter2-not-a-pem","token_uri":"https://oauth2.googleapis.com/token"}"#;
        let error = TokenSource::gcp("b".into(), file, client())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("not an RSA private key"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn azure_tenants_cannot_change_the_token_path() {
        for tenant in ["", "../admin", "a/b", "tenant?x=1"] {
            let made = TokenSource::azure("b".into(), tenant, "id", b"s", None, client());
            assert!(matches!(made, Err(TokenConfigError::Tenant(_))), "{tenant}");
        }
        let made = TokenSource::azure(
            "b".into(),
            "contoso.onmicrosoft.com",
            "id",
            b"secret\n",
            Some("https://login.microsoftonline.us/"),
            client(),
        );
        let endpoint = made.as_ref().map(|s| s.grant.endpoint().to_owned());
        assert_eq!(
            endpoint.ok().as_deref(),
            Some("https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token")
        );
        let debug = format!("{:?}", made.ok());
        assert!(!debug.contains("secret"), "{debug}");
    }
}
