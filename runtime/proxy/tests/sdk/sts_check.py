"""Oracle for the AWS STS exchange the gateway makes for an OIDC token.

    python sts_check.py ENDPOINT ROLE_ARN SESSION_NAME WEB_IDENTITY_TOKEN

botocore's own `sts` client (its service model and its query serializer, nothing written
here) calls AssumeRoleWithWebIdentity at ENDPOINT (the loopback mock STS) with the parameters
the gateway sent. The mock records the form botocore sends, for the test to compare with the
gateway's; botocore's XML parser reads the mock's answer. The operation is unsigned in the
service model; the client is made UNSIGNED so no local AWS configuration can change that.

Exit status 0 with one JSON line: the parsed `Credentials` (Expiration as ISO 8601); 1 with
botocore's error otherwise.
"""

import json
import sys

import botocore.session
from botocore import UNSIGNED
from botocore.config import Config


def main() -> int:
    endpoint, role, session_name, token = sys.argv[1:5]
    client = botocore.session.get_session().create_client(
        "sts",
        region_name="us-east-1",
        endpoint_url=endpoint,
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )
    try:
        answer = client.assume_role_with_web_identity(
            RoleArn=role, RoleSessionName=session_name, WebIdentityToken=token
        )
    except Exception as error:  # botocore's own message is the verdict
        print(f"botocore failed: {error!r}")
        return 1
    credentials = dict(answer["Credentials"])
    credentials["Expiration"] = credentials["Expiration"].isoformat()
    print(json.dumps(credentials))
    return 0


if __name__ == "__main__":
    sys.exit(main())
