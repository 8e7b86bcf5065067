"""e2e fanout - a 30-day event-volume export split by day: 30 paginated children, the
parent's show reports their progress, the merged output is in time order and its totals
equal one unsplit request's; and a fan-out where a child fails ends failed, naming each
failing child and its reason.
"""
import json
import os
import time

from harness import Checks, Emulator, Spool, emu_cleanup, listdir, wait_for

c = Checks("fanout")
OP = "getEventsVolumeFromWorkspace"
DAYS = 30
PARAMS = {"granularity": "DAY", "startTime": "2026-10-01T00:00:00Z",
          "endTime": "2026-10-31T00:00:00Z", "groupBy": ["eventName"]}
EVENTS = 4           # the emulator's event names
PER_PAGE = 2         # so that every child has two pages
# seed whose fault draws fail exactly one of the 30 children's requests at rate 0.05
FAIL_SEED = int(os.environ.get("FANOUT_FAIL_SEED", "3"))


def lines(path):
    return [json.loads(l) for l in open(path).read().splitlines() if l.strip()]


def db_ready(s):
    return os.path.exists(os.path.join(s.spool, "segspool.db"))


def by_key(s):
    return {j["key"]: j["id"] for j in s.jobs() if j.get("key")}


emu = Emulator("--delay-ms", "25", "--seed", "31")
s = Spool(emu.url, config={"endpoint_limits": False, "http": {"max_in_flight": 3}})
try:
    s.drop_jobs("volumes.json", [
        {"op": OP, "params": PARAMS, "split": "1d", "key": "split",
         "paginate": {"max_pages": 100, "count": PER_PAGE}},
        {"op": OP, "params": PARAMS, "key": "whole"}])
    s.start()
    keys = wait_for(lambda: db_ready(s) and len(by_key(s)) == 2 and by_key(s), timeout=20,
                    what="jobs ingested")
    pid, wid = keys["split"], keys["whole"]
    samples = []
    end = time.monotonic() + 60
    while time.monotonic() < end:
        sh = s.show(pid)
        ch = sh.get("children") or {}
        samples.append((ch.get("total", 0), ch.get("succeeded", 0),
                        sum(j.get("pages_done") or 0 for j in ch.get("jobs", []))))
        if sh["state"] in ("succeeded", "failed", "dead", "cancelled"):
            break
        time.sleep(0.02)
    s.stop()
    print(f"{len(samples)} samples of the parent's progress, e.g. "
          f"{samples[len(samples) // 2]}", flush=True)
    c.check(any(t == DAYS and 0 < p < DAYS * 2 for t, _, p in samples),
            "show on the parent reported partial progress while the children ran")
    c.check(all(a[2] <= b[2] and a[1] <= b[1] for a, b in zip(samples, samples[1:])),
            "the reported progress never went back")
    parent, whole = s.show(pid), s.show(wid)
    c.eq(parent["state"], "succeeded", "the split export succeeded")
    c.eq(whole["state"], "succeeded", "the unsplit export succeeded")
    ch = parent["children"]
    c.eq((ch["total"], ch["succeeded"], ch["failed"], ch["dead"], ch["active"]),
         (DAYS, DAYS, 0, 0, 0), "children: 30 in all, 30 succeeded")
    c.eq(sorted(set(j["pages_done"] for j in ch["jobs"])), [EVENTS // PER_PAGE],
         "each child reports its pages_done (2)")
    c.eq(sum(j["items_done"] for j in ch["jobs"]), DAYS * EVENTS,
         "the children's items add up to 30 days x 4 events")
    kids = [s.show(j["id"]) for j in ch["jobs"]]
    c.check(all(k["parent"] == pid for k in kids), "each child names its parent")
    windows = sorted((k["spec"]["params"]["startTime"], k["spec"]["params"]["endTime"])
                     for k in kids)
    c.eq(windows[0][0][:10], "2026-10-01", "the first child starts with the range")
    c.eq(windows[-1][1][:10], "2026-10-31", "the last child ends with it")
    c.check(all(windows[i][1] == windows[i + 1][0] for i in range(DAYS - 1)),
            "the children's windows tile the range, one day each")
    st = emu.stats()
    c.eq(st["by_operation"].get(OP), DAYS * EVENTS // PER_PAGE + 1,
         "one request per child page, plus the unsplit one")

    merged = lines(s.out_path(parent["output"]))
    single = lines(s.out_path(whole["output"]))
    c.eq(len(merged), DAYS * EVENTS, "the merged output has a line per day and event")
    times = [m["series"][0]["time"] for m in merged if m.get("series")]
    c.check(len(times) == len(merged) and all(len(m["series"]) == 1 for m in merged),
            "each merged line holds its day's one point")
    c.check(times == sorted(times), "the merged output is in time order")
    c.eq(len(set(times)), DAYS, "30 distinct days")
    sums_split, sums_whole = {}, {}
    for m in merged:
        sums_split[m["eventName"]] = sums_split.get(m["eventName"], 0) + m["total"]
    for w in single:
        sums_whole[w["eventName"]] = sums_whole.get(w["eventName"], 0) + w["total"]
    print(f"totals per event: {sums_whole}", flush=True)
    c.eq(len(sums_whole), EVENTS, "the unsplit export has the 4 events")
    c.eq(sums_split, sums_whole, "the split totals per eventName equal the unsplit ones")
    per_day_whole = {(w["eventName"], p["time"]): p["count"] for w in single for p in w["series"]}
    per_day_split = {(m["eventName"], m["series"][0]["time"]): m["series"][0]["count"]
                     for m in merged}
    c.eq(per_day_split, per_day_whole, "and every day's count matches")
finally:
    s.cleanup()
    emu_cleanup(emu)

# --- a child fails: the parent fails, naming each failing child and why -------------------
emu = Emulator("--fail-rate", "0.05", "--fail-status", "422", "--seed", str(FAIL_SEED))
s = Spool(emu.url, config={"endpoint_limits": False})
try:
    s.drop_jobs("volumes.json", [{"op": OP, "params": PARAMS, "split": "1d", "key": "split"}])
    c.eq(s.run_until_idle(timeout=60), 0, "failing child: run exits 0")
    pid = by_key(s)["split"]
    parent = s.show(pid)
    ch = parent["children"]
    failed = [j for j in ch["jobs"] if j["state"] != "succeeded"]
    print(f"failing child: {len(failed)} of {ch['total']} children did not succeed "
          f"(seed {FAIL_SEED}); parent error: {json.dumps(parent['error'])[:400]}", flush=True)
    c.eq(emu.stats()["by_status"].get("422"), len(failed), "each failed child met one 422")
    c.check(len(failed) >= 1, "at least one child failed (the test bites)")
    c.eq(len(failed), 1, f"exactly one child failed with seed {FAIL_SEED}")
    c.eq(ch["total"], DAYS, "the parent still counts 30 children")
    c.eq(ch["succeeded"] + ch["failed"], DAYS, "the others succeeded; none left active")
    c.eq(parent["state"], "failed", "the parent failed")
    errs = (parent["error"] or {}).get("errors", [])
    c.eq(len(errs), len(failed), "the parent's error has one entry per failing child")
    for j in failed:
        kid = s.show(j["id"])
        c.eq(kid["state"], "failed", f"child {j['id']} failed (422 is not retried)")
        mine = [e for e in errs if str(j["id"]) in e.get("message", "")]
        c.check(len(mine) == 1 and json.dumps(kid["error"]) in json.dumps(mine[0]),
                f"the parent's error names child {j['id']} with its reason: {mine}")
        c.check("422" in json.dumps(mine[0]) or "Unprocessable" in json.dumps(mine[0]) or
                kid["attempts"][-1]["http_status"] == 422,
                f"child {j['id']}'s reason is the API's 422")
    c.eq([n for n in listdir(s.out_path("")) if n.startswith(OP + f"-{pid}.")], [],
         "no merged output for the failed fan-out")
finally:
    s.cleanup()
    emu_cleanup(emu)
c.finish()
