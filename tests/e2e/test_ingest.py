"""e2e ingest - the spool protocol through the real daemon: good and bad files dropped in
the same moment, rejected files with their reasons, the CLI's validate/submit/list/show,
one daemon per spool, SIGTERM. When run as root, the daemon runs as the unprivileged user
nobody (so an unreadable file really is unreadable)."""
import json
import os
import pwd
import shutil
import signal
import subprocess
import time

from harness import Checks, Spool, listdir, wait_for

c = Checks("ingest")
FUTURE = "2099-01-01T00:00:00Z"  # jobs stay queued: this test is about intake, not requests


def job(op="listSources", **kw):
    j = {"op": op, "not_before": FUTURE}
    j.update(kw)
    return j


# (name, content, expected substring of the first problem) - at least 30 kinds
BAD = [
    ("malformed.json", b'{"op": "listSources",', "json"),
    ("trailing.json", b'{"op": "listSources"} x', "json"),
    ("empty.json", b"", "empty"),
    ("spaces.json", b"   \n\t ", "empty"),
    ("toplevel-string.json", b'"listSources"', "object"),
    ("toplevel-number.json", b"42", "object"),
    ("empty-array.json", b"[]", "no jobs"),
    ("array-of-numbers.json", b"[1, 2]", "object"),
    ("op-number.json", json.dumps({"op": 5}).encode(), "op"),
    ("no-op.json", json.dumps({"params": {}}).encode(), "op"),
    ("unknown-op.json", json.dumps({"op": "listSource"}).encode(), "did you mean listSources"),
    ("missing-param.json", json.dumps({"op": "getSource", "params": {}}).encode(), "sourceId"),
    ("wrong-type.json", json.dumps({"op": "createSource", "params": {
        "slug": 5, "enabled": True, "metadataId": "m"}}).encode(), "slug"),
    ("bad-enum.json", json.dumps({"op": "getEventsVolumeFromWorkspace", "params": {
        "granularity": "WEEK", "startTime": "2026-01-01T00:00:00Z",
        "endTime": "2026-01-02T00:00:00Z"}}).encode(), "DAY"),
    ("unknown-param.json", json.dumps({"op": "createSource", "params": {
        "slug": "a", "enabled": True, "metadataId": "m", "slugg": 1}}).encode(), "slugg"),
    ("unknown-field.json", json.dumps({"op": "listSources", "prioirty": 1}).encode(), "priority"),
    ("escape-dotdot.json", json.dumps(job(output="../x.json")).encode(), "output"),
    ("escape-abs.json", json.dumps(job(output="/etc/passwd")).encode(), "output"),
    ("escape-inner.json", json.dumps(job(output="a/../../b")).encode(), "output"),
    ("dup-key.json", json.dumps([job(key="k1"), job(key="k1")]).encode(), "k1"),
    ("bad-not-before.json", json.dumps({"op": "listSources", "not_before": "tomorrow"}).encode(),
     "not_before"),
    ("bad-priority.json", json.dumps({"op": "listSources", "priority": "high"}).encode(), "priority"),
    ("bad-retry.json", json.dumps({"op": "listSources", "retry": {"max_attempts": 0}}).encode(),
     "max_attempts"),
    ("paginate-nonpaged.json", json.dumps({"op": "getSource", "params": {"sourceId": "x"},
                                           "paginate": "all"}).encode(), "paginat"),
    ("split-wrong-op.json", json.dumps({"op": "listSources", "split": "1d"}).encode(), "split"),
    ("count-zero.json", json.dumps({"op": "listSources", "params": {
        "pagination": {"count": 0}}}).encode(), "count"),
    ("binary.json", bytes(range(256)) * 4, ""),
    ("nul.json", b'{"op": "listSources"\x00}', "nul"),
    ("deep.json", b"[" * 10000 + b"]" * 10000, "deep"),
    ("huge.json", b'{"op": "listSources", "comment": "' + b"x" * (10 * 1024 * 1024) + b'"}',
     "larger"),
    ("bad-line.jsonl", (json.dumps(job()) + "\n" + "{nope\n").encode(), "json"),
    ("raw-bad-path.json", json.dumps({"op": "raw", "params": {
        "method": "GET", "path": "https://evil.example/x"}}).encode(), "path"),
]
GOOD = [("good-%02d.json" % i, [job(key="good-%d" % i)]) for i in range(10)]
GOOD += [("good-array.json", [job(), job(op="Get Sources Catalog")]),
         ("good-lines.jsonl", [job(), job(), job()])]
GOOD_JOBS = sum(len(j) for _, j in GOOD)

s = Spool("http://127.0.0.1:9")
run_as = None
if os.geteuid() == 0:
    nobody = pwd.getpwnam("nobody")
    run_as = (nobody.pw_uid, nobody.pw_gid)
try:
    # validate: every problem with where it is, exit 1; a good file exits 0
    bad_path = os.path.join(s.root, "bad.jsonl")
    with open(bad_path, "w") as f:
        f.write(json.dumps(job()) + "\n" + json.dumps({"op": "getSourc"}) + "\n")
    r = s.cli("validate", bad_path)
    c.eq(r.returncode, 1, "validate of a bad file exits 1")
    err = r.stderr.decode()
    c.check(":2:" in err and "did you mean getSource" in err, f"validate names line 2: {err!r}")
    good_path = os.path.join(s.root, "good.json")
    with open(good_path, "w") as f:
        json.dump(job(), f)
    c.eq(s.cli("validate", good_path).returncode, 0, "validate of a good file exits 0")
    r = s.cli("submit", bad_path)
    c.eq(r.returncode, 1, "submit refuses a bad file")
    c.eq(listdir(os.path.join(s.spool, "incoming")), [], "nothing submitted from a bad file")
    r = s.cli("submit", "-", input=json.dumps(job(key="from-stdin")).encode())
    c.eq(r.returncode, 0, "submit - reads stdin")
    c.eq(len(listdir(os.path.join(s.spool, "incoming"))), 1, "submit left one file in incoming/")
    c.eq(listdir(os.path.join(s.spool, "tmp")), [], "submit left nothing in tmp/")

    # the spool as the daemon's user sees it
    if run_as:
        for dirpath, dirnames, filenames in os.walk(s.root):
            os.chown(dirpath, *run_as)
            for fn in filenames:
                os.chown(os.path.join(dirpath, fn), *run_as)

    # drop everything at once: bad, good, a symlink, a directory, an unreadable file
    for name, content, _ in BAD:
        s.drop(name, content)
    for name, jobs in GOOD:
        s.drop_jobs(name, jobs)
    incoming = os.path.join(s.spool, "incoming")
    os.symlink("/etc/passwd", os.path.join(incoming, "link.json"))
    os.mkdir(os.path.join(incoming, "dir.json"))
    s.drop("unreadable.json", json.dumps(job()))
    os.chmod(os.path.join(incoming, "unreadable.json"), 0)
    if run_as:
        os.chown(os.path.join(incoming, "unreadable.json"), 0, 0)
        for n in listdir(incoming):
            if n != "unreadable.json":
                os.lchown(os.path.join(incoming, n), *run_as)
    s.drop("ignored.txt", "not a job")
    s.drop(".hidden.json", "{}")
    special = ["link.json", "dir.json", "unreadable.json"]

    env = dict(s.env)
    preexec = None
    if run_as:
        def preexec():
            os.setgroups([])
            os.setgid(run_as[1])
            os.setuid(run_as[0])
    log = open(s.daemon_log, "ab")
    s.daemon = subprocess.Popen([os.environ.get("SEGSPOOL_BIN", "build/segspool"), "--config",
                                 s.config_path, "run"], stdout=log, stderr=log, env=env,
                                preexec_fn=preexec)
    expect_gone = [n for n, _, _ in BAD] + [n for n, _ in GOOD] + special
    wait_for(lambda: not any(n in listdir(incoming) for n in expect_gone), timeout=60,
             what="incoming/ drained")
    left = listdir(incoming)
    c.eq(left, [".hidden.json", "ignored.txt"], "only ignored names stay in incoming/")
    rejected = listdir(os.path.join(s.spool, "rejected"))
    for name, _, want in BAD + [(n, None, "") for n in special]:
        ok = c.check(name in rejected and name + ".error.json" in rejected,
                     f"{name} rejected with an error file")
        if not ok:
            continue
        doc = json.load(open(os.path.join(s.spool, "rejected", name + ".error.json")))
        probs = doc.get("problems", [])
        text = json.dumps(probs).lower()
        c.check(probs and (want.lower() in text), f"{name}: reason mentions {want!r}: {text[:300]}")
    c.check(os.readlink(os.path.join(s.spool, "rejected", "link.json")) == "/etc/passwd",
            "the symlink itself was moved, not followed")

    # the good files' jobs are all there, once
    jobs = s.jobs()
    c.eq(len(jobs), GOOD_JOBS + 1, "every good job ingested once (plus the stdin one)")
    archived = listdir(os.path.join(s.spool, "archive"))
    c.eq(len(archived), len(GOOD) + 1, "accepted files archived")
    one = s.show(jobs[-1]["id"])
    c.eq(one["state"], "queued", "show: a future job is queued")
    c.check(any(t["to"] == "queued" for t in one["transitions"]), "show: state history")
    c.eq(len(s.jobs(state="queued")), GOOD_JOBS + 1, "list --state queued")

    # one daemon per spool
    r = s.cli("run", "--until-idle")
    c.eq(r.returncode, 1, "a second daemon on the same spool exits 1")
    c.check(b"another segspool daemon is running" in r.stderr, f"and says why: {r.stderr[-300:]!r}")

    # a duplicate key is a no-op that says so
    s.drop_jobs("dup-again.json", [job(key="good-3")])
    wait_for(lambda: "dup-again.json" not in listdir(incoming), timeout=30, what="dup ingested")
    c.eq(len(s.jobs()), GOOD_JOBS + 1, "a recorded key is not added again")
    wait_for(lambda: "already recorded" in s.log_text(), timeout=10, what="duplicate logged")

    # SIGTERM stops it cleanly
    c.eq(s.stop(signal.SIGTERM), 0, "SIGTERM: exit 0")
    c.check("stopped:" in s.log_text(), "the daemon logs a summary when it stops")
finally:
    s.cleanup()
c.finish()
