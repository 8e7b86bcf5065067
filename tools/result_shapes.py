#!/usr/bin/env python3
"""result_shapes.py - what each operation's result (the response's data object, what the
store keeps and a {"$ref": "KEY#/pointer"} points into) holds, from the OpenAPI spec:
data/result_shapes.json maps an operationId to the JSON types at the pointers its success
response's schema declares, to MAX_DEPTH members deep ({"/source": "object",
"/source/id": "string", ...}). tools/gen_catalog.py puts them in the operation table, so
validation can refuse a pointer no result of the operation can hold, or a value of the
wrong type for its parameter, without reading YAML on every build.

Run it again when the spec changes (needs PyYAML):
  tools/result_shapes.py [--spec FILE] [--output FILE] [--check]
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = "/work/shared/segment-api/segment-public-api-openapi-32.0.5.yaml"
OPERATIONS = os.path.join(ROOT, "data", "operations.json")
OUTPUT = os.path.join(ROOT, "data", "result_shapes.json")
MAX_DEPTH = 3  # /source/metadata/id
TYPES = {"string": "string", "integer": "number", "number": "number", "boolean": "boolean",
         "object": "object", "array": "array"}


def resolve(spec, schema, seen=()):
    """resolve - a schema with its $ref followed; allOf merged (their properties)."""
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if ref in seen:
            return {}
        seen = seen + (ref,)
        node = spec
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        schema = node
    if isinstance(schema, dict) and "allOf" in schema:
        merged = {"type": "object", "properties": {}}
        for sub in schema["allOf"]:
            sub = resolve(spec, sub, seen)
            merged["properties"].update(sub.get("properties", {}))
        return merged
    return schema if isinstance(schema, dict) else {}


def type_of(schema):
    """type_of - the JSON type a schema declares, or None when it does not say one."""
    t = schema.get("type")
    if t is None and "properties" in schema:
        t = "object"
    return TYPES.get(t)


def walk(spec, schema, pointer, depth, out):
    """walk - the types under schema's properties, depth members deep."""
    for name, sub in sorted(schema.get("properties", {}).items()):
        sub = resolve(spec, sub)
        p = pointer + "/" + name.replace("~", "~0").replace("/", "~1")
        t = type_of(sub)
        if t:
            out[p] = t
        if t == "object" and depth > 1:
            walk(spec, sub, p, depth - 1, out)


def success_schema(spec, op):
    """success_schema - the data object of the first 2xx JSON response, or None."""
    for status, resp in sorted(op.get("responses", {}).items()):
        if not str(status).startswith("2"):
            continue
        content = resp.get("content") or {}
        for media in sorted(content):
            schema = resolve(spec, content[media].get("schema", {}))
            data = schema.get("properties", {}).get("data")
            if data is not None:
                return resolve(spec, data)
    return None


def shapes(spec_path, operations_path):
    import yaml  # only here: the generator reads the JSON this writes

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(spec_path, encoding="utf-8") as f:
        spec = yaml.load(f, Loader=loader)
    by_id = {}
    for item in spec["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and "operationId" in op:
                by_id[op["operationId"]] = op
    with open(operations_path, encoding="utf-8") as f:
        ops = json.load(f)
    out = {}
    for op in ops:
        opid = op.get("operation_id")
        if not opid or opid not in by_id:
            continue
        data = success_schema(spec, by_id[opid])
        if data is None:
            continue
        shape = {}
        walk(spec, data, "", MAX_DEPTH, shape)
        out[opid] = shape
    return out


def main():
    ap = argparse.ArgumentParser(description="write data/result_shapes.json")
    ap.add_argument("--spec", default=SPEC)
    ap.add_argument("--output", default=OUTPUT)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    text = json.dumps(shapes(args.spec, OPERATIONS), indent=1, sort_keys=True) + "\n"
    if args.check:
        with open(args.output, encoding="utf-8") as f:
            return 0 if f.read() == text else 1
    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
