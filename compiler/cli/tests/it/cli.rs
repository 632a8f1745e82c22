//! The `aigw check` contract, by running the real binary: exit codes 0/1/2, text and JSON
//! output, directories, stdin, and no panic on hostile input.

use crate::root;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn aigw(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aigw"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aigw");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait")
}

#[test]
fn exit_codes_follow_the_contract() {
    assert_eq!(aigw(&["check", "testdata/compile/valid/basic.yaml"], None).status.code(), Some(0));
    assert_eq!(aigw(&["check", "testdata/compile/graph/backends.yaml"], None).status.code(), Some(1));
    assert_eq!(aigw(&["check", "testdata/compile/no-such-file.yaml"], None).status.code(), Some(2));
    assert_eq!(aigw(&["check", "--format", "xml", "testdata/compile/valid/basic.yaml"], None).status.code(), Some(2));
}

#[test]
fn directories_are_read_recursively() {
    let out = aigw(&["check", "testdata/compile/valid"], None);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in 3 file(s)"));
}

#[test]
fn json_lines_carry_the_documented_fields() {
    let out = aigw(&["check", "--format", "json", "testdata/compile/syntax/fields.yaml"], None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    let typo = lines.iter().find(|l| l["message"] == "unknown field `namepsace`").expect("typo reported");
    assert_eq!(typo["severity"], "error");
    assert_eq!(typo["code"], "AIGW0010");
    assert_eq!(typo["file"], "testdata/compile/syntax/fields.yaml");
    assert_eq!((typo["line"].as_u64(), typo["column"].as_u64()), (Some(8), Some(3)));
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
    assert!(stdout.contains("unsupported value: \\\"Nope\\\""), "{stdout}");
}

#[test]
fn hostile_input_is_a_diagnostic_not_a_panic() {
    for input in ["\u{0}\u{1}", ": : :", "[[[[", "a: *missing", "--- !!binary foo", "{a: 1, a: 2}", "- - - -", "apiVersion: 1\nkind: []\n"] {
        let out = aigw(&["check", "-"], Some(input));
        let code = out.status.code();
        assert!(matches!(code, Some(0 | 1)), "input {input:?} gave {code:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{input:?}");
    }
}
