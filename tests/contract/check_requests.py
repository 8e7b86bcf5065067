#!/usr/bin/env python3
"""check_requests - contract test of segspool's request ENCODING against Prism.

For each of the 43 named operations, sends one request exactly as the daemon's
request builder (src/job/catalog.c, catalog_build) encodes it, through
`prism proxy --errors` (spec: Segment Public API 32.0.5) to fake_upstream.py,
and asserts that Prism finds no request violation and forwards the request
unchanged.  The request lines below were produced by catalog_build itself
(a scratch program linked with libseg_catalog.a, see README.md) and are
hard-coded on purpose: if the encoder changes, this table must be
regenerated and re-checked.

Accepted exception: five PATCH operations, whose 32.0.5 request schema marks
the path id as a required BODY property although it is not a property at all
(spec bug).  For those the test asserts Prism's exact 422 message, then sends
the same body plus the id and asserts that this one passes, which shows the
spec bug is the only complaint.

Two controls check that the harness can see a violation at all.

Prints "N passed, N failed"; exit 0 on success, 1 on failure, and 77 with
"skipped: prism not installed (run npm ci in tests/contract)" when
tests/contract/node_modules is missing.  Standard library only.
"""

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, HERE)

sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

import prism  # noqa: E402
from fake_upstream import start_upstream, stop_upstream  # noqa: E402
# operationId -> the path id the 32.0.5 schema wrongly requires in the body: the one
# accepted exception, shared with the daemon's contract test
from opsjobs import PATCH_SPEC_BUG  # noqa: E402

OPERATIONS_JSON = os.path.join(HERE, "..", "..", "data", "operations.json")
TOKEN = "contract-test-token"
V1 = "application/vnd.segment.v1+json"
V1ALPHA = "application/vnd.segment.v1alpha+json"
SKIP = 77

# (operationId, method, path?query, body or None, media type) as catalog_build
# emits them.  Paginated operations carry pagination[count] (the daemon adds
# it whenever it pages, count 200 unless the job sets one); arrays are the
# daemon's name.N=value form.
REQUESTS = [
    ('addConnectionFromSourceToWarehouse', 'POST',
     '/warehouses/wh1/connected-sources/src1',
     None, V1),
    ('createDestination', 'POST',
     '/destinations',
     '{"sourceId":"src1","metadataId":"dm1","enabled":true,"name":"My Webhook","settings":{"apiKey":"k"}}', V1),
    ('createDestinationSubscription', 'POST',
     '/destinations/dst1/subscriptions',
     '{"name":"Track","actionId":"act1","trigger":"type = \\"track\\"","enabled":true,"settings":{}}', V1ALPHA),
    ('createFunction', 'POST',
     '/functions',
     '{"code":"async function onTrack(e) {}","displayName":"fn","resourceType":"SOURCE","description":"d"}', V1),
    ('createSource', 'POST',
     '/sources',
     '{"slug":"my-source","enabled":true,"metadataId":"IqDTy1TpoU"}', V1),
    ('createTransformation', 'POST',
     '/transformations',
     '{"name":"t1","sourceId":"src1","enabled":true,"if":"event = \\"A\\"","newEventName":"B"}', V1),
    ('createInvites', 'POST',
     '/invites',
     '{"invites":[{"email":"a@example.com","permissions":[{"roleId":"r1","resources":[{"id":"w1","type":"WORKSPACE"}]}]}]}', V1),
    ('deleteDestination', 'DELETE',
     '/destinations/dst1',
     None, V1),
    ('removeSubscriptionFromDestination', 'DELETE',
     '/destinations/dst1/subscriptions/sub1',
     None, V1ALPHA),
    ('deleteFunction', 'DELETE',
     '/functions/fn1',
     None, V1),
    ('deleteSource', 'DELETE',
     '/sources/src1',
     None, V1),
    ('deleteTransformation', 'DELETE',
     '/transformations/tr1',
     None, V1),
    ('deleteUsers', 'DELETE',
     '/users?userIds.0=u1&userIds.1=u2',
     None, V1),
    ('deleteWarehouse', 'DELETE',
     '/warehouses/wh1',
     None, V1),
    ('getDestination', 'GET',
     '/destinations/dst1',
     None, V1),
    ('getDestinationsCatalog', 'GET',
     '/catalog/destinations?pagination%5Bcount%5D=50',
     None, V1),
    ('getDestinationMetadata', 'GET',
     '/catalog/destinations/dm1',
     None, V1),
    ('getSubscriptionFromDestination', 'GET',
     '/destinations/dst1/subscriptions/sub1',
     None, V1ALPHA),
    ('getEventsVolumeFromWorkspace', 'GET',
     '/events/volume?granularity=DAY&startTime=2024-01-01T00%3A00%3A00Z&endTime=2024-01-02T00%3A00%3A00Z&groupBy.0=eventType&groupBy.1=source&sourceId.0=src1&eventName.0=Order%20Completed&eventType.0=TRACK&appVersion.0=1.0&pagination%5Bcount%5D=10',
     None, V1),
    ('getFunction', 'GET',
     '/functions/fn1',
     None, V1),
    ('getSource', 'GET',
     '/sources/src1',
     None, V1),
    ('getSourceMetadata', 'GET',
     '/catalog/sources/IqDTy1TpoU',
     None, V1),
    ('getSourcesCatalog', 'GET',
     '/catalog/sources?pagination%5Bcount%5D=200&pagination%5Bcursor%5D=MA%3D%3D',
     None, V1),
    ('getTransformation', 'GET',
     '/transformations/tr1',
     None, V1),
    ('getUser', 'GET',
     '/users/u1',
     None, V1),
    ('getWarehouse', 'GET',
     '/warehouses/wh1',
     None, V1),
    ('getWarehouseMetadata', 'GET',
     '/catalog/warehouses/wm1',
     None, V1),
    ('getWarehousesCatalog', 'GET',
     '/catalog/warehouses?pagination%5Bcount%5D=50',
     None, V1),
    ('listConnectedSourcesFromWarehouse', 'GET',
     '/warehouses/wh1/connected-sources?pagination%5Bcount%5D=50',
     None, V1),
    ('listDestinations', 'GET',
     '/destinations?pagination%5Bcount%5D=50',
     None, V1),
    ('listSubscriptionsFromDestination', 'GET',
     '/destinations/dst1/subscriptions?pagination%5Bcount%5D=50',
     None, V1ALPHA),
    ('listFunctions', 'GET',
     '/functions?pagination%5Bcount%5D=50&resourceType=DESTINATION',
     None, V1),
    ('listSources', 'GET',
     '/sources?pagination%5Bcount%5D=200&pagination%5Bcursor%5D=Mw%3D%3D',
     None, V1),
    ('listTransformations', 'GET',
     '/transformations?pagination%5Bcount%5D=50',
     None, V1),
    ('listUsers', 'GET',
     '/users?pagination%5Bcount%5D=50',
     None, V1),
    ('listWarehouses', 'GET',
     '/warehouses?pagination%5Bcount%5D=50',
     None, V1),
    ('removeSourceConnectionFromWarehouse', 'DELETE',
     '/warehouses/wh1/connected-sources/src1',
     None, V1),
    ('updateDestination', 'PATCH',
     '/destinations/dst1',
     '{"name":"renamed","enabled":false}', V1),
    ('updateSubscriptionForDestination', 'PATCH',
     '/destinations/dst1/subscriptions/sub1',
     '{"input":{"name":"renamed","enabled":false}}', V1ALPHA),
    ('updateFunction', 'PATCH',
     '/functions/fn1',
     '{"displayName":"renamed"}', V1),
    ('updateSource', 'PATCH',
     '/sources/src1',
     '{"name":"renamed","enabled":false}', V1),
    ('updateTransformation', 'PATCH',
     '/transformations/tr1',
     '{"name":"renamed"}', V1),
    ('updateWarehouse', 'PATCH',
     '/warehouses/wh1',
     '{"name":"renamed","enabled":true,"settings":{}}', V1),
]

PATH_IDS = {"destinationId": "dst1", "functionId": "fn1", "sourceId": "src1",
            "transformationId": "tr1"}


class Result:
    """what came back from Prism, and what the upstream saw of the request."""

    def __init__(self, status, headers, body, forwarded):
        self.status = status
        self.headers = headers
        self.body = body
        self.forwarded = forwarded

    def problem(self):
        """problem - Prism's problem+json body as a dict, or {}."""
        if "problem+json" not in (self.headers.get("Content-Type") or ""):
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            return {}

    def violations(self):
        """violations - Prism's validation list (request and response)."""
        return self.problem().get("validation", [])

    def request_violations(self):
        """request_violations - the violations not located in the response."""
        return [v for v in self.violations()
                if not v.get("location") or v["location"][0] != "response"]


def send(base, upstream, method, target, body, media, auth=True):
    """send - one request through Prism, with the daemon's headers."""
    headers = {"Accept": media}
    if auth:
        headers["Authorization"] = "Bearer " + TOKEN
    data = None
    if body is not None:
        data = body.encode()
        headers["Content-Type"] = media
    upstream.last_request = None
    req = urllib.request.Request(base + target, data=data, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, hdrs, text = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, hdrs, text = e.code, e.headers, e.read()
    return Result(status, hdrs, text.decode("utf-8", "replace"),
                  upstream.last_request)


def same_target(seen, sent):
    """same_target - same path and same decoded query pairs in the same order.

    Prism re-serialises the query it forwards (a space sent as %20 arrives
    as +), so the raw strings may differ while the parameters do not.
    """
    seen_path, _, seen_query = seen.partition("?")
    sent_path, _, sent_query = sent.partition("?")
    return (seen_path == sent_path and
            urllib.parse.parse_qsl(seen_query, keep_blank_values=True) ==
            urllib.parse.parse_qsl(sent_query, keep_blank_values=True))


def forwarded_unchanged(res, method, target, body):
    """forwarded_unchanged - why the upstream did not get exactly this request, or None."""
    seen = res.forwarded
    if seen is None:
        return "not forwarded to the upstream"
    if seen["method"] != method or not same_target(seen["path"], target):
        return "upstream saw %s %s" % (seen["method"], seen["path"])
    if body is not None and json.loads(seen["body"] or "null") != json.loads(body):
        return "upstream saw body %s" % seen["body"]
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    if headers.get("authorization") != "Bearer " + TOKEN:
        return "upstream saw no bearer token"
    return None


def check_passes(base, upstream, method, target, body, media):
    """check_passes - None when Prism forwards the request without complaint."""
    res = send(base, upstream, method, target, body, media)
    bad = res.request_violations()
    if bad:
        return "HTTP %d, request violations: %s" % (res.status, json.dumps(bad))
    if res.status in (400, 401, 403, 404, 405, 406, 415, 422):
        return "HTTP %d from prism: %s" % (res.status, res.body[:300])
    return forwarded_unchanged(res, method, target, body)


def with_path_id(body, id_name):
    """with_path_id - body with the path id added, as the buggy 32.0.5 schema wants."""
    obj = json.loads(body)
    obj[id_name] = PATH_IDS[id_name]
    return json.dumps(obj, separators=(",", ":"))


def check_spec_bug(base, upstream, op, method, target, body, media):
    """check_spec_bug - the known 422 without the id, and a pass with it."""
    id_name = PATCH_SPEC_BUG[op]
    want = "Request body must have required property '%s'" % id_name
    res = send(base, upstream, method, target, body, media)
    got = [(v.get("location"), v.get("message")) for v in res.violations()]
    if res.status != 422 or res.forwarded is not None or got != [(["body"], want)]:
        return "expected only 422 %r (spec bug), got HTTP %d %s" % (want, res.status, got)
    why = check_passes(base, upstream, method, target, with_path_id(body, id_name), media)
    if why:
        return "still rejected with %s in the body: %s" % (id_name, why)
    return None


def check_controls(base, upstream):
    """check_controls - violations the harness must see, or it proves nothing."""
    out = []
    res = send(base, upstream, "GET", "/sources?pagination.count=50", None, V1)
    out.append(("control: dot-form pagination is a request violation",
                None if res.status == 422 and res.request_violations() and
                res.forwarded is None else "HTTP %d %s" % (res.status, res.body[:200])))
    res = send(base, upstream, "GET", "/sources/src1", None, V1, auth=False)
    out.append(("control: missing bearer token is refused",
                None if res.status == 401 and res.forwarded is None
                else "HTTP %d %s" % (res.status, res.body[:200])))
    return out


def template_matches(template, path):
    """template_matches - whether path fits /a/{x}/b (one segment per {x})."""
    t, p = template.strip("/").split("/"), path.strip("/").split("/")
    return len(t) == len(p) and all(a == b or a.startswith("{") for a, b in zip(t, p))


def check_table():
    """check_table - every named operation once, with its catalog method and path."""
    with open(OPERATIONS_JSON) as f:
        ops = {o["operation_id"]: o for o in json.load(f) if o.get("operation_id")}
    ids = [r[0] for r in REQUESTS]
    problems = []
    if sorted(ids) != sorted(ops):
        problems.append("table and operations.json differ: %s"
                        % sorted(set(ids) ^ set(ops)))
    for op, method, target, _body, media in REQUESTS:
        o = ops.get(op)
        if not o:
            continue
        want_media = "application/vnd.segment.%s+json" % o["media_type_version"]
        if o["method"] != method or not template_matches(o["path"], target.split("?")[0]):
            problems.append("%s: %s %s does not match %s %s"
                            % (op, method, target, o["method"], o["path"]))
        if media != want_media:
            problems.append("%s: media type %s, catalog says %s" % (op, media, want_media))
    return problems


def run_checks(base, upstream):
    """run_checks - (name, failure or None) for every operation and control."""
    results = []
    for op, method, target, body, media in REQUESTS:
        if op in PATCH_SPEC_BUG:
            why = check_spec_bug(base, upstream, op, method, target, body, media)
        else:
            why = check_passes(base, upstream, method, target, body, media)
        results.append(("%s %s %s" % (op, method, target), why))
    return results + check_controls(base, upstream)


def main():
    if not prism.prism_installed():
        print("skipped: prism not installed (run npm ci in tests/contract)")
        return SKIP
    problems = check_table()
    for p in problems:
        print("FAIL table: %s" % p)
    upstream, upstream_url = start_upstream()
    try:
        proc, base = prism.start_prism(upstream_url)
    except prism.PrismError as e:
        stop_upstream(upstream)
        print("FAIL %s" % e)
        return 1
    try:
        results = run_checks(base, upstream)
    finally:
        log = prism.prism_output(proc)
        prism.stop_prism(proc)
        stop_upstream(upstream)
    failed = len(problems)
    for name, why in results:
        if why:
            failed += 1
            print("FAIL %s: %s" % (name, why))
        else:
            print("ok   %s" % name)
    passed = len(results) - (failed - len(problems))
    print("%d passed, %d failed" % (passed, failed))
    if failed and os.environ.get("PRISM_LOG"):
        print(log)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
