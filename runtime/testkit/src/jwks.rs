//! A loopback JWKS endpoint, as an identity provider publishes its signing keys:
//! `GET /jwks` answers the current JWK set (changed while it runs, for key rotation), or a
//! chosen failure status; every fetch is counted, so tests can see the gateway's cache.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

#[derive(Debug)]
struct State {
    keys: Mutex<serde_json::Value>,
    failing: Mutex<Option<StatusCode>>,
    fetches: AtomicU64,
}

/// The running endpoint; stops when dropped.
#[derive(Debug)]
pub struct JwksServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(keys: serde_json::Value) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            keys: Mutex::new(keys),
            failing: Mutex::new(None),
            fetches: AtomicU64::new(0),
        });
        let shared = state.clone();
        let task = tokio::spawn(crate::serve_each(listener, move |request| {
            let state = shared.clone();
            async move { answer(&state, request.method(), request.uri().path()) }
        }));
        Ok(JwksServer { addr, state, task })
    }

    /// `http://127.0.0.1:<port>/jwks`.
    pub fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    pub fn set_keys(&self, keys: serde_json::Value) {
        *crate::lock(&self.state.keys) = keys;
    }

    /// Answer every fetch with `status` (`None`: serve again).
    pub fn set_failing(&self, status: Option<StatusCode>) {
        *crate::lock(&self.state.failing) = status;
    }

    pub fn fetches(&self) -> u64 {
        self.state.fetches.load(Ordering::Relaxed)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(state: &State, method: &http::Method, path: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    if method != http::Method::GET || path != "/jwks" {
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    }
    state.fetches.fetch_add(1, Ordering::Relaxed);
    if let Some(status) = *crate::lock(&state.failing) {
        *response.status_mut() = status;
        return response;
    }
    let body = crate::lock(&state.keys).to_string();
    *response.body_mut() = Full::new(Bytes::from(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
