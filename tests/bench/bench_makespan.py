"""bench_makespan - 1,000 createSource jobs (default outputs: one data file per job) through
the real daemon against segspool-emu --rate 100/s:

  run "at-limit":   daemon "rate": "100/s" with a small burst; makespan (first attempt's start
                    to last attempt's end, from the attempts table) and the 429s the emulator
                    answered. Targets: makespan <= 10.3 s, zero 429s.
  run "over-limit": daemon "rate": "200/s", twice the server's limit; every job must still
                    succeed (429s hold the bucket and do not use up attempts). Target:
                    makespan <= 11.5 s. The 429 count is reported (no target).

The emulator's bucket starts full (100 tokens) and refills at 100/s, so 1,000 requests
cannot finish in less than ~9 s whatever the client does; a client that sends at exactly
100/s from a burst of B needs (1000 - B) / 100 s.

Prints one JSON line per run (with the target and whether it was met); asserts nothing.

usage: python3 tests/bench/bench_makespan.py [BUILD_DIR] [N]
env:   BENCH_BURST (default 10): the daemon's burst in the at-limit run (and the over-limit
       run); BENCH_RUNS (default "at-limit,over-limit")."""
import json
import os
import sqlite3
import sys
import time

import benchenv  # noqa: F401  (first: the build and the harness's path)
from harness import Emulator, Spool, emu_cleanup  # noqa: E402

N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
BURST = float(os.environ.get("BENCH_BURST", "10"))
RUNS = os.environ.get("BENCH_RUNS", "at-limit,over-limit").split(",")
SERVER_RATE = "100/s"


def run(name, daemon_rate, burst, target_s, target_429):
    emu = Emulator("--rate", SERVER_RATE)
    s = Spool(emu.url, config={"rate": daemon_rate, "burst": burst, "endpoint_limits": False,
                               "http": {"max_in_flight": 16}, "log_level": "warn",
                               "retry": {"max_attempts": 6, "initial_ms": 50, "max_ms": 400}})
    try:
        s.drop_jobs("makespan.jsonl", [
            {"op": "createSource", "params": {"slug": f"ms-{i}", "enabled": True,
                                              "metadataId": "IqDTy1TpoU",
                                              "disconnectAllWarehouses": True}}
            for i in range(N)])
        t0 = time.monotonic()
        rc = s.run_until_idle(timeout=300)
        wall = time.monotonic() - t0
        db = sqlite3.connect(os.path.join(s.spool, "segspool.db"))
        first, last, calls = db.execute(
            "SELECT min(started_ms), max(started_ms + coalesce(duration_ms,0)), count(*) "
            "FROM attempts").fetchone()
        ok = db.execute("SELECT count(*) FROM jobs WHERE state = 3").fetchone()[0]
        # requests sent per second over the run, to show the shape (burst, then steady)
        starts = [r[0] for r in db.execute("SELECT started_ms FROM attempts ORDER BY started_ms")]
        db.close()
        first_sec = sum(1 for t in starts if t < first + 1000)
        outs = len(os.listdir(os.path.join(s.spool, "out"))) \
            if os.path.isdir(os.path.join(s.spool, "out")) else 0
        st = emu.stats()
        span = (last - first) / 1000.0
        r429 = st.get("rate_limited", 0)
        met = span <= target_s and ok == N and (target_429 is None or r429 <= target_429)
        fig = {"bench": "makespan", "run": name, "n": N, "server_rate": SERVER_RATE,
               "daemon_rate": daemon_rate, "burst": burst, "succeeded": ok,
               "output_files": outs, "attempts": calls, "rate_limited_429": r429,
               "emu_requests": st.get("requests"), "makespan_s": round(span, 3),
               "sent_in_first_second": first_sec,
               "wall_incl_ingest_s": round(wall, 3), "exit": rc,
               "target": {"makespan_s_max": target_s, "all_succeed": True,
                          **({"rate_limited_429": target_429} if target_429 is not None
                             else {})},
               "met": met}
        print(json.dumps(fig), flush=True)
        return fig
    finally:
        s.cleanup()
        emu_cleanup(emu)


if "at-limit" in RUNS:
    run("at-limit", "100/s", BURST, 10.3, 0)
if "over-limit" in RUNS:
    run("over-limit", "200/s", BURST, 11.5, None)
