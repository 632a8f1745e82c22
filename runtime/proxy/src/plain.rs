//! Plain HTTPRoutes: the Gateway's reverse-proxy side. A request that is not for the AI API (or
//! that no AIGatewayRoute takes) is matched against the plain routes of its listener and passed
//! to one backend of the rule, chosen by weight: body streamed both ways, no model, no
//! translation, no retry (a streamed body cannot be replayed).
//!
//! As Envoy Gateway does by default, the client's `Host` is kept and only hop-by-hop headers
//! are dropped; a rule whose chosen backend has no endpoint answers 500 (Gateway API's answer
//! for an invalid backend), an unreachable one 502 and a rule timeout 504.

use crate::Shared;
use crate::body::{Body, BoxError};
use crate::error::ProxyError;
use crate::generation::Generation;
use crate::relay::{self, Relay};
use aigw_table::{ListenerId, PlainRequest, ProxySelected};
use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use std::time::Duration;
use tokio::time::Instant;

/// The plain rule that takes the request among the listeners on `port`.
pub fn select<'g>(
    generation: &'g Generation,
    port: u16,
    request: &PlainRequest<'_>,
) -> Option<(ListenerId, ProxySelected<'g>)> {
    let snapshot = &generation.snapshot;
    snapshot
        .listeners()
        .filter(|(_, _, l)| l.port == port)
        .find_map(|(id, _, _)| snapshot.select_plain(id, request).map(|s| (id, s)))
}

/// Proxies the request to a backend of `selected`, once the SecurityPolicy in force on
/// `listener` for its route (if any) knows the caller.
pub async fn send<'g>(
    shared: &Shared,
    generation: &'g Generation,
    (listener, selected): (ListenerId, ProxySelected<'_>),
    (mut parts, peer): (http::request::Parts, std::net::IpAddr),
    body: Body,
    cors: &mut Option<&'g crate::cors::Cors>,
) -> Result<Response<Body>, ProxyError> {
    let policies = Some(&selected.route.policies);
    let in_force = generation
        .callers
        .in_force(&generation.snapshot, listener, policies);
    *cors = in_force.cors();
    in_force.admit(&mut parts, None, peer).await?;
    let route = &selected.route.name;
    let verdict = crate::ratelimit::limit(shared, generation, &in_force, route, &parts, peer).await;
    if let Some(error) = verdict.refusal() {
        return Err(error);
    }
    // A plain route records no request costs: only fixed response costs apply.
    if let Some(owed) = verdict.owed {
        owed.settle(&[]);
    }
    // A plugin that reads the body gets it whole (within the body limit), and what it left.
    let (mut whole, streamed) = if generation.extensions.needs_body(in_force.extensions) {
        (
            Some(read_whole(body, shared.config.body_limit).await?),
            None,
        )
    } else {
        (None, Some(body))
    };
    let running =
        match generation
            .extensions
            .on_request(in_force.extensions, &mut parts, whole.as_mut())?
        {
            crate::wasm::Verdict::Continue(running) => running,
            crate::wasm::Verdict::Respond(response) => return Ok(response),
        };
    let body = match (whole, streamed) {
        (Some(whole), _) => {
            if running.rewrote_body() {
                parts.headers.remove(http::header::CONTENT_LENGTH);
                parts.headers.remove(http::header::TRANSFER_ENCODING);
            }
            Body::full(whole)
        }
        (None, streamed) => streamed.unwrap_or_else(Body::empty),
    };
    let filters = &selected.rule.filters;
    if let Some(redirect) = &filters.redirect {
        let listener = generation
            .snapshot
            .table()
            .gateways
            .get(listener.gateway)
            .and_then(|g| g.listeners.get(listener.listener));
        let scheme = match listener.map(|l| l.protocol) {
            Some(aigw_table::Protocol::Https) => "https",
            _ => "http",
        };
        let port = listener.map_or(80, |l| l.port);
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or_default();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        return Ok(crate::filters::redirect(
            redirect,
            (scheme, port),
            host,
            path,
        ));
    }
    let plain_rule = generation
        .plain
        .get(selected.route_index)
        .and_then(|rules| rules.get(selected.rule_index));
    let backends = plain_rule.map_or(&[][..], |r| r.backends.as_slice());
    let Some(upstream) = crate::exchange::pick(backends.iter(), |b| b.weight) else {
        return Err(ProxyError::internal(format!(
            "route `{}` has no backend to send to",
            selected.route.name
        )));
    };
    let base = match upstream.bases.len() {
        0 => {
            return Err(ProxyError::internal(format!(
                "backend `{}` of route `{}` has no endpoint",
                upstream.name, selected.route.name
            )));
        }
        n => &upstream.bases[fastrand::usize(0..n)],
    };
    let path = match &filters.rewrite_path {
        Some(rewrite) => {
            let path = crate::filters::rewrite_path(rewrite, parts.uri.path());
            match parts.uri.query() {
                Some(query) => format!("{path}?{query}"),
                None => path,
            }
        }
        None => parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
    };
    let uri: Uri = format!("{base}{path}")
        .parse()
        .map_err(|_| ProxyError::bad_request("the request path cannot be forwarded"))?;
    let mut headers = parts.headers;
    for name in crate::exchange::HOP_BY_HOP {
        headers.remove(*name);
    }
    if let Some(edits) = &filters.request_headers {
        crate::filters::edit(&mut headers, edits);
    }
    if let Some(host) = &filters.rewrite_host
        && let Ok(host) = http::HeaderValue::try_from(host.as_str())
    {
        headers.insert(http::header::HOST, host);
    }
    let deadline = selected
        .rule
        .request_timeout_ms
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let body = match plain_rule.map(|r| r.mirrors.as_slice()) {
        Some(mirrors) if !mirrors.is_empty() => {
            let copy = crate::mirror::Copy {
                method: &parts.method,
                path: &path,
                headers: &headers,
                deadline,
            };
            crate::mirror::start(mirrors, &copy, body)
        }
        _ => body,
    };
    let mut request = Request::new(body);
    *request.method_mut() = parts.method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    let answer = upstream.client.request(request);
    let answer = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, answer)
            .await
            .map_err(|_| ProxyError::timeout("the request timed out"))?,
        None => answer.await,
    };
    let response = answer.map_err(|error| {
        shared.metrics.attempt("failed");
        ProxyError::bad_gateway(format!(
            "backend `{}`: {}",
            upstream.name,
            crate::upstream::describe(&error)
        ))
    })?;
    shared.metrics.attempt("answered");
    let (mut parts, incoming) = response.into_parts();
    for name in crate::exchange::HOP_BY_HOP {
        parts.headers.remove(*name);
    }
    if let Some(edits) = &filters.response_headers {
        crate::filters::edit(&mut parts.headers, edits);
    }
    let relay = Relay::new(
        incoming,
        relay::Mode::Whole,
        false,
        deadline,
        None,
        crate::record::Record::default(),
    );
    Ok(running
        .on_response(Response::from_parts(parts, Body::stream(relay)))
        .await)
}

/// A request body read whole, refused past `limit` bytes.
async fn read_whole(body: Body, limit: usize) -> Result<bytes::Bytes, ProxyError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(ProxyError::too_large(limit))
        }
        Err(error) => Err(ProxyError::bad_request(format!(
            "the request body could not be read: {error}"
        ))),
    }
}

/// The client's request body, streamed to the upstream.
pub fn streamed(incoming: crate::body::RequestBody) -> Body {
    Body::stream(incoming.map_err(|e| Box::new(e) as BoxError))
}
