//! The AWS event stream (`application/vnd.amazon.eventstream`) as frames: bytes in, whole
//! messages out, split anywhere. The binary format (prelude, headers, CRCs) is decoded by
//! `aws-smithy-eventstream`; this module only says which messages are events and which are
//! errors.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::{Bytes, BytesMut};

/// A decoded message.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// `:message-type` `event`: its `:event-type` and JSON payload.
    Event { name: String, payload: Bytes },
    /// `:message-type` `exception` (or `error`): its type and payload.
    Exception { kind: String, payload: Bytes },
}

/// Collects stream bytes and hands out complete messages.
#[derive(Debug, Default)]
pub struct Decoder {
    held: BytesMut,
    decoder: MessageFrameDecoder,
}

/// The stream is not an event stream (bad prelude or checksum).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the provider's event stream is corrupt")]
pub struct Corrupt;

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.held.extend_from_slice(bytes);
    }

    pub fn next_frame(&mut self) -> Result<Option<Frame>, Corrupt> {
        match self.decoder.decode_frame(&mut self.held) {
            Ok(DecodedFrame::Complete(message)) => Ok(Some(frame(&message))),
            Ok(DecodedFrame::Incomplete) => Ok(None),
            Err(_) => Err(Corrupt),
        }
    }

    /// Bytes of a message not yet complete.
    pub fn pending(&self) -> usize {
        self.held.len()
    }
}

fn header<'m>(message: &'m Message, name: &str) -> Option<&'m str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

fn frame(message: &Message) -> Frame {
    let payload = message.payload().clone();
    match header(message, ":message-type") {
        Some("exception") => Frame::Exception {
            kind: header(message, ":exception-type")
                .unwrap_or("exception")
                .to_owned(),
            payload,
        },
        Some("error") => Frame::Exception {
            kind: header(message, ":error-code").unwrap_or("error").to_owned(),
            payload: header(message, ":error-message")
                .map(|m| Bytes::from(serde_json::json!({ "message": m }).to_string()))
                .unwrap_or(payload),
        },
        _ => Frame::Event {
            name: header(message, ":event-type").unwrap_or("").to_owned(),
            payload,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue};

    fn encoded(kind: &str, name_header: &str, name: &str, payload: &str) -> Vec<u8> {
        let message = Message::new(payload.as_bytes().to_vec())
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String(kind.to_owned().into()),
            ))
            .add_header(Header::new(
                name_header.to_owned(),
                HeaderValue::String(name.to_owned().into()),
            ));
        let mut out = Vec::new();
        let _ = write_message_to(&message, &mut out);
        out
    }

    #[test]
    fn messages_split_anywhere_decode_whole() {
        let mut stream = encoded("event", ":event-type", "contentBlockDelta", r#"{"t":"é"}"#);
        stream.extend(encoded(
            "exception",
            ":exception-type",
            "throttlingException",
            r#"{"message":"slow down"}"#,
        ));
        let expected = vec![
            Frame::Event {
                name: "contentBlockDelta".into(),
                payload: Bytes::from_static(r#"{"t":"é"}"#.as_bytes()),
            },
            Frame::Exception {
                kind: "throttlingException".into(),
                payload: Bytes::from_static(br#"{"message":"slow down"}"#),
            },
        ];
        for at in 0..stream.len() {
            let mut decoder = Decoder::default();
            let mut frames = Vec::new();
            for part in [&stream[..at], &stream[at..]] {
                decoder.push(part);
                while let Ok(Some(frame)) = decoder.next_frame() {
                    frames.push(frame);
                }
            }
            assert_eq!(frames, expected, "split at {at}");
            assert_eq!(decoder.pending(), 0);
        }
    }

    #[test]
    fn a_corrupt_stream_is_an_error_not_a_hang() {
        let mut stream = encoded("event", ":event-type", "messageStop", "{}");
        let last = stream.len() - 1;
        stream[last] ^= 0xff; // the message CRC
        let mut decoder = Decoder::default();
        decoder.push(&stream);
        assert_eq!(decoder.next_frame(), Err(Corrupt));
    }
}
