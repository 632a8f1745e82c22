//! Self-checks of the tree: every non-test module starts with `//!`, no `dbg!`/`todo!`, and the
//! one-way dependency rule (nothing in `runtime/` depends on `compiler/` or `targets/`).

use crate::root;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() && name != "target" && name != "tests" && !name.starts_with('.') {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_has_a_doc_and_no_debug_leftovers() {
    let mut files = Vec::new();
    for top in ["compiler", "runtime", "targets", "xtask"] {
        rust_files(&root().join(top), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let mut problems = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        if !text.trim_start().starts_with("//!") {
            problems.push(format!("{}: no `//!` module doc", file.display()));
        }
        for bad in ["dbg!(", "todo!(", "unimplemented!("] {
            if text.contains(bad) {
                problems.push(format!("{}: contains {bad}", file.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn runtime_crates_depend_on_no_compiler_or_target_crate() {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("metadata json");
    let root = root();
    let packages = metadata["packages"].as_array().expect("packages");
    let mut checked = 0;
    for package in packages {
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or(""));
        let relative = manifest
            .strip_prefix(&root)
            .unwrap_or(&manifest)
            .to_path_buf();
        if !relative.starts_with("runtime") {
            continue;
        }
        checked += 1;
        // Dev-dependencies are allowed: the runtime's integration tests compile the testdata case
        // they serve, as `aigw run` does; nothing built for use links the compiler.
        for dep in package["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].as_str() != Some("dev"))
        {
            let path = dep["path"].as_str().map(PathBuf::from);
            let forbidden = path.as_ref().is_some_and(|p| {
                let p = p.strip_prefix(&root).unwrap_or(p);
                p.starts_with("compiler") || p.starts_with("targets")
            });
            assert!(
                !forbidden,
                "{} depends on {}",
                relative.display(),
                dep["name"]
            );
        }
    }
    assert!(checked >= 3, "runtime crates checked: {checked}");
}
