#!/usr/bin/env python3
"""gen_catalog.py - turns data/operations.json into src/job/catalog_table.c, and the
emulator's real catalog seeds, data/emu_seeds.json, into src/emu/emu_seed_table.c.

The operation list is the single description of the Segment Public API that the rest
of segspool trusts, so the generator refuses anything it does not understand instead
of guessing: an unknown type string, method or rate limit stops it with the operation
and field named.

Usage: tools/gen_catalog.py [--check] [--input FILE] [--output FILE]
  --check  exit 1 when an output file differs from what would be generated.
  --input/--output name the operation list and its table; the seeds are always
  data/emu_seeds.json -> src/emu/emu_seed_table.c.
"""

import argparse
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_INPUT = os.path.join(ROOT, "data", "operations.json")
DEFAULT_OUTPUT = os.path.join(ROOT, "src", "job", "catalog_table.c")
# what each operation's result holds, by pointer (written by tools/result_shapes.py)
SHAPES_INPUT = os.path.join(ROOT, "data", "result_shapes.json")
SHAPE_TYPES = {"string": "PT_STRING", "number": "PT_NUMBER", "boolean": "PT_BOOLEAN",
               "object": "PT_OBJECT", "array": "PT_ARRAY"}
SEEDS_INPUT = os.path.join(ROOT, "data", "emu_seeds.json")
SEEDS_OUTPUT = os.path.join(ROOT, "src", "emu", "emu_seed_table.c")
SEED_KINDS = (("sources", "C_SOURCES_CATALOG"), ("destinations", "C_DESTINATIONS_CATALOG"),
              ("warehouses", "C_WAREHOUSES_CATALOG"))
SEED_MAX_CATEGORIES = 4

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
VERSIONS = ("v1", "v1beta", "v1alpha")

# Named schemas of operations.json that are JSON objects in the request.
OBJECT_SCHEMAS = ("DestinationSubscriptionUpdateInput", "HashPropertiesConfiguration")

# The generic request: not an API operation, so its parameters are ours to define.
RAW_PARAMS = [
    ("method", "PARAM_BODY", "PT_ENUM", 1, list(METHODS)),
    ("path", "PARAM_BODY", "PT_STRING", 1, None),
    ("query", "PARAM_BODY", "PT_OBJECT", 0, None),
    ("body", "PARAM_BODY", "PT_ANY", 0, None),
    ("version", "PARAM_BODY", "PT_ENUM", 0, list(VERSIONS)),
]


class CatalogError(Exception):
    pass


RECONCILE_KEYS = ("lookup", "params", "match", "done_when", "result", "gone_is_done")


def fail(where, what):
    """fail - stops generation, naming the operation and field at fault."""
    raise CatalogError("%s: %s" % (where, what))


def c_string(s):
    """c_string - a C string literal for s (ASCII expected; anything else escaped)."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= ord(ch) < 0x7F:
            out.append(ch)
        else:
            for byte in ch.encode("utf-8"):
                out.append("\\%03o" % byte)
    out.append('"')
    return "".join(out)


def map_type(type_str, where):
    """map_type - (param_type, enum values or None) for an operations.json type string."""
    t = type_str.strip()
    if t == "string":
        return "PT_STRING", None
    if t == "string|null":
        # A nullable string (clearing a name): only the API can judge, so accept any JSON.
        return "PT_ANY", None
    if t == "boolean":
        return "PT_BOOLEAN", None
    if t == "number":
        return "PT_NUMBER", None
    if t == "object" or t in OBJECT_SCHEMAS:
        return "PT_OBJECT", None
    if t == "object{count:number (required), cursor:string}":
        return "PT_PAGINATION", None
    if t.startswith("string ISO-8601"):
        return "PT_DATETIME", None
    if t in ("array of string", "array<string>"):
        return "PT_STRING_ARRAY", None
    m = re.fullmatch(r"array of ([A-Za-z0-9_]+(?:\|[A-Za-z0-9_]+)+)", t)
    if m:
        return "PT_STRING_ARRAY", m.group(1).split("|")
    m = re.fullmatch(r"enum ([A-Za-z0-9_]+(?:\|[A-Za-z0-9_]+)*)", t)
    if m:
        return "PT_ENUM", m.group(1).split("|")
    if re.fullmatch(r"array<[A-Z][A-Za-z0-9]*>", t):
        return "PT_ARRAY", None
    fail(where, "unknown type %r" % type_str)
    return None  # not reached


def parse_rate(value, where):
    """parse_rate - requests per minute from "5/min"; 0 for the workspace default."""
    if value == "default":
        return 0
    m = re.fullmatch(r"(\d+)/min", str(value))
    if not m:
        fail(where, "unknown rate limit %r" % value)
    return int(m.group(1))


def parse_version(value, where):
    """parse_version - the media type version, v1 when unset."""
    if value is None or value == "":
        return "v1"
    if value not in VERSIONS:
        fail(where, "unknown media_type_version %r" % value)
    return value


def field_list(op, key, where):
    """field_list - a list member of an operation, checked to be a list."""
    value = op.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        fail(where, "%s is not a list" % key)
    return value


def convert_params(op, where):
    """convert_params - path, query and body parameters, in that order."""
    params = []
    path_names = re.findall(r"\{([^}]+)\}", op["path"])
    declared = field_list(op, "path_params", where)
    if sorted(path_names) != sorted(declared):
        fail(where, "path_params %r do not match path %r" % (declared, op["path"]))
    for name in declared:
        params.append((name, "PARAM_PATH", "PT_STRING", 1, None))
    for key, place in (("query_params", "PARAM_QUERY"), ("body_fields", "PARAM_BODY")):
        for field in field_list(op, key, where):
            fwhere = "%s %s.%s" % (where, key, field.get("name"))
            if not isinstance(field.get("name"), str) or not field["name"]:
                fail(fwhere, "field without a name")
            ptype, values = map_type(str(field.get("type")), fwhere)
            required = 1 if field.get("required") else 0
            params.append((field["name"], place, ptype, required, values))
    seen = set()
    for p in params:
        if p[0] in seen:
            fail(where, "parameter %r declared twice" % p[0])
        seen.add(p[0])
    return params


def param_refs(value, names, where, what):
    """param_refs - checks each "$params.NAME" string in value names a parameter."""
    if isinstance(value, dict):
        for v in value.values():
            param_refs(v, names, where, what)
    elif isinstance(value, list):
        for v in value:
            param_refs(v, names, where, what)
    elif isinstance(value, str) and value.startswith("$params."):
        if value[len("$params."):] not in names:
            fail(where, "reconcile %s: %r names no parameter of the operation" % (what, value))


def check_reconcile(op, params, ops_by_id, where):
    """check_reconcile - the op's "reconcile" rule (see createSource's notes), checked,
    as the compact JSON text the table carries; None when the op has none."""
    rule = op.get("reconcile")
    if rule is None:
        return None
    if not isinstance(rule, dict) or set(rule) - set(RECONCILE_KEYS):
        fail(where, "reconcile must be an object of %s" % ", ".join(RECONCILE_KEYS))
    if op["method"] == "GET":
        fail(where, "reconcile on a GET: a read is simply sent again")
    names = {p[0] for p in params}
    if not isinstance(rule.get("result"), dict):
        fail(where, "reconcile needs a result object (the job's data when done)")
    gone = rule.get("gone_is_done", False)
    if not isinstance(gone, bool) or (gone and op["method"] != "DELETE"):
        fail(where, "reconcile gone_is_done must be a boolean, true only on a DELETE")
    lookup = rule.get("lookup")
    if lookup is None:
        if not gone or set(rule) - {"result", "gone_is_done"}:
            fail(where, "reconcile without a lookup takes gone_is_done: true and a result")
        if "$item" in json.dumps(rule["result"]):
            fail(where, "reconcile result names $item but there is no lookup")
        return json.dumps(rule, separators=(",", ":"), sort_keys=True)
    target = ops_by_id.get(lookup)
    if not target or target.get("method") != "GET" or not target.get("paginated"):
        fail(where, "reconcile lookup %r is not a paginated GET operation" % lookup)
    lookup_params = rule.get("params", {})
    if not isinstance(lookup_params, dict):
        fail(where, "reconcile params must be an object")
    allowed = set(target.get("path_params") or []) | {
        f.get("name") for f in (target.get("query_params") or [])}
    for k, v in lookup_params.items():
        if k not in allowed or not isinstance(v, str):
            fail(where, "reconcile params.%s: not a string parameter of %s" % (k, lookup))
    match = rule.get("match")
    if (not isinstance(match, dict) or not match or
            not all(isinstance(v, str) for v in match.values())):
        fail(where, "reconcile match must be a non-empty object of strings")
    if rule.get("done_when") not in ("found", "absent"):
        fail(where, "reconcile done_when must be \"found\" or \"absent\"")
    for what in ("params", "match", "result"):
        param_refs(rule.get(what), names, where, what)
    return json.dumps(rule, separators=(",", ":"), sort_keys=True)


def convert_op(op):
    """convert_op - one operations.json entry as a dict of C field values."""
    opid = op.get("operation_id")
    if opid is None:
        return convert_raw(op)
    where = "operation %s" % opid
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", opid):
        fail(where, "bad operation_id")
    if op.get("method") not in METHODS:
        fail(where, "unknown method %r" % op.get("method"))
    path = op.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        fail(where, "bad path %r" % path)
    status = op.get("success_status")
    if not isinstance(status, int):
        fail(where, "bad success_status %r" % status)
    result_keys = op.get("result_key") or []
    if len(result_keys) > 2:
        fail(where, "more than two result keys")
    paginated = bool(op.get("paginated"))
    items_key = op.get("items_key")
    if paginated and not items_key:
        fail(where, "paginated without items_key")
    return {
        "operation_id": opid,
        "name": op["name"],
        "method": op["method"],
        "path": path,
        "params": convert_params(op, where),
        "success_status": status,
        "result_keys": result_keys,
        "items_key": items_key,
        "paginated": paginated,
        "version": parse_version(op.get("media_type_version"), where),
        "rate_per_min": parse_rate(op.get("rate_limit_per_token"), where),
        "mutates": op["method"] != "GET",
        "is_raw": False,
        "reconcile": None,
    }


def convert_raw(op):
    """convert_raw - the generic request entry (operation_id null)."""
    return {
        "operation_id": "raw",
        "name": op.get("name") or "Raw Request",
        "method": "ANY",
        "path": "",
        "params": RAW_PARAMS,
        "success_status": 0,  # any 2xx
        "result_keys": [],
        "items_key": None,
        "paginated": False,
        "version": "v1",
        "rate_per_min": 0,
        "mutates": True,
        "is_raw": True,
        "reconcile": None,
    }


def c_ident(s):
    """c_ident - s made safe for a C identifier."""
    return re.sub(r"[^A-Za-z0-9_]", "_", s)


def load_shapes(path, ids):
    """load_shapes - data/result_shapes.json checked: known operations, pointers, types."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise CatalogError("%s: not a JSON object" % path)
    for opid, shape in data.items():
        where = "%s: %s" % (os.path.basename(path), opid)
        if opid not in ids:
            fail(where, "not an operation of the table")
        if not isinstance(shape, dict):
            fail(where, "not an object of pointers")
        for ptr, t in shape.items():
            if not re.fullmatch(r"(/[^/]+)+", ptr):
                fail(where, "bad pointer %r" % ptr)
            if t not in SHAPE_TYPES:
                fail(where, "unknown type %r at %s" % (t, ptr))
    return data


def emit(ops):
    """emit - the whole C file as a string."""
    out = []
    w = out.append
    w("/* catalog_table.c - the operation table.")
    w(" * generated by tools/gen_catalog.py from data/operations.json: do not edit. */")
    w('#include "catalog_table.h"')
    w('#include "util.h"')
    w("")
    for op in ops:
        ident = c_ident(op["operation_id"])
        for p in op["params"]:
            if p[4]:
                items = ", ".join(c_string(v) for v in p[4])
                w("static const char *const enum_%s_%s[] = {" % (ident, c_ident(p[0])))
                w("\t%s, NULL," % items)
                w("};")
        if op["params"]:
            w("static const struct op_param params_%s[] = {" % ident)
            for p in op["params"]:
                values = "enum_%s_%s" % (ident, c_ident(p[0])) if p[4] else "NULL"
                w("\t{%s, %s, %s, %d, %s}," % (c_string(p[0]), p[1], p[2], p[3], values))
            w("};")
        if op.get("shape"):
            w("static const struct result_member shape_%s[] = {" % ident)
            for ptr in sorted(op["shape"], key=lambda k: k.encode("utf-8")):
                w("\t{%s, %s}," % (c_string(ptr), SHAPE_TYPES[op["shape"][ptr]]))
            w("};")
        w("")
    w("const struct op_def catalog_ops[] = {")
    for op in ops:
        ident = c_ident(op["operation_id"])
        keys = ", ".join([c_string(k) for k in op["result_keys"]] + ["NULL"])
        w("\t{")
        w("\t\t.operation_id = %s," % c_string(op["operation_id"]))
        w("\t\t.name = %s," % c_string(op["name"]))
        w("\t\t.method = %s," % c_string(op["method"]))
        w("\t\t.path = %s," % c_string(op["path"]))
        if op["params"]:
            w("\t\t.params = params_%s," % ident)
            w("\t\t.nparams = ARRAY_SIZE(params_%s)," % ident)
        else:
            w("\t\t.params = NULL,")
            w("\t\t.nparams = 0,")
        w("\t\t.success_status = %d," % op["success_status"])
        w("\t\t.result_keys = {%s}," % keys)
        if op.get("shape"):
            w("\t\t.result_shape = shape_%s," % ident)
            w("\t\t.nresult_shape = ARRAY_SIZE(shape_%s)," % ident)
        w("\t\t.items_key = %s," % (c_string(op["items_key"]) if op["items_key"] else "NULL"))
        w("\t\t.paginated = %d," % int(op["paginated"]))
        w("\t\t.version = %s," % c_string(op["version"]))
        w("\t\t.rate_per_min = %d," % op["rate_per_min"])
        w("\t\t.mutates = %d," % int(op["mutates"]))
        w("\t\t.is_raw = %d," % int(op["is_raw"]))
        if op["reconcile"]:
            w("\t\t.reconcile = %s," % c_string(op["reconcile"]))
        w("\t},")
    w("};")
    w("")
    w("const size_t catalog_ops_count = ARRAY_SIZE(catalog_ops);")
    return "\n".join(out) + "\n"


def generate(input_path):
    """generate - the C text for an operations.json file, sorted by operationId."""
    with open(input_path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, list):
        raise CatalogError("%s: not a JSON array" % input_path)
    ops = [convert_op(op) for op in data]
    by_id = {o.get("operation_id"): o for o in data if isinstance(o, dict)}
    for src, op in zip(data, ops):
        if not op["is_raw"]:
            op["reconcile"] = check_reconcile(src, op["params"], by_id,
                                              "operation %s" % op["operation_id"])
    ids = [op["operation_id"] for op in ops]
    dups = sorted({i for i in ids if ids.count(i) > 1})
    if dups:
        raise CatalogError("duplicate operation_id: %s" % ", ".join(dups))
    shapes = load_shapes(SHAPES_INPUT, set(ids))
    for op in ops:
        op["shape"] = shapes.get(op["operation_id"])
    # Byte order, as strcmp sees it: catalog.c looks operationIds up by binary search.
    ops.sort(key=lambda op: op["operation_id"].encode("utf-8"))
    return emit(ops)


def seed_entry(e, kind, where):
    """seed_entry - one C initializer of struct emu_seed, its fields checked."""
    for key in ("id", "slug", "name", "from"):
        if not isinstance(e.get(key), str) or not e[key]:
            fail(where, "%s must be a non-empty string" % key)
    if not re.fullmatch(r"[A-Za-z0-9]+", e["id"]):
        fail(where, "id %r is not alphanumeric" % e["id"])
    if not re.fullmatch(r"[a-z0-9-]+", e["slug"]):
        fail(where, "slug %r is not lowercase letters, digits and dashes" % e["slug"])
    cats = e.get("categories", [])
    if (not isinstance(cats, list) or len(cats) > SEED_MAX_CATEGORIES or
            not all(isinstance(c, str) and c for c in cats)):
        fail(where, "categories must be at most %d strings" % SEED_MAX_CATEGORIES)
    cloud = e.get("isCloudEventSource", False)
    if not isinstance(cloud, bool):
        fail(where, "isCloudEventSource must be a boolean")
    website = e.get("website")
    if website is not None and not isinstance(website, str):
        fail(where, "website must be a string")
    items = ", ".join([c_string(c) for c in cats] + ["NULL"])
    return "\t{%s, %s, %s, %s, {%s}, %d, %s}," % (
        kind, c_string(e["id"]), c_string(e["slug"]), c_string(e["name"]), items, int(cloud),
        c_string(website) if website else "NULL")


def generate_seeds(input_path):
    """generate_seeds - the C text of the emulator's seed table; ids and slugs unique per
    catalog."""
    with open(input_path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise CatalogError("%s: not a JSON object" % input_path)
    out = ["/* emu_seed_table.c - the real catalog entries segspool-emu seeds.",
           " * generated by tools/gen_catalog.py from data/emu_seeds.json: do not edit. */",
           '#include "emu.h"', '#include "util.h"', "",
           "const struct emu_seed emu_seeds[] = {"]
    for key, kind in SEED_KINDS:
        entries = data.get(key, [])
        if not isinstance(entries, list):
            raise CatalogError("%s: %s is not a list" % (input_path, key))
        for field in ("id", "slug"):
            values = [e.get(field) for e in entries if isinstance(e, dict)]
            dups = sorted({v for v in values if values.count(v) > 1})
            if dups:
                raise CatalogError("%s: %s: duplicate %s: %s" % (input_path, key, field,
                                                                 ", ".join(dups)))
        for i, e in enumerate(entries):
            where = "%s %s[%d]" % (os.path.basename(input_path), key, i)
            if not isinstance(e, dict):
                fail(where, "not an object")
            out.append(seed_entry(e, kind, where))
    out += ["};", "", "const size_t emu_seeds_count = ARRAY_SIZE(emu_seeds);"]
    return "\n".join(out) + "\n"


def check_or_write(path, text):
    """check_or_write - (for --check) 1 when path differs from text, else write it."""
    try:
        with open(path, encoding="utf-8") as f:
            current = f.read()
    except OSError as e:
        print("gen_catalog: cannot read %s: %s" % (path, e), file=sys.stderr)
        return 1
    if current != text:
        print("gen_catalog: %s is out of date; run tools/gen_catalog.py" % path,
              file=sys.stderr)
        return 1
    return 0


def write_atomic(path, text):
    """write_atomic - text to path through a temporary file."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    """main - generate, or compare with --check."""
    ap = argparse.ArgumentParser(description="generate src/job/catalog_table.c")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if the output differs from what would be generated")
    ap.add_argument("--input", default=DEFAULT_INPUT)
    ap.add_argument("--output", default=DEFAULT_OUTPUT)
    args = ap.parse_args()
    try:
        text = generate(args.input)
        seeds = generate_seeds(SEEDS_INPUT)
    except (CatalogError, OSError, ValueError, KeyError) as e:
        print("gen_catalog: %s" % e, file=sys.stderr)
        return 2
    if args.check:
        return check_or_write(args.output, text) | check_or_write(SEEDS_OUTPUT, seeds)
    write_atomic(args.output, text)
    write_atomic(SEEDS_OUTPUT, seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
