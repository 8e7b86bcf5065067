"""bench_ops - 20,000 createSource jobs through the real daemon against segspool-emu with
limits off, each attempt durably recorded (SQLite WAL, synchronous=FULL) and each result
written to its output file; then the official TypeScript SDK doing the same work with 16
requests in flight and no durability (tests/bench/sdk, when its node_modules is installed).
Prints figures; asserts nothing.

usage: python3 tests/bench/bench_ops.py [BUILD_DIR] [N]"""
import atexit
import json
import os
import sqlite3
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "e2e"))
build = sys.argv[1] if len(sys.argv) > 1 else "build"
os.environ.setdefault("SEGSPOOL_BIN", os.path.join(build, "segspool"))
os.environ.setdefault("SEGSPOOL_EMU", os.path.join(build, "segspool-emu"))
from harness import TOKEN, Emulator, Spool  # noqa: E402

N = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
# "file": each job's data object in its own output file (the default);
# "store": "output": false, results kept in SQLite only (one file per job is what costs)
OUTPUT = os.environ.get("BENCH_OUTPUT", "file")
INFLIGHT = int(os.environ.get("BENCH_INFLIGHT", "16"))
results = {}

emu = Emulator()
atexit.register(emu.stop)  # stopped however the bench ends (a closed pipe included)
s = Spool(emu.url, config={"http": {"max_in_flight": INFLIGHT}, "rate": "off",
                           "endpoint_limits": False, "log_level": "warn"})
try:
    per_file = 1000
    for f in range(0, N, per_file):
        s.drop_jobs(f"batch-{f // per_file:03d}.jsonl", [
            dict({"op": "createSource", "params": {"slug": f"bench-{i}", "enabled": True,
                                                   "metadataId": "s0d1ouMNJG",
                                                   "disconnectAllWarehouses": True}},
                 **({"output": False} if OUTPUT == "store" else {}))
            for i in range(f, min(N, f + per_file))])
    t0 = time.monotonic()
    p = s.start("--until-idle", ready=False)
    rss = 0
    while p.poll() is None:
        try:
            for line in open(f"/proc/{p.pid}/status"):
                if line.startswith("VmHWM:"):
                    rss = int(line.split()[1])
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    wall = time.monotonic() - t0
    db = sqlite3.connect(os.path.join(s.spool, "segspool.db"))
    first, last, calls = db.execute(
        "SELECT min(started_ms), max(started_ms + coalesce(duration_ms,0)), count(*) "
        "FROM attempts").fetchone()
    ok = db.execute("SELECT count(*) FROM jobs WHERE state = 3").fetchone()[0]
    span = max((last - first) / 1000.0, 0.001)
    results["segspool"] = {"n": N, "succeeded": ok, "calls": calls, "seconds": round(span, 3),
                           "calls_per_sec": round(calls / span),
                           "wall_incl_ingest_s": round(wall, 3),
                           "peak_rss_mib": round(rss / 1024, 1), "in_flight": INFLIGHT,
                           "outputs": OUTPUT,
                           "durable": True}
    print(json.dumps({"bench": "ops", **results["segspool"]}), flush=True)
finally:
    s.cleanup()

sdk_dir = os.path.join(here, "sdk")
if os.path.isdir(os.path.join(sdk_dir, "node_modules")):
    emu.admin("/__emu/reset", {})
    r = subprocess.run(["node", os.path.join(sdk_dir, "sdk_peer.mjs"), "--base", emu.url,
                        "--token", TOKEN, "--n", str(N), "--concurrency", str(INFLIGHT),
                        "--metadata-id", "s0d1ouMNJG"], capture_output=True, timeout=600)
    line = r.stdout.decode().strip().splitlines()[-1] if r.stdout else ""
    try:
        peer = json.loads(line)
        results["sdk"] = peer
        print(json.dumps({"bench": "ops-ts-sdk", **peer}), flush=True)
        ratio = results["segspool"]["calls_per_sec"] / max(peer["calls_per_sec"], 1)
        print(json.dumps({"bench": "ops-ratio", "segspool_over_ts_sdk": round(ratio, 2)}))
    except (ValueError, KeyError):
        print("ts-sdk peer failed:", r.stderr.decode()[-500:], file=sys.stderr)
else:
    print("skipped: ts-sdk peer (run npm ci in tests/bench/sdk)")
emu.stop()
