//! The request path's side of provider translation: which operation a client endpoint is,
//! the backend's schema as a translation target, the provider's headers on the upstream
//! request, and the provider's answer turned back into the client's API (a whole body, a
//! stream relayed chunk by chunk, or an error in the client's error shape with the provider's
//! status and message). The translations themselves live in `aigw-providers`.

use crate::Shared;
use crate::body::Body;
use crate::error::{ProxyError, json_response};
use crate::exchange::{Endpoint, Exchange, HOP_BY_HOP};
use crate::generation::Upstream;
use crate::record::Record;
use crate::relay::{self, Relay};
use aigw_providers::{
    ClientRequest, Ids, Operation, ResponseTranslator, Target, Translation, UpstreamRequest,
};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use std::time::Duration;
use tokio::time::Instant;

/// The most of a provider's error body read to translate it.
pub(crate) const ERROR_BODY_LIMIT: usize = 1 << 20;

/// What `body` (the client's, after the backend's rewrites) becomes for `upstream`, which is
/// asked for `model`.
pub fn translate(
    exchange: &Exchange<'_>,
    upstream: &Upstream,
    model: &str,
    body: &[u8],
) -> Result<Translation, ProxyError> {
    let Some(schema) = upstream.api else {
        return Ok(Translation::Passthrough);
    };
    let gcp = match &upstream.gcp {
        Some(place) => {
            let project = place
                .project
                .as_deref()
                .or_else(|| upstream.token.as_ref().and_then(|t| t.gcp_project()));
            let Some(project) = project else {
                return Err(ProxyError::unavailable(format!(
                    "backend `{}`: no GCP project: GOOGLE_CLOUD_PROJECT is not set and the credential names none",
                    upstream.name
                )));
            };
            Some((project, place.region.as_str()))
        }
        None => None,
    };
    let target = Target {
        schema,
        model,
        version: upstream.version.as_deref(),
        gcp,
        prefix: &upstream.prefix,
    };
    let request = ClientRequest {
        api: Endpoint::api(exchange.parts.uri.path()),
        operation: operation(exchange.endpoint),
        body,
        anthropic_beta: exchange
            .parts
            .headers
            .get("anthropic-beta")
            .and_then(|v| v.to_str().ok()),
    };
    aigw_providers::translate(&request, &target).map_err(|error| from_translation(error, upstream))
}

fn operation(endpoint: Endpoint) -> Operation {
    match endpoint {
        Endpoint::ChatCompletions => Operation::ChatCompletions,
        Endpoint::Completions => Operation::Completions,
        Endpoint::Embeddings => Operation::Embeddings,
        Endpoint::Responses => Operation::Responses,
        Endpoint::Messages => Operation::Messages,
        Endpoint::CountTokens => Operation::CountTokens,
        Endpoint::Rerank => Operation::Rerank,
        _ => Operation::Other,
    }
}

fn from_translation(error: aigw_providers::Error, upstream: &Upstream) -> ProxyError {
    let message = error.to_string();
    match error {
        aigw_providers::Error::Invalid(_) => ProxyError::bad_request(message),
        aigw_providers::Error::Unsupported { .. } => ProxyError::unprocessable(message),
        aigw_providers::Error::Untranslated { .. } => {
            let mut error = ProxyError::untranslated(&upstream.name, &upstream.schema);
            error.message = format!("backend `{}`: {message}", upstream.name).into();
            error
        }
        aigw_providers::Error::Config(_) => {
            ProxyError::internal(format!("backend `{}`: {message}", upstream.name))
        }
    }
}

/// The provider's headers on a translated request. The body is JSON the gateway wrote, and
/// it must come back uncompressed to be translated.
pub fn headers(headers: &mut HeaderMap, request: &UpstreamRequest) {
    headers.remove(header::ACCEPT_ENCODING);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in &request.headers {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    for (name, value) in &request.header_defaults {
        if !headers.contains_key(*name) {
            headers.insert(*name, HeaderValue::from_static(value));
        }
    }
}

/// A translated backend's answer on its way to the client.
pub struct Answer<'a> {
    pub shared: &'a Shared,
    pub exchange: &'a Exchange<'a>,
    pub upstream: &'a Upstream,
    pub translator: ResponseTranslator,
    pub deadline: Instant,
    /// The request's account: status and usage go in; a streamed answer takes it along.
    pub record: &'a mut Record,
}

impl Answer<'_> {
    pub async fn respond(
        mut self,
        response: Response<hyper::body::Incoming>,
    ) -> Result<Response<Body>, ProxyError> {
        let (mut parts, incoming) = response.into_parts();
        if !parts.status.is_success() {
            let error_type = parts
                .headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = self.read(incoming, ERROR_BODY_LIMIT).await;
            let body = body.map_err(|error| self.broke(error))?;
            let out = self
                .translator
                .error(parts.status.as_u16(), error_type.as_deref(), &body);
            self.record.status(parts.status.as_u16());
            let mut answer = json_response(parts.status, out.into());
            // When to ask again is the provider's to say (Anthropic and OpenAI send it on 429
            // and 529/503); the client's SDK waits for it.
            if let Some(after) = parts.headers.get(http::header::RETRY_AFTER) {
                answer
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, after.clone());
            }
            return Ok(answer);
        }
        if self.exchange.peek.streaming() {
            stream_headers(&mut parts.headers);
            let idle = self
                .exchange
                .selected
                .rule
                .stream_idle_timeout_ms
                .map(Duration::from_millis);
            let relay = Relay::new(
                incoming,
                stream_mode(&self.translator),
                true,
                Some(self.deadline),
                idle,
                {
                    self.record.status(200);
                    self.record.take()
                },
            )
            .guarded(self.exchange.generation, self.exchange.answer_guard);
            parts.status = StatusCode::OK;
            return Ok(Response::from_parts(parts, Body::stream(relay)));
        }
        let body = self.read(incoming, self.shared.config.body_limit).await;
        let body = body.map_err(|error| self.broke(error))?;
        let (status, out) = whole(self.exchange, &self.translator, &body, self.record)?;
        Ok(json_response(status, out))
    }

    /// `error` of reading the answer's body, counted and logged as its fault.
    fn broke(&mut self, error: ProxyError) -> ProxyError {
        if let Some(fault) = error.cause {
            self.record.fault(fault);
        }
        error
    }

    /// The whole upstream body, within the request's deadline and `limit`.
    async fn read(
        &self,
        incoming: hyper::body::Incoming,
        limit: usize,
    ) -> Result<Bytes, ProxyError> {
        let collect = http_body_util::Limited::new(incoming, limit).collect();
        match tokio::time::timeout_at(self.deadline, collect).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(failure)) => {
                let mut error = ProxyError::bad_gateway(format!(
                    "backend `{}`: its response could not be read whole",
                    self.upstream.name
                ));
                // Too large for the gateway to read whole, or cut by the backend.
                let too_large = failure
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some();
                error.cause = Some(if too_large { "body_limit" } else { "closed" });
                Err(error)
            }
            Err(_) => {
                let mut error = ProxyError::timeout("the request timed out");
                error.cause = Some("timeout");
                Err(error)
            }
        }
    }
}

/// The head of a translated stream: the provider's framing headers go, the client gets
/// server-sent events.
pub(crate) fn stream_headers(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    for name in [
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
    ] {
        headers.remove(name);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
}

/// How a translated stream is relayed: through the translator's stream state.
pub(crate) fn stream_mode(translator: &ResponseTranslator) -> relay::Mode {
    relay::Mode::Translate(Box::new(translator.stream(ids(translator.id_prefix()))))
}

/// A whole successful answer of a translated backend, in the client's API: its usage noted
/// and the prompt guard applied; a body the translator cannot read is a 502 with its error.
pub(crate) fn whole(
    exchange: &Exchange<'_>,
    translator: &ResponseTranslator,
    body: &[u8],
    record: &mut Record,
) -> Result<(StatusCode, Bytes), ProxyError> {
    let ids = ids(translator.id_prefix());
    match translator.response(body, &ids) {
        // A count uses no tokens; a rerank is billed in searches, not tokens.
        Ok((out, _)) if matches!(exchange.endpoint, Endpoint::CountTokens | Endpoint::Rerank) => {
            Ok((StatusCode::OK, out.into()))
        }
        Ok((out, usage)) => {
            record.usage(usage);
            let out = exchange.guard_answer(out.into())?;
            if let Some(text) = record.output()
                && let Ok(value) = serde_json::from_slice::<serde_json::Value>(&out)
            {
                crate::content::answer(&value, text);
            }
            Ok((StatusCode::OK, out))
        }
        Err(out) => Ok((StatusCode::BAD_GATEWAY, out.into())),
    }
}

/// A fresh response id (after `prefix`) and the creation time, for providers whose answers
/// carry none.
fn ids(prefix: &str) -> Ids {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Ids {
        id: format!(
            "{prefix}{:016x}{:08x}",
            fastrand::u64(..),
            fastrand::u32(..)
        ),
        created,
    }
}
