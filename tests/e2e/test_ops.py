"""e2e ops - every operation (the 43 of data/operations.json, and raw) through the real daemon
against the emulator, in the phases of a provisioning run: creates (whose ids are read
back from the output files), reads (gets, paginated lists, catalogs, metadata, event
volumes), updates, deletes, and gets of what was deleted. Each job's output file and
stored result (`show --json`) are checked against what the emulator holds
(/__emu/state), not only its state. A permanent 4xx must fail at once: one attempt, the
API's error envelope kept."""
import json
import os
import sys
import urllib.parse
import urllib.request

from harness import TOKEN, Checks, Emulator, Spool, results_by_id
import opsjobs
from opsjobs import step_jobs, strip

c = Checks("ops")


def by_id(items, ident):
    for it in items:
        if it.get("id") == ident:
            return it
    return None


def without(item, *fields):
    return {k: v for k, v in item.items() if k not in fields}


def pages_for(n, paginate, default_count=200):
    """pages_for - how many pages a paginated job fetches for n items."""
    count, max_pages = default_count, None
    if isinstance(paginate, dict):
        count, max_pages = paginate.get("count", default_count), paginate.get("max_pages")
    pages = max(1, -(-n // count))
    return min(pages, max_pages) if max_pages else pages


class Run:
    def __init__(self, emu, spool):
        self.e, self.s = emu, spool
        self.ids = {}
        self.job_ids = {}  # job name -> daemon job id
        self.jobs = {}  # job name -> job document
        self.ops_used = set()

    def step(self, step, jobs):
        self.s.drop_jobs(step + ".json", strip(jobs))
        rc = self.s.run_until_idle(timeout=120)
        c.eq(rc, 0, f"{step}: run --until-idle exit status")
        by_key = {j["key"]: j for j in self.s.jobs()}
        for j in jobs:
            row = by_key.get(j["key"])
            if c.check(row is not None, f"{step}: job {j['_name']} ingested"):
                self.job_ids[j["_name"]] = row["id"]
                self.jobs[j["_name"]] = j
                self.ops_used.add(j["op"])

    def output(self, name):
        path = self.s.out_path(self.jobs[name]["output"])
        if not os.path.exists(path):
            return None
        with open(path) as f:
            if path.endswith(".jsonl"):
                return [json.loads(line) for line in f if line.strip()]
            return json.load(f)

    def show(self, name):
        return self.s.show(self.job_ids[name])

    def ok(self, name):
        """ok - the job succeeded, every attempt ok, and its output file is its stored
        result; returns (show, output) for further checks."""
        sh = self.show(name)
        c.eq(sh["state"], "succeeded", f"{name}: state (error {sh.get('error')})")
        atts = sh.get("attempts") or []
        if self.jobs[name].get("split"):  # the children make the requests
            atts = [a for k in (sh.get("children") or {}).get("jobs", [])
                    for a in self.s.show(k["id"]).get("attempts") or []]
        c.check(atts and all(a["outcome"] == "ok" for a in atts),
                f"{name}: every attempt ok: {[(a['outcome'], a['http_status']) for a in atts]}")
        doc = self.output(name)
        c.check(doc is not None, f"{name}: output file {self.jobs[name]['output']} exists")
        c.eq(sh.get("output"), self.jobs[name]["output"], f"{name}: show names the output")
        if not sh.get("paginated"):
            c.eq(sh.get("result"), doc, f"{name}: stored result equals the output file")
            c.eq(len(atts), 1, f"{name}: one attempt")
        return sh, doc

    def paged(self, name, want_items, what, total=None):
        """paged - a paginated job's JSON Lines output is exactly want_items, in order,
        fetched in the expected number of pages; total: how many items the emulator
        holds (when max_pages stops the job before the end)."""
        sh, doc = self.ok(name)
        job = self.jobs[name]
        total = len(want_items) if total is None else total
        c.eq(doc, want_items, f"{name}: output lines are {what}")
        c.eq(sh.get("items_done"), len(want_items), f"{name}: items_done")
        c.eq(sh.get("total_entries"), total, f"{name}: total_entries is the emulator's count")
        want_pages = pages_for(total, job.get("paginate", "all"))
        c.eq(sh.get("pages_done"), want_pages, f"{name}: pages_done")
        c.eq(len(sh.get("attempts") or []), want_pages, f"{name}: one request per page")
        res = sh.get("result") or {}
        c.eq((res.get("pages"), res.get("items"), res.get("output")),
             (want_pages, len(want_items), job["output"]), f"{name}: stored result summary")
        reqs = [a.get("request") or "" for a in sh.get("attempts") or []]
        c.check(all("pagination%5Bcount%5D=" in r for r in reqs),
                f"{name}: every page request carries pagination[count]: {reqs[:2]}")
        c.check(all("pagination%5Bcursor%5D=" in r for r in reqs[1:]),
                f"{name}: pages after the first carry the cursor: {reqs[1:3]}")
        return sh, doc

    def request_line(self, name):
        atts = self.show(name).get("attempts") or []
        return atts[-1].get("request") if atts else None


def emu_get(emu, path, pairs):
    """emu_get - a direct GET on the emulator (what it holds, to compare with)."""
    url = emu.url + path + "?" + urllib.parse.urlencode(pairs)
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + TOKEN})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["data"]


def check_create_1(r, st):
    sources = st["sources"]
    for name, slug in [("src-web", "ops-web"), ("src-ios", "ops-ios"),
                       ("src-backend", "ops-backend"), ("src-raw", "ops-raw")]:
        sh, doc = r.ok(name)
        sid = r.ids.get(name)
        item = by_id(sources, sid)
        if not c.check(item is not None, f"{name}: created source {sid} is in the emulator"):
            continue
        c.eq(doc, {"source": item}, f"{name}: output is the emulator's source")
        c.eq((item["slug"], item["metadata"]["id"]), (slug, opsjobs.SOURCE_META),
             f"{name}: slug and metadata")
    c.eq(sorted(s["slug"] for s in sources), ["ops-backend", "ops-ios", "ops-raw", "ops-web"],
         "exactly the four sources exist")
    web = by_id(sources, r.ids.get("src-web")) or {}
    c.eq((web.get("enabled"), web.get("settings")), (True, {"region": "us"}),
         "src-web: enabled and settings as sent")
    c.eq((by_id(sources, r.ids.get("src-backend")) or {}).get("enabled"), False,
         "src-backend: enabled false as sent")
    conns = {(x["warehouseId"], x["sourceId"]) for x in st["connections"]}
    c.eq({w for w, s in conns if s == r.ids.get("src-web")}, set(opsjobs.WAREHOUSES),
         "a new source is connected to every warehouse")
    c.eq({w for w, s in conns if s == r.ids.get("src-ios")}, set(),
         "disconnectAllWarehouses: src-ios is connected to none")
    c.eq(r.request_line("src-raw"), "POST /sources", "raw: the request line as given")
    c.eq(r.show("src-raw").get("attempts", [{}])[0].get("http_status"), 201,
         "raw POST /sources: 201 Created")
    for name, rtype, prefix in [("fn-source", "SOURCE", "sfn_"), ("fn-dest", "DESTINATION", "dfn_")]:
        sh, doc = r.ok(name)
        item = by_id(st["functions"], r.ids.get(name))
        if c.check(item is not None, f"{name}: function in the emulator"):
            c.eq(doc, {"function": item}, f"{name}: output is the emulator's function")
            c.eq(item["resourceType"], rtype, f"{name}: resourceType")
            c.check(item["id"].startswith(prefix), f"{name}: id {item['id']} has prefix {prefix}")
    fn = by_id(st["functions"], r.ids.get("fn-source")) or {}
    c.eq((fn.get("displayName"), fn.get("settings")), ("Enrich", [opsjobs.FUNCTION_SETTING]),
         "fn-source: displayName and settings as sent")
    sh, doc = r.ok("invites")
    emails = [i["email"] for i in opsjobs.INVITES]
    c.eq(doc, {"emails": emails}, "invites: output lists the invited emails")
    c.eq([i["email"] for i in st["invites"]], emails, "invites: the emulator holds them")
    c.eq(st["invites"][0].get("permissions"), opsjobs.INVITES[0]["permissions"],
         "invites: permissions as sent")
    muts = r.e.stats()["mutations"]
    for slug in ["ops-web", "ops-ios", "ops-backend", "ops-raw"]:
        c.eq(muts.get("createSource slug=" + slug), 1, f"createSource {slug} sent exactly once")
    c.eq(muts.get("createInvites emails=" + ",".join(emails)), 1, "createInvites sent once")


def check_create_2(r, st):
    for name, src in [("dst-web", "src-web"), ("dst-backend", "src-backend")]:
        sh, doc = r.ok(name)
        item = by_id(st["destinations"], r.ids.get(name))
        if c.check(item is not None, f"{name}: destination in the emulator"):
            c.eq(doc, {"destination": item}, f"{name}: output is the emulator's destination")
            c.eq((item["sourceId"], item["metadata"]["id"]), (r.ids[src], opsjobs.DEST_META),
                 f"{name}: on the created source, from the GA4 metadata")
    web = by_id(st["destinations"], r.ids.get("dst-web")) or {}
    c.eq((web.get("name"), web.get("enabled"), web.get("settings")),
         ("GA4 web", True, {"measurementId": "G-ABC123", "apiSecret": "s1"}),
         "dst-web: name, enabled, settings as sent")
    sh, doc = r.ok("trf-web")
    t = by_id(st["transformations"], r.ids.get("trf-web"))
    if c.check(t is not None, "trf-web: transformation in the emulator"):
        c.eq(doc, {"transformation": t}, "trf-web: output is the emulator's transformation")
        c.eq((t["sourceId"], t["if"], t["newEventName"], t["enabled"], t["propertyRenames"]),
             (r.ids["src-web"], 'event = "Checkout"', "Checkout Done", True,
              [{"oldName": "cost", "newName": "price"}]), "trf-web: fields as sent")
    sh, doc = r.ok("conn-ios-wh2")
    c.eq(doc, {"status": "CONNECTED"}, "conn-ios-wh2: status")
    c.eq(sh["attempts"][0]["http_status"], 201, "addConnection: 201")
    c.eq(r.request_line("conn-ios-wh2"),
         "POST /warehouses/wh_2/connected-sources/" + str(r.ids.get("src-ios")),
         "addConnection: path ids in the request")
    conns = {(x["warehouseId"], x["sourceId"]) for x in st["connections"]}
    c.check(("wh_2", r.ids.get("src-ios")) in conns, "src-ios is now connected to wh_2")
    c.eq({w for w, s in conns if s == r.ids.get("src-ios")}, {"wh_2"},
         "and only to wh_2")


def check_create_3(r, st):
    sh, doc = r.ok("sub-web")
    sub = by_id(st["subscriptions"], r.ids.get("sub-web"))
    if c.check(sub is not None, "sub-web: subscription in the emulator"):
        c.eq(doc, {"destinationSubscription": sub}, "sub-web: output is the emulator's")
        c.eq((sub["destinationId"], sub["name"], sub["actionId"], sub["trigger"],
              sub["enabled"], sub["settings"]),
             (r.ids["dst-web"], "GA4 purchase", "act_purchase", 'type = "track"', True,
              {"currency": "EUR"}), "sub-web: fields as sent")
    c.eq(r.request_line("sub-web"), "POST /destinations/%s/subscriptions" % r.ids.get("dst-web"),
         "createDestinationSubscription: request line")


def check_read(r, st):
    ids = r.ids
    gets = [("get-source", "source", st["sources"], ids["src-web"]),
            ("get-destination", "destination", st["destinations"], ids["dst-web"]),
            ("get-function", "function", st["functions"], ids["fn-source"]),
            ("get-transformation", "transformation", st["transformations"], ids["trf-web"]),
            ("get-subscription", "subscription", st["subscriptions"], ids["sub-web"]),
            ("get-user", "user", st["users"], "user_2"),
            ("get-warehouse", "warehouse", st["warehouses"], "wh_1"),
            ("get-source-meta", "sourceMetadata", st["sourcesCatalog"], opsjobs.SOURCE_META),
            ("get-dest-meta", "destinationMetadata", st["destinationsCatalog"],
             opsjobs.DEST_META),
            ("get-wh-meta", "warehouseMetadata", st["warehousesCatalog"],
             opsjobs.WAREHOUSE_META)]
    for name, key, coll, ident in gets:
        sh, doc = r.ok(name)
        item = by_id(coll, ident)
        c.check(item is not None, f"{name}: {ident} is in the emulator")
        c.eq((doc or {}).get(key), item, f"{name}: data.{key} is the emulator's item")
    c.eq(r.output("get-source"), {"source": by_id(st["sources"], ids["src-web"]),
                                  "trackingPlanId": None}, "getSource: whole data object")
    c.eq((r.output("get-source-meta") or {}).get("sourceMetadata", {}).get("name"),
         "Javascript", "IqDTy1TpoU is Javascript")
    c.eq((r.output("get-dest-meta") or {}).get("destinationMetadata", {}).get("name"),
         "Google Analytics 4", "PGEbHBGBz1 is Google Analytics 4")
    c.eq((r.output("get-wh-meta") or {}).get("warehouseMetadata", {}).get("name"),
         "Snowflake", "Mx6mwhin2P is Snowflake")
    c.eq(r.request_line("get-subscription"),
         "GET /destinations/%s/subscriptions/%s" % (ids["dst-web"], ids["sub-web"]),
         "getSubscriptionFromDestination: both path ids")

    # lists and catalogs: every item, in the emulator's order, over several pages
    c.check(len(st["sourcesCatalog"]) > 100, "the sources catalog is big enough to page")
    r.paged("cat-sources", st["sourcesCatalog"], "the whole sources catalog")
    c.check(len(st["destinationsCatalog"]) > 50, "the destinations catalog has > 2 x 25")
    r.paged("cat-destinations", st["destinationsCatalog"][:50],
            "the first two pages (2 x 25) of the destinations catalog",
            total=len(st["destinationsCatalog"]))
    r.paged("cat-warehouses", st["warehousesCatalog"], "the whole warehouses catalog")
    r.paged("list-sources", st["sources"], "every source")
    r.paged("list-destinations", st["destinations"], "every destination")
    r.paged("list-functions-src",
            [without(f, "code", "settings") for f in st["functions"]
             if f["resourceType"] == "SOURCE"],
            "the SOURCE functions (ListFunctionItemV1: without code and settings)")
    r.paged("list-functions-dst",
            [without(f, "code", "settings") for f in st["functions"]
             if f["resourceType"] == "DESTINATION"],
            "the DESTINATION functions (ListFunctionItemV1: without code and settings)")
    c.check("resourceType=DESTINATION" in (r.request_line("list-functions-dst") or ""),
            "listFunctions: resourceType in the query")
    r.paged("list-transformations", st["transformations"], "every transformation")
    r.paged("list-subscriptions",
            [s for s in st["subscriptions"] if s["destinationId"] == ids["dst-web"]],
            "the destination's subscriptions")
    c.check(len(st["users"]) == 25, "25 seeded users")
    r.paged("list-users", [without(u, "permissions") for u in st["users"]],
            "every user (without permissions)")
    r.paged("list-warehouses", st["warehouses"], "every warehouse")
    connected = [by_id(st["sources"], x["sourceId"]) for x in st["connections"]
                 if x["warehouseId"] == "wh_1"]
    c.eq(len(connected), 3, "wh_1 has three connected sources (web, backend, raw)")
    r.paged("list-connected", connected, "the sources connected to wh_1")

    # event volumes: the split job merges one child per day, in time order; each day is
    # what the emulator answers for that day
    sh, doc = r.ok("volume-split")
    want = []
    for a, b in zip(opsjobs.VOLUME_DAYS, opsjobs.VOLUME_DAYS[1:]):
        want += emu_get(r.e, "/events/volume", [("granularity", "DAY"), ("startTime", a),
                                                ("endTime", b), ("groupBy.0", "eventName")])["result"]
    c.eq(len(want), 12, "the emulator has 4 event names x 3 days")
    c.eq(doc, want, "volume-split: output is each day's result, in time order")
    kids = (sh.get("children") or {})
    c.eq((kids.get("total"), kids.get("succeeded")), (3, 3),
         "volume-split: three children, all succeeded")
    c.eq(sh.get("result"), {"children": 3, "items": 12, "output": r.jobs["volume-split"]["output"]},
         "volume-split: stored result summary")
    windows = []
    for k in kids.get("jobs", []):
        p = r.s.show(k["id"])["spec"]["params"]
        windows.append((p["startTime"], p["endTime"]))
    c.eq(sorted(windows), list(zip(opsjobs.VOLUME_DAYS, opsjobs.VOLUME_DAYS[1:])),
         "volume-split: one child per day, windows covering the range exactly")
    whole = emu_get(r.e, "/events/volume", [("granularity", "DAY"),
                                            ("startTime", opsjobs.VOLUME_START),
                                            ("endTime", opsjobs.VOLUME_END),
                                            ("groupBy.0", "eventName")])["result"]
    sums = {}
    for line in doc or []:
        sums[line.get("eventName")] = sums.get(line.get("eventName"), 0) + line.get("total", 0)
    c.eq(sums, {g["eventName"]: g["total"] for g in whole},
         "volume-split: per-event totals add up to the unsplit query's")
    want = emu_get(r.e, "/events/volume", [
        ("granularity", "HOUR"), ("startTime", opsjobs.VOLUME_START),
        ("endTime", "2026-10-01T06:00:00Z"), ("groupBy.0", "source"), ("groupBy.1", "eventType"),
        ("sourceId.0", "src_evt_1"), ("sourceId.1", "src_evt_2"), ("eventType.0", "track")])
    c.eq(len(want["result"]), 2, "two groups: 2 sources x 1 event type")
    r.paged("volume-hourly", want["result"], "the filtered, grouped hourly series")
    line = r.request_line("volume-hourly") or ""
    for part in ["granularity=HOUR", "startTime=2026-10-01T00%3A00%3A00Z", "groupBy.0=source",
                 "groupBy.1=eventType", "sourceId.1=src_evt_2", "eventType.0=track"]:
        c.check(part in line, f"volume-hourly: {part} in {line}")
    c.eq(all(len(g["series"]) == 6 for g in (r.output("volume-hourly") or [])), True,
         "volume-hourly: six hourly points per group")

    sh, doc = r.ok("raw-warehouses")
    c.eq((doc or {}).get("warehouses"), st["warehouses"], "raw GET /warehouses: the warehouses")
    c.eq(r.request_line("raw-warehouses"), "GET /warehouses?pagination%5Bcount%5D=50",
         "raw GET: request line, the query encoded as the SDKs do")


def check_update(r, st):
    ids = r.ids
    targets = {"upd-source": ("source", st["sources"], ids["src-web"], "PATCH /sources/"),
               "upd-destination": ("destination", st["destinations"], ids["dst-web"],
                                   "PATCH /destinations/"),
               "upd-function": ("function", st["functions"], ids["fn-source"],
                                "PATCH /functions/"),
               "upd-transformation": ("transformation", st["transformations"], ids["trf-web"],
                                      "PATCH /transformations/"),
               "upd-subscription": ("subscription", st["subscriptions"], ids["sub-web"],
                                    "PATCH /destinations/%s/subscriptions/" % ids["dst-web"]),
               "upd-warehouse": ("warehouse", st["warehouses"], "wh_2", "PATCH /warehouses/")}
    for name, (key, coll, ident, line) in targets.items():
        sh, doc = r.ok(name)
        item = by_id(coll, ident)
        if not c.check(item is not None, f"{name}: {ident} still exists"):
            continue
        c.eq((doc or {}).get(key), item, f"{name}: output is the updated item")
        want = dict(opsjobs.UPDATES[name])
        if key == "warehouse":
            # WarehouseV1 has no name: the name is settings.name (the spec's example)
            want["settings"] = dict(want["settings"], name=want.pop("name"))
            c.check("name" not in item, f"{name}: no name field on the warehouse")
        for field, value in want.items():
            c.eq(item.get(field), value, f"{name}: the emulator's {field} was changed")
        c.eq(r.request_line(name), line + ident, f"{name}: request line")
    muts = r.e.stats()["mutations"]
    c.eq(muts.get("updateSource " + ids["src-web"]), 1, "updateSource sent once")
    c.eq(muts.get("updateSubscriptionForDestination %s/%s" % (ids["dst-web"], ids["sub-web"])), 1,
         "updateSubscriptionForDestination sent once")
    wh1 = by_id(st["warehouses"], "wh_1") or {}
    c.eq(wh1.get("enabled"), True, "wh_1 was not touched by the update of wh_2")


def check_delete(r, st):
    ids = r.ids
    for j in step_jobs("delete", ids):
        sh, doc = r.ok(j["_name"])
        c.eq(doc, {"status": "SUCCESS"}, f"{j['_name']}: status SUCCESS")
    conns = {(x["warehouseId"], x["sourceId"]) for x in st["connections"]}
    c.check(("wh_1", ids["src-web"]) not in conns, "connection wh_1 <- src-web removed")
    c.check(("wh_2", ids["src-web"]) in conns, "connection wh_2 <- src-web kept")
    c.check(by_id(st["subscriptions"], ids["sub-web"]) is None, "subscription gone")
    c.check(by_id(st["destinations"], ids["dst-backend"]) is None, "dst-backend gone")
    c.check(by_id(st["destinations"], ids["dst-web"]) is not None, "dst-web kept")
    c.check(by_id(st["transformations"], ids["trf-web"]) is None, "transformation gone")
    c.check(by_id(st["functions"], ids["fn-dest"]) is None, "fn-dest gone")
    c.check(by_id(st["functions"], ids["fn-source"]) is not None, "fn-source kept")
    c.check(by_id(st["sources"], ids["src-ios"]) is None, "src-ios gone")
    c.check(all(s != ids["src-ios"] for _, s in conns), "and its warehouse connection too")
    c.eq([u["id"] for u in st["users"] if u["id"] in opsjobs.DELETED_USERS], [], "users gone")
    c.eq(len(st["users"]), 23, "the other 23 users kept")
    c.eq([w["id"] for w in st["warehouses"]], ["wh_1", "wh_2"], "wh_3 gone")
    c.check(all(w != "wh_3" for w, _ in conns), "no connection to wh_3 left")
    c.eq(r.request_line("del-users"), "DELETE /users?userIds.0=user_24&userIds.1=user_25",
         "deleteUsers: the ids in the query")
    muts = r.e.stats()["mutations"]
    c.eq(muts.get("deleteUsers userIds=user_24,user_25"), 1, "deleteUsers sent once")
    c.eq(muts.get("deleteSource " + ids["src-ios"]), 1, "deleteSource sent once")


# step 7: what was deleted is gone for the API too; a permanent 4xx fails at once
def gone_jobs(ids):
    J = opsjobs._job
    return [
        (J("gone-source", "getSource", {"sourceId": ids["src-ios"]}), 404, ids["src-ios"]),
        (J("gone-destination", "getDestination", {"destinationId": ids["dst-backend"]}), 404,
         ids["dst-backend"]),
        (J("gone-subscription", "getSubscriptionFromDestination",
           {"destinationId": ids["dst-web"], "id": ids["sub-web"]}), 404, ids["sub-web"]),
        (J("gone-transformation", "getTransformation", {"transformationId": ids["trf-web"]}),
         404, ids["trf-web"]),
        (J("gone-function", "getFunction", {"functionId": ids["fn-dest"]}), 404, ids["fn-dest"]),
        (J("gone-user", "getUser", {"userId": "user_25"}), 404, "user_25"),
        (J("gone-warehouse", "getWarehouse", {"warehouseId": "wh_3"}), 404, "wh_3"),
        (J("gone-connection", "removeSourceConnectionFromWarehouse",
           {"warehouseId": "wh_1", "sourceId": ids["src-web"]}), 404, ids["src-web"]),
        (J("dup-slug", "createSource", {"slug": "ops-backend", "enabled": True,
                                        "metadataId": opsjobs.SOURCE_META}), 409, "ops-backend"),
    ]


def check_gone(r, cases, stats_before):
    types = {404: "NotFound", 409: "Conflict"}
    list_rows = {j["id"]: j for j in r.s.jobs(state="failed")}
    for job, status, ident in cases:
        name = job["_name"]
        sh = r.show(name)
        c.eq(sh["state"], "failed", f"{name}: a {status} fails the job")
        atts = sh.get("attempts") or []
        c.eq([(a["http_status"], a["outcome"]) for a in atts], [(status, "failed")],
             f"{name}: exactly one attempt, outcome failed")
        err = sh.get("error") or {}
        errs = err.get("errors") if isinstance(err, dict) else None
        first = errs[0] if isinstance(errs, list) and errs else {}
        c.check(isinstance(errs, list) and len(errs) == 1,
                f"{name}: the API's error envelope is kept: {err}")
        c.eq((first.get("type"), first.get("status")), (types[status], status),
             f"{name}: envelope type and status")
        c.check(ident in (first.get("message") or ""),
                f"{name}: the API's message names {ident}: {first.get('message')!r}")
        c.eq(sh.get("result"), None, f"{name}: no result")
        c.check(r.output(name) is None, f"{name}: no output file")
        # the attempt counts: show's count against max_attempts and list's "attempts"
        c.eq(sh.get("attempts_counted"), 1, f"{name}: show attempts_counted after one attempt")
        c.eq((list_rows.get(r.job_ids[name]) or {}).get("attempts"), 1,
             f"{name}: list --json attempts after one attempt")
    stats = r.e.stats()
    c.eq(stats["requests"] - stats_before["requests"], len(cases),
         "one request per failing job: no retry of a permanent 4xx")
    c.eq(stats["mutations"].get("createSource slug=ops-backend"), 2,
         "the duplicate createSource reached the API once more")
    st = r.e.state()
    c.eq([s["slug"] for s in st["sources"]].count("ops-backend"), 1,
         "and did not create a second ops-backend")
    c.check("job %d (createSource) failed" % r.job_ids["dup-slug"] in r.s.log_text(),
            "the daemon logs the failure")


def check_examples():
    """examples/ (the demo's job files): valid, and they do what examples/README.md says
    against a fresh emulator, with the daemon's default endpoint limits."""
    src = os.environ.get("SEGSPOOL_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
    ex = os.path.join(src, "examples")
    files = sorted(f for f in os.listdir(ex) if f.endswith((".json", ".jsonl")))
    c.eq(files, ["01-provision-sources.jsonl", "02-catalog-export.json",
                 "03-event-volume.json", "04-list-warehouses.json",
                 "05-brand-rollout.jsonl"], "the example job files")
    e = Emulator("--seed", "3")
    s = Spool(e.url, config={"endpoint_limits": True})
    try:
        r = s.cli("validate", *[os.path.join(ex, f) for f in files])
        c.eq(r.returncode, 0, f"segspool validate examples/*: {r.stderr.decode()[-500:]}")
        for f in files:
            s.drop(f, open(os.path.join(ex, f), "rb").read())
        c.eq(s.run_until_idle(timeout=120), 0, "examples: run --until-idle")
        st = e.state()
        brands = ["acme", "globex", "hooli", "initech", "umbrella"]
        c.eq(s.states(), {"succeeded": 40 + 2 + 1 + 30 + 1 + 3 * len(brands)},
             "examples: every job succeeded")
        c.eq(sorted(x["slug"] for x in st["sources"]),
             ["demo-web-%02d" % i for i in range(1, 41)] + [f"rollout-{b}-web" for b in brands],
             "examples: 40 sources demo-web-01..40 and the rollout's five (ordering between "
             "jobs is not promised)")
        # the rollout: each brand's warehouse connection and destination on its new source,
        # whose id came from the source's result ($ref)
        ids = {x["slug"]: x["id"] for x in st["sources"]}
        dests = {d.get("name"): d.get("sourceId") for d in st.get("destinations", [])}
        c.eq({b: dests.get(f"{b} amplitude") for b in brands},
             {b: ids[f"rollout-{b}-web"] for b in brands},
             "examples: a destination per rollout source, on that source")
        rollout = results_by_id(s, "results/05-brand-rollout.results.jsonl")
        c.eq((len(rollout), sorted({x["state"] for x in rollout.values()})),
             (15, ["succeeded"]), "examples: the rollout's results file, every line succeeded")
        c.check(all(x["metadata"]["id"] == opsjobs.SOURCE_META for x in st["sources"]),
                "examples: all Javascript sources")

        def lines(rel):
            try:
                with open(s.out_path(rel)) as f:
                    return [json.loads(x) for x in f if x.strip()]
            except FileNotFoundError:
                return None
        c.eq(lines("exports/sources-catalog.jsonl"), st["sourcesCatalog"],
             "examples: the whole sources catalog exported")
        c.eq(lines("exports/destinations-catalog.jsonl"), st["destinationsCatalog"],
             "examples: the whole destinations catalog exported")
        c.eq(lines("exports/warehouses.jsonl"), st["warehouses"], "examples: the warehouses")
        vol = lines("exports/event-volume-2026-10.jsonl") or []
        days = sorted({p["time"] for g in vol for p in g.get("series", [])})
        c.eq((len(vol), len(days), days[:1], days[-1:]),
             (30 * 4, 30, ["2026-10-01T00:00:00Z"], ["2026-10-30T00:00:00Z"]),
             "examples: 30 days x 4 event names of volume, 1-30 October")
    finally:
        s.cleanup()
        e.stop()
        import shutil
        shutil.rmtree(e.dir, ignore_errors=True)


def main():
    e = Emulator("--seed", "11")
    s = Spool(e.url)
    r = Run(e, s)
    try:
        r.ids = {}
        checks = {"create-1": check_create_1, "create-2": check_create_2,
                  "create-3": check_create_3, "read": check_read, "update": check_update,
                  "delete": check_delete}
        for step in opsjobs.STEPS:
            jobs = step_jobs(step, r.ids)
            r.step(step, jobs)
            opsjobs.ids_after(step, r.output, r.ids)
            missing = [k for k, v in r.ids.items() if not v]
            if not c.check(not missing, f"{step}: ids read from the output files: {missing}"):
                print(s.log_text()[-4000:], file=sys.stderr)
                break
            checks[step](r, e.state())
        else:
            cases = gone_jobs(r.ids)
            before = e.stats()
            r.step("gone", [j for j, _, _ in cases])
            check_gone(r, cases, before)
            r.ops_used.update(j["op"] for j, _, _ in cases)

        # every operation was run, and the list is the daemon's own catalog
        out = s.cli("ops", "--json", check=True).stdout
        catalog = json.loads(out)
        cat_ops = sorted(o["operationId"] for o in catalog)
        c.eq(cat_ops, opsjobs.ALL_OPS,
             f"segspool ops lists the {len(opsjobs.NAMED_OPS)} operations of "
             "data/operations.json + raw")
        c.eq(sorted(r.ops_used), opsjobs.ALL_OPS, "every operation was run")
        states = s.states()
        c.eq(states.get("failed", 0), 9 if "dup-slug" in r.job_ids else 0,
             "the only failed jobs are the deliberate 4xx ones")
        c.eq(sum(v for k, v in states.items() if k not in ("succeeded", "failed")), 0,
             f"no job left unfinished: {states}")
    finally:
        s.cleanup()
        e.stop()
        import shutil
        shutil.rmtree(e.dir, ignore_errors=True)
    check_examples()
    c.finish()


if __name__ == "__main__":
    main()
