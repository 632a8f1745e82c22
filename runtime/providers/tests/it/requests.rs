//! Requests: `testdata/translate/openai/<case>.json` → `<case>.<schema>.snap`, the upstream
//! request (method, path, provider headers, body) or the error the client gets.

use aigw_providers::{ClientApi, ClientRequest, Operation, Schema, Target, Translation, translate};
use std::path::PathBuf;

/// The schemas a chat completion is translated to (OpenAI itself passes through).
const TRANSLATED: &[Schema] = &[
    Schema::AzureOpenAI,
    Schema::AWSBedrock,
    Schema::Anthropic,
    Schema::AWSAnthropic,
    Schema::GCPAnthropic,
    Schema::GCPVertexAI,
];

/// Which schemas each case covers. The README's provider table is this table.
const CASES: Cases = &[
    ("chat_basic", TRANSLATED),
    ("chat_tools", TRANSLATED),
    ("chat_vision_stream", TRANSLATED),
    ("chat_image_url", TRANSLATED),
    ("chat_json_schema", TRANSLATED),
    ("chat_json_object", TRANSLATED),
    ("chat_n2", TRANSLATED),
    ("chat_unknown_field", TRANSLATED),
    ("chat_temperature", TRANSLATED),
    ("chat_tool_choice_none", TRANSLATED),
    ("chat_malformed", TRANSLATED),
    ("chat_thinking_conflict", TRANSLATED),
    ("chat_top_k_nova", TRANSLATED),
    ("chat_tool_results", TRANSLATED),
    ("chat_penalties_seed", TRANSLATED),
    ("embeddings_one", TRANSLATED),
    ("embeddings_many", TRANSLATED),
    ("embeddings_tokens", TRANSLATED),
];

fn target(schema: Schema, model: &str) -> Target<'_> {
    Target {
        schema,
        model,
        version: None,
        gcp: Some(("my-project", "us-east5")),
        prefix: "/v1",
    }
}

/// The case's operation, by its name.
fn operation(case: &str) -> Operation {
    if case.starts_with("embeddings_") {
        Operation::Embeddings
    } else {
        Operation::ChatCompletions
    }
}

/// The schemas an Anthropic client's request goes to: the Anthropic family natively, the
/// others translated.
const FROM_ANTHROPIC: &[Schema] = &[
    Schema::Anthropic,
    Schema::GCPAnthropic,
    Schema::AWSAnthropic,
    Schema::OpenAI,
    Schema::AzureOpenAI,
    Schema::AWSBedrock,
];

/// The schemas an Anthropic client's request is translated for (the rest relay it).
const ANTHROPIC_TRANSLATED: &[Schema] = &[Schema::OpenAI, Schema::AzureOpenAI, Schema::AWSBedrock];

/// The Anthropic client's cases (`testdata/translate/anthropic/`): `count_*` are
/// `count_tokens` requests.
const ANTHROPIC_CASES: Cases = &[
    ("messages_basic", FROM_ANTHROPIC),
    ("messages_tools_stream", FROM_ANTHROPIC),
    ("messages_images", FROM_ANTHROPIC),
    ("messages_thinking", FROM_ANTHROPIC),
    ("messages_server_tool", FROM_ANTHROPIC),
    ("messages_unknown_field", FROM_ANTHROPIC),
    ("messages_top_k", FROM_ANTHROPIC),
    ("messages_tool_choice_any", FROM_ANTHROPIC),
    ("messages_malformed", FROM_ANTHROPIC),
    ("messages_structured_output", FROM_ANTHROPIC),
    // Invalid for Anthropic too: the Anthropic family relays it for the provider to judge.
    ("messages_output_format_unknown", ANTHROPIC_TRANSLATED),
    ("count_basic", FROM_ANTHROPIC),
    ("count_conversation", FROM_ANTHROPIC),
    ("count_generation_fields", FROM_ANTHROPIC),
    ("count_server_tool", FROM_ANTHROPIC),
    ("count_structured_output", FROM_ANTHROPIC),
];

fn render(schema: Schema, request: &ClientRequest<'_>) -> String {
    // The proxy gives the model it read from the body (or the backend's override).
    let parsed: serde_json::Value = serde_json::from_slice(request.body).expect("cases are JSON");
    let model = parsed["model"].as_str().unwrap_or_default();
    let outcome = translate(request, &target(schema, model));
    let value = match outcome {
        Ok(Translation::Passthrough) => serde_json::json!({"passthrough": true}),
        Ok(Translation::Translated {
            request,
            response: _,
        }) => {
            let body = match &request.body {
                Some(b) => serde_json::from_slice(b).expect("translated bodies are JSON"),
                None => serde_json::Value::String("(the client's body, unchanged)".into()),
            };
            let headers: serde_json::Map<_, _> = request
                .headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned())))
                .collect();
            let mut rendered = serde_json::json!({"method": "POST", "path": request.path, "headers": headers, "body": body});
            if !request.header_defaults.is_empty() {
                let defaults: serde_json::Map<_, _> = request
                    .header_defaults
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned())))
                    .collect();
                rendered["header_defaults"] = defaults.into();
            }
            serde_json::json!({ "request": rendered })
        }
        Err(error) => {
            serde_json::json!({"error": {"status": error.status(), "message": error.to_string()}})
        }
    };
    crate::pretty(&value)
}

/// A client's table of cases: each case and the schemas it covers.
pub(crate) type Cases = &'static [(&'static str, &'static [Schema])];

/// The client APIs with golden cases: each one's directory under `testdata/translate/` and
/// its table of cases.
pub(crate) const CLIENTS: [(&str, Cases); 2] = [("openai", CASES), ("anthropic", ANTHROPIC_CASES)];

/// One golden: a client's case through one schema, as the code renders it now.
pub(crate) struct Golden {
    pub input: PathBuf,
    pub case: &'static str,
    pub schema: Schema,
    pub rendered: String,
}

impl Golden {
    /// `<case>.<schema>`, the snapshot's name.
    pub fn name(&self) -> String {
        format!(
            "{}.{}",
            self.case,
            self.schema.as_str().to_ascii_lowercase()
        )
    }
}

/// Every golden of `cases` (a client's table, read from `translate/<client>/`), in order.
pub(crate) fn goldens(client: &str, cases: Cases) -> Vec<Golden> {
    let dir = crate::testdata().join("translate").join(client);
    let mut out = Vec::new();
    for (case, schemas) in cases {
        let input = dir.join(format!("{case}.json"));
        let body = std::fs::read(&input).expect("case");
        let request = match client {
            "anthropic" => anthropic_request(case, &body),
            _ => ClientRequest::openai(operation(case), &body),
        };
        for schema in *schemas {
            out.push(Golden {
                input: input.clone(),
                case,
                schema: *schema,
                rendered: render(*schema, &request),
            });
        }
    }
    out
}

#[test]
fn every_case_translates_to_every_schema_it_covers() {
    for (client, cases) in CLIENTS {
        let dir = crate::testdata().join("translate").join(client);
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("testdata/translate/<client>")
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".json").map(str::to_owned)
            })
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = cases.iter().map(|(c, _)| (*c).to_owned()).collect();
        listed.sort();
        assert_eq!(
            on_disk, listed,
            "every {client} case file is in its table and every entry has a file"
        );
        for golden in goldens(client, cases) {
            crate::snapshot(&dir, &golden.input, &golden.name(), &golden.rendered);
        }
    }
}

/// An Anthropic client's request of `case`: `count_*` are `count_tokens` requests.
fn anthropic_request<'a>(case: &str, body: &'a [u8]) -> ClientRequest<'a> {
    let operation = if case.starts_with("count_") {
        Operation::CountTokens
    } else {
        Operation::Messages
    };
    ClientRequest {
        api: ClientApi::Anthropic,
        operation,
        body,
        // The header Claude Code sends for interleaved thinking.
        anthropic_beta: case
            .contains("thinking")
            .then_some("interleaved-thinking-2025-05-14"),
    }
}

#[test]
fn openai_passes_through_untouched() {
    let outcome = translate(
        &ClientRequest::openai(Operation::ChatCompletions, b"not even json"),
        &target(Schema::OpenAI, "m"),
    );
    assert!(matches!(outcome, Ok(Translation::Passthrough)));
}

#[test]
fn gcp_backends_without_project_and_region_are_a_configuration_error() {
    let body = br#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#;
    let target = Target {
        schema: Schema::GCPAnthropic,
        model: "claude",
        version: None,
        gcp: None,
        prefix: "/v1",
    };
    let error = translate(
        &ClientRequest::openai(Operation::ChatCompletions, body),
        &target,
    )
    .expect_err("no project");
    assert_eq!(error.status(), 500);
}
