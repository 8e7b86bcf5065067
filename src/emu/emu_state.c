/* emu_state.c - the emulator's in-memory workspace: collections, ids, seeded catalogs.
 *
 * Every collection is an ordered array of cJSON objects shaped like the API's own, so
 * handlers return copies of them and /__emu/state is a plain dump.
 */
#include "emu.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

struct named {
	const char *name;
	const char *category;
};

static const struct named source_names[] = {
    {"Javascript", "Website"},
    {"iOS", "Mobile"},
    {"Android", "Mobile"},
    {"Node.js", "Server"},
    {"HTTP API", "Server"},
    {"Python", "Server"},
    {"Ruby", "Server"},
    {"Go", "Server"},
    {"Java", "Server"},
    {"PHP", "Server"},
    {".NET", "Server"},
    {"React Native", "Mobile"},
    {"Flutter", "Mobile"},
    {"Kotlin", "Mobile"},
    {"Swift", "Mobile"},
    {"AMP", "Website"},
    {"Salesforce", "CRM"},
    {"HubSpot", "CRM"},
    {"Stripe", "Payments"},
    {"Zendesk", "Helpdesk"},
    {"Intercom", "Helpdesk"},
    {"Shopify", "Ecommerce"},
    {"Mailchimp", "Email Marketing"},
    {"SendGrid", "Email Marketing"},
    {"Twilio", "SMS & Push"},
    {"Facebook Ads", "Advertising"},
    {"Google Ads", "Advertising"},
    {"Braze", "SMS & Push"},
    {"Iterable", "Email Marketing"},
    {"Klaviyo", "Email Marketing"},
};

static const struct named destination_names[] = {
    {"Google Analytics 4", "Analytics"},
    {"Amplitude", "Analytics"},
    {"Mixpanel", "Analytics"},
    {"Braze", "SMS & Push Notifications"},
    {"Customer.io", "Email Marketing"},
    {"Intercom", "Customer Success"},
    {"HubSpot", "CRM"},
    {"Salesforce", "CRM"},
    {"Facebook Conversions API", "Advertising"},
    {"Google Ads Conversions", "Advertising"},
    {"Webhooks", "Raw Data"},
    {"Slack", "Raw Data"},
    {"Iterable", "Email Marketing"},
    {"Klaviyo", "Email Marketing"},
    {"Optimizely", "A/B Testing"},
    {"LaunchDarkly", "Feature Flagging"},
    {"FullStory", "Heatmaps & Recordings"},
    {"Hotjar", "Heatmaps & Recordings"},
    {"Heap", "Analytics"},
    {"Pendo", "Analytics"},
    {"Zendesk", "Helpdesk"},
    {"Marketo", "Email Marketing"},
    {"Vero", "Email Marketing"},
    {"Kissmetrics", "Analytics"},
    {"Sentry", "Performance Monitoring"},
    {"Datadog", "Performance Monitoring"},
    {"Google Tag Manager", "Tag Managers"},
    {"TikTok Conversions", "Advertising"},
    {"Pinterest Conversions API", "Advertising"},
    {"LinkedIn Insight Tag", "Advertising"},
    {"Snapchat Conversions", "Advertising"},
    {"AppsFlyer", "Attribution"},
    {"Adjust", "Attribution"},
    {"Branch", "Deep Linking"},
    {"Firebase", "Analytics"},
    {"Airship", "SMS & Push Notifications"},
    {"OneSignal", "SMS & Push Notifications"},
    {"Twilio Engage", "SMS & Push Notifications"},
};

static const struct named warehouse_names[] = {
    {"Snowflake", "Warehouse"},
    {"BigQuery", "Warehouse"},
    {"Redshift", "Warehouse"},
    {"Postgres", "Warehouse"},
    {"Databricks", "Warehouse"},
    {"Azure Synapse Analytics", "Warehouse"},
    {"IBM Db2 Warehouse", "Warehouse"},
    {"Segment Data Lakes", "Warehouse"},
    {"Amazon S3", "Storage"},
    {"Google Cloud Storage", "Storage"},
    {"Azure SQL Data Warehouse", "Warehouse"},
    {"MySQL", "Warehouse"},
};

static const char *const variant_suffixes[] = {
    "(Actions)", "Cloud", "Server", "Classic", "EU", "Legacy", "Enterprise", "Web",
};

static const char *const first_names[] = {
    "Ada", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Alan", "Radia",
};

static const char *const last_names[] = {
    "Lovelace", "Hopper",   "Torvalds", "Hamilton", "Ritchie",
    "Liskov",   "Thompson", "Allen",    "Turing",   "Perlman",
};

static const char *const coll_names[C_COUNT] = {
    [C_SOURCES] = "sources",
    [C_DESTINATIONS] = "destinations",
    [C_WAREHOUSES] = "warehouses",
    [C_CONNECTIONS] = "connections",
    [C_FUNCTIONS] = "functions",
    [C_TRANSFORMATIONS] = "transformations",
    [C_SUBSCRIPTIONS] = "subscriptions",
    [C_USERS] = "users",
    [C_INVITES] = "invites",
    [C_SOURCES_CATALOG] = "sourcesCatalog",
    [C_DESTINATIONS_CATALOG] = "destinationsCatalog",
    [C_WAREHOUSES_CATALOG] = "warehousesCatalog",
};

/* coll_name - the collection's key in /__emu/state. */
const char *coll_name(enum emu_coll c)
{
	return coll_names[c];
}

/* mix64 - splitmix64's finalizer: a cheap, well-spread 64-bit hash step. */
uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* prng_uniform - the next draw in [0, 1) of a splitmix64 stream. */
double prng_uniform(uint64_t *state)
{
	*state += 0x9e3779b97f4a7c15ULL;
	return (double)(mix64(*state) >> 11) / JSON_EXACT_INT_LIMIT;
}

/* json_str - obj[key] when it is a string, else NULL. */
const char *json_str(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* slugify - "Google Analytics 4" -> "google-analytics-4". */
static void slugify(const char *name, char *out, size_t size)
{
	size_t n = 0;
	int dash = 0;
	for (const char *p = name; *p && n + 2 < size; p++) {
		unsigned char ch = (unsigned char)*p;
		if (isalnum(ch)) {
			if (dash && n)
				out[n++] = '-';
			out[n++] = (char)tolower(ch);
			dash = 0;
		} else {
			dash = 1;
		}
	}
	out[n] = '\0';
}

/* metadata_id - a 10-character id like the real catalog's ("IqDTy1TpoU"), from the slug
 * only, so job files can name catalog entries whatever --seed says; entries that Segment
 * publishes keep their real ids (data/emu_seeds.json). */
static void metadata_id(const char *kind, const char *slug, char out[16])
{
	static const char alnum[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	uint64_t h = mix64(fnv1a64(slug, fnv1a64(kind, FNV1A64_INIT)));
	for (int i = 0; i < 10; i++) {
		out[i] = alnum[h % 62];
		h = i == 4 ? mix64(h) : h / 62;
	}
	out[10] = '\0';
}

/* list_push - appends, taking ownership. */
static void list_push(struct emu_list *l, cJSON *item)
{
	if (l->n == l->alloc) {
		l->alloc = l->alloc ? l->alloc * 2 : 16;
		l->items = xrealloc(l->items, l->alloc * sizeof(*l->items));
	}
	l->items[l->n++] = item;
}

/* index_clear - drops every key; the index is invalid until rebuilt. */
static void index_clear(struct emu_index *x)
{
	for (size_t i = 0; i < x->cap; i++)
		free(x->keys[i]);
	free(x->keys);
	free(x->items);
	memset(x, 0, sizeof(*x));
}

/* index_put - key -> item; the first item of a key wins, as a linear scan would. */
static void index_put(struct emu_index *x, const char *key, cJSON *item)
{
	if ((x->n + 1) * 10 > x->cap * 7) {
		struct emu_index old = *x;
		x->cap = old.cap ? old.cap * 2 : 64;
		x->keys = xcalloc(x->cap, sizeof(*x->keys));
		x->items = xcalloc(x->cap, sizeof(*x->items));
		x->n = 0;
		for (size_t i = 0; i < old.cap; i++)
			if (old.keys[i])
				index_put(x, old.keys[i], old.items[i]);
		index_clear(&old);
	}
	size_t j = fnv1a64(key, FNV1A64_INIT) & (x->cap - 1);
	while (x->keys[j]) {
		if (strcmp(x->keys[j], key) == 0)
			return;
		j = (j + 1) & (x->cap - 1);
	}
	x->keys[j] = xstrdup(key);
	x->items[j] = item;
	x->n++;
}

/* index_get - the item of key, or NULL. */
static cJSON *index_get(const struct emu_index *x, const char *key)
{
	if (!x->cap)
		return NULL;
	size_t j = fnv1a64(key, FNV1A64_INIT) & (x->cap - 1);
	while (x->keys[j]) {
		if (strcmp(x->keys[j], key) == 0)
			return x->items[j];
		j = (j + 1) & (x->cap - 1);
	}
	return NULL;
}

/* index_of - the index of a field in the list, rebuilt when invalid; NULL for fields
 * that are not indexed. */
static struct emu_index *index_of(struct emu_list *l, const char *field)
{
	struct emu_index *x = strcmp(field, "id") == 0     ? &l->by_id
	                      : strcmp(field, "slug") == 0 ? &l->by_slug
	                                                   : NULL;
	if (x && !x->valid) {
		index_clear(x);
		for (size_t i = 0; i < l->n; i++) {
			const char *v = json_str(l->items[i], field);
			if (v)
				index_put(x, v, l->items[i]);
		}
		x->valid = 1;
	}
	return x;
}

/* ends_key - a connection's key in by_ends: "<length of wid>:<wid><sid>", which no
 * other pair of ids spells. */
static void ends_key(const char *wid, const char *sid, struct strbuf *out)
{
	sb_reset(out);
	sb_addf(out, "%zu:%s%s", strlen(wid), wid, sid);
}

/* ends_put - item into by_ends, when it has both ends. */
static void ends_put(struct emu_index *x, cJSON *item, struct strbuf *key)
{
	const char *wid = json_str(item, "warehouseId"), *sid = json_str(item, "sourceId");
	if (!wid || !sid)
		return;
	ends_key(wid, sid, key);
	index_put(x, key->buf, item);
}

/* ends_index - the list's by_ends index, rebuilt when invalid. */
static struct emu_index *ends_index(struct emu_list *l)
{
	struct emu_index *x = &l->by_ends;
	if (!x->valid) {
		struct strbuf key = STRBUF_INIT;
		index_clear(x);
		for (size_t i = 0; i < l->n; i++)
			ends_put(x, l->items[i], &key);
		sb_release(&key);
		x->valid = 1;
	}
	return x;
}

/* state_touch - invalidates c's lookup indexes. */
void state_touch(struct emu_state *st, enum emu_coll c)
{
	st->coll[c].by_id.valid = 0;
	st->coll[c].by_slug.valid = 0;
	st->coll[c].by_ends.valid = 0;
}

/* state_add - appends item to collection c; the state owns it from now on. */
void state_add(struct emu_state *st, enum emu_coll c, cJSON *item)
{
	struct emu_list *l = &st->coll[c];
	list_push(l, item);
	const char *id = json_str(item, "id"), *slug = json_str(item, "slug");
	if (l->by_id.valid && id)
		index_put(&l->by_id, id, item);
	if (l->by_slug.valid && slug)
		index_put(&l->by_slug, slug, item);
	if (l->by_ends.valid) {
		struct strbuf key = STRBUF_INIT;
		ends_put(&l->by_ends, item, &key);
		sb_release(&key);
	}
}

/* item_position - where item is in the list (it is there). */
static size_t item_position(const struct emu_list *l, const cJSON *item)
{
	size_t i = 0;
	while (i < l->n && l->items[i] != item)
		i++;
	return i;
}

/* state_find - by a hash index for "id" and "slug", else a linear scan. */
cJSON *state_find(const struct emu_state *st, enum emu_coll c, const char *field, const char *value,
                  size_t *index)
{
	/* the indexes are a cache: rebuilding one does not change the state's contents */
	struct emu_list *l = (struct emu_list *)&st->coll[c];
	struct emu_index *x = index_of(l, field);
	if (x) {
		cJSON *item = index_get(x, value);
		if (item && index)
			*index = item_position(l, item);
		return item;
	}
	for (size_t i = 0; i < l->n; i++) {
		const char *v = json_str(l->items[i], field);
		if (v && strcmp(v, value) == 0) {
			if (index)
				*index = i;
			return l->items[i];
		}
	}
	return NULL;
}

/* state_find_connection - by the by_ends hash index of the connections. */
cJSON *state_find_connection(const struct emu_state *st, const char *wid, const char *sid,
                             size_t *index)
{
	/* as in state_find, the index is a cache */
	struct emu_list *l = (struct emu_list *)&st->coll[C_CONNECTIONS];
	struct strbuf key = STRBUF_INIT;
	ends_key(wid, sid, &key);
	cJSON *item = index_get(ends_index(l), key.buf);
	sb_release(&key);
	if (item && index)
		*index = item_position(l, item);
	return item;
}

/* state_remove_at - frees item i, keeping the order of the others. */
void state_remove_at(struct emu_state *st, enum emu_coll c, size_t i)
{
	struct emu_list *l = &st->coll[c];
	state_touch(st, c);
	cJSON_Delete(l->items[i]);
	memmove(l->items + i, l->items + i + 1, (l->n - i - 1) * sizeof(*l->items));
	l->n--;
}

/* state_remove_where - removes every item of c whose field equals value. */
size_t state_remove_where(struct emu_state *st, enum emu_coll c, const char *field,
                          const char *value)
{
	struct emu_list *l = &st->coll[c];
	size_t kept = 0, removed = 0;
	for (size_t i = 0; i < l->n; i++) {
		const char *v = json_str(l->items[i], field);
		if (v && strcmp(v, value) == 0) {
			cJSON_Delete(l->items[i]);
			removed++;
		} else {
			l->items[kept++] = l->items[i];
		}
	}
	l->n = kept;
	if (removed)
		state_touch(st, c);
	return removed;
}

/* state_new_id - "<prefix>_<counter><4 hex>": ordered by creation, unique, and the same
 * for the same seed and history. */
void state_new_id(struct emu_state *st, enum emu_coll c, const char *prefix, char out[40])
{
	unsigned n = ++st->coll[c].next_id;
	uint64_t h = mix64(st->seed ^ fnv1a64(prefix, FNV1A64_INIT) ^ n);
	snprintf(out, 40, "%s_%04u%04x", prefix, n, (unsigned)(h & 0xffff));
}

/* logos - the logos object every catalog entry carries. */
static cJSON *logos(const char *id)
{
	char url[96];
	cJSON *o = cJSON_CreateObject();
	snprintf(url, sizeof(url), "https://cdn.filepicker.io/api/file/%s", id);
	cJSON_AddStringToObject(o, "default", url);
	snprintf(url, sizeof(url), "https://cdn.filepicker.io/api/file/%s-mark", id);
	cJSON_AddStringToObject(o, "mark", url);
	return o;
}

/* catalog_entry_common - id, slug, name, description, logos, options. */
static cJSON *catalog_entry_common(const char *kind, const struct emu_seed *e)
{
	char id[16], text[160];
	if (!e->id)
		metadata_id(kind, e->slug, id);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", e->id ? e->id : id);
	cJSON_AddStringToObject(o, "slug", e->slug);
	cJSON_AddStringToObject(o, "name", e->name);
	snprintf(text, sizeof(text), "%s %s for Segment workspaces.", e->name, kind);
	cJSON_AddStringToObject(o, "description", text);
	cJSON_AddItemToObject(o, "logos", logos(e->id ? e->id : id));
	cJSON_AddItemToObject(o, "options", cJSON_CreateArray());
	return o;
}

/* add_categories - the entry's categories array. */
static void add_categories(cJSON *o, const struct emu_seed *e)
{
	cJSON *cats = cJSON_AddArrayToObject(o, "categories");
	for (size_t i = 0; e->categories[i]; i++)
		cJSON_AddItemToArray(cats, cJSON_CreateString(e->categories[i]));
}

/* source_metadata - a Get Sources Catalog item (SourceMetadataV1, whose status 73.2.0
 * requires: the seeded sources are all public). */
static cJSON *source_metadata(const struct emu_seed *e)
{
	cJSON *o = catalog_entry_common("source", e);
	add_categories(o, e);
	cJSON_AddBoolToObject(o, "isCloudEventSource", e->cloud);
	cJSON_AddStringToObject(o, "status", "PUBLIC");
	return o;
}

/* destination_metadata - a Get Destination Catalog item. */
static cJSON *destination_metadata(const struct emu_seed *e)
{
	char web[128];
	cJSON *o = catalog_entry_common("destination", e);
	add_categories(o, e);
	cJSON_AddStringToObject(o, "status", "PUBLIC");
	cJSON_AddItemToObject(o, "previousNames", cJSON_CreateStringArray(&e->name, 1));
	snprintf(web, sizeof(web), "https://www.%s.com", e->slug);
	cJSON_AddStringToObject(o, "website", e->website ? e->website : web);
	cJSON_AddItemToObject(o, "components", cJSON_CreateArray());
	cJSON *methods = cJSON_AddObjectToObject(o, "supportedMethods");
	static const char *const calls[] = {"track", "pageview", "identify", "group", "alias"};
	for (size_t i = 0; i < ARRAY_SIZE(calls); i++)
		cJSON_AddBoolToObject(methods, calls[i], 1);
	cJSON *platforms = cJSON_AddObjectToObject(o, "supportedPlatforms");
	cJSON_AddBoolToObject(platforms, "browser", 1);
	cJSON_AddBoolToObject(platforms, "server", 1);
	cJSON_AddBoolToObject(platforms, "mobile", 1);
	cJSON_AddItemToObject(o, "supportedFeatures", cJSON_CreateObject());
	cJSON_AddItemToObject(o, "actions", cJSON_CreateArray());
	cJSON_AddItemToObject(o, "presets", cJSON_CreateArray());
	cJSON_AddBoolToObject(o, "partnerOwned", 0);
	return o;
}

/* warehouse_metadata - a Get Warehouses Catalog item (WarehouseMetadataV1 has no
 * categories). */
static cJSON *warehouse_metadata(const struct emu_seed *e)
{
	cJSON *o = catalog_entry_common("warehouse", e);
	cJSON *opts = cJSON_GetObjectItemCaseSensitive(o, "options");
	cJSON *host = cJSON_CreateObject();
	cJSON_AddStringToObject(host, "name", "hostname");
	cJSON_AddBoolToObject(host, "required", 1);
	cJSON_AddStringToObject(host, "type", "string");
	cJSON_AddStringToObject(host, "description", "Where the warehouse accepts connections.");
	cJSON_AddItemToArray(opts, host);
	return o;
}

typedef cJSON *(*make_meta_fn)(const struct emu_seed *e);

/* real_seed - the real entry of catalog c with this name (any case) not yet used. */
static const struct emu_seed *real_seed(enum emu_coll c, const char *name, const char *used)
{
	for (size_t i = 0; i < emu_seeds_count; i++)
		if (emu_seeds[i].coll == c && !used[i] && strcasecmp(emu_seeds[i].name, name) == 0)
			return &emu_seeds[i];
	return NULL;
}

/* own_seed - an emulator-made entry: the slug of its name, one category; cloud event
 * sources are those that are not a website, app or server library. */
static struct emu_seed own_seed(enum emu_coll c, const char *name, const char *category, char *slug,
                                size_t size)
{
	struct emu_seed e = {.coll = c, .name = name, .slug = slug, .categories = {category}};
	slugify(name, slug, size);
	e.cloud =
	    strcmp(category, "Website") && strcmp(category, "Mobile") && strcmp(category, "Server");
	return e;
}

/* seed_catalog - the named entries (a real one in place of a name it has), the real
 * entries left, then with variants set seeded variants ("Amplitude Cloud") until size
 * entries exist; slugs stay unique. */
static void seed_catalog(struct emu_state *st, enum emu_coll c, const struct named *names,
                         size_t nnames, size_t size, int variants, make_meta_fn make)
{
	char name[128], slug[128];
	char *used = xcalloc(emu_seeds_count + 1, 1);
	for (size_t i = 0; i < nnames && st->coll[c].n < size; i++) {
		const struct emu_seed *real = real_seed(c, names[i].name, used);
		struct emu_seed own =
		    own_seed(c, names[i].name, names[i].category, slug, sizeof(slug));
		if (real)
			used[real - emu_seeds] = 1;
		state_add(st, c, make(real ? real : &own));
	}
	for (size_t i = 0; i < emu_seeds_count && st->coll[c].n < size; i++) {
		if (emu_seeds[i].coll == c && !used[i] &&
		    !state_find(st, c, "slug", emu_seeds[i].slug, NULL))
			state_add(st, c, make(&emu_seeds[i]));
	}
	free(used);
	for (uint64_t k = 0; variants && st->coll[c].n < size; k++) {
		const struct named *base = &names[mix64(st->seed * 31 + k) % nnames];
		const char *suffix = variant_suffixes[k % ARRAY_SIZE(variant_suffixes)];
		snprintf(name, sizeof(name), "%s %s", base->name, suffix);
		slugify(name, slug, sizeof(slug));
		if (state_find(st, c, "slug", slug, NULL)) {
			snprintf(name, sizeof(name), "%s %s %u", base->name, suffix,
			         (unsigned)(k + 2));
			slugify(name, slug, sizeof(slug));
			if (state_find(st, c, "slug", slug, NULL))
				continue;
		}
		struct emu_seed own = own_seed(c, name, base->category, slug, sizeof(slug));
		state_add(st, c, make(&own));
	}
}

/* seed_warehouses - wh_1..wh_3 on Snowflake, BigQuery and Redshift, so connection
 * operations have something to connect to. */
static void seed_warehouses(struct emu_state *st)
{
	char id[16], label[64];
	for (size_t i = 0; i < 3 && i < st->coll[C_WAREHOUSES_CATALOG].n; i++) {
		const cJSON *meta = st->coll[C_WAREHOUSES_CATALOG].items[i];
		cJSON *w = cJSON_CreateObject();
		snprintf(id, sizeof(id), "wh_%zu", i + 1);
		cJSON_AddStringToObject(w, "id", id);
		cJSON_AddStringToObject(w, "workspaceId", EMU_WORKSPACE_ID);
		cJSON_AddBoolToObject(w, "enabled", 1);
		cJSON_AddItemToObject(w, "metadata", cJSON_Duplicate(meta, 1));
		cJSON *settings = cJSON_AddObjectToObject(w, "settings");
		snprintf(label, sizeof(label), "%s Production", json_str(meta, "name"));
		cJSON_AddStringToObject(settings, "name", label);
		const char *mslug = json_str(meta, "slug");
		snprintf(label, sizeof(label), "%s.example.com", mslug ? mslug : "warehouse");
		cJSON_AddStringToObject(settings, "hostname", label);
		state_add(st, C_WAREHOUSES, w);
	}
}

/* seed_users - user_1..user_N with names drawn from the seed. */
static void seed_users(struct emu_state *st, size_t users)
{
	char id[32], name[64], email[96];
	for (size_t i = 1; i <= users; i++) {
		uint64_t h = mix64(st->seed * 1000003 + i);
		const char *first = first_names[h % ARRAY_SIZE(first_names)];
		const char *last = last_names[(h >> 16) % ARRAY_SIZE(last_names)];
		snprintf(id, sizeof(id), "user_%zu", i);
		snprintf(name, sizeof(name), "%s %s", first, last);
		snprintf(email, sizeof(email), "%s.%s.%zu@example.com", first, last, i);
		for (char *p = email; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		cJSON *u = cJSON_CreateObject();
		cJSON_AddStringToObject(u, "id", id);
		cJSON_AddStringToObject(u, "name", name);
		cJSON_AddStringToObject(u, "email", email);
		cJSON *perms = cJSON_AddArrayToObject(u, "permissions");
		cJSON *perm = cJSON_CreateObject();
		cJSON_AddStringToObject(perm, "roleId", i == 1 ? "role_owner" : "role_member");
		cJSON_AddStringToObject(perm, "roleName",
		                        i == 1 ? "Workspace Owner" : "Workspace Member");
		cJSON *res = cJSON_AddArrayToObject(perm, "resources");
		cJSON *ws = cJSON_CreateObject();
		cJSON_AddStringToObject(ws, "id", EMU_WORKSPACE_ID);
		cJSON_AddStringToObject(ws, "type", "WORKSPACE");
		cJSON_AddItemToArray(res, ws);
		cJSON_AddItemToArray(perms, perm);
		state_add(st, C_USERS, u);
	}
}

/* state_init - the seeded workspace: catalogs, three warehouses, users. */
void state_init(struct emu_state *st, uint64_t seed, size_t catalog_size, size_t users)
{
	memset(st, 0, sizeof(*st));
	st->seed = seed;
	seed_catalog(st, C_SOURCES_CATALOG, source_names, ARRAY_SIZE(source_names), catalog_size, 1,
	             source_metadata);
	seed_catalog(st, C_DESTINATIONS_CATALOG, destination_names, ARRAY_SIZE(destination_names),
	             catalog_size, 1, destination_metadata);
	/* the warehouses catalog is small, and all of it: no variants */
	seed_catalog(st, C_WAREHOUSES_CATALOG, warehouse_names, ARRAY_SIZE(warehouse_names),
	             ARRAY_SIZE(warehouse_names) + emu_seeds_count, 0, warehouse_metadata);
	seed_warehouses(st);
	seed_users(st, users);
}

/* state_release - frees every item of every collection. */
void state_release(struct emu_state *st)
{
	for (int c = 0; c < C_COUNT; c++) {
		struct emu_list *l = &st->coll[c];
		for (size_t i = 0; i < l->n; i++)
			cJSON_Delete(l->items[i]);
		free(l->items);
		index_clear(&l->by_id);
		index_clear(&l->by_slug);
		index_clear(&l->by_ends);
	}
	memset(st, 0, sizeof(*st));
}

/* state_dump - every collection by name, deep-copied. */
cJSON *state_dump(const struct emu_state *st)
{
	cJSON *o = cJSON_CreateObject();
	for (int c = 0; c < C_COUNT; c++) {
		cJSON *arr = cJSON_AddArrayToObject(o, coll_names[c]);
		const struct emu_list *l = &st->coll[c];
		for (size_t i = 0; i < l->n; i++)
			cJSON_AddItemToArray(arr, cJSON_Duplicate(l->items[i], 1));
	}
	return o;
}
