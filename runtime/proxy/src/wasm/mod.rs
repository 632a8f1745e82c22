//! WASM extensions (Envoy Gateway's EnvoyExtensionPolicy `wasm`), run as Envoy runs them:
//! modules written to the proxy-wasm ABI 0.2.1, so that the plugins the proxy-wasm SDKs build
//! for Envoy run here unchanged, in wasmtime (cargo feature `wasm`; a build without it answers
//! a request that needs an extension with 501 naming it, and serves the others).
//!
//! - **Loaded** with the table generation: read from their path (`.wasm`, or `.wat` text),
//!   checked against `sha256` when the policy gives one, compiled once (Cranelift). A module
//!   that cannot be read or compiled stops the generation (on reload the old one serves).
//! - **Per request**, each module of the policy in force gets a fresh instance (nothing leaks
//!   from one request to the next): `_initialize`, the root context (`proxy_on_context_create`,
//!   `proxy_on_vm_start`, `proxy_on_configure` with the policy's `config`), then the HTTP
//!   context's `proxy_on_request_headers` before the request goes on (after authentication,
//!   the allowlist and the rate limits), and `proxy_on_response_headers` when the answer's
//!   headers come back. Body callbacks, timers and HTTP calls out are not made: a module that
//!   pauses a request is a failure.
//! - **Bounded**: every request's instance has [`FUEL`] units of fuel (about as many wasm
//!   instructions); a module that spends them (a loop that never ends) is stopped by a trap.
//!   A trap, a pause or a failed configuration answers 500 naming the module, or with
//!   `failOpen` lets the request through as it was.
//! - **What a module sees and does**: the request headers (and `:method`, `:path`,
//!   `:authority`, `:scheme`, read-only), then the response headers; it may add, replace and
//!   remove headers, log through `proxy_log` (into the gateway's log, target `aigw::wasm`), and
//!   answer itself with `proxy_send_local_response` (status, body, headers), which ends the
//!   request there. `proxy_get_property` finds nothing; other imports trap when called.

#[cfg(feature = "wasm")]
mod host;

use crate::body::Body;
use crate::error::ProxyError;
use http::Response;

/// The fuel of one request's instance of one module.
pub const FUEL: u64 = 20_000_000;

/// A generation's extensions, parallel to the table's `extensions`.
#[derive(Default)]
pub struct Extensions {
    #[cfg(feature = "wasm")]
    sets: Vec<Vec<host::Module>>,
    #[cfg(not(feature = "wasm"))]
    names: Vec<String>,
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extensions").finish_non_exhaustive()
    }
}

/// What the request phase decided.
pub enum Verdict {
    /// Go on; the response phase runs on the answer's headers.
    Continue(Running),
    /// A module answered.
    Respond(Response<Body>),
}

/// The instances of one request, kept for its response phase.
#[derive(Default)]
pub struct Running {
    #[cfg(feature = "wasm")]
    instances: Vec<host::Instance>,
}

impl Extensions {
    pub fn compile(snapshot: &aigw_table::Snapshot) -> Result<Self, String> {
        #[cfg(feature = "wasm")]
        {
            let engine = host::engine()?;
            let sets = snapshot
                .table()
                .extensions
                .iter()
                .map(|set| {
                    set.wasm
                        .iter()
                        .map(|m| host::Module::load(&engine, m))
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

    /// The request phase of the extensions `index` names, on the request as the gateway
    /// will forward it.
    pub fn on_request(
        &self,
        index: Option<usize>,
        parts: &mut http::request::Parts,
        has_body: bool,
    ) -> Result<Verdict, ProxyError> {
        let Some(index) = index else {
            return Ok(Verdict::Continue(Running::default()));
        };
        #[cfg(feature = "wasm")]
        {
            let Some(modules) = self.sets.get(index) else {
                return Ok(Verdict::Continue(Running::default()));
            };
            let mut running = Running::default();
            for module in modules {
                match module.on_request(parts, has_body)? {
                    host::Step::Continue(Some(instance)) => running.instances.push(instance),
                    host::Step::Continue(None) => {}
                    host::Step::Respond(response) => return Ok(Verdict::Respond(response)),
                }
            }
            Ok(Verdict::Continue(running))
        }
        #[cfg(not(feature = "wasm"))]
        {
            let _ = (parts, has_body);
            Err(ProxyError::not_implemented(format!(
                "EnvoyExtensionPolicy `{}` runs WASM modules, and this build of aigw has no WASM support (cargo feature `wasm`)",
                self.names.get(index).map_or("", String::as_str)
            )))
        }
    }
}

impl Running {
    /// The response phase, in the modules' order, on the answer's headers; a module may
    /// replace the answer with its own.
    pub fn on_response(self, response: Response<Body>) -> Response<Body> {
        #[cfg(feature = "wasm")]
        {
            let mut response = response;
            for instance in self.instances {
                match instance.on_response(response) {
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
