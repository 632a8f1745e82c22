"""Reads the gateway's /metrics with prometheus_client's own OpenMetrics parser.

    python metrics_check.py FILE

FILE holds the exposition exactly as the admin listener served it. The script parses it with
`prometheus_client.openmetrics.parser.text_string_to_metric_families` (which refuses text that
is not valid OpenMetrics) and prints one JSON object: for each metric family, its type and its
samples as [name, labels, value]. Nothing here parses the text itself.
"""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    out = {}
    for family in text_string_to_metric_families(text):
        out[family.name] = {
            "type": family.type,
            "samples": [[s.name, s.labels, s.value] for s in family.samples],
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
