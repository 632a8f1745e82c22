//! The test Bedrock's event-stream frames are real ones: botocore's own decoder
//! (`tests/eventstream_check.py`) reads every canned stream, split across reads, and gets back
//! the events the fixtures describe; a frame with one byte changed is refused.

#![expect(clippy::expect_used, reason = "test code")]

use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/upstream")
}

/// botocore's reading of `frames`: the messages, or its refusal.
fn botocore(python: &Path, frames: &[u8]) -> Result<Vec<Value>, String> {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), frames).expect("write the frames");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/eventstream_check.py");
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(file.path())
        .output()
        .expect("python runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(text + &String::from_utf8_lossy(&output.stderr));
    }
    Ok(text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect())
}

fn files(dir: &str, extension: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no .{extension} fixtures in {dir}");
    found
}

#[test]
fn botocore_reads_every_converse_stream_as_its_fixture_says() {
    let Some(python) = aigw_testkit::python("event-stream oracle", &["botocore"]) else {
        return;
    };
    for path in files("bedrock", "jsonl") {
        let jsonl = std::fs::read_to_string(&path).expect("fixture");
        let messages = botocore(&python, &aigw_testkit::event_stream(&jsonl))
            .unwrap_or_else(|why| panic!("{}: {why}", path.display()));
        let expected: Vec<Value> = jsonl
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("fixture line"))
            .collect();
        assert_eq!(messages.len(), expected.len(), "{}", path.display());
        for (message, line) in messages.iter().zip(&expected) {
            let headers = &message["headers"];
            let (kind, name) = match line["event"].as_str() {
                Some(event) => ("event", (":event-type", event)),
                None => (
                    "exception",
                    (":exception-type", line["exception"].as_str().unwrap_or("")),
                ),
            };
            assert_eq!(headers[":message-type"], kind, "{}", path.display());
            assert_eq!(headers[name.0], name.1, "{}", path.display());
            assert_eq!(headers[":content-type"], "application/json");
            let payload: Value =
                serde_json::from_str(message["payload"].as_str().unwrap_or("")).expect("JSON");
            assert_eq!(payload, line["payload"], "{}", path.display());
        }
    }
}

#[test]
fn botocore_reads_every_wrapped_anthropic_stream_back_to_its_events() {
    let Some(python) = aigw_testkit::python("event-stream oracle", &["botocore"]) else {
        return;
    };
    use base64::Engine as _;
    for path in files("anthropic", "sse") {
        let sse = std::fs::read_to_string(&path).expect("fixture");
        let messages = botocore(&python, &aigw_testkit::wrapped(&sse))
            .unwrap_or_else(|why| panic!("{}: {why}", path.display()));
        let data: Vec<&str> = sse
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        assert_eq!(messages.len(), data.len(), "{}", path.display());
        for (message, line) in messages.iter().zip(data) {
            assert_eq!(message["headers"][":event-type"], "chunk");
            let payload: Value =
                serde_json::from_str(message["payload"].as_str().unwrap_or("")).expect("JSON");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(payload["bytes"].as_str().unwrap_or(""))
                .expect("base64");
            assert_eq!(String::from_utf8_lossy(&bytes), line, "{}", path.display());
        }
    }
}

/// The oracle can fail: one changed payload byte breaks the message CRC, a cut frame leaves
/// bytes over.
#[test]
fn botocore_refuses_a_damaged_or_cut_frame() {
    let Some(python) = aigw_testkit::python("event-stream oracle", &["botocore"]) else {
        return;
    };
    let path = files("bedrock", "jsonl").remove(0);
    let frames = aigw_testkit::event_stream(&std::fs::read_to_string(path).expect("fixture"));
    let mut damaged = frames.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x20;
    let refused = botocore(&python, &damaged).expect_err("a damaged frame is refused");
    assert!(refused.contains("botocore refused"), "{refused}");
    let cut = botocore(&python, &frames[..frames.len() - 3]).expect_err("a cut frame");
    assert!(cut.contains("left over"), "{cut}");
}
