"""e2e faults_transport - the cells of the fault matrix about where a connection fails:
reset before the server read the request (nothing applied) and an unresolvable host
(nothing sent). Each cell asserts the job's final state and its recorded attempts."""
from harness import Checks, Emulator, Spool

c = Checks("faults_transport")
RETRY = {"max_attempts": 2, "initial_ms": 20, "max_ms": 40}


def attempts(s, job_id):
    return [a for a in s.show(job_id)["attempts"] if isinstance(a, dict)]


# 1. reset before the request was read: a read is retried to dead; a mutation's outcome
#    is unknown to the client (the request left), with on_unknown=fail it fails at once,
#    and the emulator confirms nothing was applied
emu = Emulator("--reset-before-rate", "1")
s = Spool(emu.url)
try:
    s.drop_jobs("a.json", [
        {"op": "getWarehouse", "params": {"warehouseId": "wh_1"}, "retry": RETRY},
        {"op": "createSource", "params": {"slug": "never-applied", "enabled": True,
                                          "metadataId": "IqDTy1TpoU"},
         "on_unknown": "fail", "retry": RETRY},
        {"op": "createSource", "params": {"slug": "at-least-once", "enabled": True,
                                          "metadataId": "IqDTy1TpoU"}, "retry": RETRY}])
    c.eq(s.run_until_idle(timeout=60), 0, "reset-before: the daemon finishes")
    by_op = {}
    for j in s.jobs():
        by_op.setdefault(j["op"], []).append(j)
    get = by_op["getWarehouse"][0]
    c.eq(get["state"], "dead", "reset-before: the read ends dead")
    att = attempts(s, get["id"])
    c.eq(len(att), 2, "reset-before: the read used its 2 attempts")
    c.check(all(a["outcome"] == "retry" and a["http_status"] in (None, 0) for a in att),
            f"reset-before: each read attempt is a retry without a status: {att}")
    creates = {s.show(j["id"])["spec"]["params"]["slug"]: j for j in by_op["createSource"]}
    once = creates["never-applied"]
    c.eq(once["state"], "failed", "reset-before: on_unknown=fail fails the mutation")
    att = attempts(s, once["id"])
    c.eq([a["outcome"] for a in att], ["unknown"], "reset-before: one attempt, outcome unknown")
    again = creates["at-least-once"]
    c.eq(again["state"], "dead", "reset-before: on_unknown=retry retries, then dead")
    # the retry after a lost answer is createSource's lookup (reconcile): a GET, so a retry
    att = attempts(s, again["id"])
    c.eq([(a["outcome"], a["request"].split("?")[0]) for a in att],
         [("unknown", "POST /sources"), ("retry", "GET /sources")],
         "reset-before: the create unknown, then its lookup retried, and the mutation never "
         "sent blindly")
    muts = emu.stats()["mutations"]
    c.check(not any("never-applied" in k or "at-least-once" in k for k in muts),
            f"reset-before: the emulator applied nothing: {muts}")
finally:
    s.cleanup()
    emu.stop()

# 2. an unresolvable host: nothing is sent, so even a mutation is plainly retried
s = Spool("https://segspool-test.invalid")
try:
    s.drop_jobs("b.json", [{"op": "createSource", "on_unknown": "fail", "retry": RETRY,
                            "params": {"slug": "x", "enabled": True, "metadataId": "m"}}])
    c.eq(s.run_until_idle(timeout=120), 0, "unresolvable: the daemon finishes")
    j = s.jobs()[0]
    c.eq(j["state"], "dead", "unresolvable: dead after its attempts (not failed as unknown)")
    att = attempts(s, j["id"])
    c.eq([a["outcome"] for a in att], ["retry", "retry"],
         "unresolvable: attempts recorded as retries (the request never left)")
    c.check(all("resolve" in (a.get("error") or "").lower() for a in att),
            f"unresolvable: the error says the host could not be resolved: {att}")
finally:
    s.cleanup()
c.finish()
