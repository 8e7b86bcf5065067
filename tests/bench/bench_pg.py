"""bench_pg - the PostgreSQL store (issue 15) against SQLite, on this machine. Prints JSON
lines; asserts nothing.

1. throughput: N createSource jobs (one JSON Lines file dropped into daemon 0's spool,
   "output": false) against segspool-emu with limits off, by 1, 2 and 3 daemons on one
   PostgreSQL database (a throwaway cluster with fsync, synchronous_commit and
   full_page_writes on: durable commits), and by one daemon on SQLite (WAL,
   synchronous=FULL) in the same run. calls/s from the first attempt's start to the last
   attempt's end (the attempts table), peak RSS of each daemon (VmHWM), the run's wall
   time from the drop. BENCH_REPEATS runs each (default 1), interleaved; medians.
2. rescue: two daemons, lease_s BENCH_LEASE_S (default 20, the default lease); the
   emulator delays answers 2 s so daemon 0 always has jobs running; daemon 0 is killed -9
   BENCH_KILLS times (default 10), each time after it has jobs running again: seconds
   from the kill to the store showing its node dead and none of its jobs running
   (median, min, max; the bound is lease + a sweep period, lease/6).
3. claims: BIG (1,000,000) and SMALL (1,000) due jobs put straight into the jobs table
   (INSERT ... SELECT FROM generate_series, copies of one ingested getWarehouse job,
   "output": false). (a) pgbench (one client, then three) runs the store's claim
   statement (src/store/pg_jobs.c's claim_sql: the highest due priority, then ... ORDER
   BY next_run_ms, id LIMIT 16 FOR NO KEY UPDATE SKIP LOCKED, the update and its
   transitions rows) in a transaction it rolls back, so the queue stays the same size:
   latency per claim of 16 and claims/s; (b) through the daemon: one daemon, limits
   off, 16 in flight: attempts/s over attempts 1,000..6,000 (BIG) and
   100..900 (SMALL).
4. slow: one daemon, N createSource jobs ("output": false), limits off, no emulator
   delay, its store reached through tests/pg/delayproxy.py adding BENCH_SLOW_MS (0,1,5)
   ms each way (start-up undelayed; the delay from the drop on): calls/s (first
   attempt's start to last attempt's end), the attempts' p50/p90 duration_ms (request
   submitted to answer taken on the loop), and the daemon's sends to the database per
   attempt (chunks through the proxy). A run not done within 60 + N/20 s prints its
   figures so far ("finished": false).

usage: python3 tests/bench/bench_pg.py [BUILD_DIR] [N=20000] [BIG=1000000] [SMALL=1000]
env:   BENCH_REPEATS=1  BENCH_LEASE_S=20  BENCH_KILLS=10
       BENCH_PARTS=throughput,rescue,claims,slow  BENCH_SLOW_MS=0,1,5
A smoke run: python3 tests/bench/bench_pg.py build 2000 20000 1000 with BENCH_LEASE_S=6
BENCH_KILLS=2; of the slow part alone: BENCH_PARTS=slow ... build 500."""
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import benchenv  # first: the build and the harness's path  # noqa: F401
from harness import Emulator, PgCluster, RssWatch, Spool, wait_for  # noqa: E402
from delayproxy import DelayProxy  # noqa: E402  (tests/pg/, on the path by the harness)

N = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
BIG = int(sys.argv[3]) if len(sys.argv) > 3 else 1000000
SMALL = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
REPEATS = int(os.environ.get("BENCH_REPEATS", "1"))
LEASE_S = int(os.environ.get("BENCH_LEASE_S", "20"))
KILLS = int(os.environ.get("BENCH_KILLS", "10"))
PARTS = os.environ.get("BENCH_PARTS", "throughput,rescue,claims,slow").split(",")
SLOW_MS = [float(x) for x in os.environ.get("BENCH_SLOW_MS", "0,1,5").split(",")]
BODY = {"enabled": True, "metadataId": "IqDTy1TpoU", "disconnectAllWarehouses": True}
QUIET = {"endpoint_limits": False, "rate": "off", "log_level": "warn",
         "http": {"max_in_flight": 16}}

cluster = PgCluster()  # fsync and synchronous_commit on, as pgcluster.py starts it


def out(obj):
    print(json.dumps(obj), flush=True)


def pgv(uri, sql):
    v = cluster.value(sql, uri=uri)
    return int(v) if v is not None and v.lstrip("-").isdigit() else v


def sqlite_query(s, sql):
    db = sqlite3.connect(os.path.join(s.spool, "segspool.db"), timeout=30)
    try:
        return db.execute(sql).fetchone()
    finally:
        db.close()


def start(s, uri):
    """the daemon, once it runs (log level warn: no "running on spool" line to wait for):
    its node in the store (or, a build whose daemon joins as none, 2 s after the schema
    is there), or its SQLite file"""
    s.start(ready=False)
    t0 = time.monotonic()

    def up():
        if s.daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited {s.daemon.returncode}: {s.log_text()[-500:]}")
        if not uri:
            return os.path.exists(os.path.join(s.spool, "segspool.db"))
        try:
            return pgv(uri, f"SELECT count(*) FROM nodes WHERE dead = 0 AND pid = "
                            f"{s.daemon.pid}") == 1 or time.monotonic() - t0 > 2
        except RuntimeError:  # not migrated yet
            return False
    wait_for(up, timeout=30, step=0.05, what="the daemon up")


def span_sql():
    return ("SELECT min(started_ms), max(started_ms + coalesce(duration_ms, 0)), count(*) "
            "FROM attempts")


def throughput_run(emu, ndaemons, backend, run_no):
    """N creates by ndaemons daemons on backend ("postgresql", "postgresql-sync": its
    pipeline off, every store call waited for, or "sqlite")"""
    uri = cluster.create_db(f"tp{ndaemons}") if backend.startswith("postgresql") else None
    cfg = dict(QUIET, db=uri) if uri else dict(QUIET)
    if backend == "postgresql-sync":
        cfg["pipeline"] = False
    spools = [Spool(emu.url, config=cfg) for _ in range(ndaemons)]
    try:
        for s in spools:
            start(s, uri)
        watches = [RssWatch(s.daemon.pid) for s in spools]
        jobs = [{"op": "createSource", "output": False,
                 "params": dict(BODY, slug=f"tp-{backend}-{ndaemons}-{run_no}-{i}")}
                for i in range(N)]
        t0 = time.monotonic()
        spools[0].drop_jobs("bench.jsonl", jobs)
        def done():
            sql = "SELECT count(*) FROM jobs WHERE state = 3"
            if uri:
                return pgv(uri, sql) == N
            return (os.path.exists(os.path.join(spools[0].spool, "segspool.db")) and
                    sqlite_query(spools[0], sql)[0] == N)
        wait_for(done, timeout=60 + N / 100, step=0.1, what="every create succeeded")
        wall = time.monotonic() - t0
        rss = [round(w.peak() / 1048576, 1) for w in watches]
        if uri:
            first, last, calls = (int(x) for x in cluster.sql(span_sql(), uri=uri)[0])
            per_node = [int(r[1]) for r in cluster.sql(
                "SELECT node_id, count(*) FROM attempts GROUP BY node_id ORDER BY 1", uri=uri)]
        else:
            first, last, calls = sqlite_query(spools[0], span_sql())
            per_node = [calls]
        span = max((last - first) / 1000.0, 0.001)
        return {"bench": "pg-throughput-run", "backend": backend, "daemons": ndaemons,
                "run": run_no, "n": N, "calls": calls, "seconds": round(span, 3),
                "calls_per_sec": round(calls / span), "wall_from_drop_s": round(wall, 3),
                "peak_rss_mib": rss, "attempts_per_daemon": per_node, "durable": True}
    finally:
        for s in spools:
            s.cleanup()


def throughput():
    emu = Emulator()
    configs = [("sqlite", 1), ("postgresql-sync", 1), ("postgresql", 1), ("postgresql", 2),
               ("postgresql", 3)]
    runs = {cfg: [] for cfg in configs}
    try:
        for k in range(REPEATS):
            for backend, nd in configs:
                emu.admin("/__emu/reset", {})
                try:
                    r = throughput_run(emu, nd, backend, k + 1)
                except (TimeoutError, RuntimeError) as e:
                    out({"bench": "pg-throughput-run", "backend": backend, "daemons": nd,
                         "run": k + 1, "error": str(e)})
                    continue
                runs[(backend, nd)].append(r)
                out(r)
    finally:
        emu.stop()
    for (backend, nd), rs in runs.items():
        if not rs:
            continue
        out({"bench": "pg-throughput", "backend": backend, "daemons": nd, "n": N,
             "runs": len(rs), "calls_per_sec_median": statistics.median(r["calls_per_sec"]
                                                                        for r in rs),
             "calls_per_sec_runs": [r["calls_per_sec"] for r in rs],
             "peak_rss_mib_max_per_daemon": max(max(r["peak_rss_mib"]) for r in rs)})


def rescue():
    uri = cluster.create_db("rescue")
    emu = Emulator("--delay-ms", "2000")
    cfg = dict(QUIET, db=uri, lease_s=LEASE_S)
    spools = [Spool(emu.url, config=cfg) for _ in range(2)]
    times = []
    try:
        for s in spools:
            start(s, uri)
        # reads: a rescued job is simply run again, the queue never runs dry
        spools[1].drop_jobs("reads.jsonl", [
            {"op": "getWarehouse", "params": {"warehouseId": "wh_1"}, "output": False}
            for _ in range(KILLS * 400 + 2000)])
        victim = spools[0]
        for k in range(KILLS):
            def node():
                return pgv(uri, f"SELECT id FROM nodes WHERE dead = 0 AND pid = "
                                f"{victim.daemon.pid} ORDER BY id DESC LIMIT 1")
            wait_for(lambda: node() and pgv(uri, f"SELECT count(*) FROM jobs WHERE state = 1 "
                                                 f"AND owner = {node()}") > 0,
                     timeout=60, step=0.05, what="daemon 0 running jobs")
            n = node()
            victim.daemon.send_signal(signal.SIGKILL)
            t = time.monotonic()
            victim.daemon.wait()
            wait_for(lambda: pgv(uri, f"SELECT dead FROM nodes WHERE id = {n}") == 1 and
                     pgv(uri, f"SELECT count(*) FROM jobs WHERE state = 1 AND owner = {n}") == 0,
                     timeout=LEASE_S * 4, step=0.05, what="the rescue")
            times.append(round(time.monotonic() - t, 2))
            out({"bench": "pg-rescue-run", "kill": k + 1, "seconds": times[-1],
                 "lease_s": LEASE_S})
            start(victim, uri)
    finally:
        for s in spools:
            s.cleanup()
        emu.stop()
    if times:
        out({"bench": "pg-rescue", "lease_s": LEASE_S, "kills": len(times),
             "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
             "bound_s": round(LEASE_S + LEASE_S / 6, 1), "runs": times})


# src/store/pg_jobs.c's claim_sql as its first call runs it (below INT64_MAX: the highest
# priority; node NULL, now far ahead, 16 a claim), rolled back
CLAIM_SQL = """BEGIN;
WITH pr AS (SELECT priority FROM jobs WHERE state IN (0, 2) AND priority < 9223372036854775807
  ORDER BY priority DESC LIMIT 1),
due AS (SELECT id AS due_id, state AS from_state FROM jobs WHERE state IN (0, 2)
  AND priority = (SELECT priority FROM pr) AND next_run_ms <= 9000000000000
  ORDER BY next_run_ms, id LIMIT 16 FOR NO KEY UPDATE SKIP LOCKED),
claimed AS (UPDATE jobs SET state = 1, owner = NULL, updated_ms = 1 FROM due
  WHERE id = due_id RETURNING id, parent_id, state, op_id, spec_json, key, workspace,
  output_path, priority, attempts, created_ms, next_run_ms, cursor, pages_done, items_done,
  total_entries, cancel_requested, (result_json IS NOT NULL)::int AS has_result,
  (SELECT count(*) FROM attempts a WHERE a.job_id = jobs.id) AS tries, from_state),
t AS (INSERT INTO transitions (job_id, from_state, to_state, at_ms, reason)
  SELECT id, from_state, 1, 1, 'claimed' FROM claimed)
SELECT pr.priority AS at_priority, c.* FROM pr LEFT JOIN claimed c ON true
ORDER BY c.next_run_ms, c.id;
ROLLBACK;
"""


def fill_queue(uri, emu, n):
    """n due copies of one ingested job, straight into the jobs table"""
    s = Spool(emu.url, config=dict(QUIET, db=uri))
    try:
        start(s, uri)
        s.drop_jobs("one.json", {"op": "getWarehouse", "params": {"warehouseId": "wh_1"},
                                 "output": False, "not_before": "2999-01-01T00:00:00Z"})
        wait_for(lambda: pgv(uri, "SELECT count(*) FROM jobs") == 1, timeout=30,
                 what="the template job ingested")
    finally:
        s.cleanup()
    cols = [r[0] for r in cluster.sql(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs' AND "
        "column_name NOT IN ('id', 'key', 'file_id', 'line', 'owner', 'next_run_ms', "
        "'not_before_ms', 'source_file') ORDER BY ordinal_position", uri=uri)]
    t = time.monotonic()
    cluster.sql(f"INSERT INTO jobs ({', '.join(cols)}, next_run_ms, not_before_ms) "
                f"SELECT {', '.join('t.' + c for c in cols)}, 1000 + g, 0 FROM jobs t, "
                f"generate_series(1, {n}) g WHERE t.id = (SELECT min(id) FROM jobs)",
                uri=uri, timeout=3600)
    cluster.sql("DELETE FROM jobs WHERE id = (SELECT min(id) FROM jobs); ANALYZE jobs",
                uri=uri, timeout=3600)
    return time.monotonic() - t


def pgbench(uri, clients, seconds=10):
    script = tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False)
    script.write(CLAIM_SQL)
    script.close()
    os.chmod(script.name, 0o644)
    pgb = os.path.join(cluster.bindir or "/usr/bin", "pgbench")
    r = subprocess.run([pgb, "-n", "-f", script.name, "-c", str(clients), "-j", str(clients),
                        "-T", str(seconds), uri], capture_output=True, timeout=seconds + 120)
    os.unlink(script.name)
    text = r.stdout.decode()
    lat = tps = None
    for line in text.splitlines():
        if line.startswith("latency average"):
            lat = float(line.split("=")[1].split()[0])
        elif line.startswith("tps"):
            tps = round(float(line.split("=")[1].split()[0]))
    if lat is None:
        print("pgbench failed:", r.stderr.decode()[-500:], file=sys.stderr)
    return lat, tps


def dispatch_rate(uri, emu, lo, hi):
    s = Spool(emu.url, config=dict(QUIET, db=uri))
    try:
        start(s, uri)
        wait_for(lambda: pgv(uri, "SELECT count(*) FROM attempts") >= hi, timeout=600, step=0.1,
                 what=f"{hi} attempts")
        s.stop()
        rows = cluster.sql(f"SELECT started_ms FROM attempts ORDER BY started_ms OFFSET {lo} "
                           f"LIMIT {hi - lo}", uri=uri)
        t = [int(r[0]) for r in rows]
        return round((len(t) - 1) / max((t[-1] - t[0]) / 1000.0, 0.001))
    finally:
        s.cleanup()


def claims():
    emu = Emulator()
    try:
        for size, lo, hi in ((SMALL, 100, min(900, SMALL - 50)),
                             (BIG, 1000, min(6000, BIG - 100))):
            uri = cluster.create_db(f"claims{size}")
            fill_s = fill_queue(uri, emu, size)
            lat1, tps1 = pgbench(uri, 1)
            lat3, tps3 = pgbench(uri, 3)
            rate = dispatch_rate(uri, emu, lo, hi)
            out({"bench": "pg-claims", "queued": size, "insert_s": round(fill_s, 2),
                 "claim_sql_latency_ms_1_client": lat1, "claims_per_sec_1_client": tps1,
                 "claim_sql_latency_ms_3_clients": lat3, "claims_per_sec_3_clients": tps3,
                 "claim_batch": 16, "driver": "pgbench: pg_jobs.c's claim statement, rolled back",
                 "daemon_attempts_per_sec": rate, "daemon_window": [lo, hi]})
            cluster.sql(f'DROP DATABASE "{uri.rsplit("/", 1)[1]}"')
    finally:
        emu.stop()


def pct(values, p):
    """the nearest-rank p-th percentile of values, or None"""
    v = sorted(values)
    return v[max(0, min(len(v) - 1, -(-len(v) * p // 100) - 1))] if v else None


def slow_run(emu, proxy, delay_ms, pipeline=True):
    """N creates by one daemon whose store is delay_ms away each way"""
    uri = cluster.create_db("slow")
    proxy.set_delay(0)
    s = Spool(emu.url, config=dict(QUIET, pipeline=pipeline,
                                   db=uri.replace(f":{cluster.port}/", f":{proxy.port}/")))
    try:
        start(s, uri)
        proxy.set_delay(delay_ms)
        sends = proxy.chunks_up
        t0 = time.monotonic()
        s.drop_jobs("slow.jsonl", [{"op": "createSource", "output": False,
                                    "params": dict(BODY, slug=f"slow-{delay_ms}-"
                                                                f"{int(pipeline)}-{i}")}
                                   for i in range(N)])
        try:
            wait_for(lambda: pgv(uri, "SELECT count(*) FROM jobs WHERE state = 3") == N,
                     timeout=60 + N / 20, step=0.2, what="every create succeeded")
            finished = True
        except TimeoutError:
            finished = False
            s.stop(signal.SIGKILL)
        wall = time.monotonic() - t0
        sends = proxy.chunks_up - sends
        durs = [int(r[0]) for r in cluster.sql("SELECT duration_ms FROM attempts WHERE "
                                               "duration_ms IS NOT NULL", uri=uri)]
        first, last, calls = cluster.sql(span_sql(), uri=uri)[0]
        calls = int(calls)
        span = (int(last) - int(first)) / 1000.0 if calls else 0
        return {"bench": "pg-slow", "db_delay_ms_each_way": delay_ms, "n": N,
                "pipeline": pipeline,
                "finished": finished, "calls": calls,
                "calls_per_sec": round(calls / span) if span > 0 else None,
                "duration_ms_p50": pct(durs, 50), "duration_ms_p90": pct(durs, 90),
                "duration_ms_max": max(durs, default=None),
                "db_sends_per_attempt": round(sends / calls, 1) if calls else None,
                "wall_from_drop_s": round(wall, 2)}
    finally:
        s.cleanup()
        cluster.sql(f'DROP DATABASE "{uri.rsplit("/", 1)[1]}" WITH (FORCE)')


def slow():
    emu = Emulator()
    proxy = DelayProxy(cluster.port, 0, target_host=cluster.parts.hostname)
    proxy.start()
    try:
        for ms in SLOW_MS:
            for pipeline in (True, False):
                emu.admin("/__emu/reset", {})
                out(slow_run(emu, proxy, ms, pipeline))
    finally:
        proxy.stop()
        emu.stop()


try:
    for part in PARTS:
        t0 = time.monotonic()
        {"throughput": throughput, "rescue": rescue, "claims": claims, "slow": slow}[part]()
        print(f"# {part}: {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
finally:
    cluster.stop()
