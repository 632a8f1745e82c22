//! What one AI request is, as the stages of the request path share it: the endpoint it came
//! to, and the exchange (generation, rule, parts, body, model) the backend call works from;
//! with the helpers every stage uses (hop-by-hop headers, the weighted choice, the prompt
//! guard on a whole answer). The handler builds an [`Exchange`]; `forward`, `translated`,
//! `plain` and `extproc` read it. This module imports none of them, so the request path has no
//! import circle (`translated` no longer reaches back into `forward` for the answer guard).

use crate::body::Peek;
use crate::generation::Generation;
use aigw_providers::ClientApi;
use aigw_table::{ListenerId, Selected};
use bytes::Bytes;
use std::sync::Arc;

/// The request header the chosen rule matches the model against (the reference's name).
pub const MODEL_HEADER: &str = "x-ai-eg-model";

/// The endpoints the gateway serves: OpenAI's, Anthropic's under `/anthropic` and Cohere's
/// under `/cohere`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Models,
    Responses,
    ImagesGenerations,
    AudioSpeech,
    AudioTranscriptions,
    AudioTranslations,
    /// Anthropic's Messages API.
    Messages,
    CountTokens,
    /// Cohere's rerank.
    Rerank,
}

impl Endpoint {
    pub fn of(path: &str) -> Option<Endpoint> {
        Endpoint::ALL.iter().copied().find(|e| e.path() == path)
    }

    const ALL: [Endpoint; 12] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
        Endpoint::Models,
        Endpoint::Responses,
        Endpoint::ImagesGenerations,
        Endpoint::AudioSpeech,
        Endpoint::AudioTranscriptions,
        Endpoint::AudioTranslations,
        Endpoint::Messages,
        Endpoint::CountTokens,
        Endpoint::Rerank,
    ];

    /// The path it is served at.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
            Endpoint::Models => "/v1/models",
            Endpoint::Responses => "/v1/responses",
            Endpoint::ImagesGenerations => "/v1/images/generations",
            Endpoint::AudioSpeech => "/v1/audio/speech",
            Endpoint::AudioTranscriptions => "/v1/audio/transcriptions",
            Endpoint::AudioTranslations => "/v1/audio/translations",
            Endpoint::Messages => "/anthropic/v1/messages",
            Endpoint::CountTokens => "/anthropic/v1/messages/count_tokens",
            Endpoint::Rerank => "/cohere/v2/rerank",
        }
    }

    /// Bodies sent as `multipart/form-data`.
    pub fn multipart(self) -> bool {
        matches!(
            self,
            Endpoint::AudioTranscriptions | Endpoint::AudioTranslations
        )
    }

    /// Endpoints whose answers a response cache may keep: JSON requests for generated text or
    /// embeddings.
    pub fn cacheable(self) -> bool {
        self.has_usage()
    }

    /// Endpoints whose responses carry token usage.
    pub fn has_usage(self) -> bool {
        matches!(
            self,
            Endpoint::ChatCompletions
                | Endpoint::Completions
                | Endpoint::Embeddings
                | Endpoint::Responses
                | Endpoint::Messages
        )
    }

    /// The API the client speaks, which shapes the gateway's own errors too.
    pub fn api(path: &str) -> ClientApi {
        if path.starts_with("/anthropic/") {
            ClientApi::Anthropic
        } else if path.starts_with("/cohere/") {
            ClientApi::Cohere
        } else {
            ClientApi::OpenAI
        }
    }
}

/// Everything about one request that the backend call needs.
pub struct Exchange<'a> {
    pub generation: &'a Arc<Generation>,
    pub listener: ListenerId,
    pub selected: Selected<'a>,
    pub endpoint: Endpoint,
    pub parts: &'a http::request::Parts,
    pub body: &'a Bytes,
    pub peek: &'a Peek<'a>,
    /// The client's address (the quota selectors' `sourceCIDR`).
    pub peer: std::net::IpAddr,
    /// The prompt guard in force, when it checks answers.
    pub answer_guard: Option<usize>,
}

impl Exchange<'_> {
    /// A whole answer in the client's API as the prompt guard in force leaves it: masked, or
    /// refused with a 502 (the backend's answer is not passed on).
    pub fn guard_answer(&self, body: Bytes) -> Result<Bytes, crate::error::ProxyError> {
        let Some(index) = self.answer_guard else {
            return Ok(body);
        };
        match self.generation.guards.answer(index, &body) {
            Ok(None) => Ok(body),
            Ok(Some(masked)) => Ok(masked.into()),
            Err(refused) => Err(crate::error::ProxyError::bad_gateway(format!(
                "the answer was refused by the prompt guard `{}`: it contains {}",
                refused.policy, refused.found
            ))),
        }
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1): never passed on, in either direction.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];
/// A weighted random choice (`None` when no candidate has weight).
pub fn pick<'a, T>(
    candidates: impl Iterator<Item = &'a T> + Clone,
    weight: impl Fn(&T) -> u32,
) -> Option<&'a T> {
    let total: u64 = candidates.clone().map(|b| u64::from(weight(b))).sum();
    if total == 0 {
        return None;
    }
    let mut point = fastrand::u64(0..total);
    candidates.into_iter().find(|b| {
        let weight = u64::from(weight(b));
        if point < weight {
            return true;
        }
        point -= weight;
        false
    })
}

/// The value of cookie `name` among the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}
