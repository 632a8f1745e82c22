//! The federated half of the loopback token endpoint ([`crate::TokenEndpoint`]): an OIDC
//! provider and the cloud services that exchange its tokens, as strict as the real ones.
//! - `GET /oidc/.well-known/openid-configuration`, `POST /oidc/token`: the provider. The
//!   client-credentials grant needs the client's id and secret by HTTP Basic and the scopes
//!   the discovery document advertises; the token is an RS256 JWT (`iss` the issuer, `sub`
//!   and `aud` the client id) signed with the provider's key;
//! - `POST /aws-sts/`: STS `AssumeRoleWithWebIdentity` (query form, XML answer with the
//!   configured keys), for the configured role and a verified token;
//! - `POST /gcp-sts/v1/token`: Google's STS token exchange (JSON, RFC 8693 fields in camel
//!   case) for the configured pool provider's audience; then
//!   `POST /gcp-iam/v1/projects/-/serviceAccounts/{email}:generateAccessToken` with a
//!   federated token as bearer, for the configured account;
//! - Azure's token path (in `token.rs`) takes a verified token as `client_assertion`.
//!
//! Refusals have each service's shape: OAuth2 `error`/`error_description`, Google's
//! `{"error": {...}}`, AWS's `<ErrorResponse>` XML. The requests received are kept, for the
//! oracles that compare them with what the clouds' own SDKs send.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use std::time::{SystemTime, UNIX_EPOCH};

/// Who the federated services recognise.
#[derive(Clone, Debug)]
pub struct Federation {
    pub oidc_client_id: String,
    pub oidc_client_secret: String,
    /// The provider's signing key pair (PEM).
    pub oidc_private_key: Vec<u8>,
    pub oidc_public_key: Vec<u8>,
    /// A scope the client must ask for besides the advertised `openid`.
    pub oidc_scope: String,
    pub aws_role_arn: String,
    /// The keys STS hands out: access key id, secret key, session token.
    pub aws_keys: (String, String, String),
    /// `//iam.googleapis.com/projects/{n}/locations/global/workloadIdentityPools/{p}/providers/{q}`.
    pub gcp_audience: String,
    /// The service account that may be impersonated.
    pub gcp_service_account: String,
}

/// One request the federated services received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    pub body: String,
}

pub(crate) type Reply = Response<Full<Bytes>>;

fn json(status: StatusCode, body: &serde_json::Value) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn oauth_refusal(status: StatusCode, error: &str, description: &str) -> Reply {
    json(
        status,
        &serde_json::json!({"error": error, "error_description": description}),
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `seconds` from now, in RFC 3339 (`2026-11-22T13:00:00Z`).
pub(crate) fn rfc3339_in(seconds: u64) -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds.cast_signed());
    at.replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct OidcClaims {
    iss: String,
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// Where the issuer is: `http://<addr>/oidc`.
pub(crate) fn issuer(addr: std::net::SocketAddr) -> String {
    format!("http://{addr}/oidc")
}

/// A token of the provider, as its token endpoint issues it (and as a Kubernetes projected
/// service-account token, signed by the cluster's issuer, is handed to a pod).
pub(crate) fn mint(
    federation: &Federation,
    addr: std::net::SocketAddr,
    lifetime: u64,
) -> Option<String> {
    let iat = now();
    let claims = OidcClaims {
        iss: issuer(addr),
        sub: federation.oidc_client_id.clone(),
        aud: federation.oidc_client_id.clone(),
        iat,
        exp: iat + lifetime,
    };
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&federation.oidc_private_key).ok()?;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .ok()
}

/// Checks an OIDC token the provider issued.
pub(crate) fn verify_oidc(
    federation: &Federation,
    addr: std::net::SocketAddr,
    token: &str,
) -> Result<(), String> {
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(&federation.oidc_public_key)
        .map_err(|e| format!("the test's OIDC key: {e}"))?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[issuer(addr)]);
    validation.set_audience(&[&federation.oidc_client_id]);
    let claims = jsonwebtoken::decode::<OidcClaims>(token, &key, &validation)
        .map_err(|e| format!("invalid OIDC token: {e}"))?
        .claims;
    if claims.sub != federation.oidc_client_id {
        return Err("invalid OIDC token: wrong subject".into());
    }
    Ok(())
}

/// Answers a federated path, or `None` when `path` is not one.
pub(crate) fn answer(
    federation: &Federation,
    addr: std::net::SocketAddr,
    lifetime: u64,
    issued: u64,
    seen: &Seen,
) -> Option<Reply> {
    let path = seen.path.as_str();
    Some(match path {
        "/oidc/.well-known/openid-configuration" => json(
            StatusCode::OK,
            &serde_json::json!({
                "issuer": issuer(addr),
                "token_endpoint": format!("{}/token", issuer(addr)),
                "authorization_endpoint": format!("{}/authorize", issuer(addr)),
                "scopes_supported": ["openid"],
            }),
        ),
        "/oidc/token" => oidc_token(federation, addr, lifetime, seen),
        "/aws-sts" | "/aws-sts/" => aws_sts(federation, addr, lifetime, seen),
        "/gcp-sts/v1/token" => gcp_sts(federation, addr, lifetime, issued, seen),
        p if p.starts_with("/gcp-iam/v1/projects/-/serviceAccounts/") => {
            gcp_impersonate(federation, lifetime, issued, seen)
        }
        _ => return None,
    })
}

fn form(body: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn oidc_token(
    federation: &Federation,
    addr: std::net::SocketAddr,
    lifetime: u64,
    seen: &Seen,
) -> Reply {
    use base64::Engine;
    let expected = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        form_urlencoded::byte_serialize(federation.oidc_client_id.as_bytes()).collect::<String>(),
        form_urlencoded::byte_serialize(federation.oidc_client_secret.as_bytes())
            .collect::<String>()
    ));
    if seen.authorization.as_deref() != Some(&format!("Basic {expected}")) {
        return oauth_refusal(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    let form = form(&seen.body);
    if field(&form, "grant_type") != Some("client_credentials") {
        return oauth_refusal(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "client_credentials expected",
        );
    }
    let scopes: Vec<&str> = field(&form, "scope")
        .unwrap_or_default()
        .split(' ')
        .collect();
    if !scopes.contains(&"openid") || !scopes.contains(&federation.oidc_scope.as_str()) {
        return oauth_refusal(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "the scopes are not the expected ones",
        );
    }
    let Some(token) = mint(federation, addr, lifetime) else {
        return oauth_refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the test's OIDC key cannot sign",
        );
    };
    json(
        StatusCode::OK,
        &serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": lifetime}),
    )
}

fn aws_refusal(status: StatusCode, code: &str, message: &str) -> Reply {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    <Type>Sender</Type>\n    <Code>{code}</Code>\n    <Message>{message}</Message>\n  </Error>\n  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n</ErrorResponse>\n"
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/xml"),
    );
    response
}

fn aws_sts(
    federation: &Federation,
    addr: std::net::SocketAddr,
    lifetime: u64,
    seen: &Seen,
) -> Reply {
    let form = form(&seen.body);
    if field(&form, "Action") != Some("AssumeRoleWithWebIdentity")
        || field(&form, "Version") != Some("2011-06-15")
    {
        return aws_refusal(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            "Could not find operation for version",
        );
    }
    if field(&form, "RoleArn") != Some(federation.aws_role_arn.as_str()) {
        return aws_refusal(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        );
    }
    let session = field(&form, "RoleSessionName").unwrap_or_default();
    let session_ok = (2..=64).contains(&session.len())
        && session
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if !session_ok {
        return aws_refusal(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint",
        );
    }
    let token = field(&form, "WebIdentityToken").unwrap_or_default();
    if let Err(why) = verify_oidc(federation, addr, token) {
        return aws_refusal(StatusCode::BAD_REQUEST, "InvalidIdentityToken", &why);
    }
    let (key, secret, session_token) = &federation.aws_keys;
    let expiration = rfc3339_in(lifetime);
    let role = &federation.aws_role_arn;
    let body = format!(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <AssumeRoleWithWebIdentityResult>\n    <SubjectFromWebIdentityToken>{sub}</SubjectFromWebIdentityToken>\n    <Audience>{sub}</Audience>\n    <AssumedRoleUser>\n      <Arn>{role}/{session}</Arn>\n      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:{session}</AssumedRoleId>\n    </AssumedRoleUser>\n    <Credentials>\n      <SessionToken>{session_token}</SessionToken>\n      <SecretAccessKey>{secret}</SecretAccessKey>\n      <Expiration>{expiration}</Expiration>\n      <AccessKeyId>{key}</AccessKeyId>\n    </Credentials>\n    <Provider>{issuer}</Provider>\n  </AssumeRoleWithWebIdentityResult>\n  <ResponseMetadata>\n    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>\n  </ResponseMetadata>\n</AssumeRoleWithWebIdentityResponse>\n",
        sub = federation.oidc_client_id,
        issuer = issuer(addr),
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/xml"),
    );
    response
}

fn google_refusal(status: StatusCode, message: &str) -> Reply {
    let reason = status
        .canonical_reason()
        .unwrap_or_default()
        .to_ascii_uppercase()
        .replace(' ', "_");
    json(
        status,
        &serde_json::json!({"error": {"code": status.as_u16(), "message": message, "status": reason}}),
    )
}

fn gcp_sts(
    federation: &Federation,
    addr: std::net::SocketAddr,
    lifetime: u64,
    issued: u64,
    seen: &Seen,
) -> Reply {
    let Ok(body) = serde_json::from_str::<serde_json::Value>(&seen.body) else {
        return oauth_refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body is not JSON",
        );
    };
    let expected = [
        (
            "grantType",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("audience", federation.gcp_audience.as_str()),
        ("scope", "https://www.googleapis.com/auth/cloud-platform"),
        (
            "requestedTokenType",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("subjectTokenType", "urn:ietf:params:oauth:token-type:jwt"),
    ];
    if let Some((name, _)) = expected.iter().find(|(k, v)| body[*k].as_str() != Some(v)) {
        return oauth_refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("`{name}` is missing or wrong"),
        );
    }
    if let Err(why) = verify_oidc(
        federation,
        addr,
        body["subjectToken"].as_str().unwrap_or_default(),
    ) {
        return oauth_refusal(StatusCode::BAD_REQUEST, "invalid_grant", &why);
    }
    json(
        StatusCode::OK,
        &serde_json::json!({
            "access_token": format!("gcp-federated-{issued}"),
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": lifetime,
        }),
    )
}

fn gcp_impersonate(federation: &Federation, lifetime: u64, issued: u64, seen: &Seen) -> Reply {
    let account = seen
        .path
        .strip_prefix("/gcp-iam/v1/projects/-/serviceAccounts/")
        .and_then(|p| p.strip_suffix(":generateAccessToken"));
    if account != Some(federation.gcp_service_account.as_str()) {
        return google_refusal(
            StatusCode::NOT_FOUND,
            "Not found; Gaia id not found for email",
        );
    }
    let bearer_ok = seen
        .authorization
        .as_deref()
        .is_some_and(|a| a.starts_with("Bearer gcp-federated-"));
    if !bearer_ok {
        return google_refusal(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials.",
        );
    }
    let body = serde_json::from_str::<serde_json::Value>(&seen.body).unwrap_or_default();
    if body["scope"] != serde_json::json!(["https://www.googleapis.com/auth/cloud-platform"]) {
        return google_refusal(StatusCode::BAD_REQUEST, "Invalid scope");
    }
    json(
        StatusCode::OK,
        &serde_json::json!({
            "accessToken": format!("gcp-impersonated-{issued}"),
            "expireTime": rfc3339_in(lifetime),
        }),
    )
}
