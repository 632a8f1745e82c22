"""The official `openai` and `anthropic` Python SDKs as callers with API keys.

Run by the Rust test `callers::the_sdks_see_their_own_error_types`
(runtime/proxy/tests/it/callers.rs), which serves testdata/runtime/callers.yaml and passes the
gateway's base URL in AIGW_BASE_URL. Each SDK sends its key its own way (OpenAI as
`Authorization: Bearer`, Anthropic as `x-api-key`); each refusal must surface as the SDK's own
error class.
"""

import os
import unittest

import anthropic
import openai

BASE_URL = os.environ["AIGW_BASE_URL"]
MESSAGES = [{"role": "user", "content": "Say hi"}]


def client(key):
    return openai.OpenAI(base_url=BASE_URL + "/v1", api_key=key, max_retries=0, timeout=10.0)


class OpenAI(unittest.TestCase):
    def test_a_known_key_is_served(self):
        reply = client("sk-team-a").chat.completions.create(model="gpt-a", messages=MESSAGES)
        self.assertEqual(reply.choices[0].message.content, "Hello from a")

    def test_an_unknown_key_is_an_authentication_error(self):
        with self.assertRaises(openai.AuthenticationError) as raised:
            client("sk-nobody").chat.completions.create(model="gpt-a", messages=MESSAGES)
        self.assertEqual(raised.exception.status_code, 401)
        self.assertNotIn("sk-nobody", str(raised.exception))

    def test_a_model_outside_the_allowlist_is_permission_denied(self):
        with self.assertRaises(openai.PermissionDeniedError) as raised:
            client("sk-ci-bot").chat.completions.create(model="gpt-a", messages=MESSAGES)
        self.assertEqual(raised.exception.status_code, 403)
        self.assertIn("gpt-a", str(raised.exception))

    def test_models_lists_what_the_caller_may_use(self):
        ids = sorted(m.id for m in client("sk-ci-bot").models.list())
        self.assertEqual(ids, ["gpt-mini"])
        with self.assertRaises(openai.AuthenticationError):
            client("sk-nobody").models.list()


class RateLimits(unittest.TestCase):
    def test_past_the_limit_is_a_rate_limit_error(self):
        # Five a minute per caller on the chat route; ci-bot has used none of them here.
        with self.assertRaises(openai.RateLimitError) as raised:
            for _ in range(10):
                client("sk-ci-bot").chat.completions.create(model="gpt-mini", messages=MESSAGES)
        self.assertEqual(raised.exception.status_code, 429)
        headers = raised.exception.response.headers
        self.assertEqual(headers["x-ratelimit-remaining"], "0")
        self.assertGreaterEqual(int(headers["retry-after"]), 1)


class Anthropic(unittest.TestCase):
    def claude(self, key):
        return anthropic.Anthropic(
            base_url=BASE_URL + "/anthropic", api_key=key, max_retries=0, timeout=10.0
        )

    def test_a_known_key_is_served(self):
        reply = self.claude("sk-team-a").messages.create(
            model="claude-a", max_tokens=16, messages=MESSAGES
        )
        self.assertEqual(reply.type, "message")

    def test_an_unknown_key_is_an_authentication_error(self):
        with self.assertRaises(anthropic.AuthenticationError):
            self.claude("sk-nobody").messages.create(
                model="claude-a", max_tokens=16, messages=MESSAGES
            )

    def test_a_model_outside_the_allowlist_is_permission_denied(self):
        with self.assertRaises(anthropic.PermissionDeniedError):
            self.claude("sk-ci-bot").messages.create(
                model="claude-a", max_tokens=16, messages=MESSAGES
            )


if __name__ == "__main__":
    unittest.main(verbosity=2)
