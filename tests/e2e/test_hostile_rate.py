"""e2e hostile_rate - waits and loops a hostile server asks for (issue 10), driven with
tests/e2e/scripted_server.c; part 2 of 3 (test_hostile.py, test_hostile_wire.py):

- a 429 with "Retry-After: 0" on every answer, and one with an HTTP date in the past,
  rate "off": in 6 s the server sees at most 8 requests, at least ~1 s apart (a floor that
  grows: 1 s, 2 s, 4 s...), not thousands;
- a 429 with X-RateLimit-Reset ten years ahead (an HTTP date, X-RateLimit-Remaining 0),
  and one with "Retry-After: 999999999": the daemon logs a warning naming
  max_server_wait, and the job's next_run is within an hour (the default
  max_server_wait), not years; with max_server_wait "2s" the job runs again within
  seconds and succeeds;
- a cursor that repeats (next == current) and one that cycles (c0, c1, c0, ...) on
  paginate "all": each job fails within seconds, saying the cursor came again; few
  requests;
- api_base with a trailing slash: the server sees "/sources...", never "//".

Runtime: about 25 s."""
import email.utils
import json
import time

from harness import (Checks, ScriptedServer, Spool, iso_ms, job_text, wait_for)

c = Checks("hostile_rate")
WH = "{\"data\":{\"warehouse\":{\"id\":\"wh_1\",\"enabled\":true}}}"
SLOW_DOWN = "{\"errors\":[{\"type\":\"too-many-requests\",\"message\":\"slow down\"}]}"
TERMINAL = {"succeeded", "failed", "dead", "cancelled"}
PATIENT = {"max_attempts": 100, "initial_ms": 50, "max_ms": 400, "max_age": "7d"}


def http_date(epoch):
    return email.utils.formatdate(epoch, usegmt=True)


def get_wh(**kw):
    return dict({"op": "getWarehouse", "params": {"warehouseId": "wh_1"}, "key": "wh"}, **kw)


def first_show(s):
    jobs = s.jobs()
    return s.show(jobs[-1]["id"]) if jobs else {}


def poll_terminal(s, n, timeout):
    """poll_terminal - waits up to timeout for n jobs, all terminal; the jobs either way."""
    end = time.monotonic() + timeout
    while True:
        jobs = s.jobs()
        if (len(jobs) >= n and all(j["state"] in TERMINAL for j in jobs)) or \
                time.monotonic() > end:
            return jobs
        time.sleep(0.1)


# --- 3. Retry-After: 0 and a date in the past ----------------------------------------

def retry_after_floor():
    cases = {"Retry-After: 0": "0", "Retry-After: a past date": http_date(time.time() - 86400)}
    runs = []
    try:
        for what, value in cases.items():
            srv = ScriptedServer([{"response": {"status": 429, "body": SLOW_DOWN,
                                                "headers": [["Retry-After", value]]}}])
            s = Spool(srv.url, config={"retry": PATIENT, "rate": "off"})
            runs.append((what, srv, s))
            s.drop_jobs("a.json", [get_wh()])
            s.start()
        for what, srv, s in runs:
            wait_for(lambda: srv.requests(), timeout=10, what=f"{what}: a first request")
        t0 = min(srv.requests()[0]["t"] for _, srv, _ in runs)
        time.sleep(max(0.0, t0 / 1000 + 6.0 - time.time()))
        for what, srv, s in runs:
            c.check(s.daemon.poll() is None, f"{what}: the daemon is still running")
            s.stop()
            reqs = [q for q in srv.requests() if q["t"] <= t0 + 6000]
            times = [q["t"] for q in reqs]
            gaps = [b - a for a, b in zip(times, times[1:])]
            print(f"{what}: {len(reqs)} requests in 6 s, gaps {gaps[:10]} ms", flush=True)
            c.check(len(reqs) <= 8, f"{what}: at most 8 requests in 6 s, not {len(reqs)}")
            c.check(not gaps or min(gaps) >= 900,
                    f"{what}: requests at least ~1 s apart (smallest gap {min(gaps or [0])} ms)")
    finally:
        for _, srv, s in runs:
            s.cleanup()
            srv.stop()


# --- 4. a wait of years --------------------------------------------------------------

def far_waits():
    far = http_date(time.time() + 10 * 365 * 86400)
    cases = {"X-RateLimit-Reset in 10 years": [["X-RateLimit-Reset", far],
                                               ["X-RateLimit-Remaining", "0"]],
             "Retry-After: 999999999": [["Retry-After", "999999999"]]}
    runs = []
    try:
        for what, headers in cases.items():
            for capped in (False, True):
                srv = ScriptedServer([{"sequence": [
                    {"status": 429, "body": SLOW_DOWN, "headers": headers},
                    {"body": WH}]}])
                cfg = {"retry": PATIENT}
                if capped:
                    cfg["max_server_wait"] = "2s"
                s = Spool(srv.url, config=cfg)
                runs.append((what, capped, srv, s))
                s.drop_jobs("a.json", [get_wh()])
                s.start()
        for what, capped, srv, s in runs:
            if capped:
                continue
            wait_for(lambda: srv.requests(), timeout=10, what=f"{what}: the first request")
            time.sleep(1.0)
            sh = first_show(s)
            nxt = iso_ms(sh.get("next_run"))
            now = time.time() * 1000
            c.check(sh.get("state") not in ("failed", "dead"),
                    f"{what}: the job still waits ({sh.get('state')}: {job_text(sh)[:300]})")
            # the cap, plus the up to 10% spread a 429's wait gets so that the jobs a
            # hold releases do not all arrive at once (retry.c decide_rate_limited)
            c.check(nxt is not None and nxt <= now + 3600_000 * 1.1 + 120_000,
                    f"{what}: next_run is within max_server_wait (1 h), not "
                    f"{sh.get('next_run')}")
            lines = [l for l in s.log_text().splitlines() if "max_server_wait" in l]
            c.check(any("warn" in l for l in lines),
                    f"{what}: the daemon logs a warning naming max_server_wait: "
                    f"{s.log_text()[-600:]!r}")
        end = time.monotonic() + 15  # one deadline for both: they wait side by side
        for what, capped, srv, s in runs:
            if not capped:
                continue
            jobs = poll_terminal(s, 1, max(0.0, end - time.monotonic()))
            c.eq([j["state"] for j in jobs], ["succeeded"],
                 f"{what}, max_server_wait 2s: the job runs again within seconds and succeeds")
            c.eq(len(srv.requests()), 2, f"{what}, max_server_wait 2s: two requests")
    finally:
        for _, _, srv, s in runs:
            s.cleanup()
            srv.stop()


# --- 5. cursors that come back ---------------------------------------------------------

def page(items_key, current, nxt):
    return {"body": json.dumps({"data": {items_key: [{"id": "x-" + nxt}], "pagination": {
        "current": current, "next": nxt, "totalEntries": 1000}}})}


def cursor_loops():
    cycle = [page("destinations", "c1" if i % 2 else "c0", "c0" if i % 2 else "c1")
             for i in range(200)]
    cycle[0] = page("destinations", "start", "c0")
    srv = ScriptedServer([
        {"method": "GET", "path": "/sources", "response": page("sources", "same", "same")},
        {"method": "GET", "path": "/destinations", "sequence": cycle},
    ])
    s = Spool(srv.url, config={"retry": PATIENT})
    try:
        s.drop_jobs("a.json", [{"op": "listSources", "paginate": "all", "key": "repeat"},
                               {"op": "listDestinations", "paginate": "all", "key": "cycle"}])
        s.start()
        t0 = time.monotonic()
        jobs = poll_terminal(s, 2, 10)
        took = time.monotonic() - t0
        s.stop()
        reqs = srv.requests()
        for key, path in (("repeat", "/sources"), ("cycle", "/destinations")):
            row = [j for j in jobs if j["key"] == key]
            sh = s.show(row[0]["id"]) if row else {}
            text = job_text(sh)
            n = len([q for q in reqs if q["uri"].startswith(path)])
            print(f"cursor {key}: {sh.get('state')} after {took:.1f} s, {n} requests", flush=True)
            c.eq(sh.get("state"), "failed", f"cursor {key}: the job fails within 10 s")
            c.check("cursor" in text and ("again" in text or "repeat" in text),
                    f"cursor {key}: the reason says the cursor came again: {text[:400]}")
            c.check(n <= 5, f"cursor {key}: a few requests, not {n}")
    finally:
        s.cleanup()
        srv.stop()


# --- 8. a trailing slash on api_base ----------------------------------------------------

def trailing_slash():
    generic = json.dumps({"data": {
        "warehouse": {"id": "wh_1"}, "source": {"id": "src_1"}, "sources": [{"id": "src_1"}],
        "pagination": {"current": "p1", "next": None, "totalEntries": 1}}})
    srv = ScriptedServer([{"response": {"body": generic}}])
    s = Spool(srv.url + "/")
    try:
        s.drop_jobs("a.json", [
            get_wh(),
            {"op": "listSources", "paginate": "all", "key": "list"},
            {"op": "createSource", "key": "create", "params": {
                "slug": "slash", "enabled": True, "metadataId": "s0d1ouMNJG"}},
            {"op": "raw", "key": "raw", "params": {"method": "GET", "path": "/warehouses"}}])
        c.eq(s.run_until_idle(timeout=60), 0, "trailing slash: run --until-idle")
        c.eq(sorted(j["state"] for j in s.jobs()), ["succeeded"] * 4,
             "trailing slash: every job succeeds")
        uris = [q["uri"] for q in srv.requests()]
        c.check(len(uris) >= 4 and all(u.startswith("/") and "//" not in u.split("?")[0]
                                       for u in uris),
                f"trailing slash: no request path has //: {uris}")
        c.check(any(u.startswith("/sources") for u in uris),
                f"trailing slash: the server saw /sources...: {uris}")
    finally:
        s.cleanup()
        srv.stop()


if __name__ == "__main__":
    c.run_parts((retry_after_floor, far_waits, cursor_loops, trailing_slash))
    c.finish()
