//! The `aigw check` and `aigw compile` contracts, by running the real binary: exit codes 0/1/2,
//! text and JSON output, directories, stdin, no panic on hostile input, and the `--check` gate.

use crate::root;
use std::process::Output;

fn aigw(args: &[&str], stdin: Option<&str>) -> Output {
    crate::inputs::aigw(args, stdin.unwrap_or_default().as_bytes())
}

#[test]
fn exit_codes_follow_the_contract() {
    assert_eq!(
        aigw(&["check", "testdata/compile/valid/basic.yaml"], None)
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        aigw(&["check", "testdata/compile/graph/backends.yaml"], None)
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        aigw(&["check", "testdata/compile/no-such-file.yaml"], None)
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        aigw(
            &[
                "check",
                "--format",
                "xml",
                "testdata/compile/valid/basic.yaml"
            ],
            None
        )
        .status
        .code(),
        Some(2)
    );
}

#[test]
fn directories_are_read_recursively() {
    let out = aigw(&["check", "testdata/compile/valid"], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("in 9 file(s)"));
}

#[test]
fn json_lines_carry_the_documented_fields() {
    let out = aigw(
        &[
            "check",
            "--format",
            "json",
            "testdata/compile/syntax/fields.yaml",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let typo = lines
        .iter()
        .find(|l| l["message"] == "unknown field `metadata.namepsace`")
        .expect("typo reported");
    assert_eq!(typo["severity"], "error");
    assert_eq!(typo["code"], "AIGW0010");
    assert_eq!(typo["file"], "testdata/compile/syntax/fields.yaml");
    assert_eq!(
        (typo["line"].as_u64(), typo["column"].as_u64()),
        (Some(8), Some(3))
    );
    assert_eq!(typo["kind"], "AIGatewayRoute");
    assert_eq!(typo["namespace"], "default");
    assert_eq!(typo["name"], "typos");
    assert_eq!(typo["field"], "metadata.namepsace");
    assert_eq!(typo["help"], "did you mean `namespace`?");
}

#[test]
fn stdin_is_an_input() {
    let yaml = "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIServiceBackend\nmetadata: {name: x}\nspec: {schema: {name: Nope}}\n";
    let out = aigw(&["check", "--format", "json", "-"], Some(yaml));
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"file\":\"<stdin>\""), "{stdout}");
    assert!(
        stdout.contains("unsupported value: \\\"Nope\\\""),
        "{stdout}"
    );
}

#[test]
fn hostile_input_is_a_diagnostic_not_a_panic() {
    for input in [
        "\u{0}\u{1}",
        ": : :",
        "[[[[",
        "a: *missing",
        "--- !!binary foo",
        "{a: 1, a: 2}",
        "- - - -",
        "apiVersion: 1\nkind: []\n",
    ] {
        let out = aigw(&["check", "-"], Some(input));
        let code = out.status.code();
        assert!(
            matches!(code, Some(0 | 1)),
            "input {input:?} gave {code:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{input:?}"
        );
    }
}

/// A fresh, empty directory under the system temp dir, unique to this test.
pub(crate) fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("aigw-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn compile_check_is_the_gitops_gate() {
    let dir = scratch("gate");
    let out = dir.join("out");
    let input = dir.join("in.yaml");
    std::fs::copy(root().join("testdata/compile/valid/basic.yaml"), &input).expect("copy");
    let (input_s, out_s) = (input.to_str().expect("utf-8"), out.to_str().expect("utf-8"));
    // Fresh output: --check fails and names what is missing, without writing anything.
    let stale = aigw(&["compile", input_s, "--out", out_s, "--check"], None);
    assert_eq!(stale.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&stale.stderr).contains("table.json: missing"));
    assert!(!out.exists(), "--check wrote something");
    // Write, then --check passes, twice (idempotent).
    assert_eq!(
        aigw(&["compile", input_s, "--out", out_s], None)
            .status
            .code(),
        Some(0)
    );
    for _ in 0..2 {
        let fresh = aigw(&["compile", input_s, "--out", out_s, "--check"], None);
        assert_eq!(
            fresh.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&fresh.stderr)
        );
    }
    // Any input change makes it stale; the summary names the files and a line.
    let text = std::fs::read_to_string(&input)
        .expect("read")
        .replace("request: 120s", "request: 90s");
    std::fs::write(&input, text).expect("write");
    let changed = aigw(&["compile", input_s, "--out", out_s, "--check"], None);
    assert_eq!(changed.status.code(), Some(1));
    let summary = String::from_utf8_lossy(&changed.stderr);
    assert!(
        summary.contains("gateway-api.yaml: differs from line"),
        "{summary}"
    );
    assert!(
        summary.contains("table.json: differs from line"),
        "{summary}"
    );
    // A hand edit of an artifact is caught too.
    assert_eq!(
        aigw(&["compile", input_s, "--out", out_s], None)
            .status
            .code(),
        Some(0)
    );
    std::fs::write(out.join("topology.mmd"), "flowchart LR\n").expect("write");
    assert_eq!(
        aigw(&["compile", input_s, "--out", out_s, "--check"], None)
            .status
            .code(),
        Some(1)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compile_writes_nothing_when_the_input_has_errors() {
    let dir = scratch("errors");
    let out = dir.join("out");
    let result = aigw(
        &[
            "compile",
            "testdata/compile/graph/backends.yaml",
            "--out",
            out.to_str().expect("utf-8"),
        ],
        None,
    );
    assert_eq!(result.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&result.stderr).contains("error["),
        "diagnostics are shown"
    );
    assert!(
        !out.exists(),
        "an input with errors must not produce artifacts"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compile_targets_select_the_files() {
    let dir = scratch("targets");
    let out = dir.join("out");
    let out_s = out.to_str().expect("utf-8");
    let result = aigw(
        &[
            "compile",
            "testdata/compile/valid/basic.yaml",
            "--out",
            out_s,
            "--target",
            "table,topology",
        ],
        None,
    );
    assert_eq!(
        result.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("out")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.retain(|n| n != "topology.svg");
    assert_eq!(names, ["table.json", "topology.dot", "topology.mmd"]);
    assert_eq!(
        aigw(
            &[
                "compile",
                "testdata/compile/valid/basic.yaml",
                "--out",
                out_s,
                "--target",
                "envoyy"
            ],
            None
        )
        .status
        .code(),
        Some(2)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
