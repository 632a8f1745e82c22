"""The official `openai` Python SDK as a client of the data plane.

Run by the Rust test `sdk::openai_python_client` (runtime/proxy/tests/it/sdk.rs), which starts
the runtime in front of the test upstreams with testdata/runtime/routing.yaml and passes the
gateway's base URL in AIGW_BASE_URL. Upstream c answers every request with 429, so the
credential-override route shows both the gateway's own 401 and an upstream error passed through.
Each test asserts what the SDK's own types parse out of our answers, and which error class the
SDK raises for each of our error statuses.
"""

import os
import unittest

import openai

BASE_URL = os.environ["AIGW_BASE_URL"]
MESSAGES = [{"role": "user", "content": "Say hi"}]


def client(**headers):
    # The SDK's key must never reach an upstream: the Rust side checks what the upstreams got.
    return openai.OpenAI(
        base_url=BASE_URL,
        api_key="sk-client-secret",
        max_retries=0,
        timeout=10.0,
        default_headers=headers or None,
    )


class Chat(unittest.TestCase):
    def test_completion(self):
        reply = client().chat.completions.create(model="gpt-a", messages=MESSAGES)
        self.assertEqual(reply.object, "chat.completion")
        self.assertEqual(reply.model, "gpt-a")
        self.assertEqual(reply.choices[0].message.role, "assistant")
        self.assertEqual(reply.choices[0].message.content, "Hello from a")
        self.assertEqual(reply.choices[0].finish_reason, "stop")
        self.assertEqual(reply.usage.prompt_tokens, 10)
        self.assertEqual(reply.usage.completion_tokens, 3)
        self.assertEqual(reply.usage.total_tokens, 13)

    def test_raw_response_headers(self):
        raw = client().chat.completions.with_raw_response.create(model="regex-anything", messages=MESSAGES)
        self.assertEqual(raw.status_code, 200)
        self.assertEqual(raw.headers["x-mock-upstream"], "b")
        self.assertEqual(raw.parse().choices[0].message.content, "Hello from b")

    def test_model_override_keeps_the_client_model_routable(self):
        reply = client().chat.completions.create(model="override", messages=MESSAGES)
        # The upstream saw `real-model` and answered with it; the SDK parses that answer.
        self.assertEqual(reply.model, "real-model")

    def test_stream(self):
        stream = client().chat.completions.create(model="gpt-a", messages=MESSAGES, stream=True)
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertEqual(text, "tok0 tok1 tok2 ")
        self.assertEqual(chunks[-1].choices[0].finish_reason, "stop")
        self.assertTrue(all(c.usage is None for c in chunks))

    def test_stream_with_usage(self):
        stream = client().chat.completions.create(
            model="costed", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(chunks[-1].usage.total_tokens, 13)

    def test_stream_usage_asked_by_the_gateway_is_stripped(self):
        # `costed` has llmRequestCosts: the gateway asks the upstream for usage, and the client,
        # which did not ask, must not see the extra chunk.
        stream = client().chat.completions.create(model="costed", messages=MESSAGES, stream=True)
        chunks = list(stream)
        self.assertTrue(all(c.choices for c in chunks), "a usage-only chunk reached the client")
        self.assertTrue(all(c.usage is None for c in chunks))
        self.assertEqual(chunks[-1].choices[0].finish_reason, "stop")


class OtherEndpoints(unittest.TestCase):
    def test_embeddings(self):
        reply = client().embeddings.create(model="gpt-a", input="hello")
        self.assertEqual(reply.data[0].embedding, [0.25, -0.5, 0.125])
        self.assertEqual(reply.usage.prompt_tokens, 10)

    def test_completions(self):
        reply = client().completions.create(model="gpt-a", prompt="Say hi")
        self.assertEqual(reply.choices[0].text, "Hello from a")

    def test_models(self):
        models = {m.id: m for m in client().models.list()}
        self.assertIn("gpt-a", models)
        self.assertIn("costed", models)
        self.assertEqual(models["gpt-a"].owned_by, "team-a")
        self.assertEqual(models["gpt-a"].created, 1747958400)  # 2025-05-23T00:00:00Z
        self.assertEqual(models["gpt-a"].object, "model")


class Errors(unittest.TestCase):
    def test_unknown_model_is_not_found(self):
        with self.assertRaises(openai.NotFoundError) as caught:
            client().chat.completions.create(model="no-such-model", messages=MESSAGES)
        self.assertEqual(caught.exception.status_code, 404)
        # The reference answers an unroutable model with a plain-text body, which the SDK keeps
        # as the response text rather than a parsed error.
        self.assertIn("No matching route found", caught.exception.response.text)

    def test_missing_model_is_bad_request(self):
        with self.assertRaises(openai.BadRequestError) as caught:
            client().post("/chat/completions", body={"messages": MESSAGES}, cast_to=object)
        self.assertEqual(caught.exception.status_code, 400)
        self.assertIn("model", caught.exception.message)

    def test_credential_override_without_the_header_is_unauthorized(self):
        with self.assertRaises(openai.AuthenticationError) as caught:
            client().chat.completions.create(model="byok", messages=MESSAGES)
        self.assertEqual(caught.exception.status_code, 401)
        self.assertIn("x-customer-key", caught.exception.message)

    def test_upstream_rate_limit_passes_through(self):
        with self.assertRaises(openai.RateLimitError) as caught:
            client(**{"x-customer-key": "sk-customer"}).chat.completions.create(model="byok", messages=MESSAGES)
        self.assertEqual(caught.exception.status_code, 429)
        # The upstream's own error object reaches the client unchanged.
        self.assertEqual(caught.exception.body["message"], "upstream c answers 429")
        self.assertEqual(caught.exception.body["type"], "mock_error")

    def test_untranslated_schema_names_it(self):
        with self.assertRaises(openai.APIStatusError) as caught:
            client().chat.completions.create(model="untranslated", messages=MESSAGES)
        self.assertEqual(caught.exception.status_code, 501)
        self.assertIn("Cohere", caught.exception.message)

    def test_body_over_the_limit(self):
        # The Rust side starts the gateway with a 1 MiB body limit.
        big = [{"role": "user", "content": "x" * (2 << 20)}]
        with self.assertRaises(openai.APIStatusError) as caught:
            client().chat.completions.create(model="gpt-a", messages=big)
        self.assertEqual(caught.exception.status_code, 413)


if __name__ == "__main__":
    unittest.main(verbosity=2)
