//! What every translated stream shares, whatever the provider: the writer of OpenAI chunks,
//! whether the client asked for usage, and the one ending a client sees: `[DONE]` (after the
//! usage chunk when asked for), or a single error event.

use crate::openai::{self, ChunkWriter};
use crate::{Ids, Usage};
use bytes::BytesMut;

#[derive(Debug)]
pub(crate) struct Core {
    pub writer: ChunkWriter,
    include_usage: bool,
    ended: bool,
}

impl Core {
    pub fn new(ids: Ids, model: &str, include_usage: bool) -> Self {
        Core {
            writer: ChunkWriter::new(ids, model),
            include_usage,
            ended: false,
        }
    }

    /// Nothing more is written once the stream has ended.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Ends the stream with an error event, unless it has ended.
    pub fn fail(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        if !self.ended {
            self.ended = true;
            crate::translate::stream_error(out, kind, message);
        }
    }

    /// Ends the stream: the usage chunk when the client asked for it, then `[DONE]`.
    pub fn end(&mut self, usage: Option<Usage>, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        if let (true, Some(usage)) = (self.include_usage, usage) {
            self.writer.usage(out, usage);
        }
        openai::done(out);
        self.ended = true;
    }

    /// The upstream closed before its last event: an error event, unless the stream ended.
    pub fn cut(&mut self, out: &mut BytesMut) {
        self.fail(
            "upstream_error",
            "the provider's stream ended before its last event",
            out,
        );
    }

    /// An event that could not be read ends the stream.
    pub fn unreadable(&mut self, out: &mut BytesMut) {
        self.fail(
            "upstream_error",
            "the provider sent a stream event that could not be read",
            out,
        );
    }
}
