"""e2e control_cli - cancel and retry by the CLI itself (no daemon running), fan-out
included; the spool lock shared by a CLI command and a daemon; list's --limit; output
that cannot be written; an unreadable store; a raw path validation refuses; a file name
that would forge a log line.
"""
import fcntl
import json
import os
import sqlite3
import subprocess
import time

from harness import (BIN, Checks, Emulator, Spool, emu_cleanup, iso_from_ms, listdir,
                     wait_for, wait_job_state)

c = Checks("control_cli")
TERMINAL = ("succeeded", "failed", "dead", "cancelled")
OP = "getEventsVolumeFromWorkspace"
DAYS = 4
SPLIT = {"op": OP, "split": "1d", "key": "split",
         "params": {"granularity": "DAY", "startTime": "2026-10-01T00:00:00Z",
                    "endTime": "2026-10-05T00:00:00Z", "groupBy": ["eventName"]}}


def by_key(s):
    if not os.path.exists(os.path.join(s.spool, "segspool.db")):
        return {}
    return {j["key"]: j["id"] for j in s.jobs() if j.get("key")}


def children(s, pid):
    return [s.show(j["id"]) for j in (s.show(pid).get("children") or {}).get("jobs", [])]


def future_jobs(n, prefix):
    later = iso_from_ms(int(time.time() * 1000) + 3600_000)
    return [{"op": "getWarehouse", "params": {"warehouseId": f"wh_{i % 3 + 1}"},
             "not_before": later, "output": False, "key": f"{prefix}{i}"} for i in range(n)]


def ingest(s, name, jobs):
    """ingest - the daemon takes the file in; then it is stopped."""
    s.drop_jobs(name, jobs)
    s.start()
    wait_for(lambda: name in listdir(os.path.join(s.spool, "archive")), timeout=60,
             what=f"{name} ingested")
    c.eq(s.stop(), 0, f"{name}: the daemon stops cleanly")


emu = Emulator("--seed", "7")

# --- retry of a failed fan-out, no daemon: its failed children come back with it ----------
s = Spool(emu.url, config={"endpoint_limits": False})
try:
    emu.admin("/__emu/config", {"fail_rate": 1, "fail_status": 422})
    s.drop_jobs("split.json", [SPLIT])
    c.eq(s.run_until_idle(timeout=60), 0, "fan-out with failing children: run exits 0")
    pid = by_key(s)["split"]
    c.eq(s.show(pid)["state"], "failed", "the parent failed with its children")
    c.eq(sorted(k["state"] for k in children(s, pid)), ["failed"] * DAYS,
         f"its {DAYS} children failed")
    emu.admin("/__emu/config", {"fail_rate": 0})
    r = s.cli("retry", str(pid))
    c.eq(r.returncode, 0, f"retry PARENT without a daemon exits 0: {r.stderr!r}")
    c.check(f"job {pid}: queued again, with {DAYS} child job(s)".encode() in r.stdout,
            f"and says the children came along: {r.stdout!r}")
    c.eq(sorted(k["state"] for k in children(s, pid)), ["queued"] * DAYS,
         "the children are queued again")
    c.eq(s.run_until_idle(timeout=60), 0, "the second run exits 0")
    c.eq(s.show(pid)["state"], "succeeded", "retry PARENT: the fan-out ran again and succeeded")
    c.eq(sorted(k["state"] for k in children(s, pid)), ["succeeded"] * DAYS,
         "every child succeeded")
finally:
    s.cleanup()

# --- cancel of a fan-out, no daemon: its children do not run at the next start -------------
s = Spool(emu.url, config={"endpoint_limits": False, "grace_ms": 200,
                           "http": {"max_in_flight": 1}})
try:
    emu.admin("/__emu/config", {"delay_ms": 2000})
    s.drop_jobs("split.json", [SPLIT])
    s.start()
    pid = wait_for(lambda: by_key(s).get("split"), timeout=20, what="parent ingested")
    wait_for(lambda: len(children(s, pid)) == DAYS, timeout=20, what="children created")
    c.eq(s.stop(), 0, "SIGTERM with children queued: exit 0")
    emu.admin("/__emu/config", {"delay_ms": 0})
    # the request the stop cut off is counted by the emulator when its 2 s delay ends
    time.sleep(2.5)
    calls = emu.stats()
    r = s.cli("cancel", str(pid))
    c.eq(r.returncode, 0, f"cancel PARENT without a daemon exits 0: {r.stderr!r}")
    c.check(b"running daemon" not in r.stdout, "it did the work itself")
    c.check(f"job {pid}: cancelled, with {DAYS} child job(s)".encode() in r.stdout,
            f"and says the children went with it: {r.stdout!r}")
    c.eq(s.run_until_idle(timeout=60), 0, "the next run exits 0")
    c.eq(s.show(pid)["state"], "cancelled", "the parent is cancelled")
    c.eq(sorted(k["state"] for k in children(s, pid)), ["cancelled"] * DAYS,
         "its children are cancelled, not run at the next start")
    c.eq(emu.stats().get("requests"), calls.get("requests"), "no request went out")
    r = s.cli("cancel", str(pid))
    c.eq(r.returncode, 1, "cancelling it again exits 1")
    c.check(b"already cancelled" in r.stderr, f"and says why: {r.stderr!r}")
finally:
    s.cleanup()

# --- the spool lock: a daemon waits for a CLI command, not for another daemon --------------
s = Spool(emu.url, config={"endpoint_limits": False})
try:
    n = 20000
    ingest(s, "many.json", future_jobs(n, "m"))
    db = sqlite3.connect(os.path.join(s.spool, "segspool.db"))
    dead = 5  # store.h: JS_DEAD
    db.execute("UPDATE jobs SET state = ?", (dead,))
    db.commit()
    db.close()
    t0 = time.monotonic()
    r = s.cli("retry", "--state", "dead")
    took = time.monotonic() - t0
    print(f"retry --state dead over {n} jobs: {took:.2f} s", flush=True)
    c.eq(r.returncode, 0, f"retry --state dead over {n} jobs exits 0: {r.stderr[-300:]!r}")
    c.eq(r.stdout.count(b"queued again"), n, "each job is reported")
    c.eq(s.states(), {"queued": n}, f"all {n} are queued again")
    c.check(took < 5, f"in one transaction, not one per job ({took:.2f} s)")
    r = s.cli("cancel", "--state", "queued")  # so that the daemon below has nothing due
    c.eq((r.returncode, s.states()), (0, {"cancelled": n}), f"cancel --state queued: all {n}")

    # a CLI command holds the lock (as the CLI writes it): the daemon waits, then runs
    lock = open(os.path.join(s.spool, ".lock"), "r+")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    lock.truncate(0)
    lock.write(f"pid={os.getpid()} role=cli:retry spool={s.spool}\n")
    lock.flush()
    runs = s.log_text().count("running on spool")
    s.start(ready=False)
    wait_for(lambda: "waiting for segspool retry" in s.log_text(), timeout=10,
             what="the daemon waits")
    c.check(f"waiting for segspool retry (pid {os.getpid()}) to finish" in s.log_text(),
            "the daemon names the CLI command it waits for")
    time.sleep(0.5)
    c.check(s.daemon.poll() is None, "it did not exit")
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()
    wait_for(lambda: s.log_text().count("running on spool") > runs, timeout=10,
             what="daemon running")
    c.check("another segspool daemon" not in s.log_text(), "it never took the CLI for a daemon")
    holder = open(os.path.join(s.spool, ".lock")).read()
    c.check(holder.startswith(f"pid={s.daemon.pid} role=daemon spool="),
            f"the lock file names the daemon: {holder!r}")
    r = s.cli("run", "--until-idle")
    c.eq(r.returncode, 1, "a second daemon still exits 1")
    c.check(f"another segspool daemon is running on spool {s.spool} (pid {s.daemon.pid})"
            .encode() in r.stderr, f"naming the first: {r.stderr[-300:]!r}")
    s.drop_jobs("one.json", future_jobs(1, "one"))
    jid = wait_for(lambda: by_key(s).get("one0"), timeout=20, what="job ingested")
    r = s.cli("cancel", str(jid))
    c.eq(r.returncode, 0, "cancel with the daemon running exits 0")
    c.check(f"handed to the running daemon (pid {s.daemon.pid})".encode() in r.stdout,
            f"through the daemon: {r.stdout!r}")
    c.eq(wait_job_state(s, jid, TERMINAL)["state"], "cancelled", "and the daemon cancelled it")
    c.eq(s.stop(), 0, "SIGTERM: exit 0")
finally:
    s.cleanup()

# --- list: the limit says when it cut the list; --limit 0 is all ---------------------------
s = Spool(emu.url, config={"endpoint_limits": False})
try:
    ingest(s, "list.json", future_jobs(1500, "l"))
    r = s.cli("list", "--json")
    c.eq(r.returncode, 0, "list --json exits 0")
    c.eq(len(r.stdout.splitlines()), 1000, "without --limit: 1,000 lines")
    c.check(b"segspool: showing 1000 of 1500 jobs; --limit 0 shows all" in r.stderr,
            f"and says on stderr that the limit cut it: {r.stderr!r}")
    r = s.cli("list", "--json", "--limit", "0")
    c.eq((r.returncode, len(r.stdout.splitlines())), (0, 1500), "--limit 0: all 1,500")
    c.eq(r.stderr, b"", "and no warning")
    r = s.cli("list", "--limit", "1500")
    c.eq((r.returncode, r.stderr), (0, b""), "a limit that cuts nothing says nothing")
    for bad in ("-1", "x", "10x", "", "99999999999"):
        r = s.cli("list", "--limit", bad)
        c.eq(r.returncode, 2, f"--limit {bad!r} is a usage error")
    c.check(b"--limit" in r.stderr, f"naming the option: {r.stderr!r}")

    # output that cannot be written is a failure
    for args in (["ops"], ["list"], ["list", "--json", "--limit", "0"], ["stats"]):
        with open("/dev/full", "w") as full:
            p = subprocess.run([BIN, "--config", s.config_path] + args, stdout=full,
                               stderr=subprocess.PIPE, env=s.env, timeout=60)
        c.eq(p.returncode, 1, f"{' '.join(args)} > /dev/full exits 1")
        c.check(b"segspool: cannot write to standard output: No space left on device"
                in p.stderr, f"and says so: {p.stderr[-200:]!r}")

    # an unreadable store: stats and list fail with the reason
    db = sqlite3.connect(os.path.join(s.spool, "segspool.db"))
    db.execute("ALTER TABLE jobs RENAME TO jobs_gone")
    db.commit()
    db.close()
    for args in (["stats"], ["list"]):
        r = s.cli(*args)
        c.eq(r.returncode, 1, f"{args[0]} on an unreadable store exits 1")
        c.check(b"no such table: jobs" in r.stderr, f"with the reason: {r.stderr[-200:]!r}")
finally:
    s.cleanup()

# --- validate refuses a raw path that sending would refuse ---------------------------------
s = Spool(emu.url)
try:
    path = os.path.join(s.root, "raw.json")
    with open(path, "w") as f:
        json.dump({"op": "raw", "params": {"method": "GET", "path": "/sources/%2e%2e/admin"}}, f)
    r = s.cli("validate", path)
    c.eq(r.returncode, 1, "validate: an encoded .. in a raw path is refused")
    c.check(b"invalid raw path" in r.stderr, f"and says why: {r.stderr!r}")

    # a file name with a newline in it cannot forge a log line
    forged = "x\n2026-12-01T00:00:00.000Z segspool[1] info: forged.json"
    s.drop(forged, "{not json")
    c.eq(s.run_until_idle(timeout=60), 0, "run with the odd file name exits 0")
    log = s.log_text()
    c.check(not any(l.startswith("2026-12-01T00:00:00.000Z segspool[1]")
                    for l in log.splitlines()), "no forged line in the log")
    c.check("x\\n2026-12-01T00:00:00.000Z segspool[1] info: forged.json" in log,
            "the name is logged with its newline escaped")
finally:
    s.cleanup()
    emu_cleanup(emu)
c.finish()
