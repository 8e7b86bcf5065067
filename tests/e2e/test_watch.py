"""e2e watch - `segspool watch ID` under a pseudo-terminal redraws a paginated export held
to a low rate (frames with pages going up) and exits 0 soon after the job succeeds; not
on a terminal it prints one JSON line per change (pages never going down, percent and
the rate limit's estimate as the numbers say, at the lower of the workspace's rate and
the endpoint's documented limit, the last line succeeded); a cancelled job's
watch exits 1; a fan-out's watch counts its children as they end; `watch --until-idle`
ends when the queue is empty; `status --json` names the running daemon (its pid, since
when), counts as `stats --json` does, the job due first and a bucket held after a 429,
and after the daemon stopped says not running, with exit code 3; a job's watch that a
SIGINT stops exits 130, the queue's exits 0.
"""
import json
import os
import re
import select
import signal
import subprocess
import time

from harness import (BIN, Checks, Emulator, Spool, emu_cleanup, iso_from_ms, iso_ms,
                     wait_for, wait_job_state)

c = Checks("watch")
COUNT, PAGES = 100, 10
RATE = 3  # requests per second for the workspace: 10 pages take about 3 s

emu = Emulator("--catalog-size", str(COUNT * PAGES), "--seed", "5")
# endpoint limits on: the event-volume export is held to its documented 60/min as well
s = Spool(emu.url, config={"rate": f"{RATE}/s", "burst": 1, "endpoint_limits": True})


def submit_export(key):
    """submit_export - a 10-page catalog export; its job id once the daemon has it."""
    s.drop_jobs(key + ".json", [{"op": "getSourcesCatalog", "key": key,
                                 "paginate": {"max_pages": 100, "count": COUNT}}])
    return wait_for(lambda: next((j["id"] for j in s.jobs() if j["key"] == key), None),
                    timeout=20, what=f"job {key} ingested")


def watch_cmd(*args):
    return [BIN, "--config", s.config_path, "watch"] + list(args)


def succeeded_at(job_id):
    """succeeded_at - when the job's transition to succeeded was recorded, epoch ms."""
    sh = s.show(job_id)
    ts = [iso_ms(t["at"]) for t in sh["transitions"] if t["to"] == "succeeded"]
    return ts[-1] if ts else None


def on_pty(args, timeout=30, interrupt_after=None):
    """on_pty - runs watch with a pseudo-terminal as its standard input and output until
    it exits (or timeout; with interrupt_after, SIGINT after that many seconds): (exit
    code, what it wrote, stderr, when it ended in epoch ms)."""
    master, slave = os.openpty()
    p = subprocess.Popen(watch_cmd(*args), stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                         env=s.env)
    os.close(slave)
    out, start = b"", time.monotonic()
    interrupted = False
    while time.monotonic() < start + timeout:
        if interrupt_after is not None and not interrupted and \
                time.monotonic() > start + interrupt_after:
            p.send_signal(signal.SIGINT)
            interrupted = True
        r, _, _ = select.select([master], [], [], 0.1)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the watch exited, the terminal's other end closed
                chunk = b""
            if not chunk and p.poll() is not None:
                break
            out += chunk
        elif p.poll() is not None:
            break
    ended_ms = int(time.time() * 1000)
    os.close(master)
    try:
        rc = p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    return rc, out.decode(errors="replace"), p.stderr.read().decode(errors="replace"), ended_ms


def test_tty():
    jid = submit_export("tty-export")
    rc, text, err, ended_ms = on_pty([str(jid), "--interval", "0.4"])
    c.eq(rc, 0, f"watch {jid} on a terminal exits 0 when the job succeeds ({err.strip()})")
    c.check(text.startswith("\x1b[?25l\x1b[H\x1b[2J"), "the first frame clears the screen")
    frames = [f for f in text.split("\x1b[H") if "state" in f]
    pages = [int(m.group(1)) for f in frames for m in [re.search(r"pages\s+(\d+)", f)] if m]
    states = [m.group(1) for f in frames for m in [re.search(r"state\s+(\w+)", f)] if m]
    print(f"{len(frames)} frames, pages {pages}, states {states}", flush=True)
    c.check(len(frames) >= 4, f"several frames were drawn ({len(frames)})")
    c.eq(pages, sorted(pages), "pages never go down from frame to frame")
    c.check(len(set(pages)) >= 3, f"the pages went up over at least 3 frames: {pages}")
    c.check(states and states[-1] == "succeeded", f"the last frame says succeeded: {states}")
    c.check(f"items     {COUNT * PAGES} of {COUNT * PAGES}" in frames[-1],
            "the last frame has every item of the total")
    c.check(any("progress" in f and "left at" in f for f in frames),
            "a frame estimates the time left from the rate seen")
    c.check(any(re.search(r"limit\s+3\.00 requests/s: the \d+ page\(s\) left need", f)
                for f in frames), "a frame gives the time the pages left need at the limit")
    c.check(text.endswith("\x1b[?25h"), "the cursor is shown again at the end")
    done = succeeded_at(jid)
    c.check(done is not None and ended_ms - done < 2500,
            f"the watch ended within 2.5 s of the job's success ({ended_ms - (done or 0)} ms)")


def read_lines(p, timeout=30):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return out.decode(errors="replace"), err.decode(errors="replace")


def test_json_lines():
    jid = submit_export("json-export")
    p = subprocess.Popen(watch_cmd(str(jid), "--interval", "0.3"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=s.env)
    out, err = read_lines(p)
    c.eq(p.returncode, 0, f"watch {jid} into a pipe exits 0 when the job succeeds ({err})")
    lines = [json.loads(l) for l in out.splitlines()]
    print(f"{len(lines)} lines: " + " ".join(f"{l['state']}:{l['pages']}" for l in lines),
          flush=True)
    c.check(len(lines) >= 3, f"several JSON lines ({len(lines)})")
    c.check(all(l["id"] == jid and l["op"] == "getSourcesCatalog" for l in lines),
            "each line names the job and its operation")
    pages = [l["pages"] for l in lines]
    c.eq(pages, sorted(pages), "pages never go down")
    c.eq(lines[-1]["state"], "succeeded", "the last line says succeeded")
    c.eq((lines[-1]["pages"], lines[-1]["items"], lines[-1]["total"]),
         (PAGES, COUNT * PAGES, COUNT * PAGES), "the last line's pages, items and total")
    keys = ["state", "attempts", "tries", "pages", "items", "total"]
    c.check(all([a[k] for k in keys] != [b[k] for k in keys] for a, b in zip(lines, lines[1:])),
            "a line is printed only when something changed")
    mid = [l for l in lines if l["total"] and 0 < l["items"] < l["total"]]
    c.check(mid and all(l["percent"] == round(100 * l["items"] / l["total"], 1) for l in mid),
            "percent is items over total")
    # 100 items a page: the pages left are what the items left fill, at 3 requests/s
    c.check(mid and all(l["limit_s"] == -(-(PAGES - l["pages"]) // RATE) for l in mid),
            f"limit_s is the pages left at {RATE}/s: "
            f"{[(l['pages'], l['limit_s']) for l in mid]}")
    # the items left at the rate seen foretell the end: within 2 s (whole seconds, rounded
    # up, of a job that takes about 3) of when the success line came, once three pages
    # have given the rate (pages come in steps of 100 items at 3/s: a rate seen over the
    # first two, looked at 0.3 s apart, is off by a whole page's step when one comes late,
    # as it did in an ASan run: 5 s against the real 2.4)
    end_ms = iso_ms(lines[-1]["at"])
    etas = [(l["eta_s"], round((end_ms - iso_ms(l["at"])) / 1000, 1)) for l in mid
            if l["eta_s"] is not None and l["pages"] >= 3]
    print(f"eta_s against the real time left: {etas}", flush=True)
    c.check(etas and all(abs(got - real) <= 2 for got, real in etas),
            f"eta_s against the time the job really took to end: {etas}")
    stamps = [iso_ms(l["at"]) for l in lines]
    c.eq(stamps, sorted(stamps), "each line has its time, in order")


def test_cancelled():
    jid = submit_export("cancel-export")
    p = subprocess.Popen(watch_cmd(str(jid), "--interval", "0.2"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=s.env)
    wait_for(lambda: s.show(jid)["pages_done"] >= 2, timeout=20, what="2 pages")
    s.cli("cancel", str(jid), check=True)
    out, err = read_lines(p)
    lines = [json.loads(l) for l in out.splitlines()]
    c.eq(p.returncode, 1, f"the watch of a job that was cancelled exits 1 ({err})")
    c.check(lines and lines[-1]["state"] == "cancelled", "its last line says cancelled")


def test_endpoint_limit():
    # 36 groups (3 sources x 4 events x 3 types), 4 a page: 9 pages; 60/min lets 6 go at
    # once, then one a second
    s.drop_jobs("volume.json", [{"op": "getEventsVolumeFromWorkspace", "key": "volume",
                                 "paginate": {"max_pages": 100, "count": 4},
                                 "params": {"granularity": "DAY",
                                            "groupBy": ["source", "eventName", "eventType"],
                                            "startTime": "2026-10-01T00:00:00Z",
                                            "endTime": "2026-10-02T00:00:00Z"}}])
    jid = wait_for(lambda: next((j["id"] for j in s.jobs() if j["key"] == "volume"), None),
                   timeout=20, what="the volume job ingested")
    p = subprocess.Popen(watch_cmd(str(jid), "--interval", "0.2"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=s.env)
    out, err = read_lines(p)
    c.eq(p.returncode, 0, f"the endpoint-limited export's watch exits 0 ({err})")
    lines = [json.loads(l) for l in out.splitlines()]
    c.check(lines and (lines[-1]["state"], lines[-1]["pages"], lines[-1]["total"]) ==
            ("succeeded", 9, 36), f"the export of 36 entries in 9 pages succeeded: {lines[-1:]}")
    # the endpoint's 1 request/s, not the workspace's 3/s: the lower limit is the one held
    mid = [l for l in lines if l["state"] == "running" and l["total"] and
           0 < l["items"] < l["total"]]
    want = [(l["pages"], -(-(l["total"] - l["items"]) // 4)) for l in mid]
    got = [(l["pages"], l["limit_s"]) for l in mid]
    print(f"(pages, limit_s): {got}", flush=True)
    c.check(any(n > 1 for _, n in got), "some line has more than 1 s of pages left")
    c.check(mid and got == want, f"limit_s is the pages left at 60/min: {got}, want {want}")


def test_fanout():
    days = 6
    s.drop_jobs("split.json", [{"op": "getEventsVolumeFromWorkspace", "key": "split",
                                "split": "1d", "paginate": {"max_pages": 10, "count": 10},
                                "params": {"granularity": "DAY",
                                           "startTime": "2026-10-01T00:00:00Z",
                                           "endTime": f"2026-10-0{1 + days}T00:00:00Z"}}])
    jid = wait_for(lambda: next((j["id"] for j in s.jobs() if j["key"] == "split"), None),
                   timeout=20, what="the split job ingested")
    p = subprocess.Popen(watch_cmd(str(jid), "--interval", "0.2"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=s.env)
    out, err = read_lines(p)
    c.eq(p.returncode, 0, f"the watch of a fan-out exits 0 when it succeeds ({err})")
    lines = [json.loads(l) for l in out.splitlines()]
    kids = [l.get("children") for l in lines if l.get("children")]
    print(f"{len(lines)} lines, children: " +
          " ".join(f"{k['succeeded']}/{k['total']}" for k in kids), flush=True)
    c.check(kids and all(k["total"] == days for k in kids), f"{days} children counted")
    done = [k["succeeded"] for k in kids]
    c.eq(done, sorted(done), "succeeded children never go down")
    c.check(any(0 < d < days for d in done), "some lines show part of the children done")
    c.check(all(l["percent"] == round(100 * (l["children"]["total"] - l["children"]["active"]) /
                                      l["children"]["total"], 1)
                for l in lines if l.get("children") and l["state"] != "succeeded"),
            "percent is the children ended over all of them")
    c.eq((lines[-1]["state"], lines[-1]["children"]["succeeded"]) if kids else None,
         ("succeeded", days), "the last line: succeeded, every child too")
    c.check(lines and lines[-1]["pages"] >= days, "the children's pages are counted")


def test_until_idle():
    jid = submit_export("idle-export")
    p = subprocess.Popen(watch_cmd("--until-idle", "--interval", "0.3"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=s.env)
    out, err = read_lines(p)
    c.eq(p.returncode, 0, f"watch --until-idle exits 0 once no job is active ({err})")
    lines = [json.loads(l) for l in out.splitlines()]
    c.check(len(lines) >= 2, f"it printed the queue as it changed ({len(lines)} lines)")
    c.check(lines and lines[0]["active"] >= 1 and lines[-1]["active"] == 0,
            "from an active job to none")
    c.eq(s.show(jid)["state"], "succeeded", "the queue was idle because the export ended")
    ended = [l["jobs"]["succeeded"] + l["jobs"]["cancelled"] for l in lines]
    c.eq(ended, sorted(ended), "ended jobs never go down")
    # the line where a job ended: that many jobs over the last interval (0.3 s, or longer)
    ends = [(b - a, l["rate"]) for a, b, l in zip(ended, ended[1:], lines[1:]) if b > a]
    c.check(ends and all(0 < rate <= n / 0.3 + 0.01 for n, rate in ends),
            f"the rate: jobs ended per second over the last interval: {ends}")


def test_status():
    later = int(time.time() * 1000) + 3600 * 1000
    s.drop_jobs("later.json", [{"op": "getSourcesCatalog", "key": "later",
                                "not_before": iso_from_ms(later)}])
    later_id = wait_for(lambda: next((j["id"] for j in s.jobs() if j["key"] == "later"), None),
                        timeout=20, what="the later job ingested")
    shared["later"] = later_id
    r = s.cli("status", "--json")
    st = json.loads(r.stdout)
    stats = json.loads(s.cli("stats", "--json", check=True).stdout)
    c.eq(r.returncode, 0, "status exits 0 while a daemon runs")
    c.eq(st["running"], True, "status says a daemon runs")
    c.eq(st["daemon"]["pid"], s.daemon.pid, "the daemon's pid")
    since = iso_ms(st["daemon"]["since"]) if st["daemon"]["since"] else 0
    c.check(started_ms - 1000 <= since <= int(time.time() * 1000),
            f"since when: the daemon's start ({st['daemon']['since']})")
    c.eq(st["daemon"]["spool"], s.spool, "on this spool")
    c.eq(st["store_lock"]["held"], True, "the store's lock is held")
    c.eq(st["spool_lock"]["pid"], s.daemon.pid, "the spool's lock is the daemon's too")
    c.eq(st["jobs"], stats["jobs"], "counts by state as stats --json gives them")
    due = st["oldest_due"] or {}
    c.eq(due.get("id"), later_id, "the job due first is the one not before an hour from now")
    c.check(-3601 < due.get("overdue_s", 0) < -3500, f"due in an hour: {due}")
    text = s.cli("status").stdout.decode()
    c.check(f"daemon: running, pid {s.daemon.pid}, since" in text, f"the text says so: {text}")

    # the API's own limit answers 429: the daemon holds its bucket until the reset
    emu.admin("/__emu/config", {"rate": "1/min"})
    s.drop_jobs("held.json", [{"op": "getSourcesCatalog", "key": f"held-{i}"} for i in range(3)])
    st = wait_for(lambda: (lambda d: d if d["holds"] else None)(
        json.loads(s.cli("status", "--json").stdout)), timeout=20, what="a hold")
    hold = st["holds"][0]
    c.check(hold["bucket"].startswith("ws:default") and 0 < hold["in_s"] <= 61,
            f"a bucket held for the minute's reset: {st['holds']}")
    c.check(abs(iso_ms(hold["until"]) - int(time.time() * 1000) - hold["in_s"] * 1000) < 2000,
            "until when, as a time")
    c.check(f"hold: {hold['bucket']} until" in s.cli("status").stdout.decode(),
            "the text names the hold")

    pid = s.daemon.pid
    c.eq(s.stop(), 0, "the daemon stops")
    r = s.cli("status", "--json")
    st = json.loads(r.stdout)
    c.eq(r.returncode, 3, "status exits 3 when no daemon runs")
    c.eq((st["running"], st["daemon"]["pid"]), (False, None), "status says none runs")
    c.eq(st["store_lock"]["held"], False, "the store's lock is free")
    c.eq((st["store_lock"]["last_pid"], st["store_lock"]["last_alive"]), (pid, False),
         "the last writer was the daemon, gone")
    c.eq(st["jobs"], json.loads(s.cli("stats", "--json", check=True).stdout)["jobs"],
         "the counts are still read from the store")
    c.check("daemon: not running" in s.cli("status").stdout.decode(), "the text says so")


def test_interrupted():
    # the daemon has stopped: the job not before an hour from now stays queued
    jid = shared["later"]
    p = subprocess.Popen(watch_cmd(str(jid), "--interval", "0.2"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=s.env)
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    out, err = read_lines(p, timeout=10)
    lines = [json.loads(l) for l in out.splitlines()]
    c.eq(p.returncode, 130, f"a job's watch interrupted before the job ended exits 130 ({err})")
    c.eq([l["state"] for l in lines], ["queued"], "one line: nothing changed after the first")

    rc, text, err, _ = on_pty(["--interval", "0.2"], timeout=10, interrupt_after=1.2)
    c.eq(rc, 0, f"the queue's watch on a terminal ends with SIGINT, exit 0 ({err.strip()})")
    frames = [f for f in text.split("\x1b[H") if "succeeded" in f]
    c.check(len(frames) >= 3, f"it was redrawn ({len(frames)} frames)")
    jobs = json.loads(s.cli("stats", "--json", check=True).stdout)["jobs"]
    last = frames[-1] if frames else ""
    c.check(all(re.search(rf"{name}\s+{n}\b", last) for name, n in jobs.items()),
            f"its frame has the jobs by state as stats --json counts them: {last!r}")
    c.check(re.search(r"\d+ active, \d+ ended; 0\.0 jobs/s ended in the last 0\.\d s", last),
            "and the rate they end at over the last interval")
    c.check(text.endswith("\x1b[?25h"), "the cursor is shown again after the signal")


shared = {}  # what one part leaves for another
try:
    started_ms = int(time.time() * 1000)
    s.start()
    c.run_parts([test_tty, test_json_lines, test_cancelled, test_endpoint_limit, test_fanout,
                 test_until_idle, test_status, test_interrupted])
finally:
    s.cleanup()
    emu_cleanup(emu)
c.finish()
