"""e2e migrate - a database left by the first schema (user_version 1, with the
attempts_open index), with a request in flight when that daemon died, opened by this
daemon: it migrates (user_version 2, no attempts_open), closes the open attempt as
"interrupted" (a read), numbers the next attempt after it, and finishes the job.
Runtime: about 2 s."""
import os
import sqlite3
import time

from harness import Checks, Emulator, Spool

c = Checks("migrate")
emu = Emulator("--seed", "10")
s = Spool(emu.url, config={"endpoint_limits": False})
try:
    s.drop_jobs("get.json", [{"op": "getWarehouse", "params": {"warehouseId": "wh_1"}}])
    c.eq(s.run_until_idle(timeout=60), 0, "first run")
    path = os.path.join(s.spool, "segspool.db")
    db = sqlite3.connect(path)
    c.eq(db.execute("PRAGMA user_version").fetchone()[0], 2, "a new database is at version 2")
    # what a version-1 daemon killed mid-request leaves: its index, a running job, an
    # attempt without an outcome
    with db:
        db.execute("CREATE INDEX attempts_open ON attempts(id) WHERE outcome IS NULL")
        db.execute("UPDATE jobs SET state = 1, result_json = NULL, finished_ms = NULL "
                   "WHERE id = 1")
        db.execute("INSERT INTO attempts (job_id, attempt_no, started_ms, request) "
                   "VALUES (1, 2, ?, 'GET /warehouses/wh_1')", (int(time.time() * 1000),))
        db.execute("PRAGMA user_version = 1")
    db.close()

    c.eq(s.run_until_idle(timeout=60), 0, "second run, on the version-1 database")
    db = sqlite3.connect(path)
    c.eq(db.execute("PRAGMA user_version").fetchone()[0], 2, "migrated to version 2")
    c.eq(db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'attempts_open'")
         .fetchone()[0], 0, "attempts_open dropped")
    c.eq(db.execute("PRAGMA integrity_check").fetchone()[0], "ok", "integrity check")
    db.close()
    sh = s.show(1)
    c.eq(sh["state"], "succeeded", "the interrupted job ran again and succeeded")
    c.eq([(a["attempt"], a["outcome"]) for a in sh["attempts"]],
         [(1, "ok"), (2, "interrupted"), (3, "ok")],
         "the open attempt closed as interrupted; the next one is number 3")
finally:
    s.cleanup()
    emu.stop()
c.finish()
