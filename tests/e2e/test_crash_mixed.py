"""e2e crash_mixed - kill -9 the daemon 20 times at random (seeded) moments while it runs a
mixed batch of 1,000 jobs against the emulator (answers delayed 5 ms, so kills land
mid-request, mid-pagination and mid-commit): 550 keyed createSource, 150 updateSource and
150 deleteSource of sources made in a first clean phase, 50 addConnectionFromSourceToWarehouse
of the updated ones, 99 paginated catalog exports and one event-volume fan-out split by day
over 10 days. Job files arrive in waves while the
daemon runs.

After every kill: no job file lost or duplicated (incoming + archive + rejected == dropped),
the store holds no more and no fewer jobs than the files it took, no key twice, every output
file parses whole (a .part may be left only as a hidden dotfile), and the next start requeues
exactly the jobs the kill left running. After a final clean run: every job terminal, none
running, every file archived once, each job stored once from the file it came in, no
mutation sent more often than attempts were recorded for it and none after its recorded
success (a second send only after an "unknown"/"interrupted" attempt), every mutation
succeeded (a create or delete whose answer a kill lost is reconciled: looked up, or its
404 taken as done, never failed with 409/404), the emulator applied each create and each
delete exactly once (its "applied" counts) and never answered a create 409, its state
matches (each slug created once, deleted sources gone, renames applied), and every export
/ fan-out output equals the one a clean run produced.

Runtime: about 45 s on 2 cores (CRASH_MIXED_ROUNDS, CRASH_MIXED_SEED override)."""
import json
import os
import random
import re
import shutil
import signal
import time

from harness import Checks, Emulator, Spool, listdir, results_by_id

c = Checks("crash_mixed")
SEED = int(os.environ.get("CRASH_MIXED_SEED", "20261126"))
ROUNDS = int(os.environ.get("CRASH_MIXED_ROUNDS", "20"))
rng = random.Random(SEED)

JS = "IqDTy1TpoU"  # Javascript source metadata
N_SEED, N_CREATE, N_UPDATE, N_DELETE, N_EXPORT = 300, 550, 150, 150, 99
N_CONNECT = 50  # of the updated sources (not the deleted ones)
WAREHOUSES = ["wh_1", "wh_2", "wh_3"]
CATALOG = 300
RETRY = {"max_attempts": 40}
TERMINAL = {"succeeded", "failed", "dead", "cancelled"}
LOST = {"unknown", "interrupted"}
VOLUME_PARAMS = {"granularity": "DAY", "startTime": "2026-10-01T00:00:00Z",
                 "endTime": "2026-10-11T00:00:00Z"}


def outputs_whole(out_dir, what):
    """every visible file under out/ parses whole; a .part only as a hidden dotfile.
    Returns the number of hidden .part leftovers."""
    bad, hidden_parts = [], 0
    for dirpath, _dirs, files in os.walk(out_dir):
        for name in files:
            path = os.path.join(dirpath, name)
            if name.endswith(".part"):
                if name.startswith("."):
                    hidden_parts += 1
                else:
                    bad.append(f"{path}: a visible .part file")
                continue
            if name.startswith("."):
                bad.append(f"{path}: an unexpected hidden file")
                continue
            try:
                with open(path, "rb") as f:
                    data = f.read()
                text = data.decode()
                if name.endswith(".jsonl"):
                    if text and not text.endswith("\n"):
                        raise ValueError("last line not terminated")
                    for line in text.splitlines():
                        json.loads(line)
                else:
                    json.loads(text)
            except (ValueError, UnicodeDecodeError) as e:
                bad.append(f"{path}: {e}")
    c.check(not bad, f"{what}: every output file complete or absent: {bad[:5]}")
    return hidden_parts


def file_counts(s):
    inc = listdir(os.path.join(s.spool, "incoming"))
    arc = listdir(os.path.join(s.spool, "archive"))
    rej = [n for n in listdir(os.path.join(s.spool, "rejected")) if not n.endswith(".error.json")]
    return inc, arc, rej


def recovered_by(s, pid):
    m = re.search(rf"segspool\[{pid}\] \w+: recovered (\d+) job", s.log_text())
    return int(m.group(1)) if m else 0


def started(s, pid):
    return f"segspool[{pid}] info: running on spool" in s.log_text()


emu = Emulator("--delay-ms", "5", "--catalog-size", str(CATALOG), "--seed", "7")
s = Spool(emu.url, config={"endpoint_limits": False, "http": {"max_in_flight": 2},
                           "retry": {"max_attempts": 40, "initial_ms": 20, "max_ms": 200}})
t0 = time.monotonic()
try:
    # --- phase 1, clean: the sources to update and delete, and reference outputs --------
    seed_jobs = [{"op": "createSource", "key": f"seed-{i}", "params": {
        "slug": f"seed-{i:03d}", "enabled": True, "metadataId": JS,
        "disconnectAllWarehouses": True}} for i in range(N_SEED)]
    seed_jobs.append({"op": "getSourcesCatalog", "paginate": {"max_pages": 100, "count": 50},
                      "output": "ref/catalog.jsonl"})
    seed_jobs.append({"op": "getEventsVolumeFromWorkspace", "params": VOLUME_PARAMS,
                      "split": "1d", "output": "ref/volume.jsonl"})
    s.drop_jobs("seed.json", seed_jobs)
    c.eq(s.run_until_idle(timeout=120), 0, "phase 1: clean run exits 0")
    phase1 = s.jobs()
    c.eq({j["state"] for j in phase1}, {"succeeded"}, "phase 1: every job succeeded")
    phase1_ids = {j["id"] for j in phase1}
    by_slug = {src["slug"]: src["id"] for src in emu.state()["sources"]}
    seed_ids = [by_slug.get(f"seed-{i:03d}") for i in range(N_SEED)]
    c.check(all(seed_ids), "phase 1: every seed source exists in the emulator")
    ref_catalog = open(s.out_path("ref/catalog.jsonl"), "rb").read()
    ref_volume = open(s.out_path("ref/volume.jsonl"), "rb").read()
    c.eq(len(ref_catalog.splitlines()), CATALOG, "phase 1: reference export has every entry")
    c.check(len(ref_volume.splitlines()) > 0, "phase 1: reference fan-out output has items")
    emu.admin("/__emu/reset", {})

    # --- the crash batch ------------------------------------------------------------
    jobs = []
    for i in range(N_CREATE):
        jobs.append({"op": "createSource", "key": f"crash-create-{i}", "retry": RETRY,
                     "params": {"slug": f"crash-{i:03d}", "enabled": True, "metadataId": JS,
                                "disconnectAllWarehouses": True}})
    for i in range(N_UPDATE):
        jobs.append({"op": "updateSource", "retry": RETRY,
                     "params": {"sourceId": seed_ids[i], "name": f"renamed-{i:03d}"}})
    for i in range(N_DELETE):
        jobs.append({"op": "deleteSource", "retry": RETRY,
                     "params": {"sourceId": seed_ids[N_UPDATE + i]}})
    for i in range(N_CONNECT):
        jobs.append({"op": "addConnectionFromSourceToWarehouse", "retry": RETRY,
                     "params": {"warehouseId": WAREHOUSES[i % 3], "sourceId": seed_ids[i]}})
    for i in range(N_EXPORT):
        jobs.append({"op": "getSourcesCatalog", "retry": RETRY,
                     "paginate": {"max_pages": 100, "count": 50},
                     "output": f"exports/cat-{i:03d}.jsonl"})
    jobs.append({"op": "getEventsVolumeFromWorkspace", "params": VOLUME_PARAMS, "split": "1d",
                 "retry": RETRY, "output": "volume/crash.jsonl"})
    c.eq(len(jobs), 1000, "the batch has 1,000 jobs")
    rng.shuffle(jobs)
    files = []  # (name, jobs)
    k = 0
    while k < len(jobs):
        n = rng.randint(1, 25)
        ext = "jsonl" if len(files) % 3 == 2 else "json"
        files.append((f"batch-{len(files):03d}.{ext}", jobs[k:k + n]))
        k += n
    file_of = {}  # identity -> file name
    jobs_in = {}  # file name -> job count

    def ident(spec):
        p = spec.get("params") or {}
        if spec["op"] == "createSource":
            return ("create", p.get("slug"))
        if spec["op"] in ("updateSource", "deleteSource", "addConnectionFromSourceToWarehouse"):
            return (spec["op"], p.get("sourceId"))
        return (spec["op"], spec.get("output"))

    for name, fj in files:
        jobs_in[name] = len(fj)
        for j in fj:
            file_of[ident(j)] = name
    c.eq(len(file_of), 1000, "every job of the batch has its own identity")
    waves = 5
    wave_rounds = [r * max(1, ROUNDS // waves) for r in range(waves)]
    per_wave = (len(files) + waves - 1) // waves
    wave_files = [files[w * per_wave:(w + 1) * per_wave] for w in range(waves)]
    dropped = []

    kills = kills_mid_run = 0
    hidden_parts_seen = 0
    running_before = 0
    for rnd in range(ROUNDS):
        running_before = len(s.jobs("running"))
        p = s.start(ready=False)
        if rnd in wave_rounds:
            time.sleep(rng.uniform(0.0, 0.15))
            for name, fj in wave_files[wave_rounds.index(rnd)]:
                s.drop_jobs(name, fj)
                dropped.append(name)
        time.sleep(rng.uniform(0.05, 0.6))
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += 1
        if started(s, p.pid):
            c.eq(recovered_by(s, p.pid), running_before,
                 f"round {rnd}: the start requeued every job the previous kill left running")
        if running_before:
            kills_mid_run += 1
        # invariants with the daemon dead
        inc, arc, rej = file_counts(s)
        c.eq(len(inc) + len(arc) + len(rej), len(dropped) + 1,
             f"round {rnd}: job files in incoming+archive+rejected == files dropped")
        c.eq(rej, [], f"round {rnd}: nothing rejected")
        c.eq(sorted(set(inc) | set(arc)), sorted(set(dropped) | {"seed.json"}),
             f"round {rnd}: each dropped file is in incoming/ or archive/")
        top = [j for j in s.jobs() if j["parent"] is None and j["id"] not in phase1_ids]
        archived_jobs = sum(jobs_in[n] for n in arc if n in jobs_in)
        incoming_jobs = sum(jobs_in[n] for n in inc if n in jobs_in)
        c.check(archived_jobs <= len(top) <= archived_jobs + incoming_jobs,
                f"round {rnd}: {len(top)} jobs stored; archived files hold {archived_jobs}, "
                f"incoming {incoming_jobs}")
        keys = [j["key"] for j in s.jobs() if j["key"]]
        c.eq(len(keys), len(set(keys)), f"round {rnd}: no key stored twice")
        hidden_parts_seen += outputs_whole(s.out_path(""), f"round {rnd}")
    print(f"{kills} kills, {kills_mid_run} with jobs running, {hidden_parts_seen} hidden .part "
          f"leftovers seen; {time.monotonic() - t0:.1f} s", flush=True)
    c.eq(len(dropped), len(files), "every wave was dropped during the rounds")
    c.check(kills_mid_run >= 5, f"kills landed while jobs ran ({kills_mid_run} of {kills})")

    # --- a clean run to completion --------------------------------------------------
    running_before = len(s.jobs("running"))
    c.eq(s.run_until_idle(timeout=120), 0, "final clean run exits 0")
    c.eq(recovered_by(s, s.daemon.pid), running_before,
         "the final start requeued every job the last kill left running")
    inc, arc, rej = file_counts(s)
    c.eq(inc, [], "incoming/ is empty")
    c.eq(rej, [], "nothing rejected")
    c.eq(sorted(arc), sorted([n for n, _ in files] + ["seed.json"]), "every file archived once")
    all_jobs = s.jobs()
    states = {}
    for j in all_jobs:
        states[j["state"]] = states.get(j["state"], 0) + 1
    print(f"final states: {states}", flush=True)
    c.check(set(states) <= TERMINAL, f"every job is terminal: {states}")
    c.eq(states.get("running", 0), 0, "no job left running")
    top = [j for j in all_jobs if j["parent"] is None and j["id"] not in phase1_ids]
    c.eq(len(top), 1000, "the store holds each of the 1,000 jobs (none lost, none twice)")
    children = [j for j in all_jobs if j["parent"] is not None and j["id"] not in phase1_ids]
    c.eq(len(children), 10, "the fan-out made 10 children, once")
    c.check("already recorded as job" not in s.log_text(),
            "no file was ingested a second time (no duplicate-key notices)")

    emu_stats = emu.stats()
    mutations, applied = emu_stats["mutations"], emu_stats["applied"]
    st = emu.state()
    slugs = [src["slug"] for src in st["sources"]]
    names = {src["id"]: src.get("name") for src in st["sources"]}
    seen, lost_outcomes = {}, 0
    results_cache = {}

    def results_of(rel):
        if rel not in results_cache:
            results_cache[rel] = results_by_id(s, rel)
        return results_cache[rel]

    # one results file per file of several jobs (issue 13), whole, after 20 kills: never a
    # second one (NAME-2), never one for a single-job file
    want_results = sorted([f"{n.rsplit('.', 1)[0]}.results.jsonl" for n, fj in files
                           if len(fj) > 1] + ["seed.results.jsonl"])  # phase 1's too
    c.eq(listdir(s.out_path("results")), want_results,
         "exactly one results file per file of several jobs, none for a single job")
    short = [(n, len(results_of(f"results/{n.rsplit('.', 1)[0]}.results.jsonl")), len(fj))
             for n, fj in files if len(fj) > 1 and
             len(results_of(f"results/{n.rsplit('.', 1)[0]}.results.jsonl")) != len(fj)]
    c.eq(short, [], "each results file has a line for every job of its file")
    problems = {"file": [], "resend": [], "after_ok": [], "outcome": [], "output": [],
                "applied": []}
    reconciled = {}
    for j in top:
        sh = s.show(j["id"])
        spec = sh["spec"]
        idn = ident(spec)
        seen[idn] = seen.get(idn, 0) + 1
        if file_of.get(idn) != sh["source_file"]:
            problems["file"].append((idn, sh["source_file"], file_of.get(idn)))
        atts = sh["attempts"]
        outcomes = [a["outcome"] for a in atts]
        lost_outcomes += sum(o in LOST for o in outcomes)
        op = spec["op"]
        if op in ("createSource", "updateSource", "deleteSource",
                  "addConnectionFromSourceToWarehouse"):
            if "ok" in outcomes and outcomes.index("ok") != len(outcomes) - 1:
                problems["after_ok"].append((j["id"], outcomes))
            p = spec["params"]
            mkey = (f"createSource slug={p['slug']}" if op == "createSource" else
                    f"{op} {p['warehouseId']}/{p['sourceId']}" if "warehouseId" in p
                    else f"{op} {p['sourceId']}")
            sent = mutations.get(mkey, 0)
            before_ok = outcomes[:outcomes.index("ok")] if "ok" in outcomes else outcomes
            if sent > len(atts) or (sent > 1 and not any(o in LOST for o in before_ok)):
                problems["resend"].append((j["id"], mkey, sent, outcomes))
            last = atts[-1]["http_status"] if atts else None
            # a lost answer is reconciled: the create found by its slug, the delete's 404
            # taken as done; never a job failed with 409/404
            if sh["state"] != "succeeded" or sent < 1:
                problems["outcome"].append((j["id"], op, sh["state"], sent, outcomes, last))
            if "reconciled" in outcomes:
                reconciled[op] = reconciled.get(op, 0) + 1
                if outcomes[-1] != "reconciled" or not any(o in LOST for o in outcomes):
                    problems["outcome"].append((j["id"], op, "reconciled", outcomes))
            if op != "updateSource" and applied.get(mkey, 0) != 1:
                problems["applied"].append((j["id"], mkey, applied.get(mkey, 0), outcomes))
            if sh["state"] == "succeeded":
                try:
                    if sh["output"]:
                        doc = json.load(open(s.out_path(sh["output"])))
                    else:  # a job of a batch: its line in the file's results file
                        line = results_of(sh["file"]["results"])[j["id"]]
                        if line["state"] != "succeeded":
                            raise ValueError(f"results line {line['state']}")
                        doc = line["result"]
                    if op == "createSource" and doc["source"]["slug"] != p["slug"]:
                        raise ValueError("wrong slug")
                except (OSError, ValueError, KeyError, TypeError) as e:
                    problems["output"].append((j["id"], sh["output"], str(e)))
        else:
            if sh["state"] != "succeeded":
                problems["outcome"].append((j["id"], op, sh["state"], sh["error"]))
                continue
            want = ref_volume if op == "getEventsVolumeFromWorkspace" else ref_catalog
            try:
                got = open(s.out_path(sh["output"]), "rb").read()
            except OSError as e:
                got = str(e).encode()
            if got != want:
                problems["output"].append((j["id"], sh["output"], len(got), len(want)))
    c.eq(sorted(k for k, v in seen.items() if v != 1), [], "each job stored exactly once")
    c.eq(len(seen), 1000, "every job of the batch is stored")
    c.eq(problems["file"], [], "each job came from the file it was dropped in")
    c.eq(problems["after_ok"], [], "no mutation attempt after its recorded success")
    c.eq(problems["resend"], [],
         "no mutation sent more often than its attempts, nor twice without a lost answer")
    c.eq(problems["outcome"][:5], [],
         "every mutation succeeded (reconciled only after a lost answer); exports succeeded")
    c.eq(problems["applied"][:5], [],
         "the emulator applied each create and each delete exactly once")
    c.eq(emu_stats["by_status"].get("409", 0), 0, "no create met 409 (none resent blindly)")
    c.eq(problems["output"][:5], [],
         "every succeeded job's output is whole and equals the clean run's")
    resent = sum(1 for v in mutations.values() if v > 1)
    print(f"{lost_outcomes} attempts recorded unknown/interrupted; {resent} mutation(s) sent "
          f"more than once; {states.get('failed', 0)} job(s) failed; reconciled {reconciled}",
          flush=True)
    c.check(lost_outcomes > 0, "some kills landed mid-request (attempts recorded as lost)")
    c.eq(sorted(sl for sl in set(slugs) if slugs.count(sl) > 1), [], "no slug created twice")
    c.eq([i for i in range(N_CREATE) if f"crash-{i:03d}" not in slugs], [],
         "every createSource is applied in the emulator")
    c.eq([i for i in range(N_UPDATE) if names.get(seed_ids[i]) != f"renamed-{i:03d}"], [],
         "every updateSource is applied")
    c.eq([i for i in range(N_DELETE) if seed_ids[N_UPDATE + i] in names], [],
         "every deleteSource is applied")
    conns = {(x["warehouseId"], x["sourceId"]) for x in st.get("connections", [])}
    c.eq([i for i in range(N_CONNECT) if (WAREHOUSES[i % 3], seed_ids[i]) not in conns], [],
         "every connection is made")
    leftover = outputs_whole(s.out_path(""), "final")
    parts = sorted(os.path.relpath(os.path.join(d, n), s.out_path(""))
                   for d, _, fs in os.walk(s.out_path("")) for n in fs if n.endswith(".part"))
    print(f"{leftover} hidden .part leftover(s) after the clean run: {parts[:10]}", flush=True)
    print(f"total {time.monotonic() - t0:.1f} s", flush=True)
finally:
    s.cleanup()
    emu.stop()
    shutil.rmtree(emu.dir, ignore_errors=True)
c.finish()
