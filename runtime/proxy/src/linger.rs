//! How the gateway ends a client's connection without losing its last answer.
//!
//! When the server closes a socket with bytes of the client's still unread (the rest of a
//! request body it answered before reading, a head past its limit), the kernel answers them
//! with a reset, and a reset may discard the answer the client has not read yet: a 413, 431
//! or 401 becomes "connection reset by peer" and the upload's writes fail. So a connection
//! the server ends lingers ([`Lingering`]): its write side is shut (the client reads the
//! answer, then end of stream) and what still arrives is read and thrown away until the
//! client closes, for [`LINGER`] at most. This is Envoy's `delayed_close_timeout` (1 s by
//! default). A connection the client ended closes at once, and a lingering socket no longer
//! counts against the listener's connection limit.
//!
//! The other half is [`close_unread`]: an HTTP/1.1 answer sent before the request's body was
//! read to its end says `Connection: close`. hyper closes such a connection after the answer
//! rather than drain the rest of the body; without the header a client would take it for
//! kept alive and send its next request into the closing socket ("server disconnected
//! without a response", at random).

use crate::body::{Body, ReadToEnd};
use http::Response;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// How long a socket the server ended waits for the client to close.
pub const LINGER: Duration = Duration::from_secs(1);

/// Marks `response` `Connection: close` when it is HTTP/1.x and the request's body was not
/// read to its end.
pub fn close_unread(response: &mut Response<Body>, http1: bool, read: &ReadToEnd) {
    if http1 && !read.get() {
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
}

/// A client's socket that lingers when it is dropped (see the module).
pub struct Lingering(Option<TcpStream>);

impl Lingering {
    pub fn new(stream: TcpStream) -> Self {
        Lingering(Some(stream))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(stream) = self.0.take() else { return };
        // The client closed first: nothing can be reset, close now.
        if matches!(stream.try_read(&mut [0u8; 1]), Ok(0)) {
            return;
        }
        // Outside a runtime (or in one shutting down) the socket just closes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream));
        }
    }
}

async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = vec![0u8; 16 << 10];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(1..) = stream.read(&mut sink).await {}
    })
    .await;
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.0 {
            Some(stream) => Pin::new(stream).poll_read(cx, buf),
            // Only once dropped: never seen.
            None => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.0 {
            Some(stream) => Pin::new(stream).poll_write(cx, buf),
            None => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.0 {
            Some(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.0.as_ref().is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.0 {
            Some(stream) => Pin::new(stream).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.0 {
            Some(stream) => Pin::new(stream).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}
