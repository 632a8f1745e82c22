//! Reading inputs: files, directories (recursively, `*.yaml` and `*.yml`, in sorted order) and
//! standard input (`-`). This is the only I/O of the compiler besides writing artifacts.
//!
//! A file named twice (given twice, or given and found again in a directory) is read once: it is
//! the same input, and reading it again would only report everything in it twice. Bytes that are
//! not UTF-8 are not a failure here: the loader reports them as a diagnostic with their place.

use aigw_diag::SourceMap;
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// An input that could not be read: a usage or I/O failure (exit code 2), not a diagnostic.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("`{0}` holds no *.yaml or *.yml file")]
    EmptyDirectory(String),
}

/// Reads every input into a source map. Directories are walked recursively; their files are
/// added in sorted path order so that the same tree always gives the same map.
pub fn read_inputs(paths: &[PathBuf]) -> Result<SourceMap, InputError> {
    let mut sources = SourceMap::new();
    let mut seen = HashSet::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|source| InputError::Read {
                    path: "<stdin>".into(),
                    source,
                })?;
            sources.add_bytes("<stdin>", bytes);
        } else if path.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files)?;
            if files.is_empty() {
                return Err(InputError::EmptyDirectory(path.display().to_string()));
            }
            files.sort();
            for file in files {
                add_file(&mut sources, &mut seen, &file)?;
            }
        } else {
            add_file(&mut sources, &mut seen, path)?;
        }
    }
    Ok(sources)
}

fn add_file(
    sources: &mut SourceMap,
    seen: &mut HashSet<PathBuf>,
    path: &Path,
) -> Result<(), InputError> {
    let display = path.display().to_string();
    let read_error = |source| InputError::Read {
        path: display.clone(),
        source,
    };
    // The file itself, whichever way it was named (`./a.yaml`, `a.yaml`, a symlink).
    if !seen.insert(std::fs::canonicalize(path).map_err(read_error)?) {
        return Ok(());
    }
    let bytes = std::fs::read(path).map_err(read_error)?;
    sources.add_bytes(display, bytes);
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let entries = std::fs::read_dir(dir).map_err(|source| InputError::Read {
        path: dir.display().to_string(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| InputError::Read {
            path: dir.display().to_string(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}
