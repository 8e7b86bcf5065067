"""e2e pg_daemon - the daemon's side of a shared PostgreSQL store (issue 15), where it is
the daemon's own rule rather than the store's:

1. restart: a daemon killed -9 with requests in flight (answers delayed 3 s) and started
   again at once on the same spool (the same node name) takes its earlier node's jobs back
   at once (store_node_start buries it: its pid is gone), not after that node's 30 s
   lease: the old node is dead and its attempts closed within a few seconds, the log
   says how many jobs came back, and every job then succeeds.
2. cancel: a job running on the daemon (its answer delayed 3 s) is cancelled by the CLI
   on another spool with no daemon (it writes the store directly); the daemon's heartbeat
   (every lease_s / 6 = 1 s) aborts the request: the job ends cancelled well before its
   answer would have come, its attempt "cancelled", and the log says the request was
   aborted. status, on that spool, lists the daemon's node, live, with its lease.
3. outage: the database server itself stops (pg_ctl stop -m fast) while the daemon has
   requests in flight (creates with a lookup rule), for longer than its first tries to
   reconnect: the daemon keeps running, logs why at error level and its failed tries at
   warn, joins again as a new node once the server is back (its old node buried, its
   jobs taken back at once), and every create ends succeeded, applied exactly once.
   On a cluster of its own (the fixture's is shared by other tests).
"""
import json
import os
import signal
import time

import harness
from harness import Checks, Emulator, Spool, emu_cleanup, pg_cluster_or_skip, wait_for

c = Checks("pg_daemon")
cluster = pg_cluster_or_skip(c)
DELAY_MS = 3000


def qv(uri, sql):
    v = cluster.value(sql, uri=uri)
    return int(v) if v is not None and v.lstrip("-").isdigit() else v


def reads(prefix, n):
    return [{"op": "listSources", "key": f"{prefix}-{i}", "params": {}} for i in range(n)]


def restart(emu):
    uri = cluster.create_db("daemon_restart")
    s = Spool(emu.url, config={"db": uri, "lease_s": 30, "endpoint_limits": False})
    try:
        s.start()
        s.drop_jobs("reads.json", reads("r", 4))
        wait_for(lambda: qv(uri, "SELECT count(*) FROM attempts WHERE outcome IS NULL") == 4,
                 timeout=20, step=0.05, what="four requests in flight")
        old = qv(uri, "SELECT id FROM nodes WHERE dead = 0")
        s.daemon.send_signal(signal.SIGKILL)
        s.daemon.wait(timeout=10)
        t0 = time.monotonic()
        s.start()
        wait_for(lambda: qv(uri, f"SELECT dead FROM nodes WHERE id = {old}") == 1 and
                 qv(uri, f"SELECT count(*) FROM jobs WHERE state = 1 AND owner = {old}") == 0,
                 timeout=40, step=0.05, what="the earlier node's jobs taken back")
        took = time.monotonic() - t0
        print(f"restart: node {old}'s jobs taken back {took:.2f} s after the restart")
        c.check(took < 10, f"taken back at once, not after the 30 s lease: {took:.2f} s")
        c.eq(qv(uri, f"SELECT count(*) FROM attempts WHERE node_id = {old} AND "
                     f"outcome IS NULL"), 0, "none of the old node's attempts left open")
        c.eq(qv(uri, f"SELECT count(*) FROM attempts WHERE node_id = {old} AND "
                     f"outcome = 'interrupted'"), 4, "its four reads closed interrupted")
        log = s.log_text()
        c.check("4 job(s) left running by expired or earlier nodes are queued again" in log,
                f"the log says so: {log[-600:]}")
        wait_for(lambda: qv(uri, "SELECT count(*) FROM jobs WHERE state = 3") == 4,
                 timeout=30, what="the four jobs succeeded")
        c.eq(s.stop(), 0, "restart: SIGTERM, exit 0")
    finally:
        s.cleanup()


def cancel(emu):
    uri = cluster.create_db("daemon_cancel")
    d = Spool(emu.url, config={"db": uri, "lease_s": 6, "endpoint_limits": False})
    cli = Spool(emu.url, config={"db": uri})  # no daemon on this spool
    try:
        d.start()
        d.drop_jobs("one.json", reads("c", 1))
        wait_for(lambda: qv(uri, "SELECT count(*) FROM attempts WHERE outcome IS NULL") == 1,
                 timeout=20, step=0.02, what="the request in flight")
        t0 = time.monotonic()
        job = qv(uri, "SELECT id FROM jobs")
        r = cli.cli("cancel", str(job))
        out = r.stdout.decode()
        c.eq(r.returncode, 0, f"cancel from elsewhere exits 0: {r.stderr.decode()}")
        c.check("the daemon running it aborts its request" in out, f"it says how: {out}")
        wait_for(lambda: qv(uri, f"SELECT state FROM jobs WHERE id = {job}") == 6,
                 timeout=10, step=0.02, what="the job cancelled")
        took = time.monotonic() - t0
        print(f"cancel: job {job} cancelled {took:.2f} s after the CLI")
        c.check(took < DELAY_MS / 1000 - 0.5, f"its request aborted before the answer came: "
                f"{took:.2f} s")
        c.eq(cluster.value(f"SELECT outcome FROM attempts WHERE job_id = {job}", uri=uri),
             "cancelled", "its attempt recorded cancelled")
        c.check("(its request aborted)" in d.log_text(), "the daemon logged the abort")
        r = cli.cli("show", str(job), "--json")
        c.eq(json.loads(r.stdout).get("state"), "cancelled", "show elsewhere: cancelled")
        st = json.loads(cli.cli("status", "--json").stdout)
        live = [n for n in st.get("nodes") or [] if n.get("live")]
        c.eq([n.get("pid") for n in live], [d.daemon.pid], f"status elsewhere: the live node: {st}")
        c.check(0 < live[0].get("lease_left_s", 0) <= 6 if live else False, "with its lease left")
        text = cli.cli("status").stdout.decode()
        c.check(f"node: {live[0]['name'] if live else '?'} (pid {d.daemon.pid}" in text,
                f"status's text names it: {text}")
        c.eq(d.stop(), 0, "cancel: SIGTERM, exit 0")
    finally:
        d.cleanup()
        cli.cleanup()


def outage():
    own = harness.pgcluster.PgCluster()
    uri = own.start()
    opts = ("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200"
            % (own.port, own.dir))
    emu = Emulator("--seed", "16", "--delay-ms", "500")
    s = Spool(emu.url, config={"db": uri, "lease_s": 6, "endpoint_limits": False,
                               "http": {"max_in_flight": 4},
                               "retry": {"max_attempts": 40, "initial_ms": 50,
                                         "max_ms": 500}})

    def value(sql):
        return own.psql(sql)

    try:
        s.start()
        n = 40
        s.drop_jobs("creates.json", [
            {"op": "createSource", "key": f"o-{i}",
             "params": {"slug": f"o-{i:03d}", "enabled": True, "metadataId": "IqDTy1TpoU"}}
            for i in range(n)])
        wait_for(lambda: int(value("SELECT count(*) FROM attempts WHERE outcome IS NULL"
                                   " AND request LIKE 'POST%'") or 0) >= 2,
                 timeout=20, step=0.02, what="creates in flight")
        old = value("SELECT max(id) FROM nodes WHERE dead = 0")
        own._run([own._bin("pg_ctl"), "stop", "-m", "fast", "-w", "-D", own.data])
        time.sleep(4)
        c.check(s.daemon.poll() is None, "the daemon runs on while the database is down")
        own._run([own._bin("pg_ctl"), "start", "-w", "-t", "60", "-D", own.data, "-l",
                  own.log, "-o", opts])
        wait_for(lambda: value(f"SELECT count(*) FROM nodes WHERE dead = 0 AND id > {old}")
                 == "1", timeout=40, step=0.2, what="back as a new node")
        wait_for(lambda: value("SELECT count(*) FROM jobs WHERE state >= 3") == str(n),
                 timeout=60, step=0.2, what="every create ended")
        c.eq(value("SELECT count(*) FROM jobs WHERE state = 3"), str(n),
             "every create succeeded")
        c.eq(value(f"SELECT dead FROM nodes WHERE id = {old}"), "1", "the old node is dead")
        sent = emu.stats().get("mutations") or {}
        c.eq({k: v for k, v in sent.items() if v != 1}, {}, "each create applied once")
        c.eq(len(sent), n, "every create applied")
        log = s.log_text()
        c.check(" error: " in log and "joining" in log, f"why, at error level: {log[-900:]}")
        c.check("cannot reconnect" in log, "the failed tries to reconnect are logged")
        c.check("reconnected: node" in log, "the new start is logged")
        c.eq(s.stop(), 0, "outage: SIGTERM, exit 0")
    finally:
        s.cleanup()
        emu_cleanup(emu)
        own.stop()


emu = Emulator("--seed", "15", "--delay-ms", str(DELAY_MS))
try:
    restart(emu)
    cancel(emu)
finally:
    emu_cleanup(emu)
    cluster.stop()
outage()
c.finish()
