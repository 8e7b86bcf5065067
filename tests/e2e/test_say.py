"""e2e say - what the API said reaches the reader without opening the database:
(a) a 404's log line and list's reason carry the API's status, type, message and field;
(b) a 500 attempt keeps its body, shown by `show` (text and --json), and a retry that
    fails again and again is a warning with the API's answer; the dead job's reason is
    the last attempt's answer;
(c) `show` gives the effective policy with where each value came from (job, config,
    default), though the stored spec leaves defaults out;
(d) `stats` and the daemon's exit summary give the top failure reasons with counts;
(e) a job that dies held by the API's rate limit gives the last attempt's answer (a 429).
Runtime: about 3 s."""
import json
import re

from harness import Checks, Emulator, Spool

c = Checks("say")
emu = Emulator("--seed", "3")
# the harness's config sets max_attempts 6, initial_ms 50, max_ms 400; max_age is default
s = Spool(emu.url, config={"endpoint_limits": False})
try:
    # --- (a) a 404: the API's own words in the log and in list's reason ---------------
    bad = {"op": "createSource", "params": {"slug": "web-x", "enabled": True,
                                            "metadataId": "nope\nforged line"}}
    s.drop_jobs("bad.json", [bad, dict(bad, params=dict(bad["params"], slug="web-y")),
                             {"op": "getWarehouse", "params": {"warehouseId": "wh_1"},
                              "retry": {"max_attempts": 3}, "on_unknown": "fail",
                              "output": False}])
    c.eq(s.run_until_idle(timeout=60), 0, "first run")
    log = s.log_text()
    want = ("failed: HTTP 404 NotFound: source metadata nope\\nforged line not found "
            "(field metadataId); the API refused the request, retrying cannot fix it")
    c.check(re.search(r"job \d+ \(createSource\) " + re.escape(want), log),
            f"the 404's log line carries the API's answer, one line: {log[-1500:]}")
    c.check("\nforged line" not in log, "the message's newline cannot forge a log line")
    failed = s.jobs("failed")
    c.eq(len(failed), 2, "both creates failed")
    c.check(all(j.get("reason", "").startswith("HTTP 404 NotFound: source metadata nope")
                for j in failed), f"list --json's reason is the API's answer: {failed}")
    r = s.cli("list", "--state", "failed", check=True).stdout.decode()
    c.check(r.splitlines()[0].split()[-1] == "REASON", f"list has a REASON column: {r}")
    c.check(r.count("HTTP 404 NotFound: source metadata nope\\nforged line not found") == 2,
            f"list's text gives each failed job's reason on its line: {r}")

    # --- (c) the effective policy, with where each value came from ------------------
    ok = [j for j in s.jobs() if j["op"] == "getWarehouse"][0]
    sh = s.show(ok["id"])
    c.eq(sh["state"], "succeeded", "the read succeeded")
    c.eq(ok.get("reason", "missing"), None, "a succeeded job has no reason in list")
    pol = sh.get("policy") or {}
    c.eq({k: (v["value"], v["from"]) for k, v in pol.items()},
         {"max_attempts": (3, "job"), "initial_ms": (50, "config"), "max_ms": (400, "config"),
          "max_age": ("1d", "default"), "on_unknown": ("fail", "job"),
          "output": (False, "file")}, "show --json: the effective policy and its sources")
    plain = s.show(failed[0]["id"]).get("policy") or {}
    c.eq({k: (v["value"], v["from"]) for k, v in plain.items() if k != "output"},
         {"max_attempts": (6, "config"), "initial_ms": (50, "config"),
          "max_ms": (400, "config"), "max_age": ("1d", "default"),
          "on_unknown": ("retry", "default")}, "a job without retry: the config's policy")
    # a job of a file of several jobs: no output file, its result in the file's results
    # file (issue 13); a single-job file's job keeps the default name (below)
    c.eq(plain.get("output"), {"value": False, "from": "file"},
         "a batch's job: its result goes to the results file")
    text = s.cli("show", str(ok["id"]), check=True).stdout.decode()
    c.check("policy: max_attempts 3 (job), initial_ms 50 (config), max_ms 400 (config), "
            "max_age 1d (default), on_unknown fail (job), output false (file)" in text,
            f"show's text gives the policy with sources: {text}")

    # --- (b) 500s: the body is kept with each attempt, retries warn, the death says why
    emu.admin("/__emu/config", {"fail_rate": 1, "fail_status": 500})
    s.drop_jobs("five.json", [{"op": "getWarehouse", "params": {"warehouseId": "wh_1"},
                               "retry": {"max_attempts": 5, "initial_ms": 10, "max_ms": 20}}])
    before = len(s.log_text())
    c.eq(s.run_until_idle(timeout=60), 0, "second run")
    log = s.log_text()[before:]
    dead = s.jobs("dead")
    c.eq(len(dead), 1, "the read that met only 500s is dead")
    sh = s.show(dead[0]["id"])
    out = sh.get("policy", {}).get("output", {})
    c.eq(out.get("from"), "default", "a single-job file's output name is the default")
    c.check(re.fullmatch(r"getWarehouse-\d+\.json", str(out.get("value"))),
            f"named as the daemon names it: {out}")
    atts = sh["attempts"]
    c.eq([a["http_status"] for a in atts], [500] * 5, "five attempts, each a 500")
    c.check(all("the service is unavailable, try again" in (a.get("body") or "")
                for a in atts), f"each 500 attempt keeps its body: {atts}")
    body = json.loads(atts[0]["body"])
    c.eq(body["errors"][0]["message"], "the service is unavailable, try again",
         "the kept body is the API's (whole, so still JSON)")
    text = s.cli("show", str(dead[0]["id"]), check=True).stdout.decode()
    c.check(text.count("body: {\"errors\":[{") == 5,
            f"show's text prints each attempt's body: {text}")
    c.check(all(a.get("body") is None for a in s.show(ok["id"])["attempts"]),
            "a 2xx attempt keeps no body")
    warns = [l for l in log.splitlines() if " warn: " in l and "next try in" in l]
    c.eq(len(warns), 2, f"the third and fourth failures are warnings: {log[-2000:]}")
    c.check(all("HTTP 500 InternalServerError: the service is unavailable, try again" in l
                for l in warns),
            f"with the API's answer: {warns}")
    c.check(re.search(r"attempt 3 failed: HTTP 500", log) and
            re.search(r"attempt 4 failed: HTTP 500", log), "numbered by failures in a row")
    c.check(not re.search(r"attempt [12] failed", log), "the first two are not warnings")
    reason = sh["transitions"][-1]["reason"]
    c.check(reason.startswith("HTTP 500 InternalServerError: the service is unavailable, "
                              "try again; out of attempts"),
            f"the dead job's reason is the last answer: {reason}")

    # --- (d) the top failure reasons, in stats and in the exit summary ---------------
    st = json.loads(s.cli("stats", "--json", check=True).stdout)
    top = st.get("top_reasons") or []
    c.eq([t["jobs"] for t in top], [2, 1], f"stats: the top reasons with counts: {top}")
    c.check(top and top[0]["reason"].startswith("HTTP 404 NotFound"), "the 404 first")
    c.check(len(top) > 1 and top[1]["reason"] == reason, "then the dead job's")
    c.check(re.search(r"top reason 1: 2 job\(s\) failed or dead: HTTP 404 NotFound: source "
                      r"metadata nope", log), f"the exit summary gives them: {log[-1500:]}")
    c.check(re.search(r"top reason 2: 1 job\(s\) failed or dead: HTTP 500", log),
            "with the dead job's second")
finally:
    s.cleanup()
    emu.stop()

# --- (e) a job held by the API's rate limit until its max age passed: its death gives the
#     last attempt's answer (the 429's), though no answer was in hand when it died
emu = Emulator("--rate", "1/min")
s = Spool(emu.url, config={"endpoint_limits": False})
try:
    s.drop_jobs("held.json", [{"op": "getWarehouse", "params": {"warehouseId": "wh_1"},
                               "retry": {"max_age": "1s"}} for _ in range(2)])
    c.eq(s.run_until_idle(timeout=60), 0, "rate-limited run")
    dead = s.jobs("dead")
    c.eq(len(dead), 1, "one of the two reads waited past its max age")
    want = ("max_age 1s passed while waiting for the rate limit; the last answer: HTTP 429 "
            "RateLimited: rate limit exceeded")
    c.check(dead and dead[0]["reason"].startswith(want), f"its reason says both: {dead}")
    c.check(re.search(r"job \d+ \(getWarehouse\) dead: " + re.escape(want), s.log_text()),
            f"and so does its log line: {s.log_text()[-800:]}")
finally:
    s.cleanup()
    emu.stop()
c.finish()
