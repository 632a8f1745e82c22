"""Self-test of sigv4_check.py: botocore signs requests, the check must accept them as they are
and reject them once tampered with.

    .venv/bin/python runtime/proxy/tests/sdk/sigv4_selftest.py

The good requests come from botocore's own bedrock-runtime client (endpoint 127.0.0.1:PORT, a
session token set), captured at `before-send` as they would go on the wire, so they also pin down
what the gateway has to send: the model id percent-encoded in the path (`:` as %3A, `/` as %2F)
and the canonical URI botocore signs for it (that path encoded once more).
"""

import base64
import contextlib
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unittest
from unittest import mock
from urllib.parse import urlsplit, urlunsplit

import botocore.auth
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "sigv4_check.py")
sys.path.insert(0, HERE)
import sigv4_check  # noqa: E402

ENDPOINT = "http://127.0.0.1:40123"
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//session+token=="
REGION = "us-east-1"
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
ARN = (
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
    "us.anthropic.claude-3-5-sonnet-20240620-v1:0"
)
MODEL_PATH = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
ARN_PATH = (
    "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile"
    "%2Fus.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
)
MESSAGES = [{"role": "user", "content": [{"text": "Say hi"}]}]


class _Captured(Exception):
    pass


def client_request(model_id, token=TOKEN, at=None):
    """The request botocore's bedrock-runtime client sends for ConverseStream, as an upstream
    would receive it: the JSON the check reads. `at` pins botocore's clock while it signs."""
    session = botocore.session.get_session()
    client = session.create_client(
        "bedrock-runtime",
        region_name=REGION,
        endpoint_url=ENDPOINT,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        aws_session_token=token,
    )
    captured = {}

    def capture(request, **_):
        captured["request"] = request
        raise _Captured

    client.meta.events.register("before-send", capture)
    clock = (
        mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: at)
        if at
        else contextlib.nullcontext()
    )
    try:
        with clock:
            client.converse_stream(modelId=model_id, messages=MESSAGES)
    except _Captured:
        pass
    request = captured["request"]
    headers = {
        k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
    }
    # What the HTTP client adds on the wire (urllib3 sets Host from the URL it connects to).
    headers["host"] = urlsplit(request.url).netloc
    headers["accept-encoding"] = "identity"
    return {
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "session_token": token,
        "region": REGION,
        "service": client.meta.service_model.signing_name,
        "method": request.method,
        "url": request.url,
        "headers": headers,
        "body_b64": base64.b64encode(request.body).decode(),
    }


def signer_request(url, body, extra_headers=None, token=TOKEN):
    """A request signed by SigV4Auth directly (for what the client never sends)."""
    request = AWSRequest(
        method="POST",
        url=url,
        headers={"Content-Type": "application/json", **(extra_headers or {})},
        data=body,
    )
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, token), "bedrock", REGION).add_auth(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = urlsplit(url).netloc
    return {
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "session_token": token,
        "region": REGION,
        "service": "bedrock",
        "method": "POST",
        "url": url,
        "headers": headers,
        "body_b64": base64.b64encode(body).decode(),
    }


def with_path(spec, path):
    parts = urlsplit(spec["url"])
    return {**spec, "url": urlunsplit(parts._replace(path=path))}


def with_signed_headers(spec, transform):
    auth = spec["headers"]["authorization"]
    head, rest = auth.split("SignedHeaders=", 1)
    signed, tail = rest.split(",", 1)
    names = transform(signed.split(";"))
    headers = {**spec["headers"], "authorization": f"{head}SignedHeaders={';'.join(names)},{tail}"}
    return {**spec, "headers": headers}


class SigV4CheckTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def run_check(self, spec=None, raw=None):
        path = os.path.join(self.tmp.name, "request.json")
        with open(path, "w") as f:
            f.write(raw if raw is not None else json.dumps(spec))
        done = subprocess.run(
            [sys.executable, CHECK, path], capture_output=True, text=True, timeout=60
        )
        return done.returncode, done.stdout + done.stderr

    def assert_ok(self, spec):
        code, out = self.run_check(spec)
        self.assertEqual(code, 0, out)
        return out

    def assert_mismatch(self, spec, reason=None):
        code, out = self.run_check(spec)
        self.assertEqual(code, 1, out)
        self.assertTrue(out.startswith("MISMATCH\n"), out)
        self.assertIn("received authorization: ", out)
        if reason is not None:
            self.assertIn(reason, out)
        return out

    # The good requests.

    def test_client_request_with_session_token(self):
        spec = client_request(MODEL)
        self.assertEqual(urlsplit(spec["url"]).path, MODEL_PATH)
        self.assertEqual(spec["service"], "bedrock")
        out = self.assert_ok(spec)
        self.assertEqual(out, "OK sigv4 content-type;host;x-amz-date;x-amz-security-token\n")

    def test_clock_pinned_to_received_date(self):
        # Signed in 2015: the check must sign at x-amz-date, not now.
        spec = client_request(MODEL, at=datetime.datetime(2015, 8, 30, 12, 36, 0))
        self.assertEqual(spec["headers"]["x-amz-date"], "20150830T123600Z")
        self.assert_ok(spec)

    def test_arn_model_id_with_encoded_slash(self):
        spec = client_request(ARN)
        self.assertEqual(urlsplit(spec["url"]).path, ARN_PATH)
        self.assert_ok(spec)

    def test_without_session_token(self):
        spec = client_request(MODEL, token=None)
        self.assertNotIn("x-amz-security-token", spec["headers"])
        self.assertEqual(self.assert_ok(spec), "OK sigv4 content-type;host;x-amz-date\n")

    def test_signed_payload_hash_and_query(self):
        body = b'{"messages":[]}'
        url = f"{ENDPOINT}{MODEL_PATH}?b=2&a=x%3Ay"
        self.assert_ok(
            signer_request(url, body, {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
        )

    def test_canonical_uri_is_the_wire_path_encoded_once_more(self):
        for model_id, canonical in [
            (MODEL, "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse-stream"),
            (
                ARN,
                "/model/arn%253Aaws%253Abedrock%253Aus-east-1%253A123456789012%253A"
                "inference-profile%252Fus.anthropic.claude-3-5-sonnet-20240620-v1%253A0"
                "/converse-stream",
            ),
        ]:
            spec = sigv4_check.load(self._file(client_request(model_id)))
            signed = ["content-type", "host", "x-amz-date", "x-amz-security-token"]
            signer, _ = sigv4_check.botocore_sign(spec, signed, spec["headers"]["x-amz-date"])
            self.assertEqual(signer.canonical.split("\n")[1], canonical)

    # Tampered requests.

    def test_body_byte_changed(self):
        spec = client_request(MODEL)
        body = bytearray(base64.b64decode(spec["body_b64"]))
        body[10] ^= 0x01
        spec["body_b64"] = base64.b64encode(bytes(body)).decode()
        out = self.assert_mismatch(spec, "signature: received")
        self.assertIn("botocore canonical request:\nPOST\n" + MODEL_PATH.replace("%3A", "%253A"), out)
        self.assertIn("botocore string to sign:\nAWS4-HMAC-SHA256\n", out)

    def test_region_changed(self):
        spec = {**client_request(MODEL), "region": "us-west-2"}
        self.assert_mismatch(spec, "credential: received")

    def test_host_not_signed(self):
        spec = with_signed_headers(client_request(MODEL), lambda n: [x for x in n if x != "host"])
        self.assert_mismatch(spec, "`host` is not in SignedHeaders=")

    def test_content_type_not_signed(self):
        spec = with_signed_headers(
            client_request(MODEL), lambda n: [x for x in n if x != "content-type"]
        )
        self.assert_mismatch(spec, "`content-type` is not in SignedHeaders=")

    def test_path_changed(self):
        spec = client_request(MODEL)
        self.assert_mismatch(with_path(spec, MODEL_PATH.replace("converse-stream", "converse")))

    def test_path_sent_unencoded(self):
        # The signature covers %3A on the wire; a raw ':' is another canonical URI.
        spec = client_request(MODEL)
        self.assert_mismatch(with_path(spec, MODEL_PATH.replace("%3A", ":")))

    def test_arn_slash_sent_unencoded(self):
        spec = client_request(ARN)
        self.assert_mismatch(with_path(spec, ARN_PATH.replace("%2F", "/")))

    def test_host_other_than_contacted(self):
        spec = client_request(MODEL)
        spec["url"] = spec["url"].replace("40123", "40124")
        self.assert_mismatch(spec, "is not the authority of")

    def test_session_token_differs(self):
        spec = {**client_request(MODEL), "session_token": "another-token"}
        self.assert_mismatch(spec, "x-amz-security-token is")

    def test_token_sent_without_session_token(self):
        spec = {**client_request(MODEL), "session_token": None}
        self.assert_mismatch(spec, "x-amz-security-token was sent without a session token")

    def test_payload_hash_header_lies(self):
        body = b'{"messages":[]}'
        spec = signer_request(
            f"{ENDPOINT}{MODEL_PATH}", body, {"X-Amz-Content-SHA256": hashlib.sha256(b"x").hexdigest()}
        )
        self.assert_mismatch(spec, "is not the body's SHA-256")

    def test_date_changed(self):
        spec = client_request(MODEL, at=datetime.datetime(2015, 8, 30, 12, 36, 0))
        spec["headers"]["x-amz-date"] = "20150830T123601Z"
        self.assert_mismatch(spec, "signature: received")

    # Bad input.

    def test_bad_input(self):
        spec = client_request(MODEL)
        for raw in [
            "not json",
            json.dumps({k: v for k, v in spec.items() if k != "region"}),
            json.dumps({**spec, "body_b64": "***"}),
            json.dumps({**spec, "url": "/model/x/converse"}),
        ]:
            code, out = self.run_check(raw=raw)
            self.assertEqual(code, 2, out)
            self.assertIn("BAD INPUT", out)

    def _file(self, spec):
        path = os.path.join(self.tmp.name, "direct.json")
        with open(path, "w") as f:
            json.dump(spec, f)
        return path


if __name__ == "__main__":
    unittest.main()
