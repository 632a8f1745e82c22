//! A generation: one loaded table plus everything resolved from it before it serves (backend
//! addresses, credentials as ready header values, upstream clients). A request takes one
//! generation and uses nothing else, so a reload never mixes two tables in one request.
//!
//! Building a generation is where run-time configuration errors surface: a credential
//! referenced by the table that cannot be found stops the build with an error naming it (at
//! startup the gateway does not start; on reload the old generation keeps serving). What this
//! build cannot do yet for a backend (a schema that needs translation, cloud credentials,
//! Unix-socket endpoints) is recorded on that backend and answered per request with a clear
//! error, never refused at load: the other routes keep serving.

use crate::auth::{AwsError, AwsSigner};
use crate::secrets::{Missing, Secrets};
use crate::token::{Endpoints, TokenConfigError, TokenSource};
use crate::upstream::{Clients, Pools, TlsKey};
use aigw_table::{Endpoint, Snapshot};
use http::{HeaderName, HeaderValue};
use std::sync::Arc;

/// A table ready to serve.
#[derive(Debug)]
pub struct Generation {
    /// Counts loads in this process, from 1.
    pub number: u64,
    pub snapshot: Snapshot,
    /// Parallel to the table's backends.
    pub backends: Vec<Upstream>,
    /// The backends and mirrors of the plain HTTPRoutes' rules, `[route][rule]`.
    pub plain: Vec<Vec<PlainRule>>,
    /// Unix seconds when it was loaded: the `created` of `/v1/models` entries whose route
    /// does not say.
    pub loaded_at: i64,
    /// The routes' request costs, compiled.
    pub costs: crate::costs::Costs,
    /// The QuotaPolicies, compiled, by backend.
    pub quotas: crate::quota::Quotas,
    /// Caller keys (digested) and model allowlists.
    pub callers: crate::callers::Policies,
    /// Request-rate limits.
    pub rate_limits: crate::ratelimit::RateLimits,
    /// Prompt guards.
    pub guards: crate::guard::Guards,
    /// Response caches.
    pub caches: crate::cache::Caches,
    /// WASM extensions.
    pub extensions: crate::wasm::Extensions,
    /// MCPRoutes, parallel to the table's.
    pub mcp: Vec<crate::mcp::route::Route>,
}

/// A backend, resolved.
#[derive(Debug)]
pub struct Upstream {
    pub name: std::sync::Arc<str>,
    pub schema: String,
    /// The schema as the translations know it (`None`: unknown to this build).
    pub api: Option<aigw_providers::Schema>,
    /// `schema.version`: Azure's `api-version`, the Anthropic version on AWS and GCP.
    pub version: Option<String>,
    /// The GCP project and region: a GCPCredentials policy's, or the ambient ones.
    pub gcp: Option<GcpPlace>,
    /// SigV4 signing, for an AWSCredentials policy.
    pub aws: Option<AwsSigner>,
    /// OAuth2 access tokens, for Azure and GCP credentials.
    pub token: Option<Arc<TokenSource>>,
    /// Why requests to it cannot be sent by this build; `None` when they can.
    pub unsupported: Option<Unsupported>,
    /// `/` plus the schema prefix (`/v1` for OpenAI by default), without a trailing slash.
    pub prefix: String,
    /// `scheme://host:port`, one per endpoint.
    pub bases: Vec<String>,
    pub client: Pools,
    pub credential: Option<Credential>,
    pub credential_override: Option<CredentialOverride>,
    /// Its request slots, shared by every generation that has a backend of its name.
    pub slots: Arc<crate::slots::Slots>,
}

/// Where a GCP backend's models are: `projects/{project}/locations/{region}`.
#[derive(Clone, Debug)]
pub struct GcpPlace {
    /// `None`: the metadata server's project, learned with the first token.
    pub project: Option<String>,
    pub region: String,
}

/// Where a plain HTTPRoute rule sends a request, and its copies.
#[derive(Debug, Default)]
pub struct PlainRule {
    pub backends: Vec<PlainUpstream>,
    pub mirrors: Vec<PlainMirror>,
}

/// A `RequestMirror` of a plain rule: `numerator` out of `denominator` requests copied.
#[derive(Debug)]
pub struct PlainMirror {
    pub upstream: PlainUpstream,
    pub numerator: u32,
    pub denominator: u32,
}

/// A backend of a plain HTTPRoute rule.
#[derive(Debug)]
pub struct PlainUpstream {
    pub name: Arc<str>,
    pub weight: u32,
    /// `scheme://host:port`, one per endpoint; empty when it has none (answered 500).
    pub bases: Vec<String>,
    pub client: Pools,
}

/// What stops a backend from being called by this build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsupported {
    /// Its schema is unknown to this build.
    Schema,
    /// Its BackendSecurityPolicy type (AWS, Azure or GCP credentials).
    Credentials(&'static str),
    /// It has only Unix-socket endpoints.
    UnixEndpoint,
    /// It has no endpoint (an InferencePool).
    NoEndpoint,
    /// No policy targets it and its cloud's ambient chain cannot be used here: what is
    /// missing, and what was looked for.
    NoAmbient(&'static str),
}

/// A credential header, marked sensitive so that it is never logged.
#[derive(Clone, Debug)]
pub struct Credential {
    pub header: HeaderName,
    pub value: HeaderValue,
    /// `Bearer ` goes before a value taken from a request header.
    pub bearer: bool,
}

/// `credentialOverride.fromRequestHeaders`: the credential comes from a request header that
/// the gateway strips before forwarding.
#[derive(Clone, Debug)]
pub struct CredentialOverride {
    pub header: HeaderName,
    /// When the header is absent: use the configured credential (true) or answer 401.
    pub fallback: bool,
}

/// Why a generation could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("backend `{backend}`: {missing}")]
    Secret { backend: String, missing: Missing },
    #[error("backend `{backend}`: the credential in secret `{secret}` is not a valid header value")]
    InvalidCredential { backend: String, secret: String },
    #[error("backend `{backend}`: {reason}")]
    Tls { backend: String, reason: String },
    #[error("backend `{backend}`: secret `{secret}`: {error}")]
    Token {
        backend: String,
        secret: String,
        error: TokenConfigError,
    },
    #[error(transparent)]
    Cost(#[from] crate::costs::CostError),
    #[error(transparent)]
    Quota(#[from] crate::quota::QuotaError),
    #[error(transparent)]
    Callers(#[from] crate::callers::PolicyError),
    #[error(transparent)]
    RateLimit(#[from] crate::ratelimit::RateLimitError),
    #[error(transparent)]
    Guard(#[from] crate::guard::GuardError),
    #[error("{0}")]
    Cache(String),
    #[error("{0}")]
    Extension(String),
    #[error("MCPRoute `{route}`: oauth: {reason}")]
    McpOAuth { route: String, reason: String },
    #[error("backend `{backend}`: {error}")]
    Aws {
        backend: String,
        error: Box<AwsError>,
    },
}

impl Generation {
    /// Resolves every backend of `snapshot`.
    /// `endpoints` are the clouds' identity services (see [`crate::Config`]).
    pub fn build(
        number: u64,
        snapshot: Snapshot,
        secrets: &Secrets,
        clients: &Clients,
        endpoints: &Endpoints,
        (stores, metrics): (&crate::cache::Stores, &crate::metrics::Metrics),
    ) -> Result<Self, BuildError> {
        let backends = snapshot
            .table()
            .backends
            .iter()
            .map(|b| upstream(b, secrets, clients, endpoints))
            .collect::<Result<Vec<_>, _>>()?;
        let plain = plain(&snapshot, secrets, clients)?;
        let costs = crate::costs::Costs::compile(&snapshot)?;
        let quotas = crate::quota::Quotas::compile(&snapshot)?;
        let callers = crate::callers::Policies::resolve(&snapshot, secrets, &clients.plain())?;
        let rate_limits = crate::ratelimit::RateLimits::compile(&snapshot)?;
        let guards = crate::guard::Guards::compile(&snapshot)?;
        let caches =
            crate::cache::Caches::compile(&snapshot, stores, metrics).map_err(BuildError::Cache)?;
        let extensions =
            crate::wasm::Extensions::compile(&snapshot).map_err(BuildError::Extension)?;
        let mcp = crate::mcp::route::resolve(&snapshot, secrets, clients)?;
        let loaded_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Ok(Generation {
            number,
            snapshot,
            backends,
            plain,
            loaded_at,
            costs,
            quotas,
            callers,
            rate_limits,
            guards,
            caches,
            extensions,
            mcp,
        })
    }
}

/// `scheme://host:port` of each endpoint that can be dialled (Unix sockets cannot, yet).
pub(crate) fn bases(endpoints: &[Endpoint], tls: bool) -> Vec<String> {
    let scheme = if tls { "https" } else { "http" };
    endpoints
        .iter()
        .filter_map(|e| Some(format!("{scheme}://{}", e.authority()?)))
        .collect()
}

/// The client for a backend: plain, or TLS as its BackendTLSPolicy says.
pub(crate) fn client(
    name: &str,
    tls: Option<&aigw_table::Tls>,
    secrets: &Secrets,
    clients: &Clients,
) -> Result<Pools, BuildError> {
    let Some(tls) = tls else {
        return Ok(clients.plain_pools());
    };
    let mut bundles = Vec::new();
    for ca in &tls.ca_certificates {
        let bundle = secrets
            .lookup(&ca.namespace, &ca.name, "ca.crt")
            .map_err(|missing| BuildError::Secret {
                backend: name.to_owned(),
                missing,
            })?;
        bundles.push(bundle);
    }
    let key = TlsKey {
        server_name: tls.hostname.clone(),
        system: tls.system_cas,
        bundles,
    };
    clients.tls(&key).map_err(|e| BuildError::Tls {
        backend: name.to_owned(),
        reason: e.message.into_owned(),
    })
}

/// The backends and mirrors of every plain rule, `[route][rule]`.
fn plain(
    snapshot: &Snapshot,
    secrets: &Secrets,
    clients: &Clients,
) -> Result<Vec<Vec<PlainRule>>, BuildError> {
    let upstream = |backend: &aigw_table::ProxyBackend| -> Result<PlainUpstream, BuildError> {
        Ok(PlainUpstream {
            name: Arc::from(backend.name.as_str()),
            weight: backend.weight,
            bases: bases(&backend.endpoints, backend.tls.is_some()),
            client: client(&backend.name, backend.tls.as_ref(), secrets, clients)?,
        })
    };
    let mut routes = Vec::new();
    for route in &snapshot.table().http_routes {
        let mut rules = Vec::with_capacity(route.rules.len());
        for rule in &route.rules {
            let backends = rule
                .backends
                .iter()
                .map(upstream)
                .collect::<Result<_, _>>()?;
            let mirrors = rule
                .filters
                .mirrors
                .iter()
                .map(|m| {
                    Ok(PlainMirror {
                        upstream: upstream(&m.backend)?,
                        numerator: m.numerator,
                        denominator: m.denominator,
                    })
                })
                .collect::<Result<_, BuildError>>()?;
            rules.push(PlainRule { backends, mirrors });
        }
        routes.push(rules);
    }
    Ok(routes)
}

fn upstream(
    backend: &aigw_table::Backend,
    secrets: &Secrets,
    clients: &Clients,
    endpoints: &Endpoints,
) -> Result<Upstream, BuildError> {
    let name: std::sync::Arc<str> = Arc::from(backend.name.as_str());
    let api = aigw_providers::Schema::parse(&backend.schema.name);
    let mut unsupported = api.is_none().then_some(Unsupported::Schema);
    let bases = bases(&backend.endpoints, backend.tls.is_some());
    if bases.is_empty() {
        let unix = backend
            .endpoints
            .iter()
            .any(|e| matches!(e, Endpoint::Unix { .. }));
        unsupported = unsupported.or(Some(if unix {
            Unsupported::UnixEndpoint
        } else {
            Unsupported::NoEndpoint
        }));
    }
    let client = client(&name, backend.tls.as_ref(), secrets, clients)?;
    let resolved = match &backend.auth {
        Some(auth) => crate::credentials::resolve(&name, auth, secrets, clients, endpoints)?,
        None => crate::credentials::Resolved::default(),
    };
    unsupported = unsupported.or(resolved.unsupported);
    let prefix = backend
        .schema
        .prefix
        .as_deref()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .map_or_else(String::new, |p| format!("/{p}"));
    Ok(Upstream {
        name,
        schema: backend.schema.name.clone(),
        api,
        version: backend.schema.version.clone(),
        gcp: resolved.gcp,
        aws: resolved.aws,
        token: resolved.token,
        unsupported,
        prefix,
        bases,
        client,
        credential: resolved.credential,
        credential_override: resolved.credential_override,
        slots: clients.slots(&backend.name),
    })
}
