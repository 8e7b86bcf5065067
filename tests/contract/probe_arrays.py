#!/usr/bin/env python3
"""probe_arrays - which query encodings of a deepObject array Prism 5.14.2 reads.

The 32.0.5 spec declares the array query parameters (userIds, groupBy,
sourceId, eventName, eventType, appVersion) as style: deepObject with plain
string items, so no encoding can fail against it.  This probe uses a small
spec with the same parameter shape plus `minItems: 1` and an item enum, so
that an encoding Prism does not understand shows up as "fewer than 1 items"
and one it does understand has its items checked against the enum.

Not a pass/fail test: prints one line per encoding (see README.md).
"""

import json
import os
import sys
import tempfile
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import prism  # noqa: E402
from fake_upstream import start_upstream, stop_upstream  # noqa: E402

PROBE_SPEC = """openapi: 3.0.3
info: {title: deepObject array probe, version: '1'}
paths:
  /probe:
    get:
      parameters:
      - name: groupBy
        in: query
        style: deepObject
        explode: false
        required: true
        schema:
          type: array
          minItems: 1
          items: {type: string, enum: [eventName, eventType, source]}
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {type: object}
"""

ENCODINGS = [
    ("daemon (Go SDK) dot form", "groupBy.0=eventType&groupBy.1=source"),
    ("dot form, bad value", "groupBy.0=bogus"),
    ("TS SDK bracket form, escaped", "groupBy%5B0%5D=eventType&groupBy%5B1%5D=source"),
    ("bracket form, raw brackets", "groupBy[0]=eventType"),
    ("bracket form, bad value", "groupBy%5B0%5D=eventType&groupBy%5B1%5D=bogus"),
    ("empty brackets", "groupBy%5B%5D=eventType&groupBy%5B%5D=source"),
    ("repeated name (Python SDK)", "groupBy=eventType&groupBy=source"),
    ("comma list", "groupBy=eventType,source"),
    ("absent", ""),
]


def probe(base, upstream, query):
    """probe - (status, forwarded, Prism's messages) for one query string."""
    upstream.last_request = None
    req = urllib.request.Request(base + "/probe?" + query,
                                 headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    messages = []
    if status != 200:
        messages = [v["message"] for v in json.loads(body).get("validation", [])]
    return status, upstream.last_request is not None, messages


def main():
    if not prism.prism_installed():
        print("skipped: prism not installed (run npm ci in tests/contract)")
        return 77
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as spec:
        spec.write(PROBE_SPEC)
        spec.flush()
        upstream, url = start_upstream()
        proc, base = prism.start_prism(url, spec=spec.name)
        try:
            for label, query in ENCODINGS:
                status, fwd, msgs = probe(base, upstream, query)
                print("%-30s %-48s -> %d %s %s" % (label, query or "(none)", status,
                                                   "forwarded" if fwd else "refused",
                                                   "; ".join(msgs)))
        finally:
            prism.stop_prism(proc)
            stop_upstream(upstream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
