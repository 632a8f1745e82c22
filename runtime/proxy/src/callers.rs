//! Who is calling: the SecurityPolicy (`apiKeyAuth` here, `jwt` in [`crate::jwt`],
//! `authorization` in [`crate::authz`], `cors` in [`crate::cors`]) and the ModelAccessPolicy
//! in force for a request, resolved once per table generation.
//!
//! - **Order**, Envoy Gateway's filter order: API key, then JWT, then the headers prepared
//!   for the backend (key removed, client ID and claims copied in), then `authorization`
//!   (which so sees them), then the allowlist. Every authentication the policy has must pass.
//! - **The caller's identity** (logs, metrics, quotas, the allowlist) is the API key's client
//!   ID; without `apiKeyAuth`, the verified JWT's `sub`.
//! - **Keys are never kept.** At load, every key of the policy's Secrets is hashed with
//!   SHA-256 and only the digest is held, by client ID. A presented key is hashed the same way
//!   and looked up by its digest; the decision never compares a secret byte by byte, so its
//!   timing can tell at most something about digests, from which no key can be recovered. The
//!   digest found is then compared again in constant time (`subtle`).
//! - **Where the key is read**: the policy's `extractFrom` sources in order (headers, query
//!   parameters, cookies); the first that has a value is the one checked. An `Authorization`
//!   header's `Bearer ` prefix is taken off, as the OpenAI and Anthropic SDKs send their key
//!   that way (`x-api-key` is sent bare).
//! - **In force**: the route's policies, else its listener's, else its Gateway's (Envoy
//!   Gateway's precedence).
//! - **The allowlist**: a caller may use a model when a rule names both (globs: `*` any run,
//!   `?` one character); `/v1/models` lists only those.
//!
//! A missing or unknown key is a 401 and a model outside the allowlist a 403 naming the model,
//! in the client API's error shape; no answer names a key, and the log holds only client IDs.

use crate::secrets::Secrets;
use aigw_table::{ListenerId, Snapshot};
use http::HeaderMap;
use std::collections::HashMap;
use std::sync::Arc;

type Digest = [u8; 32];

/// The caller policies of a generation, parallel to the table's `callers` and `access`.
#[derive(Debug, Default)]
pub struct Policies {
    callers: Vec<Callers>,
    access: Vec<Access>,
}

/// One SecurityPolicy's `apiKeyAuth`, its keys digested.
pub struct Callers {
    /// The policy, for logs.
    pub name: String,
    keys: HashMap<Digest, Arc<str>, foldhash::quality::RandomState>,
    sources: Vec<aigw_table::KeySource>,
    forward: Option<http::HeaderName>,
    sanitize: bool,
    jwt: Option<crate::jwt::JwtAuth>,
    authz: Option<crate::authz::Authz>,
    pub cors: Option<crate::cors::Cors>,
}

/// An authenticated caller.
#[derive(Debug, Default)]
pub struct Caller {
    pub client: Option<Arc<str>>,
    token: Option<crate::jwt::Verified>,
}

impl std::fmt::Debug for Callers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callers")
            .field("name", &self.name)
            .field("clients", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// One ModelAccessPolicy.
#[derive(Debug)]
pub struct Access {
    rules: Vec<aigw_table::AccessRule>,
}

/// Why a caller policy cannot be used (a table whose Secrets are not there).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("SecurityPolicy `{policy}`: {reason}")]
    Callers { policy: String, reason: String },
}

/// Why a request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no key where the policy looks.
    NoKey,
    /// 401: a key no client has.
    UnknownKey,
    /// 401 or 403: the JWT.
    Jwt(crate::jwt::Refused),
    /// 403: `authorization`.
    Denied,
}

impl Refusal {
    /// The answer, in Envoy's words where Envoy answers it.
    pub fn error(self, parts: &http::request::Parts) -> crate::error::ProxyError {
        use crate::error::ProxyError;
        use crate::jwt::Refused;
        match self {
            Refusal::NoKey => ProxyError::unauthorized(
                "this gateway needs an API key: none was sent where it is read",
            ),
            Refusal::UnknownKey => ProxyError::unauthorized("the API key is not valid"),
            Refusal::Jwt(Refused::Missing) => {
                let mut error = ProxyError::unauthorized("Jwt is missing");
                error.challenge = crate::jwt::challenge(parts, false).map(Box::new);
                error
            }
            Refusal::Jwt(Refused::Invalid(text)) => {
                let mut error = ProxyError::unauthorized(text);
                error.challenge = crate::jwt::challenge(parts, true).map(Box::new);
                error
            }
            Refusal::Jwt(Refused::Audience) => {
                ProxyError::forbidden("Audiences in Jwt are not allowed")
            }
            Refusal::Denied => ProxyError::forbidden("RBAC: access denied"),
        }
    }
}

/// What applies to one request.
#[derive(Clone, Copy, Debug, Default)]
pub struct InForce<'a> {
    pub callers: Option<&'a Callers>,
    pub access: Option<&'a Access>,
    /// Index into the generation's rate limits.
    pub rate_limit: Option<usize>,
    /// Index into the generation's prompt guards.
    pub guard: Option<usize>,
    /// Index into the generation's response caches.
    pub cache: Option<usize>,
    /// Index into the generation's WASM extensions.
    pub extensions: Option<usize>,
}

impl Policies {
    pub fn resolve(
        snapshot: &Snapshot,
        secrets: &Secrets,
        client: &crate::upstream::Client,
    ) -> Result<Self, PolicyError> {
        let table = snapshot.table();
        let callers = table
            .callers
            .iter()
            .map(|c| Callers::resolve(c, secrets, client))
            .collect::<Result<_, _>>()?;
        let access = table
            .access
            .iter()
            .map(|a| Access {
                rules: a.rules.clone(),
            })
            .collect();
        Ok(Policies { callers, access })
    }

    /// The policies in force on `listener` for `route` (none: its listener's and Gateway's).
    pub fn in_force(
        &self,
        snapshot: &Snapshot,
        listener: ListenerId,
        route: Option<&aigw_table::CallerPolicies>,
    ) -> InForce<'_> {
        let table = snapshot.table();
        let gateway = table.gateways.get(listener.gateway);
        let on_listener = gateway.and_then(|g| g.listeners.get(listener.listener));
        let levels = [
            route,
            on_listener.map(|l| &l.policies),
            gateway.map(|g| &g.policies),
        ];
        let callers = levels
            .iter()
            .flatten()
            .find_map(|p| p.callers)
            .and_then(|i| self.callers.get(i));
        let access = levels
            .iter()
            .flatten()
            .find_map(|p| p.access)
            .and_then(|i| self.access.get(i));
        let rate_limit = levels.iter().flatten().find_map(|p| p.rate_limit);
        let guard = levels.iter().flatten().find_map(|p| p.guard);
        let cache = levels.iter().flatten().find_map(|p| p.cache);
        let extensions = levels.iter().flatten().find_map(|p| p.extensions);
        InForce {
            callers,
            access,
            rate_limit,
            guard,
            cache,
            extensions,
        }
    }
}

impl InForce<'_> {
    /// Authenticates and authorizes the request and checks `model` (none: a plain route)
    /// against the allowlist: the caller's client ID (none where no policy knows it), its
    /// headers prepared for the backend.
    pub async fn admit(
        &self,
        parts: &mut http::request::Parts,
        model: Option<&str>,
        peer: std::net::IpAddr,
    ) -> Result<Option<Arc<str>>, crate::error::ProxyError> {
        let client = match self.callers {
            None => None,
            Some(callers) => {
                let caller = callers
                    .authenticate(parts)
                    .await
                    .map_err(|r| r.error(parts))?;
                callers.prepare(parts, &caller);
                callers
                    .authorize(parts, peer, &caller)
                    .map_err(|r| r.error(parts))?;
                caller.client
            }
        };
        if let (Some(access), Some(model)) = (self.access, model)
            && !access.allows(client.as_deref().unwrap_or_default(), model)
        {
            return Err(crate::error::ProxyError::forbidden(format!(
                "this caller may not use the model `{}`",
                crate::metrics::model_label(model)
            )));
        }
        Ok(client)
    }

    /// Whether the caller of `parts` may see `model` in `/v1/models`: with no allowlist,
    /// whoever the policy admits; with one, those it names.
    pub async fn lists(
        &self,
        parts: &http::request::Parts,
        peer: std::net::IpAddr,
        model: &str,
    ) -> bool {
        let client = match self.callers {
            None => None,
            Some(callers) => match callers.authenticate(parts).await {
                Ok(caller) if callers.authorize(parts, peer, &caller).is_ok() => caller.client,
                _ => return false,
            },
        };
        self.access
            .is_none_or(|a| a.allows(client.as_deref().unwrap_or_default(), model))
    }
}

impl<'a> InForce<'a> {
    /// The `cors` of the policy in force.
    pub fn cors(&self) -> Option<&'a crate::cors::Cors> {
        self.callers.and_then(|c| c.cors.as_ref())
    }
}

impl Callers {
    fn resolve(
        wire: &aigw_table::Callers,
        secrets: &Secrets,
        client: &crate::upstream::Client,
    ) -> Result<Self, PolicyError> {
        let error = |reason: String| PolicyError::Callers {
            policy: wire.name.clone(),
            reason,
        };
        let mut keys = HashMap::with_hasher(foldhash::quality::RandomState::default());
        for secret in &wire.credentials {
            let entries = secrets
                .all(&secret.namespace, &secret.name)
                .map_err(|e| error(e.to_string()))?;
            for (client, key) in entries {
                let key = trim_newline(&key);
                if key.is_empty() {
                    continue;
                }
                // A client ID in two Secrets takes the first (Envoy Gateway's rule).
                if !keys.values().any(|c: &Arc<str>| **c == *client) {
                    keys.entry(digest(key)).or_insert_with(|| Arc::from(client));
                }
            }
        }
        let forward = wire
            .forward_client_id_header
            .as_deref()
            .map(|h| {
                http::HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| error(format!("`{h}` is not a header name")))
            })
            .transpose()?;
        let jwt = wire
            .jwt
            .as_ref()
            .map(|j| crate::jwt::JwtAuth::resolve(j, client))
            .transpose()
            .map_err(error)?;
        let authz = wire
            .authorization
            .as_ref()
            .map(crate::authz::Authz::compile)
            .transpose()
            .map_err(error)?;
        Ok(Callers {
            name: wire.name.clone(),
            keys,
            sources: wire.extract_from.clone(),
            forward,
            sanitize: wire.sanitize,
            jwt,
            authz,
            cors: wire.cors.as_ref().map(crate::cors::Cors::compile),
        })
    }

    /// Every authentication of the policy: the API key's client ID, the verified JWT.
    pub async fn authenticate(&self, parts: &http::request::Parts) -> Result<Caller, Refusal> {
        let client = if self.sources.is_empty() {
            None
        } else {
            Some(self.api_key(parts)?)
        };
        let token = match &self.jwt {
            None => None,
            Some(jwt) => jwt.verify(parts).await.map_err(Refusal::Jwt)?,
        };
        let client = client.or_else(|| {
            token
                .as_ref()
                .and_then(|t| t.claims.get("sub")?.as_str().map(Arc::from))
        });
        Ok(Caller { client, token })
    }

    /// `authorization`, on the request as authentication prepared it.
    pub fn authorize(
        &self,
        parts: &http::request::Parts,
        peer: std::net::IpAddr,
        caller: &Caller,
    ) -> Result<(), Refusal> {
        let Some(authz) = &self.authz else {
            return Ok(());
        };
        let token = caller
            .token
            .as_ref()
            .map(|t| (crate::authz::provider_name(self.jwt.as_ref(), t), t));
        let subject = crate::authz::Subject { parts, peer, token };
        match authz.allows(&subject) {
            (true, _) => Ok(()),
            (false, rule) => {
                tracing::debug!(policy = %self.name, rule = rule.unwrap_or("default"), "authorization denied the request");
                Err(Refusal::Denied)
            }
        }
    }

    /// The client ID of the key the request carries.
    fn api_key(&self, parts: &http::request::Parts) -> Result<Arc<str>, Refusal> {
        let key = self
            .sources
            .iter()
            .find_map(|source| presented(source, parts))
            .ok_or(Refusal::NoKey)?;
        let wanted = digest(key.as_bytes());
        let (found, client) = self
            .keys
            .get_key_value(&wanted)
            .ok_or(Refusal::UnknownKey)?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&found[..], &wanted[..])) {
            return Err(Refusal::UnknownKey);
        }
        Ok(client.clone())
    }

    /// Before the request is forwarded: the key removed wherever it may be when the policy
    /// says so (headers, query parameters, cookies), the client ID added in its header, the
    /// claims copied into theirs.
    pub fn prepare(&self, parts: &mut http::request::Parts, caller: &Caller) {
        if let Some(jwt) = &self.jwt {
            // A caller must not set a header the policy fills from its token.
            for provider in &jwt.providers {
                for (header, _) in &provider.claim_to_headers {
                    parts.headers.remove(header);
                }
            }
            let verified = caller
                .token
                .as_ref()
                .and_then(|t| Some((t, jwt.providers.get(t.provider)?)));
            if let Some((token, provider)) = verified {
                for (header, claim) in &provider.claim_to_headers {
                    let value = crate::jwt::claim(&token.claims, claim);
                    if let Some(value) = value.and_then(crate::jwt::claim_header) {
                        parts.headers.insert(header.clone(), value);
                    }
                }
            }
        }
        if self.sources.is_empty() {
            return;
        }
        let Some(client) = caller.client.as_deref() else {
            return;
        };
        if self.sanitize {
            for source in &self.sources {
                match source {
                    aigw_table::KeySource::Header(name) => {
                        parts.headers.remove(name.as_str());
                    }
                    aigw_table::KeySource::Param(name) => without_param(&mut parts.uri, name),
                    aigw_table::KeySource::Cookie(name) => without_cookie(&mut parts.headers, name),
                }
            }
        }
        if let Some(header) = &self.forward
            && let Ok(value) = http::HeaderValue::from_str(client)
        {
            parts.headers.insert(header.clone(), value);
        }
    }
}

impl Access {
    /// Whether `client` may use `model`.
    pub fn allows(&self, client: &str, model: &str) -> bool {
        self.rules.iter().any(|rule| {
            rule.clients.iter().any(|c| glob(c, client))
                && rule.models.iter().any(|m| glob(m, model))
        })
    }
}

/// The key in one source, if the request has it there.
fn presented(source: &aigw_table::KeySource, parts: &http::request::Parts) -> Option<String> {
    use aigw_table::KeySource;
    let value = match source {
        KeySource::Header(name) => {
            let value = parts.headers.get(name.as_str())?.to_str().ok()?;
            let bare = if name.eq_ignore_ascii_case("authorization") {
                strip_bearer(value)
            } else {
                value
            };
            bare.trim().to_owned()
        }
        KeySource::Param(name) => form_urlencoded::parse(parts.uri.query()?.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())?,
        KeySource::Cookie(name) => crate::exchange::cookie(&parts.headers, name)?.to_owned(),
    };
    (!value.is_empty()).then_some(value)
}

/// `uri` without the query parameter `name`.
fn without_param(uri: &mut http::Uri, name: &str) {
    let Some(query) = uri.query() else { return };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            form_urlencoded::parse(key.as_bytes())
                .next()
                .map_or(key != name, |(k, _)| k != name)
        })
        .collect();
    let path = uri.path();
    let rebuilt = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let mut builder = http::uri::Builder::new();
    if let Some(scheme) = uri.scheme() {
        builder = builder.scheme(scheme.clone());
    }
    if let Some(authority) = uri.authority() {
        builder = builder.authority(authority.clone());
    }
    if let Ok(new) = builder.path_and_query(rebuilt).build() {
        *uri = new;
    }
}

/// The `Cookie` headers without the cookie `name`.
fn without_cookie(headers: &mut HeaderMap, name: &str) {
    let kept: Vec<String> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(name))
        .map(str::to_owned)
        .collect();
    headers.remove(http::header::COOKIE);
    if !kept.is_empty()
        && let Ok(value) = http::HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(http::header::COOKIE, value);
    }
}

fn strip_bearer(value: &str) -> &str {
    match value.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => &value[7..],
        _ => value,
    }
}

fn digest(key: &[u8]) -> Digest {
    let mut out = [0; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, key).as_ref());
    out
}

/// A mounted Secret file often ends with a newline the key does not have.
fn trim_newline(value: &[u8]) -> &[u8] {
    value
        .strip_suffix(b"\n")
        .map_or(value, |v| v.strip_suffix(b"\r").unwrap_or(v))
}

/// `*` matches any run of characters (none included), `?` one; everything else itself. Our
/// own, as two metacharacters need no regex engine: it backtracks only to the last `*`.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_written() {
        assert!(glob("gpt-4o*", "gpt-4o-mini"));
        assert!(glob("gpt-4o*", "gpt-4o"));
        assert!(!glob("gpt-4o*", "gpt-4"));
        assert!(glob("*", ""));
        assert!(glob("c?aude-*-sonnet", "claude-3-sonnet"));
        assert!(!glob("c?aude-*-sonnet", "claude-3-opus"));
        assert!(glob("*mini*", "o4-mini-high"));
        assert!(glob("exact", "exact") && !glob("exact", "exact2"));
        assert!(glob("ünï*", "ünïcode"));
    }

    #[test]
    fn bearer_and_newlines_are_taken_off() {
        assert_eq!(strip_bearer("Bearer sk-1"), "sk-1");
        assert_eq!(strip_bearer("bearer sk-1"), "sk-1");
        assert_eq!(strip_bearer("sk-1"), "sk-1");
        assert_eq!(trim_newline(b"sk-1\n"), b"sk-1");
        assert_eq!(trim_newline(b"sk-1\r\n"), b"sk-1");
    }
}
