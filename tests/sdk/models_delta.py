#!/usr/bin/env python3
"""models_delta.py - what the TypeScript SDK 73.2.0 declares differently from the SDK on npm.

The official TypeScript SDK on npm stops at 47.0.0-b8398; 73.2.0, the version whose models
today's API serves, is published only as the SDK's source repository
(segmentio/public-api-sdk-typescript). The SDK test (sdk_check.mjs) runs the npm SDK and
applies this delta to its models, so responses are checked against 73.2.0's declarations.

usage: models_delta.py NPM_SDK_DIR SDK_73_DIR > models-73.2.0-delta.json
  NPM_SDK_DIR  the installed npm package (node_modules/@segment/public-api-sdk-typescript)
  SDK_73_DIR   a checkout of the 73.2.0 SDK (model/*.ts and api/*.ts)

The delta covers the response types of the 43 operations (as the npm SDK's api/*.ts
deserialize them) and every model reachable from them: for each model whose attributes,
required fields or enums differ, 73.2.0's full declaration. Standard library only.
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OPS = os.path.join(HERE, "..", "..", "data", "operations.json")

ATTR = re.compile(r"^    '(\w+)'(\?)?: ([^;]+);", re.M)
MAP_ENTRY = re.compile(r"\{\s*name: '(\w+)',\s*baseName: '([^']+)',\s*type: '([^']+)',\s*\}",
                       re.S)
ENUM = re.compile(r"export enum (\w+) \{(.*?)\}", re.S)
ENUM_VALUE = re.compile(r"= <any>'([^']*)'")
CLASS = re.compile(r"export class (\w+)")


def parse_model(path):
    """parse_model - {name, attributes: [[name, baseName, type, required, nullable]],
    enums} or None."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    m = CLASS.search(text)
    if not m:
        return None
    body = text[m.end():]
    cls_end = body.find("static discriminator")
    decl = body[:cls_end] if cls_end >= 0 else body
    declared = {n: (not q, bool(re.search(r"\|\s*null\b", t)))
                for n, q, t in ATTR.findall(decl)}
    attrs = [[n, b, t] + list(declared.get(n, (False, False)))
             for n, b, t in MAP_ENTRY.findall(body)]
    enums = {"%s.%s" % (m.group(1), e): ENUM_VALUE.findall(v) for e, v in ENUM.findall(text)}
    return {"name": m.group(1), "attributes": attrs, "enums": enums}


def load_models(sdk):
    """load_models - every model class of sdk/model, by class name."""
    out = {}
    mdir = os.path.join(sdk, "model")
    for name in sorted(os.listdir(mdir)):
        if name.endswith(".ts") and not name.endswith(".d.ts") and name != "models.ts":
            m = parse_model(os.path.join(mdir, name))
            if m:
                out[m["name"]] = m
    return out


def response_types(sdk, ops):
    """response_types - operationId -> the type its api method deserializes the body into."""
    out = {}
    adir = os.path.join(sdk, "api")
    for name in sorted(os.listdir(adir)):
        if not name.endswith(".ts") or name.endswith(".d.ts"):
            continue
        with open(os.path.join(adir, name), encoding="utf-8") as f:
            text = f.read()
        for m in re.finditer(r"public async (\w+)\(", text):
            if m.group(1) not in ops:
                continue
            end = text.find("public async ", m.end())
            body = text[m.end():end if end > 0 else len(text)]
            t = re.search(r"ObjectSerializer\.deserialize\(\s*body,\s*'(\w+)'", body)
            if t:
                out[m.group(1)] = t.group(1)
    return out


def referenced(type_str):
    """referenced - the model names a type string mentions."""
    return re.findall(r"[A-Z]\w*", type_str.replace("Array<", " ").replace(">", " "))


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[8], file=sys.stderr)
        return 2
    old, new = load_models(sys.argv[1]), load_models(sys.argv[2])
    with open(OPS) as f:
        ops = {o["operation_id"] for o in json.load(f) if o.get("operation_id")}
    roots = response_types(sys.argv[1], ops)
    missing = sorted(ops - set(roots))
    if missing:
        print("models_delta: no response type for %s" % ", ".join(missing), file=sys.stderr)
        return 1
    seen, todo = set(), sorted(set(roots.values()))
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        for m in (old.get(t), new.get(t)):
            for a in (m or {}).get("attributes", []):
                todo += [r for r in referenced(a[2]) if r in old or r in new]
    delta = {}
    for t in sorted(seen):
        o, n = old.get(t), new.get(t)
        if n and (not o or o["attributes"] != n["attributes"] or o["enums"] != n["enums"]):
            delta[t] = {"attributes": n["attributes"], "enums": n["enums"]}
    print(json.dumps({
        "about": "The TypeScript SDK 73.2.0's declarations of the models (reachable from the "
                 "43 operations' responses) that differ from the npm SDK's; made by "
                 "tests/sdk/models_delta.py. attributes: [name, JSON name, type, required, nullable].",
        "npm_sdk": json.load(open(os.path.join(sys.argv[1], "package.json")))["version"],
        "sdk_73": "segmentio/public-api-sdk-typescript 3780bc6078c0463733403e6ea86b9c7d40987b42 "
                  "(package.json 73.2.0-b666, 2026-08-20), model/*.ts",
        "response_types": roots,
        "models": delta,
    }, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
