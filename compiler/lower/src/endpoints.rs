//! Which client endpoints each backend schema can serve: the translation matrix of the reference
//! data plane, extended by the translations aigw adds (Anthropic Messages to OpenAI and Bedrock).
//! A rule fails over among its backends, so every backend of a rule must serve the endpoint a
//! client calls; `checks` refuses rules whose backends share none.

use aigw_syntax::model::ApiSchemaName;

/// A client-facing endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    ImagesGenerations,
    Audio,
    AnthropicMessages,
    CohereRerank,
}

impl Endpoint {
    /// The path clients call.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
            Endpoint::Responses => "/v1/responses",
            Endpoint::ImagesGenerations => "/v1/images/generations",
            Endpoint::Audio => "/v1/audio/*",
            Endpoint::AnthropicMessages => "/anthropic/v1/messages",
            Endpoint::CohereRerank => "/cohere/v2/rerank",
        }
    }
}

/// The endpoints a backend schema serves.
pub fn served_by(schema: ApiSchemaName) -> &'static [Endpoint] {
    use Endpoint::*;
    match schema {
        ApiSchemaName::OpenAI => &[
            ChatCompletions,
            Completions,
            Embeddings,
            Responses,
            ImagesGenerations,
            Audio,
            AnthropicMessages,
        ],
        ApiSchemaName::AzureOpenAI => &[ChatCompletions, Embeddings, Responses],
        ApiSchemaName::AWSBedrock => &[ChatCompletions, Embeddings, AnthropicMessages],
        ApiSchemaName::GCPVertexAI => &[ChatCompletions, Embeddings],
        ApiSchemaName::GCPAnthropic | ApiSchemaName::AWSAnthropic | ApiSchemaName::Anthropic => {
            &[ChatCompletions, AnthropicMessages]
        }
        ApiSchemaName::Cohere => &[CohereRerank],
    }
}

/// The endpoints every one of `schemas` serves.
pub fn common(schemas: &[ApiSchemaName]) -> Vec<Endpoint> {
    let Some((first, rest)) = schemas.split_first() else {
        return Vec::new();
    };
    served_by(*first)
        .iter()
        .copied()
        .filter(|e| rest.iter().all(|s| served_by(*s).contains(e)))
        .collect()
}

/// The ambient credential chain a backend of `schema` uses when no policy targets it, in the
/// order the data plane tries it; `None` for schemas that are no cloud's.
pub fn ambient_chain(schema: ApiSchemaName) -> Option<&'static str> {
    match schema {
        ApiSchemaName::AWSBedrock | ApiSchemaName::AWSAnthropic => Some(
            "AWS default chain: environment keys, shared config and credentials files (AWS_PROFILE), web identity, ECS / EKS Pod Identity, IMDSv2",
        ),
        ApiSchemaName::GCPVertexAI | ApiSchemaName::GCPAnthropic => Some(
            "GCP Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS, then the metadata server",
        ),
        ApiSchemaName::AzureOpenAI => {
            Some("Azure: environment client credentials, then workload identity")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_endpoints() {
        assert_eq!(
            common(&[ApiSchemaName::OpenAI, ApiSchemaName::AWSBedrock]),
            vec![
                Endpoint::ChatCompletions,
                Endpoint::Embeddings,
                Endpoint::AnthropicMessages
            ]
        );
        assert!(common(&[ApiSchemaName::OpenAI, ApiSchemaName::Cohere]).is_empty());
        assert_eq!(
            common(&[ApiSchemaName::Cohere]),
            vec![Endpoint::CohereRerank]
        );
    }
}
