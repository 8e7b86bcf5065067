"""e2e gen_reconcile - tools/gen_catalog.py checks each operation's "reconcile" rule and
refuses, naming the operation and what is wrong, a rule it cannot trust: a lookup that is
not a paginated GET, a "$params.NAME" the operation does not have, a rule on a GET, a
gone_is_done off a DELETE, a rule without a result or a match. The real table is in step
with data/operations.json and carries each rule as JSON text."""
import copy
import json
import os
import subprocess
import sys
import tempfile

from harness import Checks

c = Checks("gen_reconcile")
SRC = os.environ.get("SEGSPOOL_SRC") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))
GEN = os.path.join(SRC, "tools", "gen_catalog.py")
OPS = json.load(open(os.path.join(SRC, "data", "operations.json")))


def gen(ops, tmp):
    """gen - the generator over ops, writing nowhere (--check against an empty file)."""
    path = os.path.join(tmp, "ops.json")
    out = os.path.join(tmp, "table.c")
    with open(path, "w") as f:
        json.dump(ops, f)
    open(out, "w").close()
    return subprocess.run([sys.executable, GEN, "--check", "--input", path, "--output", out],
                          capture_output=True, text=True, timeout=60)


def with_rule(op_id, rule):
    ops = copy.deepcopy(OPS)
    for op in ops:
        if op.get("operation_id") == op_id:
            op["reconcile"] = rule
    return ops


r = subprocess.run([sys.executable, GEN, "--check"], capture_output=True, text=True, timeout=60)
c.eq(r.returncode, 0, f"the table is in step with data/operations.json: {r.stderr}")
table = open(os.path.join(SRC, "src", "job", "catalog_table.c")).read()
c.check('.reconcile = "{\\"done_when\\":\\"found\\",\\"lookup\\":\\"listSources\\"' in table,
        "the table carries createSource's rule as JSON text")
rules = {op["operation_id"]: op["reconcile"] for op in OPS if op.get("reconcile")}
c.check({"createSource", "addConnectionFromSourceToWarehouse",
         "removeSourceConnectionFromWarehouse", "deleteSource"} <= set(rules),
        f"the rules cover creates, connections and deletes: {sorted(rules)}")
c.check("createDestination" not in rules and "reconcile" in json.dumps(
    [op["notes"] for op in OPS if op.get("operation_id") == "createDestination"]).lower(),
    "createDestination has no rule, and its notes say why")

good = rules["createSource"]
cases = [
    ("createSource", dict(good, lookup="getSource"), "not a paginated GET operation"),
    ("createSource", dict(good, lookup="noSuchOp"), "not a paginated GET operation"),
    ("createSource", dict(good, match={"slug": "$params.nope"}), "names no parameter"),
    ("createSource", dict(good, params={"pagination": 3}), "not a string parameter"),
    ("createSource", dict(good, params={"sourceId": "x"}), "not a string parameter"),
    ("createSource", dict(good, match={}), "match must be a non-empty object"),
    ("createSource", dict(good, done_when="maybe"), "done_when must be"),
    ("createSource", {k: v for k, v in good.items() if k != "result"}, "needs a result"),
    ("createSource", dict(good, extra=1), "reconcile must be an object of"),
    ("createSource", dict(good, gone_is_done=True), "true only on a DELETE"),
    ("getSource", good, "reconcile on a GET"),
    ("deleteSource", {"gone_is_done": True, "result": {"s": "$item"}}, "no lookup"),
    ("deleteSource", {"result": {}}, "without a lookup takes gone_is_done"),
]
with tempfile.TemporaryDirectory(prefix="segspool-gen-") as tmp:
    for op_id, rule, want in cases:
        r = gen(with_rule(op_id, rule), tmp)
        c.check(r.returncode == 2 and f"operation {op_id}" in r.stderr and want in r.stderr,
                f"{op_id} {json.dumps(rule)[:60]}...: refused with {want!r}: "
                f"rc {r.returncode} {r.stderr.strip()}")
    # the real rules pass (the output differs from the empty file: --check says so, 1)
    r = gen(OPS, tmp)
    c.eq((r.returncode, "out of date" in r.stderr), (1, True),
         f"the real rules are accepted: {r.stderr.strip()}")
c.finish()
