//! Who is calling: the SecurityPolicy `apiKeyAuth` and the ModelAccessPolicy in force for a
//! request, resolved once per table generation.
//!
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
}

impl Policies {
    pub fn resolve(snapshot: &Snapshot, secrets: &Secrets) -> Result<Self, PolicyError> {
        let table = snapshot.table();
        let callers = table
            .callers
            .iter()
            .map(|c| Callers::resolve(c, secrets))
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
        InForce {
            callers,
            access,
            rate_limit,
            guard,
        }
    }
}

impl InForce<'_> {
    /// Authenticates the request and checks `model` against the allowlist: the caller's
    /// client ID (none where no policy authenticates), its headers prepared for the backend.
    pub fn admit(
        &self,
        parts: &mut http::request::Parts,
        model: &str,
    ) -> Result<Option<Arc<str>>, crate::error::ProxyError> {
        use crate::error::ProxyError;
        let client = match self.callers {
            None => None,
            Some(callers) => match callers.authenticate(parts) {
                Ok(client) => Some(client),
                Err(Refusal::NoKey) => {
                    return Err(ProxyError::unauthorized(
                        "this gateway needs an API key: none was sent where it is read",
                    ));
                }
                Err(Refusal::UnknownKey) => {
                    return Err(ProxyError::unauthorized("the API key is not valid"));
                }
            },
        };
        if let Some(access) = self.access
            && !access.allows(client.as_deref().unwrap_or_default(), model)
        {
            return Err(ProxyError::forbidden(format!(
                "this caller may not use the model `{}`",
                crate::metrics::model_label(model)
            )));
        }
        if let (Some(callers), Some(client)) = (self.callers, &client) {
            callers.prepare(parts, client);
        }
        Ok(client)
    }

    /// Whether the caller of `parts` may see `model` in `/v1/models`: with no allowlist,
    /// whoever the policy admits; with one, those it names.
    pub fn lists(&self, parts: &http::request::Parts, model: &str) -> bool {
        let client = match self.callers {
            None => None,
            Some(callers) => match callers.authenticate(parts) {
                Ok(client) => Some(client),
                Err(_) => return false,
            },
        };
        self.access
            .is_none_or(|a| a.allows(client.as_deref().unwrap_or_default(), model))
    }
}

impl Callers {
    fn resolve(wire: &aigw_table::Callers, secrets: &Secrets) -> Result<Self, PolicyError> {
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
        Ok(Callers {
            name: wire.name.clone(),
            keys,
            sources: wire.extract_from.clone(),
            forward,
            sanitize: wire.sanitize,
        })
    }

    /// The client ID of the key the request carries.
    pub fn authenticate(&self, parts: &http::request::Parts) -> Result<Arc<str>, Refusal> {
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
    /// says so (headers, query parameters, cookies), the client ID added in its header.
    pub fn prepare(&self, parts: &mut http::request::Parts, client: &str) {
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
        KeySource::Cookie(name) => parts
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_owned())?,
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
