//! Modules of the proxy-wasm ABI 0.2.1, run as Envoy runs them, so that the plugins the
//! proxy-wasm SDKs build for Envoy run here unchanged. Per request, a fresh instance:
//! `_initialize`, the root context (`proxy_on_context_create`, `proxy_on_vm_start`,
//! `proxy_on_configure` with the policy's `config`), then the HTTP context's
//! `proxy_on_request_headers`, and `proxy_on_response_headers` when the answer's headers come
//! back. Body callbacks, timers and HTTP calls out are not made: a module that pauses a
//! request is a failure. A module sees the request headers (and `:method`, `:path`,
//! `:authority`, `:scheme`, read only), then the answer's; it may add, replace and remove
//! headers, log through `proxy_log`, and answer itself with `proxy_send_local_response`.
//! `proxy_get_property` finds nothing; other imports trap when called. The `env` functions
//! are in [`env`].

use super::Step;
use crate::body::Body;
use crate::error::ProxyError;
use bytes::Bytes;
use http::{HeaderMap, Response};
use wasmtime::{Engine, InstancePre, Linker, Store};

const ROOT: i32 = 1;
const HTTP: i32 = 2;

mod env;

/// What a module may reach of its request.
#[derive(Default)]
pub(super) struct State {
    request: HeaderMap,
    /// `:method`, `:path`, `:authority`, `:scheme`.
    pseudo: Vec<(&'static str, String)>,
    response: HeaderMap,
    config: Bytes,
    local: Option<Local>,
    name: String,
}

struct Local {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

/// A compiled module, ready to instantiate.
pub(super) struct Module {
    name: String,
    config: Bytes,
    fail_open: bool,
    engine: Engine,
    pre: InstancePre<State>,
}

/// One request's instance of a module, between its request and response phases.
pub(super) struct Instance {
    name: String,
    fail_open: bool,
    store: Store<State>,
    instance: wasmtime::Instance,
}

impl Module {
    /// Compiles the core module `bytes` (binary) of `wire`.
    pub(super) fn load(
        engine: &Engine,
        wire: &aigw_table::WasmModule,
        bytes: &[u8],
    ) -> Result<Self, String> {
        let module = wasmtime::Module::new(engine, bytes)
            .map_err(|e| format!("the module `{}` ({}): {e}", wire.name, wire.path))?;
        let mut linker = Linker::new(engine);
        env::imports(&mut linker).map_err(|e| e.to_string())?;
        linker
            .define_unknown_imports_as_traps(&module)
            .map_err(|e| e.to_string())?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| format!("the module `{}`: {e}", wire.name))?;
        Ok(Module {
            name: wire.name.clone(),
            config: Bytes::from(wire.config.clone()),
            fail_open: wire.fail_open,
            engine: engine.clone(),
            pre,
        })
    }

    pub(super) fn on_request(
        &self,
        parts: &mut http::request::Parts,
        has_body: bool,
    ) -> Result<Step<Instance>, ProxyError> {
        let state = State {
            request: parts.headers.clone(),
            pseudo: super::pseudo(parts),
            config: self.config.clone(),
            name: self.name.clone(),
            ..State::default()
        };
        let mut store = Store::new(&self.engine, state);
        let run = (|| -> wasmtime::Result<(wasmtime::Instance, i32)> {
            store.set_fuel(super::FUEL)?;
            let instance = self.pre.instantiate(&mut store)?;
            call::<_, ()>(&mut store, &instance, "_initialize", ())?;
            call::<_, ()>(&mut store, &instance, "proxy_on_context_create", (ROOT, 0))?;
            let config = self.config.len() as i32;
            let started: Option<i32> = call(&mut store, &instance, "proxy_on_vm_start", (ROOT, 0))?;
            let configured: Option<i32> =
                call(&mut store, &instance, "proxy_on_configure", (ROOT, config))?;
            if started == Some(0) || configured == Some(0) {
                return Err(wasmtime::Error::msg("it refused its configuration"));
            }
            call::<_, ()>(
                &mut store,
                &instance,
                "proxy_on_context_create",
                (HTTP, ROOT),
            )?;
            let headers = store.data().request.len() as i32 + 4;
            let eos = i32::from(!has_body);
            let action: Option<i32> = call(
                &mut store,
                &instance,
                "proxy_on_request_headers",
                (HTTP, headers, eos),
            )?;
            Ok((instance, action.unwrap_or(0)))
        })();
        let (instance, action) = match run {
            Ok(done) => done,
            Err(error) => return self.failed(&error),
        };
        if let Some(local) = store.data_mut().local.take() {
            return Ok(Step::Respond(local.response()));
        }
        if action != 0 {
            return self.failed(&wasmtime::Error::msg(
                "it paused the request, which aigw does not resume (no HTTP calls out, no timers)",
            ));
        }
        parts.headers = std::mem::take(&mut store.data_mut().request);
        Ok(Step::Continue(Some(Instance {
            name: self.name.clone(),
            fail_open: self.fail_open,
            store,
            instance,
        })))
    }

    fn failed(&self, error: &wasmtime::Error) -> Result<Step<Instance>, ProxyError> {
        let why = super::describe(error);
        super::fail_open_or(&self.name, self.fail_open, &why, "").map(|()| Step::Continue(None))
    }
}

impl Instance {
    pub(super) fn on_response(
        mut self,
        response: Response<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        let (mut parts, body) = response.into_parts();
        self.store.data_mut().response = std::mem::take(&mut parts.headers);
        let count = self.store.data().response.len() as i32 + 1;
        let result: wasmtime::Result<Option<i32>> =
            self.store.set_fuel(super::FUEL).and_then(|()| {
                call(
                    &mut self.store,
                    &self.instance,
                    "proxy_on_response_headers",
                    (HTTP, count, 0),
                )
            });
        let state = self.store.data_mut();
        if let Some(local) = state.local.take() {
            return Ok(local.response());
        }
        parts.headers = std::mem::take(&mut state.response);
        if let Err(error) = result {
            let why = super::describe(&error);
            super::fail_open_or(&self.name, self.fail_open, &why, "on the answer")?;
        }
        Ok(Response::from_parts(parts, body))
    }
}

impl Local {
    fn response(self) -> Response<Body> {
        super::local_response(self.status, self.headers, self.body)
    }
}

/// Calls export `name` if the module has it (`None` when it does not).
fn call<P, R>(
    store: &mut Store<State>,
    instance: &wasmtime::Instance,
    name: &str,
    params: P,
) -> wasmtime::Result<Option<R>>
where
    P: wasmtime::WasmParams,
    R: wasmtime::WasmResults,
{
    let Some(func) = instance.get_func(&mut *store, name) else {
        return Ok(None);
    };
    let typed = func.typed::<P, R>(&*store)?;
    typed.call(&mut *store, params).map(Some)
}
