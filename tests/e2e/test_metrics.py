"""e2e metrics - the daemon's metrics_file and `segspool metrics`, against the emulator.

A batch held to 2 requests/s (so the run lasts several seconds), with 503s and a 404: the file is read over and over during the run (every read is a
whole, well-formed Prometheus text file: the rename) and once after. Its counts are
checked against the store (`stats --json`, `segspool metrics`) and the emulator: jobs by
state, attempts by outcome, responses by code, the duration histogram (the daemon's
in-memory one equals the store's), the rate-limit waits, the start time. Then a job put
back by `segspool retry` with no daemon shows as due in `segspool metrics`.
"""
import json
import os
import re
import time

from harness import Checks, Emulator, Spool, emu_cleanup, rewrite_config

c = Checks("metrics")

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|$)')
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
TERMINAL = ("succeeded", "failed", "dead", "cancelled")


class BadText(Exception):
    pass


def parse(text):
    """parse - the text exposition format as Prometheus reads it: {family: {"help",
    "type", "samples": [(name, labels, value)]}}; BadText says what is wrong and where."""
    if not text.endswith("\n"):
        raise BadText("the text does not end with a newline (a partial file?)")
    fams, current = {}, None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            if name in fams:
                raise BadText(f"line {n}: family {name} described twice")
            if not help_text:
                raise BadText(f"line {n}: empty HELP for {name}")
            fams[name] = {"help": help_text, "type": None, "samples": []}
            current = name
        elif line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            if name != current or fams[name]["type"] or fams[name]["samples"]:
                raise BadText(f"line {n}: TYPE of {name} not right after its HELP")
            if typ not in TYPES:
                raise BadText(f"line {n}: unknown type {typ!r}")
            fams[name]["type"] = typ
        elif line.startswith("#"):
            continue
        else:
            m = SAMPLE.match(line)
            if not m:
                raise BadText(f"line {n}: not a sample line: {line!r}")
            name, label_text, value = m.group(1), m.group(2), m.group(3)
            fam = name
            if current and fams[current]["type"] == "histogram":
                fam = re.sub(r"_(bucket|sum|count)$", "", name)
            if fam != current or not fams[current]["type"]:
                raise BadText(f"line {n}: sample {name} without its HELP and TYPE before it")
            labels, pos = {}, 0
            while label_text and pos < len(label_text):
                lm = LABEL.match(label_text, pos)
                if not lm:
                    raise BadText(f"line {n}: bad labels {label_text!r}")
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
            try:
                v = float(value)
            except ValueError:
                raise BadText(f"line {n}: value {value!r} is not a number")
            fams[current]["samples"].append((name, labels, v))
    for name, f in fams.items():
        if f["type"] == "counter" and not name.endswith("_total"):
            raise BadText(f"counter {name} does not end in _total")
        for _, labels, _ in f["samples"]:
            if any(k in ("job", "job_id", "id") for k in labels):
                raise BadText(f"{name} has a job label")
    return fams


def by_label(fams, family, label):
    """by_label - {label value: sample value} of a family's samples."""
    return {l[label]: v for _, l, v in fams.get(family, {}).get("samples", [])}


def one(fams, name):
    for f in fams.values():
        for n, labels, v in f["samples"]:
            if n == name and not labels:
                return v
    return None


def histogram(fams, family):
    """histogram - ({le: count}, sum, count) of a histogram family."""
    buckets, total, count = {}, None, None
    for n, labels, v in fams[family]["samples"]:
        if n == family + "_bucket":
            buckets[labels["le"]] = v
        elif n == family + "_sum":
            total = v
        elif n == family + "_count":
            count = v
    return buckets, total, count


def nonzero(d):
    return {k: v for k, v in d.items() if v}


def stats(s):
    return json.loads(s.cli("stats", "--json", check=True).stdout)


def cli_metrics(s):
    r = s.cli("metrics")
    c.eq(r.returncode, 0, f"segspool metrics exits 0 ({r.stderr.decode(errors='replace')})")
    text = r.stdout.decode()
    try:
        return parse(text)
    except BadText as e:
        c.check(False, f"segspool metrics: {e}")
        return {}


def read_file(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


JOBS = ([{"op": "listSources", "params": {}, "output": False, "key": f"list-{i}"}
         for i in range(12)] +
        [{"op": "getSource", "params": {"sourceId": "no-such-source"}, "output": False,
          "key": "missing"}])

emu = Emulator("--seed", "11", "--fail-rate", "0.25")
s = None
try:
    s = Spool(emu.url, config={"rate": "2/s", "burst": 1, "endpoint_limits": False})
    metrics_dir = os.path.join(s.root, "textfile")
    os.makedirs(metrics_dir)
    path = os.path.join(metrics_dir, "segspool.prom")
    rewrite_config(s, {"metrics_file": path})

    s.drop_jobs("batch.json", JOBS)
    t0 = time.time()
    s.start("--until-idle", ready=False)

    # --- during the run: every read is a whole file; one shows the batch under way --------
    reads, bad, midway = 0, [], None
    while s.daemon.poll() is None and time.time() - t0 < 60:
        text = read_file(path)
        if text is not None:
            reads += 1
            try:
                fams = parse(text)
                jobs = by_label(fams, "segspool_jobs", "state")
                active = sum(v for k, v in jobs.items() if k not in TERMINAL)
                done = sum(by_label(fams, "segspool_attempts_total", "outcome").values())
                if midway is None and sum(jobs.values()) == len(JOBS) and active and done:
                    midway = fams
            except BadText as e:
                bad.append(str(e))
        time.sleep(0.05)
    c.eq(s.daemon.wait(timeout=60), 0, "run --until-idle exits 0")
    t1 = time.time()
    c.check(reads > 20, f"the file was read during the run ({reads} reads)")
    c.eq(bad, [], "every read during the run parses as Prometheus text")
    if c.check(midway is not None, "a write during the run shows jobs still to do"):
        c.check(sum(by_label(midway, "segspool_rate_limit_wait_seconds_total",
                             "bucket").values()) > 0,
                "during the run: jobs were held by the 2/s bucket")

    # --- after: the file against the store and the emulator ----------------------------
    text = read_file(path)
    c.check(text is not None, "the file is there after the run")
    c.eq([n for n in os.listdir(metrics_dir) if n != "segspool.prom"], [],
         "no temporary file is left beside it")
    fams = parse(text or "")
    st = stats(s)
    es = emu.stats()
    c.eq(by_label(fams, "segspool_jobs", "state"), {k: float(v) for k, v in st["jobs"].items()},
         "segspool_jobs equals stats --json's jobs, every state listed")
    c.eq(sum(st["jobs"].values()), len(JOBS), "every job is in the store")
    attempts = by_label(fams, "segspool_attempts_total", "outcome")
    c.eq(nonzero(attempts), {k: float(v) for k, v in st["attempts"].items()},
         "segspool_attempts_total equals the store's attempts by outcome")
    for o in ("ok", "retry", "rate_limited", "failed", "unknown", "cancelled", "interrupted"):
        c.check(o in attempts, f"outcome {o} is listed (zero or not)")
    responses = by_label(fams, "segspool_http_responses_total", "code")
    c.eq(responses, {k: float(v) for k, v in es["by_status"].items()},
         "segspool_http_responses_total equals the emulator's answers by status")
    c.check("503" in responses and "404" in responses and "200" in responses,
            f"the run had 200s, a 404 and 503s ({responses})")
    c.eq(sum(attempts.values()), float(es["requests"]), "every attempt was a request")
    buckets, total, count = histogram(fams, "segspool_request_duration_seconds")
    c.eq(count, sum(responses.values()), "the histogram's _count is the attempts with a status")
    c.eq(buckets.get("+Inf"), count, "le=+Inf is the _count")
    les = sorted((float(k), v) for k, v in buckets.items())
    c.check(all(a[1] <= b[1] for a, b in zip(les, les[1:])), "the buckets are cumulative")
    c.check(total is not None and total >= 0, "_sum is there")
    waits = by_label(fams, "segspool_rate_limit_wait_seconds_total", "bucket")
    c.check(set(waits) == {"ws:default"} and waits["ws:default"] >= 2.0,
            f"13 jobs at 2/s waited seconds on ws:default ({waits})")
    c.eq(one(fams, "segspool_queue_oldest_due_seconds"), 0.0, "nothing is due after the run")
    started = one(fams, "segspool_start_time_seconds")
    c.check(started is not None and t0 - 1 <= started <= t1 + 1,
            f"segspool_start_time_seconds is the run's start ({started}, {t0})")
    for name, f in fams.items():
        c.check(name.startswith("segspool_"), f"{name}: the segspool_ prefix")

    # --- segspool metrics: the same counts from the store --------------------------------
    cm = cli_metrics(s)
    c.eq(by_label(cm, "segspool_jobs", "state"), by_label(fams, "segspool_jobs", "state"),
         "segspool metrics: jobs as the file has them")
    c.eq(by_label(cm, "segspool_attempts_total", "outcome"), attempts,
         "segspool metrics: attempts as the daemon counted them")
    c.eq(by_label(cm, "segspool_http_responses_total", "code"), responses,
         "segspool metrics: responses as the daemon counted them")
    c.eq(histogram(cm, "segspool_request_duration_seconds"), (buckets, total, count),
         "segspool metrics: the same duration histogram, bucket by bucket")
    r = s.cli("metrics", "--json")
    c.eq(r.returncode, 2, "segspool metrics takes no argument (usage error)")
    c.check("segspool_start_time_seconds" not in cm and
            "segspool_rate_limit_wait_seconds_total" not in cm,
            "segspool metrics: no daemon-only metric")

    # --- a job due and not claimed (no daemon): the oldest due ---------------------------
    failed = [j["id"] for j in s.jobs("failed")]
    if c.check(failed, "the missing source's job failed"):
        r = s.cli("retry", str(failed[0]))
        c.eq(r.returncode, 0, f"retry with no daemon ({r.stderr.decode(errors='replace')})")
        time.sleep(1.2)
        cm = cli_metrics(s)
        c.eq(by_label(cm, "segspool_jobs", "state").get("queued"), 1.0,
             "segspool metrics: the retried job is queued")
        due = one(cm, "segspool_queue_oldest_due_seconds")
        c.check(due is not None and 1.0 <= due < 60,
                f"segspool metrics: the queued job has been due over a second ({due})")

    # --- a metrics_file the daemon cannot write: said once, jobs still run ------------
    nowhere = os.path.join(s.root, "no-such-dir", "segspool.prom")
    rewrite_config(s, {"metrics_file": nowhere})
    before = len(s.log_text())
    rc = s.run_until_idle(timeout=60)
    log = s.log_text()[before:]
    if not c.eq(rc, 0, "an unwritable metrics_file does not stop the run"):
        print(log[-3000:])
    c.eq(log.count(f"metrics file {nowhere} not written"), 1,
         "the unwritable metrics_file is said once")
    c.eq(stats(s)["jobs"]["queued"], 0, "the retried job ran all the same")
finally:
    if s:
        s.cleanup()
    emu_cleanup(emu)

c.finish()
