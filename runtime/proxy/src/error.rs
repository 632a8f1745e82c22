//! The data plane's errors: each knows its status code, who is at fault, whether another
//! backend may be tried, and how it reads to a client ([`ProxyError::response_for`] renders
//! the error shape of the client's API: OpenAI's, Anthropic's under `/anthropic`, Cohere's
//! under `/cohere`).
//!
//! Messages are `&'static str` or built from values the client sent or the table names; they
//! never carry a secret.

use crate::body::Body;
use aigw_providers::ClientApi;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use std::borrow::Cow;

/// Who caused an error (for logs and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Client,
    Upstream,
    Internal,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Client => "client",
            Fault::Upstream => "upstream",
            Fault::Internal => "internal",
        }
    }
}

/// An error answered by the gateway itself.
#[derive(Clone, Debug)]
pub struct ProxyError {
    pub status: StatusCode,
    pub fault: Fault,
    /// The OpenAI error `type`.
    pub kind: &'static str,
    pub message: Cow<'static, str>,
    /// Another backend of the rule may be tried (only before any byte reached the client).
    pub retry: bool,
    /// Seconds for the `Retry-After` header.
    pub retry_after: Option<u64>,
    /// The `x-ratelimit-*` headers of a rate-limit refusal: limit, remaining, reset.
    pub rate: Option<(u64, u64, u64)>,
    /// The `WWW-Authenticate` challenge of a 401 for a missing or invalid JWT.
    pub challenge: Option<Box<HeaderValue>>,
    /// Which upstream fault it is, for the metrics (see [`crate::upstream::fault`]).
    pub cause: Option<&'static str>,
}

impl ProxyError {
    fn new(
        status: StatusCode,
        fault: Fault,
        kind: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        ProxyError {
            status,
            fault,
            kind,
            message: message.into(),
            retry: false,
            retry_after: None,
            challenge: None,
            rate: None,
            cause: None,
        }
    }

    /// 429: a BackendTrafficPolicy rate limit of this caller is reached (no other backend can
    /// help: the limit is the caller's).
    pub fn rate_limited(retry_after: u64, rate: Option<(u64, u64, u64)>) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            Fault::Client,
            "rate_limit_error",
            "too many requests: a rate limit of this gateway is reached until its window ends",
        );
        error.retry_after = Some(retry_after.max(1));
        error.rate = rate;
        error
    }

    /// 429: a QuotaPolicy budget of the backend is spent until its window ends; another
    /// backend of the rule may have budget.
    pub fn quota_exhausted(message: impl Into<Cow<'static, str>>, retry_after: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            Fault::Client,
            "rate_limit_error",
            message,
        );
        error.retry = true;
        error.retry_after = Some(retry_after.max(1));
        error
    }

    /// 400: the request cannot be read.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Fault::Client,
            "invalid_request_error",
            message,
        )
    }

    /// 401: the request lacks a credential it must carry.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            Fault::Client,
            "authentication_error",
            message,
        )
    }

    /// 403: the caller is known and may not do this.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            Fault::Client,
            "permission_error",
            message,
        )
    }

    /// 404: no such endpoint.
    pub fn unsupported_path(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Fault::Client,
            "invalid_request_error",
            format!("unsupported path: {path}"),
        )
    }

    /// 405 on a known endpoint.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Fault::Client,
            "invalid_request_error",
            format!("method {method} is not allowed on {path}"),
        )
    }

    /// 413: the body is over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Fault::Client,
            "invalid_request_error",
            format!("request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 422: the backend cannot honour what the request asks for.
    pub fn unprocessable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Fault::Client,
            "invalid_request_error",
            message,
        )
    }

    /// 501: something this build does not have.
    pub fn not_implemented(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            Fault::Internal,
            "not_implemented_error",
            message,
        )
    }

    /// 501: the backend's schema needs a translation this build does not have.
    pub fn untranslated(backend: &str, schema: &str) -> Self {
        let mut error = Self::new(
            StatusCode::NOT_IMPLEMENTED,
            Fault::Internal,
            "not_implemented_error",
            format!(
                "backend `{backend}` uses the `{schema}` API schema, whose translation from the OpenAI API is not available in this build"
            ),
        );
        error.retry = true;
        error
    }

    /// 502: the upstream could not be reached or broke the exchange.
    pub fn bad_gateway(message: impl Into<Cow<'static, str>>) -> Self {
        let mut error = Self::new(
            StatusCode::BAD_GATEWAY,
            Fault::Upstream,
            "upstream_error",
            message,
        );
        error.retry = true;
        error
    }

    /// 503: nothing can serve the request.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Fault::Upstream,
            "upstream_error",
            message,
        )
    }

    /// 504: the rule's timeout passed.
    pub fn timeout(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            Fault::Upstream,
            "timeout_error",
            message,
        )
    }

    /// 500: a bug or a broken invariant (never a user mistake).
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Fault::Internal,
            "internal_error",
            message,
        )
    }

    /// The OpenAI error shape: `{"error": {"type", "message", "code"}}`.
    pub fn response(&self) -> Response<Body> {
        self.response_for(ClientApi::OpenAI)
    }

    /// The error shape of the client's API. Anthropic's types follow the status
    /// (`{"type": "error", "error": {"type", "message"}}`).
    pub fn response_for(&self, api: ClientApi) -> Response<Body> {
        let body = match api {
            ClientApi::OpenAI => serde_json::json!({
                "error": {"type": self.kind, "message": self.message, "code": self.status.as_u16().to_string()},
            })
            .to_string()
            .into(),
            ClientApi::Anthropic => aigw_providers::anthropic::reply::error_json(
                aigw_providers::anthropic::reply::error_type(self.status.as_u16()),
                &self.message,
            )
            .into(),
            ClientApi::Cohere => serde_json::json!({ "message": self.message })
                .to_string()
                .into(),
        };
        let mut response = json_response(self.status, body);
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(rate) = self.rate {
            crate::ratelimit::headers(response.headers_mut(), rate);
        }
        if let Some(challenge) = &self.challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, (**challenge).clone());
        }
        response
    }
}

/// A JSON response of `status`.
pub fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The reference's answer when no rule takes the request: a 404 with its exact text, so that
/// what users search for still finds the cause.
pub fn route_not_found() -> Response<Body> {
    let mut response = Response::new(Body::full(Bytes::from_static(
        aigw_table::NOT_FOUND_BODY.as_bytes(),
    )));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}
