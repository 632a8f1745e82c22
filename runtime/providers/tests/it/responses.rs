//! Answers: the canned provider replies of `testdata/upstream/<provider>/` translated back
//! to the OpenAI API, as `<case>.openai.snap` beside each reply. Streams are fed whole and
//! byte by byte (every split point, through multi-byte characters) and must come out the same.

use aigw_providers::{
    ClientRequest, Ids, Operation, ResponseTranslator, Schema, Target, Translation,
};
use bytes::BytesMut;
use std::path::{Path, PathBuf};

pub(crate) fn ids() -> Ids {
    Ids {
        id: "chatcmpl-test".into(),
        created: 1_700_000_000,
    }
}

/// The response translator of a chat completion sent to `schema`.
fn translator(schema: Schema, stream: bool) -> ResponseTranslator {
    let body = serde_json::json!({
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
        "stream_options": {"include_usage": true},
    });
    let target = Target {
        schema,
        model: "claude-sonnet-4-5",
        version: None,
        gcp: Some(("p", "r")),
        prefix: "/v1",
    };
    let body = serde_json::to_vec(&body).expect("json");
    match aigw_providers::translate(
        &ClientRequest::openai(Operation::ChatCompletions, &body),
        &target,
    ) {
        Ok(Translation::Translated { response, .. }) => response,
        other => panic!("{schema:?} translates chat completions: {other:?}"),
    }
}

pub(crate) fn files(dir: &Path, extension: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("testdata dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

pub(crate) fn stem(path: &Path) -> String {
    path.file_stem()
        .expect("stem")
        .to_string_lossy()
        .into_owned()
}

/// A whole body, or an error body with the status the fixture's name implies.
pub(crate) fn whole(
    translator: &ResponseTranslator,
    path: &Path,
    error_type: Option<&str>,
) -> String {
    let body = std::fs::read(path).expect("fixture");
    let name = stem(path);
    let value = if name.starts_with("error_") {
        let status = if name.contains("overloaded") {
            529
        } else if name.contains("rate_limit") {
            429
        } else {
            400
        };
        let out = translator.error(status, error_type, &body);
        serde_json::json!({"status": status, "body": serde_json::from_slice::<serde_json::Value>(&out).expect("json")})
    } else {
        let (out, usage) = translator.response(&body, &ids()).expect("translates");
        serde_json::json!({
            "body": serde_json::from_slice::<serde_json::Value>(&out).expect("json"),
            "usage_seen": format!("{usage:?}"),
        })
    };
    crate::pretty(&value)
}

/// Feeds `stream` in the given pieces; returns the client's bytes and the usage seen.
pub(crate) fn feed(translator: &ResponseTranslator, pieces: &[&[u8]]) -> (String, String) {
    let mut stream = translator.stream(ids());
    let mut out = BytesMut::new();
    for piece in pieces {
        stream.feed(piece, &mut out);
    }
    stream.finish(&mut out);
    let usage = format!("{:?}", stream.usage());
    (String::from_utf8(out.to_vec()).expect("utf-8 out"), usage)
}

/// Every split of `stream` into two pieces, and one byte at a time, gives `whole`.
pub(crate) fn assert_split_invariant(
    translator: &ResponseTranslator,
    stream: &[u8],
    whole: &(String, String),
) {
    for at in 0..=stream.len() {
        let (a, b) = stream.split_at(at);
        assert_eq!(&feed(translator, &[a, b]), whole, "split at byte {at}");
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(&feed(translator, &bytes), whole, "one byte at a time");
}

pub(crate) fn transcript(out: &(String, String)) -> String {
    format!("{}--- usage seen: {}\n", out.0, out.1)
}

/// Bedrock's `x-amzn-errortype` for its canned error replies.
pub(crate) const BEDROCK_ERROR: &str =
    "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/";

/// Each whole reply (`*.json`) of `dir` through `plain`, snapshotted as `<reply>.<client>`
/// (`error_type`: Bedrock's header, for error replies). Returns each reply and its rendering,
/// for more checks.
pub(crate) fn whole_replies(
    dir: &Path,
    client: &str,
    plain: &ResponseTranslator,
    error_type: Option<&str>,
) -> Vec<(PathBuf, String)> {
    let mut seen = Vec::new();
    for path in files(dir, "json") {
        let out = whole(plain, &path, error_type);
        crate::snapshot(dir, &path, &format!("{}.{client}", stem(&path)), &out);
        seen.push((path, out));
    }
    seen
}

/// Each streamed reply (`*.<extension>`) of `dir`, as `wire` sends its text, through
/// `streaming`: fed whole and at every split point, snapshotted as `<reply>.<client>`.
/// Returns each reply's text and what the client got, for more checks.
pub(crate) fn streamed_replies(
    dir: &Path,
    extension: &str,
    client: &str,
    streaming: &ResponseTranslator,
    wire: impl Fn(&str) -> Vec<u8>,
) -> Vec<(PathBuf, String, (String, String))> {
    let mut seen = Vec::new();
    for path in files(dir, extension) {
        let text = std::fs::read_to_string(&path).expect("fixture");
        let bytes = wire(&text);
        let out = feed(streaming, &[&bytes]);
        assert_split_invariant(streaming, &bytes, &out);
        crate::snapshot(
            dir,
            &path,
            &format!("{}.{client}", stem(&path)),
            &transcript(&out),
        );
        seen.push((path, text, out));
    }
    seen
}

/// A stream's text as it is on the wire: as it is.
pub(crate) fn sse(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

#[test]
fn anthropic_answers_translate_to_openai() {
    let dir = crate::testdata().join("upstream/anthropic");
    whole_replies(&dir, "openai", &translator(Schema::Anthropic, false), None);
    let bedrock = translator(Schema::AWSAnthropic, true);
    let streamed = streamed_replies(
        &dir,
        "sse",
        "openai",
        &translator(Schema::Anthropic, true),
        sse,
    );
    for (path, text, out) in streamed {
        // The same events inside Bedrock's event stream (AWSAnthropic) read the same, except
        // that a stream cut short has no half event left to notice.
        let framed = aigw_testkit::wrapped(&text);
        assert_eq!(
            feed(&bedrock, &[&framed]),
            out,
            "{} through Bedrock framing",
            path.display()
        );
    }
}

#[test]
fn bedrock_answers_translate_to_openai() {
    let dir = crate::testdata().join("upstream/bedrock");
    let plain = translator(Schema::AWSBedrock, false);
    whole_replies(&dir, "openai", &plain, Some(BEDROCK_ERROR));
    let streaming = translator(Schema::AWSBedrock, true);
    streamed_replies(
        &dir,
        "jsonl",
        "openai",
        &streaming,
        aigw_testkit::event_stream,
    );
}

#[test]
fn gemini_answers_translate_to_openai() {
    let dir = crate::testdata().join("upstream/gemini");
    whole_replies(
        &dir,
        "openai",
        &translator(Schema::GCPVertexAI, false),
        None,
    );
    streamed_replies(
        &dir,
        "sse",
        "openai",
        &translator(Schema::GCPVertexAI, true),
        sse,
    );
}

#[test]
fn unreadable_answers_are_502_bodies_not_panics() {
    for schema in [
        Schema::Anthropic,
        Schema::AWSBedrock,
        Schema::AWSAnthropic,
        Schema::GCPVertexAI,
    ] {
        let t = translator(schema, false);
        let error = t
            .response(b"<html>oops</html>", &ids())
            .expect_err("not a response");
        let value: serde_json::Value = serde_json::from_slice(&error).expect("json");
        assert_eq!(value["error"]["type"], "upstream_error", "{schema:?}");
        let body = t.error(503, None, b"<html>Service Unavailable</html>");
        let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            value["error"]["message"],
            "<html>Service Unavailable</html>"
        );
        assert_eq!(value["error"]["code"], "503");
    }
}

/// The response translator of an embeddings request sent to `schema`.
fn embedding_translator(schema: Schema, model: &str, encoding: &str) -> ResponseTranslator {
    let body = serde_json::json!({"model": model, "input": "hi", "encoding_format": encoding});
    let target = Target {
        schema,
        model,
        version: None,
        gcp: Some(("p", "r")),
        prefix: "/v1",
    };
    let body = serde_json::to_vec(&body).expect("json");
    match aigw_providers::translate(
        &ClientRequest::openai(Operation::Embeddings, &body),
        &target,
    ) {
        Ok(Translation::Translated { response, .. }) => response,
        other => panic!("{schema:?} translates embeddings: {other:?}"),
    }
}

#[test]
fn embedding_answers_translate_to_openai_floats_and_base64() {
    let dir = crate::testdata().join("upstream/embeddings");
    for (file, schema, model) in [
        (
            "titan.json",
            Schema::AWSBedrock,
            "amazon.titan-embed-text-v2:0",
        ),
        ("vertex.json", Schema::GCPVertexAI, "text-embedding-005"),
    ] {
        let path = dir.join(file);
        let body = std::fs::read(&path).expect("fixture");
        let floats = embedding_translator(schema, model, "float");
        let (out, usage) = floats.response(&body, &ids()).expect("translates");
        let value: serde_json::Value = serde_json::from_slice(&out).expect("json");
        let rendered =
            crate::pretty(&serde_json::json!({"body": value, "usage_seen": format!("{usage:?}")}));
        crate::snapshot(&dir, &path, &format!("{}.openai", stem(&path)), &rendered);
        // base64 is the same vectors as little-endian f32.
        let encoded = embedding_translator(schema, model, "base64");
        let (out, _) = encoded.response(&body, &ids()).expect("translates");
        let b64: serde_json::Value = serde_json::from_slice(&out).expect("json");
        let data = value["data"].as_array().expect("data");
        assert!(!data.is_empty());
        for (plain, packed) in data.iter().zip(b64["data"].as_array().expect("data")) {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(packed["embedding"].as_str().expect("a base64 string"))
                .expect("base64");
            let decoded: Vec<f64> = bytes
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            let expected: Vec<f64> = plain["embedding"]
                .as_array()
                .expect("floats")
                .iter()
                .map(|f| f.as_f64().expect("a float"))
                .collect();
            assert_eq!(decoded, expected, "{file}");
        }
        assert_eq!(b64["usage"], value["usage"]);
    }
}
