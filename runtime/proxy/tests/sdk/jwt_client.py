"""The official `openai` Python SDK as a caller with a JWT for its API key.

Run by the Rust test `jwt::the_openai_sdk_sees_jwt_refusals_as_its_error_types`
(runtime/proxy/tests/it/jwt.rs), which serves testdata/runtime/jwt.yaml and passes the
gateway's base URL and tokens it signed (AIGW_TOKEN: may chat; AIGW_TOKEN_UNSCOPED: lacks
the `chat` scope). The SDK sends the token as `Authorization: Bearer`.
"""

import os
import unittest

import openai

BASE_URL = os.environ["AIGW_BASE_URL"]
MESSAGES = [{"role": "user", "content": "Say hi"}]


def client(token):
    return openai.OpenAI(base_url=BASE_URL + "/v1", api_key=token, max_retries=0, timeout=10.0)


class Jwt(unittest.TestCase):
    def test_a_verified_token_is_served(self):
        reply = client(os.environ["AIGW_TOKEN"]).chat.completions.create(
            model="gpt-a", messages=MESSAGES
        )
        self.assertEqual(reply.choices[0].message.content, "Hello from a")

    def test_a_token_that_is_not_one_is_an_authentication_error(self):
        with self.assertRaises(openai.AuthenticationError) as raised:
            client("sk-not-a-jwt").chat.completions.create(model="gpt-a", messages=MESSAGES)
        self.assertEqual(raised.exception.status_code, 401)
        self.assertIn("www-authenticate", raised.exception.response.headers)

    def test_a_token_without_the_scope_is_permission_denied(self):
        with self.assertRaises(openai.PermissionDeniedError) as raised:
            client(os.environ["AIGW_TOKEN_UNSCOPED"]).chat.completions.create(
                model="gpt-a", messages=MESSAGES
            )
        self.assertEqual(raised.exception.status_code, 403)


if __name__ == "__main__":
    unittest.main(verbosity=2)
