//! Our own compile cases, `testdata/compile/<area>/<case>.yaml` or a `<case>/` directory of
//! YAML files, and what each expects: its header says `# expect: error`, `# expect: warning`
//! (no error, but nothing to compile either) or, for a valid case, `# expect: ok` or nothing,
//! and its options (`# options: --open`). The integration tests
//! snapshot them and `cargo xtask compile` compiles the valid ones.

use crate::CheckOptions;
use std::path::{Path, PathBuf};

/// One case.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    /// The area directory the case lives in (its snapshots sit beside it).
    pub dir: PathBuf,
    /// Its input files, sorted.
    pub files: Vec<PathBuf>,
    pub expect_error: bool,
    /// A valid case whose artifacts are compiled and snapshotted.
    pub artifacts: bool,
    pub options: CheckOptions,
}

/// Every case under `root/testdata/compile`, sorted by area and name.
pub fn cases(root: &Path) -> std::io::Result<Vec<Case>> {
    let sorted = |dir: &Path| -> std::io::Result<Vec<PathBuf>> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        Ok(entries)
    };
    let is_yaml = |p: &Path| p.extension().is_some_and(|e| e == "yaml");
    let mut out = Vec::new();
    for area in sorted(&root.join("testdata/compile"))?
        .into_iter()
        .filter(|p| p.is_dir())
    {
        for entry in sorted(&area)? {
            let files = if entry.is_dir() {
                sorted(&entry)?.into_iter().filter(|f| is_yaml(f)).collect()
            } else if is_yaml(&entry) {
                vec![entry.clone()]
            } else {
                continue;
            };
            let mut header = String::new();
            for file in &files {
                // Lossy: a case may hold bytes that are not UTF-8 on purpose.
                header.push_str(&String::from_utf8_lossy(&std::fs::read(file)?));
            }
            let name = entry
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(Case {
                name,
                dir: area.clone(),
                expect_error: header.contains("# expect: error"),
                artifacts: !header.contains("# expect: error")
                    && !header.contains("# expect: warning"),
                options: CheckOptions {
                    open: header.contains("# options: --open"),
                    admission_only: false,
                },
                files,
            });
        }
    }
    Ok(out)
}
