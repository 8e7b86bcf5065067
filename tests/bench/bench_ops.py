"""bench_ops - 20,000 createSource jobs through the real daemon against segspool-emu with
limits off, each attempt durably recorded (SQLite WAL, synchronous=FULL); then the official
TypeScript SDK doing the same calls (the same body) with 16 requests in flight, as the
issue sets it, and no durability (tests/bench/sdk, when its node_modules is installed).
The daemon runs at each of BENCH_INFLIGHT's caps (max_in_flight; default 16 and 32), the
runs of the caps interleaved, BENCH_REPEATS times each (default 3) against a fresh emulator
state; the medians are the figures, every run is printed too. Prints figures; asserts
nothing.

The jobs' shape (BENCH_SHAPE):
- "onefile" (the default; issue 13's figure): the N jobs in ONE JSON Lines file with
  default settings, so one results file (out/results/bench.results.jsonl, its line count
  printed) and no output file per job;
- "files": files of 1,000 jobs each, as before; with BENCH_OUTPUT=file (the default) each
  job names its own output file ("output": "r/N.json"), the old default of a file per job;
  with BENCH_OUTPUT=store each says "output": false. Either way each file of several jobs
  also gets its results file.

usage: python3 tests/bench/bench_ops.py [BUILD_DIR] [N]
env:   BENCH_SHAPE=onefile|files  BENCH_OUTPUT=file|store  BENCH_INFLIGHT=16,32
       BENCH_SDK_INFLIGHT=16  BENCH_REPEATS=3"""
import atexit
import glob
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time

import benchenv  # first: the build and the harness's path
from harness import TOKEN, Emulator, Spool  # noqa: E402

N = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
# "file": each job's data object in its own output file (the default);
# "store": "output": false, results kept in SQLite only (one file per job is what costs)
OUTPUT = os.environ.get("BENCH_OUTPUT", "file")
SHAPE = os.environ.get("BENCH_SHAPE", "onefile")
if SHAPE not in ("onefile", "files"):
    sys.exit(f"bench_ops: BENCH_SHAPE is onefile or files, not {SHAPE}")
INFLIGHTS = [int(x) for x in os.environ.get("BENCH_INFLIGHT", "16,32").split(",")]
SDK_INFLIGHT = int(os.environ.get("BENCH_SDK_INFLIGHT", "16"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
TARGET_CALLS, TARGET_RSS_MIB = 10000, 16
BODY = {"enabled": True, "metadataId": "IqDTy1TpoU", "disconnectAllWarehouses": True}


def cpu_seconds(pid):
    """user and system CPU seconds of a live process, from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def run_segspool(emu, run_no, inflight):
    """one daemon run over N fresh jobs with inflight requests at most: its figures."""
    s = Spool(emu.url, config={"http": {"max_in_flight": inflight}, "rate": "off",
                               "endpoint_limits": False, "log_level": "warn"})
    try:
        if SHAPE == "onefile":  # default settings: no "output" at all
            s.drop_jobs("bench.jsonl", [
                {"op": "createSource", "params": dict(BODY, slug=f"bench-{run_no}-{i}")}
                for i in range(N)])
        per_file = 1000
        for f in range(0, N if SHAPE == "files" else 0, per_file):
            s.drop_jobs(f"batch-{f // per_file:03d}.jsonl", [
                dict({"op": "createSource", "params": dict(BODY, slug=f"bench-{run_no}-{i}")},
                     output=False if OUTPUT == "store" else f"r/{i}.json")
                for i in range(f, min(N, f + per_file))])
        emu_cpu0 = cpu_seconds(emu.proc.pid)
        t0 = time.monotonic()
        p = s.start("--until-idle", ready=False)
        rss, cpu = 0, (0.0, 0.0)
        while p.poll() is None:
            try:
                for line in open(f"/proc/{p.pid}/status"):
                    if line.startswith("VmHWM:"):
                        rss = int(line.split()[1])
                cpu = cpu_seconds(p.pid)
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
            time.sleep(0.05)
        wall = time.monotonic() - t0
        emu_cpu = [a - b for a, b in zip(cpu_seconds(emu.proc.pid), emu_cpu0)]
        db = sqlite3.connect(os.path.join(s.spool, "segspool.db"))
        first, last, calls = db.execute(
            "SELECT min(started_ms), max(started_ms + coalesce(duration_ms,0)), count(*) "
            "FROM attempts").fetchone()
        ok = db.execute("SELECT count(*) FROM jobs WHERE state = 3").fetchone()[0]
        db.close()
        span = max((last - first) / 1000.0, 0.001)
        results_lines = 0
        for path in glob.glob(os.path.join(s.spool, "out", "results", "*.results.jsonl")):
            with open(path) as f:
                results_lines += sum(1 for _ in f)
        per_job_files = sum(len(fs) for d, _, fs in os.walk(os.path.join(s.spool, "out"))
                            if os.path.basename(d) != "results")
        return {"run": run_no, "n": N, "succeeded": ok, "calls": calls,
                "seconds": round(span, 3), "calls_per_sec": round(calls / span),
                "wall_incl_ingest_s": round(wall, 3), "peak_rss_mib": round(rss / 1024, 1),
                "in_flight": inflight, "shape": SHAPE, "results_lines": results_lines,
                "per_job_files": per_job_files,
                # sampled every 50 ms: the last sample before exit, so a little low
                "daemon_cpu_s": round(sum(cpu), 2), "emulator_cpu_s": round(sum(emu_cpu), 2)}
    finally:
        s.cleanup()


def run_sdk(emu, sdk_dir):
    """one TS SDK peer run over N calls, or None (with the reason on stderr)."""
    r = subprocess.run(["node", os.path.join(sdk_dir, "sdk_peer.mjs"), "--base", emu.url,
                        "--token", TOKEN, "--n", str(N), "--concurrency", str(SDK_INFLIGHT),
                        "--metadata-id", BODY["metadataId"]], capture_output=True, timeout=600)
    line = r.stdout.decode().strip().splitlines()[-1] if r.stdout else ""
    try:
        return json.loads(line)
    except ValueError:
        print("ts-sdk peer failed:", r.stderr.decode()[-500:], file=sys.stderr)
        return None


emu = Emulator()
atexit.register(emu.stop)  # stopped however the bench ends (a closed pipe included)
runs = {inflight: [] for inflight in INFLIGHTS}
for k in range(REPEATS):
    for inflight in INFLIGHTS:
        emu.admin("/__emu/reset", {})
        r = run_segspool(emu, f"{inflight}-{k + 1}", inflight)
        runs[inflight].append(r)
        print(json.dumps({"bench": "ops-run", "outputs": OUTPUT if SHAPE == "files" else "results",
                          **r}), flush=True)
rates = {}
for inflight, rs in runs.items():
    rates[inflight] = rate = statistics.median(r["calls_per_sec"] for r in rs)
    rss = max(r["peak_rss_mib"] for r in rs)
    print(json.dumps({
        "bench": "ops", "n": N, "shape": SHAPE,
        "outputs": OUTPUT if SHAPE == "files" else "results", "in_flight": inflight,
        "durable": True, "results_lines": [r["results_lines"] for r in rs],
        "runs": len(rs), "calls_per_sec_median": rate,
        "calls_per_sec_runs": [r["calls_per_sec"] for r in rs],
        "all_succeeded": all(r["succeeded"] == N for r in rs), "peak_rss_mib_max": rss,
        "target": {"calls_per_sec": TARGET_CALLS, "peak_rss_mib": TARGET_RSS_MIB},
        "met": {"calls_per_sec": rate >= TARGET_CALLS, "peak_rss_mib": rss <= TARGET_RSS_MIB}}),
        flush=True)

sdk_dir = os.path.join(benchenv.HERE, "sdk")
if os.path.isdir(os.path.join(sdk_dir, "node_modules")):
    peers = []
    for k in range(REPEATS):
        emu.admin("/__emu/reset", {})
        peer = run_sdk(emu, sdk_dir)
        if peer:
            peers.append(peer)
            print(json.dumps({"bench": "ops-ts-sdk-run", "run": k + 1,
                              "in_flight": SDK_INFLIGHT, **peer}), flush=True)
    if peers:
        peer_rate = statistics.median(p["calls_per_sec"] for p in peers)
        print(json.dumps({"bench": "ops-ts-sdk", "in_flight": SDK_INFLIGHT, "runs": len(peers),
                          "calls_per_sec_median": peer_rate,
                          "peak_rss_mb_max": max(p["peak_rss_mb"] for p in peers)}))
        for inflight, rate in rates.items():
            print(json.dumps({"bench": "ops-ratio", "segspool_in_flight": inflight,
                              "ts_sdk_in_flight": SDK_INFLIGHT,
                              "segspool_over_ts_sdk": round(rate / max(peer_rate, 1), 2)}))
else:
    print("skipped: ts-sdk peer (run npm ci in tests/bench/sdk)")
emu.stop()
