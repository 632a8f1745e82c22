//! Hostile peers (issue #21), over raw TCP where the client misbehaves, so that nothing
//! between the test and the gateway tidies what is sent:
//! - a request head that trickles in (closed at the header timeout), a kept-alive connection
//!   idle past it (closed too), a head too large (431);
//! - a request with both `Content-Length` and `Transfer-Encoding` (never passed on as two);
//! - JSON nested 100,000 deep (passed on as bytes where only `model` is read, a 400 in the
//!   client API's shape where it must be built);
//! - an answer sent before the request's body was read (says `Connection: close`, so no client
//!   sends its next request into the closing connection), where one sent after keeps it; an
//!   upload of 32 MiB answered before it is read gets its answer, not a reset (the connection
//!   lingers);
//! - a listener at its connection limit (new clients wait, then are served);
//! - an upstream event that never ends (cut at 32 MiB), a stream that keeps going past its
//!   rule's request timeout (cut then).
//!
//! After each, the gateway still serves an ordinary request.

use crate::harness::{Harness, chat_body};
use aigw_proxy::{Config, Limits};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn limits() -> Config {
    Config {
        limits: Limits {
            max_connections: 2,
            max_header_bytes: 16 << 10,
            header_timeout: Duration::from_millis(300),
        },
        ..Config::loopback()
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
}

/// Writes `head` and `body`, then reads until the server closes or `wait` passes.
fn exchange(stream: &mut TcpStream, head: &str, body: &[u8]) -> String {
    stream.write_all(head.as_bytes()).expect("head written");
    stream.write_all(body).expect("body written");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn chat_head(addr: SocketAddr, length: usize, extra: &str) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{extra}Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}

/// `answer` is a 404 that says its connection closes.
fn assert_closing_404(answer: &str) {
    let head = answer.split("\r\n\r\n").next().unwrap_or_default();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 404"), "{answer}");
    assert!(head.contains("\r\nconnection: close"), "{answer}");
}

/// An ordinary chat completion still answers 200.
async fn still_serves(h: &Harness) {
    let reply = h.chat("gpt-a").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_that_trickles_in_is_closed_at_the_timeout() {
    let h = Harness::start_with(limits(), false).await;
    let addr = h.runtime.addr(8080).expect("port");
    let started = Instant::now();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = connect(addr);
        stream
            .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            .expect("partial head");
        // One more header line every 100 ms: the head never ends.
        let mut answer = Vec::new();
        for i in 0..30 {
            std::thread::sleep(Duration::from_millis(100));
            if stream
                .write_all(format!("x-slow-{i}: y\r\n").as_bytes())
                .is_err()
            {
                break;
            }
        }
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .expect("joined");
    // The head would take 3 s to trickle in; the gateway closes the connection at 300 ms.
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "closed after {took:?}: {answer:?}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(
        h.c.requests().is_empty() && h.a.requests().is_empty(),
        "nothing went upstream"
    );
    still_serves(&h).await;
    h.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_idle_past_the_head_time_is_closed() {
    let h = Harness::start_with(limits(), false).await;
    let addr = h.runtime.addr(8080).expect("port");
    let (answered, idle) = tokio::task::spawn_blocking(move || {
        let mut stream = connect(addr);
        let head = format!("GET /v1/models HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        stream.write_all(head.as_bytes()).expect("head written");
        let mut answer = vec![0u8; 64 << 10];
        let read = stream.read(&mut answer).expect("an answer");
        let started = Instant::now();
        let answered = String::from_utf8_lossy(&answer[..read]).into_owned();
        // The connection is kept; nothing more is sent until the server closes it.
        while stream.read(&mut answer).expect("the server closes") > 0 {}
        (answered, started.elapsed())
    })
    .await
    .expect("joined");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert!(
        !answered.to_ascii_lowercase().contains("connection: close"),
        "{answered}"
    );
    assert!(
        idle >= Duration::from_millis(250),
        "closed after {idle:?}, not at the head's time"
    );
    assert!(idle < Duration::from_secs(4), "closed after {idle:?}");
    h.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_too_large_is_431() {
    let h = Harness::start_with(limits(), false).await;
    let addr = h.runtime.addr(8080).expect("port");
    let answer = tokio::task::spawn_blocking(move || {
        let body = serde_json::to_vec(&chat_body("gpt-a")).expect("json");
        let big = format!("x-big: {}\r\n", "a".repeat(64 << 10));
        exchange(
            &mut connect(addr),
            &chat_head(addr, body.len(), &big),
            &body,
        )
    })
    .await
    .expect("joined");
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    still_serves(&h).await;
    h.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_and_chunked_together_are_refused() {
    let h = Harness::start_with(limits(), false).await;
    let addr = h.runtime.addr(8080).expect("port");
    let answer = tokio::task::spawn_blocking(move || {
        let body = serde_json::to_vec(&chat_body("gpt-a")).expect("json");
        // A smuggling attempt: the chunked body ends at once, and a second request hides in
        // what `Content-Length` would count.
        let hidden = format!(
            "0\r\n\r\nPOST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            String::from_utf8_lossy(&body)
        );
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
            hidden.len()
        );
        exchange(&mut connect(addr), &head, hidden.as_bytes())
    })
    .await
    .expect("joined");
    let answers = answer.matches("HTTP/1.1 ").count();
    assert!(answers <= 1, "one request, one answer at most: {answer}");
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    let upstream = h.a.requests().len() + h.b.requests().len() + h.c.requests().len();
    assert_eq!(upstream, 0, "no request reached an upstream");
    still_serves(&h).await;
    h.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_the_body_is_read_says_the_connection_closes() {
    let h = Harness::start_with(limits(), false).await;
    let addr = h.runtime.addr(8080).expect("port");
    let (early, kept) = tokio::task::spawn_blocking(move || {
        // No route takes this path: the 404 is answered with the body still on its way.
        let head = format!(
            "POST /nowhere HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
        );
        let early = exchange(&mut connect(addr), &head, b"");
        // Read whole before the answer: the connection stays open for the next request.
        let body = serde_json::to_vec(&chat_body("gpt-a")).expect("json");
        let keep = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut stream = connect(addr);
        stream.write_all(keep.as_bytes()).expect("head written");
        stream.write_all(&body).expect("body written");
        let kept = exchange(&mut stream, &chat_head(addr, body.len(), ""), &body);
        (early, kept)
    })
    .await
    .expect("joined");
    assert_closing_404(&early);
    assert_eq!(kept.matches("HTTP/1.1 200").count(), 2, "{kept}");
    let first = kept
        .split("HTTP/1.1 200")
        .nth(1)
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(!first.contains("connection: close"), "{kept}");
    still_serves(&h).await;
    h.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_answered_before_it_is_read_gets_its_answer_not_a_reset() {
    let h = Harness::start_with(limits(), false).await;
    let addr = h.runtime.addr(8080).expect("port");
    let answer = tokio::task::spawn_blocking(move || {
        // Far more than the kernel's buffers hold: without lingering, the server's close
        // resets the connection while this is still being written.
        let upload = vec![b'x'; 32 << 20];
        let head = format!(
            "POST /nowhere HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            upload.len()
        );
        exchange(&mut connect(addr), &head, &upload)
    })
    .await
    .expect("joined");
    assert_closing_404(&answer);
    still_serves(&h).await;
    h.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nested_100k_deep_is_passed_on_or_refused_never_built() {
    let h = Harness::start_with(limits(), false).await;
    let deep = |model: &str| {
        format!(
            "{{\"model\":\"{model}\",\"messages\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        )
    };
    let url = h.url("/v1/chat/completions");
    let json = [("content-type", "application/json")];
    // A passthrough reads only `model` (the rest is skipped, not built) and sends the bytes on.
    let passed = h.send("POST", &url, deep("gpt-a").into(), &json).await;
    assert_eq!(passed.status, 200, "{}", passed.text());
    let seen = h.a.last().expect("a got it");
    assert_eq!(seen.body.len(), deep("gpt-a").len(), "unchanged");
    // A route that rewrites the body must build it: serde_json's depth limit makes that a 400
    // in the client API's shape, before anything is sent.
    let before = h.a.requests().len() + h.b.requests().len() + h.c.requests().len();
    let refused = h.send("POST", &url, deep("override").into(), &json).await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.json()["error"]["message"].is_string(),
        "{}",
        refused.text()
    );
    let after = h.a.requests().len() + h.b.requests().len() + h.c.requests().len();
    assert_eq!(before, after, "nothing was sent for it");
    still_serves(&h).await;
    h.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_limit_clients_wait_then_are_served() {
    connection_limit(limits()).await;
}

/// The limit is the listener's, whichever of its per-core workers accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_holds_across_per_core_workers() {
    let mut config = limits();
    config.workers = 2;
    connection_limit(config).await;
}

async fn connection_limit(config: aigw_proxy::Config) {
    let h = Harness::start_with(config, false).await;
    let addr = h.runtime.addr(8080).expect("port");
    let served = tokio::task::spawn_blocking(move || {
        // Two idle keep-alive connections hold both slots.
        let first = connect(addr);
        let second = connect(addr);
        std::thread::sleep(Duration::from_millis(100));
        let body = serde_json::to_vec(&chat_body("gpt-a")).expect("json");
        let mut third = connect(addr);
        third
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        third
            .write_all(chat_head(addr, body.len(), "").as_bytes())
            .expect("head");
        third.write_all(&body).expect("body");
        let mut byte = [0u8; 1];
        let waited = third.read(&mut byte).is_err();
        // A slot frees: the waiting client is accepted and served.
        drop(first);
        third
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut answer = Vec::new();
        let _ = third.read_to_end(&mut answer);
        drop(second);
        (waited, String::from_utf8_lossy(&answer).into_owned())
    })
    .await
    .expect("joined");
    let (waited, answer) = served;
    assert!(
        waited,
        "the third client is not served while two connections hold the slots"
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "then it is: {answer}");
    h.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_event_that_never_ends_is_cut_at_the_limit() {
    use http_body_util::BodyExt;
    let h = Harness::start_with(limits(), false).await;
    h.a.set_behavior(aigw_testkit::Behavior {
        endless_event: true,
        ..aigw_testkit::Behavior::default()
    });
    let mut body = chat_body("gpt-a");
    body["stream"] = serde_json::json!(true);
    let request = http::Request::post(h.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .expect("request");
    let response = h.client.request(request).await.expect("the head arrives");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let (mut received, mut failed) = (Vec::new(), false);
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => received.extend_from_slice(frame.data_ref().map_or(&[][..], |d| d)),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.contains("tok0"),
        "the events before it are relayed: {text}"
    );
    assert!(
        failed,
        "the stream ends in an error, not as if it were whole"
    );
    assert!(
        received.len() < 1 << 20,
        "the unfinished event is held, never passed on in pieces: {} bytes",
        received.len()
    );
    h.a.set_behavior(aigw_testkit::Behavior::default());
    still_serves(&h).await;
    h.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_keeps_going_is_cut_at_the_request_timeout() {
    // The `slow` rule's request timeout is 300 ms; the upstream streams a delta every 50 ms,
    // never idle, for 5 s.
    let h = Harness::start_with(limits(), false).await;
    h.a.set_behavior(aigw_testkit::Behavior {
        chunks: Some(100),
        interval: Duration::from_millis(50),
        ..aigw_testkit::Behavior::default()
    });
    let started = Instant::now();
    let error = crate::streaming::stream(&h, "slow", false)
        .await
        .expect_err("the stream is cut");
    let took = started.elapsed();
    assert!(error.contains("the stream broke after"), "{error}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "cut after {took:?}"
    );
    h.a.set_behavior(aigw_testkit::Behavior::default());
    still_serves(&h).await;
    h.runtime.shutdown().await;
}
