"""e2e control - the CLI's cancel and retry against a running daemon (through the spool's
control files), priority order, not_before, idempotency keys, SIGTERM with a request in
flight (finished within grace_ms, or interrupted and requeued after it), SIGHUP reload.
"""
import os
import signal
import time

from harness import (Checks, Emulator, Spool, emu_cleanup, iso_from_ms, iso_ms, listdir,
                     rewrite_config, wait_for, wait_job_state)

c = Checks("control")
TERMINAL = ("succeeded", "failed", "dead", "cancelled")


def get_wh(n=1, **kw):
    j = {"op": "getWarehouse", "params": {"warehouseId": f"wh_{n}"}}
    j.update(kw)
    return j


def ids_by_key(s):
    if not os.path.exists(os.path.join(s.spool, "segspool.db")):
        return {}
    return {j["key"]: j["id"] for j in s.jobs() if j.get("key")}


def job_of(s, key, timeout=20):
    return wait_for(lambda: ids_by_key(s).get(key), timeout=timeout, what=f"job {key} ingested")


def in_flight(s, jid):
    """the job has an attempt without an outcome: its request is on the wire."""
    sh = s.show(jid)
    return sh if sh["state"] == "running" and any(a["outcome"] is None
                                                  for a in sh["attempts"]) else None


emu = Emulator("--seed", "41")
s = Spool(emu.url, config={"endpoint_limits": False, "grace_ms": 2000})
try:
    s.start()

    # --- cancel while queued ----------------------------------------------------------
    s.drop_jobs("later.json", [get_wh(1, key="later", not_before=iso_from_ms(
        int(time.time() * 1000) + 3600_000))])
    jid = job_of(s, "later")
    c.eq(s.show(jid)["state"], "queued", "a job due in an hour is queued")
    r = s.cli("cancel", str(jid))
    c.eq(r.returncode, 0, "cancel of a queued job exits 0")
    c.check(b"running daemon" in r.stdout, f"cancel went through the daemon: {r.stdout!r}")
    sh = wait_job_state(s, jid, TERMINAL)
    c.eq((sh["state"], sh["attempts"]), ("cancelled", []), "cancelled while queued, no attempt")

    # --- cancel while a request is in flight --------------------------------------------
    emu.admin("/__emu/config", {"delay_ms": 3000})
    s.drop_jobs("slow.json", [get_wh(2, key="slow")])
    jid = job_of(s, "slow")
    wait_for(lambda: in_flight(s, jid), timeout=10, what="request in flight")
    t0 = time.monotonic()
    c.eq(s.cli("cancel", str(jid)).returncode, 0, "cancel of a running job exits 0")
    sh = wait_job_state(s, jid, TERMINAL, timeout=10)
    took = time.monotonic() - t0
    c.eq(sh["state"], "cancelled", "cancelled in flight: the job ends cancelled, not succeeded")
    c.check(took < 2.0, f"the request was aborted, not waited for ({took:.2f} s of 3 s)")
    c.eq([a["outcome"] for a in sh["attempts"]], ["cancelled"],
         "its attempt is recorded as cancelled")
    c.check(not sh["output"] or not os.path.exists(s.out_path(sh["output"])),
            "no output for the cancelled job")
    emu.admin("/__emu/config", {"delay_ms": 0})

    # --- retry ID and retry --state failed ------------------------------------------------
    emu.admin("/__emu/config", {"fail_rate": 1, "fail_status": 422})
    s.drop_jobs("fail.json", [get_wh(1, key="f1"), get_wh(2, key="f2"), get_wh(3, key="f3")])
    fids = [job_of(s, k) for k in ("f1", "f2", "f3")]
    for f in fids:
        c.eq(wait_job_state(s, f, TERMINAL)["state"], "failed", f"job {f} failed on a 422")
    emu.admin("/__emu/config", {"fail_rate": 0})
    c.eq(s.cli("retry", str(fids[0])).returncode, 0, "retry ID exits 0")
    sh = wait_job_state(s, fids[0], ("succeeded", "dead", "cancelled"), timeout=20)
    c.eq(sh["state"], "succeeded", "retry ID: the failed job ran again and succeeded")
    c.eq([a["outcome"] for a in sh["attempts"]], ["failed", "ok"], "retry ID: both attempts kept")
    c.check(any(t["from"] == "failed" and t["to"] == "queued" for t in sh["transitions"]),
            "retry ID: the history shows failed -> queued")
    c.eq(s.show(fids[1])["state"], "failed", "the other failed jobs stay failed meanwhile")
    c.eq(s.cli("retry", "--state", "failed").returncode, 0, "retry --state failed exits 0")
    for f in fids[1:]:
        sh = wait_job_state(s, f, ("succeeded", "dead", "cancelled"), timeout=20)
        c.eq((sh["state"], len(sh["attempts"])), ("succeeded", 2),
             f"retry --state failed: job {f} ran again and succeeded")

    # --- not_before ------------------------------------------------------------------------
    due = int(time.time() * 1000) + 2000
    s.drop_jobs("due.json", [get_wh(3, key="due", not_before=iso_from_ms(due))])
    jid = job_of(s, "due")
    sh = wait_job_state(s, jid, TERMINAL, timeout=20)
    first = iso_ms(sh["attempts"][0]["started"]) if sh["attempts"] else None
    c.eq(sh["state"], "succeeded", "not_before: the job ran")
    c.check(first is not None and first >= due, f"not_before: it did not start early "
            f"({(first or 0) - due} ms after due)")
    c.check(first is not None and first < due + 1500, "not_before: nor much later")

    # --- an idempotency key submitted twice runs once ---------------------------------------
    once = {"op": "createSource", "key": "provision-once",
            "params": {"slug": "once", "enabled": True, "metadataId": "IqDTy1TpoU",
                       "disconnectAllWarehouses": True}}
    s.drop_jobs("once-1.json", [once])
    jid = job_of(s, "provision-once")
    c.eq(wait_job_state(s, jid, TERMINAL)["state"], "succeeded", "key: the first job ran")
    n_jobs = len(s.jobs())
    s.drop_jobs("once-2.json", [once])
    wait_for(lambda: "once-2.json" not in listdir(os.path.join(s.spool, "incoming")),
             timeout=20, what="second file taken")
    wait_for(lambda: "already recorded" in s.log_text(), timeout=10, what="duplicate logged")
    time.sleep(0.5)
    c.eq(len(s.jobs()), n_jobs, "key: the second file added no job")
    c.eq(emu.stats()["mutations"].get("createSource slug=once"), 1,
         "key: the create reached the API once")
    c.check("once-2.json" in listdir(os.path.join(s.spool, "archive")),
            "key: the second file was accepted (archived), not rejected")

    # --- SIGHUP: log level and rate reloaded -------------------------------------------------
    c.check(" debug: " not in s.log_text(), "at log_level info there are no debug lines")
    rewrite_config(s, {"log_level": "debug", "rate": "2/s", "burst": 1})
    s.daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in s.log_text(), timeout=10,
             what="reload logged")
    c.check(s.daemon.poll() is None, "SIGHUP: the daemon keeps running")
    mark = len(s.log_text())
    s.drop_jobs("after-hup.json", [get_wh(1 + i % 3, key=f"hup{i}") for i in range(4)])
    hids = [job_of(s, f"hup{i}") for i in range(4)]
    shows = [wait_job_state(s, h, TERMINAL, timeout=20) for h in hids]
    c.check(" debug: " in s.log_text()[mark:], "SIGHUP: the new log_level applies (debug lines)")
    starts = sorted(iso_ms(sh["attempts"][0]["started"]) for sh in shows)
    span = (starts[-1] - starts[0]) / 1000.0
    c.check(span >= 1.3, f"SIGHUP: the new rate (2/s, burst 1) applies: 4 requests over "
            f"{span:.2f} s")

    # --- SIGHUP raising the rate: jobs parked by the old one are due at once ---------------
    reloads = s.log_text().count("configuration reloaded")
    rewrite_config(s, {"log_level": "info", "rate": "1/min", "burst": 1})
    s.daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: s.log_text().count("configuration reloaded") > reloads, timeout=10,
             what="second reload logged")
    s.drop_jobs("parked.json", [get_wh(1 + i % 3, key=f"park{i}") for i in range(3)])
    pids = [job_of(s, f"park{i}") for i in range(3)]

    def parked():
        return sum(1 for p in pids if s.show(p)["state"] == "waiting")
    wait_for(lambda: parked() >= 2, timeout=20, what="jobs parked by the 1/min rate")
    sh = s.show(next(p for p in pids if s.show(p)["state"] == "waiting"))
    c.eq(sh["transitions"][-1]["reason"], "waiting for the rate limit",
         "1/min: a parked job says why it waits")
    rewrite_config(s, {"rate": "100/s", "burst": 10})
    t_hup = time.monotonic()
    s.daemon.send_signal(signal.SIGHUP)
    shows = [wait_job_state(s, p, TERMINAL, timeout=30) for p in pids]
    took = time.monotonic() - t_hup
    c.eq([x["state"] for x in shows], ["succeeded"] * 3, "parked jobs: all succeeded")
    c.check(took < 10, f"SIGHUP to 100/s: the jobs parked for about a minute ran at once "
            f"({took:.1f} s)")
    c.check("waiting for the rate limit are due again" in s.log_text(),
            "SIGHUP: the woken jobs are logged")
    c.eq(s.stop(), 0, "SIGTERM: the daemon exits 0")
finally:
    s.cleanup()

# --- priority order: one request at a time, higher priority first --------------------------
s = Spool(emu.url, config={"endpoint_limits": False, "http": {"max_in_flight": 1}})
try:
    emu.admin("/__emu/config", {"delay_ms": 20})
    prios = [0, 5, 1, 9, 3, -2, 7]
    s.drop_jobs("prio.json", [get_wh(1, key=f"p{p}", priority=p) for p in prios])
    c.eq(s.run_until_idle(timeout=60), 0, "priority: run exits 0")
    emu.admin("/__emu/config", {"delay_ms": 0})
    keys = ids_by_key(s)
    order = sorted(((iso_ms(s.show(keys[f"p{p}"])["attempts"][0]["started"]), p)
                    for p in prios))
    c.eq([p for _, p in order], sorted(prios, reverse=True),
         "priority: requests started in priority order")
finally:
    s.cleanup()

# --- SIGTERM with a request in flight, within the grace period ---------------------------------
s = Spool(emu.url, config={"endpoint_limits": False, "grace_ms": 5000})
try:
    emu.admin("/__emu/config", {"delay_ms": 1500})
    s.start()
    s.drop_jobs("one.json", [get_wh(1, key="graceful")])
    jid = job_of(s, "graceful")
    wait_for(lambda: in_flight(s, jid), timeout=10, what="request in flight")
    t0 = time.monotonic()
    s.daemon.send_signal(signal.SIGTERM)
    rc = s.daemon.wait(timeout=20)
    took = time.monotonic() - t0
    c.eq(rc, 0, "SIGTERM in flight (grace 5 s): exit 0")
    c.check(0.5 <= took < 4.5, f"it waited for the request, not the whole grace ({took:.2f} s)")
    sh = s.show(jid)
    c.eq(sh["state"], "succeeded", "the in-flight request finished: job succeeded")
    c.check(sh["output"] and os.path.exists(s.out_path(sh["output"])), "with its output")
finally:
    s.cleanup()

# --- SIGTERM with requests in flight past the grace period --------------------------------------
s = Spool(emu.url, config={"endpoint_limits": False, "grace_ms": 200})
try:
    emu.admin("/__emu/config", {"delay_ms": 3000})
    s.start()
    s.drop_jobs("two.json", [get_wh(2, key="read"),
                             {"op": "updateWarehouse", "key": "write",
                              "params": {"warehouseId": "wh_3", "name": "renamed",
                                         "settings": {"database": "ANALYTICS"}}}])
    rid, wid = job_of(s, "read"), job_of(s, "write")
    wait_for(lambda: in_flight(s, rid) and in_flight(s, wid), timeout=10,
             what="both requests in flight")
    t0 = time.monotonic()
    s.daemon.send_signal(signal.SIGTERM)
    rc = s.daemon.wait(timeout=20)
    took = time.monotonic() - t0
    c.eq(rc, 0, "SIGTERM past the grace (200 ms): exit 0")
    c.check(took < 2.0, f"it did not wait for the 3 s requests ({took:.2f} s)")
    r, w = s.show(rid), s.show(wid)
    c.eq((r["state"], w["state"]), ("queued", "queued"), "both jobs are queued again")
    c.eq([a["outcome"] for a in r["attempts"]], ["interrupted"],
         "the read's attempt is recorded interrupted")
    c.eq([a["outcome"] for a in w["attempts"]], ["unknown"],
         "the write's attempt is recorded unknown (it may have been applied)")
    c.check("grace period over" in s.log_text(), "the log says the grace period ran out")
    emu.admin("/__emu/config", {"delay_ms": 0})
    c.eq(s.run_until_idle(timeout=60), 0, "the second run exits 0")
    r, w = s.show(rid), s.show(wid)
    c.eq((r["state"], w["state"]), ("succeeded", "succeeded"), "the second run completed both")
    c.eq([a["outcome"] for a in r["attempts"]], ["interrupted", "ok"], "read: interrupted, ok")
    c.eq([a["outcome"] for a in w["attempts"]], ["unknown", "ok"], "write: unknown, ok")
finally:
    s.cleanup()
    emu_cleanup(emu)
c.finish()
