#!/usr/bin/env python3
"""Self-test of validate.py: valid bodies pass, invalid ones fail, the rest is
skipped. Run with the venv's python: `.venv/bin/python selftest.py`."""

import base64
import json
import os
import subprocess
import sys
import tempfile
import unittest

VALIDATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "validate.py")

# A 1x1 PNG, base64 as it travels in JSON.
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGA"
    "WjR9awAAAABJRU5ErkJggg=="
)
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def request(path: str, body, method: str = "POST") -> dict:
    return {"request": {"method": method, "path": path, "body": body}}


CONVERSE = request(
    "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
    {
        "system": [{"text": "Answer briefly."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "What is in this picture?"},
                    {"image": {"format": "png", "source": {"bytes": PNG}}},
                ],
            }
        ],
        "inferenceConfig": {"maxTokens": 256, "temperature": 0.5, "stopSequences": ["END"]},
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "weather",
                        "description": "The weather in a city",
                        "inputSchema": {"json": SCHEMA},
                    }
                }
            ],
            "toolChoice": {"auto": {}},
        },
    },
)

CONVERSE_STREAM_TOOLS = request(
    "/model/amazon.nova-pro-v1%3A0/converse-stream",
    {
        "messages": [
            {"role": "user", "content": [{"text": "Weather in Paris?"}]},
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Paris"}}}],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"json": {"sky": "clear"}}], "status": "success"}}
                ],
            },
        ],
        "toolConfig": {
            "tools": [{"toolSpec": {"name": "weather", "inputSchema": {"json": SCHEMA}}}],
            "toolChoice": {"tool": {"name": "weather"}},
        },
    },
)

ANTHROPIC_MESSAGES = {
    "max_tokens": 1024,
    "system": "Answer briefly.",
    "temperature": 0.2,
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "clear"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            ],
        },
    ],
    "tools": [{"name": "weather", "description": "The weather in a city", "input_schema": SCHEMA}],
    "tool_choice": {"type": "auto"},
}

ANTHROPIC = request("/v1/messages", {"model": "claude-sonnet-4-5", "stream": True, **ANTHROPIC_MESSAGES})

VERTEX_ANTHROPIC = request(
    "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict",
    {"anthropic_version": "vertex-2023-10-16", "stream": True, **ANTHROPIC_MESSAGES},
)

BEDROCK_ANTHROPIC = request(
    "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke",
    {"anthropic_version": "bedrock-2023-05-31", **ANTHROPIC_MESSAGES},
)

GEMINI = request(
    "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
    {
        "contents": [
            {"role": "user", "parts": [{"text": "What is this?"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}]},
            {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"sky": "clear"}}}]},
        ],
        "systemInstruction": {"parts": [{"text": "Answer briefly."}]},
        "tools": [
            {"functionDeclarations": [{"name": "weather", "description": "d", "parametersJsonSchema": SCHEMA}]}
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        "generationConfig": {"maxOutputTokens": 256, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}],
    },
)

OPENAI_MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Weather in Paris?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "auto"}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "clear"},
]

OPENAI = request(
    "/v1/chat/completions",
    {
        "model": "gpt-4o",
        "messages": OPENAI_MESSAGES,
        "tools": [
            {"type": "function", "function": {"name": "weather", "description": "d", "parameters": SCHEMA}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "parallel_tool_calls": False,
        "max_completion_tokens": 256,
        "stop": ["END"],
        "user": "u1",
    },
)

AZURE_OPENAI = request(
    "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
    {
        "messages": OPENAI_MESSAGES,
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": SCHEMA}}],
        "tool_choice": "required",
        "reasoning_effort": "low",
        "stream": True,
        "stream_options": {"include_usage": True},
    },
)

INPUT_TOKENS = request(
    "/v1/responses/input_tokens",
    {
        "model": "gpt-4o",
        "input": [
            {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Be terse."}]},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"},
                    {"type": "input_text", "text": "Weather here?"},
                ],
            },
            {"type": "message", "role": "assistant", "content": "Checking."},
            {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ],
        "tools": [{"type": "function", "name": "weather", "parameters": SCHEMA, "strict": False}],
        "tool_choice": {"type": "function", "name": "weather"},
        "parallel_tool_calls": False,
        "reasoning": {"effort": "low"},
    },
)

COUNT_TOKENS_CONVERSE = request(
    "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/count-tokens",
    {"input": {"converse": {k: CONVERSE["request"]["body"][k] for k in ("system", "messages", "toolConfig")}}},
)


def invoke_body(body: dict) -> str:
    """An InvokeModel body as CountTokens carries it: base64 of the JSON."""
    return base64.b64encode(json.dumps(body).encode()).decode()


COUNT_TOKENS_INVOKE = request(
    "/model/anthropic.claude-3-haiku-20240307-v1%3A0/count-tokens",
    {"input": {"invokeModel": {"body": invoke_body({"anthropic_version": "bedrock-2023-05-31", **ANTHROPIC_MESSAGES})}}},
)


def edited(snapshot: dict, edit) -> dict:
    """A deep copy of the snapshot with `edit` applied to its body."""
    copy = json.loads(json.dumps(snapshot))
    edit(copy["request"]["body"])
    return copy


VALID = {
    "converse.awsbedrock": CONVERSE,
    "converse-stream-tools.awsbedrock": CONVERSE_STREAM_TOOLS,
    "messages.anthropic": ANTHROPIC,
    "messages.gcpanthropic": VERTEX_ANTHROPIC,
    "messages.awsanthropic": BEDROCK_ANTHROPIC,
    "generate.gcpvertexai": GEMINI,
    "chat-tools.openai": OPENAI,
    "chat-stream.azureopenai": AZURE_OPENAI,
    "input-tokens.openai": INPUT_TOKENS,
    "count-tokens-converse.awsbedrock": COUNT_TOKENS_CONVERSE,
    "count-tokens-invoke.awsbedrock": COUNT_TOKENS_INVOKE,
    "count-tokens-invoke.awsanthropic": COUNT_TOKENS_INVOKE,
}

# name -> (snapshot, a fragment the FAIL line must contain)
INVALID = {
    "unknown-content-field.awsbedrock": (
        edited(CONVERSE, lambda b: b["messages"][0]["content"][0].update(bogus=1)),
        'Unknown parameter in messages[0].content[0]: "bogus"',
    ),
    "bad-blob.awsbedrock": (
        edited(CONVERSE, lambda b: b["messages"][0]["content"][1]["image"]["source"].update(bytes="not base64!")),
        "messages[0].content[1].image.source.bytes: blob is not valid base64",
    ),
    "max-tokens-string.awsbedrock": (
        edited(CONVERSE, lambda b: b["inferenceConfig"].update(maxTokens="256")),
        "Invalid type for parameter inferenceConfig.maxTokens",
    ),
    "unknown-block-field.anthropic": (
        edited(ANTHROPIC, lambda b: b["messages"][2]["content"][0].update(cache=True)),
        "messages[2].content[0]<ToolResultBlockParam>.cache: Extra inputs are not permitted",
    ),
    "max-tokens-string.anthropic": (
        edited(ANTHROPIC, lambda b: b.update(max_tokens="1024")),
        "max_tokens: Input should be a valid integer",
    ),
    "unknown-top-level.anthropic": (
        edited(ANTHROPIC, lambda b: b.update(max_completion_tokens=5)),
        "max_completion_tokens: Extra inputs are not permitted",
    ),
    "wrong-version.gcpanthropic": (
        edited(VERTEX_ANTHROPIC, lambda b: b.update(anthropic_version="bedrock-2023-05-31")),
        "anthropic_version is 'bedrock-2023-05-31'",
    ),
    "unknown-tool-field.awsanthropic": (
        edited(BEDROCK_ANTHROPIC, lambda b: b["tools"][0].update(parameters=SCHEMA)),
        "tools[0]<ToolParam>.parameters: Extra inputs are not permitted",
    ),
    "unknown-part-field.gcpvertexai": (
        edited(GEMINI, lambda b: b["contents"][0]["parts"][0].update(bogus=1)),
        "contents[0].parts[0].bogus: Extra inputs are not permitted",
    ),
    "max-tokens-string.gcpvertexai": (
        edited(GEMINI, lambda b: b["generationConfig"].update(maxOutputTokens="256")),
        "generationConfig.maxOutputTokens: Input should be a valid integer",
    ),
    # google-genai's models also take snake_case names and any-case enums.
    "snake-case.gcpvertexai": (
        edited(GEMINI, lambda b: b["generationConfig"].update(max_output_tokens=b["generationConfig"].pop("maxOutputTokens"))),
        "generationConfig.max_output_tokens: snake_case name, the wire name is 'maxOutputTokens'",
    ),
    "enum-case.gcpvertexai": (
        edited(GEMINI, lambda b: b["toolConfig"]["functionCallingConfig"].update(mode="auto")),
        "toolConfig.functionCallingConfig.mode: enum value 'auto' is not the canonical 'AUTO'",
    ),
    "unknown-top-level.openai": (
        edited(OPENAI, lambda b: b.update(max_output_tokens=5)),
        "max_output_tokens: Extra inputs are not permitted",
    ),
    "unknown-message-field.openai": (
        edited(OPENAI, lambda b: b["messages"][3].update(name="weather")),
        "messages[3]<ChatCompletionToolMessageParam>.name: Extra inputs are not permitted",
    ),
    "max-tokens-string.azureopenai": (
        edited(AZURE_OPENAI, lambda b: b.update(max_completion_tokens="256")),
        "max_completion_tokens: Input should be a valid integer",
    ),
    # The Responses API is strict by default: a function tool must say `strict`.
    "tool-without-strict.openai": (
        edited(INPUT_TOKENS, lambda b: b["tools"][0].pop("strict")),
        "tools[0]<FunctionToolParam>.strict: Field required",
    ),
    "chat-tool-in-count.openai": (
        edited(INPUT_TOKENS, lambda b: b.update(tools=[{"type": "function", "function": {"name": "weather"}}])),
        "tools[0]<FunctionToolParam>.function: Extra inputs are not permitted",
    ),
    "max-tokens-in-count.openai": (
        edited(INPUT_TOKENS, lambda b: b.update(max_output_tokens=5)),
        "max_output_tokens: Extra inputs are not permitted",
    ),
    # Converse takes a structured output's schema as a string of JSON, not as an object.
    "schema-object.awsbedrock": (
        edited(CONVERSE, lambda b: b.update(outputConfig={"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": {"type": "object"}}}}})),
        "Invalid type for parameter outputConfig.textFormat.structure.jsonSchema.schema",
    ),
    "unknown-format-type.anthropic": (
        edited(ANTHROPIC, lambda b: b.update(output_config={"format": {"type": "json_object", "schema": {}}})),
        "output_config.format.type: Input should be 'json_schema'",
    ),
    "unknown-converse-field.awsbedrock": (
        edited(COUNT_TOKENS_CONVERSE, lambda b: b["input"]["converse"].update(inferenceConfig={"maxTokens": 5})),
        'Unknown parameter in input.converse: "inferenceConfig"',
    ),
    "invoke-with-model.awsanthropic": (
        edited(COUNT_TOKENS_INVOKE, lambda b: b["input"]["invokeModel"].update(body=invoke_body(
            {"anthropic_version": "bedrock-2023-05-31", "model": "claude-3-haiku", **ANTHROPIC_MESSAGES}
        ))),
        "input.invokeModel.body: body carries `model`",
    ),
}

SKIPPED = {
    "chat.cohere": request("/v2/chat", {"model": "command-r", "messages": []}),
    "unchanged-body.azureopenai": request(
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "(the client's body, unchanged)"
    ),
    "error.anthropic": {"request": "invalid request: no model", "error": {"type": "invalid_request_error"}},
    "no-request.gcpvertexai": {"response": {}},
    "passthrough.anthropic": {"passthrough": True},
    "unchanged-body.anthropic": request("/v1/messages", "(the client's body, unchanged)"),
    "titan-embeddings.awsbedrock": request("/model/amazon.titan-embed-text-v2%3A0/invoke", {"inputText": "hi"}),
    "embeddings.gcpvertexai": request(
        "/v1/projects/p/locations/l/publishers/google/models/text-embedding-005:predict",
        {"instances": [{"content": "hi"}]},
    ),
}


class ValidateTest(unittest.TestCase):
    def setUp(self) -> None:
        self._dir = tempfile.TemporaryDirectory()
        self.addCleanup(self._dir.cleanup)

    def snap(self, name: str, content: dict) -> str:
        """Write `<name>.snap` as insta does: front matter, then the JSON."""
        path = os.path.join(self._dir.name, f"{name}.snap")
        with open(path, "w", encoding="utf-8") as f:
            f.write("---\nsource: runtime/providers/tests/it/requests.rs\nexpression: snapshot\n---\n")
            f.write(json.dumps(content, indent=2) + "\n")
        return path

    def validate(self, *paths: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, VALIDATE, *paths], capture_output=True, text=True, timeout=300
        )

    def test_valid_bodies_pass(self) -> None:
        for name, content in VALID.items():
            with self.subTest(name):
                run = self.validate(self.snap(name, content))
                self.assertEqual(run.stdout, "validated 1, skipped 0, failed 0\n", run.stderr)
                self.assertEqual(run.returncode, 0)

    def test_invalid_bodies_fail(self) -> None:
        for name, (content, reason) in INVALID.items():
            with self.subTest(name):
                path = self.snap(name, content)
                run = self.validate(path)
                lines = run.stdout.splitlines()
                self.assertEqual(len(lines), 2, run.stdout + run.stderr)
                self.assertTrue(lines[0].startswith(f"FAIL {path}: "), lines[0])
                self.assertIn(reason, lines[0])
                self.assertEqual(lines[1], "validated 0, skipped 0, failed 1")
                self.assertEqual(run.returncode, 1)

    def test_other_schemas_and_error_cases_are_skipped(self) -> None:
        paths = [self.snap(name, content) for name, content in SKIPPED.items()]
        run = self.validate(*paths)
        self.assertEqual(run.stdout, f"validated 0, skipped {len(SKIPPED)}, failed 0\n", run.stderr)
        self.assertEqual(run.returncode, 0)

    def test_one_run_counts_everything(self) -> None:
        paths = [self.snap(name, content) for name, content in VALID.items()]
        paths += [self.snap(name, content) for name, (content, _) in INVALID.items()]
        paths += [self.snap(name, content) for name, content in SKIPPED.items()]
        run = self.validate(*paths)
        lines = run.stdout.splitlines()
        self.assertEqual(sum(line.startswith("FAIL ") for line in lines), len(INVALID), run.stdout)
        self.assertEqual(
            lines[-1], f"validated {len(VALID)}, skipped {len(SKIPPED)}, failed {len(INVALID)}"
        )
        self.assertEqual(run.returncode, 1)

    def test_malformed_snapshot_fails(self) -> None:
        path = os.path.join(self._dir.name, "broken.anthropic.snap")
        with open(path, "w", encoding="utf-8") as f:
            f.write('{"request": {}}\n')
        run = self.validate(path)
        self.assertIn("not an insta snapshot", run.stdout)
        self.assertEqual(run.returncode, 1)

    def test_no_files_is_a_usage_error(self) -> None:
        run = self.validate()
        self.assertEqual(run.returncode, 2)
        self.assertIn("usage", run.stderr)


if __name__ == "__main__":
    unittest.main()
