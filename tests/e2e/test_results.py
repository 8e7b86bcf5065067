"""e2e results - one results file per batch (issue 13): a spool file of more than one job
gets out/results/NAME.results.jsonl, one line per job in the file's order, once every job
of it has ended, and its jobs write no output file each unless they name one.

- a JSON Lines batch (with a blank line) of successes, a 404 failure, a key already
  recorded by an earlier file and a job with an explicit "output", one job held back by
  not_before: while it waits there is no results file and `list --file` and `show` say how
  far the file is; then the file appears, its lines in the file's order with their line
  numbers, ids, keys, states and results or errors; the duplicate line names the job that
  holds the key; the only output files are the named one and the single-job file's;
- a single-job file keeps its output file and gets no results file;
- a name taken in out/results/ gives NAME-2; a file given to `segspool submit` is named as
  the user named it, without submit's prefix; a JSON array's lines are its positions;
- a file larger than a chunk of ingest: lines numbered across chunks; a problem, a key
  twice or an output twice in different chunks rejects it whole with the right line;
- a file's last job cancelled by the CLI while no daemon runs: the next start writes it;
- kill -9 of the daemon around the end of a batch, a few rounds: never a partial or a
  second results file; after the last restart exactly one, whole.

Runtime: about 20 s."""
import glob
import json
import os
import random
import signal
import sqlite3
import time

from harness import Checks, Emulator, Spool, iso_from_ms, wait_for

c = Checks("results")
JS = "IqDTy1TpoU"  # Javascript source metadata
TERMINAL = {"succeeded", "failed", "dead", "cancelled"}


def create(slug, **extra):
    return dict({"op": "createSource", "params": {"slug": slug, "enabled": True,
                                                  "metadataId": JS}}, **extra)


def results_files(s):
    return sorted(glob.glob(os.path.join(s.out_path("results"), "*")))


def read_lines(path):
    with open(path) as f:
        text = f.read()
    c.check(text.endswith("\n"), f"{path}: ends with a newline")
    return [json.loads(line) for line in text.splitlines()]


def outputs(s):
    """the files under out/, but results/ (relative paths)."""
    out = s.out_path("")
    found = []
    for dirpath, _dirs, files in os.walk(out):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), out)
            if not rel.startswith("results" + os.sep):
                found.append(rel)
    return sorted(found)


def part_batch(emu):
    s = Spool(emu.url)
    try:
        # a single-job file: its output file as before, no results file
        s.drop_jobs("first.json", [create("old", key="old")])
        c.eq(s.run_until_idle(timeout=60), 0, "single-job run exit status")
        old = s.jobs()[0]
        c.eq(outputs(s), [f"createSource-{old['id']}.json"], "a single-job file keeps its output")
        c.eq(results_files(s), [], "a single-job file has no results file")

        later = iso_from_ms(int(time.time() * 1000) + 4000)
        jobs = [create("r0", key="r0"), create("r1", key="r1"), None,
                create("bad", key="bad"), create("old-again", key="old"),
                create("named", output="named.json"), create("late", key="late",
                                                             not_before=later)]
        jobs[3]["params"]["metadataId"] = "nope"  # 404: no such source metadata
        s.drop("batch.jsonl", "".join((json.dumps(j) if j else "") + "\n" for j in jobs))
        s.start()
        wait_for(lambda: {j["state"] for j in s.jobs() if j.get("key") != "late"} <= TERMINAL
                 and len(s.jobs()) == 6, timeout=20, what="all but the held job ended")
        c.eq(results_files(s), [], "no results file while a job of the file waits")
        r = s.cli("list", "--file", "batch.jsonl")
        text = r.stdout.decode()
        c.eq(r.returncode, 0, "list --file exit status")
        c.check("4 of 5 ended" in text and "written when all have" in text,
                f"list --file says how far the file is: {text!r}")
        c.check(text.index("r0") < text.index("r1") < text.index("late"),
                "list --file lists the jobs in the file's order")
        rows = [json.loads(l) for l in s.cli("list", "--file", "batch.jsonl", "--json")
                .stdout.decode().splitlines()]
        c.eq([j["key"] for j in rows], ["r0", "r1", "bad", None, "late"],
             "list --file --json: the file's jobs in its order")
        late = [j for j in rows if j["key"] == "late"][0]
        f = s.show(late["id"]).get("file") or {}
        c.eq((f.get("name"), f.get("line"), f.get("remaining"), f.get("results")),
             ("batch.jsonl", 7, 1, None), "show: the job's file, its line, what remains")

        wait_for(lambda: results_files(s), timeout=20, what="the results file")
        c.eq(results_files(s), [s.out_path("results/batch.results.jsonl")],
             "one results file, named after the file")
        lines = read_lines(s.out_path("results/batch.results.jsonl"))
        c.eq([l["line"] for l in lines], [1, 2, 4, 5, 6, 7],
             "one line per job, in the file's order, with its line number")
        by_key = {j["key"]: j for j in s.jobs() if j["key"]}
        for l in lines:
            c.eq(set(l) - {"duplicate"}, {"line", "id", "key", "op", "state",
                                          "result" if l["state"] == "succeeded" else "error"},
                 f"line {l['line']}: its fields")
            c.eq(l["op"], "createSource", f"line {l['line']}: op")
        c.eq([l["key"] for l in lines], ["r0", "r1", "bad", "old", None, "late"],
             "each line's key")
        c.eq(lines[0]["result"]["source"]["slug"], "r0", "a success's result is its data")
        c.eq(lines[0]["id"], by_key["r0"]["id"], "a line's id is its job's")
        c.eq((lines[2]["state"], lines[2]["error"]["errors"][0]["status"]), ("failed", 404),
             "the 404 failure with the API's error")
        c.eq((lines[3]["id"], lines[3]["state"], lines[3].get("duplicate"),
              lines[3]["result"]["source"]["slug"]), (old["id"], "succeeded", True, "old"),
             "a key already recorded: the line names the job holding it, with its result")
        c.eq((lines[4]["state"], lines[4]["result"]["source"]["slug"]), ("succeeded", "named"),
             "the job with an explicit output is listed too")
        c.eq(lines[5]["state"], "succeeded", "the held job, ended last")
        c.eq(outputs(s), sorted([f"createSource-{old['id']}.json", "named.json"]),
             "no output file per job, but the named one")
        text = s.cli("list", "--file", "batch.jsonl").stdout.decode()
        c.check("results in" in text and "batch.results.jsonl" in text,
                f"list --file then names the results file: {text!r}")
        c.check("batch.results.jsonl" in s.cli("show", str(late["id"])).stdout.decode(),
                "show names the results file")

        # a retry after the results file was written does not rewrite it
        before = open(s.out_path("results/batch.results.jsonl")).read()
        bad_id = lines[2]["id"]
        s.cli("retry", str(bad_id), check=True)
        wait_for(lambda: s.show(bad_id)["state"] in TERMINAL and
                 len(s.show(bad_id)["attempts"]) == 2, timeout=20, what="the retried job")
        s.stop()
        c.eq(open(s.out_path("results/batch.results.jsonl")).read(), before,
             "a job retried later does not rewrite the results file")
        c.eq(len(results_files(s)), 1, "nor adds another")
    finally:
        s.cleanup()


def part_taken(emu):
    s = Spool(emu.url)
    try:
        os.makedirs(s.out_path("results"))
        with open(s.out_path("results/again.results.jsonl"), "w") as f:
            f.write("mine\n")
        path = os.path.join(s.root, "again.json")
        with open(path, "w") as f:
            json.dump([create("a0"), create("a1")], f)
        r = s.cli("submit", path)
        c.eq(r.returncode, 0, f"submit: {r.stderr.decode()}")
        c.eq(s.run_until_idle(timeout=60), 0, "run exit status")
        c.eq(open(s.out_path("results/again.results.jsonl")).read(), "mine\n",
             "a file already at the name is left alone")
        c.eq(results_files(s), [s.out_path("results/again-2.results.jsonl"),
                                s.out_path("results/again.results.jsonl")],
             "the next free name, without submit's prefix")
        lines = read_lines(s.out_path("results/again-2.results.jsonl"))
        c.eq([(l["line"], l["state"]) for l in lines], [(1, "succeeded"), (2, "succeeded")],
             "a JSON array's lines are its positions")
        c.eq(outputs(s), [], "no output file per job")
        c.check("again-2.results.jsonl" in s.cli("list", "--file", "again.json").stdout.decode(),
                "list --file finds a submitted file by the name it was given")
        r = s.cli("list", "--file", "never.json")
        c.check(r.returncode == 1 and b"no file never.json was ingested" in r.stderr,
                f"list --file of a file never ingested says so: {r.stderr!r}")
    finally:
        s.cleanup()


def part_cli_end(emu):
    """the last job of a file cancelled by the CLI while no daemon runs: the next start
    writes the file's results file."""
    s = Spool(emu.url)
    try:
        later = iso_from_ms(int(time.time() * 1000) + 3600000)
        s.drop_jobs("held.json", [create("h0"), create("h1", key="held", not_before=later)])
        s.start()
        wait_for(lambda: len(s.jobs("succeeded")) == 1, timeout=20, what="the first job")
        c.eq(s.stop(), 0, "cli end: the daemon stops")
        c.eq(results_files(s), [], "cli end: no results file while a job waits")
        held = [j for j in s.jobs() if j["key"] == "held"][0]
        c.eq(s.cli("cancel", str(held["id"])).returncode, 0, "cli end: cancel without a daemon")
        c.eq(s.run_until_idle(timeout=60), 0, "cli end: the next run")
        lines = read_lines(s.out_path("results/held.results.jsonl")) \
            if results_files(s) else []
        c.eq([l["state"] for l in lines], ["succeeded", "cancelled"],
             "cli end: the next start writes the results file")
    finally:
        s.cleanup()


def part_large(emu):
    """a JSON Lines file larger than a chunk of ingest (1,000 jobs; the 20,000 of a bench
    run are parsed a chunk at a time): its lines numbered across chunks, blank lines too;
    a problem, a key given twice or an output named twice in different chunks rejects the
    file whole, with the problem's own line."""
    s = Spool(emu.url, config={"log_level": "warn"})
    try:
        n = 2500
        text = ""
        for i in range(n):
            if i % 700 == 0:
                text += "\n"  # blank lines move the line numbers
            text += json.dumps(create(f"big-{i}", key=f"big-{i}")) + "\n"
        s.drop("big.jsonl", text)
        bad = [json.dumps(create(f"bad-{i}", key=f"bad-{i}")) for i in range(n)]
        bad[2399] = json.dumps({"op": "createSourcez", "params": {}})
        s.drop("late-typo.jsonl", "\n".join(bad) + "\n")
        dup = [json.dumps(create(f"dup-{i}", key=f"dup-{i}")) for i in range(n)]
        dup[2100] = json.dumps(create("dup-x", key="dup-10"))
        s.drop("twice.jsonl", "\n".join(dup) + "\n")
        out = [json.dumps(create(f"out-{i}", key=f"out-{i}")) for i in range(n)]
        out[5] = json.dumps(create("out-a", output="same.json"))
        out[1900] = json.dumps(create("out-b", output="same.json"))
        s.drop("outputs.jsonl", "\n".join(out) + "\n")
        c.eq(s.run_until_idle(timeout=120), 0, "large: run exit status")
        rejected = os.path.join(s.spool, "rejected")
        for name, line, what in (("late-typo.jsonl", 2400, "createSourcez"),
                                 ("twice.jsonl", 2101, "duplicate key"),
                                 ("outputs.jsonl", 1901, "same.json")):
            try:
                doc = json.load(open(os.path.join(rejected, name + ".error.json")))
            except OSError:
                doc = {}
            text = json.dumps(doc)
            c.check(what in text and f'"line": {line}' in text,
                    f"large: {name} rejected whole, saying line {line}: {text[:400]}")
        rows = s.jobs()
        c.eq(len(rows), n, "large: only the good file's jobs are recorded")
        lines = read_lines(s.out_path("results/big.results.jsonl"))
        want = []
        line = 0
        for i in range(n):
            if i % 700 == 0:
                line += 1
            line += 1
            want.append(line)
        c.eq([l["line"] for l in lines], want, "large: line numbers across chunks")
        c.eq([l["key"] for l in lines], [f"big-{i}" for i in range(n)], "large: in order")
        c.eq({l["state"] for l in lines}, {"succeeded"}, "large: every job succeeded")
        c.eq(outputs(s), [], "large: no output file per job")
    finally:
        s.cleanup()


def part_kill(seed=13, rounds=5, n=120):
    rng = random.Random(seed)
    emu = Emulator("--delay-ms", "60", "--seed", "5")
    s = Spool(emu.url, config={"http": {"max_in_flight": 2}})
    try:
        s.drop_jobs("crash.jsonl", [create(f"k{i}", key=f"k{i}") for i in range(n)])
        db = os.path.join(s.spool, "segspool.db")

        def remaining():
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
                try:
                    row = con.execute("SELECT remaining, results FROM files").fetchone()
                finally:
                    con.close()
                return row
            except sqlite3.Error:
                return None

        for k in range(rounds):
            s.start()
            # kill nearer the end each round: a few jobs left, the last one, the commit
            # that ends it, the results file being written or just written
            until = [6, 3, 1, 0, 0][k % 5]

            def near_end():
                # read once: a read while the daemon migrates or writes may fail (None)
                row = remaining()
                return row is not None and row[0] is not None and (
                    row[0] <= until or row[1] is not None)
            wait_for(near_end, timeout=30, what=f"round {k}: the end of the batch near")
            time.sleep(rng.uniform(0, 0.05))
            s.daemon.send_signal(signal.SIGKILL)
            s.daemon.wait()
            files = results_files(s)
            print(f"round {k}: killed at {remaining()}, results files {len(files)}", flush=True)
            c.check(len(files) <= 1, f"round {k}: at most one results file: {files}")
            for path in files:
                c.eq(len(read_lines(path)), n, f"round {k}: a results file is whole")
        c.eq(s.run_until_idle(timeout=60), 0, "last run exit status")
        files = results_files(s)
        c.eq(files, [s.out_path("results/crash.results.jsonl")],
             "after the kills, exactly one results file")
        lines = read_lines(files[0]) if files else []
        c.eq([l["line"] for l in lines], list(range(1, n + 1)), "every line, in order")
        c.check(all(l["state"] in TERMINAL for l in lines), "every job ended")
        c.eq(len({l["id"] for l in lines}), n, "each job once")
        c.eq(remaining(), (0, "results/crash.results.jsonl"), "the store says where it is")
        c.eq(outputs(s), [], "no output file per job")
    finally:
        s.cleanup()
        emu.stop()


emu = Emulator("--seed", "3")
try:
    c.run_parts([part_batch, part_taken, part_cli_end, part_large], emu)
finally:
    emu.stop()
c.run_parts([part_kill])
c.finish()
