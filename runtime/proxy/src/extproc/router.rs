//! The router-level filter's phases of one request: its headers (the internal request id goes
//! on, `/v1/models` is answered), its buffered body (admitted by [`crate::handler::admit`]:
//! the model header set and the route cache cleared, or a local answer), and the answer of the
//! attempt that made it, translated back into the client's API: whole (buffered), or streamed
//! chunk by chunk through a [`Relayer`]. The last body message carries the usage and costs as
//! dynamic metadata, for Envoy's access log and rate limits.

use super::wire::{self, Continue, Head, Mutation, Phase};
use super::{Flight, Pending, Processor, REQUEST_ID_HEADER, attempt};
use crate::body::Body;
use crate::error::ProxyError;
use crate::exchange::{Endpoint, HOP_BY_HOP};
use crate::handler::{self, Admission, Arrived};
use crate::record::Summary;
use crate::relay::{self, Relayer};
use aigw_providers::ClientApi;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    HttpBody, ProcessingResponse, processing_request::Request as Message,
};
use envoy_types::pb::google::protobuf::{Struct, value::Kind};
use http::{HeaderMap, Response, header};
use http_body_util::BodyExt;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::Mutex;

/// The router stream of one request.
pub(super) struct Router {
    id: u64,
    head: Head,
    port: Option<u16>,
    peer: IpAddr,
    api: ClientApi,
    /// The body so far, when Envoy sends it in parts.
    body: Vec<u8>,
    flight: Option<Arc<Mutex<Flight>>>,
    answer: Answer,
    /// The answer's body so far, when a whole one comes in parts.
    held: Vec<u8>,
    /// The most of a whole answer held (the gateway's body limit).
    held_limit: usize,
    /// Where a response cache keeps the answer the client gets.
    keeper: Option<crate::cache::Keeper>,
    /// The answer's head as the client gets it (the WASM plugins' response phase sees it).
    out: (u16, HeaderMap),
    pending: Arc<Pending>,
}

/// What the response phase does with the answer's body.
enum Answer {
    /// Nothing: it passes as it is.
    Pass,
    /// Streamed, chunk by chunk.
    Stream(Box<Relayer>),
    /// A translated backend's error, whole.
    Error {
        status: u16,
        error_type: Option<String>,
    },
    /// A translated backend's answer, whole.
    Translate,
    /// A passthrough answer, whole: usage read, the prompt guard applied.
    Whole { usage: bool },
}

impl Router {
    /// The request's headers: the id goes on, `/v1/models` is answered here, a request without
    /// a body is admitted at once.
    pub(super) async fn start(
        processor: &Processor,
        head: Head,
        attributes: &std::collections::HashMap<String, Struct>,
        end_of_stream: bool,
    ) -> (Router, ProcessingResponse) {
        let port = wire::attribute(attributes, "destination.port").and_then(|v| match &v.kind {
            Some(Kind::NumberValue(n)) => Some(*n as u16),
            Some(Kind::StringValue(s)) => s.parse().ok(),
            _ => None,
        });
        let peer = wire::attribute(attributes, "source.address")
            .and_then(|v| match &v.kind {
                Some(Kind::StringValue(s)) => {
                    s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
                }
                _ => None,
            })
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        let id = processor.pending.id();
        let mut router = Router {
            id,
            api: Endpoint::api(&head.path),
            head,
            port,
            peer,
            body: Vec::new(),
            flight: None,
            answer: Answer::Pass,
            held: Vec::new(),
            held_limit: processor.shared.config.body_limit,
            keeper: None,
            out: (200, HeaderMap::new()),
            pending: processor.pending.clone(),
        };
        let answer = if let Some(preflight) = router.preflight(processor) {
            local(preflight).await
        } else if router.endpoint() == Some(Endpoint::Models) {
            router.models(processor).await
        } else if end_of_stream {
            router
                .admit(processor, Vec::new(), Phase::RequestHeaders)
                .await
        } else {
            let mut mutation = Mutation::default();
            mutation.set(REQUEST_ID_HEADER, id.to_string().as_bytes());
            Continue {
                headers: mutation,
                ..Continue::default()
            }
            .into_response(Phase::RequestHeaders)
        };
        (router, answer)
    }

    pub(super) async fn handle(
        &mut self,
        processor: &Processor,
        message: Message,
    ) -> ProcessingResponse {
        match message {
            Message::RequestBody(body) => {
                if !body.end_of_stream {
                    self.body.extend_from_slice(&body.body);
                    return Continue::default().into_response(Phase::RequestBody);
                }
                let mut bytes = std::mem::take(&mut self.body);
                bytes.extend_from_slice(&body.body);
                self.admit(processor, bytes, Phase::RequestBody).await
            }
            Message::ResponseHeaders(headers) => {
                let head = Head::read(headers.headers.as_ref());
                self.response_headers(&head)
                    .await
                    .into_response(Phase::ResponseHeaders)
            }
            Message::ResponseBody(body) => self.response_body(body).await,
            message @ (Message::RequestHeaders(_)
            | Message::RequestTrailers(_)
            | Message::ResponseTrailers(_)) => {
                Continue::default().into_response(super::phase(&message))
            }
        }
    }

    /// The AI endpoint of the request, with the method it uses.
    fn endpoint(&self) -> Option<Endpoint> {
        let path = self.head.path.split('?').next().unwrap_or("");
        Endpoint::of(path).filter(|e| {
            let method = if *e == Endpoint::Models {
                "GET"
            } else {
                "POST"
            };
            self.head.method == method
        })
    }

    fn parts(&self) -> Result<http::request::Parts, ProxyError> {
        let mut request = http::Request::builder()
            .method(self.head.method.as_str())
            .uri(self.head.path.as_str())
            .body(())
            .map_err(|_| ProxyError::bad_request("the request's method or path is not valid"))?;
        *request.headers_mut() = self.head.headers.clone();
        Ok(request.into_parts().0)
    }

    /// The answer to a CORS preflight, by the policy that covers it (as the standalone server
    /// finds it).
    fn preflight(&self, processor: &Processor) -> Option<Response<Body>> {
        let method = http::Method::from_bytes(self.head.method.as_bytes()).ok()?;
        if !crate::cors::is_preflight(&method, &self.head.headers) {
            return None;
        }
        let generation = processor.shared.generation()?;
        let parts = self.parts().ok()?;
        let request = http::Request::from_parts(parts, ());
        let policy =
            handler::preflight_cors(&generation, self.port, &self.head.authority, &request)?;
        Some(policy.preflight(&self.head.headers))
    }

    /// `response` with the CORS headers of `policy` for the request's origin.
    fn decorated(
        &self,
        policy: Option<&crate::cors::Cors>,
        mut response: Response<Body>,
    ) -> Response<Body> {
        if let (Some(policy), Some(origin)) = (policy, self.head.headers.get(header::ORIGIN)) {
            policy.decorate(origin, response.headers_mut());
        }
        response
    }

    async fn models(&self, processor: &Processor) -> ProcessingResponse {
        let Some(generation) = processor.shared.generation() else {
            return local(
                ProxyError::unavailable("no routing table is loaded yet").response_for(self.api),
            )
            .await;
        };
        let answer = match self.parts() {
            Ok(parts) => {
                handler::models(
                    &generation,
                    (self.port, self.peer),
                    &self.head.authority,
                    &parts,
                )
                .await
            }
            Err(error) => Err(error),
        };
        local(answer.unwrap_or_else(|e| e.response_for(self.api))).await
    }

    /// The whole request body: admitted, or answered here.
    async fn admit(
        &mut self,
        processor: &Processor,
        bytes: Vec<u8>,
        phase: Phase,
    ) -> ProcessingResponse {
        let Some(endpoint) = self.endpoint() else {
            // Not the AI API: Envoy's routes decide (the compiled ones answer 404).
            return Continue::default().into_response(phase);
        };
        let Some(generation) = processor.shared.generation() else {
            return local(
                ProxyError::unavailable("no routing table is loaded yet").response_for(self.api),
            )
            .await;
        };
        let parts = match self.parts() {
            Ok(parts) => parts,
            Err(error) => return local(error.response_for(self.api)).await,
        };
        let arrived = Arrived {
            port: self.port,
            peer: self.peer,
            endpoint,
            host: &self.head.authority,
        };
        let mut cors = None;
        let admission = handler::admit(
            &processor.shared,
            &generation,
            &arrived,
            parts,
            bytes.into(),
            &mut cors,
        )
        .await;
        match admission {
            Err(error) => local(self.decorated(cors, error.response_for(self.api))).await,
            Ok(Admission::Answer(response)) => local(self.decorated(cors, response)).await,
            Ok(Admission::Unrouted(..)) => Continue::default().into_response(phase),
            Ok(Admission::Forward(admitted)) => {
                let mut admitted = *admitted;
                let record = admitted.record.take();
                let table = generation.snapshot.table();
                let rule = &table.routes[admitted.route].rules[admitted.rule];
                let sole = table
                    .sole_endpoint(rule)
                    .and_then(|(r, _)| rule.backends.iter().position(|b| std::ptr::eq(b, r)));
                let mut flight = Flight {
                    generation: generation.clone(),
                    admitted,
                    record,
                    current: None,
                };
                // One endpoint: the request is the backend's from here (the compiled cluster
                // has no upstream phase); else each attempt's upstream phase makes it.
                let mut answer = Continue {
                    clear_route_cache: true,
                    ..Continue::default()
                };
                match sole {
                    Some(reference) => {
                        let at = attempt::Where::Router;
                        match attempt::replace(processor, &mut flight, reference, &self.head, at)
                            .await
                        {
                            Ok(replaced) => {
                                answer.headers = replaced.headers;
                                answer.body = Some(replaced.body);
                            }
                            Err(error) => {
                                flight.record.status(error.status.as_u16());
                                return local(error.response_for(self.api)).await;
                            }
                        }
                    }
                    None => {
                        answer.headers =
                            Mutation::diff(&self.head.headers, &flight.admitted.parts.headers);
                    }
                }
                if phase == Phase::RequestHeaders {
                    answer
                        .headers
                        .set(REQUEST_ID_HEADER, self.id.to_string().as_bytes());
                }
                let flight = Arc::new(Mutex::new(flight));
                self.pending.insert(self.id, flight.clone());
                self.flight = Some(flight);
                answer.into_response(phase)
            }
        }
    }

    /// The answer's head: how its body will be handled, and the head the client gets.
    async fn response_headers(&mut self, head: &Head) -> Continue {
        let Some(flight) = self.flight.clone() else {
            return Continue::default();
        };
        let mut guard = flight.lock().await;
        let Flight {
            generation,
            admitted,
            record,
            current,
        } = &mut *guard;
        // Envoy answered itself (no attempt was made): nothing to translate.
        let Some(current) = current.as_mut() else {
            return Continue::default();
        };
        let status = head.status.unwrap_or(200);
        if let Some(span) = current.span.take() {
            span.end(Some(status), None);
        }
        let success = (200..300).contains(&status);
        let exchange = admitted.exchange(generation);
        let mut out = head.headers.clone();
        let mut answer = Continue::default();
        self.answer = match &current.translator {
            Some(_) if !success => {
                record.status(status);
                json_head(&mut out);
                Answer::Error {
                    status,
                    error_type: head
                        .headers
                        .get("x-amzn-errortype")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                }
            }
            Some(translator) if exchange.peek.streaming() => {
                crate::translated::stream_headers(&mut out);
                answer.headers.set(":status", b"200");
                answer.stream_response = true;
                record.status(200);
                let relayer = Relayer::new(
                    crate::translated::stream_mode(translator),
                    true,
                    record.take(),
                )
                .guarded(generation, exchange.answer_guard);
                Answer::Stream(Box::new(relayer))
            }
            Some(_) => {
                json_head(&mut out);
                Answer::Translate
            }
            None => {
                record.status(status);
                for name in HOP_BY_HOP {
                    out.remove(*name);
                }
                let usage = exchange.endpoint.has_usage() && success;
                if crate::forward::is_sse_headers(&head.headers) {
                    let strip_usage = current.usage_chunk;
                    if strip_usage || exchange.answer_guard.is_some() {
                        out.remove(header::CONTENT_LENGTH);
                    }
                    answer.stream_response = true;
                    let mode = relay::Mode::Events { strip_usage };
                    let relayer = Relayer::new(mode, usage, record.take())
                        .guarded(generation, exchange.answer_guard);
                    Answer::Stream(Box::new(relayer))
                } else if usage || (success && exchange.answer_guard.is_some()) {
                    if exchange.answer_guard.is_some() {
                        out.remove(header::CONTENT_LENGTH);
                    }
                    Answer::Whole { usage }
                } else {
                    Answer::Pass
                }
            }
        };
        if let Some(rate) = admitted.rate {
            crate::ratelimit::headers(&mut out, rate);
        }
        if let Some(origin) = self.head.headers.get(header::ORIGIN) {
            let route = &generation.snapshot.table().routes[admitted.route];
            let in_force = generation.callers.in_force(
                &generation.snapshot,
                admitted.listener,
                Some(&route.policies),
            );
            if let Some(policy) = in_force.cors() {
                policy.decorate(origin, &mut out);
            }
        }
        let cache = crate::cache::CACHE_HEADER;
        if let Some(key) = admitted.cache.take() {
            out.insert(cache, http::HeaderValue::from_static("miss"));
            if success && !matches!(self.answer, Answer::Error { .. }) {
                self.keeper = generation.caches.keeper(key, &out);
                // The answer is kept as the client gets it: a passing body is read too.
                if self.keeper.is_some() && matches!(self.answer, Answer::Pass) {
                    self.answer = Answer::Whole { usage: false };
                }
            }
        } else if admitted.bypass {
            out.insert(cache, http::HeaderValue::from_static("bypass"));
        }
        // The plugins' response phase runs on whole answers: a passing one is read for it.
        if admitted.running.responds() && matches!(self.answer, Answer::Pass) {
            self.answer = Answer::Whole { usage: false };
        }
        let client_status =
            if matches!(self.answer, Answer::Stream(_)) && current.translator.is_some() {
                200
            } else {
                status
            };
        answer.headers.extend(Mutation::diff(&head.headers, &out));
        self.out = (client_status, out);
        answer
    }

    /// A piece of the answer's body (the whole of it, unless streamed).
    async fn response_body(&mut self, body: HttpBody) -> ProcessingResponse {
        let end = body.end_of_stream;
        if let Answer::Stream(relayer) = &mut self.answer {
            let mut out = relayer
                .chunk(body.body.into())
                .map(Vec::from)
                .unwrap_or_default();
            if relayer.overflowed() {
                // As standalone: one event past the bound cuts the stream. Envoy has sent the
                // head, so the immediate answer makes it reset the client's stream.
                tracing::warn!(
                    limit = relay::EVENT_LIMIT,
                    "an upstream stream event passed the limit: the stream is cut"
                );
                relayer.record().fault("event_limit");
                self.finish();
                let error = ProxyError::bad_gateway(
                    "an event of the upstream's stream is larger than the gateway holds (32 MiB)",
                );
                return local(error.response_for(self.api)).await;
            }
            let mut answer = Continue::default();
            if end {
                if let Some(rest) = relayer.end() {
                    out.extend_from_slice(&rest);
                }
                answer.metadata = Some(metadata(&relayer.record().summary()));
            }
            if let Some(keeper) = &mut self.keeper {
                keeper.push(&out);
            }
            if end {
                if let Some(keeper) = self.keeper.take() {
                    keeper.store();
                }
                self.finish();
            }
            answer.body = Some(out);
            return answer.into_response(Phase::ResponseBody);
        }
        if matches!(self.answer, Answer::Pass) {
            if end {
                let summary = self.summary().await;
                self.finish();
                return Continue {
                    metadata: Some(metadata(&summary)),
                    ..Continue::default()
                }
                .into_response(Phase::ResponseBody);
            }
            return Continue::default().into_response(Phase::ResponseBody);
        }
        // As standalone: an error answer is read up to 1 MiB, any other up to the body limit.
        let limit = match self.answer {
            Answer::Error { .. } => crate::translated::ERROR_BODY_LIMIT,
            _ => self.held_limit,
        };
        if self.held.len() + body.body.len() > limit {
            let error = ProxyError::bad_gateway(format!(
                "the backend's answer is larger than the gateway reads whole ({limit} bytes)"
            ));
            self.held = Vec::new();
            if let Some(flight) = self.flight.clone() {
                let mut flight = flight.lock().await;
                flight.record.status(error.status.as_u16());
                flight.record.fault("body_limit");
            }
            self.finish();
            return local(error.response_for(self.api)).await;
        }
        self.held.extend_from_slice(&body.body);
        if !end {
            return Continue {
                body: Some(Vec::new()),
                ..Continue::default()
            }
            .into_response(Phase::ResponseBody);
        }
        let whole = std::mem::take(&mut self.held);
        let answer = match self.whole(&whole).await {
            Ok(answer) => answer.into_response(Phase::ResponseBody),
            Err(error) => local(error.response_for(self.api)).await,
        };
        self.finish();
        answer
    }

    /// A whole answer's body as the client gets it, with the status when it changes.
    async fn whole(&mut self, body: &[u8]) -> Result<Continue, ProxyError> {
        let Some(flight) = self.flight.clone() else {
            return Ok(Continue::default());
        };
        let mut guard = flight.lock().await;
        let Flight {
            generation,
            admitted,
            record,
            current,
        } = &mut *guard;
        let exchange = admitted.exchange(generation);
        let mut answer = Continue::default();
        match (
            &self.answer,
            current.as_ref().and_then(|c| c.translator.as_ref()),
        ) {
            (Answer::Error { status, error_type }, Some(translator)) => {
                answer.body = Some(translator.error(*status, error_type.as_deref(), body));
            }
            (Answer::Translate, Some(translator)) => {
                let (status, out) = crate::translated::whole(&exchange, translator, body, record)?;
                record.status(status.as_u16());
                if status != http::StatusCode::OK {
                    answer.headers.set(":status", status.as_str().as_bytes());
                }
                answer.body = Some(out.to_vec());
            }
            (Answer::Whole { usage }, _) => {
                if *usage {
                    relay::whole_usage(body, record);
                }
                let out = exchange.guard_answer(bytes::Bytes::copy_from_slice(body))?;
                if *out != *body {
                    answer.body = Some(out.to_vec());
                }
            }
            _ => {}
        }
        // Kept as the client gets it before the plugins' response phase (which a hit goes
        // through again), and only a 200 (a body the translator cannot read becomes a 502).
        if let Some(mut keeper) = self.keeper.take()
            && !answer.headers.sets(":status")
        {
            keeper.push(answer.body.as_deref().unwrap_or(body));
            keeper.store();
        }
        if admitted.running.responds() {
            let running = std::mem::take(&mut admitted.running);
            self.respond(running, &mut answer, body).await;
        }
        answer.metadata = Some(metadata(&record.summary()));
        Ok(answer)
    }

    /// The WASM plugins' response phase on a whole answer: what they change of its status,
    /// head and body goes into `answer`.
    async fn respond(&self, running: crate::wasm::Running, answer: &mut Continue, body: &[u8]) {
        let (status, head) = &self.out;
        let status = if answer.headers.sets(":status") {
            http::StatusCode::BAD_GATEWAY.as_u16()
        } else {
            *status
        };
        let whole = answer.body.clone().unwrap_or_else(|| body.to_vec());
        let mut response = Response::new(Body::full(whole.into()));
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
        *response.headers_mut() = head.clone();
        let (parts, changed) = running.on_response(response).await.into_parts();
        let changed = changed
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        answer.headers.extend(Mutation::diff(head, &parts.headers));
        if parts.status.as_u16() != status {
            answer
                .headers
                .set(":status", parts.status.as_str().as_bytes());
        }
        answer.body = Some(changed.to_vec());
    }

    async fn summary(&self) -> Summary {
        match &self.flight {
            Some(flight) => flight.lock().await.record.summary(),
            None => Summary::default(),
        }
    }

    /// The answer is through: the record closes (metrics, access log) and the entry goes.
    fn finish(&mut self) {
        self.answer = Answer::Pass;
        self.flight = None;
        self.pending.remove(self.id);
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.pending.remove(self.id);
    }
}

/// A translated JSON answer's head: its length changes, its type is JSON.
fn json_head(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::CONTENT_ENCODING);
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
}

/// Usage and costs as dynamic metadata, in the reference's keys: the route's `llmRequestCosts`
/// by their `metadataKey`, after the token counts under `llm_input_token`, `llm_output_token`
/// and `llm_total_token` (a cost of the same key wins), and the backend and model sent.
fn metadata(summary: &Summary) -> Struct {
    let mut fields = Vec::new();
    if let Some(usage) = &summary.usage {
        fields.push(("llm_input_token".to_owned(), wire::number(usage.input)));
        fields.push(("llm_output_token".to_owned(), wire::number(usage.output)));
        let total = usage.total();
        fields.push(("llm_total_token".to_owned(), wire::number(total)));
    }
    if let Some(backend) = &summary.backend {
        fields.push(("backend_name".to_owned(), wire::string(backend)));
    }
    if let Some(model) = &summary.sent_model {
        fields.push(("model_name_override".to_owned(), wire::string(model)));
    }
    for (key, value) in &summary.costs {
        fields.push((key.clone(), wire::number(*value)));
    }
    wire::metadata(fields)
}

/// A local answer, whole (the gateway's own answers are never streamed).
pub(super) async fn local(response: Response<Body>) -> ProcessingResponse {
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    wire::immediate(parts.status.as_u16(), &parts.headers, bytes.to_vec())
}
