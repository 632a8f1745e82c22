//! The access log: one JSON line per AI request, to standard output or a file, written by a
//! thread of its own so that the request path never waits on a disk or a pipe. Lines go
//! through a bounded queue; when it is full a line is dropped and counted
//! (`aigw_access_log_dropped_total`), never blocking a request. The writer flushes whenever
//! the queue runs empty.
//!
//! What a line holds is [`crate::record`]'s: no credential, no header, and no prompt or answer
//! text.

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

/// Lines waiting for the writer at most; past that, lines are dropped.
const QUEUE: usize = 16 * 1024;

/// Where the log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

impl std::str::FromStr for Target {
    type Err = std::convert::Infallible;
    /// `-` is standard output; anything else a file, appended to.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if s == "-" {
            Target::Stdout
        } else {
            Target::File(PathBuf::from(s))
        })
    }
}

/// The sending side; cheap to clone.
#[derive(Clone, Debug)]
pub struct AccessLog {
    lines: SyncSender<String>,
}

impl AccessLog {
    /// Opens `target` and starts its writer.
    pub fn open(target: &Target) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = match target {
            Target::Stdout => Box::new(std::io::stdout()),
            Target::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (lines, received) = std::sync::mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("aigw-access-log".into())
            .spawn(move || write(received, out))?;
        Ok(AccessLog { lines })
    }

    /// Queues one line (without its newline); false when it was dropped.
    pub fn send(&self, line: String) -> bool {
        match self.lines.try_send(line) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

fn write(lines: Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::new(out);
    while let Ok(line) = lines.recv() {
        let mut next = Some(line);
        while let Some(line) = next {
            if out.write_all(line.as_bytes()).is_err() || out.write_all(b"\n").is_err() {
                return;
            }
            next = lines.try_recv().ok();
        }
        if out.flush().is_err() {
            return;
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_in_order() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let path = dir.path().join("access.log");
        let log =
            AccessLog::open(&Target::File(path.clone())).unwrap_or_else(|e| unreachable!("{e}"));
        for i in 0..100 {
            assert!(log.send(format!("{{\"n\":{i}}}")));
        }
        drop(log);
        let mut text = String::new();
        for _ in 0..200 {
            text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() == 100 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 100);
        assert_eq!(lines[0], "{\"n\":0}");
        assert_eq!(lines[99], "{\"n\":99}");
    }
}
