"""e2e reconcile - exactly-once mutations after lost answers, without kill -9.

A: a lost-answer storm. The emulator applies 30% of requests and then drops the
connection (--reset-rate 0.3, lookups included) while the daemon runs 200 createSource,
50 addConnectionFromSourceToWarehouse, 50 deleteSource and 20
removeSourceConnectionFromWarehouse jobs. Every job succeeds; the emulator applied each
create, connection, deletion and removal exactly once ("applied" counts) and never
answered 409 (nothing was sent again blindly); a reconciled create's show has its
lookup attempt ("GET /sources?...", outcome "reconciled"), a result shaped as
createSource's ({"source": {...}}) and an output file with it; lookups past the first
page of 200 sources were read page by page ("lookup", then the verdict); deletes and
removals that met 404 after a lost answer succeeded ("reconciled").

B: the lookup finds nothing. The emulator drops some connections before reading the
request (--reset-before-rate): the create was never applied, so the lookup records
"absent" and the create is sent again and succeeds, applied once.

D: a 409 after a lookup said "absent" (a server that applied the lost request late, after
the lookup; scripted): the 409 is recorded "conflict" and looked up again; found, the job
is reconciled; still not listed, it fails with the 409 and says why.

C: the emulator's "applied" counts: a 409 and connecting what is connected are requests
("mutations") but change nothing, so they are not counted as applied.
"""
import json
import os

from harness import Checks, Emulator, ScriptedServer, Spool, emu_cleanup, emu_request, result_kept

c = Checks("reconcile")
JS = "IqDTy1TpoU"
RETRY = {"max_attempts": 40, "initial_ms": 5, "max_ms": 50}
WAREHOUSES = ["wh_1", "wh_2", "wh_3"]


def create(slug, connect=False):
    return {"op": "createSource", "params": {"slug": slug, "enabled": True, "metadataId": JS,
                                             "disconnectAllWarehouses": not connect}}


def outcomes(sh):
    return [a["outcome"] for a in sh["attempts"]]


# --- A: the storm ---------------------------------------------------------------------
emu = Emulator("--seed", "13")
s = Spool(emu.url, config={"endpoint_limits": False, "retry": RETRY,
                           "http": {"max_in_flight": 8}})
try:
    base = [create(f"base-{i:03d}") for i in range(100)]
    base += [create(f"wired-{i:03d}", connect=True) for i in range(20)]
    s.drop_jobs("base.json", base)
    c.eq(s.run_until_idle(timeout=60), 0, "A: the clean phase exits 0")
    ids = {src["slug"]: src["id"] for src in emu.state()["sources"]}
    c.eq(len(ids), 120, "A: the clean phase made its 120 sources")
    emu.admin("/__emu/reset", {})
    emu.admin("/__emu/config", {"reset_rate": 0.3})

    jobs = [create(f"storm-{i:03d}") for i in range(200)]
    adds = [(WAREHOUSES[i % 3], ids[f"base-{i:03d}"]) for i in range(50)]
    jobs += [{"op": "addConnectionFromSourceToWarehouse",
              "params": {"warehouseId": w, "sourceId": sid}} for w, sid in adds]
    deletes = [ids[f"base-{i:03d}"] for i in range(50, 100)]
    jobs += [{"op": "deleteSource", "params": {"sourceId": sid}} for sid in deletes]
    removes = [("wh_1", ids[f"wired-{i:03d}"]) for i in range(20)]
    jobs += [{"op": "removeSourceConnectionFromWarehouse",
              "params": {"warehouseId": w, "sourceId": sid}} for w, sid in removes]
    s.drop_jobs("storm.jsonl", jobs)
    c.eq(s.run_until_idle(timeout=120), 0, "A: the storm run exits 0")

    stats = emu.stats()
    applied = stats["applied"]
    print(f"A: emulator faults {stats['faults']}, statuses {stats['by_status']}", flush=True)
    c.check(stats["faults"]["reset"] >= 50, f"A: many answers were lost: {stats['faults']}")
    states = s.states()
    c.eq(states, {"succeeded": len(base) + len(jobs)}, "A: every job succeeded")
    c.eq(stats["by_status"].get("409", 0), 0, "A: no create met 409 (none sent again blindly)")
    want = {f"createSource slug=storm-{i:03d}": 1 for i in range(200)}
    want.update({f"addConnectionFromSourceToWarehouse {w}/{sid}": 1 for w, sid in adds})
    want.update({f"deleteSource {sid}": 1 for sid in deletes})
    want.update({f"removeSourceConnectionFromWarehouse {w}/{sid}": 1 for w, sid in removes})
    c.eq({k: v for k, v in applied.items() if want.get(k) != v}, {},
         "A: the emulator applied nothing beyond the batch, nothing twice")
    c.eq(sorted(k for k in want if k not in applied), [],
         "A: the emulator applied each create, connection, deletion and removal once")
    st = emu.state()
    slugs = [src["slug"] for src in st["sources"]]
    c.eq([i for i in range(200) if slugs.count(f"storm-{i:03d}") != 1], [],
         "A: each storm slug exists once")
    conns = {(x["warehouseId"], x["sourceId"]) for x in st.get("connections", [])}
    c.eq([a for a in adds if a not in conns], [], "A: every connection exists")
    c.eq([r for r in removes if r in conns], [], "A: every removed connection is gone")

    shows = {j["id"]: s.show(j["id"]) for j in s.jobs()}
    by_op = {}
    for sh in shows.values():
        outs = outcomes(sh)
        if "reconciled" in outs:
            by_op.setdefault(sh["op"], []).append(sh)
    print("A: reconciled jobs by operation: " +
          ", ".join(f"{k} {len(v)}" for k, v in sorted(by_op.items())), flush=True)
    for op in ("createSource", "addConnectionFromSourceToWarehouse", "deleteSource",
               "removeSourceConnectionFromWarehouse"):
        c.check(by_op.get(op), f"A: some {op} jobs were reconciled")
    bad = []
    for sh in shows.values():
        outs = outcomes(sh)
        if "reconciled" in outs and outs[-1] != "reconciled":
            bad.append((sh["id"], outs))
        if "reconciled" in outs and "unknown" not in outs:
            bad.append((sh["id"], outs))
        if "ok" in outs and outs.index("ok") != len(outs) - 1:
            bad.append((sh["id"], outs))
    c.eq(bad[:5], [], "A: reconciled only after a lost answer, and as the last attempt; "
         "nothing after an ok")
    creates = by_op.get("createSource", [])
    lookups = [a for sh in creates for a in sh["attempts"] if a["outcome"] == "reconciled"]
    c.check(all(a["request"].startswith("GET /sources?") and a["http_status"] == 200
                for a in lookups), "A: a create is reconciled by its GET /sources lookup")
    c.check(any("lookup" in outcomes(sh) for sh in creates),
            "A: some lookups read past the first page (outcome lookup, then the verdict)")
    wrong = []
    for sh in creates:
        slug = sh["spec"]["params"]["slug"]
        res = sh["result"]
        kept = result_kept(s, sh)  # its output file, or its line in its batch's results
        if not (isinstance(res, dict) and res.get("source", {}).get("slug") == slug and
                res["source"].get("id") == {x["slug"]: x["id"] for x in st["sources"]}[slug]
                and kept is None):
            wrong.append((sh["id"], slug, res, kept))
    c.eq(wrong[:3], [], "A: a reconciled create's result is createSource's shape, the "
         "source listed with its slug, and kept where the job's results go")
    gone = [a for op in ("deleteSource", "removeSourceConnectionFromWarehouse")
            for sh in by_op.get(op, []) for a in sh["attempts"] if a["outcome"] == "reconciled"]
    c.check(any(a["http_status"] == 404 and a["request"].startswith("DELETE ") for a in gone),
            "A: a delete that met 404 after a lost answer is reconciled")
    c.check(all(sh["result"] == {"status": "SUCCESS"}
                for op in ("deleteSource", "removeSourceConnectionFromWarehouse")
                for sh in by_op.get(op, [])), "A: a reconciled delete's result is SUCCESS")
    c.check("reconciled: the request whose answer was lost was applied" in s.log_text(),
            "A: the log says a job was reconciled")
finally:
    s.cleanup()
    emu_cleanup(emu)

# --- B: the lookup finds nothing -------------------------------------------------------
emu = Emulator("--seed", "14", "--reset-before-rate", "0.4")
s = Spool(emu.url, config={"endpoint_limits": False, "retry": RETRY,
                           "http": {"max_in_flight": 4}})
try:
    jobs = [create(f"never-{i:02d}") for i in range(40)]
    s.drop_jobs("b.json", jobs)
    c.eq(s.run_until_idle(timeout=60), 0, "B: the run exits 0")
    shows = [s.show(j["id"]) for j in s.jobs()]
    c.eq({sh["state"] for sh in shows}, {"succeeded"}, "B: every create succeeded")
    resent = [sh for sh in shows if "absent" in outcomes(sh)]
    print(f"B: {len(resent)} create(s) looked, found nothing and were sent again; "
          f"faults {emu.stats()['faults']}", flush=True)
    c.check(resent, "B: some lookups found nothing")
    c.check(all(outcomes(sh)[-1] == "ok" and
                outcomes(sh)[outcomes(sh).index("absent") - 1] in ("unknown", "retry", "lookup")
                for sh in resent),
            "B: after \"absent\" the create was sent again and succeeded")
    absent = [a for sh in resent for a in sh["attempts"] if a["outcome"] == "absent"]
    c.check(all(a["request"].startswith("GET /sources?") for a in absent),
            "B: the lookup is recorded with its request line")
    applied = emu.stats()["applied"]
    c.eq({k: v for k, v in applied.items() if v != 1}, {}, "B: nothing applied twice")
    c.eq(len(applied), 40, "B: each create applied once")
    c.eq(emu.stats()["by_status"].get("409", 0), 0, "B: no 409")
finally:
    s.cleanup()
    emu_cleanup(emu)
# --- C: what the emulator counts as applied ---------------------------------------------
emu = Emulator("--seed", "15")
try:
    body = {"slug": "twice", "enabled": True, "metadataId": JS, "disconnectAllWarehouses": True}
    st1, _, text = emu_request(emu, "POST", "/sources", body)
    st2, _, _ = emu_request(emu, "POST", "/sources", body)
    c.eq((st1, st2), (201, 409), "C: the same slug twice: 201, then 409")
    sid = json.loads(text)["data"]["source"]["id"]
    st3, _, _ = emu_request(emu, "POST", f"/warehouses/wh_1/connected-sources/{sid}")
    st4, _, _ = emu_request(emu, "POST", f"/warehouses/wh_1/connected-sources/{sid}")
    c.eq((st3, st4), (201, 201), "C: connecting twice answers 201 twice")
    stats = emu.stats()
    conn = f"addConnectionFromSourceToWarehouse wh_1/{sid}"
    c.eq((stats["mutations"].get("createSource slug=twice"), stats["mutations"].get(conn)),
         (2, 2), "C: both requests of each are counted as mutations")
    c.eq(stats["applied"], {"createSource slug=twice": 1, conn: 1},
         "C: each is applied once: the 409 and the second connection changed nothing")
    emu.admin("/__emu/reset", {})
    c.eq(emu.stats()["applied"], {}, "C: /__emu/reset clears the applied counts")
finally:
    emu_cleanup(emu)
# --- D: a 409 after "absent": looked up again ------------------------------------------------
JSON_HDR = [["Content-Type", "application/json"]]
LATE = {"id": "src_late", "slug": "late", "name": "late", "enabled": True}


def listing(items):
    return {"status": 200, "headers": JSON_HDR, "body": json.dumps(
        {"data": {"sources": items, "pagination": {"current": "MA==",
                                                    "totalEntries": len(items)}}})}


for found in (True, False):
    what = "D (found)" if found else "D (not found)"
    srv = ScriptedServer([
        {"method": "POST", "path": "/sources", "sequence": [
            {"status": 201, "headers": JSON_HDR, "body": "{}", "delay_ms": 1500},
            {"status": 409, "headers": JSON_HDR, "body": json.dumps({"errors": [
                {"type": "Conflict", "message": "slug late is already taken"}]})}]},
        {"method": "GET", "path": "/sources", "sequence": [
            listing([]), listing([LATE] if found else [])]}])
    s = Spool(srv.url, config={"endpoint_limits": False, "retry": RETRY,
                               "http": {"timeout_ms": 400}})
    try:
        s.drop_jobs("d.json", [create("late")])
        c.eq(s.run_until_idle(timeout=60), 0, f"{what}: the run exits 0")
        sh = s.show(s.jobs()[0]["id"])
        got = [(a["outcome"], a["request"].split("?")[0], a["http_status"])
               for a in sh["attempts"]]
        last = ("reconciled", "GET /sources", 200) if found else ("absent", "GET /sources", 200)
        c.eq(got, [("unknown", "POST /sources", None), ("absent", "GET /sources", 200),
                   ("conflict", "POST /sources", 409), last],
             f"{what}: lost, absent, 409 looked up again")
        if found:
            c.eq((sh["state"], sh["result"]), ("succeeded", {"source": LATE}),
                 f"{what}: the job is reconciled with the source listed late")
        else:
            reason = sh["transitions"][-1]["reason"] or ""
            c.check(sh["state"] == "failed" and "does not list it" in reason and
                    "slug late is already taken" in reason,
                    f"{what}: the job fails with the 409 and says why: {reason}")
        posts = [q for q in srv.requests() if q["method"] == "POST"]
        c.eq(len(posts), 2, f"{what}: the create was sent twice, never a third time")
    finally:
        s.cleanup()
        srv.stop()
c.finish()
