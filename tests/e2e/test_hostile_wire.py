"""e2e hostile_wire - what goes on the wire, and a store that is busy (issues 10 and 11),
driven with tests/e2e/scripted_server.c; part 3 of 3 (test_hostile.py,
test_hostile_rate.py):

- no Content-Type without a body: every operation of tests/e2e/opsjobs.py (all 43 and
  raw) through the daemon against a server that answers one generic {"data": {...}}
  (pagination.next null): every request without a body has no Content-Type, every one
  with a body has application/vnd.segment.v1+json (v1alpha for destination
  subscriptions, as data/operations.json says);
- the database locked for 4 s by another process (BEGIN EXCLUSIVE) while creates are in
  flight against a server that answers 201 slowly: the daemon does not die, logs that it
  is waiting for the database, and afterwards every create is succeeded, each sent once.

Runtime: about 15 s."""
import json
import os
import sqlite3
import time

from harness import (Checks, ScriptedServer, Spool, job_text, wait_for)
from opsjobs import ALL_OPS, STEPS, ids_after, step_jobs, strip

c = Checks("hostile_wire")
V1 = "application/vnd.segment.v1+json"
V1ALPHA = "application/vnd.segment.v1alpha+json"
TERMINAL = {"succeeded", "failed", "dead", "cancelled"}


def generic_body():
    """generic_body - one answer that fits every operation: each result key and each
    items array, one id per created kind, and a last page."""
    data = {k: {"id": k[:3] + "_1"} for k in (
        "source", "function", "destination", "transformation", "destinationSubscription",
        "subscription", "warehouse", "user", "sourceMetadata", "destinationMetadata",
        "warehouseMetadata")}
    data.update({k: [] for k in (
        "sources", "destinations", "subscriptions", "functions", "transformations", "users",
        "warehouses", "sourcesCatalog", "destinationsCatalog", "warehousesCatalog", "result",
        "emails")})
    data.update(status="SUCCESS", trackingPlanId=None,
                pagination={"current": "p1", "next": None, "totalEntries": 0})
    return json.dumps({"data": data})


# --- 9. Content-Type only with a body --------------------------------------------------

def content_types():
    srv = ScriptedServer([{"response": {"body": generic_body()}}])
    s = Spool(srv.url)
    try:
        ids, used = {}, set()
        for step in STEPS:
            jobs = step_jobs(step, ids)
            used |= {j["op"] for j in jobs}
            s.drop_jobs(step + ".json", strip(jobs))
            c.eq(s.run_until_idle(timeout=60), 0, f"content types: {step}: run --until-idle")
            outs = {j["_name"]: j["output"] for j in jobs}

            def read_output(name, outs=outs):
                try:
                    return json.load(open(s.out_path(outs[name])))
                except (OSError, ValueError):
                    return None
            ids_after(step, read_output, ids)
        c.eq(sorted(used), ALL_OPS, "content types: every operation has a job")
        states = s.states()
        c.eq(set(states), {"succeeded"}, f"content types: every job succeeded ({states})")
        reqs = srv.requests()
        bad = []
        for q in reqs:
            ctype = ScriptedServer.header(q, "Content-Type")
            path = q["uri"].split("?")[0]
            if q["body_len"] == 0:
                if ctype is not None:
                    bad.append(f"{q['method']} {q['uri']}: no body, Content-Type {ctype}")
            else:
                want = V1ALPHA if "/subscriptions" in path else V1
                if ctype != want:
                    bad.append(f"{q['method']} {q['uri']}: a body, Content-Type {ctype}, "
                               f"want {want}")
        print(f"content types: {len(reqs)} requests checked", flush=True)
        c.eq(bad, [], "content types: Content-Type exactly on the requests with a body")
        c.check(any(q["method"] == "POST" and q["body_len"] == 0 for q in reqs),
                "content types: a POST without a body was among them "
                "(addConnectionFromSourceToWarehouse)")
        c.check(any(q["method"] == "DELETE" for q in reqs) and
                any(q["method"] == "PATCH" and q["body_len"] > 0 for q in reqs),
                "content types: DELETEs and PATCHes with bodies were among them")
    finally:
        s.cleanup()
        srv.stop()


# --- 10. a database locked by another process ----------------------------------------

def locked_database():
    n = 6
    srv = ScriptedServer([{"method": "POST", "path": "/sources", "response": {
        "status": 201, "delay_ms": 1500,
        "body": "{\"data\":{\"source\":{\"id\":\"src_slow\",\"enabled\":true}}}"}}])
    s = Spool(srv.url, config={"retry": {"max_attempts": 3, "initial_ms": 50, "max_ms": 400},
                               "http": {"max_in_flight": 16}})
    lock = None
    try:
        s.drop_jobs("creates.json", [{"op": "createSource", "key": f"slow-{i}", "params": {
            "slug": f"slow-{i}", "enabled": True, "metadataId": "s0d1ouMNJG"}}
            for i in range(n)])
        s.start()
        wait_for(lambda: len(srv.requests()) >= n, timeout=15, what="every create in flight")
        lock = sqlite3.connect(os.path.join(s.spool, "segspool.db"), timeout=10,
                               isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        t_locked = time.monotonic()
        while time.monotonic() - t_locked < 4.0 and s.daemon.poll() is None:
            time.sleep(0.1)
        alive = s.daemon.poll() is None
        lock.execute("ROLLBACK")
        lock.close()
        lock = None
        c.check(alive, f"locked: the daemon did not die while the database was locked "
                f"(exit {s.daemon.poll()}): {s.log_text()[-500:]!r}")
        jobs = []
        end = time.monotonic() + 20
        while time.monotonic() < end:
            jobs = s.jobs()
            if len(jobs) == n and all(j["state"] in TERMINAL for j in jobs):
                break
            time.sleep(0.1)
        c.eq(sorted(j["state"] for j in jobs), ["succeeded"] * n,
             "locked: after the release every create is recorded succeeded")
        for j in jobs:
            sh = s.show(j["id"])
            c.eq(len(sh.get("attempts") or []), 1,
                 f"locked: {j['key']} took one attempt: {job_text(sh)[:300]}")
        posts = [q for q in srv.requests() if q["method"] == "POST"]
        c.eq(len(posts), n, "locked: the server saw each create exactly once (no re-send)")
        log = s.log_text().lower()
        c.check("waiting for the database" in log,
                f"locked: the daemon logs that it is waiting for the database: "
                f"{s.log_text()[-800:]!r}")
        c.eq(s.stop(), 0, "locked: clean stop")
    finally:
        if lock:
            lock.close()
        s.cleanup()
        srv.stop()


if __name__ == "__main__":
    c.run_parts((content_types, locked_database))
    c.finish()
