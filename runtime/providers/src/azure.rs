//! Azure OpenAI: the OpenAI API under per-deployment paths with an `api-version` query. The
//! body is OpenAI's and passes unchanged; only the path is Azure's.
//!
//! Reference: <https://learn.microsoft.com/azure/ai-foundry/openai/reference>.

use crate::Operation;

/// The `api-version` when the backend's schema gives none: the latest GA version of the
/// data-plane API when this was written.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// The upstream path and query for `operation` on deployment `model`; `None` for an
/// operation Azure OpenAI does not serve.
pub fn path(operation: Operation, model: &str, version: Option<&str>) -> Option<String> {
    let version = version.unwrap_or(DEFAULT_API_VERSION);
    let endpoint = match operation {
        Operation::ChatCompletions => "chat/completions",
        Operation::Completions => "completions",
        Operation::Embeddings => "embeddings",
        // The Responses API is not per deployment: the model is in the body.
        Operation::Responses => return Some(format!("/openai/responses?api-version={version}")),
        _ => return None,
    };
    let mut path = String::from("/openai/deployments/");
    crate::translate::escape_segment(model, &mut path);
    Some(format!("{path}/{endpoint}?api-version={version}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_paths_carry_the_api_version() {
        assert_eq!(
            path(
                Operation::ChatCompletions,
                "gpt-4o",
                Some("2025-01-01-preview")
            )
            .as_deref(),
            Some("/openai/deployments/gpt-4o/chat/completions?api-version=2025-01-01-preview")
        );
        assert_eq!(
            path(Operation::Embeddings, "my embed", None).as_deref(),
            Some("/openai/deployments/my%20embed/embeddings?api-version=2024-10-21")
        );
        assert_eq!(path(Operation::Messages, "m", None), None);
    }
}
