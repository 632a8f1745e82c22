//! Translation between the client APIs aigw serves and the APIs of the providers it calls:
//! requests, responses, stream events and errors. Pure: no network, no clock, no secrets
//! (credentials are the proxy's business; a translation only says which path and headers the
//! provider wants).
//!
//! The grid is `providers::<provider>::from_<client_api>::{request, response, stream_event,
//! error}`; [`translate`] is the one entry the proxy calls per request and backend schema.
//!
//! *Invariant*: a request field a provider cannot honour is an [`Error::Unsupported`] (422)
//! naming the field and the provider, never a silent drop.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod embeddings;
pub mod gemini;
pub mod openai;
pub mod sse;
mod stream;
mod translate;

pub use translate::{
    ClientApi, ClientRequest, Ids, Operation, ResponseTranslator, StreamTranslator, Target,
    Translation, UpstreamRequest, translate,
};

use std::borrow::Cow;

/// A backend's `schema.name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Schema {
    OpenAI,
    AzureOpenAI,
    AWSBedrock,
    AWSAnthropic,
    GCPVertexAI,
    GCPAnthropic,
    Anthropic,
    Cohere,
}

impl Schema {
    pub fn parse(name: &str) -> Option<Schema> {
        Some(match name {
            "OpenAI" => Schema::OpenAI,
            "AzureOpenAI" => Schema::AzureOpenAI,
            "AWSBedrock" => Schema::AWSBedrock,
            "AWSAnthropic" => Schema::AWSAnthropic,
            "GCPVertexAI" => Schema::GCPVertexAI,
            "GCPAnthropic" => Schema::GCPAnthropic,
            "Anthropic" => Schema::Anthropic,
            "Cohere" => Schema::Cohere,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Schema::OpenAI => "OpenAI",
            Schema::AzureOpenAI => "AzureOpenAI",
            Schema::AWSBedrock => "AWSBedrock",
            Schema::AWSAnthropic => "AWSAnthropic",
            Schema::GCPVertexAI => "GCPVertexAI",
            Schema::GCPAnthropic => "GCPAnthropic",
            Schema::Anthropic => "Anthropic",
            Schema::Cohere => "Cohere",
        }
    }
}

/// Token usage, as every provider's counts map onto it. `input` includes cached and
/// cache-creation tokens (OpenAI's `prompt_tokens` does); `output` includes reasoning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub cache_creation_input: u64,
    pub reasoning: u64,
    /// The provider's own total, when it gives one.
    pub total: Option<u64>,
}

impl Usage {
    pub fn total(&self) -> u64 {
        // Saturating: a provider (or a hostile upstream) may report any count.
        self.total.unwrap_or(self.input.saturating_add(self.output))
    }
}

/// Why a request cannot be translated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request is malformed (400).
    #[error("{0}")]
    Invalid(Cow<'static, str>),
    /// The request asks for something the provider cannot do (422).
    #[error("{what} is not supported by the `{schema}` backend")]
    Unsupported {
        schema: &'static str,
        what: Cow<'static, str>,
    },
    /// This build has no translation for the pair (501).
    #[error(
        "the `{schema}` backend cannot serve `{}` requests in this build", operation.path()
    )]
    Untranslated {
        schema: &'static str,
        operation: Operation,
    },
    /// The backend's configuration lacks what the translation needs (500).
    #[error("{0}")]
    Config(&'static str),
}

impl Error {
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Error::Invalid(message.into())
    }

    pub fn unsupported(schema: &'static str, what: impl Into<Cow<'static, str>>) -> Self {
        Error::Unsupported {
            schema,
            what: what.into(),
        }
    }

    /// The HTTP status the client gets.
    pub fn status(&self) -> u16 {
        match self {
            Error::Invalid(_) => 400,
            Error::Unsupported { .. } => 422,
            Error::Untranslated { .. } => 501,
            Error::Config(_) => 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #21 (found by fuzzing): counts an upstream reports may be any number.
    #[test]
    fn the_total_saturates() {
        let usage = Usage {
            input: u64::MAX,
            output: 7,
            ..Usage::default()
        };
        assert_eq!(usage.total(), u64::MAX);
    }
}
