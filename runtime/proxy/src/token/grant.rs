//! The grants a [`TokenSource`] refreshes with, what each sends, and how an endpoint's
//! answer is read: an OAuth2 token answer (`access_token`, `expires_in`), or a refusal of
//! which only the endpoint's error code and description are quoted.
//!
//! The Azure client-secret grant and the GCP service-account key's JWT-bearer grant are here;
//! the exchanges that start from an OIDC token are in [`super::federated`].

use super::ambient::{AwsChain, GcpMetadata};
use super::federated::{AwsWebIdentity, AzureAssertion, GcpFederation};
use super::{Credential, Endpoints, Token, TokenSource};
use crate::upstream::{Client, UpstreamBody};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One call to an identity endpoint, connect to last byte.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an identity endpoint's answer that is read.
const ANSWER_LIMIT: usize = 64 * 1024;

const AZURE_AUTHORITY: &str = "https://login.microsoftonline.com";
pub(super) const AZURE_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
pub(super) const GCP_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Why a credential source could not be made from its configuration (at load).
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
    #[error("the OIDC client id is not UTF-8 text")]
    ClientIdNotText,
    #[error(
        "the credentials file is not an `external_account` file with `audience`, `subject_token_type`, `token_url` and a `credential_source.file`"
    )]
    NotAnExternalAccount,
}

pub(super) enum Grant {
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
    AzureAssertion(AzureAssertion),
    GcpFederation(GcpFederation),
    AwsWebIdentity(AwsWebIdentity),
    AwsChain(Box<AwsChain>),
    GcpMetadata(GcpMetadata),
}

impl Grant {
    /// The endpoint that issues the credential (for logs and errors).
    pub(super) fn endpoint(&self) -> &str {
        match self {
            Grant::Azure { url, .. } => url,
            Grant::Gcp { token_uri, .. } => token_uri,
            Grant::AzureAssertion(g) => g.endpoint(),
            Grant::GcpFederation(g) => g.endpoint(),
            Grant::AwsWebIdentity(g) => g.endpoint(),
            Grant::AwsChain(g) => g.endpoint(),
            Grant::GcpMetadata(g) => g.endpoint(),
        }
    }

    /// One exchange; the error says why, without secrets.
    pub(super) async fn exchange(&self, client: &Client) -> Result<Token, String> {
        let started = Instant::now();
        match self {
            Grant::Azure {
                url,
                client_id,
                client_secret,
            } => {
                let form = form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("client_id", client_id)
                    .append_pair("client_secret", client_secret)
                    .append_pair("scope", AZURE_SCOPE)
                    .finish();
                oauth_token(client, form_post(url, form, None)?, started).await
            }
            Grant::Gcp {
                token_uri,
                client_email,
                key_id,
                key,
            } => {
                let assertion = jwt_assertion(token_uri, client_email, key_id, key)?;
                let form = form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", JWT_BEARER)
                    .append_pair("assertion", &assertion)
                    .finish();
                oauth_token(client, form_post(token_uri, form, None)?, started).await
            }
            Grant::AzureAssertion(g) => g.exchange(client, started).await,
            Grant::GcpFederation(g) => g.exchange(client, started).await,
            Grant::AwsWebIdentity(g) => g.exchange(client, started).await,
            Grant::AwsChain(g) => g.exchange().await,
            Grant::GcpMetadata(g) => g.exchange(client, started).await,
        }
    }
}

/// The Azure authority, without a trailing slash.
pub(super) fn azure_token_url(
    endpoints: &Endpoints,
    tenant: &str,
) -> Result<String, TokenConfigError> {
    let tenant_ok = !tenant.is_empty()
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !tenant_ok {
        return Err(TokenConfigError::Tenant(tenant.to_owned()));
    }
    let authority = endpoints
        .azure_authority
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or(AZURE_AUTHORITY)
        .trim_end_matches('/');
    Ok(format!("{authority}/{tenant}/oauth2/v2.0/token"))
}

/// A Secret's value as text, without the newline mounted secrets often end with.
pub(super) fn text(secret: &[u8]) -> Result<String, TokenConfigError> {
    std::str::from_utf8(secret)
        .map(|s| s.trim().to_owned())
        .map_err(|_| TokenConfigError::SecretNotText)
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

impl TokenSource {
    /// Azure's client-credentials grant for `tenant` with a client secret.
    pub fn azure(
        backend: Arc<str>,
        tenant: &str,
        client_id: &str,
        secret: &[u8],
        endpoints: &Endpoints,
        client: Client,
    ) -> Result<Self, TokenConfigError> {
        let grant = Grant::Azure {
            url: azure_token_url(endpoints, tenant)?,
            client_id: client_id.to_owned(),
            client_secret: text(secret)?,
        };
        Ok(Self::new(backend, grant, client))
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
        let grant = Grant::Gcp {
            token_uri: file.token_uri,
            client_email: file.client_email,
            key_id: file.private_key_id,
            key,
        };
        Ok(Self::new(backend, grant, client))
    }
}

fn jwt_assertion(
    token_uri: &str,
    client_email: &str,
    key_id: &Option<String>,
    key: &jsonwebtoken::EncodingKey,
) -> Result<String, String> {
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
    jsonwebtoken::encode(&head, &claims, key)
        .map_err(|_| "the service-account key could not sign the assertion".to_owned())
}

/// A form POST, with `authorization` when given.
pub(super) fn form_post(
    url: &str,
    form: String,
    authorization: Option<HeaderValue>,
) -> Result<Request<UpstreamBody>, String> {
    body_post(
        url,
        "application/x-www-form-urlencoded",
        form.into(),
        authorization,
    )
}

/// A POST of `body` as `content_type`, asking for JSON back.
pub(super) fn body_post(
    url: &str,
    content_type: &'static str,
    body: Bytes,
    authorization: Option<HeaderValue>,
) -> Result<Request<UpstreamBody>, String> {
    let mut builder = Request::post(url)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ACCEPT, "application/json");
    if let Some(value) = authorization {
        builder = builder.header(header::AUTHORIZATION, value);
    }
    builder
        .body(UpstreamBody::full(body))
        .map_err(|_| format!("`{url}` is not a valid URL"))
}

/// Sends `request` and reads the whole answer (bounded in time and size).
pub(super) async fn send(
    client: &Client,
    request: Request<UpstreamBody>,
) -> Result<(StatusCode, Bytes), String> {
    tokio::time::timeout(EXCHANGE_TIMEOUT, async {
        let response = client
            .request(request)
            .await
            .map_err(|e| crate::upstream::describe(&e).replace("backend", "identity endpoint"))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), ANSWER_LIMIT)
            .collect()
            .await
            .map_err(|_| "the identity endpoint's answer could not be read".to_owned())?
            .to_bytes();
        Ok::<_, String>((status, body))
    })
    .await
    .map_err(|_| format!("no answer within {}s", EXCHANGE_TIMEOUT.as_secs()))?
}

/// What a refusing JSON endpoint said: OAuth2's `error` and `error_description`, or
/// Google's `{"error": {"message": …}}`. Nothing else of the answer is quoted.
pub(super) fn refusal(status: StatusCode, body: &[u8]) -> String {
    let value = serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
    let said = match &value["error"] {
        serde_json::Value::String(code) => {
            [Some(code.as_str()), value["error_description"].as_str()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ")
        }
        error => [error["status"].as_str(), error["message"].as_str()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": "),
    };
    let said = if said.is_empty() {
        "no reason given".to_owned()
    } else {
        said.chars().take(300).collect()
    };
    format!("the identity endpoint answered {status}: {said}")
}

/// An OAuth2 token answer.
#[derive(Deserialize)]
pub(super) struct OAuthAnswer {
    pub access_token: String,
    /// Seconds; some endpoints send it as a string.
    pub expires_in: Seconds,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Seconds {
    Number(u64),
    Text(String),
}

impl Seconds {
    pub(super) fn get(&self) -> Result<u64, String> {
        match self {
            Seconds::Number(n) => Ok(*n),
            Seconds::Text(t) => t
                .trim()
                .parse()
                .map_err(|_| "the answer's `expires_in` is not a number".to_owned()),
        }
    }
}

/// Sends an OAuth2 token request and reads its answer.
pub(super) async fn oauth_answer(
    client: &Client,
    request: Request<UpstreamBody>,
) -> Result<OAuthAnswer, String> {
    let (status, body) = send(client, request).await?;
    if !status.is_success() {
        return Err(refusal(status, &body));
    }
    serde_json::from_slice(&body)
        .map_err(|_| "the answer has no `access_token` and `expires_in`".to_owned())
}

/// Sends an OAuth2 token request; its token becomes the bearer credential.
pub(super) async fn oauth_token(
    client: &Client,
    request: Request<UpstreamBody>,
    started: Instant,
) -> Result<Token, String> {
    let answer = oauth_answer(client, request).await?;
    bearer(
        &answer.access_token,
        started + Duration::from_secs(answer.expires_in.get()?),
    )
}

/// `Bearer <token>` as the credential until `expires`.
pub(super) fn bearer(token: &str, expires: Instant) -> Result<Token, String> {
    Ok(Token {
        value: Credential::Bearer(sensitive(format!("Bearer {token}"))?),
        expires,
    })
}

/// An `authorization` value, marked sensitive so that it is never logged.
pub(super) fn sensitive(value: String) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::try_from(value)
        .map_err(|_| "a credential is not a valid header value".to_owned())?;
    value.set_sensitive(true);
    Ok(value)
}

/// When an RFC 3339 expiry time (`2026-11-22T13:00:00Z`) comes, as an `Instant`.
pub(super) fn expiry(at: &str) -> Result<Instant, String> {
    use time::format_description::well_known::Rfc3339;
    let at = time::OffsetDateTime::parse(at.trim(), &Rfc3339)
        .map_err(|_| format!("the expiry `{}` is not an RFC 3339 time", at.trim()))?;
    let left = (at - time::OffsetDateTime::now_utc()).whole_seconds();
    Ok(Instant::now() + Duration::from_secs(u64::try_from(left).unwrap_or(0)))
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
        let endpoints = Endpoints::default();
        for tenant in ["", "../admin", "a/b", "tenant?x=1"] {
            let made = TokenSource::azure("b".into(), tenant, "id", b"s", &endpoints, client());
            assert!(matches!(made, Err(TokenConfigError::Tenant(_))), "{tenant}");
        }
        let sovereign = Endpoints {
            azure_authority: Some("https://login.microsoftonline.us/".into()),
            ..Endpoints::default()
        };
        let made = TokenSource::azure(
            "b".into(),
            "contoso.onmicrosoft.com",
            "id",
            b"secret\n",
            &sovereign,
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

    #[test]
    fn refusals_quote_the_code_and_description_only() {
        let oauth = br#"{"error":"invalid_client","error_description":"AADSTS7000215","access_token":"leak"}"#;
        let said = refusal(StatusCode::UNAUTHORIZED, oauth);
        assert_eq!(
            said,
            "the identity endpoint answered 401 Unauthorized: invalid_client: AADSTS7000215"
        );
        let google =
            br#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#;
        let said = refusal(StatusCode::FORBIDDEN, google);
        assert!(
            said.ends_with("PERMISSION_DENIED: Permission denied"),
            "{said}"
        );
        let said = refusal(StatusCode::BAD_GATEWAY, b"<html>secret-ish</html>");
        assert!(said.ends_with("no reason given"), "{said}");
    }

    #[test]
    fn expiry_times_are_read_as_rfc3339() {
        let soon = expiry("2999-01-01T00:00:00Z").map(|at| at > Instant::now() + REFRESH);
        assert_eq!(soon, Ok(true));
        let past = expiry("2001-01-01T00:00:00.123Z").map(|at| at <= Instant::now());
        assert_eq!(past, Ok(true));
        let error = expiry("tomorrow").err().unwrap_or_default();
        assert!(error.contains("not an RFC 3339 time"), "{error}");
    }

    const REFRESH: Duration = super::super::REFRESH_AHEAD;
}
