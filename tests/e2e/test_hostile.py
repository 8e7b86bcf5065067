"""e2e hostile - what the daemon promises against a server that misbehaves (issue 10),
driven with tests/e2e/scripted_server.c; part 1 of 3 (test_hostile_rate.py,
test_hostile_wire.py):

- redaction: the server echoes the Authorization header in a 401 error body, a 503 body
  and 200 bodies (a single result and a page); afterwards the token's bytes are in no
  file under the spool root (database, WAL, outputs, the daemon's debug log) nor in the
  CLI's output, and "[redacted]" is where the token was;
- bounded responses: a 50 MB body and a 300 KB gzip body that expands to 300 MB, with
  http.max_response_bytes 1 MiB and with the default (64 MiB, the bomb only): the jobs
  fail saying "larger than the limit", the daemon stays under 200 MB of RSS, and the
  other jobs of the batch succeed;
- a 301: not followed; the error says "redirects are not followed" and names Location;
- a 200 KB response header line: the error says a header is too large, not "Out of memory".

Runtime: about 20 s."""
import json
import os
import secrets

from harness import (Checks, RssWatch, ScriptedServer, Spool, job_text)

c = Checks("hostile")
RSS_LIMIT = 200 * 1024 * 1024
QUICK_RETRY = {"max_attempts": 2, "initial_ms": 20, "max_ms": 50}
WH = "{\"data\":{\"warehouse\":{\"id\":\"%s\",\"enabled\":true}}}"


def spool_for(srv, token=None, config=None):
    """spool_for - a spool on the server, with a recognisable token in SEGMENT_TOKEN."""
    s = Spool(srv.url, config=dict({"retry": QUICK_RETRY}, **(config or {})))
    if token:
        s.env["SEGMENT_TOKEN"] = token
    return s


def get_wh(name, **kw):
    return dict({"op": "getWarehouse", "params": {"warehouseId": name},
                 "key": "wh-" + name}, **kw)


def by_key(s):
    return {j["key"]: s.show(j["id"]) for j in s.jobs()}


def files_holding(root, needles):
    """files_holding - every file under root whose bytes contain one of needles."""
    hits = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            try:
                data = open(p, "rb").read()
            except OSError:
                continue
            if any(n in data for n in needles):
                hits.append(p)
    return hits


# --- 1. redaction ------------------------------------------------------------------

def redaction():
    token = "tok-HOSTILE-" + secrets.token_hex(12)
    needles = [token.encode(), token[12:28].encode()]
    echo = "{\"errors\":[{\"type\":\"%s\",\"message\":\"you sent {{auth}}\"}]}"
    srv = ScriptedServer([
        {"path": "/warehouses/wh_401", "response": {
            "status": 401, "echo_auth": True, "body": echo % "unauthorized"}},
        {"path": "/warehouses/wh_503", "response": {
            "status": 503, "echo_auth": True, "body": echo % "unavailable"}},
        {"path": "/warehouses/wh_200", "response": {"echo_auth": True, "body":
            "{\"data\":{\"warehouse\":{\"id\":\"wh_200\",\"note\":\"you sent {{auth}}\"}}}"}},
        {"path": "/sources", "response": {"echo_auth": True, "body":
            "{\"data\":{\"sources\":[{\"id\":\"s1\",\"name\":\"{{auth}}\"}],"
            "\"pagination\":{\"current\":\"p1\",\"next\":null,\"totalEntries\":1}}}"}},
    ])
    s = spool_for(srv, token, {"log_level": "debug"})
    try:
        s.drop_jobs("r.json", [get_wh("wh_401"), get_wh("wh_503"), get_wh("wh_200"),
                               {"op": "listSources", "paginate": "all", "key": "src"}])
        c.eq(s.run_until_idle(timeout=60), 0, "redaction: run --until-idle")
        seen = [ScriptedServer.header(q, "Authorization") for q in srv.requests()]
        c.check(seen and all(a == "Bearer " + token for a in seen),
                f"redaction: the server got the token on every request ({len(seen)})")
        shows = by_key(s)
        c.eq(sorted(shows), ["src", "wh-wh_200", "wh-wh_401", "wh-wh_503"],
             "redaction: the four jobs are in the store")
        c.eq(files_holding(s.root, needles), [],
             "redaction: no file under the spool root (db, wal, outputs, daemon log) "
             "holds the token")
        cli = s.cli("list", "--json").stdout
        for j in s.jobs():
            cli += s.cli("show", str(j["id"]), "--json").stdout + s.cli("show", str(j["id"])).stdout
        c.check(not any(n in cli for n in needles),
                "redaction: no output of segspool list/show holds the token")
        # a paginated job's items are in its output file (checked below), not in show
        for key in ("wh-wh_401", "wh-wh_200"):
            sh = shows.get(key) or {}
            text = json.dumps(sh)
            c.check("[redacted]" in text,
                    f"redaction: {key}: show --json says [redacted] where the token was: "
                    f"{text[:600]}")
        c.eq((shows.get("wh-wh_401") or {}).get("state"), "failed", "redaction: the 401 fails")
        c.eq((shows.get("wh-wh_200") or {}).get("state"), "succeeded",
             "redaction: the 200 succeeds")
        outs = [os.path.join(dp, f) for dp, _, fs in os.walk(s.out_path("")) for f in fs]
        c.check(outs and all("[redacted]" in open(p).read() for p in outs),
                f"redaction: every output file says [redacted]: {outs}")
    finally:
        s.cleanup()
        srv.stop()


# --- 2. bounded responses ---------------------------------------------------------

def bounded_rules():
    return [
        {"path": "/warehouses/big", "response": {
            "body_repeat": {"text": "{\"data\":[0123456789abcdef]}", "times": 2_000_000}}},
        {"path": "/warehouses/bomb", "response": {
            "gzip": True, "body_repeat": {"text": " " * 1000, "times": 300_000}}},
        {"path": "/warehouses/", "response": {"body": WH % "ok"}},
    ]


def run_bounded(what, config, big_jobs):
    srv = ScriptedServer(bounded_rules())
    s = spool_for(srv, config=config)
    try:
        ok = [get_wh(f"ok{i}") for i in range(4)]
        s.drop_jobs("b.json", [get_wh(n) for n in big_jobs] + ok)
        # under ASan, freed buffers wait in a 256 MB quarantine by default: capped, so
        # that the RSS bound means the same in both builds (ignored without ASan)
        env = dict(s.env, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
                   ":quarantine_size_mb=8")
        p = s.start("--until-idle", ready=False, env=env)
        watch = RssWatch(p.pid)
        try:
            rc = p.wait(timeout=90)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        peak = watch.peak()
        c.eq(rc, 0, f"{what}: run --until-idle")
        print(f"{what}: peak RSS {peak / 1048576:.1f} MiB", flush=True)
        c.check(0 < peak < RSS_LIMIT,
                f"{what}: the daemon stays under 200 MB of RSS (peak {peak / 1048576:.1f} MiB)")
        shows = by_key(s)
        for n in big_jobs:
            sh = shows.get("wh-" + n) or {}
            text = job_text(sh)
            c.check(sh.get("state") in ("failed", "dead") and "larger than the limit" in text,
                    f"{what}: {n}: fails saying the response is larger than the limit "
                    f"({sh.get('state')}: {text[:400]})")
        for j in ok:
            c.eq((shows.get(j["key"]) or {}).get("state"), "succeeded",
                 f"{what}: {j['key']}, in the same batch, succeeds")
        bomb = [q for q in srv.requests() if q["uri"] == "/warehouses/bomb"]
        c.check(bomb and all("gzip" in (ScriptedServer.header(q, "Accept-Encoding") or "")
                             for q in bomb), f"{what}: the bomb was asked for gzip-encoded")
    finally:
        s.cleanup()
        srv.stop()


def bounded():
    run_bounded("bounded 1 MiB", {"http": {"max_response_bytes": 1048576}}, ["big", "bomb"])
    run_bounded("bounded default", {}, ["bomb"])


# --- 6. redirects -------------------------------------------------------------------

def redirect():
    srv = ScriptedServer([
        {"path": "/warehouses/moved", "response": {
            "status": 301, "headers": [["Location", "/elsewhere/wh_moved"]], "body": ""}},
        {"path": "/elsewhere/", "response": {"body": WH % "wh_moved"}},
    ])
    s = spool_for(srv)
    try:
        s.drop_jobs("r.json", [get_wh("moved")])
        c.eq(s.run_until_idle(timeout=60), 0, "redirect: run --until-idle")
        sh = by_key(s).get("wh-moved") or {}
        text = job_text(sh)
        c.eq(sh.get("state"), "failed", "redirect: the job fails")
        c.check("redirects are not followed" in text and "/elsewhere/wh_moved" in text,
                f"redirect: the error says redirects are not followed and names the "
                f"Location: {text[:400]}")
        c.eq([q["uri"] for q in srv.requests() if q["uri"].startswith("/elsewhere")], [],
             "redirect: the Location was not requested")
    finally:
        s.cleanup()
        srv.stop()


# --- 7. a huge header line ----------------------------------------------------------

def huge_header():
    srv = ScriptedServer([
        {"path": "/warehouses/", "response": {
            "headers": [["X-Padding", "p" * 200_000]], "body": WH % "wh_1"}},
    ])
    s = spool_for(srv)
    try:
        s.drop_jobs("h.json", [get_wh("wh_1")])
        c.eq(s.run_until_idle(timeout=60), 0, "huge header: run --until-idle")
        sh = by_key(s).get("wh-wh_1") or {}
        text = job_text(sh)
        c.check(sh.get("state") in ("failed", "dead"), f"huge header: the job fails "
                f"({sh.get('state')})")
        c.check("Out of memory" not in text and "out of memory" not in text,
                f"huge header: the error does not say out of memory: {text[:400]}")
        c.check("header" in text.lower(),
                f"huge header: the error says a header is too large: {text[:400]}")
    finally:
        s.cleanup()
        srv.stop()


if __name__ == "__main__":
    c.run_parts((redaction, bounded, redirect, huge_header))
    c.finish()
