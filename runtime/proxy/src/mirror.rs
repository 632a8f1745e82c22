//! Gateway API `RequestMirror` on plain routes: for each mirror that draws the request
//! (`numerator` out of `denominator`), a copy of the request as the rule's backend gets it
//! (path rewritten, headers edited), its `Host` with `-shadow` appended to the host name as
//! Envoy does, sent to one endpoint of the mirror's backend; its answer is read and dropped.
//!
//! The body is teed as it streams: each chunk goes to the mirrors too. A mirror that cannot
//! keep up ([`QUEUE`] chunks waiting) is cut off rather than slowing the request, and one that
//! fails is logged at debug level: a mirror never changes the answer, its status or its timing.
//! A copy ends with the rule's timeout, else [`TIMEOUT`].

use crate::body::{Body, BoxError};
use crate::generation::PlainMirror;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body::Frame;
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Chunks a mirror may fall behind by before it is cut off.
pub const QUEUE: usize = 16;

/// How long a copy may take when its rule has no timeout.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// What the copies are made of: the request as the rule's backend gets it.
pub struct Copy<'a> {
    pub method: &'a Method,
    /// Path and query.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub deadline: Option<Instant>,
}

/// Starts a copy for each mirror that draws this request; returns `body`, teed to them.
pub fn start(mirrors: &[PlainMirror], copy: &Copy<'_>, body: Body) -> Body {
    let mut queues = Vec::new();
    for mirror in mirrors {
        if mirror.numerator == 0 || fastrand::u32(0..mirror.denominator) >= mirror.numerator {
            continue;
        }
        let upstream = &mirror.upstream;
        let Some(base) = fastrand::choice(&upstream.bases) else {
            tracing::debug!(mirror = %upstream.name, "the mirror has no endpoint; no copy sent");
            continue;
        };
        let Ok(uri) = format!("{base}{}", copy.path).parse::<http::Uri>() else {
            continue;
        };
        let (queue, chunks) = mpsc::channel(QUEUE);
        let mut request = Request::new(Body::stream(Queued(chunks)));
        *request.method_mut() = copy.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = copy.headers.clone();
        if let Some(host) = copy.headers.get(http::header::HOST).and_then(shadow) {
            request.headers_mut().insert(http::header::HOST, host);
        }
        let client = upstream.client.clone();
        let name = upstream.name.clone();
        let deadline = copy.deadline.unwrap_or_else(|| Instant::now() + TIMEOUT);
        tokio::spawn(async move {
            let sent = async {
                let answer = client.request(request).await?;
                let status = answer.status();
                // Read to the end, so the connection can serve again.
                let _ = answer.into_body().collect().await;
                Ok::<_, hyper_util::client::legacy::Error>(status)
            };
            match tokio::time::timeout_at(deadline, sent).await {
                Ok(Ok(status)) => tracing::debug!(mirror = %name, %status, "mirrored"),
                Ok(Err(error)) => {
                    let why = crate::upstream::describe(&error);
                    tracing::debug!(mirror = %name, %why, "the mirror failed");
                }
                Err(_) => tracing::debug!(mirror = %name, "the mirror timed out"),
            }
        });
        queues.push(queue);
    }
    if queues.is_empty() {
        return body;
    }
    Body::stream(Tee {
        inner: body,
        queues,
    })
}

/// `host[:port]` as a mirror gets it: `host-shadow[:port]`.
fn shadow(host: &HeaderValue) -> Option<HeaderValue> {
    let host = host.to_str().ok()?;
    // A port follows the last `:` unless that `:` is inside an IPv6 address.
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']')) =>
        {
            (name, Some(port))
        }
        _ => (host, None),
    };
    let shadowed = match port {
        Some(port) => format!("{name}-shadow:{port}"),
        None => format!("{name}-shadow"),
    };
    HeaderValue::from_str(&shadowed).ok()
}

/// The request body, each chunk handed to the mirrors' queues too.
struct Tee {
    inner: Body,
    queues: Vec<mpsc::Sender<Result<Frame<Bytes>, BoxError>>>,
}

impl http_body::Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    // A full or closed queue: that mirror is cut off (dropping its sender
                    // ends its body early, and its request fails).
                    this.queues
                        .retain(|q| q.try_send(Ok(Frame::data(data.clone()))).is_ok());
                }
            }
            Some(Err(error)) => {
                for queue in this.queues.drain(..) {
                    let _ = queue.try_send(Err(error.to_string().into()));
                }
            }
            // The end: dropping the senders ends the copies' bodies.
            None => this.queues.clear(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tee {
    /// A body dropped before its end (the request failed or was refused): the copies must not
    /// end as if it were whole.
    fn drop(&mut self) {
        for queue in self.queues.drain(..) {
            let _ = queue.try_send(Err("the request ended before its body did".into()));
        }
    }
}

/// A mirror's copy of the body, fed by the [`Tee`].
struct Queued(mpsc::Receiver<Result<Frame<Bytes>, BoxError>>);

impl http_body::Body for Queued {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shadow_suffix_goes_on_the_host_name_before_the_port() {
        let shadowed = |h: &str| {
            shadow(&HeaderValue::from_str(h).expect("a header value"))
                .map(|v| v.to_str().expect("text").to_owned())
        };
        assert_eq!(
            shadowed("api.example.com").as_deref(),
            Some("api.example.com-shadow")
        );
        assert_eq!(
            shadowed("api.example.com:8080").as_deref(),
            Some("api.example.com-shadow:8080")
        );
        assert_eq!(shadowed("[::1]:8080").as_deref(), Some("[::1]-shadow:8080"));
        assert_eq!(shadowed("::1").as_deref(), Some("::1-shadow"));
    }
}
