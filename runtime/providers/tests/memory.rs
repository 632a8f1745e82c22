//! Flat memory on long streams: a translated stream of 10,000 provider events holds no more
//! memory after the last event than after the hundredth (the client's bytes are taken as they
//! come, as the relay does). A counting global allocator (`cap`) measures the live bytes; this file is
//! its own test binary so that no other test allocates meanwhile.
#![expect(clippy::expect_used, clippy::panic, reason = "test code")]

use aigw_providers::{ClientRequest, Ids, Operation, Schema, Target, Translation};
use bytes::BytesMut;
use cap::Cap;
use std::alloc::System;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

fn live() -> isize {
    ALLOCATOR.allocated() as isize
}

const EVENTS: usize = 10_000;

/// A provider stream: what opens it, the one event repeated, and what ends it.
struct Stream<'a> {
    head: &'a [u8],
    event: &'a [u8],
    tail: &'a [u8],
}

/// Feeds `events` one by one; returns the live bytes after 100 events and after all, and the
/// client bytes written.
fn live_bytes(schema: Schema, stream: &Stream<'_>) -> (isize, isize, usize) {
    let Stream { head, event, tail } = *stream;
    let body = serde_json::json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}],
        "stream": true, "stream_options": {"include_usage": true},
    });
    let target = Target {
        schema,
        model: "m",
        version: None,
        gcp: Some(("p", "r")),
        prefix: "/v1",
    };
    let body = serde_json::to_vec(&body).expect("json");
    let Ok(Translation::Translated { response, .. }) = aigw_providers::translate(
        &ClientRequest::openai(Operation::ChatCompletions, &body),
        &target,
    ) else {
        panic!("{schema:?} translates");
    };
    let ids = Ids {
        id: "chatcmpl-memory".into(),
        created: 0,
    };
    let mut stream = response.stream(ids);
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut written = 0;
    stream.feed(head, &mut out);
    let mut at_100 = 0;
    for n in 0..EVENTS {
        stream.feed(event, &mut out);
        written += out.len();
        out.clear(); // the relay sends the bytes on
        if n == 100 {
            at_100 = live();
        }
    }
    let at_end = live();
    stream.feed(tail, &mut out);
    stream.finish(&mut out);
    written += out.len();
    assert!(
        out.ends_with(b"data: [DONE]\n\n"),
        "{schema:?} ended cleanly"
    );
    (at_100, at_end, written)
}

#[test]
fn ten_thousand_events_hold_no_more_memory_than_a_hundred() {
    let anthropic_head = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_vec();
    let anthropic_event =
        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"word \"}}\n\n".to_vec();
    let anthropic_tail = b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":10001}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_vec();

    let frame = |line: &str| aigw_testkit::event_stream(line);
    let bedrock_head = frame(r#"{"event":"messageStart","payload":{"role":"assistant"}}"#);
    let bedrock_event = frame(
        r#"{"event":"contentBlockDelta","payload":{"contentBlockIndex":0,"delta":{"text":"word "}}}"#,
    );
    let bedrock_tail = frame(concat!(
        r#"{"event":"messageStop","payload":{"stopReason":"end_turn"}}"#,
        "\n",
        r#"{"event":"metadata","payload":{"usage":{"inputTokens":3,"outputTokens":10001,"totalTokens":10004},"metrics":{"latencyMs":1}}}"#
    ));

    let gemini_event =
        b"data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"word \"}]}}],\"responseId\":\"r1\"}\r\n\r\n".to_vec();
    let gemini_tail = b"data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\".\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":10001,\"totalTokenCount\":10004}}\r\n\r\n".to_vec();

    let stream = |head, event, tail| Stream { head, event, tail };
    let cases = [
        (
            Schema::Anthropic,
            stream(&anthropic_head, &anthropic_event, &anthropic_tail),
        ),
        (
            Schema::AWSBedrock,
            stream(&bedrock_head, &bedrock_event, &bedrock_tail),
        ),
        (
            Schema::GCPVertexAI,
            stream(b"", &gemini_event, &gemini_tail),
        ),
    ];
    for (schema, stream) in &cases {
        let schema = *schema;
        let (at_100, at_end, written) = live_bytes(schema, stream);
        let growth = at_end - at_100;
        eprintln!(
            "{schema:?}: {EVENTS} events, {written} client bytes, live bytes after 100 events {at_100}, after {EVENTS} {at_end} (growth {growth})"
        );
        assert!(written > EVENTS * 100, "{schema:?} wrote every chunk");
        assert!(
            growth <= 0,
            "{schema:?}: {growth} bytes more live after {EVENTS} events than after 100"
        );
    }
}
