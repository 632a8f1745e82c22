//! The SecurityPolicy `jwt`: a request's token verified against the providers' JWK sets, as
//! Envoy's `jwt_authn` does it for Envoy Gateway (`requires_any` over the providers).
//!
//! - **Where the token is**: each provider's sources in order (a header with its prefix
//!   taken off, a query parameter, a cookie); by default `Authorization: Bearer` and then
//!   `access_token`. The token is left in the request (Envoy Gateway forwards it).
//! - **Verified** by `jsonwebtoken`: the signature with the JWK whose `kid` the token names
//!   (else every key of the set), the key's family matching the token's `alg` (so an HMAC
//!   token is never checked against a public key), `exp` and `nbf` with 60 s of leeway as
//!   Envoy allows, `iss` and `aud` when the provider names them. `exp` is not required.
//! - **Remote JWK sets** are fetched on first use with the gateway's upstream client, kept
//!   for `cache_ms`, and fetched again when older; one fetch at a time per set, and after a
//!   failure none before `retry_ms` has passed (the stale set, if any, keeps verifying).
//!   A set lives as long as its table generation.
//! - **Refusals** have Envoy's texts: `Jwt is missing` and the verification statuses are
//!   401 with a `WWW-Authenticate: Bearer realm=…` challenge; a token for another audience
//!   is 403 `Audiences in Jwt are not allowed`.

use crate::upstream::Client;
use aigw_table as t;
use http::HeaderValue;
use jsonwebtoken::jwk::JwkSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One policy's `jwt`, ready to verify.
#[derive(Debug)]
pub struct JwtAuth {
    pub optional: bool,
    pub fail_open: bool,
    pub providers: Vec<Provider>,
}

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    issuer: Option<String>,
    audiences: Vec<String>,
    keys: Keys,
    pub claim_to_headers: Vec<(http::HeaderName, String)>,
    sources: Vec<t::TokenSource>,
}

#[derive(Debug)]
enum Keys {
    Local(Arc<JwkSet>),
    Remote(Box<Remote>),
}

#[derive(Debug)]
struct Remote {
    uri: http::Uri,
    cache: Duration,
    retry: Duration,
    client: Client,
    state: Mutex<Fetched>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Fetched {
    keys: Option<(Instant, Arc<JwkSet>)>,
    failed: Option<Instant>,
}

/// A token one provider verified.
#[derive(Debug)]
pub struct Verified {
    pub provider: usize,
    pub claims: serde_json::Value,
}

/// Why a request's token is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Missing,
    /// 401 with Envoy's status text.
    Invalid(&'static str),
    /// 403: the token is for another audience.
    Audience,
}

impl JwtAuth {
    pub fn resolve(wire: &t::Jwt, client: &Client) -> Result<Self, String> {
        let providers = wire
            .providers
            .iter()
            .map(|p| Provider::resolve(p, client))
            .collect::<Result<_, _>>()?;
        Ok(JwtAuth {
            optional: wire.optional,
            fail_open: wire.fail_open,
            providers,
        })
    }

    /// The verified token of the request: `Ok(None)` when it has none and none is needed
    /// (`optional`, `failOpen`), or an invalid one under `failOpen`.
    pub async fn verify(&self, parts: &http::request::Parts) -> Result<Option<Verified>, Refused> {
        let mut first: Option<Refused> = None;
        for (index, provider) in self.providers.iter().enumerate() {
            let Some(token) = provider.sources.iter().find_map(|s| token(s, parts)) else {
                continue;
            };
            match provider.verify(token).await {
                Ok(claims) => {
                    return Ok(Some(Verified {
                        provider: index,
                        claims,
                    }));
                }
                Err(refused) => {
                    first.get_or_insert(refused);
                }
            }
        }
        match first {
            None if self.optional || self.fail_open => Ok(None),
            None => Err(Refused::Missing),
            Some(_) if self.fail_open => Ok(None),
            Some(refused) => Err(refused),
        }
    }
}

impl Provider {
    fn resolve(wire: &t::JwtProvider, client: &Client) -> Result<Self, String> {
        let keys = match &wire.jwks {
            t::Jwks::Local(text) => {
                Keys::Local(Arc::new(serde_json::from_str(text).map_err(|e| {
                    format!("provider `{}`: the JWK set: {e}", wire.name)
                })?))
            }
            t::Jwks::Remote {
                uri,
                cache_ms,
                retry_ms,
            } => Keys::Remote(Box::new(Remote {
                uri: uri
                    .parse()
                    .map_err(|_| format!("provider `{}`: `{uri}` is not a URL", wire.name))?,
                cache: Duration::from_millis(*cache_ms),
                retry: Duration::from_millis(*retry_ms),
                client: client.clone(),
                state: Mutex::default(),
                fetching: tokio::sync::Mutex::new(()),
            })),
        };
        let claim_to_headers = wire
            .claim_to_headers
            .iter()
            .map(|c| {
                http::HeaderName::from_bytes(c.header.as_bytes())
                    .map(|h| (h, c.claim.clone()))
                    .map_err(|_| format!("`{}` is not a header name", c.header))
            })
            .collect::<Result<_, _>>()?;
        Ok(Provider {
            name: wire.name.clone(),
            issuer: wire.issuer.clone(),
            audiences: wire.audiences.clone(),
            keys,
            claim_to_headers,
            sources: wire.extract_from.clone(),
        })
    }

    async fn verify(&self, token: &str) -> Result<serde_json::Value, Refused> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Refused::Invalid("Jwt header is an invalid JSON"))?;
        let keys = match &self.keys {
            Keys::Local(keys) => keys.clone(),
            Keys::Remote(remote) => remote.keys().await?,
        };
        let candidates: Vec<&jsonwebtoken::jwk::Jwk> = match &header.kid {
            Some(kid) => keys.find(kid).into_iter().collect(),
            None => keys.keys.iter().collect(),
        };
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.leeway = 60;
        validation.required_spec_claims.clear();
        match &self.issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        if self.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audiences);
        }
        let mut refused = Refused::Invalid("Jwks doesn't have key to match kid or alg from Jwt");
        for jwk in candidates {
            if jwk
                .common
                .key_algorithm
                .is_some_and(|a| a.to_string() != format!("{:?}", header.alg))
            {
                continue;
            }
            let Ok(key) = jsonwebtoken::DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(error) => refused = refusal(error.kind()),
            }
        }
        Err(refused)
    }
}

fn refusal(kind: &jsonwebtoken::errors::ErrorKind) -> Refused {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => Refused::Invalid("Jwt is expired"),
        K::ImmatureSignature => Refused::Invalid("Jwt not yet valid"),
        K::InvalidIssuer => Refused::Invalid("Jwt issuer is not configured"),
        K::InvalidAudience => Refused::Audience,
        K::InvalidAlgorithm => Refused::Invalid("Jwt verification fails"),
        K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => {
            Refused::Invalid("Jwt is not in the form of Header.Payload.Signature")
        }
        _ => Refused::Invalid("Jwt verification fails"),
    }
}

impl Remote {
    /// The set, fetched when there is none or it is older than `cache` (and no fetch failed
    /// within `retry`); a set that cannot be fetched leaves the stale one in use.
    async fn keys(&self) -> Result<Arc<JwkSet>, Refused> {
        if let Some(keys) = self.fresh() {
            return Ok(keys);
        }
        let _one = self.fetching.lock().await;
        // Another request may have fetched it meanwhile.
        if let Some(keys) = self.fresh() {
            return Ok(keys);
        }
        let (stale, failed) = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            (state.keys.as_ref().map(|(_, k)| k.clone()), state.failed)
        };
        if failed.is_some_and(|at| at.elapsed() < self.retry) {
            return stale.ok_or(Refused::Invalid("Jwks remote fetch is failed"));
        }
        match self.fetch().await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                state.keys = Some((Instant::now(), keys.clone()));
                state.failed = None;
                Ok(keys)
            }
            Err(reason) => {
                tracing::warn!(uri = %self.uri, %reason, "the JWK set could not be fetched");
                self.state.lock().unwrap_or_else(|e| e.into_inner()).failed = Some(Instant::now());
                stale.ok_or(Refused::Invalid("Jwks remote fetch is failed"))
            }
        }
    }

    fn fresh(&self) -> Option<Arc<JwkSet>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .keys
            .as_ref()
            .filter(|(at, _)| at.elapsed() < self.cache)
            .map(|(_, k)| k.clone())
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        use http_body_util::BodyExt;
        let request = http::Request::get(self.uri.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(crate::upstream::UpstreamBody::empty())
            .map_err(|e| e.to_string())?;
        let answer = tokio::time::timeout(Duration::from_secs(5), async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| crate::upstream::describe(&e).replace("backend", "JWKS server"))?;
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), 1 << 20)
                .collect()
                .await
                .map_err(|_| "the answer could not be read".to_owned())?
                .to_bytes();
            if !status.is_success() {
                return Err(format!("the JWKS server answered {status}"));
            }
            serde_json::from_slice(&body).map_err(|e| format!("not a JWK set: {e}"))
        })
        .await;
        answer.map_err(|_| "no answer within 5s".to_owned())?
    }
}

/// The token in one source, if the request has it there.
fn token<'p>(source: &t::TokenSource, parts: &'p http::request::Parts) -> Option<&'p str> {
    let value = match source {
        t::TokenSource::Header { name, prefix } => {
            let value = parts.headers.get(name.as_str())?.to_str().ok()?;
            match prefix {
                Some(prefix) => strip_prefix_ignore_case(value, prefix)?,
                None => value,
            }
        }
        t::TokenSource::Param(name) => parts
            .uri
            .query()?
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)?,
        t::TokenSource::Cookie(name) => crate::exchange::cookie(&parts.headers, name)?,
    };
    let value = value.trim();
    (!value.is_empty()).then_some(value)
}

fn strip_prefix_ignore_case<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

/// A claim by its dotted path (`org.team`).
pub fn claim<'c>(claims: &'c serde_json::Value, path: &str) -> Option<&'c serde_json::Value> {
    path.split('.').try_fold(claims, |at, part| at.get(part))
}

/// A claim as a header value: strings as they are, numbers and booleans as JSON writes
/// them; objects and arrays are not copied (Envoy's rule).
pub fn claim_header(value: &serde_json::Value) -> Option<HeaderValue> {
    match value {
        serde_json::Value::String(s) => HeaderValue::from_str(s).ok(),
        serde_json::Value::Number(n) => HeaderValue::from_str(&n.to_string()).ok(),
        serde_json::Value::Bool(b) => {
            Some(HeaderValue::from_static(if *b { "true" } else { "false" }))
        }
        _ => None,
    }
}

/// `Bearer realm="<the request's URL>"`, with `error="invalid_token"` for a token that is
/// there and wrong.
pub fn challenge(parts: &http::request::Parts, invalid: bool) -> Option<HeaderValue> {
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let path = parts.uri.path();
    let mut text = format!("Bearer realm=\"http://{host}{path}\"");
    if invalid {
        text.push_str(", error=\"invalid_token\"");
    }
    HeaderValue::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_addressed_by_dots_and_copied_as_scalars() {
        let claims =
            serde_json::json!({"sub": "u1", "org": {"team": "ml", "size": 4}, "list": [1]});
        assert_eq!(claim(&claims, "org.team"), Some(&serde_json::json!("ml")));
        assert_eq!(claim(&claims, "org.nope"), None);
        assert_eq!(
            claim_header(&claims["org"]["size"])
                .as_ref()
                .map(|v| v.as_bytes()),
            Some(&b"4"[..])
        );
        assert_eq!(claim_header(&claims["list"]), None);
        assert_eq!(claim_header(&claims["org"]), None);
    }

    #[test]
    fn prefixes_are_taken_off_whatever_their_case() {
        assert_eq!(
            strip_prefix_ignore_case("bearer abc", "Bearer "),
            Some("abc")
        );
        assert_eq!(strip_prefix_ignore_case("Basic abc", "Bearer "), None);
        assert_eq!(strip_prefix_ignore_case("Be", "Bearer "), None);
    }
}
