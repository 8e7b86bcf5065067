"""e2e pg_partition - a daemon's database connections cut under it (issue 15): two daemons
on one PostgreSQL store, answers delayed 200 ms so requests are in flight; twice, while
daemon 0 has requests out, its backends are killed with pg_terminate_backend (found by
application_name, which names its spool, and by the client ports of its TCP
connections to the cluster).

Checked, each time: daemon 0 keeps running, says at error level why it stopped, and comes
back as a new node (a new nodes row, the old one dead, rescued within the lease bound and
with none of its attempts left open); no attempt of the old node starts after the cut
(it stops sending). At the end: every job succeeded (a create or connection whose answer
was lost is reconciled), the emulator received each mutation exactly once (nothing sent
twice) and never more requests than the store recorded attempts, and daemon 0 did work
again after each reconnect.
"""
import time

from harness import (Checks, Emulator, Spool, emu_cleanup, pg_cluster_or_skip,
                     tcp_ports_of, wait_for)

c = Checks("pg_partition")
JS = "IqDTy1TpoU"
N_CREATE, N_CONN = 600, 60
LEASE_S = 6

cluster = pg_cluster_or_skip(c)
uri = cluster.create_db("partition")


def q(sql):
    return cluster.sql(sql, uri=uri)


def qv(sql):
    v = cluster.value(sql, uri=uri)
    return int(v) if v is not None and v.lstrip("-").isdigit() else v


def db_now():
    return qv("SELECT (extract(epoch from clock_timestamp())*1000)::bigint")


def live_node(s):
    return qv(f"SELECT id FROM nodes WHERE dead = 0 AND (pid = {s.daemon.pid} OR name LIKE "
              f"'%{s.spool}') ORDER BY id DESC LIMIT 1")


def cut(s, what):
    node = wait_for(lambda: live_node(s), timeout=20, what=f"{what}: daemon 0's node")
    wait_for(lambda: qv(f"SELECT count(*) FROM attempts WHERE node_id = {node} AND outcome "
                        f"IS NULL") >= 3, timeout=30, step=0.02,
             what=f"{what}: daemon 0 with requests in flight")
    ports = tcp_ports_of(s.daemon.pid, cluster.port) if cluster.port else set()
    by_port = f" OR client_port IN ({','.join(map(str, ports))})" if ports else ""
    # the store names its connections "segspool ROLE SPOOL" (cut at 63 bytes)
    app = f"segspool % {s.spool}"[:63]
    killed = q(f"SELECT pid, application_name, client_port, pg_terminate_backend(pid) FROM "
               f"pg_stat_activity WHERE pid <> pg_backend_pid() AND (application_name LIKE "
               f"'{app}%'{by_port})")
    t_mono = time.monotonic()
    t_cut = db_now()  # after: a backend ends at its next interrupt check, a commit may finish
    print(f"{what}: node {node}: terminated backends {killed} (ports {sorted(ports)})",
          flush=True)
    c.check(len(killed) >= 1, f"{what}: found daemon 0's backends")
    new = wait_for(lambda: (lambda n: n if n and n != node else None)(live_node(s)),
                   timeout=LEASE_S * 3, step=0.05, what=f"{what}: daemon 0 back as a new node")
    print(f"{what}: back as node {new} after {time.monotonic() - t_mono:.2f} s", flush=True)
    c.check(s.daemon.poll() is None, f"{what}: daemon 0 still runs")
    wait_for(lambda: qv(f"SELECT dead FROM nodes WHERE id = {node}") == 1 and
             qv(f"SELECT count(*) FROM jobs WHERE state = 1 AND owner = {node}") == 0,
             timeout=LEASE_S * 3, step=0.05, what=f"{what}: the old node rescued")
    took = time.monotonic() - t_mono
    print(f"{what}: old node rescued {took:.2f} s after the cut", flush=True)
    c.check(took <= LEASE_S + LEASE_S / 6 + 1, f"{what}: rescued within the lease bound: "
            f"{took:.2f} s")
    c.eq(qv(f"SELECT count(*) FROM attempts WHERE node_id = {node} AND outcome IS NULL"), 0,
         f"{what}: none of the old node's attempts left open")
    c.eq(qv(f"SELECT count(*) FROM attempts WHERE node_id = {node} AND started_ms > {t_cut}"),
         0, f"{what}: the old node started no attempt after the cut")
    return new


emu = Emulator("--seed", "12", "--delay-ms", "200")
cfg = {"lease_s": LEASE_S, "endpoint_limits": False, "http": {"max_in_flight": 8},
       "retry": {"max_attempts": 40, "initial_ms": 50, "max_ms": 1000}}
d0 = Spool(emu.url, config=dict(cfg, db=uri))
d1 = Spool(emu.url, config=dict(cfg, db=uri))
try:
    for s in (d0, d1):
        s.start()
    ok = c.check(d0.daemon.poll() is None and d1.daemon.poll() is None,
                 f"both daemons run: {d0.log_text()[-400:]} {d1.log_text()[-400:]}")
    jobs = [{"op": "createSource", "key": f"p-{i}",
             "params": {"slug": f"p-{i:04d}", "enabled": True, "metadataId": JS,
                        "disconnectAllWarehouses": True}} for i in range(N_CREATE)]
    for i in range(N_CONN):
        jobs.append({"op": "addConnectionFromSourceToWarehouse", "key": f"pc-{i}",
                     "params": {"warehouseId": "wh_1", "sourceId": {"$ref": f"p-{i}#/source/id"}}})
    # a connection's source in its own file: a $ref names a key of the file or the store
    d0.drop_jobs("part-a.json", jobs[:N_CREATE // 2] + jobs[N_CREATE:])
    d1.drop_jobs("part-b.json", jobs[N_CREATE // 2:N_CREATE])
    if ok:
        nodes = [cut(d0, "cut 1")]
        nodes.append(cut(d0, "cut 2"))
        wait_for(lambda: qv("SELECT count(*) FROM jobs WHERE state >= 3") == len(jobs),
                 timeout=90, step=0.3, what="every job ended")
        states = q("SELECT state, count(*) FROM jobs GROUP BY state")
        c.eq(states, [["3", str(len(jobs))]], "every job succeeded")
        for n in nodes:
            c.check(qv(f"SELECT count(*) FROM attempts WHERE node_id = {n}") > 0,
                    f"daemon 0 sent again as node {n}")
        st = emu.stats()
        sent = st.get("mutations") or {}
        twice = {k: v for k, v in sent.items() if v != 1}
        c.eq(twice, {}, "the emulator received each mutation once: nothing sent twice")
        c.eq(len(sent), len(jobs), "every mutation")
        att = qv("SELECT count(*) FROM attempts")
        c.check(st["requests"] <= att, f"no request without its attempt: {st['requests']} "
                f"requests, {att} attempts")
        log = d0.log_text()
        c.check(" error: " in log, f"daemon 0 logged the cut at error level: {log[-800:]}")
        for i, s in enumerate((d0, d1)):
            c.eq(s.stop(), 0, f"daemon {i}: SIGTERM, exit 0")
finally:
    d0.cleanup()
    d1.cleanup()
    emu_cleanup(emu)
    cluster.stop()
c.finish()
