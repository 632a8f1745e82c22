//! Server-sent event streams: relayed chunk by chunk, the usage chunk asked for and stripped
//! as the reference does, and a cut stream reaching the client as a cut stream.

use crate::harness::Harness;
use aigw_testkit::Behavior;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::json;
use std::time::{Duration, Instant};

/// Streams a chat completion; returns each data frame with when it arrived.
pub async fn stream(
    gw: &Harness,
    model: &str,
    include_usage: bool,
) -> Result<Vec<(Duration, Bytes)>, String> {
    let mut body =
        json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "count"}]});
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    let request = http::Request::post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let response = gw
        .client
        .request(request)
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != 200 {
        return Err(format!("status {}", response.status()));
    }
    let mut body = response.into_body();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| format!("the stream broke after {} frames: {e}", frames.len()))?;
        if let Ok(data) = frame.into_data() {
            frames.push((started.elapsed(), data));
        }
    }
    Ok(frames)
}

fn text(frames: &[(Duration, Bytes)]) -> String {
    frames
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect()
}

/// The JSON payloads of the events.
fn events(text: &str) -> Vec<serde_json::Value> {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_reach_the_client_as_the_upstream_sends_them() {
    let gw = Harness::start().await;
    gw.a.set_behavior(Behavior {
        chunks: Some(4),
        interval: Duration::from_millis(200),
        ..Behavior::default()
    });
    let frames = stream(&gw, "gpt-a", false).await.expect("stream");
    let all = text(&frames);
    assert!(all.ends_with("data: [DONE]\n\n"), "{all}");
    let deltas: String = events(&all)
        .iter()
        .filter_map(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(deltas, "tok0 tok1 tok2 tok3 ");
    // The first delta arrives long before the last one was sent (600 ms of pacing).
    let first = frames.first().map(|(t, _)| *t).unwrap_or_default();
    let last = frames.last().map(|(t, _)| *t).unwrap_or_default();
    assert!(
        first < Duration::from_millis(300) && last >= Duration::from_millis(550),
        "first {first:?}, last {last:?}"
    );
    assert!(
        !all.contains("\"usage\""),
        "no usage chunk was asked for: {all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_costs_the_usage_chunk_is_asked_for_counted_and_stripped_unless_the_client_asked() {
    let gw = Harness::start().await;
    let all = text(&stream(&gw, "costed", false).await.expect("stream"));
    let sent = gw.a.last().expect("a was called").json();
    assert_eq!(
        sent["stream_options"]["include_usage"], true,
        "the gateway asked for usage"
    );
    assert!(
        events(&all)
            .iter()
            .all(|e| e.get("usage").is_none_or(|u| u.is_null())),
        "the usage chunk was stripped: {all}"
    );
    assert!(all.ends_with("data: [DONE]\n\n"), "{all}");

    let all = text(&stream(&gw, "costed", true).await.expect("stream"));
    let usage: Vec<_> = events(&all)
        .into_iter()
        .filter_map(|e| e.get("usage").filter(|u| !u.is_null()).cloned())
        .collect();
    assert_eq!(
        usage,
        vec![json!({"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13})],
        "{all}"
    );

    let metrics = gw
        .send("GET", &gw.admin_url("/metrics"), Bytes::new(), &[])
        .await;
    assert!(
        metrics
            .text()
            .contains("aigw_usage_tokens_total{backend=\"default/a\",kind=\"total\"} 26"),
        "{}",
        metrics.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_upstream_is_cut_for_the_client() {
    let gw = Harness::start().await;
    gw.a.set_behavior(Behavior {
        chunks: Some(5),
        cut_after: Some(2),
        interval: Duration::from_millis(50),
        ..Behavior::default()
    });
    let error = stream(&gw, "gpt-a", false)
        .await
        .expect_err("the client sees the cut");
    assert!(error.contains("broke after"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_idle_past_its_rule_s_stream_idle_timeout_is_cut_but_a_long_busy_one_is_not() {
    // The `idle` rule has streamIdleTimeout 250ms and no short request timeout.
    let gw = Harness::start().await;
    // Busy: 8 deltas 100 ms apart, 700 ms in all, never idle for 250 ms.
    gw.a.set_behavior(Behavior {
        chunks: Some(8),
        interval: Duration::from_millis(100),
        ..Behavior::default()
    });
    let frames = stream(&gw, "idle", false)
        .await
        .expect("a busy stream longer than the idle timeout completes");
    let all = text(&frames);
    assert!(
        all.contains("tok7 ") && all.ends_with("data: [DONE]\n\n"),
        "{all}"
    );
    assert!(frames.last().map(|(t, _)| *t) >= Some(Duration::from_millis(650)));

    // Stalled: the second delta comes 1 s after the first.
    gw.a.set_behavior(Behavior {
        chunks: Some(3),
        interval: Duration::from_secs(1),
        ..Behavior::default()
    });
    let started = Instant::now();
    let error = stream(&gw, "idle", false)
        .await
        .expect_err("the stalled stream is cut");
    let took = started.elapsed();
    assert!(error.contains("broke after 1 frames"), "{error}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(900),
        "cut after {took:?}"
    );
}
