//! Plugins of aigw's own component world (`runtime/proxy/wit/plugin.wit`, WebAssembly
//! component model): `on-request(headers, body)` once per request and `on-response(headers,
//! chunk)` once per chunk of the answer, each answering continue, modify or reject; the host
//! gives `config` and `log`. Bindings by wasmtime's `bindgen!`; a fresh instance per request,
//! fuel refilled for every call (see [`super`]).

use super::{Step, apply, describe, request_pairs};
use crate::body::{Body, BoxError};
use crate::error::ProxyError;
use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store};

mod bindings {
    wasmtime::component::bindgen!({ path: "wit/plugin.wit", world: "plugin" });
}

use bindings::{Action, Plugin as World, PluginImports, PluginPre, Rejection};

/// What a plugin reaches of the gateway.
struct Host {
    name: String,
    config: String,
}

impl PluginImports for Host {
    fn config(&mut self) -> String {
        self.config.clone()
    }

    fn log(&mut self, level: u8, message: String) {
        let module = self.name.as_str();
        match level {
            0 => tracing::trace!(target: "aigw::wasm", %module, "{message}"),
            1 => tracing::debug!(target: "aigw::wasm", %module, "{message}"),
            2 => tracing::info!(target: "aigw::wasm", %module, "{message}"),
            3 => tracing::warn!(target: "aigw::wasm", %module, "{message}"),
            _ => tracing::error!(target: "aigw::wasm", %module, "{message}"),
        }
    }
}

/// A compiled component, linked and ready to instantiate.
pub(super) struct Plugin {
    name: String,
    config: String,
    fail_open: bool,
    engine: Engine,
    pre: PluginPre<Host>,
}

/// One request's instance, between its request phase and the answer's last chunk.
pub(super) struct Instance {
    name: String,
    fail_open: bool,
    store: Store<Host>,
    world: World,
    /// The answer's headers, as the response phase shows them.
    answer: Vec<(String, String)>,
}

impl Plugin {
    /// Compiles the component `bytes` (binary) of `wire` and links it to the host.
    pub(super) fn load(
        engine: &Engine,
        wire: &aigw_table::WasmModule,
        bytes: &[u8],
    ) -> Result<Self, String> {
        let component = Component::new(engine, bytes)
            .map_err(|e| format!("the component `{}` ({}): {e}", wire.name, wire.path))?;
        let mut linker = Linker::new(engine);
        World::add_to_linker::<_, HasSelf<_>>(&mut linker, |host| host)
            .map_err(|e| e.to_string())?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(PluginPre::new)
            .map_err(|e| format!("the component `{}` is not an aigw plugin: {e}", wire.name))?;
        Ok(Plugin {
            name: wire.name.clone(),
            config: wire.config.clone(),
            fail_open: wire.fail_open,
            engine: engine.clone(),
            pre,
        })
    }

    /// The request phase: the plugin sees the headers and `body`, and may change both.
    pub(super) fn on_request(
        &self,
        parts: &mut http::request::Parts,
        body: &mut Bytes,
    ) -> Result<Step<Instance>, ProxyError> {
        let host = Host {
            name: self.name.clone(),
            config: self.config.clone(),
        };
        let mut store = Store::new(&self.engine, host);
        let headers = request_pairs(parts);
        let run = (|| -> wasmtime::Result<(World, Action)> {
            store.set_fuel(super::FUEL)?;
            let world = self.pre.instantiate(&mut store)?;
            let action = world.call_on_request(&mut store, &headers, body)?;
            Ok((world, action))
        })();
        let (world, action) = match run {
            Ok(done) => done,
            Err(error) => return self.failed(&describe(&error)),
        };
        match action {
            Action::Continue => {}
            Action::Modify(change) => {
                if let Err(why) = apply(
                    &mut parts.headers,
                    change.set_headers,
                    &change.remove_headers,
                ) {
                    return self.failed(&why);
                }
                if let Some(new) = change.body {
                    *body = Bytes::from(new);
                }
            }
            Action::Reject(rejection) => return Ok(Step::Respond(respond(rejection))),
        }
        Ok(Step::Continue(Some(Instance {
            name: self.name.clone(),
            fail_open: self.fail_open,
            store,
            world,
            answer: Vec::new(),
        })))
    }

    fn failed(&self, why: &str) -> Result<Step<Instance>, ProxyError> {
        super::fail_open_or(&self.name, self.fail_open, why, "").map(|()| Step::Continue(None))
    }
}

impl Instance {
    fn chunk(&mut self, chunk: &[u8]) -> Result<Action, String> {
        self.store
            .set_fuel(super::FUEL)
            .and_then(|()| {
                self.world
                    .call_on_response(&mut self.store, &self.answer, chunk)
            })
            .map_err(|e| describe(&e))
    }

    /// The response phase: the first chunk is waited for and shown to the plugin with the
    /// answer's headers before the head goes out; the others as they are relayed.
    pub(super) async fn on_response(
        mut self,
        response: Response<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        let (mut parts, mut body) = response.into_parts();
        self.answer = vec![(":status".to_owned(), parts.status.as_str().to_owned())];
        self.answer.extend(pairs(&parts.headers));
        let mut first = match body.frame().await {
            None => Frame::data(Bytes::new()),
            Some(Ok(frame)) => frame,
            Some(Err(error)) => {
                // The answer broke before its first chunk: the client sees it break.
                let broken = Chunks::new(body, Some(Err(error)), None);
                return Ok(Response::from_parts(parts, Body::stream(broken)));
            }
        };
        let mut keep = true;
        if let Some(data) = first.data_ref() {
            match self.chunk(data) {
                Ok(Action::Continue) => {}
                Ok(Action::Modify(change)) => {
                    if let Err(why) = apply(
                        &mut parts.headers,
                        change.set_headers,
                        &change.remove_headers,
                    ) {
                        keep = self.fail(&why, "on the answer")?;
                    } else if let Some(new) = change.body {
                        first = Frame::data(Bytes::from(new));
                    }
                }
                Ok(Action::Reject(rejection)) => return Ok(respond(rejection)),
                Err(why) => keep = self.fail(&why, "on the answer")?,
            }
        }
        let plugin = keep.then_some(self);
        // The chunks may change size: the length is the body's to tell.
        parts.headers.remove(http::header::CONTENT_LENGTH);
        let chunks = Chunks::new(body, Some(Ok(first)), plugin);
        Ok(Response::from_parts(parts, Body::stream(chunks)))
    }

    /// After a failure: `failOpen` goes on without the plugin (`false`: not kept), else the
    /// answer is refused.
    fn fail(&self, why: &str, when: &str) -> Result<bool, ProxyError> {
        super::fail_open_or(&self.name, self.fail_open, why, when).map(|()| false)
    }
}

/// An answer's body with each later chunk shown to the plugin.
struct Chunks {
    inner: Body,
    first: Option<Result<Frame<Bytes>, BoxError>>,
    plugin: Option<Instance>,
    done: bool,
}

impl Chunks {
    fn new(
        inner: Body,
        first: Option<Result<Frame<Bytes>, BoxError>>,
        plugin: Option<Instance>,
    ) -> Self {
        Chunks {
            inner,
            first,
            plugin,
            done: false,
        }
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(first));
        }
        if this.done {
            return Poll::Ready(None);
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        let (Some(plugin), Some(data)) = (this.plugin.as_mut(), frame.data_ref()) else {
            return Poll::Ready(Some(Ok(frame)));
        };
        let out = match plugin.chunk(data) {
            Ok(Action::Continue) => frame,
            Ok(Action::Modify(change)) => {
                if !change.set_headers.is_empty() || !change.remove_headers.is_empty() {
                    tracing::debug!(module = %plugin.name, "the WASM plugin changed headers after the answer's head had gone; not applied");
                }
                change.body.map_or(frame, |b| Frame::data(Bytes::from(b)))
            }
            Ok(Action::Reject(rejection)) => {
                this.done = true;
                Frame::data(Bytes::from(rejection.body))
            }
            Err(why) if plugin.fail_open => {
                tracing::warn!(module = %plugin.name, %why, "the WASM plugin failed on a chunk of the answer; failOpen lets the rest through");
                this.plugin = None;
                frame
            }
            Err(why) => {
                this.done = true;
                let error = format!(
                    "the WASM extension `{}` failed on the answer: {why}",
                    plugin.name
                );
                tracing::warn!("{error}; the stream ends here");
                return Poll::Ready(Some(Err(error.into())));
            }
        };
        Poll::Ready(Some(Ok(out)))
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && (self.done || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        // Exact only when all that is left is the first chunk, as it now is.
        match &self.first {
            Some(Ok(frame)) if self.inner.is_end_stream() => {
                SizeHint::with_exact(frame.data_ref().map_or(0, |d| d.len() as u64))
            }
            _ => SizeHint::default(),
        }
    }
}

/// The plugin's own answer.
fn respond(rejection: Rejection) -> Response<Body> {
    super::local_response(rejection.status, rejection.headers, rejection.body)
}

fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (String, String)> + '_ {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
}
