//! A backend's BackendSecurityPolicy, resolved when a generation is built: a fixed header
//! (API keys, with the request-header override), an AWS signer, or a refreshed token source
//! (Azure, GCP), with the Secrets read once. OIDC exchanges read their client's id and secret
//! here too; the exchanges themselves run per refresh in [`crate::token`].

use crate::auth::AwsSigner;
use crate::generation::{BuildError, Credential, CredentialOverride, Unsupported};
use crate::secrets::Secrets;
use crate::token::{Endpoints, OidcClient, TokenConfigError, TokenSource};
use crate::upstream::Clients;
use aigw_table::{Auth, AuthMethod, SecretRef};
use http::{HeaderName, HeaderValue};
use std::sync::Arc;

/// What a policy resolves to; at most one of `credential`, `aws` and `token` is set.
#[derive(Default)]
pub(crate) struct Resolved {
    pub credential: Option<Credential>,
    pub credential_override: Option<CredentialOverride>,
    pub aws: Option<AwsSigner>,
    pub token: Option<Arc<TokenSource>>,
    /// The GCP project and region.
    pub gcp: Option<crate::generation::GcpPlace>,
    pub unsupported: Option<Unsupported>,
}

pub(crate) fn resolve(
    name: &Arc<str>,
    auth: &Auth,
    secrets: &Secrets,
    clients: &Clients,
    endpoints: &Endpoints,
) -> Result<Resolved, BuildError> {
    let mut out = Resolved::default();
    let key_header = match &auth.method {
        AuthMethod::APIKey { secret } => {
            Some((secret, http::header::AUTHORIZATION, true, "x-aigw-api-key"))
        }
        AuthMethod::AzureAPIKey { secret } => Some((
            secret,
            HeaderName::from_static("api-key"),
            false,
            "x-aigw-azure-api-key",
        )),
        AuthMethod::AnthropicAPIKey { secret } => Some((
            secret,
            HeaderName::from_static("x-api-key"),
            false,
            "x-aigw-anthropic-api-key",
        )),
        AuthMethod::AWSCredentials {
            region,
            web_identity: Some(identity),
            ..
        } => {
            let oidc = oidc_client(name, &identity.oidc, secrets)?;
            let source = TokenSource::aws_web_identity(
                name.clone(),
                region,
                &identity.role_arn,
                // The policy's name, without its namespace (the reference's session name).
                auth.policy.rsplit('/').next().unwrap_or(&auth.policy),
                oidc,
                endpoints,
                clients.plain(),
            );
            out.aws = Some(AwsSigner::exchanged(region, Arc::new(source)));
            None
        }
        // Neither a file nor an exchange: the reference's "default credential chain".
        AuthMethod::AWSCredentials {
            region,
            credentials_file: None,
            web_identity: None,
            ..
        } => {
            out.aws = Some(crate::ambient::aws(name, region, clients));
            None
        }
        AuthMethod::AmbientCredentials { cloud, region } => {
            return Ok(crate::ambient::resolve(
                name,
                *cloud,
                region.as_deref(),
                clients,
                endpoints,
            ));
        }
        AuthMethod::AWSCredentials {
            region,
            credentials_file: Some(file),
            profile,
            web_identity: None,
        } => {
            let signer =
                AwsSigner::load(region, file, profile.as_deref(), secrets).map_err(|error| {
                    BuildError::Aws {
                        backend: name.to_string(),
                        error: Box::new(error),
                    }
                })?;
            out.aws = Some(signer);
            None
        }
        AuthMethod::AzureCredentials {
            client_id,
            tenant_id,
            client_secret,
            oidc,
        } => {
            let source = match (client_secret, oidc) {
                (Some(secret), _) => {
                    let raw = secret_of(name, secret, secrets)?;
                    TokenSource::azure(
                        name.clone(),
                        tenant_id,
                        client_id,
                        &raw,
                        endpoints,
                        clients.plain(),
                    )
                    .map_err(|error| token_error(name, secret, error))?
                }
                (None, Some(oidc)) => {
                    let client = oidc_client(name, oidc, secrets)?;
                    TokenSource::azure_assertion(
                        name.clone(),
                        tenant_id,
                        client_id,
                        crate::token::Subject::Oidc(client),
                        endpoints,
                        clients.plain(),
                    )
                    .map_err(|error| token_error(name, &oidc.client_secret, error))?
                }
                (None, None) => {
                    out.unsupported = Some(Unsupported::Credentials(
                        "AzureCredentials without a client secret or an OIDC exchange",
                    ));
                    return Ok(out);
                }
            };
            out.token = Some(Arc::new(source));
            None
        }
        AuthMethod::GCPCredentials {
            project,
            region,
            service_account_key,
            workload_identity,
        } => {
            out.gcp = Some(crate::generation::GcpPlace {
                project: Some(project.clone()),
                region: region.clone(),
            });
            let source = match (service_account_key, workload_identity) {
                (Some(secret), _) => {
                    let raw = secret_of(name, secret, secrets)?;
                    TokenSource::gcp(name.clone(), &raw, clients.plain())
                        .map_err(|error| token_error(name, secret, error))?
                }
                (None, Some(identity)) => {
                    let oidc = oidc_client(name, &identity.oidc, secrets)?;
                    TokenSource::gcp_federation(
                        name.clone(),
                        identity,
                        project,
                        oidc,
                        endpoints,
                        clients.plain(),
                    )
                }
                (None, None) => {
                    out.unsupported = Some(Unsupported::Credentials(
                        "GCPCredentials without a key or workload identity federation",
                    ));
                    return Ok(out);
                }
            };
            out.token = Some(Arc::new(source));
            None
        }
    };
    let Some((secret, header, bearer, default_override)) = key_header else {
        return Ok(out);
    };
    let raw = secret_of(name, secret, secrets)?;
    let invalid = || BuildError::InvalidCredential {
        backend: name.to_string(),
        secret: format!("{}/{}", secret.namespace, secret.name),
    };
    // Mounted and `kubectl create secret --from-file` values often end with a newline.
    let key = std::str::from_utf8(&raw).map_err(|_| invalid())?.trim();
    let text = if bearer {
        format!("Bearer {key}")
    } else {
        key.to_owned()
    };
    let mut value = HeaderValue::from_str(&text).map_err(|_| invalid())?;
    value.set_sensitive(true);
    out.credential = Some(Credential {
        header,
        value,
        bearer,
    });
    if let Some(o) = &auth.credential_override {
        let header = o.header.as_deref().unwrap_or(default_override);
        let header = HeaderName::from_bytes(header.to_ascii_lowercase().as_bytes())
            .map_err(|_| invalid())?;
        out.credential_override = Some(CredentialOverride {
            header,
            fallback: o.fallback_to_configured,
        });
    }
    Ok(out)
}

/// The OIDC client of an exchange, its id and secret read from their Secrets.
fn oidc_client(
    name: &str,
    oidc: &aigw_table::Oidc,
    secrets: &Secrets,
) -> Result<OidcClient, BuildError> {
    let id = match (&oidc.client_id, &oidc.client_id_secret) {
        (Some(id), _) => bytes::Bytes::copy_from_slice(id.as_bytes()),
        (None, Some(secret)) => secret_of(name, secret, secrets)?,
        (None, None) => bytes::Bytes::new(),
    };
    let secret = secret_of(name, &oidc.client_secret, secrets)?;
    OidcClient::new(oidc, &id, &secret)
        .map_err(|error| token_error(name, &oidc.client_secret, error))
}

pub(crate) fn secret_of(
    backend: &str,
    secret: &SecretRef,
    secrets: &Secrets,
) -> Result<bytes::Bytes, BuildError> {
    secrets.get(secret).map_err(|missing| BuildError::Secret {
        backend: backend.to_owned(),
        missing,
    })
}

fn token_error(backend: &str, secret: &SecretRef, error: TokenConfigError) -> BuildError {
    BuildError::Token {
        backend: backend.to_owned(),
        secret: format!("{}/{}", secret.namespace, secret.name),
        error,
    }
}
