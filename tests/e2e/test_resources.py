"""e2e resources - the daemon when the machine's resources fail it:

- the output directory on a full filesystem (a 64 KiB tmpfs as output_dir): a job whose
  output does not fit ends failed with a reason naming "No space left on device" and
  leaves no partial file; once there is room, `retry` finishes it (a paginated job from
  its stored pages, without fetching them again; a mutation without sending it again);
- a read-only output directory (the tmpfs remounted ro): the job fails with a clear reason,
  the daemon runs on;
- the spool itself on a full filesystem, when it fills under a running daemon and when the
  daemon starts on it: incoming/ files stay put, the daemon says the disk is full, and
  nothing is lost once there is room again;
- the database locked by another process (BEGIN EXCLUSIVE) at start and during a run: a
  clear error, nothing lost once released;
- the database deleted between runs (the daemon starts fresh; archived files are not
  ingested again) and corrupted between runs (refuses to start, exit 1, says what to do,
  incoming/ untouched; the advice it gives holds).

Mounting needs root (CAP_SYS_ADMIN): without it those parts are skipped and, if the rest
passes, the test exits 77. Runtime: about 25 s."""
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time

from harness import (Checks, Emulator, Spool, fill_fs, listdir, mount_tmpfs, remount_tmpfs,
                     umount_tmpfs, wait_for)

c = Checks("resources")
JS = "IqDTy1TpoU"
mount_problem = None


def digest_dir(path):
    """name -> sha256 of every file in path (not recursive)."""
    out = {}
    for n in listdir(path):
        p = os.path.join(path, n)
        if os.path.isfile(p):
            out[n] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def last_error_line(s):
    lines = [l for l in s.log_text().splitlines() if " error: " in l]
    return lines[-1] if lines else ""


def error_text(show):
    return json.dumps(show.get("error"))


def drop_later(s, names_jobs):
    """writes the files into tmp/ now (while there is room); returns a function that
    renames them into incoming/ (no space needed)."""
    tmp = os.path.join(s.spool, "tmp")
    os.makedirs(tmp, exist_ok=True)
    for name, jobs in names_jobs:
        with open(os.path.join(tmp, name), "w") as f:
            json.dump(jobs, f)

    def go():
        for name, _ in names_jobs:
            os.rename(os.path.join(tmp, name), os.path.join(s.spool, "incoming", name))
    return go


def wh_jobs(tag, n):
    return [{"op": "getWarehouse", "params": {"warehouseId": f"wh_{1 + k % 3}"},
             "output": f"{tag}/{k}.json"} for k in range(n)]


# --- the output directory on a full filesystem, then read-only ----------------------------

def full_output_dir(emu):
    global mount_problem
    try:
        mnt = mount_tmpfs("64k")
    except OSError as e:
        mount_problem = str(e)
        c.skip("output directory on a full filesystem", mount_problem)
        c.skip("read-only output directory", mount_problem)
        return
    s = Spool(emu.url, config={"output_dir": mnt})
    try:
        # a paginated export far larger than 64 KiB, and a small one that fits
        s.drop_jobs("big.json", [{"op": "getSourcesCatalog", "output": "big.jsonl",
                                  "paginate": {"max_pages": 1000, "count": 200}},
                                 {"op": "listWarehouses", "output": "small.jsonl"}])
        c.eq(s.run_until_idle(timeout=60), 0, "full output fs: the daemon finishes its run")
        big, small = s.show(1), s.show(2)
        c.eq(big["state"], "failed", "an export that does not fit ends failed")
        c.check("No space left on device" in error_text(big),
                f"its reason names \"No space left on device\": {error_text(big)}")
        c.eq(big["pages_done"], 25, "its pages are all recorded (5,000 items, 200 a page)")
        c.eq([n for n in listdir(mnt) if "big" in n], [],
             "no partial big.jsonl (nor its .part) is left in the output directory")
        c.eq(small["state"], "succeeded", "a small export beside it succeeds")
        c.eq(len(open(os.path.join(mnt, "small.jsonl")).read().splitlines()), 3,
             "the small export is whole")
        # the disk full to the last byte: a single response's output cannot be written
        filler = fill_fs(mnt)
        s.drop_jobs("one.json", [
            {"op": "getWarehouse", "params": {"warehouseId": "wh_1"}, "output": "one.json"},
            {"op": "createSource", "output": "created.json", "params": {
                "slug": "full-disk", "enabled": True, "metadataId": JS}}])
        c.eq(s.run_until_idle(timeout=60), 0, "full output fs: the second run finishes")
        one, created = s.show(3), s.show(4)
        c.eq(one["state"], "failed", "a single response whose output does not fit ends failed")
        c.check("No space left on device" in error_text(one),
                f"its reason names \"No space left on device\": {error_text(one)}")
        c.eq(created["state"], "failed", "a mutation whose output does not fit ends failed")
        c.check("No space left on device" in error_text(created),
                f"the mutation's reason names the full disk: {error_text(created)}")
        c.eq(sorted(n for n in listdir(mnt) if n not in ("small.jsonl", ".filler", "results")),
             [], "nothing partial from them either")
        # each file's results file (issue 13) is whole or not there: never a .part
        for n in listdir(os.path.join(mnt, "results")):
            text = open(os.path.join(mnt, "results", n)).read()
            c.check(not n.startswith(".") and text.endswith("\n") and
                    all(json.loads(l) for l in text.splitlines()),
                    f"results file {n} is whole: {text[-200:]!r}")
        # room again: retry finishes them
        os.unlink(filler)
        remount_tmpfs(mnt, "size=16m")
        before = emu.stats()
        s.cli("retry", "1", "3", "4", check=True)
        c.eq(s.run_until_idle(timeout=60), 0, "after freeing space the retry run finishes")
        after = emu.stats()
        for jid, name in ((1, "big.jsonl"), (3, "one.json"), (4, "created.json")):
            c.eq(s.show(jid)["state"], "succeeded", f"job {jid} succeeds once there is room")
        lines = open(os.path.join(mnt, "big.jsonl")).read().splitlines()
        c.eq(len(lines), 5000, "the retried export is whole")
        c.eq(len({json.loads(l)["id"] for l in lines}), 5000, "with every entry once")
        c.eq(after["by_operation"].get("getSourcesCatalog", 0),
             before["by_operation"].get("getSourcesCatalog", 0),
             "the export's output is rebuilt from its stored pages, none fetched again")
        c.eq(after["mutations"].get("createSource slug=full-disk"), 1,
             "the retried createSource, whose success was recorded, is not sent again")
        try:
            doc = json.load(open(os.path.join(mnt, "created.json")))
            c.eq(doc["source"]["slug"], "full-disk", "the mutation's output is written")
        except (OSError, ValueError, KeyError) as e:
            c.check(False, f"the mutation's output is written: {e}")

        # read-only output directory
        remount_tmpfs(mnt, "ro")
        s.drop_jobs("ro.json", [
            {"op": "getWarehouse", "params": {"warehouseId": "wh_2"}, "output": "ro.json"},
            {"op": "listWarehouses", "output": "sub/ro.jsonl"}])
        c.eq(s.run_until_idle(timeout=60), 0, "read-only output dir: the daemon runs on")
        for jid in (5, 6):
            sh = s.show(jid)
            c.eq(sh["state"], "failed", f"read-only output dir: job {jid} ends failed")
            c.check("Read-only file system" in error_text(sh),
                    f"read-only output dir: job {jid}'s reason says so: {error_text(sh)}")
        c.check(not os.path.exists(os.path.join(mnt, "ro.json")) and
                not os.path.exists(os.path.join(mnt, "sub")), "nothing written")
    finally:
        s.cleanup()
        umount_tmpfs(mnt)


# --- the spool on a full filesystem ------------------------------------------------

def full_spool(emu):
    if mount_problem:
        c.skip("spool on a full filesystem", mount_problem)
        return
    mnt = mount_tmpfs("2m")
    s = Spool(emu.url, root=mnt)
    try:
        s.drop_jobs("first.json", wh_jobs("first", 1))
        c.eq(s.run_until_idle(timeout=60), 0, "full spool: a first run with room")
        # 1. the filesystem fills under a running daemon
        s.start()
        files1 = [(f"w1-{i:02d}.json", wh_jobs(f"w1-{i}", 5)) for i in range(20)]
        go = drop_later(s, files1)
        filler = fill_fs(mnt)
        go()
        incoming = os.path.join(s.spool, "incoming")
        want1 = digest_dir(incoming)
        try:
            rc = s.daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            rc = None  # still running: acceptable if it says what is wrong
        err = last_error_line(s)
        c.check(re.search(r"full|No space left", err),
                f"full spool (filled while running): the daemon says the disk is full: {err!r}")
        c.check(rc in (None, 1), f"full spool: it keeps running or exits 1 (rc {rc})")
        c.eq(digest_dir(incoming), want1, "full spool: every incoming/ file stays, unchanged")
        c.eq(listdir(os.path.join(s.spool, "archive")), ["first.json"],
             "full spool: nothing was moved as if ingested")
        s.stop()
        os.unlink(filler)
        c.eq(s.run_until_idle(timeout=60), 0, "full spool: with room again the run finishes")
        c.eq(listdir(incoming), [], "full spool: incoming/ is empty after it")
        # 2. the daemon starts on a full filesystem after a clean stop (no CLI use since:
        # a reader leaves -wal/-shm behind, a clean stop removes them)
        files2 = [(f"w2-{i:02d}.json", wh_jobs(f"w2-{i}", 5)) for i in range(10)]
        go = drop_later(s, files2)
        filler = fill_fs(mnt)
        go()
        want2 = digest_dir(incoming)
        p = s.start(ready=False)
        try:
            rc = p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            rc = None
        err = last_error_line(s)
        c.check(re.search(r"full|No space left", err),
                f"full spool (at start): the daemon says the disk is full: {err!r}")
        c.check(rc in (None, 1), f"full spool at start: it keeps running or exits 1 (rc {rc})")
        c.eq(digest_dir(incoming), want2, "full spool at start: incoming/ untouched")
        s.stop()
        os.unlink(filler)
        c.eq(s.run_until_idle(timeout=60), 0, "full spool: the run after freeing finishes")
        c.eq(listdir(incoming), [], "full spool: incoming/ is empty")
        jobs = s.jobs()
        c.eq(len(jobs), 151, "full spool: all 151 jobs stored, none lost, none twice")
        c.eq({j["state"] for j in jobs}, {"succeeded"}, "full spool: and they all succeeded")
    finally:
        s.cleanup()
        umount_tmpfs(mnt)


# --- the database locked by another process -----------------------------------------------

def locked_db(emu):
    s = Spool(emu.url)
    db = None
    try:
        s.drop_jobs("first.json", wh_jobs("first", 1))
        c.eq(s.run_until_idle(timeout=60), 0, "locked db: a first run")
        # a timeout: BEGIN EXCLUSIVE waits while the daemon finishes a transaction of its own
        db = sqlite3.connect(os.path.join(s.spool, "segspool.db"), isolation_level=None,
                             timeout=20)
        # 1. locked when the daemon starts
        db.execute("BEGIN EXCLUSIVE")
        s.drop_jobs("a.json", wh_jobs("a", 3))
        incoming = os.path.join(s.spool, "incoming")
        want = digest_dir(incoming)
        t = time.monotonic()
        p = s.start(ready=False)
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rc = None
        took = time.monotonic() - t
        err = last_error_line(s)
        c.check(rc in (None, 1), f"locked at start: keeps trying or exits 1 (rc {rc})")
        c.check("locked" in err, f"locked at start: the message says the database is locked: "
                                 f"{err!r}")
        if rc is not None:
            c.check(took >= 1.0, f"locked at start: it waited for the lock first ({took:.1f} s)")
        c.eq(digest_dir(incoming), want, "locked at start: incoming/ untouched")
        s.stop()
        db.execute("ROLLBACK")
        # 2. locked during a run
        s.start()
        c.check(s.daemon.poll() is None, "locked db: the daemon starts once it is released")
        db.execute("BEGIN EXCLUSIVE")
        s.drop_jobs("b.json", wh_jobs("b", 3))
        wait_for(lambda: "locked by another process" in s.log_text(), timeout=30,
                 what="the daemon says the database is locked")
        time.sleep(1.0)
        c.check(s.daemon.poll() is None, "locked during a run: the daemon waits, it does not die")
        c.check(os.path.exists(os.path.join(incoming, "b.json")),
                "locked during a run: the file stays in incoming/ until it is recorded")
        db.execute("ROLLBACK")
        db.close()
        db = None
        # it catches up on its own once the lock is gone
        wait_for(lambda: not listdir(incoming), timeout=30, what="incoming/ empty")
        c.check("free again" in s.log_text(), "locked during a run: it says when it goes on")
        s.stop()
        c.eq(s.run_until_idle(timeout=60), 0, "locked db: once released the run finishes")
        jobs = s.jobs()
        c.eq(len(jobs), 7, "locked db: every job stored once")
        c.eq({j["state"] for j in jobs}, {"succeeded"}, "locked db: and they succeeded")
        c.eq(listdir(os.path.join(s.spool, "archive")), ["a.json", "b.json", "first.json"],
             "locked db: every file archived")
    finally:
        if db:
            db.close()
        s.cleanup()


# --- the database deleted, or corrupted, between runs ---------------------------------

def deleted_and_corrupt_db(emu):
    s = Spool(emu.url)
    try:
        s.drop_jobs("first.json", [{"op": "listWarehouses", "key": "nightly"}] +
                    wh_jobs("first", 2))
        c.eq(s.run_until_idle(timeout=60), 0, "deleted db: a first run")
        first_out = s.show(1)["output"]
        first_digest = digest_dir(os.path.dirname(s.out_path(first_out)))
        dbp = os.path.join(s.spool, "segspool.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(dbp + suffix):
                os.unlink(dbp + suffix)
        # job 1 again in the new database, with no output named: the default name is taken
        s.drop_jobs("second.json", [{"op": "listWarehouses"}] + wh_jobs("second", 2))
        c.eq(s.run_until_idle(timeout=60), 0, "deleted db: the daemon starts fresh")
        jobs = s.jobs()
        c.eq(len(jobs), 3, "deleted db: only the new file's jobs; archived files are not "
                           "ingested again")
        again = s.show(1)
        c.eq((first_out, again["state"], again["output"]),
             ("listWarehouses-1.jsonl", "succeeded", "listWarehouses-1-2.jsonl"),
             "deleted db: the new job 1 writes beside the old job 1's output, not over it")
        c.eq(digest_dir(os.path.dirname(s.out_path(first_out))).get(first_out),
             first_digest[first_out], "deleted db: the earlier output is unchanged")
        c.eq(listdir(os.path.join(s.spool, "archive")), ["first.json", "second.json"],
             "deleted db: archive/ keeps both files")
        # corrupted: the header overwritten with garbage
        with open(dbp, "r+b") as f:
            f.write(b"\xde\xad\xbe\xef GARBAGE " * 8)
        corrupt = open(dbp, "rb").read()
        s.drop_jobs("third.json", wh_jobs("third", 2))
        incoming = os.path.join(s.spool, "incoming")
        want = digest_dir(incoming)
        p = s.start(ready=False)
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = None
        err = last_error_line(s)
        c.eq(rc, 1, "corrupt db: the daemon refuses to start, exit code 1")
        c.check(re.search(r"corrupt|not a (segspool )?database", err),
                f"corrupt db: the message says the database is damaged: {err!r}")
        c.check(re.search(r"move it aside|restore|remove|delete|rename", err),
                f"corrupt db: the message says what to do: {err!r}")
        c.eq(digest_dir(incoming), want, "corrupt db: incoming/ untouched")
        c.check(open(dbp, "rb").read() == corrupt, "corrupt db: the damaged file is left as is")
        r = s.cli("list", "--json")
        c.check(r.returncode != 0 and b"corrupt" in r.stderr,
                f"corrupt db: the CLI says so too: {r.returncode} {r.stderr[:200]!r}")
        # follow the advice: move it aside and start again
        os.rename(dbp, dbp + ".broken")
        for suffix in ("-wal", "-shm"):
            if os.path.exists(dbp + suffix):
                os.rename(dbp + suffix, dbp + ".broken" + suffix)
        c.eq(s.run_until_idle(timeout=60), 0, "corrupt db moved aside: the daemon starts")
        jobs = s.jobs()
        srcs = set()
        for j in jobs:
            srcs.add(s.show(j["id"])["source_file"])
        c.check("third.json" in srcs and listdir(incoming) == [],
                "corrupt db moved aside: incoming/ is ingested")
        if "re-ingested from archive" in err:
            c.check({"first.json", "second.json"} <= srcs,
                    f"corrupt db: as the message promises, archived jobs are ingested again "
                    f"(store has jobs from {sorted(srcs)})")
    finally:
        s.cleanup()


emu = Emulator("--catalog-size", "5000")
try:
    c.run_parts((full_output_dir, full_spool, locked_db, deleted_and_corrupt_db), emu)
finally:
    emu.stop()
    shutil.rmtree(emu.dir, ignore_errors=True)
if mount_problem and not c.failed:
    print(f"{c.passed} passed, {c.failed} failed, {len(c.skipped)} skipped", flush=True)
    print(f"skipped: mounting a tmpfs is not possible here ({mount_problem})", flush=True)
    sys.exit(77)
c.finish()
