"""e2e crash_ingest - kill -9 the daemon at random moments while it ingests 5,000 files;
after a final clean run every file's jobs are in the store exactly once and incoming/ is
empty (files committed before a kill are recognised by name + content hash)."""
import json
import os
import random
import signal
import time

from harness import Checks, Spool, listdir, wait_for

c = Checks("crash_ingest")
N = int(os.environ.get("CRASH_FILES", "5000"))
FUTURE = "2099-01-01T00:00:00Z"
rng = random.Random(int(os.environ.get("CRASH_SEED", "20261126")))

s = Spool("http://127.0.0.1:9", config={"claim_batch": 200})
try:
    incoming = os.path.join(s.spool, "incoming")
    for i in range(N):
        # every file distinct; some hold several jobs, so a file is all-or-nothing. No
        # idempotency keys: a file ingested twice would show as extra jobs.
        jobs = [{"op": "listSources", "not_before": FUTURE, "comment": f"f{i}-j{k}"}
                for k in range(1 + i % 3)]
        s.drop_jobs(f"job-{i:05d}.json", jobs)
    want_jobs = sum(1 + i % 3 for i in range(N))
    kills = 0
    for round_no in range(12):
        if not listdir(incoming):
            break
        s.start(ready=False)
        time.sleep(rng.uniform(0.01, 0.25))
        s.daemon.send_signal(signal.SIGKILL)
        s.daemon.wait()
        kills += 1
    print(f"killed the daemon {kills} times mid-ingest; "
          f"{len(listdir(incoming))} files still in incoming/", flush=True)
    c.check(kills >= 3, "the daemon was killed at least 3 times while files remained")
    # a clean run finishes the intake
    s.start()
    wait_for(lambda: not listdir(incoming), timeout=120, what="incoming/ empty")
    c.eq(s.stop(), 0, "clean stop")
    jobs = s.jobs()
    c.eq(len(jobs), want_jobs, "every job of every file is in the store, none twice")
    c.eq(listdir(incoming), [], "incoming/ is empty")
    c.eq(len(listdir(os.path.join(s.spool, "archive"))), N, "every file archived once")
    c.eq(listdir(os.path.join(s.spool, "rejected")), [], "nothing rejected")
finally:
    s.cleanup()
c.finish()
