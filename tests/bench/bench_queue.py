"""bench_queue - queue-size independence: the daemon's dispatch rate with 1,000,000 due jobs
queued against 1,000 due jobs queued (segspool-emu, limits off, "output": false so that
output files do not dominate). Target: rate(1M) / rate(1k) >= 0.90.

Each queue is built in two phases so that ingest and dispatch are not measured together:
  1. ingest: the daemon runs with "rate": "1/h" (burst 1: it sends one request, then none),
     takes in the JSON Lines files (1M jobs = 100 files x 10,000 jobs, ~1.6 MB each, under
     the 8 MiB file limit) and is stopped (SIGTERM) once incoming/ is empty. The ingest time
     is reported (first file's commit to last, from the files table, and wall time).
  2. dispatch: the daemon restarts with "rate": "off" on the same database and runs until the
     emulator has answered enough requests, then is stopped. The rate is taken from the
     attempts of this phase, ordered by started_ms: for 1M jobs attempts 1,000..6,000
     (5,000 dispatches after the start-up has settled); for 1k jobs attempts 100..900 (all a
     queue of 1,000 can give, less its start and tail). The 1M queue's rate over attempts
     100..900 is reported too, so both windows can be compared, and the time from the
     restart to the first attempt (work that grows with the queue shows up there).

Prints one JSON line; asserts nothing.

usage: python3 tests/bench/bench_queue.py [BUILD_DIR] [BIG] [SMALL]"""
import json
import os
import signal
import sqlite3
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "e2e"))
build = sys.argv[1] if len(sys.argv) > 1 else "build"
os.environ.setdefault("SEGSPOOL_BIN", os.path.join(build, "segspool"))
os.environ.setdefault("SEGSPOOL_EMU", os.path.join(build, "segspool-emu"))
from harness import Emulator, Spool, emu_cleanup, listdir, rewrite_config, wait_for  # noqa: E402

BIG = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
SMALL = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
PER_FILE = 10000
INFLIGHT = int(os.environ.get("BENCH_INFLIGHT", "16"))


def job(i):
    return {"op": "createSource", "output": False,
            "params": {"slug": f"q-{i}", "enabled": True, "metadataId": "s0d1ouMNJG",
                       "disconnectAllWarehouses": True}}


def drop_files(s, n):
    """the JSONL files, written straight into tmp/ and renamed into incoming/"""
    tmp = os.path.join(s.spool, "tmp")
    os.makedirs(tmp, exist_ok=True)
    biggest = 0
    for f in range(0, n, PER_FILE):
        name = f"queue-{f // PER_FILE:04d}.jsonl"
        data = "".join(json.dumps(job(i)) + "\n" for i in range(f, min(n, f + PER_FILE)))
        biggest = max(biggest, len(data))
        with open(os.path.join(tmp, name), "w") as fh:
            fh.write(data)
        os.rename(os.path.join(tmp, name), os.path.join(s.spool, "incoming", name))
    assert biggest < 8 * 1024 * 1024, f"a file of {biggest} bytes is over the 8 MiB limit"
    return (n + PER_FILE - 1) // PER_FILE, biggest


def window_rate(starts, lo, hi):
    if len(starts) <= hi:
        return None
    return round((hi - lo) / max((starts[hi] - starts[lo]) / 1000.0, 0.001), 1)


def measure(n, lo, hi):
    emu = Emulator()
    s = Spool(emu.url, config={"rate": "1/h", "burst": 1, "endpoint_limits": False,
                               "http": {"max_in_flight": INFLIGHT}, "log_level": "warn",
                               "claim_batch": 1000})
    try:
        t0 = time.monotonic()
        nfiles, biggest = drop_files(s, n)
        write_s = time.monotonic() - t0
        # phase 1: ingest (one request goes, then the 1/h bucket is empty)
        incoming = os.path.join(s.spool, "incoming")
        t0 = time.monotonic()
        s.start(ready=False)
        wait_for(lambda: not listdir(incoming) or s.daemon.poll() is not None,
                 timeout=600, step=0.1, what="incoming/ empty")
        ingest_wall = time.monotonic() - t0
        s.stop(signal.SIGTERM, timeout=60)
        db = sqlite3.connect(os.path.join(s.spool, "segspool.db"))
        first, last, files = db.execute(
            "SELECT min(ingested_ms), max(ingested_ms), count(*) FROM files").fetchone()
        jobs = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
        due = db.execute("SELECT count(*) FROM jobs WHERE state IN (0, 2)").fetchone()[0]
        db.close()
        db_mib = os.path.getsize(os.path.join(s.spool, "segspool.db")) / 1048576
        # phase 2: dispatch with no limit
        rewrite_config(s, {"rate": "off"})
        emu.admin("/__emu/reset", {})
        want = min(hi + 200, due)
        t_start_ms = int(time.time() * 1000)
        t0 = time.monotonic()
        s.start(ready=False)
        wait_for(lambda: emu.stats().get("requests", 0) >= want or s.daemon.poll() is not None,
                 timeout=300, step=0.1, what=f"{want} requests")
        run_wall = time.monotonic() - t0
        s.stop(signal.SIGTERM, timeout=60)
        db = sqlite3.connect(os.path.join(s.spool, "segspool.db"))
        starts = [r[0] for r in db.execute(
            "SELECT started_ms FROM attempts WHERE started_ms >= ? ORDER BY started_ms",
            (t_start_ms,))]
        ok = db.execute("SELECT count(*) FROM jobs WHERE state = 3").fetchone()[0]
        db.close()
        return {"queued": due, "jobs": jobs, "files": files, "biggest_file_bytes": biggest,
                "write_files_s": round(write_s, 2),
                "ingest_commit_span_s": round((last - first) / 1000.0, 2) if first else None,
                "ingest_wall_s": round(ingest_wall, 2),
                "ingest_jobs_per_s": round(jobs / max(ingest_wall, 0.001)),
                "db_mib": round(db_mib, 1),
                "first_attempt_after_start_ms": (starts[0] - t_start_ms) if starts else None,
                "attempts": len(starts), "succeeded": ok, "dispatch_wall_s": round(run_wall, 2),
                "rate_window": [lo, hi], "rate_per_s": window_rate(starts, lo, hi),
                "rate_per_s_100_900": window_rate(starts, 100, 900)}
    finally:
        s.cleanup()
        emu_cleanup(emu)


small = measure(SMALL, 100, min(900, SMALL - 100))
print(json.dumps({"bench": "queue-small", **small}), flush=True)
big = measure(BIG, 1000, 6000)
print(json.dumps({"bench": "queue-big", **big}), flush=True)
ratio = (big["rate_per_s"] / small["rate_per_s"]) if big["rate_per_s"] and small["rate_per_s"] \
    else None
ratio_same = (big["rate_per_s_100_900"] / small["rate_per_s_100_900"]) \
    if big["rate_per_s_100_900"] and small["rate_per_s_100_900"] else None
print(json.dumps({"bench": "queue", "small_queue": SMALL, "big_queue": BIG,
                  "small_rate_per_s": small["rate_per_s"], "big_rate_per_s": big["rate_per_s"],
                  "ratio": round(ratio, 3) if ratio else None,
                  "ratio_same_window_100_900": round(ratio_same, 3) if ratio_same else None,
                  "big_ingest_wall_s": big["ingest_wall_s"],
                  "target": {"ratio_min": 0.90},
                  "met": bool(ratio and ratio >= 0.90)}), flush=True)
