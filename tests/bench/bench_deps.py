"""bench_deps - jobs waiting for dependencies must not slow dispatch (issue #13): the
daemon's claim/dispatch rate over DUE due jobs (getWarehouse, "output": false, segspool-emu
with limits off) with no other job in the store, against the same with N other jobs beside
them, in three shapes:
  chain    N jobs c0 <- c1 <- ... (each after the one before; c0 not due before 2099), so
           every job but c0 waits (parked, JW_DEPS) for one dependency;
  fan-in   N jobs each waiting for the one job "root" (not due before 2099);
  not-due  N jobs without dependencies, due in 2099: a store of the same size, so the cost
           of a bigger database (deeper B-trees, more pages) is told from that of waiting.

Method. Each run has its own spool. Phase 1 (the other jobs; none for the baseline): their
JSON Lines files (25,000 jobs a file, under the 8 MiB file limit; a chain goes on from one
file to the next by a key already in the store) are dropped and the daemon runs until
incoming/ is empty, then stops: no request goes out, as nothing is due. Phase 2: a file of
DUE due jobs is dropped and the daemon started on the same database; it is stopped once DUE
attempts have an outcome. The rate is taken from the attempts' started_ms, attempts
LO..DUE-LO (the start and the tail left out), so ingest is not measured with dispatch.

The machine may be shared: wall-clock rates then swing with the neighbours' load. So the
daemon's CPU time (user + system, /proc/PID/stat) is sampled with the count of answered
attempts every 20 ms, and the CPU per dispatched job is taken between the samples inside
LO..DUE-LO: the steadier measure of the work each dispatch costs. Also reported: phase 1's
ingest time (the deps rows and the parking are written there) and the time from phase 2's
start to its first attempt (work at start that grows with the store would show there).

Last, the one-off cost of a fan-in's end: the time the root's success takes to make its
N - 1 dependants due (one UPDATE in its transaction, committed with synchronous=FULL).

Each figure is the median of BENCH_REPEATS (3) runs, the shapes alternating. Prints JSON
lines (each run, then the summary with the ratios; target: rate with waiting jobs / rate
without >= 0.90); asserts nothing.

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
DUE = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
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
    if shape == "not-due":  # as many jobs, due only in 2099: a store of the same size
        return [getwh(not_before=FAR) for _ in range(N)]
    if shape == "fan-in":
        return [getwh(key="root", not_before=FAR)] + [getwh(after=["root"])
                                                      for _ in range(N - 1)]
    return []


def cpu_s(pid):
    """cpu_s - the user and system CPU time process pid has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        p = s.start(ready=False)

        samples = []  # (requests answered, the daemon's CPU seconds)

        def answered():
            cpu = cpu_s(p.pid)
            db = sqlite3.connect(os.path.join(s.spool, "segspool.db"), timeout=30)
            try:
                n = db.execute("SELECT count(*) FROM attempts WHERE outcome IS NOT "
                               "NULL").fetchone()[0]
            except sqlite3.OperationalError:
                return False
            finally:
                db.close()
            samples.append((n, cpu))
            return n >= DUE

        wait_for(answered, timeout=900, step=0.02, what="due jobs dispatched")
        s.stop()
        db = sqlite3.connect(os.path.join(s.spool, "segspool.db"))
        starts = [r[0] for r in db.execute("SELECT started_ms FROM attempts ORDER BY "
                                           "started_ms, id")]
        db.close()
        lo, hi = LO, DUE - LO
        out["dispatch_per_s"] = round((hi - lo) / max((starts[hi] - starts[lo]) / 1000.0,
                                                      0.001), 1)
        out["start_to_first_attempt_s"] = round(starts[0] / 1000.0 - t0, 3)
        # CPU per job while dispatching: from the first sample past LO answers to the
        # last one before DUE - LO (the ingest of the due file and the tail left out)
        inside = [x for x in samples if LO <= x[0] <= DUE - LO]
        if len(inside) >= 2 and inside[-1][0] > inside[0][0]:
            out["cpu_us_per_job"] = round((inside[-1][1] - inside[0][1]) * 1e6 /
                                          (inside[-1][0] - inside[0][0]), 1)
        else:
            out["cpu_us_per_job"] = None
        print(json.dumps(out), flush=True)
        return out
    finally:
        s.cleanup()
        emu.stop()


# sqlite_sql.c's S_DEPS_RELEASE, as the root's success runs it in its transaction
RELEASE_SQL = ("UPDATE jobs SET deps_left = deps_left - 1, next_run_ms = CASE "
               "WHEN deps_left = 1 AND state = 2 AND waiting_for = 5 "
               "THEN max(?2, not_before_ms) ELSE next_run_ms END "
               "WHERE id IN (SELECT job_id FROM deps WHERE dep_id = ?1) AND deps_left > 0")


def release():
    """release - the one-off cost of a wide fan-in's end: the root's success makes its
    N - 1 dependants due in one statement of its transaction (synchronous=FULL, as the
    daemon commits), timed on a fan-in store built as phase 1 builds it."""
    emu = Emulator()
    s = Spool(emu.url, config={"rate": "off", "log_level": "warn"})
    try:
        jobs = waiting_jobs("fan-in")
        for k in range(0, len(jobs), PER_FILE):
            drop(s, f"wait-{k // PER_FILE:03d}.jsonl", jobs[k:k + PER_FILE])
        s.start(ready=False)
        wait_for(lambda: not listdir(os.path.join(s.spool, "incoming")), timeout=900,
                 step=0.05, what="waiting jobs ingested")
        s.stop()
        db = sqlite3.connect(os.path.join(s.spool, "segspool.db"), isolation_level=None)
        root = db.execute("SELECT id FROM jobs WHERE key = 'root'").fetchone()[0]
        db.execute("PRAGMA synchronous = FULL")
        t = time.monotonic()
        db.execute("BEGIN IMMEDIATE")
        db.execute(RELEASE_SQL, (root, int(time.time() * 1000)))
        n = db.total_changes
        db.execute("COMMIT")
        out = {"bench": "deps-release", "dependants": n,
               "release_s": round(time.monotonic() - t, 3)}
        db.close()
        print(json.dumps(out), flush=True)
        return out
    finally:
        s.cleanup()
        emu.stop()


def main():
    runs = {"none": [], "not-due": [], "chain": [], "fan-in": []}
    for _ in range(REPS):
        for shape in runs:
            runs[shape].append(one_run(shape))
    med = {k: statistics.median(r["dispatch_per_s"] for r in v) for k, v in runs.items()}
    cpu = {k: statistics.median(r["cpu_us_per_job"] for r in v if r["cpu_us_per_job"])
           for k, v in runs.items()}
    print(json.dumps({
        "bench": "deps-summary", "waiting_jobs": N, "due_jobs": DUE, "repeats": REPS,
        "dispatch_per_s": med,
        "ingest_s": {k: statistics.median(r["ingest_s"] for r in v)
                     for k, v in runs.items() if k != "none"},
        "cpu_us_per_job": cpu,
        "ratio_chain": round(med["chain"] / med["none"], 3),
        "ratio_fan_in": round(med["fan-in"] / med["none"], 3),
        "cpu_ratio_chain_vs_none": round(cpu["chain"] / cpu["none"], 3),
        "cpu_ratio_fan_in_vs_none": round(cpu["fan-in"] / cpu["none"], 3),
        "cpu_ratio_chain_vs_not_due": round(cpu["chain"] / cpu["not-due"], 3),
        "cpu_ratio_fan_in_vs_not_due": round(cpu["fan-in"] / cpu["not-due"], 3),
        "target": ">= 0.90"}), flush=True)
    release()


if __name__ == "__main__":
    main()
