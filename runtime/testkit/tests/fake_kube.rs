//! The fake API server speaks the wire protocol as the official `kubernetes` Python client
//! expects it: its self-test (`kube/test_fake_apiserver.py`: lists with pagination, watches
//! resumed and expired with 410, bookmarks, server-side apply of status with condition merge by
//! type and ownership, generation, Lease conflicts, the request log) passes.

#[test]
fn the_official_client_accepts_the_fake_api_server() {
    let Some(python) = aigw_testkit::python("fake API server self-test", &["kubernetes", "yaml"])
    else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/kube/test_fake_apiserver.py");
    let output = std::process::Command::new(python).arg(script).output();
    let Ok(output) = output else {
        unreachable!("python does not run")
    };
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("OK"), "{report}");
}
