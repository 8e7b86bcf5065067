"""e2e ownership - the store has one owner, and the daemon never loses an answer it has:

- two spools whose config names the same db, and a spool whose .lock was removed as
  "stale" while its daemon runs: the second daemon is refused before it touches the store
  (no requeue of the first one's running jobs), with the first one's pid and spool;
- the database locked by another process (BEGIN EXCLUSIVE) while creates are in flight:
  the daemon holds the answers, sends nothing new, says it is waiting, and once the lock
  is released records every answer; the emulator saw each create exactly once;
- a store write that fails inside the loop's transaction (a trigger raises): the commit
  refuses, loudly, the daemon stops non-zero instead of --until-idle running forever, and
  a run after the fault is gone finishes every job;
- outputs that collide in one batch (an explicit name equal to another job's default
  name): the daemon runs on, each job's answer is kept, no output replaces another.
Runtime: about 20 s."""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time

from harness import BIN, Checks, Emulator, Spool, listdir, wait_for

c = Checks("ownership")
JS = "IqDTy1TpoU"


def create(slug, **kw):
    j = {"op": "createSource", "params": {"slug": slug, "enabled": True, "metadataId": JS},
         "output": False}
    j.update(kw)
    return j


def run_args(s, *args):
    return [BIN, "--config", s.config_path] + list(args)


def slug_counts(emu):
    counts = {}
    for src in emu.state().get("sources", []):
        counts[src["slug"]] = counts.get(src["slug"], 0) + 1
    return counts


def one_owner(emu):
    a = Spool(emu.url)
    db = os.path.join(a.spool, "segspool.db")
    b = Spool(emu.url, config={"db": db})
    try:
        a.drop_jobs("a.json", [create(f"own-{i}") for i in range(4)])
        a.start()
        wait_for(lambda: os.path.exists(db + ".lock"), timeout=10, what="the store's lock")
        r = subprocess.run(run_args(b, "run", "--until-idle"), capture_output=True, env=b.env,
                           timeout=60)
        err = r.stderr.decode(errors="replace")
        c.eq(r.returncode, 1, "a second spool on the same db: refused")
        c.check(f"pid={a.daemon.pid}" in err and a.spool in err,
                f"the refusal names the first daemon's pid and spool: {err.strip()[-300:]}")
        # the .lock of a spool removed as "stale": the store still has its owner
        os.unlink(os.path.join(a.spool, ".lock"))
        r = subprocess.run(run_args(a, "run", "--until-idle"), capture_output=True, env=a.env,
                           timeout=60)
        err = r.stderr.decode(errors="replace")
        c.eq(r.returncode, 1, "the same spool after its .lock was removed: refused")
        c.check(f"pid={a.daemon.pid}" in err, f"and says who owns the store: {err.strip()[-300:]}")
        c.check("recovered" not in err, "the refused daemon requeued nothing")
        c.eq(a.stop(), 0, "the first daemon is unharmed and stops cleanly")
        c.eq(a.run_until_idle(timeout=60), 0, "its jobs finish")
        c.eq(a.states(), {"succeeded": 4}, "every create succeeded")
        c.eq(set(slug_counts(emu).values()), {1}, "each create was applied once")
    finally:
        a.cleanup()
        b.cleanup()


def busy_store(_shared_emu):
    emu = Emulator("--delay-ms", "2500")  # its own: answers held 2.5 s
    s = Spool(emu.url, config={"http": {"max_in_flight": 8}})
    db_path = os.path.join(s.spool, "segspool.db")
    holder = None
    try:
        s.drop_jobs("warm.json", [{"op": "getWarehouse", "params": {"warehouseId": "wh_1"}}])
        c.eq(s.run_until_idle(timeout=60), 0, "busy store: a first run makes the store")
        s.start()
        s.drop_jobs("creates.json", [create(f"busy-{i:02d}") for i in range(8)])
        # the attempts are committed before the requests leave: then take the lock, while
        # the emulator sits on the answers for 2.5 s
        wait_for(lambda: s.states().get("running", 0) >= 8, timeout=20, what="creates in flight")
        holder = sqlite3.connect(db_path, isolation_level=None, timeout=20)
        holder.execute("BEGIN EXCLUSIVE")
        wait_for(lambda: "locked by another process" in s.log_text(), timeout=20,
                 what="the daemon says the store is locked")
        time.sleep(3.5)  # every answer arrives while the lock is held
        c.check(s.daemon.poll() is None, "busy store: the daemon waits instead of dying")
        sent_while_locked = emu.stats()["requests"]
        time.sleep(1.0)
        c.eq(emu.stats()["requests"], sent_while_locked, "busy store: nothing new is sent")
        holder.execute("ROLLBACK")
        holder.close()
        holder = None
        wait_for(lambda: s.states() == {"succeeded": 9}, timeout=30, what="every job recorded")
        m = re.search(r"free again after \d+ ms; recording (\d+) held answer", s.log_text())
        c.check(m and int(m.group(1)) >= 1,
                f"busy store: it says when it goes on, with the answers it held: {m and m.group(0)}")
        c.eq(s.stop(), 0, "busy store: the daemon stops cleanly")
        counts = slug_counts(emu)
        c.eq(sorted(counts), [f"busy-{i:02d}" for i in range(8)], "every create arrived")
        c.eq(set(counts.values()), {1}, "and none was sent twice")
    finally:
        if holder:
            holder.close()
        s.cleanup()
        emu.stop()
        shutil.rmtree(emu.dir, ignore_errors=True)


def failed_write(emu):
    s = Spool(emu.url)
    db_path = os.path.join(s.spool, "segspool.db")
    try:
        s.drop_jobs("warm.json", [{"op": "getWarehouse", "params": {"warehouseId": "wh_1"}}])
        c.eq(s.run_until_idle(timeout=60), 0, "failed write: a first run makes the store")
        db = sqlite3.connect(db_path, isolation_level=None)
        # every success of a job from here on fails to be written
        db.execute("CREATE TRIGGER fault BEFORE UPDATE OF state ON jobs WHEN NEW.state = 3 "
                   "BEGIN SELECT RAISE(ABORT, 'injected fault'); END")
        db.close()
        s.drop_jobs("more.json", [{"op": "getWarehouse", "params": {"warehouseId": "wh_2"}},
                                  {"op": "getWarehouse", "params": {"warehouseId": "wh_3"}}])
        t = time.monotonic()
        rc = s.run_until_idle(timeout=60)
        log = s.log_text()
        c.eq(rc, 1, "failed write: the daemon stops non-zero")
        c.check(time.monotonic() - t < 30, "failed write: and promptly")
        c.check("refusing to commit" in log and "injected fault" in log,
                f"failed write: it says the commit was refused and why: {log[-500:]}")
        st = s.states()
        c.eq(st.get("succeeded"), 1, f"failed write: no success was half-recorded: {st}")
        c.eq(sum(st.values()), 3, "failed write: the new jobs are in the store, not lost")
        db = sqlite3.connect(db_path, isolation_level=None)
        db.execute("DROP TRIGGER fault")
        db.close()
        c.eq(s.run_until_idle(timeout=60), 0, "failed write: once the fault is gone, a run ends")
        c.eq(s.states(), {"succeeded": 3}, "failed write: every job succeeded, none lost")
    finally:
        s.cleanup()


def colliding_outputs(emu):
    s = Spool(emu.url)
    try:
        # an explicit output with the form of a default name would replace that job's file
        s.drop_jobs("taken.json", [{"op": "getWarehouse", "params": {"warehouseId": "wh_1"},
                                     "output": "getWarehouse-2.json"}])
        r = s.cli("validate", os.path.join(s.spool, "incoming", "taken.json"))
        c.eq(r.returncode, 1, "an explicit output named like a default output: invalid")
        c.check(b"default output name" in r.stderr, f"and says why: {r.stderr[-300:]}")
        # a default name is never given twice in one batch, nor over a file on disk: 20
        # single-job files, ingested and committed together (the jobs of one file of
        # several write no output file each but one results file, issue 13)
        for i in range(20):
            s.drop_jobs(f"defaults-{i:02d}.json",
                        [{"op": "getWarehouse", "params": {"warehouseId": f"wh_{1 + i % 3}"}}])
        rc = s.run_until_idle(timeout=60)
        c.eq(rc, 0, "colliding outputs: the daemon runs to the end")
        c.check("taken.json" in listdir(os.path.join(s.spool, "rejected")),
                "the file with the taken name is rejected, with its reason")
        shows = [s.show(j["id"]) for j in s.jobs()]
        c.eq({sh["state"] for sh in shows}, {"succeeded"}, "every job of the batch succeeded")
        outs = [sh.get("output") for sh in shows]
        c.eq(len(set(outs)), 20, "each job has an output of its own")
        for sh in shows:
            data = json.load(open(s.out_path(sh["output"])))
            c.eq(data.get("warehouse", {}).get("id"), sh["spec"]["params"]["warehouseId"],
                 f"output {sh['output']} holds job {sh['id']}'s own answer")
    finally:
        s.cleanup()


def main():
    emu = Emulator()
    try:
        c.run_parts((one_owner, busy_store, failed_write, colliding_outputs), emu)
    finally:
        emu.stop()
        shutil.rmtree(emu.dir, ignore_errors=True)
    c.finish()


if __name__ == "__main__":
    main()
