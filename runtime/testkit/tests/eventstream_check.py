"""Oracle for the AWS event-stream frames the test Bedrock sends (aigw_testkit::event_stream
and ::wrapped).

    python eventstream_check.py FILE

FILE holds the frames of one stream, back to back. botocore's own decoder
(`botocore.eventstream.EventStreamBuffer`, the one its bedrock-runtime client reads
ConverseStream and InvokeModelWithResponseStream with) parses them, checking each prelude and
message CRC. The bytes are fed in uneven pieces (1, 2, 3, ... bytes) so that frames and headers
are split across reads as a socket splits them.

Exit status 0 with one JSON line per message: {"headers": {...}, "payload": "<utf-8 text>"};
1 with botocore's error (a checksum mismatch, a malformed prelude, bytes left over) otherwise.
"""

import json
import sys

from botocore.eventstream import EventStreamBuffer


def main() -> int:
    data = open(sys.argv[1], "rb").read()
    buffer = EventStreamBuffer()
    messages = []
    at, step = 0, 1
    try:
        while at < len(data):
            buffer.add_data(data[at : at + step])
            at += step
            step = step % 7 + 1
            messages.extend(buffer)
        left = len(buffer._data)
    except Exception as error:  # botocore's own verdict
        print(f"botocore refused the frames: {error!r}")
        return 1
    if left:
        print(f"{left} bytes left over after the last whole message")
        return 1
    for message in messages:
        headers = {name: str(value) for name, value in message.headers.items()}
        print(json.dumps({"headers": headers, "payload": message.payload.decode("utf-8")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
