"""bench_queue - queue-size independence: the daemon's dispatch rate with 1,000,000 due jobs
queued against 1,000 due jobs queued (segspool-emu, limits off, "output": false so that
output files do not dominate). Target: rate(1M) / rate(1k) >= 0.90.

Each queue is built in two phases so that ingest and dispatch are not measured together:
  1. ingest: the emulator hangs every request and the daemon runs with max_in_flight 1, so
     one request goes out and never comes back while the daemon takes in the JSON Lines
     files (1M jobs = 100 files x 10,000 jobs, 1.5 MB each, under the 8 MiB file limit); it
     is stopped (SIGTERM) once incoming/ is empty. The hung request is interrupted at the
     stop and its job queued again, so every job is still queued (state 0). The ingest time
     is reported (first file's commit to last, from the files table, and wall time).
  2. dispatch: the emulator stops hanging; the daemon restarts with max_in_flight back to
     BENCH_INFLIGHT (16) on the same database and runs until the emulator has answered
     enough requests, then is stopped. The rate is taken from the
     attempts of this phase, ordered by started_ms: for 1M jobs attempts 1,000..6,000
     (5,000 dispatches after the start-up has settled); for 1k jobs attempts 100..900 (all a
     queue of 1,000 can give, less its start and tail). The 1M queue's rate over attempts
     100..900 is reported too, so both windows can be compared, and the time from the
     restart to the first attempt (work that grows with the queue shows up there).

Each figure is the median of BENCH_REPEATS (5) dispatch runs, small and big alternating (the
1M queue is ingested once; each of its runs takes ~6,200 jobs off it; each small run gets a
fresh 1,000-job queue). Prints JSON lines (ingest, the runs of each, then the summary with
the target); asserts nothing.

usage: python3 tests/bench/bench_queue.py [BUILD_DIR] [BIG] [SMALL]"""
import json
import os
import signal
import sqlite3
import sys
import time

import benchenv  # noqa: F401  (first: the build and the harness's path)
from harness import Emulator, Spool, emu_cleanup, listdir, rewrite_config, wait_for  # noqa: E402

BIG = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
SMALL = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
PER_FILE = 10000
INFLIGHT = int(os.environ.get("BENCH_INFLIGHT", "16"))
REPS = int(os.environ.get("BENCH_REPEATS", "5"))


def job(i):
    return {"op": "createSource", "output": False,
            "params": {"slug": f"q-{i}", "enabled": True, "metadataId": "IqDTy1TpoU",
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


class Queue:
    """Queue - an emulator and a spool whose database holds n due jobs (phase 1)."""

    def __init__(self, n):
        self.emu = Emulator("--hang-rate", "1", "--hang-ms", "3600000")
        self.s = Spool(self.emu.url, config={"rate": "off", "endpoint_limits": False,
                                             "grace_ms": 200, "http": {"max_in_flight": 1},
                                             "log_level": "warn", "claim_batch": 1000})
        s = self.s
        t0 = time.monotonic()
        nfiles, biggest = drop_files(s, n)
        write_s = time.monotonic() - t0
        # phase 1: ingest (one request goes out and hangs; nothing else is admitted)
        incoming = os.path.join(s.spool, "incoming")
        t0 = time.monotonic()
        s.start(ready=False)
        wait_for(lambda: not listdir(incoming) or s.daemon.poll() is not None,
                 timeout=600, step=0.1, what="incoming/ empty")
        ingest_wall = time.monotonic() - t0
        s.stop(signal.SIGTERM, timeout=60)
        db = sqlite3.connect(self.db_path())
        first, last, files = db.execute(
            "SELECT min(ingested_ms), max(ingested_ms), count(*) FROM files").fetchone()
        jobs = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
        due = db.execute("SELECT count(*) FROM jobs WHERE state IN (0, 2)").fetchone()[0]
        db.close()
        self.ingest = {"jobs": jobs, "queued": due, "files": files,
                       "biggest_file_bytes": biggest, "write_files_s": round(write_s, 2),
                       "ingest_commit_span_s": round((last - first) / 1000.0, 2),
                       "ingest_wall_s": round(ingest_wall, 2),
                       "ingest_jobs_per_s": round(jobs / max(ingest_wall, 0.001)),
                       "db_mib": round(os.path.getsize(self.db_path()) / 1048576, 1)}
        rewrite_config(s, {"http": {"max_in_flight": INFLIGHT}})
        self.emu.admin("/__emu/config", {"hang_rate": 0})

    def db_path(self):
        return os.path.join(self.s.spool, "segspool.db")

    def dispatch(self, lo, hi):
        """phase 2: the daemon runs with no limit until hi + 200 requests were answered (or
        the queue is empty); the rate over attempts lo..hi of this run."""
        s = self.s
        db = sqlite3.connect(self.db_path())
        due = db.execute("SELECT count(*) FROM jobs WHERE state IN (0, 2)").fetchone()[0]
        db.close()
        self.emu.admin("/__emu/reset", {})
        want = min(hi + 200, due)
        t_start_ms = int(time.time() * 1000)
        s.start(ready=False)
        wait_for(lambda: self.emu.stats().get("requests", 0) >= want or
                 s.daemon.poll() is not None, timeout=300, step=0.05, what=f"{want} requests")
        s.stop(signal.SIGTERM, timeout=60)
        db = sqlite3.connect(self.db_path())
        starts = [r[0] for r in db.execute(
            "SELECT started_ms FROM attempts WHERE started_ms >= ? ORDER BY started_ms",
            (t_start_ms,))]
        db.close()
        return {"queued": due, "attempts": len(starts),
                "first_attempt_after_start_ms": (starts[0] - t_start_ms) if starts else None,
                "rate_per_s": window_rate(starts, lo, hi),
                "rate_per_s_100_900": window_rate(starts, 100, 900)}

    def close(self):
        self.s.cleanup()
        emu_cleanup(self.emu)


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


# the runs alternate small and big, so that load from elsewhere on the machine falls on both
small_runs, big_runs = [], []
big = Queue(BIG)
print(json.dumps({"bench": "queue-ingest", "big_queue": BIG, **big.ingest}), flush=True)
try:
    for rep in range(REPS):
        small = Queue(SMALL)
        try:
            small_runs.append(small.dispatch(100, min(900, SMALL - 100)))
        finally:
            small.close()
        big_runs.append(big.dispatch(1000, 6000))
finally:
    big.close()
for name, runs in (("queue-small", small_runs), ("queue-big", big_runs)):
    print(json.dumps({"bench": name, "runs": runs}), flush=True)
sr, br = median(r["rate_per_s"] for r in small_runs), median(r["rate_per_s"] for r in big_runs)
sr9 = median(r["rate_per_s_100_900"] for r in small_runs)
br9 = median(r["rate_per_s_100_900"] for r in big_runs)
ratio = br / sr if br and sr else None
ratio9 = br9 / sr9 if br9 and sr9 else None
print(json.dumps({"bench": "queue", "small_queue": SMALL, "big_queue": BIG, "repeats": REPS,
                  "small_rate_per_s": sr, "big_rate_per_s": br,
                  "ratio": round(ratio, 3) if ratio else None,
                  "ratio_same_window_100_900": round(ratio9, 3) if ratio9 else None,
                  "big_ingest_wall_s": big.ingest["ingest_wall_s"],
                  "big_ingest_jobs_per_s": big.ingest["ingest_jobs_per_s"],
                  "target": {"ratio_min": 0.90},
                  "met": bool(ratio and ratio >= 0.90)}), flush=True)
