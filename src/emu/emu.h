/* emu.h - segspool-emu, the bundled Segment Public API emulator: shared declarations.
 *
 * One process, MHD with a thread per connection (so delays and hangs can just sleep),
 * and one mutex (struct emu.lock) around everything mutable: state, stats, settings,
 * rate buckets and the fault PRNG. Routing is catalog_match(); there is no route table
 * here, only operationId -> handler (emu_ops.c).
 */
#ifndef SEGSPOOL_EMU_H
#define SEGSPOOL_EMU_H

#include <threads.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "catalog.h"
#include "strbuf.h"

#define EMU_WORKSPACE_ID "ws_emu0001"
#define EMU_MAX_BODY (1024 * 1024)
#define EMU_DEFAULT_COUNT 200
#define EMU_MAX_COUNT 1000

/* --- settings: what the CLI sets and POST /__emu/config changes --------------------- */

struct emu_rate {
	int on;
	double capacity;   /* N */
	int64_t period_ms; /* refilled at N per period, continuously */
};

struct emu_settings {
	double fail_rate, reset_rate, reset_before_rate, hang_rate;
	double trickle_rate, truncate_rate, nonjson_rate;
	int fail_status;
	int64_t delay_ms, hang_ms;
	struct emu_rate rate;
	int endpoint_limits;
	int log;
};

void settings_defaults(struct emu_settings *s);
int settings_known(const char *name);
/* settings_set - one setting by name ("fail_rate" or "fail-rate") from its text form;
 * returns 0, or -1 with the reason in err. */
int settings_set(struct emu_settings *s, const char *name, const char *value, struct strbuf *err);
/* settings_apply_json - every key of obj, all or nothing; -1 with the reason in err. */
int settings_apply_json(struct emu_settings *s, const cJSON *obj, struct strbuf *err);
cJSON *settings_to_json(const struct emu_settings *s);
int parse_rate(const char *text, struct emu_rate *out);

/* --- state ---------------------------------------------------------------------- */

enum emu_coll {
	C_SOURCES,
	C_DESTINATIONS,
	C_WAREHOUSES,
	C_CONNECTIONS, /* {warehouseId, sourceId} */
	C_FUNCTIONS,
	C_TRANSFORMATIONS,
	C_SUBSCRIPTIONS,
	C_USERS,
	C_INVITES,
	C_SOURCES_CATALOG,
	C_DESTINATIONS_CATALOG,
	C_WAREHOUSES_CATALOG,
	C_COUNT
};

/* emu_index - string key -> item, for "id" and "slug" lookups and a connection's two ends.
 * Rebuilt lazily: adds keep it valid, removals and updates (state_touch) invalidate it. */
struct emu_index {
	char **keys;
	cJSON **items;
	size_t cap, n;
	int valid;
};

struct emu_list {
	cJSON **items; /* in creation order: the order lists are paged in */
	size_t n, alloc;
	unsigned next_id;
	struct emu_index by_id, by_slug;
	struct emu_index by_ends; /* connections: warehouseId and sourceId together */
};

struct emu_state {
	struct emu_list coll[C_COUNT];
	uint64_t seed;
};

/* emu_seed - a catalog entry: the real ones (emu_seed_table.c, generated from
 * data/emu_seeds.json) carry an id; the emulator's own get one from their slug. */
struct emu_seed {
	enum emu_coll coll;
	const char *id; /* NULL: derived from the slug */
	const char *slug, *name;
	const char *categories[5]; /* NULL-terminated: at most 4 */
	int cloud;                 /* sources: isCloudEventSource */
	const char *website;       /* destinations; NULL: derived from the slug */
};

extern const struct emu_seed emu_seeds[];
extern const size_t emu_seeds_count;

void state_init(struct emu_state *st, uint64_t seed, size_t catalog_size, size_t users);
void state_release(struct emu_state *st);
const char *coll_name(enum emu_coll c);
/* state_find - the first item whose string field equals value; *index set if non-NULL. */
cJSON *state_find(const struct emu_state *st, enum emu_coll c, const char *field, const char *value,
                  size_t *index);
/* state_find_connection - the connection of warehouse wid and source sid; *index set if
 * non-NULL. */
cJSON *state_find_connection(const struct emu_state *st, const char *wid, const char *sid,
                             size_t *index);
void state_add(struct emu_state *st, enum emu_coll c, cJSON *item);
/* state_touch - an item of c changed its id or slug: the lookup indexes are rebuilt. */
void state_touch(struct emu_state *st, enum emu_coll c);
void state_remove_at(struct emu_state *st, enum emu_coll c, size_t i);
/* state_remove_where - removes every item whose field equals value; returns how many. */
size_t state_remove_where(struct emu_state *st, enum emu_coll c, const char *field,
                          const char *value);
/* state_new_id - "src_0001abcd": a per-collection counter and a seeded hash. */
void state_new_id(struct emu_state *st, enum emu_coll c, const char *prefix, char out[40]);
cJSON *state_dump(const struct emu_state *st);

/* --- small helpers shared by the modules ----------------------------------------- */

uint64_t mix64(uint64_t x);
double prng_uniform(uint64_t *state);
const char *json_str(const cJSON *obj, const char *key);
/* format_http_date - IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT". */
void format_http_date(int64_t ms, char out[40]);

/* --- counters: "<op> <resource key>" -> count ----------------------------------- */

struct countmap {
	char **keys;
	uint64_t *counts;
	size_t n, cap;
};

void countmap_add(struct countmap *m, const char *key, uint64_t by);
void countmap_clear(struct countmap *m);
cJSON *countmap_to_json(const struct countmap *m);

/* --- rate limits ------------------------------------------------------------------ */

struct emu_bucket {
	uint64_t key; /* hash of (token, group): the token itself is not kept */
	double tokens;
	int64_t updated_ms;
};

struct emu_buckets {
	struct emu_bucket *b;
	size_t n, alloc;
};

/* What a request saw of its bucket, for the X-RateLimit-* headers and a 429 body. */
struct rate_view {
	int shown; /* headers are sent only when some limit applies */
	long consumed, remaining;
	int64_t reset_wall_ms;
	int64_t ms_before_next; /* > 0 when limited */
	long capacity;
};

/* limits_admit - takes one token from every bucket that applies (the token's own, and
 * with endpoint limits the operation's group), or none when any is empty: returns 1 when
 * limited. */
int limits_admit(struct emu_buckets *bk, const struct emu_settings *s, const char *token,
                 const struct op_def *op, int64_t mono_ms, int64_t wall_ms, struct rate_view *v);
void limits_release(struct emu_buckets *bk);

/* --- the server ------------------------------------------------------------------- */

enum emu_fault {
	F_RESET_BEFORE,
	F_FAIL,
	F_NONJSON,
	F_HANG,
	F_DELAY,
	F_RESET,
	F_TRUNCATE,
	F_TRICKLE,
	F_COUNT
};

struct emu_stats {
	uint64_t requests, rate_limited;
	uint64_t by_status[600];
	uint64_t *by_op; /* indexed like the catalog */
	uint64_t faults[F_COUNT];
	struct countmap mutations; /* mutation requests, whatever their answer */
	struct countmap applied;   /* mutations that changed the state (a 2xx, not a no-op) */
};

struct emu {
	mtx_t lock;
	struct emu_settings set;
	struct emu_state state;
	struct emu_stats stats;
	struct emu_buckets buckets;
	uint64_t prng;
	char *token; /* --token, or NULL: any bearer token is accepted */
	atomic_int stopping;
	int started; /* listening: MHD's messages are quiet from then on without --log */
};

struct emu_page {
	size_t offset, count;
};

/* One API call as the handlers see it; the handler fills status and out. */
struct emu_call {
	struct emu *emu;
	const struct op_def *op;
	cJSON *in;   /* path and query parameters by name, already validated */
	cJSON *body; /* the request's JSON object, or NULL */
	struct emu_page page;
	struct strbuf mutation; /* resource key a mutation targets */
	int unchanged;          /* a 2xx that changed nothing (connecting what is connected) */
	int status;
	cJSON *out; /* {"data":...} or {"errors":[...]} */
};

/* call_fail - an error envelope {"errors":[{type, message, field?, status}]} as out. */
void call_fail(struct emu_call *c, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
cJSON *error_envelope(int status, const char *field, const char *message);
const char *error_type(int status);
/* call_data - out becomes {"data": {}} with the op's success status; returns data. */
cJSON *call_data(struct emu_call *c);

/* --- the query string and parameters (emu_params.c) -------------------------------- */

struct qarg {
	const char *key, *value;
};

struct emu_query {
	struct qarg *args;
	size_t n, alloc;
};

void query_add(struct emu_query *q, const char *key, const char *value);
void query_release(struct emu_query *q);
/* call_read_params - path params (from op->path and path), query params and the body
 * checked against op's param list into c->in, c->page; -1 after call_fail. */
int call_read_params(struct emu_call *c, const char *path, const struct emu_query *q);
void cursor_encode(size_t offset, char out[32]);
int cursor_decode(const char *cursor, size_t *offset);
/* page_add - data.pagination for a page at c->page over total entries. */
void page_add(cJSON *data, const struct emu_page *page, size_t total);

/* --- operations (emu_ops.c, emu_volume.c) ------------------------------------------ */

/* ops_check - every catalog operation has a handler; -1 naming the first one missing. */
int ops_check(void);
void ops_dispatch(struct emu_call *c);
/* ops_mutation_key - "<op> <what it targets>" for the mutation counters. */
void ops_mutation_key(const struct emu_call *c, struct strbuf *out);
void op_events_volume(struct emu_call *c);

/* --- server (emu_server.c) ----------------------------------------------------------- */

struct MHD_Daemon;
struct MHD_Daemon *server_start(struct emu *e, uint16_t port, uint16_t *bound);
void server_stop(struct MHD_Daemon *d);
void emu_init(struct emu *e, uint64_t seed, size_t catalog_size, size_t users);
void emu_release(struct emu *e);

#endif
