"""e2e plan - `segspool plan` says what a batch would do and sends nothing: the jobs of a
file with references in dependency layers, each request with its references unresolved,
the requests expected and the time at the configured and documented limits; --json the
same as one object; a cycle or an unknown key refused with where; a key already in the
store accepted; pages estimated from the total the store saw for the operation.
Runtime: about 2 s."""
import json
import os

from harness import Checks, Emulator, Spool

c = Checks("plan")
emu = Emulator("--seed", "30")
s = Spool(emu.url, config={"rate": "2/s", "burst": 1, "endpoint_limits": True})
try:
    os.makedirs(s.spool, exist_ok=True)
    batch = os.path.join(s.root, "rollout.json")
    with open(batch, "w") as f:
        json.dump([
            {"op": "createSource", "key": "src",
             "params": {"slug": "plan-1", "enabled": True, "metadataId": "IqDTy1TpoU"}},
            {"op": "getSource", "key": "read",
             "params": {"sourceId": {"$ref": "src#/source/id"}}},
            {"op": "listSources", "after": ["read"], "paginate": {"max_pages": 100, "count": 2}},
            {"op": "createSource",
             "params": {"slug": "plan-2", "enabled": True, "metadataId": "IqDTy1TpoU"}},
            {"op": "createSource",
             "params": {"slug": "plan-3", "enabled": True, "metadataId": "IqDTy1TpoU"}},
        ], f)
    before = emu.stats()
    r = s.cli("plan", batch)
    out = r.stdout.decode()
    c.eq(r.returncode, 0, f"plan exits 0 ({r.stderr.decode()[-300:]})")
    c.check("5 job(s) in 3 layer(s)" in out, f"three layers ({out[:200]})")
    c.check("GET /sources/{$ref src#/source/id}" in out, "the reference shown unresolved")
    r = s.cli("plan", "--json", batch)
    doc = json.loads(r.stdout)
    layers = {j["index"]: j["layer"] for j in doc["jobs"]}
    c.eq(layers, {1: 1, 4: 1, 5: 1, 2: 2, 3: 3}, "layers: the creates first, the read after")
    c.eq(doc["requests"], 5, "five requests, the export's pages not known yet")
    c.eq(doc["requests_at_least"], True, "a floor: the export's pages are not counted")
    # layer 1: three creates at 2/s after a burst of 1: 1 s; layers 2 and 3: one each, 0 s
    c.eq(round(doc["eta_s"], 3), 1.0, "the time at the workspace's 2/s")
    c.eq(emu.stats(), before, "nothing sent")

    # a cycle and an unknown key: refused, with where
    bad = os.path.join(s.root, "bad.json")
    with open(bad, "w") as f:
        json.dump([{"op": "listSources", "key": "a", "after": ["b"]},
                   {"op": "listSources", "key": "b", "after": ["a"]},
                   {"op": "getSource", "params": {"sourceId": {"$ref": "ghost#/source/id"}}}],
                  f)
    r = s.cli("plan", bad)
    err = r.stderr.decode()
    c.eq(r.returncode, 1, "a bad file: exit 1")
    c.check("cycle" in err and "/2/params/sourceId" in err and "ghost" in err,
            f"the cycle and the unknown key named with where ({err[:300]})")

    # after a run, the store knows the key and the total of the catalog's pages
    s.drop_jobs("first.json", [{"op": "getWarehousesCatalog", "key": "export",
                                "paginate": {"max_pages": 1000, "count": 2}}])
    c.eq(s.run_until_idle(timeout=60), 0, "the first batch runs")
    total = s.show(1)["total_entries"]
    later = os.path.join(s.root, "later.json")
    with open(later, "w") as f:
        json.dump([{"op": "getWarehousesCatalog", "after": ["export"],
                    "paginate": {"max_pages": 1000, "count": 2}}], f)
    doc = json.loads(s.cli("plan", "--json", later).stdout)
    c.check(total and total > 2, f"the export saw a total ({total})")
    c.eq(doc["jobs"][0]["requests"], -(-total // 2), "pages from the total the store saw")
    c.eq(doc["jobs"][0]["at_least"], False, "counted, not a floor")
    r = s.cli("validate", later)
    c.eq(r.returncode, 0, "validate accepts an after naming a key in the store")
finally:
    s.cleanup()
    emu.stop()
c.finish()
