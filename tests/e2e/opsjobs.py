"""opsjobs - job files that exercise every operation, as a provisioning run would.

Shared by test_ops.py (daemon -> emulator, results checked against /__emu/state) and
test_contract.py (daemon -> Prism -> emulator, requests checked against the 32.0.5 spec).

The run is a sequence of steps; each step is one batch of jobs that the daemon runs to
idle (`run --until-idle`) before the next step is built, because later steps need the ids
that earlier ones created (read back from their output files, as a real user would):

  create-1   sources (three by job, one by raw POST), functions, invites
  create-2   destinations and transformations on the new sources, a warehouse connection
  create-3   a destination subscription on the new destination
  read       every get*, every list* (paginated, several pages), catalogs, metadata,
             event volumes (split by day and unsplit), raw GET /warehouses
  update     every update*
  delete     every delete*/remove* (targets chosen so that no two jobs of the step race)

Jobs of one step run concurrently, so no job depends on another job of its own step.
Every job has a key and an output path under out/ (OUT[name]); `ids` is a dict filled
from the outputs by ids_after(step, read_output).

Pagination counts stay within 1..200, the range of the 32.0.5 spec Prism validates.
The operations themselves (which exist, which page) come from data/operations.json, the
table segspool's catalog is generated from: an operation added there is missing here
until a step runs it.
"""
import json
import os

OPERATIONS_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data",
                               "operations.json")
with open(OPERATIONS_JSON) as _f:
    OPERATIONS = json.load(_f)

SOURCE_META = "IqDTy1TpoU"  # Javascript
DEST_META = "PGEbHBGBz1"  # Google Analytics 4
WAREHOUSE_META = "Mx6mwhin2P"  # Snowflake
WORKSPACE = "ws_emu0001"
WAREHOUSES = ["wh_1", "wh_2", "wh_3"]

# the event volume window of the read step: three whole days
VOLUME_START = "2026-10-01T00:00:00Z"
VOLUME_END = "2026-10-04T00:00:00Z"
VOLUME_DAYS = ["2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z", "2026-10-03T00:00:00Z",
               "2026-10-04T00:00:00Z"]

STEPS = ["create-1", "create-2", "create-3", "read", "update", "delete"]

# every named operation of data/operations.json, plus raw (the entry without an id)
ALL_OPS = sorted(o["operation_id"] or "raw" for o in OPERATIONS)
NAMED_OPS = [op for op in ALL_OPS if op != "raw"]

# the five PATCH operations whose 32.0.5 request schema requires the path id in the body
PATCH_SPEC_BUG = {
    "updateDestination": "destinationId",
    "updateSubscriptionForDestination": "destinationId",
    "updateFunction": "functionId",
    "updateSource": "sourceId",
    "updateTransformation": "transformationId",
}

FUNCTION_SETTING = {"name": "apiKey", "label": "API Key", "type": "STRING",
                    "description": "Key of the upstream service.", "required": True,
                    "sensitive": True}
INVITES = [
    {"email": "ana.ops@example.com",
     "permissions": [{"roleId": "role_member",
                      "resources": [{"id": WORKSPACE, "type": "WORKSPACE"}]}]},
    {"email": "ben.ops@example.com",
     "permissions": [{"roleId": "role_member",
                      "resources": [{"id": WORKSPACE, "type": "WORKSPACE"}]}]},
]

# what the update step asks for, by job name (checked against the emulator afterwards)
UPDATES = {
    "upd-source": {"name": "Web (EU)", "enabled": False, "slug": "ops-web-eu",
                   "settings": {"region": "eu"}},
    "upd-destination": {"name": "GA4 web (renamed)", "enabled": False,
                        "settings": {"measurementId": "G-UPDATED1", "apiSecret": "s2"}},
    "upd-function": {"displayName": "Enrich v2", "description": "second version",
                     "code": "async function onTrack(event) { return event; }"},
    "upd-transformation": {"name": "rename checkout v2", "enabled": False,
                           "if": "event = \"Checkout Done\"", "newEventName": "Order Completed"},
    "upd-subscription": {"name": "GA4 purchase (renamed)", "enabled": False,
                         "trigger": "type = \"track\" and event = \"Order Completed\""},
    # a warehouse has no name field: the API keeps the name in settings.name
    "upd-warehouse": {"name": "BigQuery EU", "enabled": False,
                      "settings": {"hostname": "bq-eu.example.com"}},
}

# users the delete step removes
DELETED_USERS = ["user_24", "user_25"]


def _job(name, op, params=None, **kw):
    j = {"op": op, "key": "ops-" + name, "output": out_path(name, kw.get("paginate"), op)}
    if params is not None:
        j["params"] = params
    j.update(kw)
    j["_name"] = name
    return j


# the operations that page (their output is JSON Lines)
PAGINATED = {o["operation_id"] for o in OPERATIONS if o["paginated"]}


def out_path(name, paginate=None, op=None):
    """out_path - a job's output path (relative to SPOOL/out): .jsonl when it pages."""
    return "ops/%s.%s" % (name, "jsonl" if op in PAGINATED else "json")


def strip(jobs):
    """strip - the jobs as they go into a job file (without the test's _name)."""
    return [{k: v for k, v in j.items() if k != "_name"} for j in jobs]


def step_jobs(step, ids, contract=False):
    """step_jobs - the jobs of one step. contract: bodies the 32.0.5 spec knows (no
    disconnectAllWarehouses, a 73.2.0-only field)."""
    J = _job
    if step == "create-1":
        ios = {"slug": "ops-ios", "enabled": True, "metadataId": SOURCE_META}
        if not contract:
            ios["disconnectAllWarehouses"] = True
        return [
            J("src-web", "createSource", {"slug": "ops-web", "enabled": True,
                                          "metadataId": SOURCE_META,
                                          "settings": {"region": "us"}}),
            J("src-ios", "createSource", ios),
            J("src-backend", "createSource", {"slug": "ops-backend", "enabled": False,
                                              "metadataId": SOURCE_META}),
            J("src-raw", "raw", {"method": "POST", "path": "/sources",
                                 "body": {"slug": "ops-raw", "enabled": True,
                                          "metadataId": SOURCE_META}}),
            J("fn-source", "createFunction", {
                "code": "async function onRequest(request, settings) {}",
                "displayName": "Enrich", "resourceType": "SOURCE",
                "description": "adds fields", "settings": [FUNCTION_SETTING]}),
            J("fn-dest", "createFunction", {
                "code": "async function onTrack(event, settings) {}",
                "displayName": "Forward", "resourceType": "DESTINATION",
                "logoUrl": "https://example.com/logo.png"}),
            J("invites", "createInvites", {"invites": INVITES}),
        ]
    if step == "create-2":
        return [
            J("dst-web", "createDestination", {
                "sourceId": ids["src-web"], "metadataId": DEST_META, "enabled": True,
                "name": "GA4 web", "settings": {"measurementId": "G-ABC123", "apiSecret": "s1"}}),
            J("dst-backend", "createDestination", {
                "sourceId": ids["src-backend"], "metadataId": DEST_META,
                "settings": {"measurementId": "G-BACKEND"}}),
            J("trf-web", "createTransformation", {
                "name": "rename checkout", "sourceId": ids["src-web"], "enabled": True,
                "if": "event = \"Checkout\"", "newEventName": "Checkout Done",
                "propertyRenames": [{"oldName": "cost", "newName": "price"}]}),
            J("conn-ios-wh2", "addConnectionFromSourceToWarehouse",
              {"warehouseId": "wh_2", "sourceId": ids["src-ios"]}),
        ]
    if step == "create-3":
        return [
            J("sub-web", "createDestinationSubscription", {
                "destinationId": ids["dst-web"], "name": "GA4 purchase",
                "actionId": "act_purchase", "trigger": "type = \"track\"", "enabled": True,
                "settings": {"currency": "EUR"}}),
        ]
    if step == "read":
        return [
            J("get-source", "getSource", {"sourceId": ids["src-web"]}),
            J("get-destination", "getDestination", {"destinationId": ids["dst-web"]}),
            J("get-function", "getFunction", {"functionId": ids["fn-source"]}),
            J("get-transformation", "getTransformation", {"transformationId": ids["trf-web"]}),
            J("get-subscription", "getSubscriptionFromDestination",
              {"destinationId": ids["dst-web"], "id": ids["sub-web"]}),
            J("get-user", "getUser", {"userId": "user_2"}),
            J("get-warehouse", "getWarehouse", {"warehouseId": "wh_1"}),
            J("get-source-meta", "getSourceMetadata", {"sourceMetadataId": SOURCE_META}),
            J("get-dest-meta", "getDestinationMetadata", {"destinationMetadataId": DEST_META}),
            J("get-wh-meta", "getWarehouseMetadata", {"warehouseMetadataId": WAREHOUSE_META}),
            # catalogs: all pages (default count), all pages at 40, two pages only
            J("cat-sources", "getSourcesCatalog", paginate={"max_pages": 100, "count": 40}),
            J("cat-destinations", "getDestinationsCatalog",
              paginate={"max_pages": 2, "count": 25}),
            J("cat-warehouses", "getWarehousesCatalog", paginate="all"),
            J("list-sources", "listSources", paginate={"max_pages": 10, "count": 3}),
            J("list-destinations", "listDestinations", paginate="all"),
            J("list-functions-src", "listFunctions", {"resourceType": "SOURCE"}),
            J("list-functions-dst", "listFunctions", {"resourceType": "DESTINATION"},
              paginate={"max_pages": 5, "count": 1}),
            J("list-transformations", "listTransformations", paginate="all"),
            J("list-subscriptions", "listSubscriptionsFromDestination",
              {"destinationId": ids["dst-web"]}, paginate={"max_pages": 3, "count": 5}),
            J("list-users", "listUsers", paginate={"max_pages": 10, "count": 7}),
            J("list-warehouses", "listWarehouses", paginate="all"),
            J("list-connected", "listConnectedSourcesFromWarehouse", {"warehouseId": "wh_1"},
              paginate={"max_pages": 10, "count": 2}),
            J("volume-split", "getEventsVolumeFromWorkspace", {
                "granularity": "DAY", "startTime": VOLUME_START, "endTime": VOLUME_END,
                "groupBy": ["eventName"]}, split="1d"),
            J("volume-hourly", "getEventsVolumeFromWorkspace", {
                "granularity": "HOUR", "startTime": VOLUME_START,
                "endTime": "2026-10-01T06:00:00Z", "groupBy": ["source", "eventType"],
                "sourceId": ["src_evt_1", "src_evt_2"], "eventType": ["track"]},
              paginate={"max_pages": 10, "count": 1}),
            J("raw-warehouses", "raw", {"method": "GET", "path": "/warehouses",
                                        "query": {"pagination": {"count": 50}}}),
        ]
    if step == "update":
        U = UPDATES
        return [
            J("upd-source", "updateSource", dict(U["upd-source"], sourceId=ids["src-web"])),
            J("upd-destination", "updateDestination",
              dict(U["upd-destination"], destinationId=ids["dst-web"])),
            J("upd-function", "updateFunction",
              dict(U["upd-function"], functionId=ids["fn-source"])),
            J("upd-transformation", "updateTransformation",
              dict(U["upd-transformation"], transformationId=ids["trf-web"])),
            J("upd-subscription", "updateSubscriptionForDestination",
              {"destinationId": ids["dst-web"], "id": ids["sub-web"],
               "input": U["upd-subscription"]}),
            J("upd-warehouse", "updateWarehouse", dict(U["upd-warehouse"], warehouseId="wh_2")),
        ]
    if step == "delete":
        return [
            J("del-connection", "removeSourceConnectionFromWarehouse",
              {"warehouseId": "wh_1", "sourceId": ids["src-web"]}),
            J("del-subscription", "removeSubscriptionFromDestination",
              {"destinationId": ids["dst-web"], "id": ids["sub-web"]}),
            J("del-destination", "deleteDestination", {"destinationId": ids["dst-backend"]}),
            J("del-transformation", "deleteTransformation",
              {"transformationId": ids["trf-web"]}),
            J("del-function", "deleteFunction", {"functionId": ids["fn-dest"]}),
            J("del-source", "deleteSource", {"sourceId": ids["src-ios"]}),
            J("del-users", "deleteUsers", {"userIds": DELETED_USERS}),
            J("del-warehouse", "deleteWarehouse", {"warehouseId": "wh_3"}),
        ]
    raise ValueError("unknown step %r" % step)


# where each created id sits in its job's output (the response's data object)
ID_OF = {
    "src-web": ("source", "id"), "src-ios": ("source", "id"),
    "src-backend": ("source", "id"), "src-raw": ("source", "id"),
    "fn-source": ("function", "id"), "fn-dest": ("function", "id"),
    "dst-web": ("destination", "id"), "dst-backend": ("destination", "id"),
    "trf-web": ("transformation", "id"), "sub-web": ("destinationSubscription", "id"),
}


def ids_after(step, read_output, ids):
    """ids_after - adds the ids the step created to ids; read_output(name) returns the
    parsed output file of job `name` (or None when it is missing)."""
    for j in step_jobs(step, ids):
        name = j["_name"]
        if name in ID_OF:
            doc = read_output(name)
            a, b = ID_OF[name]
            ids[name] = doc.get(a, {}).get(b) if isinstance(doc, dict) else None
    return ids
