"""The official `anthropic` SDK as a client of `/anthropic/v1/messages` and `count_tokens`:
every backend kind of testdata/runtime/providers.yaml answers a message, a stream and a count
that the SDK parses into its own types (the Rust test
`providers::anthropic_sdk_parses_every_backend` runs this against the gateway at
AIGW_BASE_URL, which ends in `/anthropic`).

- claude-direct     Anthropic, native
- bedrock-invoke    AWSAnthropic (Bedrock invoke, event-stream re-emitted as SSE), native
- bedrock-converse  AWSBedrock (Converse), translated
- azure-gpt         AzureOpenAI (chat completions), translated; no count (501)
- gpt-direct        OpenAI: a count through /v1/responses/input_tokens
"""

import os
import unittest

import anthropic

TOOLS = [{"name": "get_weather", "description": "The weather in a city", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
MESSAGES = [{"role": "user", "content": "What is the weather in Paris and Oslo?"}]
WITH_TOOLS = ["claude-direct", "bedrock-invoke", "bedrock-converse"]


def client():
    return anthropic.Anthropic(base_url=os.environ["AIGW_BASE_URL"], api_key="sk-ant-client-key-never-forwarded", max_retries=0)


class Messages(unittest.TestCase):
    def test_messages_parse(self):
        for model in WITH_TOOLS + ["azure-gpt"]:
            with self.subTest(model=model):
                reply = client().messages.create(model=model, max_tokens=300, messages=MESSAGES, tools=TOOLS)
                self.assertIsInstance(reply, anthropic.types.Message)
                if model == "azure-gpt":
                    self.assertEqual([b.type for b in reply.content], ["text"])
                    self.assertEqual(reply.content[0].text, "Hello from mock")
                    self.assertEqual(reply.stop_reason, "end_turn")
                    self.assertGreater(reply.usage.output_tokens, 0)
                    continue
                self.assertEqual([b.type for b in reply.content], ["thinking", "text", "tool_use", "tool_use"])
                self.assertEqual(reply.content[3].input, {"city": "Oslo"})
                self.assertEqual(reply.stop_reason, "tool_use")
                self.assertEqual(reply.usage.input_tokens, 400)
                self.assertEqual(reply.usage.output_tokens, 90)

    def test_streams_parse(self):
        for model in WITH_TOOLS + ["azure-gpt"]:
            with self.subTest(model=model):
                with client().messages.stream(model=model, max_tokens=300, messages=MESSAGES, tools=TOOLS) as stream:
                    kinds = [event.type for event in stream]
                    final = stream.get_final_message()
                self.assertEqual(kinds[0], "message_start")
                self.assertEqual(kinds[-1], "message_stop")
                self.assertIsInstance(final, anthropic.types.Message)
                if model == "azure-gpt":
                    # The mock's stream: three tokens, then the usage chunk the gateway asked for.
                    self.assertEqual("".join(b.text for b in final.content if b.type == "text"), "tok0 tok1 tok2 ")
                    self.assertEqual(final.usage.output_tokens, 3)
                    self.assertEqual(final.stop_reason, "end_turn")
                    continue
                uses = [b for b in final.content if b.type == "tool_use"]
                self.assertEqual(final.stop_reason, "tool_use")
                self.assertGreaterEqual(len(uses), 1)
                self.assertEqual(uses[-1].name, "get_weather")
                self.assertIsInstance(uses[-1].input, dict)
                self.assertGreater(final.usage.output_tokens, 0)

    def test_counts_parse(self):
        for model in WITH_TOOLS:
            with self.subTest(model=model):
                count = client().messages.count_tokens(model=model, messages=MESSAGES, tools=TOOLS)
                self.assertIsInstance(count, anthropic.types.MessageTokensCount)
                self.assertEqual(count.input_tokens, 14)
        # OpenAI counts a Responses input: the test upstream's count is 19.
        count = client().messages.count_tokens(model="gpt-direct", messages=MESSAGES, tools=TOOLS, system="Be terse.")
        self.assertIsInstance(count, anthropic.types.MessageTokensCount)
        self.assertEqual(count.input_tokens, 19)
        # Azure OpenAI documents no token count: the gateway says so in Anthropic's shape.
        with self.assertRaises(anthropic.APIStatusError) as caught:
            client().messages.count_tokens(model="azure-gpt", messages=MESSAGES)
        self.assertEqual(caught.exception.status_code, 501)
        self.assertEqual(caught.exception.body["type"], "error")
        self.assertIn("count_tokens", caught.exception.body["error"]["message"])

    def test_errors_are_anthropic_errors(self):
        # A field the backend cannot honour: 422, in Anthropic's error shape.
        with self.assertRaises(anthropic.UnprocessableEntityError) as caught:
            client().messages.create(model="azure-gpt", max_tokens=10, messages=MESSAGES, extra_body={"top_k": 5})
        self.assertEqual(caught.exception.body["error"]["type"], "invalid_request_error")
        self.assertIn("`top_k`", caught.exception.body["error"]["message"])
        # A malformed request is the gateway's 400.
        with self.assertRaises(anthropic.BadRequestError):
            client().messages.create(model="bedrock-converse", max_tokens=10, messages=[{"role": "user", "content": 5}])


if __name__ == "__main__":
    unittest.main()
