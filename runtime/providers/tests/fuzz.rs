//! Property-based fuzzing of the translation crate (issue #21), on the stable toolchain:
//! proptest mutates real inputs (the request cases of `testdata/translate` and the canned
//! provider replies of `testdata/upstream`: byte overwrites, insertions, a cut) and feeds them,
//! split anywhere, to every translator. The properties: nothing panics, and an SSE stream
//! split differently frames into the same events. A third target builds Bedrock event streams
//! that are valid in structure (prelude, headers and checksums right, payloads mutated), so
//! that the translators behind the frame decoder are reached, and checks that their answer does
//! not depend on how the bytes were split.
//!
//! `AIGW_FUZZ_CASES` sets the cases per property (64 by default, which the test command and
//! CI run); `cargo xtask fuzz` runs many more. A failing case is shrunk and saved under
//! `proptest-regressions/`, which is committed: saved cases run first, every time.

#![expect(clippy::expect_used, reason = "a test: a missing fixture fails it")]

use aigw_providers::sse::Framer;
use aigw_providers::{
    ClientApi, ClientRequest, Ids, Operation, Schema, Target, Translation, translate,
};
use bytes::BytesMut;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

const SCHEMAS: [Schema; 8] = [
    Schema::OpenAI,
    Schema::AzureOpenAI,
    Schema::AWSBedrock,
    Schema::AWSAnthropic,
    Schema::GCPVertexAI,
    Schema::GCPAnthropic,
    Schema::Anthropic,
    Schema::Cohere,
];

const OPERATIONS: [Operation; 7] = [
    Operation::ChatCompletions,
    Operation::Completions,
    Operation::Embeddings,
    Operation::Responses,
    Operation::Messages,
    Operation::CountTokens,
    Operation::Rerank,
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// The bytes of every file below `dir` whose extension is one of `extensions`, sorted by path.
fn seeds(dir: &Path, extensions: &[&str]) -> Vec<Vec<u8>> {
    aigw_testkit::files_below(dir, extensions)
        .iter()
        .map(|p| std::fs::read(p).expect("seed"))
        .collect()
}

/// A request case and what it is: `testdata/translate/<client api>/<operation>_<case>.json`.
struct Case {
    api: ClientApi,
    operation: Operation,
    body: Vec<u8>,
}

fn cases() -> Vec<Case> {
    aigw_testkit::files_below(&root().join("translate"), &["json"])
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let anthropic = path.parent().is_some_and(|p| p.ends_with("anthropic"));
            let (api, operation) = match (anthropic, name.split('_').next()) {
                (true, Some("count")) => (ClientApi::Anthropic, Operation::CountTokens),
                (true, _) => (ClientApi::Anthropic, Operation::Messages),
                (false, Some("embeddings")) => (ClientApi::OpenAI, Operation::Embeddings),
                (false, _) => (ClientApi::OpenAI, Operation::ChatCompletions),
            };
            Case {
                api,
                operation,
                body: std::fs::read(&path).expect("seed"),
            }
        })
        .collect()
}

static CASES: LazyLock<Vec<Case>> = LazyLock::new(cases);
static REQUESTS: LazyLock<Vec<Vec<u8>>> =
    LazyLock::new(|| CASES.iter().map(|c| c.body.clone()).collect());
static REPLIES: LazyLock<Vec<Vec<u8>>> =
    LazyLock::new(|| seeds(&root().join("upstream"), &["json"]));
static STREAMS: LazyLock<Vec<Vec<u8>>> =
    LazyLock::new(|| seeds(&root().join("upstream"), &["sse", "jsonl"]));

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: aigw_testkit::fuzz_cases(64),
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

/// A seed, mutated: bytes overwritten, bytes inserted, and maybe cut short.
#[derive(Clone, Debug)]
struct Mutation {
    seed: usize,
    overwrite: Vec<(usize, u8)>,
    insert: Vec<(usize, Vec<u8>)>,
    cut: Option<usize>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        any::<u8>(),
        Just(b'"'),
        Just(b'{'),
        Just(b'}'),
        Just(b'['),
        Just(b'\n'),
        Just(b'\\'),
        Just(0xff),
    ];
    let fragment = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..8),
        Just(b"\"content\":null,".to_vec()),
        Just(b"{\"type\":\"tool_use\"}".to_vec()),
        Just(b"data: {}\n\n".to_vec()),
        Just(b"[[[[[[[[".to_vec()),
        Just("é😀".as_bytes().to_vec()),
        Just(b"-1e999".to_vec()),
        Just(b"18446744073709551615".to_vec()),
        Just(b"\"input_tokens\":18446744073709551615,".to_vec()),
    ];
    let changed = (
        any::<usize>(),
        prop::collection::vec((any::<usize>(), interesting), 0..6),
        prop::collection::vec((any::<usize>(), fragment), 0..3),
        prop::option::of(any::<usize>()),
    )
        .prop_map(|(seed, overwrite, insert, cut)| Mutation {
            seed,
            overwrite,
            insert,
            cut,
        });
    // Half the cases keep the seed whole, so that what follows a valid request (the answer's
    // translation) is reached as often as the refusals.
    let whole = any::<usize>().prop_map(|seed| Mutation {
        seed,
        overwrite: Vec::new(),
        insert: Vec::new(),
        cut: None,
    });
    prop_oneof![whole, changed]
}

impl Mutation {
    fn apply(&self, seeds: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = seeds[self.seed % seeds.len()].clone();
        for (at, byte) in &self.overwrite {
            if !bytes.is_empty() {
                let len = bytes.len();
                bytes[at % len] = *byte;
            }
        }
        for (at, fragment) in &self.insert {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, fragment.iter().copied());
        }
        if let Some(cut) = self.cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        bytes
    }
}

fn target(schema: Schema) -> Target<'static> {
    Target {
        schema,
        model: "fuzz-model",
        version: Some("2024-10-21"),
        gcp: Some(("project", "region")),
        prefix: "/v1",
    }
}

fn ids() -> Ids {
    Ids {
        id: "chatcmpl-fuzz".into(),
        created: 1_700_000_000,
    }
}

/// `bytes` in pieces at the given cut points.
fn pieces<'b>(bytes: &'b [u8], splits: &[usize]) -> Vec<&'b [u8]> {
    let mut points: Vec<usize> = splits.iter().map(|s| s % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for point in points {
        out.push(&bytes[start..point]);
        start = point;
    }
    out.push(&bytes[start..]);
    out
}

proptest! {
    #![proptest_config(config())]

    /// Any request body, for any client API, operation and backend schema: translated or
    /// refused, never a panic; and what a translation answers with, fed any reply, whole or
    /// streamed in any pieces, is translated or refused too.
    #[test]
    fn requests_and_their_answers_never_panic(
        request in mutation(),
        reply in mutation(),
        stream in mutation(),
        schema in 0..SCHEMAS.len(),
        // Mostly the case's own API and operation; now and then another, as a client that
        // sends a body to the wrong endpoint does.
        other in prop::option::weighted(0.1, (0..OPERATIONS.len(), 0..3usize)),
        splits in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let body = request.apply(&REQUESTS);
        let case = &CASES[request.seed % CASES.len()];
        let (api, operation) = match other {
            Some((operation, api)) => (
                [ClientApi::OpenAI, ClientApi::Anthropic, ClientApi::Cohere][api],
                OPERATIONS[operation],
            ),
            None => (case.api, case.operation),
        };
        let client = ClientRequest {
            api,
            operation,
            body: &body,
            anthropic_beta: Some("fuzz-beta"),
        };
        let Ok(Translation::Translated { response, .. }) = translate(&client, &target(SCHEMAS[schema])) else {
            return Ok(());
        };
        let _ = response.response(&reply.apply(&REPLIES), &ids());
        let _ = response.error(400, None, &reply.apply(&REPLIES));
        let streamed = stream.apply(&STREAMS);
        let mut translator = response.stream(ids());
        let mut out = BytesMut::new();
        for piece in pieces(&streamed, &splits) {
            translator.feed(piece, &mut out);
            prop_assert!(translator.pending() <= streamed.len());
        }
        translator.finish(&mut out);
        let _ = translator.usage();
    }

    /// Any bytes, split anywhere, frame into the same events as when they come whole.
    #[test]
    fn sse_framing_does_not_depend_on_the_split(
        stream in mutation(),
        splits in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let bytes = stream.apply(&STREAMS);
        let frame = |pieces: Vec<&[u8]>| {
            let mut framer = Framer::default();
            let mut events = Vec::new();
            for piece in pieces {
                framer.push(piece);
                while let Some(e) = framer.next_event(false) {
                    events.push((e.name, e.data));
                }
            }
            while let Some(e) = framer.next_event(true) {
                events.push((e.name, e.data));
            }
            events
        };
        prop_assert_eq!(frame(vec![&bytes[..]]), frame(pieces(&bytes, &splits)));
    }
}

/// The kinds of message a Bedrock stream carries: `:message-type`, the header naming it, and
/// its name (the Converse stream's events, InvokeModel's `chunk`, exceptions and errors).
const FRAME_KINDS: [(&str, &str, &str); 10] = [
    ("event", ":event-type", "messageStart"),
    ("event", ":event-type", "contentBlockStart"),
    ("event", ":event-type", "contentBlockDelta"),
    ("event", ":event-type", "contentBlockStop"),
    ("event", ":event-type", "messageStop"),
    ("event", ":event-type", "metadata"),
    ("event", ":event-type", "chunk"),
    ("exception", ":exception-type", "throttlingException"),
    ("exception", ":exception-type", "validationException"),
    ("error", ":error-code", "InternalFailure"),
];

/// The payloads of the Bedrock stream seeds (`testdata/upstream/bedrock/*.jsonl`), and the
/// Anthropic stream's events as InvokeModel wraps them (`{"bytes": base64}`).
static PAYLOADS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    use base64::Engine as _;
    let mut payloads = Vec::new();
    for seed in seeds(&root().join("upstream/bedrock"), &["jsonl"]) {
        for line in String::from_utf8_lossy(&seed).lines() {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
                payloads.push(value["payload"].to_string().into_bytes());
            }
        }
    }
    for seed in seeds(&root().join("upstream/anthropic"), &["sse"]) {
        for data in String::from_utf8_lossy(&seed)
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
        {
            let bytes = base64::engine::general_purpose::STANDARD.encode(data);
            payloads.push(
                serde_json::json!({ "bytes": bytes })
                    .to_string()
                    .into_bytes(),
            );
        }
    }
    payloads
});

/// Frames whose prelude, headers and checksums are right (so the decoder gets past them and
/// the translators see the messages), each of a kind from [`FRAME_KINDS`] with a mutated seed
/// payload.
fn frames(messages: &[(usize, Mutation)]) -> Vec<u8> {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let mut out = Vec::new();
    for (kind, payload) in messages {
        let (message_type, name_header, name) = FRAME_KINDS[kind % FRAME_KINDS.len()];
        let message = Message::new(payload.apply(&PAYLOADS))
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String(message_type.into()),
            ))
            .add_header(Header::new(name_header, HeaderValue::String(name.into())))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ));
        write_message_to(&message, &mut out).expect("a message encodes");
    }
    out
}

proptest! {
    #![proptest_config(config())]

    /// A Bedrock event stream that is valid in structure, with any payloads, split anywhere,
    /// through the Converse and InvokeModel translations for OpenAI and Anthropic clients: no
    /// panic, nothing held past what came, and the same answer however it was split.
    #[test]
    fn bedrock_event_streams_translate_the_same_however_split(
        messages in prop::collection::vec((any::<usize>(), mutation()), 0..12),
        splits in prop::collection::vec(any::<usize>(), 0..16),
        schema in prop::sample::select(vec![Schema::AWSBedrock, Schema::AWSAnthropic]),
        anthropic_client in any::<bool>(),
    ) {
        let bytes = frames(&messages);
        let (api, operation, body) = if anthropic_client {
            (ClientApi::Anthropic, Operation::Messages, &br#"{"model":"m","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#[..])
        } else {
            (ClientApi::OpenAI, Operation::ChatCompletions, &br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#[..])
        };
        let client = ClientRequest { api, operation, body, anthropic_beta: None };
        let Ok(Translation::Translated { response, .. }) = translate(&client, &target(schema)) else {
            return Err(TestCaseError::fail("a streamed chat request translates"));
        };
        let run = |pieces: Vec<&[u8]>| {
            let mut translator = response.stream(ids());
            let mut out = BytesMut::new();
            for piece in pieces {
                translator.feed(piece, &mut out);
                assert!(translator.pending() <= bytes.len());
            }
            translator.finish(&mut out);
            (out, translator.usage())
        };
        let (whole, usage) = run(vec![&bytes[..]]);
        let (split, split_usage) = run(pieces(&bytes, &splits));
        prop_assert_eq!(String::from_utf8_lossy(&whole), String::from_utf8_lossy(&split));
        prop_assert_eq!(format!("{usage:?}"), format!("{split_usage:?}"));
    }
}

/// The frames the target builds are ones the decoder and the translator accept: the first
/// seed's messages, unmutated, come out as the text they carry.
#[test]
fn the_built_frames_reach_the_translator() {
    let whole = |seed| Mutation {
        seed,
        overwrite: Vec::new(),
        insert: Vec::new(),
        cut: None,
    };
    // `stream_throttled.jsonl`: messageStart, a delta with `Hel`, then an exception.
    let bytes = frames(&[(0, whole(0)), (2, whole(1)), (7, whole(2))]);
    let client = ClientRequest {
        api: ClientApi::OpenAI,
        operation: Operation::ChatCompletions,
        body: br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        anthropic_beta: None,
    };
    let Ok(Translation::Translated { response, .. }) =
        translate(&client, &target(Schema::AWSBedrock))
    else {
        unreachable!("a streamed chat request translates to Converse");
    };
    let mut translator = response.stream(ids());
    let mut out = BytesMut::new();
    translator.feed(&bytes, &mut out);
    translator.finish(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("\"Hel\""), "{text}");
    assert!(text.contains("Too many requests"), "{text}");
}

#[test]
fn the_seeds_are_there() {
    assert!(
        PAYLOADS.len() > 10,
        "{} event payload seeds",
        PAYLOADS.len()
    );
    assert!(REQUESTS.len() > 20, "{} request seeds", REQUESTS.len());
    assert!(REPLIES.len() > 10, "{} reply seeds", REPLIES.len());
    assert!(STREAMS.len() > 5, "{} stream seeds", STREAMS.len());
}
