//! WASM extensions (Envoy Gateway's EnvoyExtensionPolicy `wasm`), in wasmtime (cargo feature
//! `wasm`; a build without it answers a request that needs an extension with 501 naming it,
//! and serves the others). An entry's code is one of two kinds, told apart by the binary's
//! header (text is parsed first):
//!
//! - a **core module** of the proxy-wasm ABI 0.2.1, as Envoy runs it ([`proxy_wasm`]):
//!   request and response header phases, local responses;
//! - a **component** of aigw's own world `aigw:plugin` (`runtime/proxy/wit/plugin.wit`,
//!   [`component`]): `on-request(headers, body)` and `on-response(headers, chunk)`, each
//!   answering continue, modify (headers, body or chunk) or reject.
//!
//! Common to both:
//! - **Loaded** with the table generation: read from their path (binary, or `.wat` text),
//!   checked against `sha256` when the policy gives one, compiled once (Cranelift). Code that
//!   cannot be read, compiled or linked stops the generation (on reload the old one serves).
//! - **Per request**, each entry of the policy in force gets a fresh instance (nothing leaks
//!   from one request to the next); the request phase runs after authentication, the
//!   allowlist and the rate limits, in the policy's order; the response phase on the answer,
//!   also on a cache hit.
//! - **Bounded**: every call into an instance has [`FUEL`] units of fuel (about as many wasm
//!   instructions); code that spends them (a loop that never ends) is stopped by a trap. A
//!   trap or a failure answers 500 naming the entry, or with `failOpen` lets the request
//!   (or the answer) through as it was. Nothing a plugin does can take the gateway down.
//! - **Logs** go into the gateway's log, target `aigw::wasm`.

#[cfg(feature = "wasm")]
mod component;
#[cfg(feature = "wasm")]
mod proxy_wasm;

use crate::body::Body;
use crate::error::ProxyError;
use bytes::Bytes;
use http::Response;

/// The fuel of one call into an instance.
pub const FUEL: u64 = 20_000_000;

/// A generation's extensions, parallel to the table's `extensions`.
#[derive(Default)]
pub struct Extensions {
    #[cfg(feature = "wasm")]
    sets: Vec<Vec<Loaded>>,
    #[cfg(not(feature = "wasm"))]
    names: Vec<String>,
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extensions").finish_non_exhaustive()
    }
}

#[cfg(feature = "wasm")]
enum Loaded {
    ProxyWasm(proxy_wasm::Module),
    Component(component::Plugin),
}

#[cfg(feature = "wasm")]
enum Started {
    ProxyWasm(proxy_wasm::Instance),
    Component(component::Instance),
}

/// What one entry's request phase decided.
#[cfg(feature = "wasm")]
enum Step<I> {
    /// Go on, with the instance for the response phase (none after a `failOpen` failure).
    Continue(Option<I>),
    /// The entry answered.
    Respond(Response<Body>),
}

/// What the request phase decided.
pub enum Verdict {
    /// Go on; the response phase runs on the answer.
    Continue(Running),
    /// An entry answered.
    Respond(Response<Body>),
}

/// The instances of one request, kept for its response phase.
#[derive(Default)]
pub struct Running {
    #[cfg(feature = "wasm")]
    instances: Vec<Started>,
    rewrote_body: bool,
}

impl Extensions {
    pub fn compile(snapshot: &aigw_table::Snapshot) -> Result<Self, String> {
        #[cfg(feature = "wasm")]
        {
            let engine = engine()?;
            let sets = snapshot
                .table()
                .extensions
                .iter()
                .map(|set| {
                    set.wasm
                        .iter()
                        .map(|m| load(&engine, m))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| format!("EnvoyExtensionPolicy `{}`: {e}", set.name))
                })
                .collect::<Result<_, _>>()?;
            Ok(Extensions { sets })
        }
        #[cfg(not(feature = "wasm"))]
        {
            let names: Vec<String> = snapshot
                .table()
                .extensions
                .iter()
                .map(|s| s.name.clone())
                .collect();
            if !names.is_empty() {
                tracing::warn!(policies = ?names, "this build has no WASM support (cargo feature `wasm`): requests that need these extensions are answered 501");
            }
            Ok(Extensions { names })
        }
    }

    /// Whether the extensions `index` names read the request body (a component's
    /// `on-request` does), so that a plain route reads it whole instead of streaming it.
    pub fn needs_body(&self, index: Option<usize>) -> bool {
        #[cfg(feature = "wasm")]
        {
            index
                .and_then(|i| self.sets.get(i))
                .is_some_and(|set| set.iter().any(|m| matches!(m, Loaded::Component(_))))
        }
        #[cfg(not(feature = "wasm"))]
        {
            let _ = index;
            false
        }
    }

    /// The request phase of the extensions `index` names, on the request as the gateway
    /// will forward it: `body` is the whole body when the gateway has it (a component may
    /// replace it; [`Running::rewrote_body`] says so), `None` when it is streamed.
    pub fn on_request(
        &self,
        index: Option<usize>,
        parts: &mut http::request::Parts,
        body: Option<&mut Bytes>,
    ) -> Result<Verdict, ProxyError> {
        let Some(index) = index else {
            return Ok(Verdict::Continue(Running::default()));
        };
        #[cfg(feature = "wasm")]
        {
            let Some(set) = self.sets.get(index) else {
                return Ok(Verdict::Continue(Running::default()));
            };
            let mut running = Running::default();
            let mut streamed = Bytes::new();
            let has_body = body.as_ref().is_none_or(|b| !b.is_empty());
            let body = match body {
                Some(body) => body,
                None => &mut streamed,
            };
            for entry in set {
                let step = match entry {
                    Loaded::ProxyWasm(module) => match module.on_request(parts, has_body)? {
                        Step::Continue(i) => Step::Continue(i.map(Started::ProxyWasm)),
                        Step::Respond(r) => Step::Respond(r),
                    },
                    Loaded::Component(plugin) => {
                        let before = (body.as_ptr(), body.len());
                        let step = plugin.on_request(parts, body)?;
                        running.rewrote_body |= (body.as_ptr(), body.len()) != before;
                        match step {
                            Step::Continue(i) => Step::Continue(i.map(Started::Component)),
                            Step::Respond(r) => Step::Respond(r),
                        }
                    }
                };
                match step {
                    Step::Continue(Some(started)) => running.instances.push(started),
                    Step::Continue(None) => {}
                    Step::Respond(response) => return Ok(Verdict::Respond(response)),
                }
            }
            Ok(Verdict::Continue(running))
        }
        #[cfg(not(feature = "wasm"))]
        {
            let _ = (parts, body);
            Err(ProxyError::not_implemented(format!(
                "EnvoyExtensionPolicy `{}` runs WASM modules, and this build of aigw has no WASM support (cargo feature `wasm`)",
                self.names.get(index).map_or("", String::as_str)
            )))
        }
    }
}

impl Running {
    /// Whether a plugin replaced the request body.
    pub fn rewrote_body(&self) -> bool {
        self.rewrote_body
    }

    /// Whether a plugin has a response phase to run.
    pub fn responds(&self) -> bool {
        #[cfg(feature = "wasm")]
        {
            !self.instances.is_empty()
        }
        #[cfg(not(feature = "wasm"))]
        {
            false
        }
    }

    /// The response phase, in the entries' order, on the answer; an entry may change it or
    /// replace it with its own.
    pub async fn on_response(self, response: Response<Body>) -> Response<Body> {
        #[cfg(feature = "wasm")]
        {
            let mut response = response;
            for started in self.instances {
                let next = match started {
                    Started::ProxyWasm(instance) => instance.on_response(response),
                    Started::Component(instance) => instance.on_response(response).await,
                };
                match next {
                    Ok(next) => response = next,
                    Err(error) => return error.response(),
                }
            }
            response
        }
        #[cfg(not(feature = "wasm"))]
        {
            response
        }
    }
}

#[cfg(feature = "wasm")]
fn engine() -> Result<wasmtime::Engine, String> {
    let mut config = wasmtime::Config::new();
    config.consume_fuel(true);
    wasmtime::Engine::new(&config).map_err(|e| e.to_string())
}

/// Reads, checks and compiles one entry's code, a core module or a component.
#[cfg(feature = "wasm")]
fn load(engine: &wasmtime::Engine, wire: &aigw_table::WasmModule) -> Result<Loaded, String> {
    let read = std::fs::read(&wire.path)
        .map_err(|e| format!("the module `{}` ({}): {e}", wire.name, wire.path))?;
    if let Some(want) = &wire.sha256 {
        let got = ring::digest::digest(&ring::digest::SHA256, &read);
        let got: String = got.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        if !got.eq_ignore_ascii_case(want) {
            return Err(format!(
                "the module `{}` ({}) has SHA-256 {got}, not the {want} its policy names",
                wire.name, wire.path
            ));
        }
    }
    let binary = wat::parse_bytes(&read)
        .map_err(|e| format!("the module `{}` ({}): {e}", wire.name, wire.path))?;
    // `\0asm`, then the version: 1 for a core module, 0x0d and layer 1 for a component.
    if binary.get(4..8) == Some(&[0x0d, 0x00, 0x01, 0x00]) {
        component::Plugin::load(engine, wire, &binary).map(Loaded::Component)
    } else {
        proxy_wasm::Module::load(engine, wire, &binary).map(Loaded::ProxyWasm)
    }
}

#[cfg(feature = "wasm")]
fn describe(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => {
            format!("it ran out of fuel ({FUEL} units) and was stopped")
        }
        Some(trap) => format!("it trapped: {trap}"),
        None => error.to_string(),
    }
}

/// An entry's own answer: `status` (403 when it is no status), the headers that are valid,
/// `body`.
#[cfg(feature = "wasm")]
fn local_response(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::full(Bytes::from(body)));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::FORBIDDEN);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// After entry `name` failed `when` ("" for the request, or "on the answer"): with `failOpen`
/// the request or answer goes on as it was (logged), else the failure answers 500.
#[cfg(feature = "wasm")]
fn fail_open_or(name: &str, fail_open: bool, why: &str, when: &str) -> Result<(), ProxyError> {
    if fail_open {
        tracing::warn!(module = %name, %why, "the WASM extension failed {when}; failOpen lets it through");
        return Ok(());
    }
    let when = if when.is_empty() {
        String::new()
    } else {
        format!(" {when}")
    };
    Err(ProxyError::internal(format!(
        "the WASM extension `{name}` failed{when}: {why}"
    )))
}

/// The request's pseudo-headers, as Envoy shows them to a plugin.
#[cfg(feature = "wasm")]
fn pseudo(parts: &http::request::Parts) -> Vec<(&'static str, String)> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    vec![
        (":method", parts.method.to_string()),
        (":path", path.to_owned()),
        (":authority", authority.to_owned()),
        (":scheme", "http".to_owned()),
    ]
}

/// The pseudo-headers, then the request's headers whose values are text.
#[cfg(feature = "wasm")]
fn request_pairs(parts: &http::request::Parts) -> Vec<(String, String)> {
    pseudo(parts)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .chain(
            parts
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))),
        )
        .collect()
}

/// A plugin's header changes: `set` replaces, `remove` drops; pseudo-headers are read only.
#[cfg(feature = "wasm")]
fn apply(
    headers: &mut http::HeaderMap,
    set: Vec<(String, String)>,
    remove: &[String],
) -> Result<(), String> {
    for name in remove {
        if name.starts_with(':') {
            return Err(format!("it removed `{name}`, which is read only"));
        }
        headers.remove(name.as_str());
    }
    for (name, value) in set {
        if name.starts_with(':') {
            return Err(format!("it set `{name}`, which is read only"));
        }
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("it set a header with the invalid name `{name}`"))?;
        let value = http::HeaderValue::from_str(&value)
            .map_err(|_| format!("it set `{name}` to a value that is not a header value"))?;
        headers.insert(name, value);
    }
    Ok(())
}
