"""e2e spool_faults - what happens around the daemon rather than through it (issue 10):
the same file dropped again (as a nightly cron does) runs again, keyed jobs still
deduplicated, while the very file whose jobs were committed and that never left incoming/
is moved without running twice; incoming/ and the output directory removed and made again
while the daemon runs; the database or its WAL unlinked under it; outputs that clash
within a file or with an unfinished job's; an output name too long for its temp file.
Runtime: about 15 s."""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time

from harness import Checks, Emulator, Spool, listdir, rewrite_config, wait_for

c = Checks("spool_faults")
FUTURE = "2099-01-01T00:00:00Z"  # jobs that stay queued: their outputs stay taken


def wh(tag, **kw):
    j = {"op": "getWarehouse", "params": {"warehouseId": "wh_1"}, "comment": tag}
    j.update(kw)
    return j


def problems(s, name):
    path = os.path.join(s.spool, "rejected", name + ".error.json")
    if not os.path.exists(path):
        return None
    return json.load(open(path))["problems"]


def redrop(emu):
    s = Spool(emu.url)
    try:
        jobs = [wh("plain"), wh("keyed", key="nightly-k")]
        s.drop_jobs("nightly.json", jobs)
        c.eq(s.run_until_idle(timeout=60), 0, "redrop: first night")
        c.eq(len(s.jobs()), 2, "redrop: two jobs the first night")
        s.drop_jobs("nightly.json", jobs)  # the same name and bytes, tmp/ -> incoming/
        c.eq(s.run_until_idle(timeout=60), 0, "redrop: second night")
        c.eq(len(s.jobs("succeeded")), 3, "redrop: the unkeyed job ran again; the keyed "
                                          "one did not")
        log = s.log_text()
        c.check('has key "nightly-k", already recorded as job 2' in log,
                "redrop: the keyed duplicate is logged as before")
        c.check("recorded before a stop" not in log,
                "redrop: a new file is not taken for one left by a crash")
        c.eq(listdir(os.path.join(s.spool, "archive")), ["nightly.json", "nightly.json.1"],
             "redrop: both nights archived")

        # rows an older segspool wrote have no identity: matched by name and content once
        db = sqlite3.connect(os.path.join(s.spool, "segspool.db"))
        with db:
            db.execute("UPDATE files SET dev = NULL, ino = NULL, ctime_ns = NULL, size = NULL")
        db.close()
        s.drop_jobs("nightly.json", jobs)
        c.eq(s.run_until_idle(timeout=60), 0, "redrop: a night after an upgrade")
        c.eq(len(s.jobs()), 3, "redrop: an old row's name and content match, as before")
        c.check("nightly.json: this file's jobs were recorded before a stop" in s.log_text()
                and "recorded by an older segspool" in s.log_text(),
                "redrop: that is logged at info")
        s.drop_jobs("nightly.json", jobs)
        c.eq(s.run_until_idle(timeout=60), 0, "redrop: the next night")
        c.eq(len(s.jobs()), 4, "redrop: ... and only once: the next night runs")

        # the very file committed and never moved (archive/ refuses it) is moved later,
        # its jobs not added twice
        archive = os.path.join(s.spool, "archive")
        if subprocess.run(["chattr", "+i", archive], capture_output=True).returncode != 0:
            c.skip("redrop: a committed file left in incoming/", "chattr +i not possible")
            return
        try:
            s.start()
            s.drop_jobs("stays.json", [wh("stays")])
            wait_for(lambda: "cannot move stays.json out of incoming/" in s.log_text(),
                     timeout=15, what="the move to fail")
            wait_for(lambda: "stays.json: this file's jobs were recorded before a stop, but "
                             "it had not left incoming/ (the same file" in s.log_text(),
                     timeout=15, what="the rescan to recognise the file")
        finally:
            subprocess.run(["chattr", "-i", archive], capture_output=True)
        wait_for(lambda: "stays.json" in listdir(archive), timeout=15,
                 what="stays.json archived")
        c.eq(s.stop(), 0, "redrop: the daemon stops cleanly")
        c.eq(len([j for j in s.jobs() if s.show(j["id"])["source_file"] == "stays.json"]), 1,
             "redrop: the file left in incoming/ gave its job once")
    finally:
        subprocess.run(["chattr", "-i", os.path.join(s.spool, "archive")], capture_output=True)
        s.cleanup()


def dirs_replaced(emu):
    s = Spool(emu.url)
    outdir = os.path.join(s.root, "results")
    cfg = json.load(open(s.config_path))
    cfg["output_dir"] = outdir
    json.dump(cfg, open(s.config_path, "w"))
    try:
        s.start()
        s.drop_jobs("a.json", [wh("a", output="a.json")])
        wait_for(lambda: os.path.exists(os.path.join(outdir, "a.json")), timeout=15,
                 what="a.json's output")
        incoming = os.path.join(s.spool, "incoming")
        shutil.rmtree(incoming)
        os.makedirs(incoming, exist_ok=True)
        wait_for(lambda: "/incoming was re" in s.log_text(), timeout=15,
                 what="the warning about incoming/")
        s.drop_jobs("b.json", [wh("b", output="b.json")])
        c.check(wait_for(lambda: os.path.exists(os.path.join(outdir, "b.json")), timeout=15,
                         what="b.json's output"), "dirs: a file dropped into the new "
                                                  "incoming/ is ingested and run")
        # no more rescans (SIGHUP reloads rescan_ms): the check before each output must do
        rewrite_config(s, {"rescan_ms": 600000})
        s.daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: configuration reloaded" in s.log_text(), timeout=15,
                 what="the reload")
        time.sleep(1.0)  # the rescan timer armed before the reload has fired
        shutil.rmtree(outdir)
        os.mkdir(outdir)
        # a file of two jobs: the named output, and the file's results file (issue 13)
        s.drop_jobs("c.json", [wh("c", output="sub/c.json"), wh("d")])
        c.check(wait_for(lambda: os.path.exists(os.path.join(outdir, "sub", "c.json")) and
                         os.path.exists(os.path.join(outdir, "results", "c.results.jsonl")),
                         timeout=15, what="c.json's outputs"),
                "dirs: outputs go to the new output directory")
        c.check(f"output directory {outdir} was replaced while the daemon ran" in s.log_text(),
                "dirs: the output directory's replacement is logged")
        os.rename(outdir, outdir + ".old")
        s.drop_jobs("e.json", [wh("e", output="e.json")])
        c.check(wait_for(lambda: os.path.exists(os.path.join(outdir, "e.json")), timeout=15,
                         what="e.json's output"),
                "dirs: a missing output directory is made again")
        c.eq(s.daemon.poll(), None, "dirs: the daemon runs on")
        c.eq(s.stop(), 0, "dirs: and stops cleanly")
        c.eq(s.states(), {"succeeded": 5}, "dirs: every job succeeded")
    finally:
        s.cleanup()


def db_vanished(emu):
    for suffix, says in (("-wal", "write-ahead log"), ("", "database")):
        s = Spool(emu.url)
        try:
            s.start()
            s.drop_jobs("a.json", [wh("a")])
            wait_for(lambda: len(s.jobs("succeeded")) == 1, timeout=15, what="a job done")
            path = os.path.join(s.spool, "segspool.db" + suffix)
            os.unlink(path)
            try:
                rc = s.daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                rc = None
            c.check(rc not in (None, 0), f"db{suffix}: the daemon stops, non-zero ({rc})")
            errs = [l for l in s.log_text().splitlines() if "error" in l.lower()]
            c.check(any(says in l and path in l and "was removed" in l for l in errs),
                    f"db{suffix}: the error says which file vanished: {errs[-1:]!r}")
        finally:
            s.cleanup()
    # a file arriving after the database vanished, before any rescan: its jobs go into the
    # vanished file, so it must not leave incoming/
    s = Spool(emu.url, config={"rescan_ms": 600000})
    try:
        s.start()
        s.drop_jobs("a.json", [wh("a")])
        wait_for(lambda: len(s.jobs("succeeded")) == 1, timeout=15, what="a job done")
        os.unlink(os.path.join(s.spool, "segspool.db"))
        s.drop_jobs("b.json", [wh("b")])
        try:
            rc = s.daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            rc = None
        c.check(rc not in (None, 0), f"db, then a file: the daemon stops, non-zero ({rc})")
        c.eq(listdir(os.path.join(s.spool, "incoming")), ["b.json"],
             "db, then a file: it stays in incoming/ for the next database")
    finally:
        s.cleanup()


def clashes(emu):
    s = Spool(emu.url)
    try:
        s.start()
        s.drop_jobs("held.json", [wh("held", output="held/x.json", key="held-k",
                                     not_before=FUTURE)])
        wait_for(lambda: "held.json" in listdir(os.path.join(s.spool, "archive")),
                 timeout=15, what="held.json ingested")
        cases = [
            ("same.json", [wh("1", output="o.json"), wh("2", output="o.json")],
             "/1/output", "also the output of job 0 of this file"),
            ("prefix.json", [wh("1", output="d1/y.json"), wh("2", output="d1")],
             "/1/output", 'is a directory of "d1/y.json", the output of job 0'),
            ("inside.json", [wh("1", output="d2"), wh("2", output="e.json"),
                             wh("3", output="d2/z/y.json")],
             "/2/output", 'lies inside "d2", the output of job 0'),
            ("store-same.json", [wh("1", output="held/x.json")],
             "/0/output", "also the output of job 1, which has not finished"),
            ("store-dir.json", [wh("1", output="free.json"), wh("2", output="held")],
             "/1/output", 'is a directory of "held/x.json", the output of job 1, which'),
            ("long.json", [wh("1", output="n" * 250)], "/0/output", "longer than 249 bytes"),
            ("single.json", wh("1", output="held/x.json/deeper"), "/output",
             'lies inside "held/x.json", the output of job 1'),
        ]
        for name, jobs, _, _ in cases:
            s.drop_jobs(name, jobs)
        # JSON Lines: the problem names the line (blank lines counted)
        s.drop("lines.jsonl", "\n".join(["", json.dumps(wh("1", output="l.json")), "",
                                          json.dumps(wh("2", output="l.json"))]) + "\n")
        # a keyed job already recorded is not added again: its output clashes with nothing
        s.drop_jobs("held-again.json", [wh("held", output="held/x.json", key="held-k",
                                           not_before=FUTURE)])
        rejected = os.path.join(s.spool, "rejected")
        wait_for(lambda: all(n + ".error.json" in listdir(rejected)
                             for n in [x[0] for x in cases] + ["lines.jsonl"])
                 and "held-again.json" in listdir(os.path.join(s.spool, "archive")),
                 timeout=15, what="every file rejected or archived")
        for name, _, where, what in cases:
            got = problems(s, name) or []
            c.check(any(p["where"] == where and what in p["what"] for p in got),
                    f"clash {name}: {where}: {what!r} in {got!r}")
        got = problems(s, "lines.jsonl") or []
        c.check(any(p["where"] == "/output" and p.get("line") == 4 and "job 0 of this file"
                    in p["what"] for p in got), f"clash lines.jsonl: line 4: {got!r}")
        c.check('held-again.json: job 0 has key "held-k", already recorded as job 1'
                in s.log_text(), "clash: a recorded key is deduplicated, not rejected")
        c.eq(len(s.jobs()), 1, "clash: no job of a rejected file was added")
        c.eq(s.stop(), 0, "clash: the daemon stops cleanly")
        r = s.cli("validate", "-", input=json.dumps(wh("1", output="n" * 250)).encode())
        c.check(r.returncode == 1 and b"249" in r.stdout + r.stderr,
                f"long name: validate refuses it: {r.returncode} {r.stdout[-200:]!r}")
    finally:
        s.cleanup()


emu = Emulator("--seed", "10")
try:
    c.run_parts((redrop, dirs_replaced, db_vanished, clashes), emu)
finally:
    emu.stop()
c.finish()
