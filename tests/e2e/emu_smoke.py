#!/usr/bin/env python3
"""emu_smoke.py - smoke test of segspool-emu, the Segment Public API emulator.

usage: emu_smoke.py PATH/TO/segspool-emu

Starts emulators on free ports (--port 0 --port-file), exercises auth, CRUD, pagination,
events volume determinism, media types, rate limits, faults and /__emu/stats, and prints
"N passed, N failed"; exits non-zero on any failure. Python 3 standard library only.
"""
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

TOKEN = "smoke-token"
passed = 0
failed = 0


def check(cond, what):
    """check - records one assertion."""
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}", file=sys.stderr)


class Emu:
    """One emulator process on a free port."""

    def __init__(self, binary, tmp, name, *args):
        self.port_file = os.path.join(tmp, f"{name}.port")
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--port-file", self.port_file, *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.time() + 10
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"emulator {name} did not start")
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        self.base = f"http://127.0.0.1:{self.port}"
        self.banner = self.proc.stdout.readline().strip()

    def call(self, method, path, body=None, token=TOKEN, accept=None, ctype=None):
        """call - (status, headers, parsed JSON or text)."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if accept:
            headers["Accept"] = accept
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = ctype or "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, hdrs, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, e.headers, e.read()
        text = raw.decode()
        try:
            return status, hdrs, json.loads(text)
        except ValueError:
            return status, hdrs, text

    def stop(self):
        """stop - SIGTERM, then wait; the exit status must be 0."""
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc.stdout.close()
        check(rc == 0, f"emulator on {self.port} exits 0 on SIGTERM (got {rc})")


def first_error(doc):
    """first_error - errors[0] of an envelope, or {}."""
    if isinstance(doc, dict) and doc.get("errors"):
        return doc["errors"][0]
    return {}


def test_auth(emu):
    status, hdrs, doc = emu.call("GET", "/sources", token=None)
    check(status == 401, f"no token: 401 (got {status})")
    check(first_error(doc).get("type") == "Unauthorized", "401 envelope type Unauthorized")
    check(hdrs.get("Content-Type", "").startswith("application/vnd.segment."),
          "error Content-Type is a segment media type")
    status, _, _ = emu.call("GET", "/sources", token="wrong")
    check(status == 401, f"wrong token with --token: 401 (got {status})")
    check(emu.banner == f"segspool-emu listening on http://127.0.0.1:{emu.port}",
          f"banner names the port ({emu.banner!r})")


def source_metadata_id(emu):
    status, _, doc = emu.call("GET", "/catalog/sources?pagination[count]=5")
    check(status == 200, f"getSourcesCatalog 200 (got {status})")
    names = [m["name"] for m in doc["data"]["sourcesCatalog"]]
    check("Javascript" in names, f"catalog has Javascript ({names})")
    check(doc["data"]["pagination"]["totalEntries"] == 150, "sources catalog has 150 entries")
    return doc["data"]["sourcesCatalog"][0]["id"]


def test_source_crud(emu):
    meta = source_metadata_id(emu)
    body = {"slug": "smoke-web", "enabled": True, "metadataId": meta, "unknownField": 1}
    status, _, doc = emu.call("POST", "/sources", body)
    check(status == 201, f"createSource 201 (got {status}: {doc})")
    src = doc["data"]["source"]
    check(src["slug"] == "smoke-web" and src["metadata"]["id"] == meta, "created source")
    check(src["id"].startswith("src_") and src["writeKeys"], "source id and write key")
    status, _, doc = emu.call("POST", "/sources", body)
    check(status == 409 and first_error(doc).get("type") == "Conflict",
          f"slug taken: 409 Conflict (got {status})")
    status, _, doc = emu.call("POST", "/sources", {"slug": "x", "enabled": True,
                                                   "metadataId": "nope"})
    check(status == 404 and "source metadata nope not found" in first_error(doc)["message"],
          f"unknown metadataId: 404 (got {status})")
    status, _, doc = emu.call("POST", "/sources", {"slug": "x", "metadataId": meta})
    check(status == 422 and first_error(doc).get("field") == "enabled",
          f"missing enabled: 422 with field (got {status}: {doc})")
    status, _, doc = emu.call("GET", f"/sources/{src['id']}")
    check(status == 200 and doc["data"]["source"] == src, "getSource returns it")

    status, _, doc = emu.call("PATCH", f"/sources/{src['id']}", {"name": "Smoke Web"})
    check(status == 200 and doc["data"]["source"]["name"] == "Smoke Web", "updateSource")
    _, _, doc = emu.call("GET", f"/sources/{src['id']}")
    check(doc["data"]["source"]["name"] == "Smoke Web", "update is kept")

    status, _, doc = emu.call("DELETE", f"/sources/{src['id']}")
    check(status == 200 and doc == {"data": {"status": "SUCCESS"}}, "deleteSource")
    status, _, doc = emu.call("GET", f"/sources/{src['id']}")
    check(status == 404 and first_error(doc).get("type") == "NotFound",
          f"deleted source: 404 NotFound (got {status})")
    return meta


def test_pagination(emu, meta):
    ids = []
    for i in range(5):
        _, _, doc = emu.call("POST", "/sources", {"slug": f"page-{i}", "enabled": False,
                                                  "metadataId": meta})
        ids.append(doc["data"]["source"]["id"])
    status, _, first = emu.call("GET", "/sources?pagination[count]=2")
    check(status == 200, f"listSources 200 (got {status})")
    _, _, same = emu.call("GET", "/sources?pagination%5Bcount%5D=2&pagination%5Bcursor%5D=MA%3D%3D")
    check(first == same, "cursor MA== is the first page")
    _, _, dotted = emu.call("GET", "/sources?pagination.count=2")
    check(first == dotted, "pagination.count works like pagination[count]")
    pages, cursor, seen = [], None, []
    while True:
        q = "?pagination[count]=2" + (f"&pagination[cursor]={cursor}" if cursor else "")
        _, _, doc = emu.call("GET", "/sources" + q)
        pages.append(doc["data"]["pagination"])
        seen += [s["id"] for s in doc["data"]["sources"]]
        cursor = doc["data"]["pagination"].get("next")
        if not cursor or len(pages) > 5:
            break
    check(len(pages) == 3, f"5 sources in pages of 2: 3 pages (got {len(pages)})")
    check(seen == ids, "pages hold every source once, in creation order")
    check(all(p["totalEntries"] == 5 for p in pages), "totalEntries is 5 on every page")
    check("previous" not in pages[0] and "next" in pages[0], "first page: next, no previous")
    check(pages[1].get("previous") == "MA==", "second page: previous is MA==")
    check("next" not in pages[2] and "previous" in pages[2], "last page: no next")
    status, _, doc = emu.call("GET", "/sources?pagination[count]=0")
    check(status == 422 and first_error(doc).get("field") == "pagination.count",
          f"count 0: 422 (got {status})")
    status, _, doc = emu.call("GET", "/sources?pagination[count]=1001")
    check(status == 422, f"count 1001: 422 (got {status})")
    status, _, doc = emu.call("GET", "/sources")
    check(status == 200 and len(doc["data"]["sources"]) == 5, "no pagination: default count")


def volume(emu, start, end, extra=""):
    q = (f"/events/volume?granularity=HOUR&startTime={start}&endTime={end}"
         f"&groupBy.0=eventType&groupBy.1=source{extra}")
    status, _, doc = emu.call("GET", q)
    check(status == 200, f"events volume {start}..{end}: 200 (got {status}: {doc})")
    return doc["data"]


def group_key(g):
    return (g.get("source", {}).get("id"), g.get("eventType"), g.get("eventName"))


def test_events_volume(emu):
    whole = volume(emu, "2026-01-01T00:00:00Z", "2026-01-01T06:00:00Z")
    a = volume(emu, "2026-01-01T00:00:00Z", "2026-01-01T03:00:00Z")
    b = volume(emu, "2026-01-01T03:00:00Z", "2026-01-01T06:00:00Z")
    check(len(whole["result"]) == 9, f"3 sources x 3 types: 9 groups ({len(whole['result'])})")
    check(whole["query"].get("workspaceId"), "query echo has workspaceId")
    joined = {}
    for part in (a, b):
        for g in part["result"]:
            joined.setdefault(group_key(g), []).extend(g["series"])
    equal = all(joined.get(group_key(g)) == g["series"] for g in whole["result"])
    check(equal, "two windows' series equal one big window's")
    check(all(len(g["series"]) == 6 and g["total"] == sum(p["count"] for p in g["series"])
              for g in whole["result"]), "6 hourly buckets, total is their sum")
    again = volume(emu, "2026-01-01T00:00:00Z", "2026-01-01T06:00:00Z")
    check(again == whole, "the same request gives the same answer")
    narrowed = volume(emu, "2026-01-01T00:00:00Z", "2026-01-01T06:00:00Z",
                      "&eventType=track&sourceId=src_evt_1")
    check(len(narrowed["result"]) == 1, "filters narrow the groups")
    status, _, doc = emu.call("GET", "/events/volume?granularity=HOUR&startTime="
                              "2026-01-02T00:00:00Z&endTime=2026-01-01T00:00:00Z")
    check(status == 422 and first_error(doc).get("field"),
          f"startTime after endTime: 422 with field (got {status})")
    status, _, doc = emu.call("GET", "/events/volume?granularity=WEEK&startTime="
                              "2026-01-01T00:00:00Z&endTime=2026-01-02T00:00:00Z")
    check(status == 422 and first_error(doc).get("field") == "granularity",
          f"bad granularity: 422 (got {status})")


def test_media_types(emu):
    path = "/destinations/dst_none/subscriptions"
    status, _, doc = emu.call("GET", path, accept="application/vnd.segment.v1+json")
    check(status == 406, f"v1alpha op with a v1 Accept: 406 (got {status})")
    # what the official SDKs send; the API serves plain JSON on every endpoint
    status, _, doc = emu.call("GET", path, accept="application/json")
    check(status == 404, f"v1alpha op with Accept application/json: past the media check, "
          f"404 (got {status})")
    status, hdrs, doc = emu.call("GET", path, accept="application/vnd.segment.v1alpha+json")
    check(status == 404, f"with v1alpha Accept: past the media check, 404 (got {status})")
    check(hdrs.get("Content-Type") == "application/vnd.segment.v1alpha+json",
          "answered as v1alpha")


SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data",
                     "emu_seeds.json")
FUNCTION_TYPES = ["DESTINATION", "INSERT_DESTINATION", "INSERT_SOURCE", "INSERT_TRANSFORMATION",
                  "SOURCE"]


def test_seeds(emu):
    """test_seeds - every real catalog entry of data/emu_seeds.json is served as listed."""
    with open(SEEDS) as f:
        seeds = json.load(f)
    for kind, path, key in (("sources", "/catalog/sources", "sourcesCatalog"),
                            ("destinations", "/catalog/destinations", "destinationsCatalog"),
                            ("warehouses", "/catalog/warehouses", "warehousesCatalog")):
        _, _, doc = emu.call("GET", path + "?pagination[count]=1000")
        served = {m["id"]: m for m in doc["data"][key]}
        for e in seeds[kind]:
            m = served.get(e["id"], {})
            check((m.get("slug"), m.get("name")) == (e["slug"], e["name"]),
                  f"{kind} catalog serves {e['id']} as {e['slug']} ({m.get('slug')})")
            if "categories" in e:
                check(m.get("categories") == e["categories"], f"{e['id']}: categories")
        check(len(seeds[kind]) > 0, f"{kind}: real entries listed")


def test_shapes(emu):
    """test_shapes - the fields 73.2.0's models have, and only those."""
    status, _, doc = emu.call("GET", "/catalog/sources/IqDTy1TpoU")
    meta = doc.get("data", {}).get("sourceMetadata", {})
    check(status == 200 and meta.get("slug") == "javascript",
          f"IqDTy1TpoU is the Javascript source, as Segment's docs say (got {status})")
    check(meta.get("status") == "PUBLIC", "source metadata carries status")
    _, _, doc = emu.call("GET", "/catalog/sources?pagination[count]=1000")
    check(all(m.get("status") for m in doc["data"]["sourcesCatalog"]),
          "every sources catalog entry carries status")
    status, _, doc = emu.call("POST", "/sources", {"slug": "shape-web", "enabled": True,
                                                   "metadataId": "IqDTy1TpoU"})
    check(status == 201, f"the README's createSource example: 201 (got {status}: {doc})")
    sid = doc["data"]["source"]["id"]
    check(doc["data"]["source"]["metadata"].get("status") == "PUBLIC",
          "createSource: metadata.status")
    _, _, doc = emu.call("PATCH", f"/sources/{sid}", {"name": "Shape Web"})
    check(doc["data"]["source"]["metadata"].get("status") == "PUBLIC",
          "updateSource: metadata.status")
    for path, key in ((f"/sources/{sid}", "source"), ("/sources", "sources"),
                      ("/warehouses/wh_1/connected-sources", "sources")):
        _, _, doc = emu.call("GET", path)
        got = doc["data"][key]
        items = got if isinstance(got, list) else [got]
        check(items and all(x["metadata"].get("status") for x in items),
              f"GET {path}: metadata.status")
    _, _, doc = emu.call("GET", "/catalog/destinations?pagination[count]=1")
    dmeta = doc["data"]["destinationsCatalog"][0]["id"]
    status, _, doc = emu.call("POST", "/destinations", {"sourceId": sid, "metadataId": dmeta,
                                                        "settings": {}})
    check(status == 200 and "workspaceId" not in doc["data"]["destination"],
          f"a destination has no workspaceId (DestinationV1) ({status})")
    status, _, doc = emu.call("POST", "/transformations", {"name": "t", "sourceId": sid,
                                                           "enabled": True, "if": "all"})
    check(status == 200 and "workspaceId" not in doc["data"]["transformation"],
          f"a transformation has no workspaceId (TransformationV1) ({status})")
    setting = {"name": "k", "label": "K", "type": "STRING", "description": "d",
               "required": False, "sensitive": False}
    for t in FUNCTION_TYPES:
        status, _, doc = emu.call("POST", "/functions", {"code": "x", "displayName": t,
                                                         "resourceType": t,
                                                         "settings": [setting]})
        fn = doc.get("data", {}).get("function", {})
        check(status == 200 and fn.get("resourceType") == t,
              f"createFunction resourceType {t}: 200 (got {status}: {doc})")
        check(not {"workspaceId", "buildpack"} & set(fn),
              f"a {t} function has no workspaceId or buildpack (FunctionV1)")
        status, _, doc = emu.call("GET", f"/functions?resourceType={t}")
        items = doc.get("data", {}).get("functions", [])
        check(status == 200 and [f["displayName"] for f in items] == [t],
              f"listFunctions resourceType {t}: 200, that function (got {status})")
        check(items and not {"code", "settings"} & set(items[0]),
              f"listFunctions {t}: items without code and settings (ListFunctionItemV1)")
    status, _, doc = emu.call("GET", "/functions?resourceType=BOTH")
    check(status == 422, f"listFunctions resourceType BOTH: 422 (got {status})")
    _, _, doc = emu.call("GET", "/catalog/warehouses")
    check(not any("categories" in m for m in doc["data"]["warehousesCatalog"]),
          "warehouse metadata has no categories (WarehouseMetadataV1)")
    status, _, doc = emu.call("PATCH", "/warehouses/wh_1", {"name": "Renamed",
                                                            "settings": {"hostname": "h"}})
    wh = doc.get("data", {}).get("warehouse", {})
    check(status == 200 and "name" not in wh and wh.get("settings") == {"hostname": "h",
                                                                         "name": "Renamed"},
          f"updateWarehouse: the name goes to settings.name, as in the spec's example ({wh})")


def test_stats(emu):
    status, _, stats = emu.call("GET", "/__emu/stats", token=None)
    check(status == 200, f"/__emu/stats without auth: 200 (got {status})")
    check(stats["requests"] > 20, f"requests counted ({stats['requests']})")
    check(stats["by_operation"].get("createSource") == 9, "by_operation counts createSource")
    check(stats["by_status"].get("401") == 2, "by_status counts the 401s")
    check(stats["mutations"].get("createSource slug=smoke-web") == 2,
          f"mutations count each createSource by slug ({stats['mutations']})")
    status, _, state = emu.call("GET", "/__emu/state", token=None)
    check(status == 200 and len(state["sources"]) == 5 and len(state["warehouses"]) == 3,
          "/__emu/state holds the 5 sources and 3 warehouses")
    emu.call("POST", "/__emu/reset", {}, token=None)
    _, _, stats = emu.call("GET", "/__emu/stats", token=None)
    check(stats["requests"] == 0 and stats["mutations"] == {}, "reset clears the counters")
    _, _, state = emu.call("GET", "/__emu/state", token=None)
    check(len(state["sources"]) == 5, "reset keeps the state")


def test_rate_limit(binary, tmp):
    emu = Emu(binary, tmp, "rate", "--rate", "5/s")
    try:
        answers = [emu.call("GET", "/warehouses") for _ in range(8)]
        limited = [a for a in answers if a[0] == 429]
        ok = [a for a in answers if a[0] == 200]
        check(len(limited) >= 1, f"8 quick requests at 5/s: some 429 ({len(limited)})")
        check(len(ok) >= 5, f"the first 5 pass ({len(ok)})")
        if limited:
            status, hdrs, doc = limited[0]
            err = first_error(doc)
            check(err.get("type") == "RateLimited", "429 type RateLimited")
            check(err.get("data", {}).get("msBeforeNext", 0) > 0, "429 has msBeforeNext")
            check(int(hdrs.get("Retry-After", "0")) >= 1, "429 has Retry-After")
        check(ok and ok[0][1].get("X-RateLimit-Remaining") is not None,
              "2xx carries X-RateLimit-Remaining")
        check(ok and ok[0][1].get("X-RateLimit-Reset", "").endswith("GMT"),
              "X-RateLimit-Reset is an HTTP date")
        _, _, stats = emu.call("GET", "/__emu/stats", token=None)
        check(stats["rate_limited"] == len(limited), "stats count the 429s")
    finally:
        emu.stop()


def test_faults(binary, tmp, meta):
    emu = Emu(binary, tmp, "faults", "--fail-rate", "1")
    try:
        status, _, doc = emu.call("GET", "/warehouses")
        check(status == 503 and first_error(doc).get("type") == "ServiceUnavailable",
              f"--fail-rate 1: 503 envelope (got {status})")
        status, _, _ = emu.call("GET", "/__emu/stats", token=None)
        check(status == 200, "admin endpoints are never faulted")
        status, _, cfg = emu.call("POST", "/__emu/config",
                                  {"fail_rate": 0, "reset_rate": 1}, token=None)
        check(status == 200 and cfg["reset_rate"] == 1, "config changes faults at run time")
        try:
            emu.call("POST", "/sources", {"slug": "lost", "enabled": True, "metadataId": meta})
            check(False, "--reset-rate 1: the connection is dropped")
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError):
            check(True, "--reset-rate 1: the connection is dropped")
        _, _, state = emu.call("GET", "/__emu/state", token=None)
        check([s["slug"] for s in state["sources"]] == ["lost"],
              "a reset request was applied all the same")
        emu.call("POST", "/__emu/config", {"reset_rate": 0, "nonjson_rate": 1}, token=None)
        status, hdrs, body = emu.call("GET", "/warehouses")
        check(status == 502 and hdrs.get("Content-Type") == "text/html" and "<html>" in body,
              f"--nonjson-rate 1: 502 HTML (got {status})")
        status, _, doc = emu.call("POST", "/__emu/config", {"fail_rate": 2}, token=None)
        check(status == 422, f"bad config value: 422 (got {status})")
        _, _, stats = emu.call("GET", "/__emu/stats", token=None)
        f = stats["faults"]
        check(f["fail"] == 1 and f["reset"] == 1 and f["nonjson"] == 1,
              f"stats count the faults ({f})")
    finally:
        emu.stop()


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    binary = sys.argv[1]
    try:
        with tempfile.TemporaryDirectory(prefix="emu-smoke-") as tmp:
            emu = Emu(binary, tmp, "main", "--token", TOKEN, "--seed", "7")
            try:
                test_auth(emu)
                meta = test_source_crud(emu)
                test_pagination(emu, meta)
                test_events_volume(emu)
                test_media_types(emu)
                test_stats(emu)
            finally:
                emu.stop()
            emu = Emu(binary, tmp, "shapes")
            try:
                test_seeds(emu)
                test_shapes(emu)
            finally:
                emu.stop()
            test_rate_limit(binary, tmp)
            test_faults(binary, tmp, meta)
    except Exception as e:  # a crash of the emulator or of a check: still report counts
        check(False, f"smoke test aborted: {e!r}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
