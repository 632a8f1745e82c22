//! Credentials that start from an OIDC token (the policies' `oidcExchangeToken`), as the
//! reference's rotators get them:
//! - the OIDC token: the provider's discovery document (`{issuer}/.well-known/openid-configuration`,
//!   whose `issuer` must match), then the client-credentials grant at its `token_endpoint`
//!   (the policy's `tokenEndpoint` wins) with HTTP Basic client authentication, for the
//!   policy's scopes plus the provider's `scopes_supported`; the answer's `access_token` is the
//!   OIDC token. A fresh one is got for every exchange;
//! - Azure: that token is the client assertion of the client-credentials grant;
//! - GCP: Google's STS exchanges it (RFC 8693, JSON, subject token type `jwt`) for a federated
//!   token for the workload identity pool's provider; with a service account to impersonate,
//!   IAM Credentials' `generateAccessToken` then issues that account's token (an hour long).
//!   Decision: the STS scope is `cloud-platform` where the reference asks for `iam`, so that a
//!   federated token used directly (no impersonation) can call Vertex AI;
//! - AWS: STS `AssumeRoleWithWebIdentity` (query API, XML answer) with the role and the
//!   session name `ai-gateway-{policy}`, for an hour of temporary keys.

use super::grant::{
    GCP_SCOPE, Grant, TokenConfigError, azure_token_url, bearer, body_post, expiry, form_post,
    oauth_answer, oauth_token, refusal, send, sensitive, text,
};
use super::{Credential, Endpoints, Token, TokenSource};
use crate::upstream::Client;
use aws_credential_types::Credentials;
use base64::Engine;
use http::Request;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const CLIENT_ASSERTION_JWT: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An OIDC client with its secret (read from the policy's Secrets at load).
pub struct OidcClient {
    issuer: String,
    token_endpoint: Option<String>,
    client_id: String,
    client_secret: String,
    scopes: Vec<String>,
}

impl OidcClient {
    /// `client_id` is the inline id or the `client-id` Secret's value; `client_secret` the
    /// `client-secret` Secret's value.
    pub fn new(
        oidc: &aigw_table::Oidc,
        client_id: &[u8],
        client_secret: &[u8],
    ) -> Result<Self, TokenConfigError> {
        Ok(OidcClient {
            issuer: oidc.issuer.trim().to_owned(),
            token_endpoint: oidc.token_endpoint.clone(),
            client_id: text(client_id).map_err(|_| TokenConfigError::ClientIdNotText)?,
            client_secret: text(client_secret)?,
            scopes: oidc.scopes.clone(),
        })
    }

    /// A fresh OIDC token.
    async fn token(&self, client: &Client) -> Result<String, String> {
        let at = |why: String| format!("OIDC provider `{}`: {why}", self.issuer);
        let discovery = self.discover(client).await.map_err(at)?;
        let endpoint = self
            .token_endpoint
            .as_deref()
            .unwrap_or(&discovery.token_endpoint);
        let mut scopes = self.scopes.clone();
        for scope in discovery.scopes_supported {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if !scopes.is_empty() {
                form.append_pair("scope", &scopes.join(" "));
            }
            form.finish()
        };
        // RFC 6749 §2.3.1: the id and secret are form-encoded, then joined and base64'd.
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            encode(&self.client_id),
            encode(&self.client_secret)
        ));
        let authorization = sensitive(format!("Basic {basic}")).map_err(at)?;
        let request = form_post(endpoint, form, Some(authorization)).map_err(at)?;
        let answer = oauth_answer(client, request).await.map_err(at)?;
        Ok(answer.access_token)
    }

    async fn discover(&self, client: &Client) -> Result<Discovery, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let request = Request::get(&url)
            .header(http::header::ACCEPT, "application/json")
            .body(crate::upstream::UpstreamBody::empty())
            .map_err(|_| format!("`{url}` is not a valid URL"))?;
        let (status, body) = send(client, request).await?;
        if !status.is_success() {
            return Err(format!("the discovery document answered {status}"));
        }
        let discovery: Discovery = serde_json::from_slice(&body)
            .map_err(|_| "the discovery document has no `issuer` and `token_endpoint`")?;
        if discovery.issuer != self.issuer {
            return Err(format!(
                "the discovery document is for issuer `{}`",
                discovery.issuer.chars().take(200).collect::<String>()
            ));
        }
        Ok(discovery)
    }
}

/// Where the token an exchange starts from comes from: an OIDC client (a policy's
/// `oidcExchangeToken`), or a file the platform keeps fresh (a Kubernetes projected
/// service-account token: Azure workload identity's `AZURE_FEDERATED_TOKEN_FILE`, a GCP
/// external account's `credential_source.file`), read again for every exchange.
pub enum Subject {
    Oidc(OidcClient),
    File(std::path::PathBuf),
}

impl Subject {
    pub(super) async fn token(&self, client: &Client) -> Result<String, String> {
        match self {
            Subject::Oidc(oidc) => oidc.token(client).await,
            Subject::File(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                    format!("the token file `{}` cannot be read: {e}", path.display())
                })?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(format!("the token file `{}` is empty", path.display()));
                }
                Ok(token.to_owned())
            }
        }
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    token_endpoint: String,
    #[serde(default)]
    scopes_supported: Vec<String>,
}

/// Azure's client-credentials grant with the OIDC token as the client assertion.
pub struct AzureAssertion {
    pub(super) url: String,
    pub(super) client_id: String,
    pub(super) subject: Subject,
}

impl AzureAssertion {
    pub(super) fn endpoint(&self) -> &str {
        &self.url
    }

    pub(super) async fn exchange(
        &self,
        client: &Client,
        started: Instant,
    ) -> Result<Token, String> {
        let assertion = self.subject.token(client).await?;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_assertion_type", CLIENT_ASSERTION_JWT)
            .append_pair("client_assertion", &assertion)
            .append_pair("scope", super::grant::AZURE_SCOPE)
            .finish();
        oauth_token(client, form_post(&self.url, form, None)?, started).await
    }
}

/// Google's STS, then IAM Credentials when a service account is impersonated.
pub struct GcpFederation {
    pub(super) sts: String,
    pub(super) audience: String,
    /// RFC 8693 `subject_token_type` (`…:jwt` for an OIDC token).
    pub(super) subject_type: String,
    /// `generateAccessToken`'s URL for the account.
    pub(super) impersonate: Option<String>,
    pub(super) subject: Subject,
}

impl GcpFederation {
    pub(super) fn endpoint(&self) -> &str {
        &self.sts
    }

    pub(super) async fn exchange(
        &self,
        client: &Client,
        started: Instant,
    ) -> Result<Token, String> {
        let subject = self.subject.token(client).await?;
        let body = serde_json::json!({
            "grantType": TOKEN_EXCHANGE,
            "audience": self.audience,
            "scope": GCP_SCOPE,
            "requestedTokenType": ACCESS_TOKEN_TYPE,
            "subjectTokenType": self.subject_type,
            "subjectToken": subject,
        });
        let request = body_post(&self.sts, "application/json", body.to_string().into(), None)?;
        let federated = oauth_answer(client, request).await?;
        let Some(url) = &self.impersonate else {
            let expires = started + Duration::from_secs(federated.expires_in.get()?);
            return bearer(&federated.access_token, expires);
        };
        let authorization = sensitive(format!("Bearer {}", federated.access_token))?;
        let body = serde_json::json!({"scope": [GCP_SCOPE], "lifetime": "3600s"});
        let request = body_post(
            url,
            "application/json",
            body.to_string().into(),
            Some(authorization),
        )?;
        let (status, body) = send(client, request).await?;
        if !status.is_success() {
            return Err(format!("impersonation: {}", refusal(status, &body)));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Generated {
            access_token: String,
            expire_time: String,
        }
        let generated: Generated = serde_json::from_slice(&body)
            .map_err(|_| "impersonation: the answer has no `accessToken` and `expireTime`")?;
        bearer(&generated.access_token, expiry(&generated.expire_time)?)
    }
}

/// STS `AssumeRoleWithWebIdentity`.
pub struct AwsWebIdentity {
    sts: String,
    role_arn: String,
    session_name: String,
    oidc: OidcClient,
}

impl AwsWebIdentity {
    pub(super) fn endpoint(&self) -> &str {
        &self.sts
    }

    pub(super) async fn exchange(
        &self,
        client: &Client,
        _started: Instant,
    ) -> Result<Token, String> {
        let web_identity = self.oidc.token(client).await?;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRoleWithWebIdentity")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", &self.role_arn)
            .append_pair("RoleSessionName", &self.session_name)
            .append_pair("WebIdentityToken", &web_identity)
            .finish();
        let (status, body) = send(client, form_post(&self.sts, form, None)?).await?;
        let text = String::from_utf8_lossy(&body);
        if !status.is_success() {
            let said = quick_xml::de::from_str::<StsRefusal>(&text)
                .map(|r| format!("{}: {}", r.error.code, r.error.message))
                .unwrap_or_else(|_| "no reason given".to_owned());
            let said: String = said.chars().take(300).collect();
            return Err(format!("STS answered {status}: {said}"));
        }
        let answer: StsAnswer = quick_xml::de::from_str(&text)
            .map_err(|_| "STS's answer has no `Credentials` with keys, token and expiration")?;
        let c = answer.assume_role_with_web_identity_result.credentials;
        let expires = expiry(&c.expiration)?;
        let credentials = Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            None,
            "sts-web-identity",
        );
        Ok(Token {
            value: Credential::Aws(credentials.into()),
            expires,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsAnswer {
    assume_role_with_web_identity_result: StsResult,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsResult {
    credentials: StsCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsRefusal {
    error: StsError,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsError {
    code: String,
    #[serde(default)]
    message: String,
}

impl TokenSource {
    /// Azure's grant with the subject's token as the client assertion: a policy's OIDC
    /// exchange, or workload identity's token file.
    pub fn azure_assertion(
        backend: Arc<str>,
        tenant: &str,
        client_id: &str,
        subject: Subject,
        endpoints: &Endpoints,
        client: Client,
    ) -> Result<Self, TokenConfigError> {
        let grant = AzureAssertion {
            url: azure_token_url(endpoints, tenant)?,
            client_id: client_id.to_owned(),
            subject,
        };
        Ok(Self::new(backend, Grant::AzureAssertion(grant), client))
    }

    /// Workload identity federation for `identity`; `project` is the policy's project (the
    /// impersonated account's).
    pub fn gcp_federation(
        backend: Arc<str>,
        identity: &aigw_table::GcpWorkloadIdentity,
        project: &str,
        oidc: OidcClient,
        endpoints: &Endpoints,
        client: Client,
    ) -> Self {
        let base = |given: &Option<String>, default: &str| {
            given
                .as_deref()
                .unwrap_or(default)
                .trim_end_matches('/')
                .to_owned()
        };
        let sts = base(&endpoints.gcp_sts, "https://sts.googleapis.com");
        let iam = base(
            &endpoints.gcp_iam_credentials,
            "https://iamcredentials.googleapis.com",
        );
        let impersonate = identity.service_account.as_deref().map(|name| {
            let email = if name.contains('@') {
                name.to_owned()
            } else {
                format!("{name}@{project}.iam.gserviceaccount.com")
            };
            format!("{iam}/v1/projects/-/serviceAccounts/{email}:generateAccessToken")
        });
        let grant = GcpFederation {
            sts: format!("{sts}/v1/token"),
            audience: format!(
                "//iam.googleapis.com/projects/{}/locations/global/workloadIdentityPools/{}/providers/{}",
                identity.project_id, identity.pool, identity.provider
            ),
            subject_type: JWT_TOKEN_TYPE.to_owned(),
            impersonate,
            subject: Subject::Oidc(oidc),
        };
        Self::new(backend, Grant::GcpFederation(grant), client)
    }

    /// STS `AssumeRoleWithWebIdentity` for `role_arn` in `region`, for `policy`.
    pub fn aws_web_identity(
        backend: Arc<str>,
        region: &str,
        role_arn: &str,
        policy: &str,
        oidc: OidcClient,
        endpoints: &Endpoints,
        client: Client,
    ) -> Self {
        let sts = endpoints.aws_sts.as_deref().map_or_else(
            || format!("https://sts.{region}.amazonaws.com/"),
            |url| format!("{}/", url.trim_end_matches('/')),
        );
        // STS allows 2 to 64 characters of `[\w+=,.@-]` in a session name.
        let session_name: String = format!("ai-gateway-{policy}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        let grant = AwsWebIdentity {
            sts,
            role_arn: role_arn.to_owned(),
            session_name,
            oidc,
        };
        Self::new(backend, Grant::AwsWebIdentity(grant), client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_answers_and_refusals_are_read_from_their_xml() {
        let answer = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGXK6HB56KR2A</SubjectFromWebIdentityToken>
    <Credentials>
      <SessionToken>session</SessionToken>
      <SecretAccessKey>secret</SecretAccessKey>
      <Expiration>2014-10-24T23:00:23Z</Expiration>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#;
        let parsed = quick_xml::de::from_str::<StsAnswer>(answer)
            .map(|a| a.assume_role_with_web_identity_result.credentials);
        let keys = parsed.as_ref().map(|c| {
            (
                c.access_key_id.as_str(),
                c.secret_access_key.as_str(),
                c.session_token.as_str(),
                c.expiration.as_str(),
            )
        });
        assert_eq!(
            keys.ok(),
            Some((
                "ASIAIOSFODNN7EXAMPLE",
                "secret",
                "session",
                "2014-10-24T23:00:23Z"
            ))
        );
        let refusal = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>No OpenIDConnect provider found</Message></Error></ErrorResponse>";
        let error = quick_xml::de::from_str::<StsRefusal>(refusal).map(|r| r.error.code);
        assert_eq!(error.ok().as_deref(), Some("InvalidIdentityToken"));
    }

    #[test]
    fn session_names_keep_to_what_sts_allows() {
        let oidc = OidcClient::new(
            &aigw_table::Oidc {
                issuer: "https://idp".into(),
                ..aigw_table::Oidc::default()
            },
            b"id",
            b"secret",
        );
        let Ok(oidc) = oidc else {
            panic!("the client is made");
        };
        let policy = format!("odd name/{}", "x".repeat(80));
        let source = TokenSource::aws_web_identity(
            "b".into(),
            "eu-west-1",
            "arn:aws:iam::1:role/r",
            &policy,
            oidc,
            &Endpoints::default(),
            crate::upstream::Clients::new().plain(),
        );
        let Grant::AwsWebIdentity(grant) = &source.grant else {
            panic!("an STS grant");
        };
        assert_eq!(grant.sts, "https://sts.eu-west-1.amazonaws.com/");
        assert_eq!(grant.session_name.len(), 64);
        assert!(grant.session_name.starts_with("ai-gateway-odd-name-xxx"));
    }
}
