//! The upstream filter's phase: one attempt of a request, to the backend whose endpoint Envoy
//! chose (the host metadata's backend name). The request becomes that backend's, made by the
//! same [`crate::forward::prepare`] the standalone server sends: path and host, headers with
//! the backend's credential (SigV4 signed over the final body), and the translated body, which
//! replaces Envoy's. The body's length goes into dynamic metadata, where the compiled config's
//! header mutation restores `content-length` from (as the reference's does).

use super::wire::{self, Continue, Head, Mutation, Phase};
use super::{Flight, Processor, REQUEST_ID_HEADER};
use crate::error::ProxyError;
use crate::exchange::Endpoint;
use crate::forward;
use envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse;
use envoy_types::pb::google::protobuf::{Value, value::Kind};

/// The attempt Envoy sent last, whose answer the router phase translates.
pub(crate) struct Current {
    pub translator: Option<aigw_providers::ResponseTranslator>,
    /// The attempt's span, when traces are on: it ends with the answer's head.
    pub span: Option<crate::trace::Attempt>,
    /// The gateway asked this backend for a usage chunk the client did not ask for.
    pub usage_chunk: bool,
}

/// Answers an attempt's request headers.
pub(super) async fn headers(
    processor: &Processor,
    head: Head,
    backend: &Value,
) -> ProcessingResponse {
    // A retry's path is the previous attempt's backend path: the error shape follows the
    // client's, which the router phase kept.
    let api = match flight(processor, &head) {
        Some(flight) => Endpoint::api(flight.lock().await.admitted.parts.uri.path()),
        None => Endpoint::api(&head.path),
    };
    match prepare(processor, &head, backend).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(status = error.status.as_u16(), message = %error.message, "an upstream attempt failed");
            super::router::local(error.response_for(api)).await
        }
    }
}

/// The request in flight this attempt belongs to.
fn flight(
    processor: &Processor,
    head: &Head,
) -> Option<std::sync::Arc<tokio::sync::Mutex<Flight>>> {
    let id = head
        .headers
        .get(REQUEST_ID_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    processor.pending.get(id)
}

async fn prepare(
    processor: &Processor,
    head: &Head,
    backend: &Value,
) -> Result<ProcessingResponse, ProxyError> {
    let Some(Kind::StringValue(name)) = &backend.kind else {
        return Err(ProxyError::internal(
            "Envoy sent no backend name for this attempt",
        ));
    };
    let flight = flight(processor, head).ok_or_else(|| {
        ProxyError::internal(
            "an upstream attempt came without the request its router phase admitted",
        )
    })?;
    let mut guard = flight.lock().await;
    let Flight {
        generation,
        admitted,
        ..
    } = &*guard;
    let reference = admitted
        .exchange(generation)
        .selected
        .rule
        .backends
        .iter()
        .position(|b| b.weight > 0 && *generation.backends[b.backend].name == **name)
        .ok_or_else(|| {
            ProxyError::internal(format!(
                "Envoy chose backend `{name}`, which the request's rule does not have"
            ))
        })?;
    let replaced = replace(processor, &mut guard, reference, head, Where::Upstream).await?;
    Ok(Continue {
        headers: replaced.headers,
        body: Some(replaced.body),
        metadata: Some(replaced.metadata),
        ..Continue::default()
    }
    .into_response(Phase::RequestHeaders))
}

/// Which filter replaces the request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Where {
    /// The upstream filter of the attempt: it sets `:authority` (what SigV4 signed), and the
    /// compiled header mutation restores `content-length` from the metadata.
    Upstream,
    /// The router-level filter, for a rule with one endpoint: the route's host rewrite gives
    /// `Host` (changing `:authority` here would change the virtual host Envoy matches), and
    /// `content-length` is set here.
    Router,
}

/// The backend's request, as changes to the head Envoy has and the body in place of its.
pub(super) struct Replaced {
    pub headers: Mutation,
    pub body: Vec<u8>,
    pub metadata: envoy_types::pb::google::protobuf::Struct,
}

/// Makes the request of an attempt to `rule.backends[reference]` of `flight`, as the
/// standalone server would send it, and makes that attempt the current one.
pub(super) async fn replace(
    processor: &Processor,
    flight: &mut Flight,
    reference: usize,
    head: &Head,
    at: Where,
) -> Result<Replaced, ProxyError> {
    let Flight {
        generation,
        admitted,
        record,
        current,
    } = flight;
    let exchange = admitted.exchange(generation);
    let reference = exchange
        .selected
        .rule
        .backends
        .get(reference)
        .ok_or_else(|| ProxyError::internal("the rule has no such backend reference"))?;
    let upstream = &generation.backends[reference.backend];
    record.attempt(reference.backend, forward::sent_model(&exchange, reference));
    let charge = forward::reserve(&processor.shared, &exchange, reference, upstream).await?;
    record.charge(charge);
    let usage_chunk = forward::wants_usage_chunk(&exchange) && forward::speaks_openai(upstream);
    let base = forward::forwarded_headers(&exchange.parts.headers);
    // A retry ends the previous attempt's span: Envoy saw its answer, the processor did not.
    if let Some(span) = current.take().and_then(|c| c.span) {
        span.end(None, Some("Envoy retried the request"));
    }
    let span = record.trace_attempt(upstream);
    let prepared = match forward::prepare(
        &exchange,
        reference,
        upstream,
        &base,
        usage_chunk,
        span.as_ref(),
    )
    .await
    {
        Ok(prepared) => prepared,
        Err(error) => {
            if let Some(span) = &span {
                span.end(None, Some(&error.message));
            }
            return Err(error);
        }
    };
    let (parts, body) = prepared.request.into_parts();
    let mut mutation = Mutation::default();
    if let Some(pq) = parts.uri.path_and_query() {
        mutation.set(":path", pq.as_str().as_bytes());
    }
    if let (Some(host), Where::Upstream) = (host_header(&parts.uri), at) {
        mutation.set(":authority", host.as_bytes());
    }
    let mut wanted = parts.headers;
    if at == Where::Upstream {
        wanted.remove(http::header::CONTENT_LENGTH);
    }
    let mut changes = Mutation::diff(&head.headers, &wanted);
    // A retry starts from the headers the previous attempt left (another backend's
    // credential and provider headers among them): everything the backend's request does not
    // have goes, but Envoy's own headers and the id the next retry needs.
    changes.keep_removals(|name| {
        name != REQUEST_ID_HEADER
            && name != "x-request-id"
            && !name.starts_with("x-envoy-")
            && !name.starts_with("x-forwarded-")
    });
    mutation.extend(changes);
    let metadata = wire::metadata([
        (
            "content_length".to_owned(),
            wire::string(&body.len().to_string()),
        ),
        ("backend_name".to_owned(), wire::string(&upstream.name)),
        (
            "model_name_override".to_owned(),
            wire::string(forward::sent_model(&exchange, reference)),
        ),
    ]);
    *current = Some(Current {
        translator: prepared.translator,
        span,
        usage_chunk,
    });
    Ok(Replaced {
        headers: mutation,
        body: body.to_vec(),
        metadata,
    })
}

/// The `Host` of a request to `uri`: its authority without the scheme's default port, as the
/// standalone server's HTTP client sends it and the SigV4 signer signs it.
fn host_header(uri: &http::Uri) -> Option<String> {
    let host = uri.host()?;
    let default = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    Some(match uri.port_u16() {
        Some(port) if port != default => format!("{host}:{port}"),
        _ => host.to_owned(),
    })
}
