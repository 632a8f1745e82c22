//! Cloud credentials that expire, got by an exchange and cached:
//! - Azure (`AzureCredentials`): the client-credentials grant at
//!   `{authority}/{tenant}/oauth2/v2.0/token` for `https://cognitiveservices.azure.com/.default`,
//!   proven by the client secret or by an OIDC token as the client assertion;
//! - GCP (`GCPCredentials`): a service-account key's JWT-bearer grant at the key file's own
//!   `token_uri`, or workload identity federation (an OIDC token exchanged at Google's STS,
//!   then, when a service account is named, for that account's token);
//! - AWS (`AWSCredentials` with an OIDC exchange): temporary credentials from STS
//!   `AssumeRoleWithWebIdentity` for an OIDC token, which [`crate::auth`] signs with.
//!
//! The grants themselves are in [`grant`] (secret and key), [`federated`] (OIDC tokens
//! and what they are exchanged for) and [`ambient`] (the clouds' chains where the data plane
//! runs: the AWS SDK's default chain, GCP external accounts and the metadata server, Azure
//! workload identity). Where each endpoint is: [`Endpoints`].
//!
//! A credential is cached and refreshed five minutes before it expires (the reference's
//! window). One refresh runs at a time: requests that arrive meanwhile keep using the current
//! credential while it is valid, or wait for the refresh. A failed refresh is logged, and for
//! a second after it requests use the still-valid credential or fail at once with the same
//! error instead of queueing on a broken endpoint.
//!
//! *Invariant*: a request that needs a credential and cannot get one fails with a 503 naming
//! the backend and the reason; it is never sent without one. Secrets (client secrets, private
//! keys, OIDC tokens, access tokens, AWS keys) never reach a log line or an error message:
//! an endpoint's own error code and description are all that is quoted of its answer.

mod ambient;
mod federated;
mod grant;

pub use federated::{OidcClient, Subject};
pub use grant::TokenConfigError;

use crate::error::ProxyError;
use crate::upstream::Client;
use aws_smithy_runtime_api::client::identity::Identity;
use grant::Grant;
use http::HeaderValue;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Refresh this long before the credential expires.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);
/// After a failed refresh, the next one waits this long.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Where the identity services are. Each defaults to the public cloud's endpoint and is read
/// from the environment the way the clouds' own SDKs read it, so tests and sovereign clouds
/// can point elsewhere.
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    /// `AZURE_AUTHORITY_HOST` (default `https://login.microsoftonline.com`).
    pub azure_authority: Option<String>,
    /// `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL` (default
    /// `https://sts.{region}.amazonaws.com`).
    pub aws_sts: Option<String>,
    /// `AIGW_GCP_STS_ENDPOINT` (default `https://sts.googleapis.com`): Google's libraries
    /// take it from the credential file, which a policy does not have.
    pub gcp_sts: Option<String>,
    /// `AIGW_GCP_IAMCREDENTIALS_ENDPOINT` (default `https://iamcredentials.googleapis.com`).
    pub gcp_iam_credentials: Option<String>,
}

impl Endpoints {
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Endpoints {
            azure_authority: var("AZURE_AUTHORITY_HOST"),
            aws_sts: var("AWS_ENDPOINT_URL_STS").or_else(|| var("AWS_ENDPOINT_URL")),
            gcp_sts: var("AIGW_GCP_STS_ENDPOINT"),
            gcp_iam_credentials: var("AIGW_GCP_IAMCREDENTIALS_ENDPOINT"),
        }
    }
}

/// A cached, refreshed credential for one backend.
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

/// What an exchange yields.
#[derive(Clone)]
enum Credential {
    /// The whole `authorization` value (`Bearer …`), marked sensitive.
    Bearer(HeaderValue),
    /// AWS keys with their session token.
    Aws(Identity),
}

#[derive(Clone)]
struct Token {
    value: Credential,
    expires: Instant,
}

impl TokenSource {
    fn new(backend: Arc<str>, grant: Grant, client: Client) -> Self {
        TokenSource {
            backend,
            grant,
            client,
            current: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(None),
        }
    }

    /// The `authorization` value for the next request to the backend.
    pub async fn header(&self) -> Result<HeaderValue, ProxyError> {
        match self.current().await? {
            Credential::Bearer(value) => Ok(value),
            Credential::Aws(_) => Err(self.error("the exchange gave AWS keys, not a token")),
        }
    }

    /// The AWS identity to sign the next request with.
    pub async fn aws(&self) -> Result<Identity, ProxyError> {
        match self.current().await? {
            Credential::Aws(identity) => Ok(identity),
            Credential::Bearer(_) => Err(self.error("the exchange gave a token, not AWS keys")),
        }
    }

    fn cached(&self) -> Option<Token> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn current(&self) -> Result<Credential, ProxyError> {
        let cached = self.cached();
        if let Some(token) = &cached
            && token.expires > Instant::now() + REFRESH_AHEAD
        {
            return Ok(token.value.clone());
        }
        // A refresh is in flight: a valid credential serves meanwhile.
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
        match self.grant.exchange(&self.client).await {
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
                tracing::warn!(backend = %self.backend, endpoint = self.grant.endpoint(), %reason, "credential refresh failed");
                let error = self.error(&reason);
                *failed = Some((Instant::now(), reason));
                valid.map(|t| t.value).ok_or(error)
            }
        }
    }

    fn error(&self, reason: &str) -> ProxyError {
        ProxyError::unavailable(format!(
            "backend `{}`: no credential could be obtained from {}: {reason}",
            self.backend,
            self.grant.endpoint()
        ))
    }
}
