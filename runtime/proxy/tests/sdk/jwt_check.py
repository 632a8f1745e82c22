#!/usr/bin/env python3
"""Oracle for the GCP service-account assertions the gateway signs: each JWT is
verified by google-auth's own verifier (google.auth.jwt.decode: RS256 signature
against the account's public key, `aud`, `iat` and `exp`), then its claims are
checked as Google's token endpoint reads them (issuer, scope, a one-hour
lifetime at most, and the key id in the header).

    python jwt_check.py PUBLIC_KEY_PEM AUDIENCE ISSUER KEY_ID [--expect-invalid] < assertions

One assertion per line on stdin. Prints `verified N` and exits 0 when every
assertion verifies; with --expect-invalid, exits 0 only when every assertion is
refused (the self-check that the oracle can fail)."""

import sys

import google.auth.exceptions
from google.auth import jwt

SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def check(token: str, key: str, audience: str, issuer: str, key_id: str) -> None:
    claims = jwt.decode(token, certs=key, audience=audience)
    header = jwt.decode_header(token)
    if header.get("alg") != "RS256":
        raise ValueError(f"alg is {header.get('alg')!r}")
    if header.get("kid") != key_id:
        raise ValueError(f"kid is {header.get('kid')!r}, expected {key_id!r}")
    if claims.get("iss") != issuer:
        raise ValueError(f"iss is {claims.get('iss')!r}")
    if claims.get("scope") != SCOPE:
        raise ValueError(f"scope is {claims.get('scope')!r}")
    if not 0 < claims["exp"] - claims["iat"] <= 3600:
        raise ValueError("the assertion must live at most one hour")


def main(argv: list[str]) -> int:
    expect_invalid = "--expect-invalid" in argv
    args = [a for a in argv if a != "--expect-invalid"]
    if len(args) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    key_path, audience, issuer, key_id = args
    with open(key_path, encoding="ascii") as f:
        key = f.read()
    tokens = [line.strip() for line in sys.stdin if line.strip()]
    if not tokens:
        print("no assertions given", file=sys.stderr)
        return 2
    verified = 0
    for token in tokens:
        try:
            check(token, key, audience, issuer, key_id)
            verified += 1
        except (ValueError, KeyError, google.auth.exceptions.GoogleAuthError) as e:
            print(f"REFUSED: {e}")
    print(f"verified {verified}")
    if expect_invalid:
        return 0 if verified == 0 else 1
    return 0 if verified == len(tokens) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
