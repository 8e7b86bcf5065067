"""e2e migrate - a database left by the first schema (user_version 1, with the
attempts_open and jobs_state indexes), with a request in flight when that daemon died,
opened by this daemon: it migrates (user_version: one per sql/sqlite/NNN_*.sql file, the latest
schema; no attempts_open, jobs_running in place of jobs_state, pages_cursor added, files
with identities and without UNIQUE (name, hash), jobs.mutates added), finds the running
jobs through the new index, closes their open attempts by the old guess from the
operation's name, as the old rows have no mutates (NULL): "interrupted" for the read,
"unknown" for the create, numbers the next attempt after it, and finishes the read. The
creation row the old daemon wrote is shown once; a new job's creation, which has no row,
is shown from its jobs row, and new jobs record mutates from their method.
Runtime: about 2 s."""
import glob
import os
import sqlite3
import time

from harness import Checks, Emulator, Spool

c = Checks("migrate")
# the store's schema version is the number of migrations it carries (sql/sqlite/NNN_*.sql)
LATEST = len(glob.glob(os.path.join(os.environ["SEGSPOOL_SRC"], "sql", "sqlite", "[0-9]*.sql")))
emu = Emulator("--seed", "10")
s = Spool(emu.url, config={"endpoint_limits": False})
try:
    s.drop_jobs("get.json", [{"op": "getWarehouse", "params": {"warehouseId": "wh_1"}},
                             {"op": "createSource",
                              "params": {"slug": "migrate-1", "enabled": True,
                                         "metadataId": "IqDTy1TpoU"}}])
    c.eq(s.run_until_idle(timeout=60), 0, "first run")
    path = os.path.join(s.spool, "segspool.db")
    db = sqlite3.connect(path)
    c.eq(db.execute("PRAGMA user_version").fetchone()[0], LATEST,
         f"a new database is at version {LATEST}")
    c.eq(db.execute("SELECT id, mutates FROM jobs ORDER BY id").fetchall(), [(1, 0), (2, 1)],
         "a new job records whether it mutates: the read 0, the create 1")
    # what a version-1 daemon killed mid-request leaves: its index, a running job, an
    # attempt without an outcome
    with db:
        db.execute("CREATE INDEX attempts_open ON attempts(id) WHERE outcome IS NULL")
        db.execute("DROP INDEX jobs_running")
        db.execute("CREATE INDEX jobs_state ON jobs(state, id)")
        # nor what 010_results.sql adds: its table and columns (the files table's go
        # with it below; its trigger, 012_remaining_counted.sql drops)
        db.execute("DROP TABLE file_dups")
        db.execute("ALTER TABLE jobs DROP COLUMN file_id")
        db.execute("ALTER TABLE jobs DROP COLUMN line")
        # version 1's files table: unique (name, hash), no identity
        db.execute("DROP INDEX jobs_output")
        db.execute("CREATE TABLE files_v1 (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                   "hash TEXT NOT NULL, ingested_ms INTEGER NOT NULL, njobs INTEGER NOT NULL "
                   "DEFAULT 0, nduplicates INTEGER NOT NULL DEFAULT 0, UNIQUE (name, hash))")
        db.execute("INSERT INTO files_v1 SELECT id, name, hash, ingested_ms, njobs, "
                   "nduplicates FROM files")
        db.execute("DROP TABLE files")
        db.execute("ALTER TABLE files_v1 RENAME TO files")
        # nor the column a later migration adds
        db.execute("ALTER TABLE attempts DROP COLUMN body")
        db.execute("ALTER TABLE jobs DROP COLUMN mutates")
        db.execute("ALTER TABLE jobs DROP COLUMN waiting_for")
        db.execute("DROP TABLE deps")  # 011_deps.sql's
        db.execute("ALTER TABLE jobs DROP COLUMN deps_left")
        db.execute("ALTER TABLE jobs DROP COLUMN dep_failed")
        db.execute("ALTER TABLE attempts DROP COLUMN resolved")
        # a job an old daemon parked for want of a token, due only in a day: the start
        # wakes token waiters, which it can tell only by the wait the migration derives
        db.execute("INSERT INTO jobs (state, op_id, spec_json, workspace, source_file, "
                   "priority, not_before_ms, next_run_ms, max_attempts, created_ms, "
                   "updated_ms, paginated) SELECT 2, op_id, spec_json, workspace, "
                   "source_file, priority, not_before_ms, ?, max_attempts, created_ms, "
                   "updated_ms, paginated FROM jobs WHERE id = 1",
                   (int(time.time() * 1000) + 86400000,))
        db.execute("INSERT INTO transitions (job_id, from_state, to_state, at_ms, reason) "
                   "VALUES (3, 1, 2, 0, 'waiting for a usable API token for workspace "
                   "default: no token (fix it, then send SIGHUP)')")
        db.execute("UPDATE jobs SET state = 1, result_json = NULL, finished_ms = NULL "
                   "WHERE id IN (1, 2)")
        db.execute("INSERT INTO attempts (job_id, attempt_no, started_ms, request) "
                   "VALUES (1, 2, ?, 'GET /warehouses/wh_1')", (int(time.time() * 1000),))
        db.execute("INSERT INTO attempts (job_id, attempt_no, started_ms, request) "
                   "VALUES (2, 2, ?, 'POST /sources')", (int(time.time() * 1000),))
        # a version-1 daemon kept each job's creation as a transitions row too
        db.execute("INSERT INTO transitions (job_id, from_state, to_state, at_ms, reason) "
                   "SELECT id, NULL, 0, created_ms, 'ingested from get.json (v1 row)' "
                   "FROM jobs WHERE id = 1")
        db.execute("PRAGMA user_version = 1")
    db.close()

    c.eq(s.run_until_idle(timeout=60), 0, "second run, on the version-1 database")
    db = sqlite3.connect(path)
    c.eq(db.execute("PRAGMA user_version").fetchone()[0], LATEST, f"migrated to version {LATEST}")
    c.eq(db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'pages_cursor'")
         .fetchone()[0], 1, "pages_cursor created")
    c.eq(db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0], 0,
         "no trigger: 010_results.sql's, which 012_remaining_counted.sql drops")
    c.eq([r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'jobs' "
                                   "AND name LIKE 'sqlite_autoindex%'")], [],
         "keys: no index entry for every job (013_key_index.sql)")
    c.eq(db.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs_key'").fetchone()[0],
         "CREATE UNIQUE INDEX jobs_key ON jobs(key) WHERE key IS NOT NULL",
         "keys: unique among the jobs that have one")
    c.eq(db.execute("PRAGMA foreign_key_check").fetchall(), [],
         "the rebuilt jobs table: every row that refers to a job still finds it")
    try:
        with db:
            for _ in range(2):
                db.execute("INSERT INTO jobs (state, op_id, spec_json, key, next_run_ms, "
                           "created_ms, updated_ms) VALUES (0, 'x', '{}', 'dup-key', 0, 0, 0)")
        c.check(False, "a key given twice is refused by the schema")
    except sqlite3.IntegrityError:
        c.check(True, "a key given twice is refused by the schema")
    c.check("body" in [r[1] for r in db.execute("PRAGMA table_info(attempts)")],
            "attempts have a body column")
    c.check({"deps_left", "dep_failed"} <= {r[1] for r in db.execute("PRAGMA table_info(jobs)")}
            and db.execute("SELECT count(*) FROM deps").fetchone()[0] == 0,
            "jobs count their dependencies; the deps table is there, empty")
    c.eq(db.execute("SELECT id, mutates FROM jobs WHERE id < 3 ORDER BY id").fetchall(),
         [(1, None), (2, None)], "jobs have a mutates column, NULL for the old rows")
    c.eq(db.execute("SELECT state, waiting_for FROM jobs WHERE id = 3").fetchone(), (3, 3),
         "the old token waiter got its wait from its reason, was woken at the start and ran")
    c.eq(db.execute("SELECT name, dev IS NULL FROM files").fetchall(), [("get.json", 1)],
         "the version-1 files row kept, without an identity")
    c.eq(db.execute("SELECT count(*) FROM sqlite_master WHERE name IN ('files_name_hash', "
                    "'jobs_output', 'sqlite_autoindex_files_1')").fetchone()[0], 2,
         "files indexed by (name, hash), not unique; unfinished outputs indexed")
    c.eq(db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'attempts_open'")
         .fetchone()[0], 0, "attempts_open dropped")
    c.eq([r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE name IN "
                                   "('jobs_state', 'jobs_running')")],
         ["jobs_running"], "jobs_state replaced by jobs_running")
    c.eq(db.execute("PRAGMA integrity_check").fetchone()[0], "ok", "integrity check")
    db.close()
    sh = s.show(1)
    c.eq(sh["state"], "succeeded", "the interrupted job ran again and succeeded")
    c.eq([(a["attempt"], a["outcome"]) for a in sh["attempts"]],
         [(1, "ok"), (2, "interrupted"), (3, "ok")],
         "the open attempt closed as interrupted; the next one is number 3")
    c.eq([(a["attempt"], a["outcome"]) for a in s.show(2)["attempts"]][:2],
         [(1, "ok"), (2, "unknown")],
         "the create's open attempt, with no mutates recorded, closed as unknown by its name")
    created = [t for t in sh["transitions"] if t["from"] is None]
    c.eq([t["reason"] for t in created], ["ingested from get.json (v1 row)"],
         "an old database's creation row is shown once, not doubled by the jobs row's")
    c.eq(sh["transitions"][0]["reason"], "ingested from get.json (v1 row)",
         "the creation comes first")
    s.drop_jobs("get2.json", [{"op": "getWarehouse", "params": {"warehouseId": "wh_1"}}])
    c.eq(s.run_until_idle(timeout=60), 0, "third run, a new job")
    sh = s.show(4)
    c.eq([(t["from"], t["to"], t["reason"]) for t in sh["transitions"]][0],
         (None, "queued", "ingested from get2.json"),
         "a new job's creation comes from its jobs row")
finally:
    s.cleanup()
    emu.stop()
c.finish()
