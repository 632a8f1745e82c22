//! The SecurityPolicy `cors`, as Envoy's CORS filter applies it for Envoy Gateway, ahead of
//! authentication (a browser's preflight carries no credentials):
//! - a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered
//!   here with 200 and no body: the allowed methods, headers (`*` echoes what was asked),
//!   `max-age`, and, when the origin is allowed, the origin echoed (never a literal `*`) and
//!   `allow-credentials` when enabled;
//! - an answer to a request from an allowed origin gets the echoed origin, the exposed
//!   headers and `allow-credentials`.
//!
//! Origins match exactly, or with each `*` standing for any run of characters
//! (`https://*.example.com` takes any depth of subdomain, not the bare domain).

use crate::body::Body;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

#[derive(Debug)]
pub struct Cors {
    origins: Vec<String>,
    methods: Option<HeaderValue>,
    methods_any: bool,
    headers: Option<HeaderValue>,
    headers_any: bool,
    expose: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    credentials: bool,
}

fn joined(list: &[String]) -> (Option<HeaderValue>, bool) {
    let any = list.iter().any(|v| v == "*");
    let text = if any { "*".to_owned() } else { list.join(", ") };
    (
        (!list.is_empty())
            .then(|| HeaderValue::from_str(&text).ok())
            .flatten(),
        any,
    )
}

impl Cors {
    pub fn compile(wire: &aigw_table::Cors) -> Self {
        let (methods, methods_any) = joined(&wire.allow_methods);
        let (headers, headers_any) = joined(&wire.allow_headers);
        let (expose, _) = joined(&wire.expose_headers);
        Cors {
            origins: wire.allow_origins.clone(),
            methods,
            methods_any,
            headers,
            headers_any,
            expose,
            max_age: wire.max_age_s.map(HeaderValue::from),
            credentials: wire.allow_credentials,
        }
    }

    fn allowed<'h>(&self, headers: &'h HeaderMap) -> Option<&'h HeaderValue> {
        headers
            .get(header::ORIGIN)
            .filter(|origin| self.allows(origin))
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        let Ok(text) = origin.to_str() else {
            return false;
        };
        self.origins
            .iter()
            .any(|pattern| crate::callers::glob(pattern, text))
    }

    /// The answer to a preflight.
    pub fn preflight(&self, request: &HeaderMap) -> Response<Body> {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::OK;
        let out = response.headers_mut();
        if let Some(origin) = self.allowed(request) {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            if self.credentials {
                out.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
        }
        let asked_method = request.get(header::ACCESS_CONTROL_REQUEST_METHOD);
        match (&self.methods, self.methods_any) {
            (_, true) => {
                if let Some(m) = asked_method {
                    out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, m.clone());
                }
            }
            (Some(m), false) => {
                out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, m.clone());
            }
            _ => {}
        }
        let asked_headers = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS);
        match (&self.headers, self.headers_any) {
            (_, true) => {
                if let Some(h) = asked_headers {
                    out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
                }
            }
            (Some(h), false) => {
                out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
            }
            _ => {}
        }
        if let Some(expose) = &self.expose {
            out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
        if let Some(age) = &self.max_age {
            out.insert(header::ACCESS_CONTROL_MAX_AGE, age.clone());
        }
        response
    }

    /// An answer to a request from `origin`, marked for the browser when it is allowed.
    pub fn decorate(&self, origin: &HeaderValue, response: &mut HeaderMap) {
        if !self.allows(origin) {
            return;
        }
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if self.credentials {
            response.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose {
            response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}

/// Whether a request is a CORS preflight.
pub fn is_preflight(method: &http::Method, headers: &HeaderMap) -> bool {
    method == http::Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}
