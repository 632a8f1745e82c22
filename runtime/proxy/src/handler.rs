//! The request path up to the backend call: which endpoint, the body read once, the model
//! taken from it into `x-ai-eg-model`, the rule chosen in table order, and the caller admitted
//! by the policies in force ([`crate::callers`]). `/v1/models` is answered here from the table.
//!
//! A request takes one generation when it arrives ([`crate::Shared::generation`]) and uses only
//! it until its response ends, streams included.

use crate::body::{self, Body};
use crate::error::{ProxyError, json_response, route_not_found};
use crate::exchange::{Endpoint, Exchange, MODEL_HEADER};
use crate::generation::Generation;
use crate::record::{Record, Taken};
use crate::{Shared, forward};
use aigw_table::{ListenerId, Selected};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use std::sync::Arc;

/// Answers one request that arrived on `port`.
pub async fn handle(
    shared: Arc<Shared>,
    port: u16,
    peer: std::net::IpAddr,
    request: Request<crate::body::RequestBody>,
) -> Response<Body> {
    let api = Endpoint::api(request.uri().path());
    let Some(generation) = shared.generation() else {
        return ProxyError::unavailable("no routing table is loaded yet").response_for(api);
    };
    let origin = request.headers().get(http::header::ORIGIN).cloned();
    let mut cors = None;
    let mut response = match serve(&shared, &generation, (port, peer), request, &mut cors).await {
        Ok(response) => response,
        Err(error) => {
            if error.fault != crate::error::Fault::Client {
                tracing::warn!(status = error.status.as_u16(), fault = error.fault.as_str(), message = %error.message, "request failed");
            }
            error.response_for(api)
        }
    };
    if let (Some(origin), Some(cors)) = (&origin, cors) {
        cors.decorate(origin, response.headers_mut());
    }
    shared.metrics.request(response.status());
    response
}

/// `cors` is set to the CORS policy in force as soon as it is known, for the answer
/// whatever it is.
async fn serve<'g>(
    shared: &Shared,
    generation: &'g Arc<Generation>,
    (port, peer): (u16, std::net::IpAddr),
    request: Request<crate::body::RequestBody>,
    cors: &mut Option<&'g crate::cors::Cors>,
) -> Result<Response<Body>, ProxyError> {
    if crate::cors::is_preflight(request.method(), request.headers()) {
        let host = host(request.headers(), request.uri());
        if let Some(policy) = preflight_cors(generation, Some(port), host, &request) {
            return Ok(policy.preflight(request.headers()));
        }
    }
    let path = request.uri().path();
    // An MCPRoute's endpoint, or the metadata of an MCPRoute's OAuth.
    if !generation.mcp.is_empty() {
        let host = host(request.headers(), request.uri());
        if let Some(index) =
            crate::mcp::select(generation, Some(port), host, path, request.headers())
        {
            return Ok(crate::mcp::serve(shared, generation, index, request).await);
        }
        if request.method() == Method::GET
            && let Some(answer) =
                crate::mcp::metadata(generation, Some(port), host, path, request.headers())
        {
            return Ok(answer);
        }
    }
    // The AI API: its endpoints with the method it uses. Everything else is for the plain
    // HTTPRoutes, and an AI request no AIGatewayRoute takes goes to them too.
    let endpoint = Endpoint::of(path).filter(|e| {
        let method = if *e == Endpoint::Models {
            Method::GET
        } else {
            Method::POST
        };
        request.method() == method
    });
    let Some(endpoint) = endpoint else {
        return plain_or(shared, generation, (port, peer), request, cors, |request| {
            let path = request.uri().path();
            match Endpoint::of(path) {
                Some(_) => ProxyError::method_not_allowed(request.method(), path),
                None => ProxyError::unsupported_path(path),
            }
        })
        .await;
    };
    let host = host(request.headers(), request.uri()).to_owned();
    if endpoint == Endpoint::Models {
        let (parts, _) = request.into_parts();
        return models(generation, (Some(port), peer), &host, &parts).await;
    }
    let (parts, incoming) = request.into_parts();
    let bytes = body::read(incoming, shared.config.body_limit).await?;
    let request = Arrived {
        port: Some(port),
        peer,
        endpoint,
        host: &host,
    };
    match admit(shared, generation, &request, parts, bytes, cors).await? {
        Admission::Answer(response) => Ok(response),
        Admission::Unrouted(parts, bytes) => {
            // No AI route for the model: a plain route may still take the request as it came.
            let plain = plain_request(&parts, &host);
            if let Some(selected) = crate::plain::select(generation, port, &plain) {
                let body = Body::full(bytes);
                return crate::plain::send(shared, generation, selected, (parts, peer), body, cors)
                    .await;
            }
            Ok(route_not_found())
        }
        Admission::Forward(admitted) => forward(shared, generation, *admitted).await,
    }
}

/// Where an AI request arrived: the listener port (`None`: any, for a front door that does not
/// know it), the client, the endpoint and the host.
pub(crate) struct Arrived<'a> {
    pub port: Option<u16>,
    pub peer: std::net::IpAddr,
    pub endpoint: Endpoint,
    pub host: &'a str,
}

/// What the AI request path decided before the backend call.
pub(crate) enum Admission {
    /// The gateway answers itself (a kept answer, a plugin's reply): the response phase and
    /// the rate-limit headers are applied already.
    Answer(Response<Body>),
    /// No AIGatewayRoute takes the model: the request as it came.
    Unrouted(http::request::Parts, bytes::Bytes),
    /// A rule took it, and the caller was admitted: the backend call goes ahead.
    Forward(Box<Admitted>),
}

/// An admitted AI request, owned, so that a front door may keep it between the phases of an
/// exchange it does not drive itself (Envoy's, in [`crate::extproc`]).
pub(crate) struct Admitted {
    pub listener: ListenerId,
    pub route: usize,
    pub rule: usize,
    pub endpoint: Endpoint,
    /// The client's request head, as the caller policies and plugins left it; it carries the
    /// model header.
    pub parts: http::request::Parts,
    /// The body as sent on (a plugin's rewrite, the prompt guard's masks).
    pub body: bytes::Bytes,
    pub peek: body::Peek<'static>,
    pub peer: std::net::IpAddr,
    /// The prompt guard in force, when it checks answers.
    pub answer_guard: Option<usize>,
    pub record: Record,
    pub running: crate::wasm::Running,
    /// The `x-ratelimit-*` headers the answer gets.
    pub rate: Option<(u64, u64, u64)>,
    /// Where a response cache keeps the answer, or whether the client bypassed it.
    pub cache: Option<crate::cache::Key>,
    pub bypass: bool,
}

impl Admitted {
    /// The exchange the backend call works from (the generation must be the one that
    /// admitted it).
    pub fn exchange<'a>(&'a self, generation: &'a Arc<Generation>) -> Exchange<'a> {
        let route = &generation.snapshot.table().routes[self.route];
        Exchange {
            generation,
            listener: self.listener,
            selected: Selected {
                route_index: self.route,
                route,
                rule_index: self.rule,
                rule: &route.rules[self.rule],
            },
            endpoint: self.endpoint,
            parts: &self.parts,
            body: &self.body,
            peek: &self.peek,
            peer: self.peer,
            answer_guard: self.answer_guard,
        }
    }
}

/// The AI request path up to the backend call, for every front door: the model read into
/// `x-ai-eg-model`, the rule chosen, the record opened, the caller admitted (SecurityPolicy,
/// rate limits), the plugins' request phase, the prompt guard, and the response cache asked.
pub(crate) async fn admit<'g>(
    shared: &Shared,
    generation: &'g Arc<Generation>,
    arrived: &Arrived<'_>,
    mut parts: http::request::Parts,
    bytes: bytes::Bytes,
    cors: &mut Option<&'g crate::cors::Cors>,
) -> Result<Admission, ProxyError> {
    let Arrived {
        port,
        peer,
        endpoint,
        host,
    } = *arrived;
    let peek = peek(endpoint, &parts.headers, &bytes)?.into_owned();
    let model = peek
        .model
        .as_deref()
        .ok_or_else(|| ProxyError::bad_request("the request body has no `model` field"))?;
    let value = HeaderValue::from_str(model)
        .map_err(|_| ProxyError::bad_request("the `model` field is not a valid header value"))?;
    parts.headers.insert(MODEL_HEADER, value);
    let Some((listener, selected)) = select(generation, port, host, &parts.headers) else {
        parts.headers.remove(MODEL_HEADER);
        return Ok(Admission::Unrouted(parts, bytes));
    };
    let mut record = Record::open(
        &shared.recorder,
        &Taken {
            generation,
            route: selected.route_index,
            rule: selected.rule_index,
            endpoint,
            model,
            stream: peek.streaming(),
            headers: &parts.headers,
            body: &bytes,
        },
    );
    let refused = |record: &mut Record, error: ProxyError| {
        record.status(error.status.as_u16());
        Err(error)
    };
    let in_force = generation.callers.in_force(
        &generation.snapshot,
        listener,
        Some(&selected.route.policies),
    );
    *cors = in_force.cors();
    let caller = match in_force.admit(&mut parts, Some(model), peer).await {
        Ok(client) => {
            record.caller(client.clone());
            client
        }
        Err(error) => return refused(&mut record, error),
    };
    let mut verdict = crate::ratelimit::limit(
        shared,
        generation,
        &in_force,
        &selected.route.name,
        &parts,
        peer,
    )
    .await;
    if let Some(error) = verdict.refusal() {
        return refused(&mut record, error);
    }
    record.rate_owed(verdict.owed.take());
    let mut sent = bytes.clone();
    let running =
        match generation
            .extensions
            .on_request(in_force.extensions, &mut parts, Some(&mut sent))
        {
            Ok(crate::wasm::Verdict::Continue(running)) => running,
            Ok(crate::wasm::Verdict::Respond(response)) => {
                record.status(response.status().as_u16());
                return Ok(Admission::Answer(response));
            }
            Err(error) => return refused(&mut record, error),
        };
    // A plugin may rewrite the body, not the model the route was chosen by.
    let peek = if running.rewrote_body() {
        match peek_again(endpoint, &parts.headers, &sent, model) {
            Ok(again) => again.into_owned(),
            Err(error) => return refused(&mut record, error),
        }
    } else {
        peek
    };
    let body = match in_force.guard.map(|g| generation.guards.request(g, &sent)) {
        None | Some(Ok(None)) => sent.clone(),
        Some(Ok(Some(masked))) => bytes::Bytes::from(masked),
        Some(Err(refused_by)) => {
            let error = ProxyError::bad_request(format!(
                "the request was refused by the prompt guard `{}`: it contains {}",
                refused_by.policy, refused_by.found
            ));
            return refused(&mut record, error);
        }
    };
    if let Some(policy) = in_force
        .guard
        .and_then(|g| generation.guards.rejects_answers(g))
        && peek.streaming()
    {
        let error = ProxyError::bad_request(format!(
            "the prompt guard `{policy}` refuses answers in which it finds something, which a stream already under way cannot be: ask without `stream`"
        ));
        return refused(&mut record, error);
    }
    let lookup = generation.caches.lookup(
        in_force.cache,
        &crate::cache::Request {
            headers: &parts.headers,
            endpoint,
            route: &selected.route.name,
            client: caller.as_deref(),
            body: &body,
            stream: peek.streaming(),
        },
    );
    let (cache, bypass) = match lookup {
        crate::cache::Lookup::Key(key) => {
            if let Some(entry) = generation.caches.get(&key).await {
                record.cache("hit", entry.usage);
                record.status(200);
                let mut response = entry.response();
                if let Some(rate) = verdict.headers {
                    crate::ratelimit::headers(response.headers_mut(), rate);
                }
                return Ok(Admission::Answer(running.on_response(response).await));
            }
            record.cache("miss", None);
            (Some(key), false)
        }
        crate::cache::Lookup::Bypass => {
            record.cache("bypass", None);
            (None, true)
        }
        crate::cache::Lookup::Off => (None, false),
    };
    Ok(Admission::Forward(Box::new(Admitted {
        listener,
        route: selected.route_index,
        rule: selected.rule_index,
        endpoint,
        parts,
        body,
        peek,
        peer,
        answer_guard: in_force
            .guard
            .filter(|g| generation.guards.checks_answers(*g)),
        record,
        running,
        rate: verdict.headers,
        cache,
        bypass,
    })))
}

/// The backend call of an admitted request, and what its answer goes through on the way out
/// (the response cache, the plugins' response phase, the rate-limit headers).
async fn forward(
    shared: &Shared,
    generation: &Arc<Generation>,
    mut admitted: Admitted,
) -> Result<Response<Body>, ProxyError> {
    let mut record = admitted.record.take();
    let exchange = admitted.exchange(generation);
    let mut result = forward::send(shared, exchange, &mut record).await;
    result = result.map(|response| match admitted.cache {
        Some(key) => generation.caches.keep(key, response),
        None if admitted.bypass => {
            let mut response = response;
            response.headers_mut().insert(
                crate::cache::CACHE_HEADER,
                HeaderValue::from_static("bypass"),
            );
            response
        }
        None => response,
    });
    if let Ok(response) = result {
        result = Ok(admitted.running.on_response(response).await);
    }
    if let (Ok(response), Some(rate)) = (&mut result, admitted.rate) {
        crate::ratelimit::headers(response.headers_mut(), rate);
    }
    // An answer whose body is relayed took the record along, with its status.
    match &result {
        Ok(response) => record.status(response.status().as_u16()),
        Err(error) => record.status(error.status.as_u16()),
    }
    result
}

/// What routing needs of the body: the model (a multipart body's `model` field), and for JSON
/// the stream and token fields.
fn peek<'b>(
    endpoint: Endpoint,
    headers: &http::HeaderMap,
    bytes: &'b [u8],
) -> Result<body::Peek<'b>, ProxyError> {
    if !endpoint.multipart() {
        return body::peek(bytes);
    }
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let model = body::multipart_model(content_type, bytes).ok_or_else(|| {
        ProxyError::bad_request("the multipart body has no `model` field, or more than one")
    })?;
    Ok(body::Peek {
        model: Some(model.into()),
        ..body::Peek::default()
    })
}

/// [`peek`] of a body a WASM plugin rewrote, which must still ask for `model`.
fn peek_again<'b>(
    endpoint: Endpoint,
    headers: &http::HeaderMap,
    bytes: &'b [u8],
    model: &str,
) -> Result<body::Peek<'b>, ProxyError> {
    let peek = peek(endpoint, headers, bytes).map_err(|e| {
        ProxyError::internal(format!(
            "a WASM extension rewrote the request body into one the gateway cannot read: {}",
            e.message
        ))
    })?;
    match peek.model.as_deref() {
        Some(now) if now == model => Ok(peek),
        now => Err(ProxyError::internal(format!(
            "a WASM extension changed the request's model from `{model}` to `{}`: the route was chosen by the model, so a plugin may not change it",
            now.unwrap_or("")
        ))),
    }
}

/// Sends `request` to the plain route that takes it, or answers `otherwise`'s error.
async fn plain_or<'g>(
    shared: &Shared,
    generation: &'g Generation,
    (port, peer): (u16, std::net::IpAddr),
    request: Request<crate::body::RequestBody>,
    cors: &mut Option<&'g crate::cors::Cors>,
    otherwise: impl FnOnce(&Request<crate::body::RequestBody>) -> ProxyError,
) -> Result<Response<Body>, ProxyError> {
    let (parts, incoming) = request.into_parts();
    let host = host(&parts.headers, &parts.uri);
    let selected = crate::plain::select(generation, port, &plain_request(&parts, host));
    match selected {
        Some(selected) => {
            crate::plain::send(
                shared,
                generation,
                selected,
                (parts, peer),
                crate::plain::streamed(incoming),
                cors,
            )
            .await
        }
        None => Err(otherwise(&Request::from_parts(parts, incoming))),
    }
}

fn plain_request<'a>(
    parts: &'a http::request::Parts,
    host: &'a str,
) -> aigw_table::PlainRequest<'a> {
    aigw_table::PlainRequest {
        host,
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
    }
}

/// The CORS policy that answers a preflight: its plain route's; for the AI API, whose route
/// the model in a body decides (and a preflight has none), the listener's or Gateway's, else
/// that of the first route of the listener that has one.
pub(crate) fn preflight_cors<'g, B>(
    generation: &'g Generation,
    port: Option<u16>,
    host: &str,
    request: &Request<B>,
) -> Option<&'g crate::cors::Cors> {
    let snapshot = &generation.snapshot;
    let plain = aigw_table::PlainRequest {
        host,
        method: request.method(),
        path: request.uri().path(),
        query: request.uri().query(),
        headers: request.headers(),
    };
    if let Some(port) = port
        && let Some((listener, selected)) = crate::plain::select(generation, port, &plain)
    {
        return generation
            .callers
            .in_force(snapshot, listener, Some(&selected.route.policies))
            .cors();
    }
    Endpoint::of(request.uri().path())?;
    let bare = aigw_table::strip_port(host);
    snapshot
        .listeners()
        .filter(|(_, _, l)| {
            port.is_none_or(|p| l.port == p)
                && l.hostname
                    .as_deref()
                    .is_none_or(|pattern| aigw_table::host_matches(pattern, bare))
        })
        .find_map(|(id, _, _)| {
            generation
                .callers
                .in_force(snapshot, id, None)
                .cors()
                .or_else(|| {
                    snapshot
                        .routed_models(id, host)
                        .into_iter()
                        .find_map(|(route, _)| {
                            let policies = snapshot.table().routes.get(route).map(|r| &r.policies);
                            generation.callers.in_force(snapshot, id, policies).cors()
                        })
                })
        })
}

/// The `Host` (HTTP/1.1) or `:authority` (HTTP/2) of a request.
fn host<'a>(headers: &'a http::HeaderMap, uri: &'a http::Uri) -> &'a str {
    headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
}

/// The first rule that takes the request among the Gateway listeners on `port` (any port: all).
fn select<'g>(
    generation: &'g Generation,
    port: Option<u16>,
    host: &str,
    headers: &http::HeaderMap,
) -> Option<(ListenerId, Selected<'g>)> {
    let snapshot = &generation.snapshot;
    snapshot
        .listeners()
        .filter(|(_, _, l)| port.is_none_or(|p| l.port == p))
        .find_map(|(id, _, _)| snapshot.select(id, host, headers).map(|s| (id, s)))
}

/// `/v1/models`: the models of the rules served on this port (any: all) for this host, as OpenAI lists
/// them, less those the caller may not use. A listener whose own (or Gateway's) SecurityPolicy
/// does not know the caller answers 401, as its routes would.
pub(crate) async fn models(
    generation: &Generation,
    (port, peer): (Option<u16>, std::net::IpAddr),
    host: &str,
    parts: &http::request::Parts,
) -> Result<Response<Body>, ProxyError> {
    let snapshot = &generation.snapshot;
    let mut seen = std::collections::HashSet::new();
    let mut data = Vec::new();
    // The listeners of this port that serve this host: another host's keys do not apply.
    let bare = aigw_table::strip_port(host);
    let serving = snapshot.listeners().filter(|(_, _, l)| {
        port.is_none_or(|p| l.port == p)
            && l.hostname
                .as_deref()
                .is_none_or(|pattern| aigw_table::host_matches(pattern, bare))
    });
    for (id, _, _) in serving {
        if let Some(callers) = generation.callers.in_force(snapshot, id, None).callers
            && callers.authenticate(parts).await.is_err()
        {
            return Err(ProxyError::unauthorized(
                "the API key is missing or not valid",
            ));
        }
        for (route, model) in snapshot.routed_models(id, host) {
            let policies = snapshot.table().routes.get(route).map(|r| &r.policies);
            let in_force = generation.callers.in_force(snapshot, id, policies);
            if in_force.lists(parts, peer, &model.name).await && seen.insert(model.name.as_str()) {
                data.push(serde_json::json!({
                    "id": model.name,
                    "object": "model",
                    "created": model.created.unwrap_or(generation.loaded_at),
                    "owned_by": model.owned_by,
                }));
            }
        }
    }
    Ok(json_response(
        StatusCode::OK,
        serde_json::json!({"object": "list", "data": data})
            .to_string()
            .into(),
    ))
}
