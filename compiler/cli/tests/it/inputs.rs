//! Inputs as real-world pipelines hand them over (issue #22): the same file twice, copies under
//! another path, hostile sizes, bytes that are not UTF-8, empty input, and a Gateway with no
//! listener, through the real binary and the status target.

use crate::cli::scratch;
use crate::root;
use aigw_compiler::{CheckOptions, check};
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs the real binary in the workspace root with `stdin` as its input.
pub(crate) fn aigw(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aigw"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aigw");
    let mut input = child.stdin.take().expect("stdin");
    let bytes = stdin.to_vec();
    // A writer thread: a large input must not dead-lock against a full stderr pipe.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    out
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

const BASIC: &str = "testdata/compile/valid/basic.yaml";

#[test]
fn the_same_file_twice_is_read_once_and_compiles_as_once() {
    let dir = scratch("twice");
    let (once, twice) = (dir.join("once"), dir.join("twice"));
    let copy = dir.join("copy.yaml");
    std::fs::copy(root().join(BASIC), &copy).expect("copy");
    let copy = copy.to_str().expect("utf-8");
    let run = |out: &std::path::Path, inputs: &[&str]| {
        let mut args = vec!["compile", "--out", out.to_str().expect("utf-8")];
        args.extend(inputs);
        aigw(&args, b"")
    };
    let first = run(&once, &[BASIC]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // The same path twice, the same file by another name, and a byte-identical copy.
    let dotted = format!("./{BASIC}");
    let second = run(&twice, &[BASIC, &dotted, copy, BASIC]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("AIGW0005"), "{stderr}");
    for name in [
        "table.json",
        "envoy.yaml",
        "gateway-api.yaml",
        "status.yaml",
    ] {
        assert_eq!(
            std::fs::read(once.join(name)).expect("once"),
            std::fs::read(twice.join(name)).expect("twice"),
            "{name} differs when the input is given twice"
        );
    }
    let check = aigw(&["check", BASIC, &dotted], b"");
    assert!(
        String::from_utf8_lossy(&check.stderr).contains("in 1 file(s)"),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn a_five_megabyte_name_is_cut_in_every_message() {
    let name = "a".repeat(5 * 1024 * 1024);
    let yaml = format!(
        "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIServiceBackend\nmetadata:\n  name: {name}\nspec:\n  schema: {{name: OpenAI}}\n  backendRef: {{name: {name}, kind: Backend, group: gateway.envoyproxy.io}}\n"
    );
    for format in ["text", "json"] {
        let out = aigw(&["check", "--format", format, "-"], yaml.as_bytes());
        assert_eq!(out.status.code(), Some(1));
        let all = out.stdout.len() + out.stderr.len();
        assert!(all < 16 * 1024, "{format}: {all} bytes of output");
    }
    let out = aigw(&["check", "--format", "json", "-"], yaml.as_bytes());
    let lines = json_lines(&out);
    let unresolved = lines
        .iter()
        .find(|l| l["code"] == "AIGW0040")
        .expect("unresolved backend");
    let message = unresolved["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("… ({} bytes)`", name.len() + 8)),
        "{message}"
    );
    assert!(unresolved["name"].as_str().expect("name").len() < 300);
    // The field is named in the text itself, not only in the `field` property.
    let long = lines
        .iter()
        .find(|l| l["code"] == "AIGW0015" && l["field"] == "spec.backendRef.name")
        .expect("too long");
    assert_eq!(
        long["message"],
        "`spec.backendRef.name`: in body should be at most 253 chars long"
    );
}

#[test]
fn bytes_that_are_not_utf8_are_an_input_error_with_their_place() {
    let out = aigw(
        &["check", "--format", "json", "-"],
        b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: caf\xe9\n",
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "an input error, not a tool failure"
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let d = &lines[0];
    assert_eq!(d["code"], "AIGW0006");
    assert_eq!(d["file"], "<stdin>");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(4), Some(12))
    );
    let file = root().join("testdata/compile/syntax/encoding.yaml");
    let out = aigw(&["check", file.to_str().expect("utf-8")], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("encoding.yaml:7:12"));
}

#[test]
fn parser_limits_and_duplicate_keys_read_as_user_messages() {
    let deep = format!("a: {}{}\n", "[".repeat(65), "]".repeat(65));
    let cases: [(&str, &str); 3] = [
        (&deep, "nesting deeper than 64 levels"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
            "more than 250,000 nodes, e.g. through aliases",
        ),
        ("kind: Backend\nkind: Secret\n", "duplicate key `kind`"),
    ];
    for (input, expected) in cases {
        let out = aigw(&["check", "--format", "json", "-"], input.as_bytes());
        assert_eq!(out.status.code(), Some(1));
        let lines = json_lines(&out);
        let message = lines[0]["message"].as_str().expect("message");
        assert!(message.contains(expected), "{message}");
        for noise in [
            "budget",
            "Depth {",
            "Nodes {",
            "DuplicateKeyPolicy",
            "Options",
        ] {
            assert!(!message.contains(noise), "{message}");
        }
    }
    // The duplicate key points at both places.
    let out = aigw(&["check", "-"], b"kind: Backend\nkind: Secret\n");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("first defined here") && text.contains("<stdin>:2:1"),
        "{text}"
    );
}

#[test]
fn empty_input_warns_for_check_and_fails_compile_without_touching_artifacts() {
    let check = aigw(&["check", "--format", "json", "-"], b"");
    assert_eq!(check.status.code(), Some(0));
    let lines = json_lines(&check);
    assert_eq!(lines[0]["code"], "AIGW0007");
    assert_eq!(lines[0]["severity"], "warning");
    let dir = scratch("empty");
    let out = dir.join("out");
    let out_s = out.to_str().expect("utf-8");
    let good = aigw(&["compile", BASIC, "--out", out_s], b"");
    assert_eq!(good.status.code(), Some(0));
    let before = std::fs::read(out.join("table.json")).expect("table");
    for input in [&b""[..], b"# only a comment\n---\n"] {
        let empty = aigw(&["compile", "-", "--out", out_s], input);
        assert_eq!(empty.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&empty.stderr).contains("error[AIGW0007]"));
        assert_eq!(
            std::fs::read(out.join("table.json")).expect("table"),
            before
        );
    }
    let empty_file = dir.join("empty.yaml");
    std::fs::write(&empty_file, "").expect("write");
    let file = empty_file.to_str().expect("utf-8");
    assert_eq!(aigw(&["check", file], b"").status.code(), Some(0));
    assert_eq!(
        aigw(&["compile", file, "--out", out_s], b"").status.code(),
        Some(1)
    );
    assert_eq!(
        std::fs::read(out.join("table.json")).expect("table"),
        before
    );
}

#[test]
fn a_gateway_without_listeners_leaves_its_routes_not_accepted() {
    let path = root().join("testdata/compile/graph/listeners.yaml");
    let checked = check(crate::sources(&[path]), CheckOptions::default());
    let ir = checked.ir.as_ref().expect("graph");
    let status: Vec<_> = aigw_target_gateway_api::status(ir, &checked.diagnostics).collect();
    let route = |name: &str| {
        status
            .iter()
            .find(|s| s["kind"] == "AIGatewayRoute" && s["metadata"]["name"] == name)
            .map(|s| s["status"]["conditions"][0].clone())
            .expect("route status")
    };
    let stranded = route("stranded");
    assert_eq!(stranded["type"], "NotAccepted");
    assert!(
        stranded["message"]
            .as_str()
            .is_some_and(|m| m.contains("Gateway `default/nowhere` has no listeners")),
        "{stranded}"
    );
    assert_eq!(route("attached")["type"], "Accepted");
    // The reference's own case, read in place.
    let Some(dir) = crate::conformance::corpus() else {
        return;
    };
    let file = dir.join("translate/gateway_no_listeners.yaml");
    let out = aigw(
        &[
            "compile",
            file.to_str().expect("utf-8"),
            "--out",
            "/nonexistent/aigw",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("AIGW0015") && text.contains("AIGW0048"),
        "{text}"
    );
}
