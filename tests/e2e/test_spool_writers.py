"""e2e spool_writers - spool/write-job.sh and spool/write_job.py, the writers of
spool/README.md, against a real daemon (`segspool run --until-idle` on the emulator):
files from a path and from standard input, JSON and JSON Lines, in a spool whose path has
spaces and whose tmp/ does not exist yet; every job succeeds, each file is archived and
nothing is left in tmp/ or incoming/; a bad file lands in rejected/ with its reasons; a
name the daemon would ignore is refused by the writers; and a file dropped again with the
same name and content is ingested again, its keyed jobs not run again.
Runtime: about 5 s."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from harness import Checks, Emulator, Spool, emu_cleanup, listdir

c = Checks("spool_writers")
SRC = os.environ.get("SEGSPOOL_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
SH = os.path.join(SRC, "spool", "write-job.sh")
PY = os.path.join(SRC, "spool", "write_job.py")
sys.path.insert(0, os.path.join(SRC, "spool"))
import write_job  # noqa: E402  (the module API, as an integrator imports it)


def create(slug, key=True):
    j = {"op": "createSource",
         "params": {"slug": slug, "enabled": True, "metadataId": "IqDTy1TpoU"}}
    if key:
        j["key"] = "writers-" + slug
    return j


def run(cmd, input=None):
    return subprocess.run(cmd, input=input, capture_output=True, timeout=60)


def paths_of(r):
    return [l for l in r.stdout.decode().splitlines() if l.strip()]


def durable_order(log_path, final):
    """durable_order - from an `strace -f` log: whether tmp/FINAL was fsynced, then
    renamed to incoming/FINAL, then incoming/ fsynced, in that order. (ok, events)."""
    pending, fds, events = {}, {}, []
    for line in open(log_path, errors="replace"):
        pid, _, call = line.rstrip("\n").partition(" ")
        call = call.strip()
        if call.endswith("<unfinished ...>"):
            pending[pid] = call[: -len("<unfinished ...>")]
            continue
        m = re.match(r"<\.\.\. \w+ resumed>(.*)", call)
        if m:
            call = pending.pop(pid, "") + m.group(1)
        m = re.match(r'openat\(AT_FDCWD, "(.*?)", .*\) = (\d+)$', call)
        if m:
            fds[(pid, m.group(2))] = os.path.normpath(m.group(1))
        m = re.match(r"f(?:data)?sync\((\d+)\)\s+= 0", call)
        if m:
            events.append(("fsync", fds.get((pid, m.group(1)))))
        m = re.match(r'rename(?:at2?)?\((?:AT_FDCWD, )?"(.*?)", (?:AT_FDCWD, )?"(.*?)".*= 0', call)
        if m:
            events.append(("rename", os.path.normpath(m.group(1)), os.path.normpath(m.group(2))))
    spool_dir = os.path.dirname(os.path.dirname(final))
    tmp = os.path.join(spool_dir, "tmp", os.path.basename(final))
    steps = [("fsync", tmp), ("rename", tmp, os.path.normpath(final)),
             ("fsync", os.path.join(spool_dir, "incoming"))]
    i = 0
    for e in events:
        if i < len(steps) and e == steps[i]:
            i += 1
    return i == len(steps), events


emu = Emulator()
root = tempfile.mkdtemp(prefix="segspool writers ")  # spaces: the sh writer must quote
s = Spool(emu.url, config={"endpoint_limits": False}, root=root)
sp = s.spool
try:
    c.check(not os.path.exists(os.path.join(sp, "tmp")), "the spool has no tmp/ yet")
    src_dir = os.path.join(root, "src")
    os.mkdir(src_dir)

    # the sh writer: a JSON array from a file, JSON Lines from stdin, a bad file
    arr = os.path.join(src_dir, "sh array.json")
    with open(arr, "w") as f:
        json.dump([create("sh-a1"), create("sh-a2")], f)
    r = run(["sh", SH, sp, arr])
    c.eq(r.returncode, 0, f"write-job.sh FILE exits 0 ({r.stderr.decode()!r})")
    sh_paths = paths_of(r)
    r = run(["sh", SH, "-n", "from-stdin.jsonl", sp],
            input="".join(json.dumps(create("sh-l%d" % i)) + "\n" for i in range(3)).encode())
    c.eq(r.returncode, 0, f"write-job.sh -n NAME (stdin) exits 0 ({r.stderr.decode()!r})")
    sh_paths += paths_of(r)
    bad = os.path.join(src_dir, "typo.json")
    with open(bad, "w") as f:
        json.dump([create("sh-ok"), {"op": "createSorce", "params": {}}], f)
    r = run(["sh", SH, sp, bad])
    c.eq(r.returncode, 0, "write-job.sh does not validate: the bad file goes in too")
    bad_paths = paths_of(r)
    r = run(["sh", SH, "-n", "jobs.txt", sp], input=b"{}")
    c.eq(r.returncode, 2, "write-job.sh refuses a name the daemon would ignore")
    c.check(b".json or .jsonl" in r.stderr, f"and says why: {r.stderr!r}")
    r = run(["sh", SH, os.path.join(root, "no-spool"), arr])
    c.eq(r.returncode, 1, "write-job.sh refuses a directory that is not a spool")

    # the Python writer: the program (file, stdin) and the module
    lines = os.path.join(src_dir, "py lines.jsonl")
    with open(lines, "w") as f:
        f.write("".join(json.dumps(create("py-l%d" % i)) + "\n" for i in range(2)))
    r = run([sys.executable, PY, sp, lines])
    c.eq(r.returncode, 0, f"write_job.py FILE exits 0 ({r.stderr.decode()!r})")
    py_paths = paths_of(r)
    r = run([sys.executable, PY, sp], input=json.dumps(create("py-stdin")).encode())
    c.eq(r.returncode, 0, f"write_job.py (stdin) exits 0 ({r.stderr.decode()!r})")
    py_paths += paths_of(r)
    r = run([sys.executable, PY, "-n", "x.JSON", sp], input=b"{}")
    c.eq(r.returncode, 2, "write_job.py refuses a name the daemon would ignore")
    redrop = [create("py-m1"), create("py-m2")]
    py_paths.append(write_job.write_jobs(sp, redrop, name="module.json"))
    try:
        write_job.write_jobs(sp, [], name="module.txt")
        c.check(False, "write_jobs refuses a .txt name")
    except ValueError:
        pass

    written = sh_paths + bad_paths + py_paths
    c.eq(len(written), 6, f"six files written ({written})")
    incoming = listdir(os.path.join(sp, "incoming"))
    c.eq(sorted(os.path.basename(p) for p in written), incoming,
         "incoming/ holds exactly the printed names")
    c.check(all(n.endswith((".json", ".jsonl")) and not n.startswith(".") and len(n) <= 200
                for n in incoming), f"every name is one the daemon takes: {incoming}")
    c.check(any("sh_array" in n for n in incoming), "the base name is kept, spaces replaced")
    c.check(all(n.endswith(".jsonl") for n in incoming if "lines" in n or "stdin.jsonl" in n
                or "from-stdin" in n), "the extension is kept")
    c.eq(listdir(os.path.join(sp, "tmp")), [], "the writers leave nothing in tmp/")
    modes = {oct(os.stat(os.path.join(sp, "incoming", n)).st_mode & 0o777) for n in incoming}
    c.eq(modes, {"0o640"}, "the files are 0640")

    c.eq(s.run_until_idle(timeout=120), 0, "run --until-idle exits 0")
    jobs = s.jobs()
    c.eq(len(jobs), 10, "ten jobs recorded (the bad file's none)")
    c.eq(s.states(), {"succeeded": 10}, "every job succeeded")
    slugs = sorted(x["slug"] for x in emu.state()["sources"] if x["slug"].startswith(("sh-", "py-")))
    c.eq(slugs, sorted(["sh-a1", "sh-a2", "sh-l0", "sh-l1", "sh-l2", "py-l0", "py-l1",
                        "py-stdin", "py-m1", "py-m2"]), "the emulator has every source")
    c.eq(listdir(os.path.join(sp, "incoming")), [], "incoming/ is empty")
    c.eq(sorted(listdir(os.path.join(sp, "archive"))),
         sorted(os.path.basename(p) for p in sh_paths + py_paths), "the good files are archived")
    bad_name = os.path.basename(bad_paths[0]) if bad_paths else "(none)"
    c.eq(sorted(listdir(os.path.join(sp, "rejected"))), [bad_name, bad_name + ".error.json"],
         "the bad file is in rejected/ with its reasons beside it")
    with open(os.path.join(sp, "rejected", bad_name + ".error.json")) as f:
        err = json.load(f)
    c.eq(err.get("file"), bad_name, "the error file names the file")
    probs = err.get("problems") or [{}]
    c.eq(probs[0].get("where"), "/1/op", "the problem says where (the second job's op)")
    c.check("createSource" in json.dumps(probs), f"and what was meant: {probs}")
    print("rejected:", json.dumps(err), flush=True)

    # the same file again (name and content): ingested again, its keyed jobs not run again
    archived = os.path.join(sp, "archive", os.path.basename(py_paths[-1]))
    shutil.copy(archived, os.path.join(sp, "tmp", "again"))
    os.rename(os.path.join(sp, "tmp", "again"), os.path.join(sp, "incoming",
                                                             os.path.basename(archived)))
    before = emu.stats()["requests"]
    c.eq(s.run_until_idle(timeout=120), 0, "second run --until-idle exits 0")
    c.eq(len(s.jobs()), 10, "the re-dropped file's keyed jobs are not added again")
    c.eq(emu.stats()["requests"], before, "nor sent again")
    c.check(s.log_text().count("not run again") >= 2, "the log says they were not run again")
    c.eq(listdir(os.path.join(sp, "incoming")), [], "the re-dropped file left incoming/")
    c.eq(len(glob.glob(os.path.join(sp, "archive", os.path.basename(archived) + "*"))), 2,
         "and was archived beside the first (NAME.1)")

    # the durability of README.md's steps, seen in the system calls: the file fsynced
    # before its rename into incoming/, the directory fsynced after it
    if not shutil.which("strace"):
        c.skip("the writers' fsync and rename order", "strace is not installed")
    else:
        traced = os.path.join(root, "traced")
        os.makedirs(os.path.join(traced, "incoming"))
        log = os.path.join(root, "strace.log")
        for what, cmd in (("write-job.sh", ["sh", SH, traced, arr]),
                          ("write_job.py", [sys.executable, PY, traced, lines])):
            r = run(["strace", "-f", "-qq", "-o", log, "-e",
                     "trace=openat,fsync,fdatasync,rename,renameat,renameat2"] + cmd)
            if r.returncode != 0 and b"ptrace" in r.stderr:
                c.skip(f"{what}'s fsync and rename order", f"strace failed: {r.stderr[-200:]!r}")
                continue
            ok, events = durable_order(log, paths_of(r)[0])
            c.check(ok, f"{what}: fsync(tmp/NAME), rename into incoming/, fsync(incoming/) "
                    f"in that order; saw {events}")

    # tmp/ on another filesystem: a rename cannot be atomic, both writers refuse (mv would
    # have copied into incoming/) and leave nothing behind
    other = os.path.join(root, "other")
    for d in ("incoming", "tmp"):
        os.makedirs(os.path.join(other, d))
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                        os.path.join(other, "tmp")], capture_output=True)
    if m.returncode != 0:
        c.skip("tmp/ on another filesystem", f"cannot mount a tmpfs: {m.stderr.decode().strip()}")
    else:
        try:
            r = run(["sh", SH, other, arr])
            c.eq(r.returncode, 1, "write-job.sh refuses tmp/ on another filesystem")
            c.check(b"not on one filesystem" in r.stderr, f"and says why: {r.stderr!r}")
            r = run([sys.executable, PY, other, lines])
            c.eq(r.returncode, 1, "write_job.py refuses tmp/ on another filesystem")
            c.check(b"not on one filesystem" in r.stderr, f"and says why: {r.stderr!r}")
            c.eq(listdir(os.path.join(other, "incoming")) + listdir(os.path.join(other, "tmp")),
                 [], "nothing is left in incoming/ or tmp/")
        finally:
            subprocess.run(["umount", os.path.join(other, "tmp")], capture_output=True)
finally:
    s.cleanup()
    emu_cleanup(emu)
c.finish()
