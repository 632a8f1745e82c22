//! The backend call: choose a backend of the rule (weights within the best priority), build
//! its request (path under the schema prefix, host, credential, header and body mutations,
//! model override), send it, and fail over to the next priority on a connect failure, a reset
//! before the response, a 5xx or a 429, while nothing has reached the client yet.
//!
//! Decisions (matching the Envoy configuration the reference generates):
//! - one attempt per priority level, lowest first; the number of attempts is bounded by the
//!   number of levels and by `Config::max_attempts`;
//! - when the last attempt answers 5xx or 429, that answer goes to the client as it is;
//! - the rule's request timeout bounds the whole exchange, body included; the backend request
//!   timeout bounds each attempt until its response head;
//! - the client's credentials (`authorization`, `api-key`, `x-api-key`) are never forwarded:
//!   the backend's own credential replaces them.

use crate::Shared;
use crate::body::{self, Body, Rewrite};
use crate::error::ProxyError;
use crate::exchange::{Endpoint, Exchange, HOP_BY_HOP, pick};
use crate::generation::{Unsupported, Upstream};
use crate::record::Record;
use crate::relay::{self, Relay};
use crate::upstream::{self, UpstreamBody};
use aigw_table::BackendRef;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri};
use std::time::Duration;
use tokio::time::Instant;

/// Request headers the gateway sets itself, and the client's own credentials.
pub(crate) const REPLACED: &[&str] = &[
    "host",
    "content-length",
    // The gateway reads every AI answer (its usage, the prompt guards): an encoded one could
    // be neither counted nor checked, so the backend answers in identity.
    "accept-encoding",
    "proxy-authorization",
    "authorization",
    "api-key",
    "x-api-key",
];

pub async fn send(
    shared: &Shared,
    exchange: Exchange<'_>,
    record: &mut Record,
) -> Result<Response<Body>, ProxyError> {
    let rule = exchange.selected.rule;
    let deadline = Instant::now() + Duration::from_millis(rule.request_timeout_ms.max(1));
    let mut levels = rule.priority_levels();
    if levels.is_empty() {
        return Err(ProxyError::unavailable(
            "no backend available for this rule",
        ));
    }
    levels.truncate(shared.config.max_attempts.max(1));
    let headers = forwarded_headers(&exchange.parts.headers);
    let wants_usage = wants_usage_chunk(&exchange);
    let mut last = None;
    for (attempt, level) in levels.iter().enumerate() {
        let final_attempt = attempt + 1 == levels.len();
        let Some(reference) = pick(
            rule.backends
                .iter()
                .filter(|b| b.weight > 0 && b.priority == *level),
            |b| b.weight,
        ) else {
            continue;
        };
        let upstream = &exchange.generation.backends[reference.backend];
        record.attempt(reference.backend, sent_model(&exchange, reference));
        // A backend with no slot free or whose budget is spent is skipped like one that fails.
        match admit(shared, &exchange, reference, upstream, deadline, record).await {
            Ok(()) => {}
            Err(error) if error.retry && !final_attempt => {
                tracing::debug!(backend = %upstream.name, message = %error.message, "failing over");
                last = Some(error);
                continue;
            }
            Err(error) => return Err(error),
        }
        // A translated stream reports its usage itself.
        let usage_chunk = wants_usage && speaks_openai(upstream);
        let span = record.trace_attempt(upstream);
        let answered = call(
            &exchange,
            reference,
            upstream,
            &headers,
            usage_chunk,
            deadline,
            span.as_ref(),
        )
        .await;
        if let Some(span) = &span {
            match &answered {
                Ok((response, _)) => span.end(Some(response.status().as_u16()), None),
                Err(error) => span.end(None, Some(&error.message)),
            }
        }
        let fault = match &answered {
            Ok((response, _)) => upstream::status_fault(response.status()),
            Err(error) => error.cause,
        };
        if let Some(fault) = fault {
            record.fault(fault);
        }
        match answered {
            Ok((response, _)) if !final_attempt && retriable(response.status()) => {
                shared.metrics.attempt("retried_status");
                tracing::debug!(backend = %upstream.name, status = response.status().as_u16(), "failing over");
            }
            Ok((response, Some(translator))) => {
                shared.metrics.attempt("answered");
                let answer = crate::translated::Answer {
                    shared,
                    exchange: &exchange,
                    upstream,
                    translator,
                    deadline,
                    record,
                };
                return answer.respond(response).await;
            }
            Ok((response, None)) => {
                shared.metrics.attempt("answered");
                if exchange.answer_guard.is_some() && !is_sse(&response) {
                    return respond_guarded(shared, &exchange, response, deadline, record).await;
                }
                return Ok(respond(&exchange, response, usage_chunk, deadline, record));
            }
            Err(error) if error.retry && !final_attempt => {
                shared.metrics.attempt("failed");
                tracing::debug!(backend = %upstream.name, message = %error.message, "failing over");
                last = Some(error);
            }
            Err(error) => {
                shared.metrics.attempt("failed");
                return Err(error);
            }
        }
    }
    Err(last.unwrap_or_else(|| ProxyError::unavailable("no backend available for this rule")))
}

/// 5xx and 429 move on to the next priority.
fn retriable(status: http::StatusCode) -> bool {
    status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS
}

/// Takes a request slot of `upstream` and reserves the request's estimated cost in its quotas;
/// `record` holds both.
async fn admit(
    shared: &Shared,
    exchange: &Exchange<'_>,
    reference: &BackendRef,
    upstream: &Upstream,
    deadline: Instant,
    record: &mut Record,
) -> Result<(), ProxyError> {
    // A request waits for a slot holding none: two rules failing over between the same
    // backends in opposite orders cannot then hold each other's.
    record.release();
    match upstream.slots.take(deadline).await {
        Ok(slot) => record.hold(slot),
        Err(refused) => {
            let error = crate::slots::refused(&upstream.name, refused);
            if let Some(fault) = error.cause {
                record.fault(fault);
            }
            return Err(error);
        }
    }
    record.charge(reserve(shared, exchange, reference, upstream).await?);
    Ok(())
}

/// Reserves the request's estimated cost in the QuotaPolicy buckets of `upstream`.
pub(crate) async fn reserve(
    shared: &Shared,
    exchange: &Exchange<'_>,
    reference: &BackendRef,
    upstream: &Upstream,
) -> Result<Option<crate::quota::Charge>, ProxyError> {
    let quotas = &exchange.generation.quotas;
    if !quotas.applies(reference.backend) {
        return Ok(None);
    }
    let request = crate::quota::Request {
        client: crate::select::Request::of(exchange.parts, exchange.peer),
        body_len: exchange.body.len(),
        max_output: exchange.peek.max_output(),
    };
    let vars = crate::costs::Vars {
        model: exchange.peek.model.as_deref().unwrap_or_default(),
        backend: &upstream.name,
        route: &exchange.selected.route.name,
    };
    let model = sent_model(exchange, reference);
    match quotas
        .reserve(&shared.quotas, reference.backend, model, &request, &vars)
        .await
    {
        Ok(charge) => Ok(charge),
        Err(crate::quota::Refusal::Exhausted {
            bucket,
            retry_after,
        }) => {
            shared.metrics.quota_rejected(&bucket);
            Err(ProxyError::quota_exhausted(
                format!(
                    "backend `{}`: the quota `{bucket}` is spent until its window ends",
                    upstream.name
                ),
                retry_after,
            ))
        }
        Err(crate::quota::Refusal::Store(error)) => Err(ProxyError::unavailable(format!(
            "the quota store cannot be asked and fails closed: {error}"
        ))),
    }
}

/// The model the backend is asked for: the backendRef's override, or the client's.
pub(crate) fn sent_model<'a>(exchange: &'a Exchange<'_>, reference: &'a BackendRef) -> &'a str {
    reference
        .model_name_override
        .as_deref()
        .or(exchange.peek.model.as_deref())
        .unwrap_or_default()
}

/// The client's headers minus hop-by-hop ones and client credentials.
pub(crate) fn forwarded_headers(incoming: &HeaderMap) -> HeaderMap {
    let mut headers = incoming.clone();
    for name in HOP_BY_HOP.iter().chain(REPLACED) {
        headers.remove(*name);
    }
    headers
}

/// The backend answers in the OpenAI API itself (OpenAI, Azure OpenAI).
pub(crate) fn speaks_openai(upstream: &Upstream) -> bool {
    matches!(
        upstream.api,
        Some(aigw_providers::Schema::OpenAI | aigw_providers::Schema::AzureOpenAI)
    )
}

/// A response head, and the translator of its body when the backend speaks another API.
type Answered = (
    Response<hyper::body::Incoming>,
    Option<aigw_providers::ResponseTranslator>,
);

/// One attempt's request to one backend, as it goes on the wire: head and body (translated,
/// with credentials, signed), and the translator of its answer when the backend speaks another
/// API. Both front doors make it here: this server sends it, Envoy's external processor hands it
/// to Envoy.
pub(crate) struct Prepared {
    pub request: Request<Bytes>,
    pub translator: Option<aigw_providers::ResponseTranslator>,
}

/// Makes the request of one attempt (see [`Prepared`]).
pub(crate) async fn prepare(
    exchange: &Exchange<'_>,
    reference: &BackendRef,
    upstream: &Upstream,
    base_headers: &HeaderMap,
    usage_chunk: bool,
    span: Option<&crate::trace::Attempt>,
) -> Result<Prepared, ProxyError> {
    if let Some(reason) = upstream.unsupported {
        return Err(unsupported(upstream, reason));
    }
    let Some(base) = pick_base(&upstream.bases) else {
        return Err(unsupported(upstream, Unsupported::NoEndpoint));
    };
    let mut headers = base_headers.clone();
    mutate_headers(&mut headers, &reference.header_mutation);
    authenticate(&mut headers, &exchange.parts.headers, upstream)?;
    if let Some(span) = span {
        span.inject(&mut headers);
    }
    if let Some(token) = &upstream.token {
        headers.insert(header::AUTHORIZATION, token.header().await?);
    }
    let body = request_body(exchange, reference, usage_chunk)?;
    let model = sent_model(exchange, reference);
    let (uri, body, translator) =
        match crate::translated::translate(exchange, upstream, model, &body)? {
            aigw_providers::Translation::Passthrough => {
                let pq = exchange.parts.uri.path_and_query();
                (upstream_uri(base, &upstream.prefix, pq)?, body, None)
            }
            aigw_providers::Translation::Translated { request, response } => {
                crate::translated::headers(&mut headers, &request);
                let uri = format!("{base}{}", request.path)
                    .parse()
                    .map_err(|_| ProxyError::internal("the upstream URI could not be built"))?;
                let body = request.body.map_or(body, Bytes::from);
                (uri, body, (!response.is_identity()).then_some(response))
            }
        };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut request = Request::new(body);
    *request.method_mut() = exchange.parts.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    if let Some(signer) = &upstream.aws {
        let (parts, body) = request.into_parts();
        let mut head = Request::from_parts(parts, ());
        signer.sign(&mut head, &body).await?;
        request = Request::from_parts(head.into_parts().0, body);
    }
    Ok(Prepared {
        request,
        translator,
    })
}

/// One attempt against one backend, up to its response head.
async fn call(
    exchange: &Exchange<'_>,
    reference: &BackendRef,
    upstream: &Upstream,
    base_headers: &HeaderMap,
    usage_chunk: bool,
    deadline: Instant,
    span: Option<&crate::trace::Attempt>,
) -> Result<Answered, ProxyError> {
    let Prepared {
        request,
        translator,
    } = prepare(
        exchange,
        reference,
        upstream,
        base_headers,
        usage_chunk,
        span,
    )
    .await?;
    let request = request.map(UpstreamBody::full);
    let per_attempt = exchange
        .selected
        .rule
        .backend_request_timeout_ms
        .map(Duration::from_millis);
    let attempt_deadline = per_attempt.map_or(deadline, |d| deadline.min(Instant::now() + d));
    match tokio::time::timeout_at(attempt_deadline, upstream.client.request(request)).await {
        Ok(Ok(response)) => Ok((response, translator)),
        Ok(Err(error)) => {
            let mut answer = ProxyError::bad_gateway(format!(
                "backend `{}`: {}",
                upstream.name,
                upstream::describe(&error)
            ));
            answer.cause = Some(upstream::fault(&error));
            Err(answer)
        }
        Err(_) if attempt_deadline < deadline => {
            let mut error = ProxyError::timeout(format!(
                "backend `{}` did not answer within the backend request timeout",
                upstream.name
            ));
            error.retry = true;
            error.cause = Some("timeout");
            Err(error)
        }
        Err(_) => {
            let mut error = ProxyError::timeout("the request timed out");
            error.cause = Some("timeout");
            Err(error)
        }
    }
}

fn unsupported(upstream: &Upstream, reason: Unsupported) -> ProxyError {
    match reason {
        Unsupported::Schema => {
            let mut error = ProxyError::untranslated(&upstream.name, &upstream.schema);
            error.message = format!(
                "backend `{}` uses the `{}` API schema, which this build does not know",
                upstream.name, upstream.schema
            )
            .into();
            error
        }
        Unsupported::Credentials(kind) => {
            let mut error = ProxyError::untranslated(&upstream.name, &upstream.schema);
            error.message = format!(
                "backend `{}` authenticates with `{kind}`, which this build cannot sign yet",
                upstream.name
            )
            .into();
            error
        }
        Unsupported::UnixEndpoint => ProxyError::bad_gateway(format!(
            "backend `{}` has only Unix-socket endpoints, which this build cannot call",
            upstream.name
        )),
        Unsupported::NoEndpoint => {
            ProxyError::bad_gateway(format!("backend `{}` has no endpoint", upstream.name))
        }
        Unsupported::NoAmbient(why) => ProxyError::unavailable(format!(
            "backend `{}`: no BackendSecurityPolicy targets it and no ambient credential can be used: {why}",
            upstream.name
        )),
    }
}

pub(crate) fn pick_base(bases: &[String]) -> Option<&String> {
    match bases.len() {
        0 => None,
        1 => bases.first(),
        n => bases.get(fastrand::usize(0..n)),
    }
}

/// `base` + the schema prefix + the client path after `/v1`, with the query.
fn upstream_uri(
    base: &str,
    prefix: &str,
    path_and_query: Option<&http::uri::PathAndQuery>,
) -> Result<Uri, ProxyError> {
    let path = path_and_query.map_or("/", |p| p.as_str());
    let rest = path.strip_prefix("/v1").unwrap_or(path);
    format!("{base}{prefix}{rest}")
        .parse()
        .map_err(|_| ProxyError::internal("the upstream URI could not be built"))
}

/// The backend's header mutation: never pseudo-headers or the gateway's own `x-ai-eg-*`.
fn mutate_headers(headers: &mut HeaderMap, mutation: &aigw_table::Mutation) {
    let allowed =
        |name: &str| !name.starts_with(':') && !name.to_ascii_lowercase().starts_with("x-ai-eg-");
    for name in mutation.remove.iter().filter(|n| allowed(n)) {
        headers.remove(name.as_str());
    }
    for set in mutation.set.iter().filter(|s| allowed(&s.name)) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(set.name.as_bytes()),
            HeaderValue::from_str(&set.value),
        ) {
            headers.insert(name, value);
        }
    }
}

/// Puts the backend's credential on the request (or the one the client passed in the
/// override header), and strips the override header.
fn authenticate(
    headers: &mut HeaderMap,
    client: &HeaderMap,
    upstream: &Upstream,
) -> Result<(), ProxyError> {
    let Some(credential) = &upstream.credential else {
        return Ok(());
    };
    if let Some(over) = &upstream.credential_override {
        headers.remove(&over.header);
        match client
            .get(&over.header)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            Some(given) => {
                let text = if credential.bearer {
                    format!("Bearer {given}")
                } else {
                    given.to_owned()
                };
                let mut value = HeaderValue::from_str(&text).map_err(|_| {
                    ProxyError::bad_request("the credential header is not a valid header value")
                })?;
                value.set_sensitive(true);
                headers.insert(credential.header.clone(), value);
                return Ok(());
            }
            None if !over.fallback => {
                return Err(ProxyError::unauthorized(format!(
                    "the request must carry the `{}` header",
                    over.header
                )));
            }
            None => {}
        }
    }
    headers.insert(credential.header.clone(), credential.value.clone());
    Ok(())
}

/// The body for this backend: as received, or rewritten (model override, body mutation, a
/// usage chunk asked for when costs are recorded).
fn request_body(
    exchange: &Exchange<'_>,
    reference: &BackendRef,
    usage_chunk: bool,
) -> Result<Bytes, ProxyError> {
    let rewrite = Rewrite {
        model: reference.model_name_override.as_deref(),
        mutation: (!reference.body_mutation.is_empty()).then_some(&reference.body_mutation),
        include_usage: usage_chunk,
    };
    if rewrite.is_empty()
        || exchange.endpoint == Endpoint::AudioTranscriptions
        || exchange.endpoint == Endpoint::AudioTranslations
    {
        return Ok(exchange.body.clone());
    }
    body::rewrite(exchange.body, &rewrite)
}

/// The reference asks a streaming chat completion for its usage chunk when the route or the
/// Gateway records request costs, and strips that chunk again if the client did not ask.
pub(crate) fn wants_usage_chunk(exchange: &Exchange<'_>) -> bool {
    let table = exchange.generation.snapshot.table();
    let costs = !exchange.selected.route.llm_request_costs.is_empty()
        || !table.gateways[exchange.listener.gateway]
            .llm_request_costs
            .is_empty();
    exchange.endpoint == Endpoint::ChatCompletions
        && exchange.peek.streaming()
        && costs
        && !exchange.peek.asked_for_usage()
}

/// The client's response: the upstream's status and headers, its body relayed chunk by chunk.
fn respond(
    exchange: &Exchange<'_>,
    response: Response<hyper::body::Incoming>,
    usage_chunk: bool,
    deadline: Instant,
    record: &mut Record,
) -> Response<Body> {
    let (mut parts, incoming) = response.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(*name);
    }
    let sse = is_sse_headers(&parts.headers);
    let strip_usage = sse && usage_chunk;
    // A stripped usage chunk or a masked event changes the length.
    if strip_usage || exchange.answer_guard.is_some() {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    let idle = exchange
        .selected
        .rule
        .stream_idle_timeout_ms
        .map(Duration::from_millis);
    let mode = if sse {
        relay::Mode::Events { strip_usage }
    } else {
        relay::Mode::Whole
    };
    let usage = exchange.endpoint.has_usage() && parts.status.is_success();
    record.status(parts.status.as_u16());
    let relay = Relay::new(incoming, mode, usage, Some(deadline), idle, record.take())
        .guarded(exchange.generation, exchange.answer_guard);
    Response::from_parts(parts, Body::stream(relay))
}

fn is_sse(response: &Response<hyper::body::Incoming>) -> bool {
    is_sse_headers(response.headers())
}

pub(crate) fn is_sse_headers(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// A whole passthrough answer, read before anything is sent so the prompt guard can refuse
/// it; its usage read as the relay reads it.
async fn respond_guarded(
    shared: &Shared,
    exchange: &Exchange<'_>,
    response: Response<hyper::body::Incoming>,
    deadline: Instant,
    record: &mut Record,
) -> Result<Response<Body>, ProxyError> {
    let (mut parts, incoming) = response.into_parts();
    for name in HOP_BY_HOP.iter().chain([&"content-length"]) {
        parts.headers.remove(*name);
    }
    let limit = shared.config.body_limit;
    let collect = http_body_util::BodyExt::collect(http_body_util::Limited::new(incoming, limit));
    let body = match tokio::time::timeout_at(deadline, collect).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => {
            return Err(ProxyError::bad_gateway(
                "the answer could not be read whole",
            ));
        }
        Err(_) => return Err(ProxyError::timeout("the request timed out")),
    };
    record.status(parts.status.as_u16());
    if exchange.endpoint.has_usage() && parts.status.is_success() {
        relay::whole_usage(&body, record);
    }
    let body = if parts.status.is_success() {
        exchange.guard_answer(body)?
    } else {
        body
    };
    Ok(Response::from_parts(parts, Body::full(body)))
}
