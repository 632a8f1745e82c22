//! Where `aigw compile` puts what the targets produce: memory (for tests), a staging area in
//! the output directory that is renamed into place only when every file is complete, or a
//! streaming comparison with the files already there (`--check`).
//!
//! The two directory sinks never hold a whole artifact in memory: a 10,000-route input gives
//! some 80 MB of artifacts, more than the checked graph itself.

use super::{Artifact, CompileError, Difference, Sink, Target};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const BUFFER: usize = 256 * 1024;

fn io_error(path: &Path, source: io::Error) -> CompileError {
    CompileError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a target thread panicked; its error is reported by the join.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Collects artifacts in memory.
#[derive(Default)]
pub(super) struct Memory(Mutex<Vec<Artifact>>);

impl Memory {
    pub(super) fn into_artifacts(self) -> Vec<Artifact> {
        self.0
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Sink for Memory {
    fn file(
        &self,
        name: &'static str,
        checked: bool,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<(), String>,
    ) -> Result<(), CompileError> {
        let mut bytes = Vec::new();
        write(&mut bytes).map_err(|reason| CompileError::Serialize { name, reason })?;
        lock(&self.0).push(Artifact {
            name,
            bytes,
            checked,
        });
        Ok(())
    }
}

/// Streams each artifact into `<dir>/.<name>.tmp`; [`Staging::commit`] renames them all.
pub(super) struct Staging {
    dir: PathBuf,
    staged: Mutex<Vec<&'static str>>,
}

impl Staging {
    pub(super) fn new(dir: &Path) -> Result<Self, CompileError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        Ok(Staging {
            dir: dir.to_path_buf(),
            staged: Mutex::default(),
        })
    }

    fn temporary(&self, name: &str) -> PathBuf {
        self.dir.join(format!(".{name}.tmp"))
    }

    /// Moves every staged file into place; returns their names, sorted.
    pub(super) fn commit(self) -> Result<Vec<&'static str>, CompileError> {
        let mut names = lock(&self.staged).clone();
        names.sort_unstable();
        for name in &names {
            let path = self.dir.join(name);
            if let Err(e) = std::fs::rename(self.temporary(name), &path) {
                self.abandon();
                return Err(io_error(&path, e));
            }
        }
        Ok(names)
    }

    /// Removes whatever was staged (after a failure), leaving the directory as it was.
    pub(super) fn abandon(&self) {
        for name in lock(&self.staged).iter() {
            let _ = std::fs::remove_file(self.temporary(name));
        }
    }
}

impl Sink for Staging {
    fn file(
        &self,
        name: &'static str,
        _checked: bool,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<(), String>,
    ) -> Result<(), CompileError> {
        let path = self.temporary(name);
        let file = File::create(&path).map_err(|e| io_error(&path, e))?;
        lock(&self.staged).push(name);
        // The buffer outside the recorder: serializers write many small pieces, and each should
        // cost a copy, not a trip through every layer.
        let mut out = BufWriter::with_capacity(
            BUFFER,
            Recording {
                inner: file,
                error: None,
            },
        );
        let produced = write(&mut out);
        let flushed = out.flush();
        // An I/O failure surfaces through the serializer as its own error: report the I/O one.
        if let Some(source) = out.get_mut().error.take() {
            return Err(io_error(&path, source));
        }
        produced.map_err(|reason| CompileError::Serialize { name, reason })?;
        flushed.map_err(|e| io_error(&path, e))
    }
}

/// A writer that remembers the first I/O error it passed on.
struct Recording<W> {
    inner: W,
    error: Option<io::Error>,
}

impl<W: Write> Write for Recording<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.inner.write(data).inspect_err(|e| {
            self.error
                .get_or_insert_with(|| io::Error::new(e.kind(), e.to_string()));
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Compares each artifact, as it is produced, with the file of the same name in `dir`.
pub(super) struct Comparing {
    dir: PathBuf,
    produced: Mutex<Vec<&'static str>>,
    differences: Mutex<Vec<Difference>>,
}

impl Comparing {
    pub(super) fn new(dir: &Path) -> Self {
        Comparing {
            dir: dir.to_path_buf(),
            produced: Mutex::default(),
            differences: Mutex::default(),
        }
    }

    /// The differences found, plus the files of `targets` that would no longer be written.
    pub(super) fn differences(self, targets: &[Target]) -> Vec<Difference> {
        let produced = lock(&self.produced).clone();
        let mut out = self
            .differences
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        out.sort_by_key(|d| d.name());
        for name in targets.iter().flat_map(|t| t.files()) {
            if !produced.contains(name) && *name != "topology.svg" && self.dir.join(name).exists() {
                out.push(Difference::Stale(name));
            }
        }
        out
    }
}

impl Sink for Comparing {
    fn file(
        &self,
        name: &'static str,
        checked: bool,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<(), String>,
    ) -> Result<(), CompileError> {
        lock(&self.produced).push(name);
        if !checked {
            return Ok(());
        }
        let Ok(existing) = File::open(self.dir.join(name)) else {
            lock(&self.differences).push(Difference::Missing(name));
            return Ok(());
        };
        let mut against = BufWriter::with_capacity(
            BUFFER,
            Against {
                theirs: BufReader::with_capacity(BUFFER, existing),
                line: 1,
                differs: false,
            },
        );
        write(&mut against).map_err(|reason| CompileError::Serialize { name, reason })?;
        let path = self.dir.join(name);
        let mut against = against
            .into_inner()
            .map_err(|e| io_error(&path, e.into_error()))?;
        let longer = !against.differs
            && !against
                .theirs
                .fill_buf()
                .map_err(|e| io_error(&path, e))?
                .is_empty();
        if against.differs || longer {
            lock(&self.differences).push(Difference::Changed {
                name,
                first_line: against.line,
            });
        }
        Ok(())
    }
}

/// A writer that compares what it is given with a file, tracking the line of the first byte
/// that differs.
struct Against {
    theirs: BufReader<File>,
    /// 1-based line of the next byte (or of the first difference, once found).
    line: usize,
    differs: bool,
}

impl Write for Against {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let lines = |bytes: &[u8]| bytes.iter().filter(|&&c| c == b'\n').count();
        let mut rest = data;
        while !rest.is_empty() && !self.differs {
            let theirs = self.theirs.fill_buf()?;
            if theirs.is_empty() {
                // The file on disk ends first.
                self.differs = true;
                break;
            }
            let n = theirs.len().min(rest.len());
            match theirs[..n].iter().zip(&rest[..n]).position(|(a, b)| a != b) {
                Some(at) => {
                    self.line += lines(&rest[..at]);
                    self.differs = true;
                }
                None => {
                    self.line += lines(&rest[..n]);
                    self.theirs.consume(n);
                    rest = &rest[n..];
                }
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compares `ours` with a file holding `theirs`, as `--check` does.
    fn compare(theirs: &[u8], ours: &[u8]) -> Vec<Difference> {
        let dir = std::env::temp_dir().join(format!(
            "aigw-sink-{}-{}",
            std::process::id(),
            theirs.len() * 1000 + ours.len()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("table.json"), theirs).expect("write");
        let sink = Comparing::new(&dir);
        // Written in small pieces, as serializers do, so that pieces straddle buffer reads.
        sink.file("table.json", true, &mut |w| {
            ours.chunks(3)
                .try_for_each(|c| w.write_all(c))
                .map_err(|e| e.to_string())
        })
        .expect("compare");
        let out = sink.differences(&[Target::Table]);
        std::fs::remove_dir_all(&dir).expect("clean up");
        out
    }

    #[test]
    fn the_comparison_names_the_first_differing_line() {
        let changed = |first_line| {
            vec![Difference::Changed {
                name: "table.json",
                first_line,
            }]
        };
        assert_eq!(compare(b"a\nb\nc\n", b"a\nb\nc\n"), vec![]);
        assert_eq!(compare(b"a\nb\nc\n", b"a\nB\nc\n"), changed(2));
        assert_eq!(
            compare(b"a\nb\nc\n", b"a\nb\nc\nd\n"),
            changed(4),
            "the file on disk is shorter"
        );
        assert_eq!(
            compare(b"a\nb\nc\nd\n", b"a\nb\nc\n"),
            changed(4),
            "the file on disk is longer"
        );
        assert_eq!(compare(b"", b"x"), changed(1));
    }

    #[test]
    fn staged_files_appear_only_on_commit_and_vanish_when_abandoned() {
        let dir = std::env::temp_dir().join(format!("aigw-staging-{}", std::process::id()));
        let staging = Staging::new(&dir).expect("staging");
        staging
            .file("table.json", true, &mut |w| {
                w.write_all(b"{}\n").map_err(|e| e.to_string())
            })
            .expect("stage");
        assert!(
            !dir.join("table.json").exists(),
            "nothing is in place before the commit"
        );
        assert_eq!(staging.commit().expect("commit"), vec!["table.json"]);
        assert_eq!(
            std::fs::read(dir.join("table.json")).expect("read"),
            b"{}\n"
        );

        let staging = Staging::new(&dir).expect("staging");
        staging
            .file("envoy.yaml", true, &mut |w| {
                w.write_all(b"half").map_err(|e| e.to_string())
            })
            .expect("stage");
        let failed = staging.file("status.yaml", true, &mut |_| {
            Err("serializer failed".to_owned())
        });
        assert!(
            matches!(
                failed,
                Err(CompileError::Serialize {
                    name: "status.yaml",
                    ..
                })
            ),
            "{failed:?}"
        );
        staging.abandon();
        let left: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("table.json")],
            "the failed run left nothing behind"
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
