"""e2e root_cli - root's CLI on a spool that a service user owns (the package's layout:
/var/spool/segspool belongs to segspool, the operator types `sudo segspool submit`):
what root writes into the spool belongs to the spool's owner, so the daemon running as
that user reads it. A submitted file in incoming/, the spool's .lock, and a control file
(root's cancel while the daemon runs) are the owner's, and the daemon carries them out.
Root only (skipped otherwise); the service user is nobody. Runtime: about 3 s."""
import json
import os
import pwd
import shutil
import subprocess
import sys

from harness import BIN, Checks, Emulator, Spool, demote, wait_for, wait_job_state

c = Checks("root_cli")
if os.geteuid() != 0:
    print("skipped: root's CLI on a service user's spool (not root)")
    sys.exit(77)
nobody = pwd.getpwnam("nobody")
emu = Emulator()
s = Spool(emu.url)
JOB = {"op": "getWarehouse", "params": {"warehouseId": "wh_1"}}


def give_to_nobody():
    for dirpath, dirs, files in os.walk(s.root):
        os.chown(dirpath, nobody.pw_uid, nobody.pw_gid)
        for fn in files:
            os.lchown(os.path.join(dirpath, fn), nobody.pw_uid, nobody.pw_gid)


def daemon_as_nobody(*args):
    log = open(s.daemon_log, "ab")
    p = subprocess.Popen([BIN, "--config", s.config_path, "run"] + list(args), stdout=log,
                         stderr=log, env=s.env, preexec_fn=demote(nobody.pw_uid, nobody.pw_gid))
    log.close()
    return p


def submit_and_lock():
    """root submits first, before any daemon: the file and the .lock are nobody's."""
    give_to_nobody()
    job_file = os.path.join(s.root, "job.json")
    with open(job_file, "w") as f:
        json.dump(JOB, f)
    r = s.cli("submit", job_file)
    c.eq(r.returncode, 0, f"root's submit: {r.stderr.decode(errors='replace')}")
    inc = os.path.join(s.spool, "incoming")
    owners = {os.stat(os.path.join(inc, n)).st_uid for n in os.listdir(inc)}
    c.eq(owners, {nobody.pw_uid}, "the submitted file in incoming/ is the spool owner's")
    # root's retry with no daemon running takes the spool's .lock (and the store) itself
    r = s.cli("retry", "--state", "dead")
    lock = os.path.join(s.spool, ".lock")
    if os.path.exists(lock):
        c.eq(os.stat(lock).st_uid, nobody.pw_uid, "the .lock root made is the owner's")
    for n in ("segspool.db", "segspool.db.lock", "segspool.db-wal", "segspool.db-shm"):
        p = os.path.join(s.spool, n)
        if os.path.exists(p) and os.stat(p).st_uid == 0:
            os.chown(p, nobody.pw_uid, nobody.pw_gid)  # the store's files: not this test's
    p = daemon_as_nobody("--until-idle")
    c.eq(p.wait(timeout=60), 0, f"the daemon as nobody: {s.log_text()[-300:]!r}")
    c.eq([j["state"] for j in s.jobs()], ["succeeded"], "root's submitted job ran")


def control_file():
    """root's cancel while the daemon (nobody) holds the spool: a control file it reads."""
    s.drop_jobs("later.json", [dict(JOB, not_before="2099-01-01T00:00:00Z")])
    give_to_nobody()
    p = daemon_as_nobody()
    try:
        wait_for(lambda: len(s.jobs()) == 2, timeout=30, what="the second job ingested")
        r = s.cli("cancel", "2")
        c.eq(r.returncode, 0, f"root's cancel: {r.stderr.decode(errors='replace')}")
        wait_job_state(s, 2, ("cancelled",), timeout=30)
        c.check("Permission denied" not in s.log_text(), "the daemon read every file")
    finally:
        p.terminate()
        p.wait(timeout=30)


try:
    c.run_parts((submit_and_lock, control_file))
finally:
    s.cleanup()
    emu.stop()
    shutil.rmtree(emu.dir, ignore_errors=True)
c.finish()
