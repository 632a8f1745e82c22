"""Oracle for the SigV4 signatures the gateway puts on requests to AWS (Bedrock).

    python sigv4_check.py FILE

FILE is JSON describing one request exactly as an upstream received it:

    {"access_key": str, "secret_key": str, "session_token": str | null,
     "region": str, "service": str, "method": "POST",
     "url": "http://127.0.0.1:PORT/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
     "headers": {"lowercase-name": "value", ...},
     "body_b64": "..."}

`url` is scheme://host:port followed by the request target as sent on the wire (path and query
already percent-encoded); `headers` are all the headers the upstream received.

The signature is recomputed by botocore's own signer (`botocore.auth.SigV4Auth`); nothing here
implements SigV4. The script:

1. takes the signing time from the received `x-amz-date` and the signed-header list from the
   `SignedHeaders=` of the received `authorization`, and fails unless `host` and `content-type`
   are in that list (the gateway must sign the host it contacted and the body's content type);
2. checks what botocore would take on trust: the received `host` is the authority of `url`,
   `x-amz-security-token` equals `session_token` (and is absent without one),
   `x-amz-content-sha256`, when sent, is the SHA-256 of the body (botocore's canonical request
   uses that header's value instead of hashing the body), and every signed header was received;
3. rebuilds a `botocore.awsrequest.AWSRequest` with the same method, url and body and only the
   signed headers, and signs it with `SigV4Auth(Credentials(access_key, secret_key,
   session_token), service, region)` with botocore's clock pinned to the received `x-amz-date`;
4. compares botocore's `Authorization` header with the received one, byte for byte.

Pinning the clock: in the pinned botocore (1.44.x) `SigV4Auth.add_auth` reads the time through
`get_current_datetime()`, a name `botocore.auth` imports from `botocore.compat`; the check patches
`botocore.auth.get_current_datetime` for the duration of the signing (and fails loudly if a
botocore without that name is installed).

Canonical URI: `url` is handed to botocore unchanged. For every service but S3, botocore builds
the canonical URI as `quote(remove_dot_segments(path), safe='/~')` over the raw wire path, so a
wire path is percent-encoded once more: `%3A` becomes `%253A`, `%2F` becomes `%252F`, and a `%2F`
is never taken for a segment separator. That is the AWS rule for non-S3 services (each segment
URI-encoded twice: once on the wire, once more in the canonical request), and it is what botocore's
own bedrock-runtime client signs for the wire path it sends (sigv4_selftest.py checks both).
`AWSRequest` itself does not re-quote the url; only the signer's canonicalization encodes it.

Canonical query: botocore's signer copies a query string found in the url verbatim (it relies on
its serializer having encoded it canonically), whereas AWS decodes the received parameters and
URI-encodes them again. So when the url has a query, the check percent-decodes each name and value
and hands them to botocore as `AWSRequest.params`, which botocore's signer encodes the AWS way
(`quote(..., safe='-_.~')`, sorted). Bedrock's runtime calls have no query, so this rarely matters.

Exit status: 0 and `OK sigv4 <SignedHeaders>` on a match; 1 and `MISMATCH` followed by the
reasons, both authorization headers, and botocore's canonical request and string to sign
otherwise; 2 when FILE is not valid input.
"""

import base64
import binascii
import datetime
import hashlib
import json
import re
import sys
from unittest import mock
from urllib.parse import unquote_to_bytes

import botocore
import botocore.auth
from botocore.auth import SIGNED_HEADERS_BLACKLIST, SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import urlsplit
from botocore.credentials import Credentials

REQUIRED_SIGNED = ("host", "content-type")
AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]+)$"
)


class BadInput(Exception):
    """FILE is not a request description this script can check (exit 2)."""


class RecordingSigV4Auth(SigV4Auth):
    """botocore's SigV4Auth, keeping the canonical request and string to sign it computed."""

    canonical = None
    to_sign = None

    def canonical_request(self, request):
        self.canonical = super().canonical_request(request)
        return self.canonical

    def string_to_sign(self, request, canonical_request):
        self.to_sign = super().string_to_sign(request, canonical_request)
        return self.to_sign


def load(path):
    try:
        with open(path, "rb") as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        raise BadInput(f"cannot read {path}: {e}") from e
    if not isinstance(spec, dict):
        raise BadInput("the top level is not an object")
    for key in ("access_key", "secret_key", "region", "service", "method", "url", "body_b64"):
        if not isinstance(spec.get(key), str) or (key != "body_b64" and not spec[key]):
            raise BadInput(f"`{key}` must be a non-empty string")
    token = spec.get("session_token")
    if token is not None and (not isinstance(token, str) or not token):
        raise BadInput("`session_token` must be a non-empty string or null")
    headers = spec.get("headers")
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise BadInput("`headers` must map header names to string values")
    lowered = {k.lower(): v for k, v in headers.items()}
    if len(lowered) != len(headers):
        raise BadInput("`headers` names a header twice (case-insensitively)")
    try:
        body = base64.b64decode(spec["body_b64"], validate=True)
    except binascii.Error as e:
        raise BadInput(f"`body_b64` is not base64: {e}") from e
    parts = urlsplit(spec["url"])
    if parts.scheme not in ("http", "https") or not parts.netloc or not parts.path.startswith("/"):
        raise BadInput("`url` must be scheme://host[:port]/path[?query]")
    if parts.fragment:
        raise BadInput("`url` has a fragment, which no request target carries")
    return {**spec, "session_token": token, "headers": lowered, "body": body}


def host_matches(host_header, url):
    """Whether a Host value names the authority of `url` (case-insensitively; the default port
    may be left out)."""
    parts = urlsplit(url)
    authority = parts.netloc.lower().rsplit("@", 1)[-1]
    accepted = {authority}
    default = {"http": 80, "https": 443}[parts.scheme]
    if parts.port is None or parts.port == default:
        bare = authority if parts.port is None else authority.rsplit(":", 1)[0]
        accepted |= {bare, f"{bare}:{default}"}
    return host_header.strip().lower() in accepted


def query_params(url):
    """The query of `url`, decoded, for botocore to encode canonically; None when there is none,
    or when a name or value does not decode to UTF-8 (botocore then signs the query verbatim)."""
    query = urlsplit(url).query
    if not query:
        return None
    params = []
    for pair in query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        try:
            params.append(
                (unquote_to_bytes(name).decode("utf-8"), unquote_to_bytes(value).decode("utf-8"))
            )
        except UnicodeDecodeError:
            return None
    return params or None


def botocore_sign(spec, signed, amz_date):
    """Sign the rebuilt request with botocore at `amz_date`; returns the signer and request."""
    if not hasattr(botocore.auth, "get_current_datetime"):
        raise RuntimeError(
            f"botocore {botocore.__version__}: botocore.auth has no get_current_datetime to pin"
        )
    when = datetime.datetime.strptime(amz_date, SIGV4_TIMESTAMP)
    headers = {name: spec["headers"][name] for name in signed if name in spec["headers"]}
    request = AWSRequest(
        method=spec["method"],
        url=spec["url"],
        headers=headers,
        data=spec["body"],
        params=query_params(spec["url"]),
    )
    credentials = Credentials(spec["access_key"], spec["secret_key"], spec["session_token"])
    signer = RecordingSigV4Auth(credentials, spec["service"], spec["region"])
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: when):
        signer.add_auth(request)
    return signer, request


def check(spec):
    """Returns (ok, report lines)."""
    headers = spec["headers"]
    problems = []
    received_auth = headers.get("authorization")
    amz_date = headers.get("x-amz-date")

    signed = []
    match = AUTH_RE.match(received_auth or "")
    if received_auth is None:
        problems.append("no authorization header was received")
    elif match is None:
        problems.append("the authorization header is not `AWS4-HMAC-SHA256 Credential=..., "
                        "SignedHeaders=..., Signature=...`")
    else:
        signed = match["signed"].split(";")
        for name in REQUIRED_SIGNED:
            if name not in signed:
                problems.append(f"`{name}` is not in SignedHeaders={match['signed']}")
        for name in signed:
            if name not in headers:
                problems.append(f"signed header `{name}` was not received")
            if name in SIGNED_HEADERS_BLACKLIST:
                problems.append(f"signed header `{name}` is one botocore never signs")

    timestamp_ok = False
    if amz_date is None:
        problems.append("no x-amz-date header was received")
    else:
        try:
            datetime.datetime.strptime(amz_date, SIGV4_TIMESTAMP)
            timestamp_ok = True
        except ValueError:
            problems.append(f"x-amz-date {amz_date!r} is not YYYYMMDDTHHMMSSZ")

    if "host" not in headers:
        problems.append("no host header was received")
    elif not host_matches(headers["host"], spec["url"]):
        problems.append(f"host {headers['host']!r} is not the authority of {spec['url']}")

    token = spec["session_token"]
    received_token = headers.get("x-amz-security-token")
    if token is not None and received_token != token:
        problems.append(f"x-amz-security-token is {received_token!r}, not the session token")
    if token is None and received_token is not None:
        problems.append("x-amz-security-token was sent without a session token")

    content_sha = headers.get("x-amz-content-sha256")
    body_sha = hashlib.sha256(spec["body"]).hexdigest()
    if content_sha is not None and content_sha != body_sha:
        problems.append(f"x-amz-content-sha256 {content_sha} is not the body's SHA-256 {body_sha}")

    lines = []
    expected_auth = None
    if timestamp_ok:
        signer, request = botocore_sign(spec, signed, amz_date)
        expected_auth = request.headers["Authorization"]
        if expected_auth != received_auth:
            problems.append("the authorization header differs from botocore's")
            if match is not None:
                got = AUTH_RE.match(expected_auth)
                for field in ("credential", "signed", "signature"):
                    if got[field] != match[field]:
                        problems.append(f"  {field}: received {match[field]}, botocore {got[field]}")
        if request.headers["X-Amz-Date"] != amz_date:
            problems.append(f"botocore signed at {request.headers['X-Amz-Date']}, not {amz_date}")
        tail = [
            "botocore canonical request:",
            signer.canonical,
            "botocore string to sign:",
            signer.to_sign,
        ]
    else:
        tail = ["(botocore did not sign: no usable x-amz-date)"]

    if not problems:
        return True, [f"OK sigv4 {match['signed']}"]
    lines.append("MISMATCH")
    lines.extend(f"- {p}" for p in problems)
    lines.append(f"received authorization: {received_auth}")
    lines.append(f"botocore authorization: {expected_auth}")
    lines.extend(tail)
    return False, lines


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} FILE", file=sys.stderr)
        return 2
    try:
        spec = load(argv[1])
    except BadInput as e:
        print(f"BAD INPUT: {e}", file=sys.stderr)
        return 2
    ok, lines = check(spec)
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
