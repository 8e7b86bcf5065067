"""demo - the main job on an embedded default: the bundled emulator on loopback, the real
job files of examples/ through the real daemon, then a summary of what happened and where
the outputs are. Nothing leaves the machine.

usage: python3 tools/demo.py [BUILD_DIR]      (outputs under ./demo-out/)"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(top, "build"))
BIN, EMU = os.path.join(build, "segspool"), os.path.join(build, "segspool-emu")
work = os.path.join(os.getcwd(), "demo-out")
spool = os.path.join(work, "spool")
TOKEN = "demo-token-not-a-real-one"


def say(msg):
    print(f"demo: {msg}", flush=True)


def segspool(*args, check=True):
    r = subprocess.run([BIN, "--config", cfg_path] + list(args), capture_output=True,
                       env=env, text=True)
    if check and r.returncode:
        sys.exit(f"demo: segspool {' '.join(args)} failed:\n{r.stderr}")
    return r


def jobs():
    out = segspool("list", "--json", "--limit", "100000").stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def wait_idle(timeout=180):
    """wait_idle - until every job has ended (the daemon keeps running)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        js = jobs()
        if js and all(j["state"] in ("succeeded", "failed", "dead", "cancelled") for j in js):
            return js
        if daemon.poll() is not None:
            sys.exit(f"demo: the daemon stopped early; see {log_path}")
        time.sleep(0.3)
    sys.exit(f"demo: jobs still running after {timeout}s; see {log_path}")


shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
log_path = os.path.join(work, "daemon.log")
port_file = os.path.join(work, "emu.port")
emu = subprocess.Popen([EMU, "--port", "0", "--port-file", port_file, "--token", TOKEN,
                        "--rate", "50/s"], stdout=subprocess.DEVNULL,
                       stderr=open(os.path.join(work, "emu.log"), "w"))
daemon = None
try:
    for _ in range(200):
        if os.path.exists(port_file):
            break
        time.sleep(0.05)
    api = f"http://127.0.0.1:{open(port_file).read().strip()}"
    say(f"emulator of the Segment Public API on {api} (rate limit 50 requests/s)")
    cfg_path = os.path.join(work, "segspool.json")
    with open(cfg_path, "w") as f:
        json.dump({"spool": spool, "api_base": api, "rate": "40/s", "burst": 10,
                   "rescan_ms": 1000, "log_level": "info"}, f, indent=2)
    env = dict(os.environ, SEGMENT_TOKEN=TOKEN, SEGSPOOL_NO_DEFAULT_CONFIG="1")
    daemon = subprocess.Popen([BIN, "--config", cfg_path, "run"], env=env,
                              stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    # ready once it says it runs: before that it may still be migrating the store, and a
    # list would find the schema half upgraded (and refuse it)
    for _ in range(600):
        if daemon.poll() is not None:
            sys.exit(f"demo: the daemon stopped at its start; see {log_path}")
        with open(log_path) as f:
            if "running on spool" in f.read():
                break
        time.sleep(0.05)
    say(f"daemon started (pid {daemon.pid}, log {log_path})")

    examples = sorted(os.path.join(top, "examples", n)
                      for n in os.listdir(os.path.join(top, "examples"))
                      if n.endswith((".json", ".jsonl")))
    rollout = os.path.join(top, "examples", "05-brand-rollout.jsonl")
    for path in [p for p in examples if p != rollout]:
        r = segspool("submit", path)
        say(r.stdout.strip())
    t0 = time.monotonic()
    wait_idle()
    say(f"batch 1 done in {time.monotonic() - t0:.1f}s (most of it is the 30-day event-volume "
        "export: Segment allows that endpoint 60 requests/min, and segspool keeps to it)")

    # the second batch: a whole rollout in one file, each brand's warehouse connection and
    # destination taking its new source's id from that source's result ({"$ref": ...}); the
    # plan first, then the run, in dependency order
    say("the plan of the second batch, before anything is sent:")
    for line in segspool("plan", rollout).stdout.splitlines():
        print("   " + line, flush=True)
    say(segspool("submit", rollout).stdout.strip())
    # and a file with mistakes, to show what a rejection looks like
    bad = os.path.join(work, "06-typo.json")
    with open(bad, "w") as f:
        json.dump({"op": "listSource", "paginate": "all"}, f)
    say("validating a file with a typo:")
    print("   " + segspool("validate", bad, check=False).stderr.strip(), flush=True)
    with open(os.path.join(spool, "tmp", "06-typo.json"), "w") as f:
        json.dump({"op": "listSource", "paginate": "all"}, f)
    os.rename(os.path.join(spool, "tmp", "06-typo.json"),
              os.path.join(spool, "incoming", "06-typo.json"))
    t0 = time.monotonic()
    time.sleep(0.5)
    js = wait_idle()
    say(f"batch 2 done in {time.monotonic() - t0:.1f}s")
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=30)

    stats = json.loads(segspool("stats", "--json").stdout)
    emu_stats = json.loads(subprocess.run(
        ["python3", "-c", "import urllib.request,sys;"
         f"sys.stdout.write(urllib.request.urlopen('{api}/__emu/stats').read().decode())"],
        capture_output=True, text=True).stdout or "{}")
    print("\n=== summary", flush=True)
    by_state = {k: v for k, v in stats["jobs"].items() if v}
    print(f"jobs: {sum(by_state.values())} ({', '.join(f'{v} {k}' for k, v in by_state.items())})")
    ops = {}
    for j in js:
        ops[j["op"]] = ops.get(j["op"], 0) + 1
    for op, n in sorted(ops.items()):
        print(f"  {n:4d} x {op}")
    print(f"requests made: {stats['requests']} (attempts by outcome: {stats['attempts']}); "
          f"the emulator answered {emu_stats.get('requests', '?')}, "
          f"rate-limited {emu_stats.get('rate_limited', '?')}")
    print(f"rejected files: {sorted(n for n in os.listdir(os.path.join(spool, 'rejected')))}")
    print(f"outputs under {os.path.join(spool, 'out')}:")
    for root, _, files in os.walk(os.path.join(spool, "out")):
        for n in sorted(files):
            p = os.path.join(root, n)
            if "exports" in p or n.startswith(("getEvents",)):
                lines = sum(1 for _ in open(p))
                print(f"  {os.path.relpath(p, spool)}  ({lines} lines)")
    # a file of several jobs: one results file, a line per job in the file's order
    results_dir = os.path.join(spool, "out", "results")
    results = sorted(os.listdir(results_dir)) if os.path.isdir(results_dir) else []
    print(f"results files, one per file of several jobs ({os.path.relpath(results_dir, spool)}):")
    for n in results:
        p = os.path.join(results_dir, n)
        lines = [json.loads(l) for l in open(p)]
        states = {}
        for l in lines:
            states[l["state"]] = states.get(l["state"], 0) + 1
        print(f"  {os.path.relpath(p, spool)}  ({len(lines)} lines: "
              f"{', '.join(f'{v} {k}' for k, v in sorted(states.items()))})")
    per_job = [n for n in os.listdir(os.path.join(spool, "out")) if n.endswith(".json")]
    if per_job:
        print(f"  ... and {len(per_job)} result file(s) of single-job files (out/<op>-<id>.json)")
    rollout_results = os.path.join(results_dir, "05-brand-rollout.results.jsonl")
    if os.path.exists(rollout_results):
        print("\nthe rollout's results file, a line per job of 05-brand-rollout.jsonl:")
        for l in open(rollout_results):
            r = json.loads(l)
            what = r.get("result") or r.get("error") or {}
            ident = next((v.get("id") for v in what.values() if isinstance(v, dict)), None) \
                if isinstance(what, dict) else None
            print(f"  line {r['line']:2d}  {r['op']:36s} {r['state']:9s} {r['key']}"
                  f"{'  -> ' + ident if ident else ''}")
    print(f"\ntry: {BIN} --config {cfg_path} list --state succeeded")
    print(f"     {BIN} --config {cfg_path} show 1")
    if results:
        print(f"     head -3 {os.path.join(results_dir, results[0])}")
    print(f"     cat {os.path.join(spool, 'rejected', '06-typo.json.error.json')}")
finally:
    if daemon and daemon.poll() is None:
        daemon.kill()
    emu.send_signal(signal.SIGTERM)
    emu.wait(timeout=10)
