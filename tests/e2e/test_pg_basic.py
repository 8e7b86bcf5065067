"""e2e pg_basic - one daemon on the PostgreSQL store (issue 15): "db" a postgresql:// URI
(with a password, which must never show), a throwaway cluster (harness.PgCluster).

The daemon migrates the empty database on start and joins as a node (a nodes row with its
pid and a lease in the future). It runs a mixed file: keyed creates, a paginated export
(three pages), a source and a warehouse connection taking the source's id by $ref, a
create the API refuses (failed); a single-job file due in an hour stays queued. Then the
CLI, on a second spool with the same URI and no daemon (no segspool.db ever appears
there), reads the store: list, show (the $ref resolved in the attempt, the pages),
stats, metrics; it cancels the queued job and retries the failed one, and the daemon
acts on both without a control file (cancelled: never sent; retried: a second attempt).
A key already in the store is a duplicate, not a second job. Outputs and the results file
are on the daemon's spool. The emulator saw each mutation once.
"""
import json
import os
import re
import time

from harness import (Checks, Emulator, Spool, emu_cleanup, iso_from_ms, listdir,
                     pg_cluster_or_skip, results_by_id, wait_for)

c = Checks("pg_basic")
JS = "IqDTy1TpoU"
PASSWORD = "pw-e2e-9f3b7c1d"
CATALOG = 120
N_CREATE = 20
TERMINAL = {"succeeded", "failed", "dead", "cancelled"}


def create(i):
    return {"op": "createSource", "key": f"basic-{i}",
            "params": {"slug": f"basic-{i:02d}", "enabled": True, "metadataId": JS}}


def by_key(s):
    return {j["key"]: j for j in s.jobs() if j.get("key")}


cluster = pg_cluster_or_skip(c)
plain = cluster.create_db("basic")
dbname = plain.rsplit("/", 1)[1]
uri = cluster.uri(dbname, password=PASSWORD)
emu = Emulator("--seed", "5", "--catalog-size", str(CATALOG))
d = Spool(emu.url, config={"db": uri, "lease_s": 6, "endpoint_limits": False})
cli = Spool(emu.url, config={"db": uri})  # never a daemon here
outputs = []  # every CLI output, checked for the password at the end


def run_cli(*args, check=False):
    r = cli.cli(*args, check=check)
    outputs.append(r.stdout + r.stderr)
    return r


def cli_jobs():
    r = run_cli("list", "--json", "--limit", "0", check=True)
    return [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]


def cli_show(job_id):
    r = run_cli("show", str(job_id), "--json", check=True)
    return json.loads(r.stdout)


def migrated_and_joined():
    tables = {r[0] for r in cluster.sql("SELECT table_name FROM information_schema.tables "
                                        "WHERE table_schema = current_schema()", uri=plain)}
    for t in ("jobs", "attempts", "nodes", "buckets", "files"):
        c.check(t in tables, f"the daemon's start created table {t}: {sorted(tables)}")
    c.check(any("version" in t for t in tables), f"a schema version table: {sorted(tables)}")
    rows = cluster.sql("SELECT pid, dead, lease_until_ms - "
                       "(extract(epoch from clock_timestamp())*1000)::bigint FROM nodes",
                       uri=plain)
    c.eq(len(rows), 1, "one nodes row")
    if rows:
        c.eq(int(rows[0][0] or 0), d.daemon.pid, "the nodes row has the daemon's pid")
        c.eq(rows[0][1], "0", "the node is alive")
        c.check(0 < int(rows[0][2]) <= 6000, f"its lease ends within lease_s: {rows[0][2]} ms")


def mixed_batch():
    jobs = [create(i) for i in range(N_CREATE)]
    jobs.append({"op": "createSource", "key": "refused",
                 "params": {"slug": "basic-refused", "enabled": True, "metadataId": "nope"}})
    jobs.append({"op": "addConnectionFromSourceToWarehouse", "key": "conn",
                 "params": {"warehouseId": "wh_1", "sourceId": {"$ref": "src-ref#/source/id"}}})
    jobs.append({"op": "createSource", "key": "src-ref",
                 "params": {"slug": "basic-ref", "enabled": True, "metadataId": JS}})
    jobs.append({"op": "getSourcesCatalog", "key": "export",
                 "paginate": {"max_pages": 10, "count": 50}, "output": "exports/catalog.jsonl"})
    later = iso_from_ms(int(time.time() * 1000) + 3600_000)
    d.drop_jobs("batch.json", jobs)
    d.drop_jobs("later.json", {"op": "getWarehouse", "key": "later", "not_before": later,
                               "params": {"warehouseId": "wh_2"}, "output": False})
    want = len(jobs) + 1
    wait_for(lambda: (lambda js: len(js) == want and
                      sum(j["state"] in TERMINAL for j in js) == want - 1)(cli_jobs()),
             timeout=60, step=0.3, what="every job but the later one ended")
    jobs_ = {j["key"]: j for j in cli_jobs()}
    c.eq({k: j["state"] for k, j in jobs_.items() if k.startswith("basic-")},
         {f"basic-{i}": "succeeded" for i in range(N_CREATE)}, "every create succeeded")
    c.eq(jobs_["refused"]["state"], "failed", "the refused create failed")
    c.check("404" in (jobs_["refused"].get("reason") or ""),
            f"with the API's reason: {jobs_['refused'].get('reason')}")
    c.eq(jobs_["later"]["state"], "queued", "the job due in an hour is queued")
    for k in ("conn", "src-ref", "export"):
        c.eq(jobs_[k]["state"], "succeeded", f"{k} succeeded")

    src = cli_show(jobs_["src-ref"]["id"])
    conn = cli_show(jobs_["conn"]["id"])
    sid = (src.get("result") or {}).get("source", {}).get("id")
    c.check(bool(sid), "show: the source's result has its id")
    c.eq([a.get("resolved") for a in conn["attempts"]], [{"/sourceId": sid}],
         "show: the connection's attempt sent the referenced id")
    exp = cli_show(jobs_["export"]["id"])
    c.eq(len(exp["pages"]), 3, "show: the export's three pages")
    c.eq(exp.get("output"), "exports/catalog.jsonl", "show: the export's output")
    path = d.out_path("exports/catalog.jsonl")
    c.check(os.path.isfile(path), "the export's output is on the daemon's spool")
    if os.path.isfile(path):
        lines = open(path).read().splitlines()
        c.eq(len(lines), CATALOG, "the export has every catalog entry")
        c.eq(len({json.loads(line)["id"] for line in lines}), CATALOG, "each once")
    res = wait_for(lambda: results_by_id(d, "results/batch.results.jsonl"), timeout=20,
                   what="the batch's results file on the daemon's spool")
    c.eq(len(res), len(jobs), "the results file has a line per job")
    c.eq(res.get(jobs_["src-ref"]["id"], {}).get("result"), src.get("result"),
         "its line for the source is the stored result")
    c.eq(listdir(cli.out_path("results")), [], "no results file on the CLI's spool")

    st = json.loads(run_cli("stats", "--json", check=True).stdout)
    c.eq({k: v for k, v in st["jobs"].items() if v},
         {"succeeded": N_CREATE + 3, "failed": 1, "queued": 1}, "stats: jobs by state")
    c.check(st.get("requests", 0) >= N_CREATE + 1 + 2 + 3, f"stats: requests {st.get('requests')}")
    r = run_cli("list")
    c.eq(r.returncode, 0, "list (the table) exits 0")
    c.check(b"basic-refused" in r.stdout or b"refused" in r.stdout, "list shows the jobs")
    r = run_cli("metrics")
    c.eq(r.returncode, 0, f"metrics exits 0 ({r.stderr[-200:]!r})")
    c.check(b"segspool_jobs" in r.stdout, "metrics has the jobs gauge")


def control_from_elsewhere():
    jobs_ = {j["key"]: j for j in cli_jobs()}
    later, refused = jobs_["later"]["id"], jobs_["refused"]["id"]
    r = run_cli("cancel", str(later))
    c.eq(r.returncode, 0, f"cancel from the CLI's spool exits 0 ({r.stderr[-300:]!r})")
    wait_for(lambda: cli_show(later)["state"] == "cancelled", timeout=20, step=0.2,
             what="the later job cancelled")
    r = run_cli("retry", str(refused))
    c.eq(r.returncode, 0, f"retry from the CLI's spool exits 0 ({r.stderr[-300:]!r})")
    sh = wait_for(lambda: (lambda s: s if len(s["attempts"]) == 2 and s["state"] in TERMINAL
                           else None)(cli_show(refused)),
                  timeout=20, step=0.2, what="the retried job ran again")
    c.eq(sh["state"], "failed", "the retried job failed again (the API still refuses it)")
    c.eq(listdir(os.path.join(cli.spool, "control")), [], "no control file on the CLI's spool")
    c.eq(listdir(os.path.join(d.spool, "control")), [], "none on the daemon's")
    c.check(not os.path.exists(os.path.join(cli.spool, "segspool.db")),
            "the CLI made no SQLite store on its spool")
    st = emu.stats()
    c.check("getWarehouse" not in (st.get("by_op") or {}), f"the cancelled job was never sent: "
            f"{st.get('by_op')}")


def duplicate_key():
    before = len(cli_jobs())
    d.drop_jobs("again.json", [create(0), create(N_CREATE)])
    res = wait_for(lambda: results_by_id(d, "results/again.results.jsonl"), timeout=20,
                   what="the second file's results file")
    c.eq(len(cli_jobs()), before + 1, "a key already in the store adds no job")
    dup = [line for line in res.values() if line.get("duplicate")]
    c.eq(len(dup), 1, f"its line says duplicate: {list(res.values())}")
    applied = emu.stats().get("applied") or {}
    c.eq(applied.get("createSource slug=basic-00"), 1, "the duplicate was not sent again")
    twice = {k: n for k, n in (emu.stats().get("mutations") or {}).items() if n != 1}
    c.eq(twice, {"createSource slug=basic-refused": 2}, "every other mutation sent once")


def later_id_key():
    """a key held by a job whose id is above the file's own: on a shared store another
    daemon ingesting at the same time takes ids from the one sequence in turns with this
    one (here: a row put in with an explicit id, which the sequence never gave). It is a
    duplicate, not this file repeating its key: the file is archived, its other job in."""
    cluster.sql("INSERT INTO jobs (id, state, op_id, spec_json, key, next_run_ms, created_ms, "
                "updated_ms) VALUES (1000000000, 4, 'listSources', '{\"op\":\"listSources\"}', "
                "'later-id', 0, 0, 0)", plain)
    d.drop_jobs("later.json", [create(N_CREATE + 1), {"op": "listSources", "key": "later-id"}])
    wait_for(lambda: "later.json" not in listdir(os.path.join(d.spool, "incoming")),
             timeout=20, what="later.json ingested")
    c.check("later.json" in listdir(os.path.join(d.spool, "archive")),
            f"the file is archived, not left or rejected: {d.log_text()[-400:]}")
    c.check(f"basic-{N_CREATE + 1}" in by_key(d), "its other job was inserted")
    c.check("already recorded as job 1000000000" in d.log_text(),
            "the later id's key is logged as a duplicate")


def unreachable_database():
    """a database that does not answer: status says the store cannot be read (not that
    there is none yet), and retry fails without leaving a control file no daemon reads"""
    gone = Spool(emu.url, config={"db": f"postgresql://segspool:{PASSWORD}@127.0.0.1:1/x"})
    try:
        r = gone.cli("status")
        out = r.stdout + r.stderr
        outputs.append(out)
        c.eq(r.returncode, 1, "status on an unreachable database: exit 1 (cannot read)")
        c.check(b"cannot be read" in r.stdout and b"cannot connect" in r.stderr,
                f"and says so: {out[-400:]!r}")
        c.check(b"no store yet" not in r.stdout, "not that there is no store yet")
        r = gone.cli("retry", "5")
        outputs.append(r.stdout + r.stderr)
        c.check(r.returncode != 0, f"retry fails: {r.returncode}")
        c.eq(listdir(os.path.join(gone.spool, "control")), [], "and leaves no control file")
    finally:
        gone.cleanup()


def no_password():
    c.eq(d.stop(), 0, "SIGTERM: the daemon exits 0")
    texts = {"daemon log": d.log_text().encode()}
    texts["cli outputs"] = b"".join(outputs)
    r = run_cli("status")
    texts["status"] = r.stdout + r.stderr
    for dirpath, _dirs, files in os.walk(d.root):
        for name in files:
            p = os.path.join(dirpath, name)
            if p != d.config_path:
                texts[p] = open(p, "rb").read()
    leaked = [k for k, v in texts.items() if PASSWORD.encode() in v]
    c.eq(leaked, [], "the database password appears in no log, output or file")
    c.check(re.search(rb"postgres", texts["daemon log"]) is not None,
            "the daemon's log names the store (without the password)")


try:
    d.start()
    if c.check(d.daemon.poll() is None, f"the daemon runs on the PostgreSQL store: "
               f"{d.log_text()[-600:]}"):
        c.run_parts([migrated_and_joined, mixed_batch, control_from_elsewhere, duplicate_key,
                     later_id_key, unreachable_database, no_password])
finally:
    d.cleanup()
    cli.cleanup()
    emu_cleanup(emu)
    cluster.stop()
c.finish()
