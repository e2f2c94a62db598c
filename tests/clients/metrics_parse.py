"""The Prometheus project's Python client parses a /metrics body in the format its
Content-Type names, strictly, and prints each sample as JSON: {"name{labels}": value}.

    metrics_parse.py CONTENT_TYPE < body
"""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as classic


def main():
    content_type = sys.argv[1]
    body = sys.stdin.read()
    if content_type.startswith("application/openmetrics-text"):
        families = openmetrics(body)
    elif content_type.startswith("text/plain"):
        families = classic(body)
    else:
        sys.exit(f"not a metrics content type: {content_type}")
    out = {}
    for family in families:
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}|{family.type}"] = s.value
    print(json.dumps(out))


if __name__ == "__main__":
    main()
