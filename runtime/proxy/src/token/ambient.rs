//! Credentials from where the data plane runs, for backends no BackendSecurityPolicy targets
//! (and AWS policies that name neither a credentials file nor an OIDC exchange, which the
//! reference documents as "the default credential chain"):
//! - AWS: the AWS SDK's own default chain (`aws-config`): environment keys, the shared config
//!   and credentials files (`AWS_PROFILE`), web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` and
//!   `AWS_ROLE_ARN`, as IRSA mounts them), the ECS and EKS Pod Identity container endpoint
//!   (`AWS_CONTAINER_CREDENTIALS_FULL_URI` with its token file), then IMDSv2. Its HTTP client is
//!   `aws-smithy-http-client` on rustls with ring, the one TLS stack of the workspace;
//! - GCP: an external account file's workload identity federation (the subject token read
//!   from its `credential_source.file` for every exchange, Google's STS at the file's
//!   `token_url`, then its `service_account_impersonation_url`), or the GCE metadata server's
//!   default service-account token (and the project it runs in);
//! - Azure workload identity: the federated token file as the client assertion (the
//!   environment's client secret is the plain Azure grant, in `grant.rs`).
//!
//! What runs where, which of them is picked, and the errors naming what was tried: see
//! `crate::ambient`.

use super::federated::{GcpFederation, Subject};
use super::grant::{Grant, TokenConfigError, bearer};
use super::{Credential, Token, TokenSource};
use crate::upstream::{Client, UpstreamBody};
use aws_credential_types::provider::ProvideCredentials;
use serde::Deserialize;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// How long keys without an expiry (environment keys, a credentials file) are kept before the
/// chain is asked again: the AWS SDK's own default for its identity cache.
const UNEXPIRING: Duration = Duration::from_secs(15 * 60);

/// The AWS SDK's default chain, built on first use (it reads files and may probe IMDS).
pub struct AwsChain {
    region: String,
    chain:
        tokio::sync::OnceCell<aws_config::default_provider::credentials::DefaultCredentialsChain>,
}

impl AwsChain {
    pub(super) fn endpoint(&self) -> &str {
        "the AWS default credential chain (environment keys, shared config and credentials files, web identity, ECS / EKS Pod Identity, IMDSv2)"
    }

    pub(super) async fn exchange(&self) -> Result<Token, String> {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        let chain = self
            .chain
            .get_or_init(|| async {
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(Provider::Rustls(CryptoMode::Ring))
                    .build_https();
                let config =
                    aws_config::provider_config::ProviderConfig::default().with_http_client(http);
                aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                    .configure(config)
                    .region(aws_config::Region::new(self.region.clone()))
                    .build()
                    .await
            })
            .await;
        let credentials = chain
            .provide_credentials()
            .await
            .map_err(|error| chain_of(&error))?;
        let now = SystemTime::now();
        let expires = match credentials.expiry() {
            Some(at) => Instant::now() + at.duration_since(now).unwrap_or(Duration::ZERO),
            None => Instant::now() + UNEXPIRING,
        };
        Ok(Token {
            value: Credential::Aws(credentials.into()),
            expires,
        })
    }
}

/// An error with its causes, `: `-joined: the chain's own error says only that no provider
/// gave credentials, its sources say what each one found.
fn chain_of(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text.chars().take(1000).collect()
}

/// The GCE metadata server: the default service account's token, and the project.
pub struct GcpMetadata {
    base: String,
    described: String,
    /// Learned with the first token, for backends whose project the environment does not say.
    pub(super) project: OnceLock<String>,
}

impl GcpMetadata {
    pub(super) fn endpoint(&self) -> &str {
        &self.described
    }

    pub(super) async fn exchange(
        &self,
        client: &Client,
        started: Instant,
    ) -> Result<Token, String> {
        let token = self
            .get(client, "instance/service-accounts/default/token")
            .await?;
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            expires_in: u64,
        }
        let answer: Answer = serde_json::from_slice(&token)
            .map_err(|_| "the metadata server's token has no `access_token` and `expires_in`")?;
        if self.project.get().is_none() {
            let project = self.get(client, "project/project-id").await?;
            let project = String::from_utf8_lossy(&project).trim().to_owned();
            if !project.is_empty() {
                let _ = self.project.set(project);
            }
        }
        bearer(
            &answer.access_token,
            started + Duration::from_secs(answer.expires_in),
        )
    }

    async fn get(&self, client: &Client, path: &str) -> Result<bytes::Bytes, String> {
        let url = format!("{}/computeMetadata/v1/{path}", self.base);
        let request = http::Request::get(&url)
            .header("metadata-flavor", "Google")
            .body(UpstreamBody::empty())
            .map_err(|_| format!("`{url}` is not a valid URL"))?;
        let (status, body) = super::grant::send(client, request).await?;
        if !status.is_success() {
            return Err(format!(
                "the metadata server answered {status} for `{path}`"
            ));
        }
        Ok(body)
    }
}

/// The fields of an `external_account` credential file that the exchange uses.
#[derive(Deserialize)]
struct ExternalAccount {
    audience: String,
    subject_token_type: String,
    token_url: String,
    #[serde(default)]
    service_account_impersonation_url: Option<String>,
    credential_source: CredentialSource,
}

#[derive(Deserialize)]
struct CredentialSource {
    #[serde(default)]
    file: Option<std::path::PathBuf>,
}

impl TokenSource {
    /// The AWS SDK's default chain, for SigV4 in `region`.
    pub fn aws_chain(backend: Arc<str>, region: &str, client: Client) -> Self {
        let grant = AwsChain {
            region: region.to_owned(),
            chain: tokio::sync::OnceCell::new(),
        };
        Self::new(backend, Grant::AwsChain(Box::new(grant)), client)
    }

    /// A GCP `external_account` credential file (workload identity federation outside GCP).
    /// Only file-sourced subject tokens are read (Kubernetes, AKS, EKS projected tokens).
    pub fn gcp_external_account(
        backend: Arc<str>,
        file: &[u8],
        client: Client,
    ) -> Result<Self, TokenConfigError> {
        let account: ExternalAccount =
            serde_json::from_slice(file).map_err(|_| TokenConfigError::NotAnExternalAccount)?;
        let path = account
            .credential_source
            .file
            .ok_or(TokenConfigError::NotAnExternalAccount)?;
        let grant = GcpFederation {
            sts: account.token_url,
            audience: account.audience,
            subject_type: account.subject_token_type,
            impersonate: account.service_account_impersonation_url,
            subject: Subject::File(path),
        };
        Ok(Self::new(backend, Grant::GcpFederation(grant), client))
    }

    /// The GCE metadata server at `host` (`GCE_METADATA_HOST`, by default `169.254.169.254`).
    pub fn gcp_metadata(backend: Arc<str>, host: &str, client: Client) -> Self {
        let base = format!("http://{}", host.trim_end_matches('/'));
        let grant = GcpMetadata {
            described: format!(
                "the GCE metadata server at {base} (Application Default Credentials found neither GOOGLE_APPLICATION_CREDENTIALS nor gcloud's file)"
            ),
            base,
            project: OnceLock::new(),
        };
        Self::new(backend, Grant::GcpMetadata(grant), client)
    }

    /// The GCP project the credential's source names (the metadata server's), once known.
    pub fn gcp_project(&self) -> Option<&str> {
        match &self.grant {
            Grant::GcpMetadata(g) => g.project.get().map(String::as_str),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_told_with_its_causes() {
        let io = std::io::Error::other("connection refused");
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("no providers in chain provided credentials")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        assert_eq!(
            chain_of(&Outer(io)),
            "no providers in chain provided credentials: connection refused"
        );
    }
}
