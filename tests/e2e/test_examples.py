"""e2e examples - every job example a user reads runs green against the bundled emulator.

The examples are the job files of examples/ and the JSON job examples of README.md and
examples/README.md (each ```json block that holds a job or an array of jobs; the others,
such as the configuration example, are left out, and a block that names an "op" but does
not parse fails the test). Each example goes through `segspool validate`, then the real
daemon (`run --until-idle`) against segspool-emu, in a spool and an emulator of its own:
every job, and every child of a split job, must end `succeeded`, with its output file
written where the job says.

Only the emulator's rate limits are lifted (endpoint_limits off), so the event volume
example's 30 windows do not wait out the 60/min limit.
"""
import json
import os
import re
import shutil

from harness import Checks, Emulator, Spool

SRC = os.environ.get("SEGSPOOL_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
EXAMPLES = os.path.join(SRC, "examples")
READMES = [os.path.join(SRC, "README.md"), os.path.join(EXAMPLES, "README.md")]
DONE = ("succeeded", "failed", "dead", "cancelled")


def is_job(doc):
    """is_job - a job document: an object with "op"."""
    return isinstance(doc, dict) and "op" in doc


def readme_examples(c, path):
    """readme_examples - (name, jobs) for each JSON job block of a README."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    found = []
    for n, block in enumerate(re.findall(r"```json\n(.*?)```", text, re.S), 1):
        try:
            doc = json.loads(block)
        except ValueError as e:
            c.check('"op"' not in block, f"{os.path.basename(path)} block {n} parses: {e}")
            continue
        jobs = doc if isinstance(doc, list) else [doc]
        if jobs and all(is_job(j) for j in jobs):
            found.append(("%s#%d" % (os.path.relpath(path, SRC), n), jobs))
    return found


def file_examples():
    """file_examples - (name, jobs, file name) for each job file of examples/."""
    found = []
    for name in sorted(os.listdir(EXAMPLES)):
        path = os.path.join(EXAMPLES, name)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if name.endswith(".jsonl"):
            jobs = [json.loads(line) for line in text.splitlines() if line.strip()]
        elif name.endswith(".json"):
            doc = json.loads(text)
            jobs = doc if isinstance(doc, list) else [doc]
        else:
            continue
        found.append(("examples/" + name, jobs, name))
    return found


def run_example(c, name, jobs, file_name):
    """run_example - one example in a fresh emulator and spool; every job succeeds."""
    e = Emulator()
    s = Spool(e.url, config={"endpoint_limits": False})
    try:
        path = os.path.join(s.root, file_name)
        with open(path, "w") as f:
            if file_name.endswith(".jsonl"):
                f.write("".join(json.dumps(j) + "\n" for j in jobs))
            else:
                f.write(json.dumps(jobs if len(jobs) > 1 else jobs[0]))
        r = s.cli("validate", path)
        if not c.eq(r.returncode, 0, f"{name}: segspool validate accepts it "
                    f"({r.stdout.decode(errors='replace')[:300]}"
                    f"{r.stderr.decode(errors='replace')[:300]})"):
            return
        s.drop_jobs(file_name, jobs)
        c.eq(s.run_until_idle(timeout=120), 0, f"{name}: run --until-idle exits 0")
        rows = s.jobs()
        c.eq(len([j for j in rows if j.get("key") in {x.get("key") for x in jobs}]), len(jobs),
             f"{name}: every job was ingested")
        bad = [(j["id"], j.get("op"), j["state"]) for j in rows if j["state"] != "succeeded"]
        if not c.check(rows and not bad, f"{name}: every job succeeded (not: {bad})"):
            for jid, _, _ in bad[:3]:
                print(f"  job {jid}: {json.dumps(s.show(jid).get('error'))[:600]}")
            return
        split = 0
        for row in rows:
            ch = s.show(row["id"]).get("children")
            if ch and ch.get("total"):
                split += 1
                c.eq(ch.get("succeeded"), ch["total"],
                     f"{name}: job {row['id']}'s {ch['total']} children all succeeded")
        c.eq(split, len([j for j in jobs if j.get("split")]),
             f"{name}: each split job ran its children")
        for j in jobs:
            if j.get("output"):
                out = s.out_path(j["output"])
                c.check(os.path.isfile(out) and os.path.getsize(out) > 0,
                        f"{name}: {j['op']} wrote {j['output']}")
        # a file of several jobs: one results file, a succeeded line per job (issue 13)
        results = s.out_path(f"results/{file_name.rsplit('.', 1)[0]}.results.jsonl")
        if len(jobs) > 1 and c.check(os.path.isfile(results), f"{name}: its results file"):
            lines = [json.loads(l) for l in open(results).read().splitlines()]
            c.eq([l["state"] for l in lines], ["succeeded"] * len(jobs),
                 f"{name}: a succeeded line per job in its results file")
        elif len(jobs) == 1:
            c.check(not os.path.exists(results), f"{name}: a single job: no results file")
    finally:
        s.cleanup()
        e.stop()
        shutil.rmtree(e.dir, ignore_errors=True)


def main():
    c = Checks("examples")
    examples = []
    for path in READMES:
        found = readme_examples(c, path)
        c.check(found, f"{os.path.relpath(path, SRC)} has JSON job examples")
        examples += [(name, jobs, "readme-example.json") for name, jobs in found]
    files = file_examples()
    c.check(len(files) >= 4, f"examples/ has its job files ({[f[0] for f in files]})")
    examples += files
    for name, jobs, file_name in examples:
        run_example(c, name, jobs, file_name)
    c.finish()


if __name__ == "__main__":
    main()
