"""bench_deps - jobs waiting for dependencies must not slow dispatch (issue #13): the
daemon's claim/dispatch rate over DUE due jobs (getWarehouse, "output": false, segspool-emu
with limits off) with no other jobs in the store, against the same with N jobs waiting for
dependencies beside them, in two shapes:
  chain   N jobs c0 <- c1 <- ... (each after the one before; c0 not due before 2099), so
          every job but c0 waits (parked, JW_DEPS) for one dependency;
  fan-in  N jobs each waiting for the one job "root" (not due before 2099).

Method. Each run has its own spool. Phase 1 (the waiting jobs, none for the baseline):
their JSON Lines files (25,000 jobs a file, under the 8 MiB file limit; a chain goes on
from one file to the next by a key already in the store) are dropped and the daemon runs
until incoming/ is empty, then stops: no request goes out, as nothing is due. Phase 2: a
file of DUE due jobs is dropped and the daemon started on the same database; it is
stopped once DUE attempts have an outcome. The rate is taken from the attempts' started_ms,
attempts LO..DUE-LO (the start and the tail left out), so ingest is not measured with
dispatch. Also reported: phase 1's ingest time (the deps rows and the parking are written
there) and the time from phase 2's start to its first attempt (work that grows with the
waiting jobs would show up there).

Each figure is the median of BENCH_REPEATS (3) runs. Prints JSON lines (each run, then the
summary with the ratios: rate with waiting jobs / rate without, target >= 0.90); asserts
nothing.

usage: python3 tests/bench/bench_deps.py [BUILD_DIR] [N] [DUE]"""
import json
import os
import sqlite3
import statistics
import sys
import time

import benchenv  # noqa: F401  (first: the build and the harness's path)
from harness import Emulator, Spool, listdir, wait_for  # noqa: E402

N = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
DUE = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
PER_FILE = 25000
REPS = int(os.environ.get("BENCH_REPEATS", "3"))
LO = DUE // 10
FAR = "2099-01-01T00:00:00Z"


def getwh(**extra):
    j = {"op": "getWarehouse", "output": False, "params": {"warehouseId": "wh_1"}}
    j.update(extra)
    return j


def waiting_jobs(shape):
    if shape == "chain":
        return [getwh(key=f"c{i}", not_before=FAR) if i == 0 else
                getwh(key=f"c{i}", after=[f"c{i - 1}"]) for i in range(N)]
    if shape == "fan-in":
        return [getwh(key="root", not_before=FAR)] + [getwh(after=["root"])
                                                      for _ in range(N - 1)]
    return []


def drop(s, name, jobs):
    tmp = os.path.join(s.spool, "tmp")
    os.makedirs(tmp, exist_ok=True)
    with open(os.path.join(tmp, name), "w") as f:
        f.write("".join(json.dumps(j) + "\n" for j in jobs))
    os.rename(os.path.join(tmp, name), os.path.join(s.spool, "incoming", name))


def one_run(shape):
    emu = Emulator()
    s = Spool(emu.url, config={"rate": "off", "endpoint_limits": False, "grace_ms": 200,
                               "log_level": "warn", "claim_batch": 1000})
    try:
        out = {"bench": "deps", "shape": shape, "waiting": 0}
        jobs = waiting_jobs(shape)
        if jobs:
            for k in range(0, len(jobs), PER_FILE):
                drop(s, f"wait-{k // PER_FILE:03d}.jsonl", jobs[k:k + PER_FILE])
            t0 = time.monotonic()
            s.start(ready=False)
            wait_for(lambda: not listdir(os.path.join(s.spool, "incoming")), timeout=900,
                     step=0.05, what="waiting jobs ingested")
            out["ingest_s"] = round(time.monotonic() - t0, 2)
            s.stop()
        db = sqlite3.connect(os.path.join(s.spool, "segspool.db"))
        out["waiting"] = db.execute("SELECT count(*) FROM jobs WHERE state = 2 AND "
                                    "waiting_for = 5").fetchone()[0]
        db.close()
        drop(s, "due.jsonl", [getwh() for _ in range(DUE)])
        t0 = time.time()
        s.start(ready=False)

        def answered():
            db = sqlite3.connect(os.path.join(s.spool, "segspool.db"), timeout=30)
            try:
                return db.execute("SELECT count(*) FROM attempts WHERE outcome IS NOT "
                                  "NULL").fetchone()[0] >= DUE
            except sqlite3.OperationalError:
                return False
            finally:
                db.close()

        wait_for(answered, timeout=900, step=0.2, what="due jobs dispatched")
        s.stop()
        db = sqlite3.connect(os.path.join(s.spool, "segspool.db"))
        starts = [r[0] for r in db.execute("SELECT started_ms FROM attempts ORDER BY "
                                           "started_ms, id")]
        db.close()
        lo, hi = LO, DUE - LO
        out["dispatch_per_s"] = round((hi - lo) / max((starts[hi] - starts[lo]) / 1000.0,
                                                      0.001), 1)
        out["start_to_first_attempt_s"] = round(starts[0] / 1000.0 - t0, 3)
        print(json.dumps(out), flush=True)
        return out
    finally:
        s.cleanup()
        emu.stop()


def main():
    runs = {"none": [], "chain": [], "fan-in": []}
    for _ in range(REPS):
        for shape in runs:
            runs[shape].append(one_run(shape))
    med = {k: statistics.median(r["dispatch_per_s"] for r in v) for k, v in runs.items()}
    print(json.dumps({
        "bench": "deps-summary", "waiting_jobs": N, "due_jobs": DUE, "repeats": REPS,
        "dispatch_per_s": med,
        "ingest_s": {k: statistics.median(r["ingest_s"] for r in v)
                     for k, v in runs.items() if k != "none"},
        "ratio_chain": round(med["chain"] / med["none"], 3),
        "ratio_fan_in": round(med["fan-in"] / med["none"], 3),
        "target": ">= 0.90"}), flush=True)


if __name__ == "__main__":
    main()
