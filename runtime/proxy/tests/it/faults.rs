//! The upstream fault matrix (issue #21): each fault a backend can have, for whole and streamed
//! requests, on a rule with one backend (the client gets an error in the OpenAI shape, with the
//! status that says what happened) and on a rule with a second priority (the request fails
//! over and is answered by it). `aigw_upstream_faults_total` names each fault.
//!
//! Faults: connection refused (`connect`), a reset before the answer's head (`closed`), 503
//! (`status_5xx`), 429 (`status_429`), headers later than the rule's timeout (`timeout`), and a
//! stream cut after its second delta (the client's stream ends in an error). The provider
//! families' error shapes (Anthropic, Bedrock, Gemini) are `providers.rs`'s and `extproc.rs`'s.

use crate::governance::reqwest_like_get;
use crate::harness::{Harness, chat_body};
use aigw_proxy::Config;
use aigw_testkit::Behavior;
use std::time::Duration;

/// A chat request for `model`, whole or streamed: its status, its body, and which upstream
/// answered (the test upstream labels its answers).
async fn ask(h: &Harness, model: &str, stream: bool) -> (u16, String, Option<String>) {
    let mut body = chat_body(model);
    if stream {
        body["stream"] = serde_json::json!(true);
    }
    let reply = h.post("/v1/chat/completions", body, &[]).await;
    let by = reply.header("x-mock-upstream").map(str::to_owned);
    (reply.status, reply.text().to_owned(), by)
}

async fn faults(h: &Harness, fault: &str) -> u64 {
    fault_count(h.runtime.admin_addr().expect("admin"), fault).await
}

/// `aigw_upstream_faults_total{fault}` of the gateway whose admin listener is `admin`.
pub(crate) async fn fault_count(admin: std::net::SocketAddr, fault: &str) -> u64 {
    let metrics = reqwest_like_get(&format!("http://{admin}/metrics")).await;
    let series = format!("aigw_upstream_faults_total{{fault=\"{fault}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// One fault on backend `a`: what the single-backend rule answers, and that the failover rule
/// is answered by `b`; the fault's counter grows with each.
async fn check(h: &Harness, fault: &str, status: u16) {
    for stream in [false, true] {
        let before = faults(h, fault).await;
        let (got, text, _) = ask(h, "gpt-a", stream).await;
        assert_eq!(got, status, "{fault}, stream {stream}: {text}");
        let error: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert!(
            error["error"]["message"].is_string(),
            "{fault}: the OpenAI error shape: {text}"
        );
        let (got, text, by) = ask(h, "failover", stream).await;
        assert_eq!(got, 200, "{fault}, stream {stream}: failover: {text}");
        assert_eq!(
            by.as_deref(),
            Some("b"),
            "{fault}: answered by the second priority"
        );
        let after = faults(h, fault).await;
        let all = reqwest_like_get(&h.admin_url("/metrics")).await;
        let seen: Vec<&str> = all
            .lines()
            .filter(|l| l.starts_with("aigw_upstream_faults_total"))
            .collect();
        assert!(
            after >= before + 2,
            "{fault}: counted {before} -> {after}: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_fails_over_or_is_a_502() {
    let h = Harness::start_with(Config::loopback(), true).await;
    check(&h, "connect", 502).await;
    h.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_backend_fault_fails_over_or_answers_in_the_clients_shape() {
    let h = Harness::start().await;
    // A stream cut mid-way: the client's stream ends in an error, not as if it were whole.
    h.a.set_behavior(Behavior {
        chunks: Some(5),
        cut_after: Some(2),
        interval: Duration::from_millis(50),
        ..Behavior::default()
    });
    let broken = crate::streaming::stream(&h, "gpt-a", false).await;
    let error = broken.expect_err("the cut stream is not whole");
    assert!(error.contains("the stream broke after"), "{error}");
    h.a.set_behavior(Behavior::default());
    // On a new connection: the cut one is closed.
    let fresh = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let body = bytes::Bytes::from(chat_body("gpt-a").to_string());
    let json = [("content-type", "application/json")];
    let reply =
        crate::harness::send(&fresh, "POST", &h.url("/v1/chat/completions"), body, &json).await;
    assert_eq!(
        (reply.status, reply.header("x-mock-upstream")),
        (200, Some("a")),
        "a serves again"
    );
    h.a.set_behavior(Behavior {
        reset: true,
        ..Behavior::default()
    });
    check(&h, "closed", 502).await;
    h.a.set_behavior(Behavior {
        status: Some(503),
        ..Behavior::default()
    });
    check(&h, "status_5xx", 503).await;
    h.a.set_behavior(Behavior {
        status: Some(429),
        ..Behavior::default()
    });
    check(&h, "status_429", 429).await;

    // Headers later than the rule's request timeout (the `slow` rule: 300 ms): 504.
    h.a.set_behavior(Behavior {
        delay: Duration::from_secs(2),
        ..Behavior::default()
    });
    for stream in [false, true] {
        let before = faults(&h, "timeout").await;
        let (got, text, _) = ask(&h, "slow", stream).await;
        assert_eq!(got, 504, "{text}");
        assert!(faults(&h, "timeout").await > before);
    }

    h.runtime.shutdown().await;
}

/// `n` requests for `model` at once, each answering its status.
fn asking(
    h: &std::sync::Arc<Harness>,
    model: &'static str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<u16>> {
    (0..n)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move { ask(&h, model, false).await.0 })
        })
        .collect()
}

/// Per-backend request slots (`Config::upstream`): two in flight, one waiting. Of four requests
/// at once to a backend that answers after 600 ms, two are sent, one waits and is then sent, and
/// one is refused at once with a 503 (`overflow`); a failover rule sends that one to its second
/// priority instead; a request that waits past its rule's timeout gets a 504.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_a_backends_slots_requests_wait_then_overflow_or_fail_over() {
    let mut config = Config::loopback();
    config.upstream = aigw_proxy::slots::Limits {
        max_requests: 2,
        max_pending: 1,
    };
    let h = std::sync::Arc::new(Harness::start_with(config, false).await);
    h.a.set_behavior(Behavior {
        delay: Duration::from_millis(600),
        ..Behavior::default()
    });
    let started = std::time::Instant::now();
    let mut asked = Vec::new();
    for i in 0..4 {
        let h = h.clone();
        asked.push(tokio::spawn(async move {
            // Staggered, so that the order of arrival is known.
            tokio::time::sleep(Duration::from_millis(40 * i)).await;
            let (status, text, _) = ask(&h, "gpt-a", false).await;
            (status, text, started.elapsed())
        }));
    }
    let mut answers = Vec::new();
    for task in asked {
        answers.push(task.await.expect("task"));
    }
    // Which of them arrives last is the scheduler's to say: count, do not index.
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 503], "{answers:?}");
    let refused = answers.iter().find(|a| a.0 == 503).expect("one refused");
    assert!(
        refused.1.contains("as many requests in flight"),
        "{}",
        refused.1
    );
    assert!(
        refused.2 < Duration::from_millis(550),
        "refused at once, not after a wait: {:?}",
        refused.2
    );
    let slowest = answers.iter().filter(|a| a.0 == 200).map(|a| a.2).max();
    assert!(
        slowest >= Some(Duration::from_millis(1100)),
        "one waited for a slot, then took its 600 ms: {slowest:?}"
    );
    assert!(faults(&h, "overflow").await >= 1);

    // With a's slots taken, a failover rule is answered by b without waiting.
    let seen = h.a.count();
    let busy = asking(&h, "gpt-a", 3);
    // Two sent, one waiting (a's requests take 600 ms).
    while h.a.count() < seen + 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _, by) = ask(&h, "failover", false).await;
    assert_eq!((status, by.as_deref()), (200, Some("b")));
    for task in busy {
        assert_eq!(task.await.expect("task"), 200);
    }

    // Waiting past the rule's timeout (the `slow` rule: 300 ms) is a 504.
    let busy = asking(&h, "gpt-a", 2);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (status, text, _) = ask(&h, "slow", false).await;
    assert_eq!(status, 504, "{text}");
    for task in busy {
        assert_eq!(task.await.expect("task"), 200);
    }
    assert_eq!(
        faults(&h, "overflow").await,
        2,
        "the one refused and the one failed over; the wait past the timeout is a timeout"
    );
}

/// A request that fails over gives the first backend's slot back before it waits for the
/// second's: with one slot each, a request failing over from a (503) to a busy b does not keep
/// a's slot while it waits, so a serves the next request at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_failing_over_waits_for_the_next_slot_holding_none() {
    let mut config = Config::loopback();
    config.upstream = aigw_proxy::slots::Limits {
        max_requests: 1,
        max_pending: 4,
    };
    let h = std::sync::Arc::new(Harness::start_with(config, false).await);
    h.a.set_behavior(Behavior {
        status: Some(503),
        ..Behavior::default()
    });
    h.b.set_behavior(Behavior {
        delay: Duration::from_millis(800),
        ..Behavior::default()
    });
    // b's one slot, busy for 800 ms (`regex-*` is b's alone).
    let busy = asking(&h, "regex-busy", 1);
    while h.b.count() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Fails over from a (503) to b, and waits there.
    let waiting = tokio::spawn({
        let h = h.clone();
        async move { ask(&h, "failover", false).await }
    });
    while h.a.count() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let (status, _, _) = ask(&h, "gpt-a", false).await;
    assert_eq!(status, 503, "a answered itself");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "a's slot was free: {:?}",
        started.elapsed()
    );
    for task in busy {
        assert_eq!(task.await.expect("task"), 200);
    }
    let (status, _, by) = waiting.await.expect("task");
    assert_eq!(
        (status, by.as_deref()),
        (200, Some("b")),
        "then b served it"
    );
}
