//! Integration tests of the compiler: the testdata cases with their diagnostics snapshots, the
//! reference corpus, the artifacts of `aigw compile`, the CLI's contract (exit codes, formats, inputs) and tidy checks.

#![expect(
    clippy::expect_used,
    reason = "the helpers fail the test that called them, with the reason"
)]

mod artifacts;
mod cases;
mod cli;
mod conformance;
mod controller;
mod deploy;
mod docs;
mod envoy;
mod fuzz;
mod inputs;
mod tidy;

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Reads files into a source map named by their path relative to the workspace root, so that
/// snapshots do not depend on where the checkout lives.
pub fn sources(paths: &[PathBuf]) -> aigw_diag::SourceMap {
    let root = root();
    let mut map = aigw_diag::SourceMap::new();
    for path in paths {
        let bytes = std::fs::read(path).expect("read input");
        let name = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        map.add_bytes(name, bytes);
    }
    map
}
