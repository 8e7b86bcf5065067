"""e2e ratelimit - the "429 storm": token buckets against an emulator with a real limit.

1. configured at the API's own rate: 100 creates, zero 429s;
2. configured twice too fast: every job still succeeds (429s do not use up attempts, even
   with max_attempts 1), every Retry-After is honoured, and the 429s stay few;
3. bucket state survives a restart: a second run right after a first that drained the
   bucket does not start with a full burst (the emulator's bucket, which does not reset,
   would answer 429);
4. the documented per-endpoint limit (createInvites, 60/min) is paced, zero 429s.
"""
import json
import time

from harness import Checks, Emulator, Spool, emu_cleanup, iso_ms

c = Checks("ratelimit")
N = 100
MD_JS = "IqDTy1TpoU"


def creates(prefix, n, **extra):
    out = []
    for i in range(n):
        j = {"op": "createSource", "params": {"slug": f"{prefix}-{i:03d}", "enabled": True,
                                               "metadataId": MD_JS,
                                               "disconnectAllWarehouses": True}}
        j.update(extra)
        out.append(j)
    return out


def all_shows(s):
    return [s.show(j["id"]) for j in s.jobs()]


def starts(shows):
    return sorted(iso_ms(a["started"]) for sh in shows for a in sh["attempts"])


def max_in_window(times, window_ms):
    best, lo = 0, 0
    for hi in range(len(times)):
        while times[hi] - times[lo] >= window_ms:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# --- 1. at the API's rate: no 429 at all ------------------------------------------------
emu = Emulator("--rate", "20/s", "--seed", "11")
s = Spool(emu.url, config={"rate": "20/s", "burst": 5, "endpoint_limits": False})
try:
    s.drop_jobs("batch.json", creates("same", N))
    t0 = time.monotonic()
    c.eq(s.run_until_idle(timeout=120), 0, "same rate: run --until-idle exits 0")
    took = time.monotonic() - t0
    st = emu.stats()
    print(f"same rate: {N} creates in {took:.1f} s, emulator saw {st['requests']} requests, "
          f"{st['rate_limited']} answered 429", flush=True)
    c.eq(s.states(), {"succeeded": N}, "same rate: every job succeeded")
    c.eq(st["rate_limited"], 0, "same rate: the emulator answered no 429")
    c.eq(st["by_operation"].get("createSource"), N, "same rate: one request per job")
    # 5 at once then 20/s: at least (N - 5) / 20 s of sending
    times = starts(all_shows(s))
    span = (times[-1] - times[0]) / 1000.0
    c.check(span >= (N - 5) / 20.0 * 0.9, f"same rate: the sends were paced ({span:.2f} s)")
finally:
    s.cleanup()
    emu_cleanup(emu)

# --- 2. twice too fast: 429s, honoured, not counted ---------------------------------------
emu = Emulator("--rate", "20/s", "--seed", "12")
s = Spool(emu.url, config={"rate": "40/s", "burst": 40, "endpoint_limits": False})
try:
    # max_attempts 1: if a 429 used up an attempt, the job would end dead at its first 429
    s.drop_jobs("batch.json", creates("fast", N, retry={"max_attempts": 1}))
    t0 = time.monotonic()
    c.eq(s.run_until_idle(timeout=180), 0, "too fast: run --until-idle exits 0")
    took = time.monotonic() - t0
    st = emu.stats()
    print(f"too fast: {N} creates in {took:.1f} s, emulator saw {st['requests']} requests, "
          f"{st['rate_limited']} answered 429", flush=True)
    c.eq(s.states(), {"succeeded": N}, "too fast: every job succeeded despite max_attempts 1")
    c.check(st["rate_limited"] > 0, "too fast: the emulator did answer 429 (the test bites)")
    c.check(st["rate_limited"] <= N // 2,
            f"too fast: 429s stay few: {st['rate_limited']} <= {N // 2}")
    shows = all_shows(s)
    n429 = dishonoured = 0
    bad = []
    for sh in shows:
        atts = sorted(sh["attempts"], key=lambda a: a["attempt"])
        if sum(1 for a in atts if a["outcome"] == "ok") != 1 or atts[-1]["outcome"] != "ok":
            bad.append(f"job {sh['id']}: outcomes {[a['outcome'] for a in atts]}")
        for a, b in zip(atts, atts[1:]):
            if a["outcome"] != "rate_limited":
                continue
            n429 += 1
            ra = a["retry_after_ms"]
            if ra is None or ra < 1000:
                # the emulator sends Retry-After in whole seconds, at least 1
                bad.append(f"job {sh['id']} attempt {a['attempt']}: retry_after_ms {ra}")
                continue
            earliest = iso_ms(a["started"]) + (a["duration_ms"] or 0) + ra
            if iso_ms(b["started"]) + 2 < earliest:  # ms rounding of started/duration
                dishonoured += 1
                bad.append(f"job {sh['id']}: attempt {b['attempt']} at {b['started']} before "
                           f"{a['started']} + {a['duration_ms']} + {ra} ms")
        # 429s are not counted: at most the one ok attempt is
        not_rl = sum(1 for a in atts if a["outcome"] != "rate_limited")
        if sh["attempts_counted"] > not_rl:
            bad.append(f"job {sh['id']}: attempts_counted {sh['attempts_counted']} with "
                       f"{len(atts) - not_rl} 429(s)")
    c.eq(n429, st["rate_limited"], "too fast: every 429 the emulator sent is a recorded "
         "rate_limited attempt followed by another attempt")
    c.eq(dishonoured, 0, "too fast: no attempt started before the Retry-After it followed")
    c.eq(bad[:5], [], "too fast: each job one ok attempt last, Retry-After recorded and kept")
    st_cli = json.loads(s.cli("stats", "--json", check=True).stdout)
    c.eq(st_cli["attempts"].get("rate_limited", 0), st["rate_limited"],
         "too fast: stats --json counts the rate_limited attempts")
finally:
    s.cleanup()
    emu_cleanup(emu)

# --- 3. bucket state survives a restart ---------------------------------------------------
# rate 5/s, burst 5 (the emulator unlimited, so only the daemon's own bucket paces). Run 1
# has 9 jobs: 5 at once, then one every 200 ms, and exits (--until-idle) right after the
# last, with the bucket empty. Run 2 starts at once: its bucket may hold only what refilled
# since run 1's last request. A bucket that restarted full (or from a state older than run
# 1's last requests) sends 5 at once and ~10 in the first second.
RATE, BURST = 5.0, 5
emu = Emulator("--seed", "13")
s = Spool(emu.url, config={"rate": "5/s", "burst": BURST, "endpoint_limits": False})
try:
    s.drop_jobs("run1.json", creates("r1", 9))
    c.eq(s.run_until_idle(timeout=60), 0, "restart: run 1 exits 0")
    c.eq(s.states(), {"succeeded": 9}, "restart: run 1 finished its 9 jobs")
    run1 = starts(all_shows(s))
    s.drop_jobs("run2.json", creates("r2", 20))
    s.start()
    time.sleep(2.0)
    s.stop()
    shows = all_shows(s)
    run2 = sorted(iso_ms(a["started"]) for sh in shows
                  for a in sh["attempts"] if sh["spec"]["params"]["slug"].startswith("r2-"))
    c.check(len(run2) >= 2, f"restart: run 2 did send requests ({len(run2)})")
    if run2 and run1:
        t0 = run2[0]
        first_second = sum(1 for t in run2 if t < t0 + 1000)
        at_once = sum(1 for t in run2 if t < t0 + 50)
        gap = t0 - run1[-1]
        # what the bucket can hold: the refill since run 1's last request and during the
        # second measured, plus one for rounding; a bucket reset to full gives BURST + RATE
        allowed = min(BURST + RATE, int(RATE * (gap + 1000) / 1000.0) + 1)
        allowed_at_once = min(BURST, int(RATE * (gap + 50) / 1000.0) + 1)
        print(f"restart: run 1 sent {len(run1)} over {(run1[-1] - run1[0]) / 1000.0:.2f} s; "
              f"run 2 began {gap} ms after its last request and sent {at_once} at once, "
              f"{first_second} in its first second (allowed {allowed_at_once}, {allowed})",
              flush=True)
        c.check(at_once <= allowed_at_once, f"restart: no burst at the restart: {at_once} "
                f"requests within 50 ms, allowed {allowed_at_once}")
        c.check(first_second <= allowed, f"restart: the rate holds across the restart: "
                f"{first_second} requests in the first second, allowed {allowed}")
finally:
    s.cleanup()
    emu_cleanup(emu)

# --- 4. documented per-endpoint limits: createInvites is 60/min ------------------------------
NI = 12
emu = Emulator("--endpoint-limits", "--seed", "14")
s = Spool(emu.url, config={"rate": "off", "endpoint_limits": True})
try:
    s.drop_jobs("invites.json", [{"op": "createInvites", "params": {"invites": [
        {"email": f"person{i}@example.com", "role": "Workspace Owner"}]}} for i in range(NI)])
    t0 = time.monotonic()
    c.eq(s.run_until_idle(timeout=90), 0, "endpoint limits: run exits 0")
    took = time.monotonic() - t0
    st = emu.stats()
    c.eq(s.states(), {"succeeded": NI}, "endpoint limits: every invite job succeeded")
    c.eq(st["rate_limited"], 0, "endpoint limits: no 429")
    times = starts(all_shows(s))
    c.eq(len(times), NI, "endpoint limits: one request per job")
    # 60/min with a burst of 6: at most 6 + 1 per second in any window
    worst = max(max_in_window(times, w * 1000) - (6 + w) for w in (1, 2, 3, 4))
    span = (times[-1] - times[0]) / 1000.0
    print(f"endpoint limits: {NI} invites over {span:.1f} s (run {took:.1f} s)", flush=True)
    c.check(worst <= 0, f"endpoint limits: never more than 6 + 1/s in a window "
            f"(excess {worst})")
    c.check(span >= NI - 6 - 1, f"endpoint limits: the invites were paced at 60/min "
            f"({span:.1f} s for {NI})")
finally:
    s.cleanup()
    emu_cleanup(emu)
c.finish()
