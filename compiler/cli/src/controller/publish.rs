//! How data planes get the table: the controller serves it over HTTP, and `aigw serve
//! --table-url` follows it (`aigw_proxy::follow`).
//!
//! `GET /v1/table` answers the newest good table with `ETag: "<sha-256 of its bytes>"`. A
//! follower sends the version it has in `If-None-Match` and `?wait=SECONDS` (at most 60): the
//! answer waits until a newer table is published, else ends the wait with `304 Not Modified`.
//! Before the first good compile the answer is `503` with `Retry-After`. Every replica compiles
//! the same world into the same bytes, so the version is the same whichever replica answers.
//!
//! Also here: `/healthz` (the process is up), `/readyz` (a table is published) and `/v1/status`
//! (leadership, the last compile's revision and its diagnostics as JSON lines, for operators and
//! tests; diagnostics carry no Secret value because the world holds none).

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// One published table.
#[derive(Clone, Debug)]
pub struct Published {
    /// The quoted entity tag: `"<hex sha-256>"`.
    pub etag: Arc<str>,
    pub bytes: Bytes,
}

impl Published {
    pub fn new(bytes: Vec<u8>) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Published {
            etag: format!("\"{hex}\"").into(),
            bytes: bytes.into(),
        }
    }
}

/// What the status endpoint shows.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub leader: bool,
    pub revision: u64,
    pub errors: usize,
    /// The last compile's diagnostics, one JSON object per line.
    pub diagnostics: String,
}

/// The state the server answers from.
#[derive(Clone, Debug)]
pub struct Board {
    pub table: watch::Receiver<Option<Published>>,
    pub report: watch::Receiver<Report>,
}

const MAX_WAIT: Duration = Duration::from_secs(60);

/// Serves `board` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, board: Board) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let board = board.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(board.clone(), req));
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// Binds the table server.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

async fn answer(board: Board, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match req.uri().path() {
        "/v1/table" => table(board.table, &req).await,
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if board.table.borrow().is_some() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "no table yet\n"),
        "/v1/status" => status(&board.report.borrow(), &board.table.borrow()),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(response)
}

async fn table(
    mut table: watch::Receiver<Option<Published>>,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let known = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let wait = wait_of(req.uri().query());
    let fresh = |t: &Option<Published>| {
        t.as_ref()
            .is_some_and(|p| known.as_deref() != Some(&*p.etag))
    };
    if !fresh(&table.borrow_and_update()) && !wait.is_zero() {
        // Wait for a newer table, or for the end of the wait.
        let _ = tokio::time::timeout(wait, table.wait_for(fresh)).await;
    }
    let current = table.borrow().clone();
    match current {
        None => {
            let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "no table yet\n");
            r.headers_mut()
                .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
            r
        }
        Some(p) if known.as_deref() == Some(&*p.etag) => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            etag(&mut r, &p.etag);
            r
        }
        Some(p) => {
            let mut r = Response::new(Full::new(p.bytes.clone()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            etag(&mut r, &p.etag);
            r
        }
    }
}

fn etag(r: &mut Response<Full<Bytes>>, etag: &str) {
    if let Ok(value) = http::HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, value);
    }
}

/// `wait=SECONDS` from the query, at most [`MAX_WAIT`].
fn wait_of(query: Option<&str>) -> Duration {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("wait="))
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::ZERO, |s| Duration::from_secs_f64(s).min(MAX_WAIT))
}

fn status(report: &Report, table: &Option<Published>) -> Response<Full<Bytes>> {
    let diagnostics: Vec<serde_json::Value> = report
        .diagnostics
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let body = serde_json::json!({
        "leader": report.leader,
        "revision": report.revision,
        "errors": report.errors,
        "table": table.as_ref().map(|p| p.etag.trim_matches('"').to_owned()),
        "diagnostics": diagnostics,
    });
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_read_and_bounded() {
        assert_eq!(wait_of(None), Duration::ZERO);
        assert_eq!(wait_of(Some("wait=2")), Duration::from_secs(2));
        assert_eq!(wait_of(Some("a=b&wait=0.5")), Duration::from_millis(500));
        assert_eq!(wait_of(Some("wait=9999")), MAX_WAIT);
        assert_eq!(wait_of(Some("wait=-1")), Duration::ZERO);
        assert_eq!(wait_of(Some("wait=nan")), Duration::ZERO);
    }

    #[test]
    fn the_version_is_the_digest_of_the_bytes() {
        let a = Published::new(b"{}".to_vec());
        assert_eq!(a.etag, Published::new(b"{}".to_vec()).etag);
        assert_ne!(a.etag, Published::new(b"{ }".to_vec()).etag);
        assert_eq!(a.etag.len(), 66);
    }
}
