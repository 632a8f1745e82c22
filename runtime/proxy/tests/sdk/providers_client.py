"""The official `openai` SDK as a client of translated backends: every schema of
testdata/runtime/providers.yaml answers a chat completion and a stream that the SDK parses
into its own types, and the embeddings of Titan on Bedrock (the Rust test `providers::openai_sdk_parses_every_translated_schema` runs
this against the gateway at AIGW_BASE_URL)."""

import os
import unittest

import openai

MODELS = ["claude-direct", "bedrock-converse", "bedrock-invoke", "azure-gpt"]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
MESSAGES = [{"role": "user", "content": "What is the weather?"}]


def client():
    return openai.OpenAI(base_url=os.environ["AIGW_BASE_URL"], api_key="sk-client-key-never-forwarded", max_retries=0)


TITAN = [0.0123291015625, -0.0458984375, 0.1044921875, -0.0032196044921875, 0.0712890625, 0.25, -0.5, 0.033203125]


class Translated(unittest.TestCase):
    def test_embeddings_parse(self):
        # The SDK asks for base64 unless told otherwise; both come back as the same floats.
        for encoding in [None, "float"]:
            with self.subTest(encoding=encoding):
                kwargs = {"encoding_format": encoding} if encoding else {}
                reply = client().embeddings.create(model="titan-embed", input="The food was delicious.", **kwargs)
                self.assertIsInstance(reply, openai.types.CreateEmbeddingResponse)
                self.assertEqual(len(reply.data), 1)
                self.assertEqual([float(x) for x in reply.data[0].embedding], TITAN)
                self.assertEqual(reply.usage.prompt_tokens, 5)
        with self.assertRaises(openai.UnprocessableEntityError):
            client().embeddings.create(model="titan-embed", input=["one", "two"])

    def test_completions_parse(self):
        for model in MODELS:
            with self.subTest(model=model):
                reply = client().chat.completions.create(model=model, messages=MESSAGES, tools=TOOLS, max_tokens=300)
                self.assertIsInstance(reply, openai.types.chat.ChatCompletion)
                choice = reply.choices[0]
                self.assertIsNotNone(reply.usage)
                if model == "azure-gpt":
                    self.assertEqual(choice.message.content, "Hello from mock")
                    continue
                self.assertEqual(choice.finish_reason, "tool_calls")
                self.assertEqual([c.function.name for c in choice.message.tool_calls], ["get_weather", "get_weather"])
                self.assertEqual(choice.message.tool_calls[1].function.arguments, '{"city":"Oslo"}')
                self.assertEqual(reply.usage.prompt_tokens, 400)

    def test_streams_parse(self):
        for model in MODELS:
            with self.subTest(model=model):
                stream = client().chat.completions.create(
                    model=model, messages=MESSAGES, tools=TOOLS, max_tokens=300, stream=True, stream_options={"include_usage": True}
                )
                text, arguments, finish, usage = "", "", None, None
                for chunk in stream:
                    self.assertIsInstance(chunk, openai.types.chat.ChatCompletionChunk)
                    if chunk.usage is not None:
                        usage = chunk.usage
                    for choice in chunk.choices:
                        text += choice.delta.content or ""
                        for call in choice.delta.tool_calls or []:
                            arguments += call.function.arguments or ""
                        finish = choice.finish_reason or finish
                self.assertIsNotNone(usage, model)
                if model == "azure-gpt":
                    self.assertEqual(text, "tok0 tok1 tok2 ")
                    continue
                self.assertEqual(finish, "tool_calls")
                self.assertIn("Tōkyō 東京", text)
                self.assertIn('"city"', arguments)

    def test_unhonourable_fields_raise_422(self):
        with self.assertRaises(openai.UnprocessableEntityError) as caught:
            client().chat.completions.create(model="claude-direct", messages=MESSAGES, n=2)
        self.assertIn("Anthropic", caught.exception.message)


if __name__ == "__main__":
    unittest.main(verbosity=2)
