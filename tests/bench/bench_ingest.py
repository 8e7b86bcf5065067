"""bench_ingest - 50,000 pre-dropped single-job files through the real daemon: files/s from
the first file's commit to the last (durable commits: WAL, synchronous=FULL), and the
daemon's peak RSS. Prints figures; asserts nothing.

usage: python3 tests/bench/bench_ingest.py [BUILD_DIR] [N]"""
import json
import os
import sqlite3
import sys
import time

import benchenv  # noqa: F401  (first: the build and the harness's path)
from harness import Spool, listdir, wait_for  # noqa: E402

N = int(sys.argv[2]) if len(sys.argv) > 2 else 50000
s = Spool("http://127.0.0.1:9", config={"claim_batch": 2000, "log_level": "warn"})
try:
    incoming = os.path.join(s.spool, "incoming")
    for i in range(N):
        with open(os.path.join(incoming, f"job-{i:06d}.json"), "w") as f:
            json.dump({"op": "createSource", "not_before": "2099-01-01T00:00:00Z",
                       "params": {"slug": f"bench-{i}", "enabled": True, "metadataId": "m1"}}, f)
    t0 = time.monotonic()
    p = s.start(ready=False)
    rss = 0

    def done():
        global rss
        try:
            for line in open(f"/proc/{p.pid}/status"):
                if line.startswith("VmHWM:"):
                    rss = int(line.split()[1])
        except FileNotFoundError:
            pass
        return not listdir(incoming)

    wait_for(done, timeout=600, step=0.02, what="incoming/ empty")
    wall = time.monotonic() - t0
    s.stop()
    db = sqlite3.connect(os.path.join(s.spool, "segspool.db"))
    first, last, files = db.execute(
        "SELECT min(ingested_ms), max(ingested_ms), count(*) FROM files").fetchone()
    jobs = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    span = max((last - first) / 1000.0, 0.001)
    print(json.dumps({"bench": "ingest", "files": files, "jobs": jobs,
                      "first_to_last_commit_s": round(span, 3),
                      "files_per_s": round(files / span),
                      "wall_incl_startup_and_archive_s": round(wall, 3),
                      "files_per_s_wall": round(files / wall),
                      "peak_rss_kib": rss}))
finally:
    s.cleanup()
