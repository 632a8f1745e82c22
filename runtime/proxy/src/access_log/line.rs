//! One access log line and its JSON, written by hand into the caller's buffer. The line has a
//! fixed shape, so a writer of its own does what serde's derive did with less work: no
//! timestamp string allocated per line (the second's `2026-12-03T08:30:00.` is formatted once per
//! thread and second, then only the milliseconds change), integers by `itoa`, durations as exact
//! decimal milliseconds from whole microseconds, and strings copied whole unless one of their
//! bytes needs a JSON escape (RFC 8259 §7). The tests parse what it writes with serde_json.

use aigw_providers::Usage;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What one AI request did (see [`crate::record`]: nothing the client sent besides the model).
pub struct Line<'a> {
    pub at: SystemTime,
    pub endpoint: &'static str,
    pub route: &'a str,
    pub rule: usize,
    pub backend: Option<&'a str>,
    pub attempts: u32,
    pub status: u16,
    pub request_model: &'a str,
    pub response_model: Option<&'a str>,
    /// The client ID a SecurityPolicy authenticated.
    pub caller: Option<&'a str>,
    pub stream: bool,
    /// What a response cache did: `hit`, `miss` or `bypass`.
    pub cache: Option<&'static str>,
    /// The last upstream fault of any attempt (`connect`, `timeout`, `status_5xx`, … as in
    /// `aigw_upstream_faults_total`): with a 200, a fault that was failed over.
    pub fault: Option<&'static str>,
    pub usage: Option<&'a Usage>,
    /// The request's costs, in declaration order.
    pub costs: &'a [(&'a str, u64)],
    pub duration: Duration,
    pub first_byte: Option<Duration>,
}

impl Line<'_> {
    /// Appends the line's JSON object (without the newline) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time\":\"");
        timestamp(self.at, out);
        out.extend_from_slice(b"\",\"endpoint\":");
        string(self.endpoint, out);
        out.extend_from_slice(b",\"route\":");
        string(self.route, out);
        out.extend_from_slice(b",\"rule\":");
        integer(self.rule as u64, out);
        out.extend_from_slice(b",\"backend\":");
        optional(self.backend, out);
        out.extend_from_slice(b",\"attempts\":");
        integer(u64::from(self.attempts), out);
        out.extend_from_slice(b",\"status\":");
        integer(u64::from(self.status), out);
        out.extend_from_slice(b",\"request_model\":");
        string(self.request_model, out);
        out.extend_from_slice(b",\"response_model\":");
        optional(self.response_model, out);
        out.extend_from_slice(b",\"caller\":");
        optional(self.caller, out);
        out.extend_from_slice(if self.stream {
            b",\"stream\":true"
        } else {
            b",\"stream\":false"
        });
        if let Some(cache) = self.cache {
            out.extend_from_slice(b",\"cache\":");
            string(cache, out);
        }
        if let Some(fault) = self.fault {
            out.extend_from_slice(b",\"upstream_fault\":");
            string(fault, out);
        }
        if let Some(usage) = self.usage {
            tokens(usage, out);
        }
        if !self.costs.is_empty() {
            out.extend_from_slice(b",\"costs\":{");
            for (i, (key, value)) in self.costs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(key, out);
                out.push(b':');
                integer(*value, out);
            }
            out.push(b'}');
        }
        out.extend_from_slice(b",\"duration_ms\":");
        millis(self.duration, out);
        if let Some(first) = self.first_byte {
            out.extend_from_slice(b",\"time_to_first_byte_ms\":");
            millis(first, out);
        }
        out.push(b'}');
    }
}

fn tokens(usage: &Usage, out: &mut Vec<u8>) {
    let fields = [
        ("{\"input\":", usage.input),
        (",\"output\":", usage.output),
        (",\"total\":", usage.total()),
        (",\"cached_input\":", usage.cached_input),
        (",\"cache_creation_input\":", usage.cache_creation_input),
        (",\"reasoning\":", usage.reasoning),
    ];
    out.extend_from_slice(b",\"tokens\":");
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        integer(value, out);
    }
    out.push(b'}');
}

fn integer(value: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Milliseconds with three decimals, exact to the microsecond.
fn millis(duration: Duration, out: &mut Vec<u8>) {
    let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    integer(micros / 1000, out);
    let fraction = micros % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (fraction / 100) as u8,
        b'0' + (fraction / 10 % 10) as u8,
        b'0' + (fraction % 10) as u8,
    ]);
}

fn optional(value: Option<&str>, out: &mut Vec<u8>) {
    match value {
        Some(value) => string(value, out),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string: copied whole when nothing in it needs an escape (the common case: names the
/// compiler checked, model names), else escaped byte by byte as serde_json does.
fn string(value: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = value.as_bytes();
    if bytes.iter().all(|&b| !needs_escape(b)) {
        out.extend_from_slice(bytes);
    } else {
        for &b in bytes {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                b if b < 0x20 => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
                b => out.push(b),
            }
        }
    }
    out.push(b'"');
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// `2026-12-03T08:30:00.123Z` (RFC 3339, UTC, milliseconds).
fn timestamp(at: SystemTime, out: &mut Vec<u8>) {
    thread_local! {
        /// The last second formatted on this thread, and its text up to the fraction.
        static SECOND: std::cell::Cell<(u64, [u8; 20])> = const { std::cell::Cell::new((u64::MAX, [0; 20])) };
    }
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let second = since.as_secs();
    let (cached, mut prefix) = SECOND.get();
    if cached != second {
        prefix = format_second(at);
        SECOND.set((second, prefix));
    }
    out.extend_from_slice(&prefix);
    let millis = since.subsec_millis();
    out.extend_from_slice(&[
        b'0' + (millis / 100) as u8,
        b'0' + (millis / 10 % 10) as u8,
        b'0' + (millis % 10) as u8,
        b'Z',
    ]);
}

/// `2026-12-03T08:30:00.` of `at`'s second.
fn format_second(at: SystemTime) -> [u8; 20] {
    let at: time::OffsetDateTime = at.into();
    let mut prefix = *b"0000-00-00T00:00:00.";
    let year = at.year().clamp(0, 9999).cast_unsigned();
    let fields = [
        (0, year / 100),
        (2, year % 100),
        (5, u32::from(u8::from(at.month()))),
        (8, u32::from(at.day())),
        (11, u32::from(at.hour())),
        (14, u32::from(at.minute())),
        (17, u32::from(at.second())),
    ];
    for (at, value) in fields {
        prefix[at] = b'0' + (value / 10) as u8;
        prefix[at + 1] = b'0' + (value % 10) as u8;
    }
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &Line<'_>) -> serde_json::Value {
        let mut out = Vec::new();
        line.write(&mut out);
        serde_json::from_slice(&out)
            .unwrap_or_else(|e| unreachable!("{e}: {}", String::from_utf8_lossy(&out)))
    }

    fn line<'a>(model: &'a str, costs: &'a [(&'a str, u64)], usage: Option<&'a Usage>) -> Line<'a> {
        Line {
            at: UNIX_EPOCH + Duration::from_millis(1_764_750_600_123),
            endpoint: "/v1/chat/completions",
            route: "default/chat",
            rule: 2,
            backend: Some("default/openai"),
            attempts: 1,
            status: 200,
            request_model: model,
            response_model: None,
            caller: Some("team-a"),
            stream: true,
            cache: Some("hit"),
            fault: None,
            usage,
            costs,
            duration: Duration::from_micros(12_345_678),
            first_byte: Some(Duration::from_micros(7)),
        }
    }

    #[test]
    fn every_field_reads_back_as_json() {
        let usage = Usage {
            input: 10,
            output: 4,
            cached_input: 3,
            cache_creation_input: 2,
            reasoning: 1,
            total: None,
        };
        let costs: [(&str, u64); 2] = [("llm_total_token", 14), ("weighted", u64::MAX)];
        let value = parse(&line("gpt-4o", &costs, Some(&usage)));
        assert_eq!(
            value,
            serde_json::json!({
                "time": "2025-12-03T08:30:00.123Z",
                "endpoint": "/v1/chat/completions",
                "route": "default/chat",
                "rule": 2,
                "backend": "default/openai",
                "attempts": 1,
                "status": 200,
                "request_model": "gpt-4o",
                "response_model": null,
                "caller": "team-a",
                "stream": true,
                "cache": "hit",
                "tokens": {"input": 10, "output": 4, "total": 14, "cached_input": 3,
                           "cache_creation_input": 2, "reasoning": 1},
                "costs": {"llm_total_token": 14, "weighted": u64::MAX},
                "duration_ms": 12345.678,
                "time_to_first_byte_ms": 0.007,
            })
        );
        let bare = parse(&line("m", &[], None));
        assert!(
            bare.get("tokens").is_none() && bare.get("costs").is_none(),
            "{bare}"
        );
    }

    #[test]
    fn strings_a_client_chose_are_escaped() {
        for model in [
            "a\"b",
            "back\\slash",
            "line\nbreak\r\t",
            "\u{1}\u{8}\u{c}\u{1f}",
            "ünï €",
            "",
        ] {
            let value = parse(&line(model, &[], None));
            assert_eq!(value["request_model"], model);
        }
    }

    #[test]
    fn timestamps_match_rfc3339_across_seconds_and_dates() {
        let format = time::format_description::well_known::Rfc3339;
        for millis in [
            0,
            999,
            1_000,
            951_782_399_999,
            951_782_400_000,
            1_764_750_600_123,
            4_102_444_799_001,
        ] {
            let at = UNIX_EPOCH + Duration::from_millis(millis);
            let mut out = Vec::new();
            timestamp(at, &mut out);
            let parsed = time::OffsetDateTime::parse(&String::from_utf8_lossy(&out), &format)
                .unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(
                parsed.unix_timestamp_nanos(),
                i128::from(millis) * 1_000_000,
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
    }
}
