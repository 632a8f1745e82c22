//! Server-sent events as providers send them: bytes in, whole events out.
//!
//! Written here rather than taken from a crate because the translators need only the framing
//! (an event is complete at its blank line; `event:` and `data:` fields), must accept bytes
//! split anywhere (inside a line, inside a multi-byte UTF-8 character) and must not copy an
//! event more than once. See <https://html.spec.whatwg.org/multipage/server-sent-events.html>.

use bytes::{Bytes, BytesMut};

/// Collects stream bytes and hands out complete events.
#[derive(Debug, Default)]
pub struct Framer {
    held: BytesMut,
    /// How much of `held` is known to hold no event end: the next search starts near there,
    /// so a long event arriving in many pieces is scanned once, not once per piece.
    searched: usize,
}

/// One event: its `event:` name (empty when absent) and its `data:` lines joined by `\n`.
#[derive(Debug, PartialEq, Eq)]
pub struct Event {
    pub name: Bytes,
    pub data: Bytes,
}

impl Framer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.held.extend_from_slice(bytes);
    }

    /// The next complete event, if one has arrived. With `at_end`, what is left counts as
    /// a last event even without its blank line (a server that closes right after it).
    pub fn next_event(&mut self, at_end: bool) -> Option<Event> {
        loop {
            let found = event_end_after(&self.held, self.searched);
            if found.is_none() {
                self.searched = self.held.len();
            }
            let end =
                found.or_else(|| (at_end && !self.held.is_empty()).then_some(self.held.len()))?;
            let raw = self.held.split_to(end).freeze();
            self.searched = 0;
            if let Some(event) = parse(&raw) {
                return Some(event);
            }
            // A comment or blank-only event (keep-alives): skip it.
        }
    }

    /// Bytes held back waiting for the rest of an event.
    pub fn pending(&self) -> usize {
        self.held.len()
    }
}

/// [`event_end`] for bytes whose first `searched` are known to hold no event end: only the
/// rest is scanned (from three bytes before it, where a `\r\n\r\n` may have begun).
pub fn event_end_after(bytes: &[u8], searched: usize) -> Option<usize> {
    let from = searched.saturating_sub(3).min(bytes.len());
    event_end(&bytes[from..]).map(|end| end + from)
}

/// The end (exclusive) of the first complete event: after its blank line.
pub fn event_end(bytes: &[u8]) -> Option<usize> {
    let lf = memchr::memmem::find(bytes, b"\n\n").map(|i| i + 2);
    let crlf = memchr::memmem::find(bytes, b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn parse(raw: &Bytes) -> Option<Event> {
    let mut name = Bytes::new();
    let mut data: Option<Bytes> = None;
    let mut joined: Option<Vec<u8>> = None;
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (field, value) = match memchr::memchr(b':', line) {
            Some(0) | None => continue,
            Some(i) => (&line[..i], &line[i + 1..]),
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match field {
            b"event" => name = raw.slice_ref(value),
            b"data" => match (&mut joined, &data) {
                (Some(all), _) => {
                    all.push(b'\n');
                    all.extend_from_slice(value);
                }
                (None, Some(first)) => {
                    let mut all = first.to_vec();
                    all.push(b'\n');
                    all.extend_from_slice(value);
                    joined = Some(all);
                }
                (None, None) => data = Some(raw.slice_ref(value)),
            },
            _ => {}
        }
    }
    let data = joined.map(Bytes::from).or(data)?;
    Some(Event { name, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<(String, String)> {
        let mut framer = Framer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            framer.push(chunk);
            while let Some(e) = framer.next_event(false) {
                out.push(e);
            }
        }
        while let Some(e) = framer.next_event(true) {
            out.push(e);
        }
        out.into_iter()
            .map(|e| {
                (
                    String::from_utf8_lossy(&e.name).into_owned(),
                    String::from_utf8_lossy(&e.data).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let stream = "event: a\ndata: {\"t\":\"é\"}\n\n: keep-alive\n\nevent: b\r\ndata: x\r\ndata: y\r\n\r\ndata: last";
        let whole = events(&[stream.as_bytes()]);
        assert_eq!(
            whole,
            vec![
                ("a".into(), "{\"t\":\"é\"}".into()),
                ("b".into(), "x\ny".into()),
                ("".into(), "last".into()),
            ]
        );
        // Every split point, including inside the two-byte `é`.
        for at in 1..stream.len() {
            let (head, tail) = stream.as_bytes().split_at(at);
            assert_eq!(events(&[head, tail]), whole, "split at {at}");
        }
        // One byte at a time: each search resumes where the last stopped, and an end split
        // across pieces (`\r\n` + `\r\n`) is still found.
        let bytes: Vec<&[u8]> = stream.as_bytes().chunks(1).collect();
        assert_eq!(events(&bytes), whole);
    }

    #[test]
    fn a_search_resumes_three_bytes_back() {
        assert_eq!(event_end_after(b"data: x\r\n\r\n", 8), Some(11));
        assert_eq!(event_end_after(b"data: x\n\n", 8), Some(9));
        assert_eq!(event_end_after(b"data: x", 100), None);
    }
}
