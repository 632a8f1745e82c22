//! Anthropic clients (`/anthropic/v1/messages`, `/anthropic/v1/messages/count_tokens`): the
//! Anthropic family natively, OpenAI, Azure OpenAI and Bedrock Converse translated.
//!
//! `count_tokens` goes to Anthropic, Vertex AI and Bedrock (CountTokens, with the invoke body
//! for `AWSAnthropic` and a Converse input for `AWSBedrock`), and to OpenAI's
//! `/v1/responses/input_tokens` with the conversation as Responses items. Azure OpenAI
//! documents no counting endpoint: a count for it is 501.

use super::answer::Kind;
use super::{ClientRequest, Operation, Target, Translation, UpstreamRequest};
use super::{gcp_path, untranslated};
use crate::anthropic::from_anthropic::{self, Platform, count_model};
use crate::anthropic::messages::MessagesRequest;
use crate::{Error, Schema, anthropic, azure, bedrock, openai};

pub(super) fn translate(
    request: &ClientRequest<'_>,
    target: &Target<'_>,
) -> Result<Translation, Error> {
    let schema = target.schema;
    let operation = request.operation;
    let count = match operation {
        Operation::Messages => false,
        Operation::CountTokens => true,
        _ => return Err(untranslated(schema, operation)),
    };
    let body = request.body;
    let model = target.model;
    // Read whole even when it goes on unchanged: a malformed request is the client's 400,
    // not a provider's.
    let parsed = MessagesRequest::parse(body)?;
    let upstream = match schema {
        Schema::Anthropic => {
            let path = if count {
                format!("{}/messages/count_tokens", target.prefix)
            } else {
                format!("{}/messages", target.prefix)
            };
            let kind = if count {
                Kind::NativeCount
            } else {
                Kind::NativeMessages
            };
            Upstream {
                path,
                body: None,
                kind,
            }
        }
        Schema::GCPAnthropic => {
            let version = target.version.unwrap_or(anthropic::VERTEX_VERSION);
            let platform = Platform::Vertex { version };
            if count {
                Upstream {
                    path: gcp_path(target, "anthropic", "count-tokens", "rawPredict")?,
                    body: from_anthropic::count_request(body, platform)?,
                    kind: Kind::NativeCount,
                }
            } else {
                let method = if parsed.stream {
                    "streamRawPredict"
                } else {
                    "rawPredict"
                };
                Upstream {
                    path: gcp_path(target, "anthropic", model, method)?,
                    body: from_anthropic::request(body, platform)?,
                    kind: Kind::NativeMessages,
                }
            }
        }
        Schema::AWSAnthropic => {
            let version = target.version.unwrap_or(anthropic::BEDROCK_VERSION);
            let platform = Platform::Bedrock {
                version,
                beta: request.anthropic_beta,
            };
            if count {
                Upstream {
                    path: bedrock::model_path(count_model(model), "count-tokens"),
                    body: from_anthropic::count_request(body, platform)?,
                    kind: Kind::BedrockCount,
                }
            } else {
                let operation = if parsed.stream {
                    "invoke-with-response-stream"
                } else {
                    "invoke"
                };
                Upstream {
                    path: bedrock::model_path(model, operation),
                    body: from_anthropic::request(body, platform)?,
                    kind: Kind::AwsNativeMessages,
                }
            }
        }
        Schema::AWSBedrock => {
            if count {
                Upstream {
                    path: bedrock::model_path(count_model(model), "count-tokens"),
                    body: Some(bedrock::from_anthropic::count_request(&parsed, model)?),
                    kind: Kind::BedrockCount,
                }
            } else {
                let operation = if parsed.stream {
                    "converse-stream"
                } else {
                    "converse"
                };
                Upstream {
                    path: bedrock::model_path(model, operation),
                    body: Some(bedrock::from_anthropic::request(&parsed, model)?),
                    kind: Kind::BedrockMessages,
                }
            }
        }
        Schema::OpenAI if count => Upstream {
            path: format!("{}/responses/input_tokens", target.prefix),
            body: Some(openai::count::request(&parsed, schema.as_str())?),
            kind: Kind::OpenAICount,
        },
        Schema::OpenAI | Schema::AzureOpenAI if !count => {
            let path = if schema == Schema::OpenAI {
                format!("{}/chat/completions", target.prefix)
            } else {
                azure::path(Operation::ChatCompletions, model, target.version)
                    .ok_or_else(|| untranslated(schema, operation))?
            };
            Upstream {
                path,
                body: Some(openai::from_anthropic::request(&parsed, schema.as_str())?),
                kind: Kind::OpenAIMessages,
            }
        }
        _ => return Err(untranslated(schema, operation)),
    };
    let header_defaults = if schema == Schema::Anthropic {
        vec![("anthropic-version", anthropic::API_VERSION)]
    } else {
        Vec::new()
    };
    Ok(Translation::Translated {
        request: UpstreamRequest {
            path: upstream.path,
            body: upstream.body,
            headers: Vec::new(),
            header_defaults,
        },
        response: super::ResponseTranslator::new(upstream.kind, model.to_owned(), false),
    })
}

struct Upstream {
    path: String,
    body: Option<Vec<u8>>,
    kind: Kind,
}
