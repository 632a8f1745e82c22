//! Answers to Anthropic clients: the canned replies of `testdata/upstream/<provider>/`
//! (Anthropic's own, Bedrock Converse, OpenAI chat completions) back in Anthropic's Messages
//! API, as `<case>.anthropic.snap` beside each reply. Streams are fed whole and byte by byte
//! and must come out the same; Anthropic's events inside Bedrock's event stream (Claude on
//! Bedrock's invoke) come out as Anthropic's own server-sent events.

use crate::responses::{BEDROCK_ERROR, feed, sse, stem, streamed_replies, whole_replies};
use aigw_providers::{
    ClientApi, ClientRequest, Operation, ResponseTranslator, Schema, Target, Translation,
};

/// The response translator of an Anthropic client's message sent to `schema`.
fn translator(schema: Schema, stream: bool) -> ResponseTranslator {
    let body = serde_json::json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    });
    let body = serde_json::to_vec(&body).expect("json");
    let request = ClientRequest {
        api: ClientApi::Anthropic,
        operation: Operation::Messages,
        body: &body,
        anthropic_beta: None,
    };
    let target = Target {
        schema,
        model: "claude-sonnet-4-5",
        version: None,
        gcp: Some(("p", "r")),
        prefix: "/v1",
    };
    match aigw_providers::translate(&request, &target) {
        Ok(Translation::Translated { response, .. }) => response,
        other => panic!("{schema:?} serves an Anthropic client: {other:?}"),
    }
}

#[test]
fn anthropic_answers_reach_anthropic_clients_as_they_are() {
    let dir = crate::testdata().join("upstream/anthropic");
    let plain = translator(Schema::Anthropic, false);
    for (path, out) in whole_replies(&dir, "anthropic", &plain, None) {
        if !stem(&path).starts_with("error_") {
            // The body goes out byte for byte.
            let given: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("json");
            let seen: serde_json::Value = serde_json::from_str(&out).expect("json");
            assert_eq!(seen["body"], given, "{}", path.display());
        }
    }
    let relay = translator(Schema::Anthropic, true);
    let vertex = translator(Schema::GCPAnthropic, true);
    let bedrock = translator(Schema::AWSAnthropic, true);
    for (path, text, out) in streamed_replies(&dir, "sse", "anthropic", &relay, sse) {
        assert_eq!(feed(&vertex, &[text.as_bytes()]), out, "Vertex AI");
        let framed = aigw_testkit::wrapped(&text);
        assert_eq!(
            feed(&bedrock, &[&framed]),
            out,
            "{} through Bedrock framing",
            path.display()
        );
    }
}

#[test]
fn bedrock_answers_translate_to_anthropic() {
    let dir = crate::testdata().join("upstream/bedrock");
    let plain = translator(Schema::AWSBedrock, false);
    whole_replies(&dir, "anthropic", &plain, Some(BEDROCK_ERROR));
    let streaming = translator(Schema::AWSBedrock, true);
    streamed_replies(
        &dir,
        "jsonl",
        "anthropic",
        &streaming,
        aigw_testkit::event_stream,
    );
}

#[test]
fn openai_answers_translate_to_anthropic() {
    let dir = crate::testdata().join("upstream/openai");
    for schema in [Schema::OpenAI, Schema::AzureOpenAI] {
        whole_replies(&dir, "anthropic", &translator(schema, false), None);
        streamed_replies(&dir, "sse", "anthropic", &translator(schema, true), sse);
    }
}

/// The upstream path and response translator of a `count_tokens` request sent to `schema`.
fn count(schema: Schema, model: &str, body: &[u8]) -> (String, ResponseTranslator) {
    let request = ClientRequest {
        api: ClientApi::Anthropic,
        operation: Operation::CountTokens,
        body,
        anthropic_beta: None,
    };
    let target = Target {
        schema,
        model,
        version: None,
        gcp: None,
        prefix: "/v1",
    };
    match aigw_providers::translate(&request, &target) {
        Ok(Translation::Translated { request, response }) => (request.path, response),
        other => panic!("{schema:?} counts tokens: {other:?}"),
    }
}

#[test]
fn counts_come_back_in_anthropic_shape() {
    let body = br#"{"model":"anthropic.claude-v2","messages":[{"role":"user","content":"hi"}]}"#;
    for schema in [Schema::AWSAnthropic, Schema::AWSBedrock] {
        let (_, response) = count(schema, "anthropic.claude-v2", body);
        let (out, _) = response
            .response(br#"{"inputTokens": 42}"#, &crate::responses::ids())
            .expect("a count");
        assert_eq!(out, br#"{"input_tokens":42}"#, "{schema:?}");
        let error = response.error(
            400,
            Some("ValidationException"),
            br#"{"message":"The provided model doesn't support counting tokens."}"#,
        );
        assert_eq!(
            String::from_utf8_lossy(&error),
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"The provided model doesn't support counting tokens."}}"#
        );
    }
}

/// OpenAI counts on `/v1/responses/input_tokens`: its answer is Anthropic's count, its error
/// Anthropic's error with OpenAI's message, and an answer that is no count is an error.
#[test]
fn openai_counts_come_back_in_anthropic_shape() {
    let body = br#"{"model":"gpt-4.1","messages":[{"role":"user","content":"hi"}]}"#;
    let (path, response) = count(Schema::OpenAI, "gpt-4.1", body);
    assert_eq!(path, "/v1/responses/input_tokens");
    let ids = crate::responses::ids();
    let (out, usage) = response
        .response(
            br#"{"object":"response.input_tokens","input_tokens":42}"#,
            &ids,
        )
        .expect("a count");
    assert_eq!(out, br#"{"input_tokens":42}"#);
    // A count is no generation: nothing is billed as used.
    assert_eq!(usage, aigw_providers::Usage::default());
    let error = response.error(
        404,
        None,
        br#"{"error":{"message":"The model `gpt-9` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#,
    );
    assert_eq!(
        String::from_utf8_lossy(&error),
        r#"{"type":"error","error":{"type":"not_found_error","message":"The model `gpt-9` does not exist"}}"#
    );
    let unreadable = response
        .response(br#"{"object":"response"}"#, &ids)
        .expect_err("not a count");
    let value: serde_json::Value = serde_json::from_slice(&unreadable).expect("json");
    assert_eq!(value["error"]["type"], "api_error");
}

#[test]
fn unreadable_answers_are_anthropic_errors() {
    for schema in [
        Schema::Anthropic,
        Schema::AWSBedrock,
        Schema::AWSAnthropic,
        Schema::OpenAI,
    ] {
        let t = translator(schema, false);
        let error = t
            .response(b"<html>oops</html>", &crate::responses::ids())
            .expect_err("not a response");
        let value: serde_json::Value = serde_json::from_slice(&error).expect("json");
        assert_eq!(value["type"], "error", "{schema:?}");
        assert_eq!(value["error"]["type"], "api_error", "{schema:?}");
        let body = t.error(503, None, b"<html>Service Unavailable</html>");
        let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            value["error"]["message"],
            "<html>Service Unavailable</html>"
        );
        assert_eq!(value["error"]["type"], "api_error");
    }
}
