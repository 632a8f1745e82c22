//! The access log: one JSON line per AI request, to standard output or a file, written by a
//! thread of its own so that the request path never waits on a disk or a pipe. A request
//! serializes its line straight into a bounded byte buffer, under a mutex held for that; the
//! writer swaps the buffer for an empty one every [`FLUSH_EVERY`] and writes it at once. Two
//! things are measured to cost a request more than the rest of its account, and avoided: a
//! wake-up of the writer per line (a channel), and a string allocated per line on a worker and
//! freed on the writer (glibc's cross-thread free). When the buffer is full a line is dropped
//! and counted (`aigw_access_log_dropped_total`), never blocking a request; the last lines are
//! written when the log is dropped.
//!
//! What a line holds is [`crate::record`]'s: no credential, no header, and no prompt or answer
//! text; how it is written, [`line`]'s.

mod line;

pub use line::Line;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Bytes waiting for the writer at most; past that, lines are dropped.
const QUEUE: usize = 16 << 20;
/// How often the writer takes the waiting lines.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

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

struct Shared {
    lines: Mutex<Vec<u8>>,
    /// Set when the last sender is gone: the writer writes what is left and stops.
    closed: std::sync::atomic::AtomicBool,
}

/// The sending side; cheap to clone. The writer stops after the last clone is dropped.
#[derive(Clone)]
pub struct AccessLog {
    shared: Arc<Shared>,
    _last: Arc<Closer>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").finish_non_exhaustive()
    }
}

/// Dropped with the last [`AccessLog`]: tells the writer to finish.
struct Closer(Arc<Shared>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
    }
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
        let shared = Arc::new(Shared {
            lines: Mutex::new(Vec::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("aigw-access-log".into())
            .spawn(move || write(&writer, out))?;
        Ok(AccessLog {
            _last: Arc::new(Closer(shared.clone())),
            shared,
        })
    }

    /// Queues `line` as one line of JSON; false when it was dropped (the buffer is full).
    /// The line is written into this thread's own buffer first, so the shared buffer's
    /// lock is held only for a copy.
    pub fn send(&self, line: &Line<'_>) -> bool {
        thread_local! {
            static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        LINE.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            buffer.clear();
            line.write(&mut buffer);
            self.send_json(&buffer)
        })
    }

    /// Queues `json` (one JSON object, no newline) as a line; false when it was dropped. For
    /// lines of another shape than [`Line`] (the MCP gateway's).
    pub fn send_json(&self, json: &[u8]) -> bool {
        let mut lines = self
            .shared
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if lines.len() >= QUEUE {
            return false;
        }
        lines.extend_from_slice(json);
        lines.push(b'\n');
        true
    }
}

fn write(shared: &Shared, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, out);
    let mut batch: Vec<u8> = Vec::new();
    loop {
        let closed = shared.closed.load(std::sync::atomic::Ordering::Acquire);
        std::mem::swap(
            &mut batch,
            &mut *shared
                .lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if out.write_all(&batch).is_err() {
            return;
        }
        batch.clear();
        if out.flush().is_err() || closed {
            return;
        }
        std::thread::sleep(FLUSH_EVERY);
    }
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
        for rule in 0..100 {
            let line = Line {
                at: std::time::SystemTime::now(),
                endpoint: "/v1/chat/completions",
                route: "r",
                rule,
                backend: None,
                attempts: 0,
                status: 404,
                request_model: "m",
                response_model: None,
                caller: None,
                stream: false,
                cache: None,
                fault: None,
                usage: None,
                costs: &[],
                duration: std::time::Duration::ZERO,
                first_byte: None,
            };
            assert!(log.send(&line));
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
        let rules: Vec<u64> = text
            .lines()
            .map(|l| {
                let line: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| unreachable!("{e}: {l}"));
                line["rule"].as_u64().unwrap_or(u64::MAX)
            })
            .collect();
        assert_eq!(rules, (0..100).collect::<Vec<u64>>());
    }
}
