/* emu_ops.c - what each operation does to the emulated workspace.
 *
 * Routing is the catalog's (catalog_match); this file only maps an operationId to a
 * handler. Get, list, update and delete on a collection are one generic handler each,
 * told by the table which collection (and which parent, for subscriptions) they act on.
 */
#include "emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct op_entry;
typedef void (*op_fn)(struct emu_call *c, const struct op_entry *e);

struct op_entry {
	const char *operation_id;
	op_fn fn;
	enum emu_coll coll;
	enum emu_coll parent;         /* C_COUNT: none */
	const char *parent_param;     /* path param naming the parent, also a field of items */
	const char *const *list_omit; /* fields left out of list items (as the API does) */
	const char *unwrap;           /* body key that holds the update's fields */
};

/* noun - how messages name an item of collection c. */
static const char *noun(enum emu_coll c)
{
	switch (c) {
	case C_SOURCES:
		return "source";
	case C_DESTINATIONS:
		return "destination";
	case C_WAREHOUSES:
		return "warehouse";
	case C_FUNCTIONS:
		return "function";
	case C_TRANSFORMATIONS:
		return "transformation";
	case C_SUBSCRIPTIONS:
		return "destination subscription";
	case C_USERS:
		return "user";
	case C_SOURCES_CATALOG:
		return "source metadata";
	case C_DESTINATIONS_CATALOG:
		return "destination metadata";
	case C_WAREHOUSES_CATALOG:
		return "warehouse metadata";
	default:
		return "resource";
	}
}

/* last_path_value - the value of the op's last path param: the target's id. */
static const char *last_path_value(const struct emu_call *c)
{
	const char *id = NULL;
	for (size_t i = 0; i < c->op->nparams; i++)
		if (c->op->params[i].in == PARAM_PATH)
			id = json_str(c->in, c->op->params[i].name);
	return id;
}

/* require_item - the item of c with id, or NULL after a 404. */
static cJSON *require_item(struct emu_call *c, enum emu_coll coll, const char *id,
                           const char *field, size_t *index)
{
	cJSON *item = id ? state_find(&c->emu->state, coll, "id", id, index) : NULL;
	if (!item)
		call_fail(c, 404, field, "%s %s not found", noun(coll), id ? id : "(none)");
	return item;
}

/* parent_ok - the parent named by the path exists; else a 404. */
static int parent_ok(struct emu_call *c, const struct op_entry *e)
{
	if (e->parent == C_COUNT)
		return 1;
	return require_item(c, e->parent, json_str(c->in, e->parent_param), e->parent_param,
	                    NULL) != NULL;
}

/* find_target - the item the path names, inside its parent when it has one. */
static cJSON *find_target(struct emu_call *c, const struct op_entry *e, size_t *index)
{
	if (!parent_ok(c, e))
		return NULL;
	const char *id = last_path_value(c);
	const char *pid = e->parent_param ? json_str(c->in, e->parent_param) : NULL;
	const struct emu_list *l = &c->emu->state.coll[e->coll];
	for (size_t i = 0; id && i < l->n; i++) {
		const char *v = json_str(l->items[i], "id");
		const char *p = pid ? json_str(l->items[i], e->parent_param) : NULL;
		if (v && strcmp(v, id) == 0 && (!pid || (p && strcmp(p, pid) == 0))) {
			*index = i;
			return l->items[i];
		}
	}
	call_fail(c, 404, NULL, "%s %s not found", noun(e->coll), id ? id : "(none)");
	return NULL;
}

/* put_result - data[first result key] = copy of item; other result keys null. */
static void put_result(struct emu_call *c, const cJSON *item)
{
	cJSON *data = call_data(c);
	const char *const *keys = c->op->result_keys;
	cJSON_AddItemToObject(data, keys[0], cJSON_Duplicate(item, 1));
	for (int i = 1; i < 3 && keys[i]; i++)
		cJSON_AddNullToObject(data, keys[i]);
}

/* put_status - {"data":{"status": s}}. */
static void put_status(struct emu_call *c, const char *s)
{
	cJSON_AddStringToObject(call_data(c), "status", s);
}

/* op_get - one item by id. */
static void op_get(struct emu_call *c, const struct op_entry *e)
{
	size_t i;
	const cJSON *item = find_target(c, e, &i);
	if (item)
		put_result(c, item);
}

/* cascade_delete - what goes away with an item: a source's warehouse connections and
 * destinations, a destination's subscriptions, a warehouse's connections. */
static void cascade_delete(struct emu_state *st, enum emu_coll coll, const char *id)
{
	if (coll == C_SOURCES) {
		state_remove_where(st, C_CONNECTIONS, "sourceId", id);
		const struct emu_list *d = &st->coll[C_DESTINATIONS];
		for (size_t i = 0; i < d->n;) {
			const char *sid = json_str(d->items[i], "sourceId");
			if (sid && strcmp(sid, id) == 0) {
				char *did = xstrdup(json_str(d->items[i], "id"));
				state_remove_at(st, C_DESTINATIONS, i);
				cascade_delete(st, C_DESTINATIONS, did);
				free(did);
			} else {
				i++;
			}
		}
	} else if (coll == C_DESTINATIONS) {
		state_remove_where(st, C_SUBSCRIPTIONS, "destinationId", id);
	} else if (coll == C_WAREHOUSES) {
		state_remove_where(st, C_CONNECTIONS, "warehouseId", id);
	}
}

/* op_delete - removes the item (and what hangs off it). */
static void op_delete(struct emu_call *c, const struct op_entry *e)
{
	size_t i;
	const cJSON *item = find_target(c, e, &i);
	if (!item)
		return;
	char *id = xstrdup(json_str(item, "id"));
	state_remove_at(&c->emu->state, e->coll, i);
	cascade_delete(&c->emu->state, e->coll, id);
	free(id);
	put_status(c, "SUCCESS");
}

/* matches_filters - every string input (path or query) naming a field of the item
 * must equal it: destinationId for subscriptions, resourceType for functions. */
static int matches_filters(const struct emu_call *c, const cJSON *item)
{
	const cJSON *in;
	cJSON_ArrayForEach(in, c->in)
	{
		if (!cJSON_IsString(in))
			continue;
		const char *v = json_str(item, in->string);
		if (v && strcmp(v, in->valuestring) != 0)
			return 0;
	}
	return 1;
}

/* put_page - data[items_key] = the page of items, and data.pagination. */
static void put_page(struct emu_call *c, cJSON *const *items, size_t n, const char *const *omit)
{
	cJSON *data = call_data(c);
	cJSON *arr = cJSON_AddArrayToObject(data, c->op->items_key);
	size_t end = c->page.offset + c->page.count;
	for (size_t i = c->page.offset; i < n && i < end; i++) {
		cJSON *copy = cJSON_Duplicate(items[i], 1);
		for (size_t k = 0; omit && omit[k]; k++)
			cJSON_DeleteItemFromObjectCaseSensitive(copy, omit[k]);
		cJSON_AddItemToArray(arr, copy);
	}
	page_add(data, &c->page, n);
}

/* op_list - a page of the collection's items that match the inputs. */
static void op_list(struct emu_call *c, const struct op_entry *e)
{
	if (!parent_ok(c, e))
		return;
	const struct emu_list *l = &c->emu->state.coll[e->coll];
	cJSON **match = xmalloc((l->n + 1) * sizeof(*match));
	size_t n = 0;
	for (size_t i = 0; i < l->n; i++)
		if (matches_filters(c, l->items[i]))
			match[n++] = l->items[i];
	put_page(c, match, n, e->list_omit);
	free(match);
}

/* slug_taken - another source already has this slug. */
static int slug_taken(struct emu_call *c, const char *slug, const char *except_id)
{
	const cJSON *other = state_find(&c->emu->state, C_SOURCES, "slug", slug, NULL);
	if (!other || (except_id && strcmp(json_str(other, "id"), except_id) == 0))
		return 0;
	call_fail(c, 409, "slug", "slug %s is already taken in workspace %s", slug,
	          EMU_WORKSPACE_ID);
	return 1;
}

/* update_conflicts - checks an update makes before it changes anything. */
static int update_conflicts(struct emu_call *c, const struct op_entry *e, const cJSON *fields,
                            const cJSON *item)
{
	const char *slug = json_str(fields, "slug");
	const char *sid = json_str(fields, "sourceId");
	if (e->coll == C_SOURCES && slug && slug_taken(c, slug, json_str(item, "id")))
		return 1;
	if (e->coll == C_TRANSFORMATIONS && sid &&
	    !require_item(c, C_SOURCES, sid, "sourceId", NULL))
		return 1;
	return 0;
}

/* set_field - item[key] = copy of v, replacing what was there. */
static void set_field(cJSON *item, const char *key, const cJSON *v)
{
	cJSON *copy = cJSON_Duplicate(v, 1);
	if (cJSON_HasObjectItem(item, key))
		cJSON_ReplaceItemInObjectCaseSensitive(item, key, copy);
	else
		cJSON_AddItemToObject(item, key, copy);
}

/* warehouse_rename - a warehouse has no name field (WarehouseV1): its name is
 * settings.name, where the spec's updateWarehouse example answers its request's name. */
static void warehouse_rename(cJSON *item, const cJSON *name)
{
	if (!cJSON_IsString(name))
		return;
	cJSON *settings = cJSON_GetObjectItemCaseSensitive(item, "settings");
	if (!cJSON_IsObject(settings)) {
		cJSON_DeleteItemFromObjectCaseSensitive(item, "settings");
		settings = cJSON_AddObjectToObject(item, "settings");
	}
	set_field(settings, "name", name);
}

/* op_update - PATCH: the given fields replace the item's; unknown ones are ignored.
 * Subscriptions take theirs from body.input, where reverseETLModelId is the modelId. */
static void op_update(struct emu_call *c, const struct op_entry *e)
{
	static const char *const subscription_fields[] = {"name", "trigger", "enabled", "settings",
	                                                  "reverseETLSchedule"};
	size_t i;
	cJSON *item = find_target(c, e, &i);
	if (!item)
		return;
	const cJSON *fields =
	    e->unwrap ? cJSON_GetObjectItemCaseSensitive(c->body, e->unwrap) : c->body;
	if (update_conflicts(c, e, fields, item))
		return;
	if (e->unwrap) {
		for (size_t k = 0; k < ARRAY_SIZE(subscription_fields); k++) {
			const cJSON *v =
			    cJSON_GetObjectItemCaseSensitive(fields, subscription_fields[k]);
			if (v)
				set_field(item, subscription_fields[k], v);
		}
		const cJSON *model = cJSON_GetObjectItemCaseSensitive(fields, "reverseETLModelId");
		if (model)
			set_field(item, "modelId", model);
	} else {
		for (size_t k = 0; k < c->op->nparams; k++) {
			const struct op_param *p = &c->op->params[k];
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(fields, p->name);
			if (p->in == PARAM_BODY && v &&
			    !(e->coll == C_WAREHOUSES && !strcmp(p->name, "name")))
				set_field(item, p->name, v);
		}
		if (e->coll == C_WAREHOUSES)
			warehouse_rename(item, cJSON_GetObjectItemCaseSensitive(fields, "name"));
	}
	state_touch(&c->emu->state, e->coll); /* a slug may have changed */
	put_result(c, item);
}

/* copy_body_fields - the op's body params that were given, copied onto item. */
static void copy_body_fields(const struct emu_call *c, cJSON *item)
{
	for (size_t k = 0; k < c->op->nparams; k++) {
		const struct op_param *p = &c->op->params[k];
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->body, p->name);
		if (p->in == PARAM_BODY && v && !cJSON_HasObjectItem(item, p->name))
			cJSON_AddItemToObject(item, p->name, cJSON_Duplicate(v, 1));
	}
}

/* body_or - a copy of body[key], or fallback (owned) when absent. */
static cJSON *body_or(const struct emu_call *c, const char *key, cJSON *fallback)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->body, key);
	if (!v || cJSON_IsNull(v))
		return fallback;
	cJSON_Delete(fallback);
	return cJSON_Duplicate(v, 1);
}

/* write_key - a source's write key: 32 characters from its id and the seed. */
static void write_key(const struct emu_state *st, const char *id, char out[33])
{
	static const char alnum[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	uint64_t h = fnv1a64(id, st->seed);
	for (int i = 0; i < 32; i++) {
		h = mix64(h);
		out[i] = alnum[h % 62];
	}
	out[32] = '\0';
}

/* source_metadata_brief - the metadata a source carries: its catalog entry. */
static cJSON *source_metadata_brief(const cJSON *meta)
{
	static const char *const keep[] = {"id",          "slug",  "name",    "categories",
	                                   "description", "logos", "options", "isCloudEventSource",
	                                   "status"};
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, keep[i]);
		if (v)
			cJSON_AddItemToObject(o, keep[i], cJSON_Duplicate(v, 1));
	}
	return o;
}

/* connect_source - warehouse and source, once. */
static void connect_source(struct emu_state *st, const char *warehouse_id, const char *source_id)
{
	if (state_find_connection(st, warehouse_id, source_id, NULL))
		return;
	cJSON *conn = cJSON_CreateObject();
	cJSON_AddStringToObject(conn, "warehouseId", warehouse_id);
	cJSON_AddStringToObject(conn, "sourceId", source_id);
	state_add(st, C_CONNECTIONS, conn);
}

/* op_create_source - metadataId from the sources catalog, slug unique; like the real
 * API, the new source is connected to every warehouse unless disconnectAllWarehouses. */
static void op_create_source(struct emu_call *c, const struct op_entry *e)
{
	struct emu_state *st = &c->emu->state;
	const char *slug = json_str(c->body, "slug");
	const char *meta_id = json_str(c->body, "metadataId");
	const cJSON *meta = state_find(st, C_SOURCES_CATALOG, "id", meta_id, NULL);
	char id[40], key[33];
	(void)e;
	if (!meta) {
		call_fail(c, 404, "metadataId", "source metadata %s not found", meta_id);
		return;
	}
	if (slug_taken(c, slug, NULL))
		return;
	state_new_id(st, C_SOURCES, "src", id);
	write_key(st, id, key);
	cJSON *s = cJSON_CreateObject();
	cJSON_AddStringToObject(s, "id", id);
	cJSON_AddStringToObject(s, "slug", slug);
	cJSON_AddItemToObject(s, "name", body_or(c, "name", cJSON_CreateString(slug)));
	cJSON_AddStringToObject(s, "workspaceId", EMU_WORKSPACE_ID);
	cJSON_AddBoolToObject(s, "enabled", cJSON_IsTrue(cJSON_GetObjectItem(c->body, "enabled")));
	cJSON_AddItemToObject(s, "writeKeys", cJSON_CreateArray());
	cJSON_AddItemToArray(cJSON_GetObjectItem(s, "writeKeys"), cJSON_CreateString(key));
	cJSON_AddItemToObject(s, "metadata", source_metadata_brief(meta));
	cJSON_AddItemToObject(s, "settings", body_or(c, "settings", cJSON_CreateObject()));
	cJSON_AddItemToObject(s, "labels", cJSON_CreateArray());
	state_add(st, C_SOURCES, s);
	if (!cJSON_IsTrue(cJSON_GetObjectItem(c->body, "disconnectAllWarehouses"))) {
		const struct emu_list *w = &st->coll[C_WAREHOUSES];
		for (size_t i = 0; i < w->n; i++)
			connect_source(st, json_str(w->items[i], "id"), id);
	}
	put_result(c, s);
}

/* op_create_destination - on an existing source, from the destinations catalog. */
static void op_create_destination(struct emu_call *c, const struct op_entry *e)
{
	struct emu_state *st = &c->emu->state;
	const char *source_id = json_str(c->body, "sourceId");
	const char *meta_id = json_str(c->body, "metadataId");
	char id[40];
	(void)e;
	if (!require_item(c, C_SOURCES, source_id, "sourceId", NULL))
		return;
	const cJSON *meta = state_find(st, C_DESTINATIONS_CATALOG, "id", meta_id, NULL);
	if (!meta) {
		call_fail(c, 404, "metadataId", "destination metadata %s not found", meta_id);
		return;
	}
	state_new_id(st, C_DESTINATIONS, "dst", id);
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "id", id);
	cJSON_AddItemToObject(d, "name",
	                      body_or(c, "name", cJSON_CreateString(json_str(meta, "name"))));
	cJSON_AddItemToObject(d, "enabled", body_or(c, "enabled", cJSON_CreateFalse()));
	cJSON_AddStringToObject(d, "sourceId", source_id);
	cJSON_AddItemToObject(d, "settings", body_or(c, "settings", cJSON_CreateObject()));
	cJSON_AddItemToObject(d, "metadata", cJSON_Duplicate(meta, 1));
	state_add(st, C_DESTINATIONS, d);
	put_result(c, d);
}

/* op_create_subscription - an action subscription on an existing destination. */
static void op_create_subscription(struct emu_call *c, const struct op_entry *e)
{
	struct emu_state *st = &c->emu->state;
	const char *dest_id = json_str(c->in, "destinationId");
	char id[40], slug[160];
	(void)e;
	if (!require_item(c, C_DESTINATIONS, dest_id, "destinationId", NULL))
		return;
	state_new_id(st, C_SUBSCRIPTIONS, "sub", id);
	cJSON *s = cJSON_CreateObject();
	cJSON_AddStringToObject(s, "id", id);
	cJSON_AddStringToObject(s, "destinationId", dest_id);
	snprintf(slug, sizeof(slug), "action-%s", json_str(c->body, "actionId"));
	cJSON_AddStringToObject(s, "actionSlug", slug);
	cJSON_AddItemToObject(s, "settings", body_or(c, "settings", cJSON_CreateObject()));
	copy_body_fields(c, s);
	state_add(st, C_SUBSCRIPTIONS, s);
	put_result(c, s);
}

/* function_id_prefix - "sfn"/"dfn" as the real source and destination function ids
 * begin; the insert functions' "ifnd" (destination) and, by analogy, "ifns"/"ifnt". */
static const char *function_id_prefix(const char *type)
{
	static const char *const prefixes[][2] = {
	    {"SOURCE", "sfn"},
	    {"DESTINATION", "dfn"},
	    {"INSERT_DESTINATION", "ifnd"},
	    {"INSERT_SOURCE", "ifns"},
	    {"INSERT_TRANSFORMATION", "ifnt"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
		if (strcmp(type, prefixes[i][0]) == 0)
			return prefixes[i][1];
	return "fn";
}

/* op_create_function - any resourceType of the operation table's enum (73.2.0's),
 * which the parameter check has already enforced. */
static void op_create_function(struct emu_call *c, const struct op_entry *e)
{
	struct emu_state *st = &c->emu->state;
	const char *type = json_str(c->body, "resourceType");
	char id[40], when[48];
	(void)e;
	state_new_id(st, C_FUNCTIONS, function_id_prefix(type), id);
	format_iso8601(clock_wall_ms() / 1000 * 1000, when);
	cJSON *f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "id", id);
	cJSON_AddItemToObject(f, "settings", body_or(c, "settings", cJSON_CreateArray()));
	copy_body_fields(c, f);
	cJSON_AddStringToObject(f, "createdAt", when);
	cJSON_AddStringToObject(f, "createdBy", "user_1");
	cJSON_AddStringToObject(f, "catalogId", id);
	state_add(st, C_FUNCTIONS, f);
	put_result(c, f);
}

/* op_create_transformation - on an existing source. */
static void op_create_transformation(struct emu_call *c, const struct op_entry *e)
{
	struct emu_state *st = &c->emu->state;
	const char *source_id = json_str(c->body, "sourceId");
	const char *dm = json_str(c->body, "destinationMetadataId");
	char id[40];
	(void)e;
	if (!require_item(c, C_SOURCES, source_id, "sourceId", NULL))
		return;
	if (dm && !state_find(st, C_DESTINATIONS_CATALOG, "id", dm, NULL)) {
		call_fail(c, 404, "destinationMetadataId", "destination metadata %s not found", dm);
		return;
	}
	state_new_id(st, C_TRANSFORMATIONS, "trf", id);
	cJSON *t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "id", id);
	cJSON_AddItemToObject(t, "drop", body_or(c, "drop", cJSON_CreateFalse()));
	cJSON_AddItemToObject(t, "propertyRenames",
	                      body_or(c, "propertyRenames", cJSON_CreateArray()));
	copy_body_fields(c, t);
	state_add(st, C_TRANSFORMATIONS, t);
	put_result(c, t);
}

/* op_create_invites - {"invites":[{"email",...}]} -> data.emails. */
static void op_create_invites(struct emu_call *c, const struct op_entry *e)
{
	const cJSON *invites = cJSON_GetObjectItemCaseSensitive(c->body, "invites");
	const cJSON *inv;
	int i = 0;
	(void)e;
	cJSON_ArrayForEach(inv, invites)
	{
		if (!json_str(inv, "email")) {
			call_fail(c, 422, "invites", "invites[%d].email is required", i);
			return;
		}
		i++;
	}
	if (i == 0) {
		call_fail(c, 422, "invites", "invites must not be empty");
		return;
	}
	cJSON *emails = cJSON_AddArrayToObject(call_data(c), "emails");
	cJSON_ArrayForEach(inv, invites)
	{
		const char *email = json_str(inv, "email");
		cJSON_AddItemToArray(emails, cJSON_CreateString(email));
		if (!state_find(&c->emu->state, C_INVITES, "email", email, NULL))
			state_add(&c->emu->state, C_INVITES, cJSON_Duplicate(inv, 1));
	}
}

/* op_delete_users - all of userIds, or none when any is unknown. */
static void op_delete_users(struct emu_call *c, const struct op_entry *e)
{
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(c->in, "userIds");
	const cJSON *id;
	(void)e;
	cJSON_ArrayForEach(id, ids)
	{
		if (!require_item(c, C_USERS, id->valuestring, "userIds", NULL))
			return;
	}
	cJSON_ArrayForEach(id, ids)
	{
		state_remove_where(&c->emu->state, C_USERS, "id", id->valuestring);
	}
	put_status(c, "SUCCESS");
}

/* connection_ends - both ends of a warehouse connection exist; else a 404. */
static int connection_ends(struct emu_call *c)
{
	return require_item(c, C_WAREHOUSES, json_str(c->in, "warehouseId"), "warehouseId", NULL) &&
	       require_item(c, C_SOURCES, json_str(c->in, "sourceId"), "sourceId", NULL);
}

/* op_connect - addConnectionFromSourceToWarehouse; connecting twice is harmless. */
static void op_connect(struct emu_call *c, const struct op_entry *e)
{
	(void)e;
	if (!connection_ends(c))
		return;
	c->unchanged = state_find_connection(&c->emu->state, json_str(c->in, "warehouseId"),
	                                     json_str(c->in, "sourceId"), NULL) != NULL;
	connect_source(&c->emu->state, json_str(c->in, "warehouseId"), json_str(c->in, "sourceId"));
	put_status(c, "CONNECTED");
}

/* op_disconnect - removeSourceConnectionFromWarehouse; 404 when not connected. */
static void op_disconnect(struct emu_call *c, const struct op_entry *e)
{
	const char *wid = json_str(c->in, "warehouseId"), *sid = json_str(c->in, "sourceId");
	size_t i;
	(void)e;
	if (!connection_ends(c))
		return;
	if (state_find_connection(&c->emu->state, wid, sid, &i)) {
		state_remove_at(&c->emu->state, C_CONNECTIONS, i);
		put_status(c, "SUCCESS");
		return;
	}
	call_fail(c, 404, "sourceId", "source %s is not connected to warehouse %s", sid, wid);
}

/* op_list_connected - the sources connected to a warehouse, in connection order. */
static void op_list_connected(struct emu_call *c, const struct op_entry *e)
{
	const char *wid = json_str(c->in, "warehouseId");
	struct emu_state *st = &c->emu->state;
	(void)e;
	if (!require_item(c, C_WAREHOUSES, wid, "warehouseId", NULL))
		return;
	const struct emu_list *l = &st->coll[C_CONNECTIONS];
	cJSON **match = xmalloc((l->n + 1) * sizeof(*match));
	size_t n = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(json_str(l->items[i], "warehouseId"), wid))
			continue;
		cJSON *src =
		    state_find(st, C_SOURCES, "id", json_str(l->items[i], "sourceId"), NULL);
		if (src)
			match[n++] = src;
	}
	put_page(c, match, n, NULL);
	free(match);
}

/* op_volume - getEventsVolumeFromWorkspace, in emu_volume.c. */
static void op_volume(struct emu_call *c, const struct op_entry *e)
{
	(void)e;
	op_events_volume(c);
}

#define NONE C_COUNT, NULL, NULL, NULL
#define IN_DESTINATION C_DESTINATIONS, "destinationId"

/* ListFunctionItemV1 has neither code nor settings; list users carry no permissions */
static const char *const omit_function[] = {"code", "settings", NULL};
static const char *const omit_user[] = {"permissions", NULL};

static const struct op_entry op_table[] = {
    {"addConnectionFromSourceToWarehouse", op_connect, C_CONNECTIONS, NONE},
    {"createDestination", op_create_destination, C_DESTINATIONS, NONE},
    {"createDestinationSubscription", op_create_subscription, C_SUBSCRIPTIONS, NONE},
    {"createFunction", op_create_function, C_FUNCTIONS, NONE},
    {"createInvites", op_create_invites, C_INVITES, NONE},
    {"createSource", op_create_source, C_SOURCES, NONE},
    {"createTransformation", op_create_transformation, C_TRANSFORMATIONS, NONE},
    {"deleteDestination", op_delete, C_DESTINATIONS, NONE},
    {"deleteFunction", op_delete, C_FUNCTIONS, NONE},
    {"deleteSource", op_delete, C_SOURCES, NONE},
    {"deleteTransformation", op_delete, C_TRANSFORMATIONS, NONE},
    {"deleteUsers", op_delete_users, C_USERS, NONE},
    {"deleteWarehouse", op_delete, C_WAREHOUSES, NONE},
    {"getDestination", op_get, C_DESTINATIONS, NONE},
    {"getDestinationMetadata", op_get, C_DESTINATIONS_CATALOG, NONE},
    {"getDestinationsCatalog", op_list, C_DESTINATIONS_CATALOG, NONE},
    {"getEventsVolumeFromWorkspace", op_volume, C_COUNT, NONE},
    {"getFunction", op_get, C_FUNCTIONS, NONE},
    {"getSource", op_get, C_SOURCES, NONE},
    {"getSourceMetadata", op_get, C_SOURCES_CATALOG, NONE},
    {"getSourcesCatalog", op_list, C_SOURCES_CATALOG, NONE},
    {"getSubscriptionFromDestination", op_get, C_SUBSCRIPTIONS, IN_DESTINATION, NULL, NULL},
    {"getTransformation", op_get, C_TRANSFORMATIONS, NONE},
    {"getUser", op_get, C_USERS, NONE},
    {"getWarehouse", op_get, C_WAREHOUSES, NONE},
    {"getWarehouseMetadata", op_get, C_WAREHOUSES_CATALOG, NONE},
    {"getWarehousesCatalog", op_list, C_WAREHOUSES_CATALOG, NONE},
    {"listConnectedSourcesFromWarehouse", op_list_connected, C_SOURCES, NONE},
    {"listDestinations", op_list, C_DESTINATIONS, NONE},
    {"listFunctions", op_list, C_FUNCTIONS, C_COUNT, NULL, omit_function, NULL},
    {"listSources", op_list, C_SOURCES, NONE},
    {"listSubscriptionsFromDestination", op_list, C_SUBSCRIPTIONS, IN_DESTINATION, NULL, NULL},
    {"listTransformations", op_list, C_TRANSFORMATIONS, NONE},
    {"listUsers", op_list, C_USERS, C_COUNT, NULL, omit_user, NULL},
    {"listWarehouses", op_list, C_WAREHOUSES, NONE},
    {"removeSourceConnectionFromWarehouse", op_disconnect, C_CONNECTIONS, NONE},
    {"removeSubscriptionFromDestination", op_delete, C_SUBSCRIPTIONS, IN_DESTINATION, NULL, NULL},
    {"updateDestination", op_update, C_DESTINATIONS, NONE},
    {"updateFunction", op_update, C_FUNCTIONS, NONE},
    {"updateSource", op_update, C_SOURCES, NONE},
    {"updateSubscriptionForDestination", op_update, C_SUBSCRIPTIONS, IN_DESTINATION, NULL, "input"},
    {"updateTransformation", op_update, C_TRANSFORMATIONS, NONE},
    {"updateWarehouse", op_update, C_WAREHOUSES, NONE},
};

/* find_entry - the handler entry of an operationId (the table is sorted). */
static const struct op_entry *find_entry(const char *operation_id)
{
	return bsearch(operation_id, op_table, ARRAY_SIZE(op_table), sizeof(op_table[0]),
	               by_operation_id);
}

/* ops_check - a startup check that the catalog and this table agree. */
int ops_check(void)
{
	for (size_t i = 1; i < ARRAY_SIZE(op_table); i++)
		if (strcmp(op_table[i - 1].operation_id, op_table[i].operation_id) >= 0)
			return error("emu op table is not sorted at %s", op_table[i].operation_id);
	for (size_t i = 0; i < catalog_count(); i++) {
		const struct op_def *op = catalog_at(i);
		if (!op->is_raw && !find_entry(op->operation_id))
			return error("no emulator handler for operation %s", op->operation_id);
	}
	return 0;
}

/* add_path_ids - the path's parameter values, joined with '/'. */
static void add_path_ids(const struct emu_call *c, struct strbuf *out)
{
	const char *sep = "";
	for (size_t i = 0; i < c->op->nparams; i++) {
		const char *v = json_str(c->in, c->op->params[i].name);
		if (c->op->params[i].in == PARAM_PATH && v) {
			sb_addf(out, "%s%s", sep, v);
			sep = "/";
		}
	}
}

/* add_joined - the strings (or the field of objects) of arr, joined with ','. */
static void add_joined(struct strbuf *out, const cJSON *arr, const char *field)
{
	const cJSON *v;
	const char *sep = "";
	cJSON_ArrayForEach(v, arr)
	{
		const char *s = field ? json_str(v, field) : cJSON_GetStringValue(v);
		sb_addf(out, "%s%s", sep, s ? s : "");
		sep = ",";
	}
}

/* ops_mutation_key - what a mutation targets, for /__emu/stats: "<op> slug=web" for a
 * create (its name-like field), "<op> wh_1/src_0001abcd" (path ids) for the others. */
void ops_mutation_key(const struct emu_call *c, struct strbuf *out)
{
	static const char *const create_keys[][2] = {
	    {"createSource", "slug"},
	    {"createDestination", "name"},
	    {"createFunction", "displayName"},
	    {"createTransformation", "name"},
	    {"createDestinationSubscription", "name"},
	};
	const char *id = c->op->operation_id;
	sb_addf(out, "%s ", id);
	for (size_t i = 0; i < ARRAY_SIZE(create_keys); i++) {
		if (strcmp(id, create_keys[i][0]) == 0) {
			const char *v = json_str(c->body, create_keys[i][1]);
			sb_addf(out, "%s=%s", create_keys[i][1], v ? v : "");
			return;
		}
	}
	if (strcmp(id, "createInvites") == 0) {
		sb_adds(out, "emails=");
		add_joined(out, cJSON_GetObjectItemCaseSensitive(c->body, "invites"), "email");
	} else if (strcmp(id, "deleteUsers") == 0) {
		sb_adds(out, "userIds=");
		add_joined(out, cJSON_GetObjectItemCaseSensitive(c->in, "userIds"), NULL);
	} else {
		add_path_ids(c, out);
	}
}

/* ops_dispatch - runs the operation's handler; the caller holds the lock. */
void ops_dispatch(struct emu_call *c)
{
	const struct op_entry *e = find_entry(c->op->operation_id);
	if (!e) {
		call_fail(c, 404, NULL, "operation %s is not emulated", c->op->operation_id);
		return;
	}
	e->fn(c, e);
}
