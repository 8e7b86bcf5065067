"""test_refs - jobs that wait for jobs (issue #13, "References and order"), through the
daemon and the emulator: one file creates a source, a warehouse connection for it and a
destination on it, the last two naming the source's id by {"$ref": "src-a#/source/id"} and
written before it in the file: they run after it, with the id it got, which `show` says
each attempt sent. A job waits for a key already in the store; a file naming an unknown
key, or whose jobs wait in a cycle, is rejected with where and why; a dependency that fails
ends its dependants (transitively) failed "dependency KEY failed", and `segspool retry` of
it brings them back: they then run and succeed. Jobs waiting behind one that waits for a
token do not keep --until-idle from stopping.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Checks, Emulator, Spool, listdir  # noqa: E402

SOURCE_META = "IqDTy1TpoU"  # Javascript
DEST_META = "PGEbHBGBz1"  # Google Analytics 4

c = Checks("refs")


def by_key(s):
    return {j["key"]: j for j in s.jobs() if j.get("key")}


def reasons(show):
    return [t.get("reason") for t in show["transitions"]]


def rejection(s, name):
    path = os.path.join(s.spool, "rejected", name + ".error.json")
    if not c.check(os.path.exists(path), f"{name} rejected with an error file"):
        return []
    return json.load(open(path))["problems"]


def provision_in_order(s, emu):
    # the dependants first: ids do not decide the order, the references do
    s.drop_jobs("provision.json", [
        {"op": "createDestination", "key": "dst-a", "after": ["conn-a"],
         "params": {"sourceId": {"$ref": "src-a#/source/id"}, "metadataId": DEST_META,
                    "name": "GA4 a", "settings": {"measurementId": "G-A"}}},
        {"op": "addConnectionFromSourceToWarehouse", "key": "conn-a",
         "params": {"warehouseId": "wh_1", "sourceId": {"$ref": "src-a#/source/id"}}},
        {"op": "createSource", "key": "src-a",
         "params": {"slug": "refs-a", "enabled": True, "metadataId": SOURCE_META}},
    ])
    c.eq(s.run_until_idle(timeout=60), 0, "daemon exit status")
    jobs = by_key(s)
    c.eq({k: jobs[k]["state"] for k in ("src-a", "conn-a", "dst-a") if k in jobs},
         {"src-a": "succeeded", "conn-a": "succeeded", "dst-a": "succeeded"}, "states")
    src = s.show(jobs["src-a"]["id"])
    conn = s.show(jobs["conn-a"]["id"])
    dst = s.show(jobs["dst-a"]["id"])
    sid = src["result"]["source"]["id"]
    # waited, then ran after: claimed only once the source had finished
    c.check(any(r and r.startswith("waiting for 1 dependency: src-a") for r in reasons(conn)),
            f"conn-a waited for src-a: {reasons(conn)}")
    c.check(any(r and r.startswith("waiting for 2 dependencies") for r in reasons(dst)),
            f"dst-a waited for two jobs: {reasons(dst)}")
    claimed = [t["at"] for t in dst["transitions"] if t.get("reason") == "claimed"]
    c.check(claimed and claimed[0] >= conn["finished"] >= src["finished"],
            "the destination claimed after the connection, the connection after the source")
    # what was sent: the resolved id, in the attempt
    c.eq(dst["attempts"][0].get("resolved"), {"/sourceId": sid}, "dst-a attempt's resolved")
    c.eq(conn["attempts"][0].get("resolved"), {"/sourceId": sid}, "conn-a attempt's resolved")
    c.check(sid in conn["attempts"][0]["request"], "the connection's path has the id")
    text = s.cli("show", str(jobs["dst-a"]["id"])).stdout.decode()
    c.check(f'resolved: {{"/sourceId":"{sid}"}}' in text, "show's text prints resolved")
    c.check("$ref" in json.dumps(dst["spec"]), "the stored spec keeps the reference")
    state = emu.state()
    dests = [d for d in state.get("destinations", []) if d.get("name") == "GA4 a"]
    c.check(len(dests) == 1 and dests[0].get("sourceId") == sid,
            "the emulator's destination is on the created source")


def after_a_stored_key(s, emu):
    s.drop_jobs("later.jsonl", [
        {"op": "getSource", "key": "get-a", "after": ["dst-a"],
         "params": {"sourceId": {"$ref": "src-a#/source/id"}}},
        # a stored job's result is known at claim: a pointer into nothing there fails it
        # then (an element of an array: past what the result shape can tell at ingest)
        {"op": "getSource", "key": "get-nothing",
         "params": {"sourceId": {"$ref": "src-a#/source/labels/3"}}},
    ])
    c.eq(s.run_until_idle(timeout=60), 0, "daemon exit status")
    jobs = by_key(s)
    c.eq(jobs.get("get-a", {}).get("state"), "succeeded", "a job after stored keys")
    shown = s.show(jobs["get-a"]["id"])
    c.eq(shown["result"]["source"]["slug"], "refs-a", "it read the referenced source")
    c.eq(jobs["get-nothing"]["state"], "failed", "a pointer that does not resolve at claim")
    c.check(jobs["get-nothing"]["reason"].startswith(
        'reference src-a#/source/labels/3 in params/sourceId: no element "3" in an array'),
        f"its reason: {jobs['get-nothing']['reason']}")
    c.eq(s.show(jobs["get-nothing"]["id"])["attempts"], [], "nothing sent for it")
    # a stored job's operation is known at ingest: a pointer its result cannot hold is
    # refused then, with the file
    s.drop_jobs("stored-shape.json", [
        {"op": "getSource", "params": {"sourceId": {"$ref": "src-a#/destination/id"}}}])
    c.eq(s.run_until_idle(timeout=60), 0, "daemon exit status")
    p = rejection(s, "stored-shape.json")
    c.check(len(p) == 1 and p[0]["where"] == "/0/params/sourceId"
            and "a result of createSource cannot hold /destination" in p[0]["what"],
            f"a stored job's result shape: {p}")


def rejected_files(s, emu):
    s.drop_jobs("unknown.json", [
        {"op": "listSources", "key": "l1"},
        {"op": "listSources", "after": ["l1", "nope"]},
    ])
    s.drop_jobs("cycle.jsonl", [
        {"op": "listSources", "key": "x", "after": ["y"]},
        {"op": "getSource", "key": "y", "params": {"sourceId": {"$ref": "x#/source/id"}}},
    ])
    # a pointer the operation's result cannot hold, a value the parameter cannot take
    s.drop_jobs("shape.json", [
        {"op": "createSource", "key": "s-shape",
         "params": {"slug": "refs-shape", "enabled": True, "metadataId": SOURCE_META}},
        {"op": "getSource", "params": {"sourceId": {"$ref": "s-shape#/destination/id"}}},
        {"op": "getSource", "params": {"sourceId": {"$ref": "s-shape#/source/enabled"}}},
    ])
    before = len(s.jobs())
    c.eq(s.run_until_idle(timeout=60), 0, "daemon exit status")
    c.eq(len(s.jobs()), before, "no job of a rejected file is recorded")
    p = rejection(s, "unknown.json")
    c.check(len(p) == 1 and p[0]["where"] == "/1/after/1" and "unknown key \"nope\"" in p[0]["what"],
            f"unknown key: {p}")
    p = rejection(s, "shape.json")
    c.eq([x["where"] for x in p], ["/1/params/sourceId", "/2/params/sourceId"],
         "shape problems where")
    c.check(len(p) == 2 and "cannot hold /destination" in p[0]["what"]
            and "which sourceId cannot take" in p[1]["what"], f"shape problems: {p}")
    p = rejection(s, "cycle.jsonl")
    c.check(len(p) == 1 and p[0]["line"] == 1 and p[0]["where"] == "/after/0"
            and "\"x\" waits for \"y\" waits for \"x\"" in p[0]["what"], f"cycle: {p}")


def failed_dependency_and_retry(s, emu):
    s.drop_jobs("b.json", [{"op": "createSource", "key": "src-b",
                            "params": {"slug": "refs-b", "enabled": True,
                                       "metadataId": SOURCE_META}}])
    c.eq(s.run_until_idle(timeout=60), 0, "daemon exit status")
    # the slug is taken: a 409, failed; its dependants fail with it, transitively
    s.drop_jobs("dup.json", [
        {"op": "createSource", "key": "src-dup",
         "params": {"slug": "refs-b", "enabled": True, "metadataId": SOURCE_META}},
        {"op": "createDestination", "key": "dst-dup",
         "params": {"sourceId": {"$ref": "src-dup#/source/id"}, "metadataId": DEST_META,
                    "name": "GA4 dup", "settings": {"measurementId": "G-D"}}},
        {"op": "getDestination", "key": "get-dup",
         "params": {"destinationId": {"$ref": "dst-dup#/destination/id"}}},
    ])
    c.eq(s.run_until_idle(timeout=60), 0, "daemon exit status")
    jobs = by_key(s)
    c.eq([jobs[k]["state"] for k in ("src-dup", "dst-dup", "get-dup")],
         ["failed", "failed", "failed"], "the dependency and its dependants failed")
    c.eq(jobs["dst-dup"].get("reason"), "dependency src-dup failed", "dst-dup's reason")
    c.eq(jobs["get-dup"].get("reason"), "dependency dst-dup failed", "get-dup's reason")
    c.eq(s.show(jobs["dst-dup"]["id"])["attempts"], [], "a dependant never sent anything")
    # a dependant alone cannot be retried while its dependency is failed
    r = s.cli("retry", str(jobs["dst-dup"]["id"]))
    c.check(r.returncode != 0 and b"dependency src-dup failed" in r.stdout + r.stderr,
            f"retry of a dependant refused: {r.stdout!r} {r.stderr!r}")
    # free the slug, then retry the dependency: the dependants come back with it
    s.drop_jobs("del.json", [{"op": "deleteSource", "key": "del-b",
                              "params": {"sourceId": {"$ref": "src-b#/source/id"}}}])
    c.eq(s.run_until_idle(timeout=60), 0, "daemon exit status")
    c.eq(by_key(s)["del-b"]["state"], "succeeded", "the taken source deleted")
    r = s.cli("retry", str(jobs["src-dup"]["id"]))
    c.eq(r.returncode, 0, f"retry of the dependency: {r.stderr!r}")
    jobs = by_key(s)
    c.eq([jobs[k]["state"] for k in ("src-dup", "dst-dup", "get-dup")],
         ["queued", "waiting", "waiting"], "the dependants wait again with it")
    c.eq(s.run_until_idle(timeout=60), 0, "daemon exit status")
    jobs = by_key(s)
    c.eq([jobs[k]["state"] for k in ("src-dup", "dst-dup", "get-dup")],
         ["succeeded", "succeeded", "succeeded"], "after the retry, all succeed")
    got = s.show(jobs["get-dup"]["id"])
    c.eq(got["result"]["destination"]["name"], "GA4 dup", "the transitive reference resolved")


def idle_behind_a_missing_token(_, emu):
    # a job of a workspace whose token file is missing waits for a token; the job waiting
    # for it cannot move either: --until-idle stops, both left waiting
    s = Spool(emu.url, config={"workspaces": {"default": {},
                                              "elsewhere": {"token_file": "missing.token"}}})
    try:
        s.drop_jobs("tokenless.json", [
            {"op": "listSources", "key": "tk", "workspace": "elsewhere"},
            {"op": "listSources", "key": "after-tk", "after": ["tk"]},
        ])
        t0 = time.monotonic()
        c.eq(s.run_until_idle(timeout=60), 0, "daemon exit status")
        c.check(time.monotonic() - t0 < 30, "--until-idle stopped")
        jobs = by_key(s)
        c.eq([jobs[k]["state"] for k in ("tk", "after-tk")], ["waiting", "waiting"],
             "both wait")
        c.check((jobs["after-tk"].get("reason") or "").startswith(
            "waiting for 1 dependency: tk"), f"the dependant's reason: {jobs['after-tk']}")
    finally:
        s.cleanup()


def large_file_across_chunks(s, emu):
    """a JSON Lines file of 1,200 jobs is ingested 500 lines at a time: a reference to an
    earlier chunk's job is resolved through the store, one to a later chunk's sends the
    file to the whole-file check, which accepts it; every job runs, in order"""
    meta = "IqDTy1TpoU"
    jobs = [{"op": "listSources", "key": f"n{i}"} for i in range(1200)]
    jobs[0] = {"op": "createSource", "key": "big-src",
               "params": {"slug": "big-chunks", "enabled": True, "metadataId": meta}}
    jobs[700] = {"op": "getSource", "key": "back",
                 "params": {"sourceId": {"$ref": "big-src#/source/id"}}}
    jobs[100] = {"op": "listSources", "key": "fwd", "after": ["n1100"]}
    s.drop_jobs("big.jsonl", jobs)
    c.eq(s.run_until_idle(timeout=120), 0, "daemon exit status")
    c.check("big.jsonl" not in listdir(os.path.join(s.spool, "rejected")),
            "the 1,200-line file is accepted")
    ks = by_key(s)
    c.eq((ks["back"]["state"], ks["fwd"]["state"]), ("succeeded", "succeeded"),
         "the reference back across chunks and the one forward both ran")
    sid = [x for x in emu.state()["sources"] if x["slug"] == "big-chunks"][0]["id"]
    c.check(sid in (s.show(ks["back"]["id"])["attempts"][-1]["request"] or ""),
            "the getSource request carried the created source's id")
    end_fwd = s.show(ks["fwd"]["id"])["attempts"][0]["started"]
    c.check(end_fwd >= s.show(ks["n1100"]["id"])["finished"],
            "the forward dependant started after its dependency had finished")


def main():
    emu = Emulator()
    s = Spool(emu.url)
    try:
        c.run_parts([provision_in_order, after_a_stored_key, rejected_files,
                     failed_dependency_and_retry, idle_behind_a_missing_token,
                     large_file_across_chunks], s, emu)
    finally:
        s.cleanup()
        emu.stop()
    c.finish()


if __name__ == "__main__":
    main()
