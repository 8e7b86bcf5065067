/* emu_server.c - the HTTP side: MHD callbacks, auth, media types, rate limits, faults,
 * the admin endpoints under /__emu/, and the counters they report.
 *
 * A request is handled in three MHD calls: the first (headers only) draws the faults,
 * so a reset-before can drop the connection before the body is read; the middle ones
 * collect the body; the last one answers. State is touched only under emu.lock, and
 * sleeping (delays, hangs, trickles) happens outside it.
 */
#include "emu.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "util.h"

#define SLEEP_SLICE_MS 50
#define TRICKLE_EVERY_MS 100

/* The per-request context MHD keeps for us between calls. */
struct conn_req {
	int admin;
	int fault; /* the one exclusive fault drawn (F_*), or -1 */
	int hang;
	int too_large;
	struct strbuf body;
};

/* The answer, built under the lock and sent after it. */
struct answer {
	int status;
	char *body;
	size_t len;
	const char *content_type;
	char media[64];
	struct rate_view rate;
};

/* A body sent slowly (trickle) or cut short (truncate). */
struct slow_body {
	struct emu *emu;
	char *buf;
	size_t len, cut, chunk;
	int trickle;
};

/* emu_init - the emulator with its seeded state and default settings. */
void emu_init(struct emu *e, uint64_t seed, size_t catalog_size, size_t users)
{
	memset(e, 0, sizeof(*e));
	mtx_init(&e->lock, mtx_plain);
	settings_defaults(&e->set);
	state_init(&e->state, seed, catalog_size, users);
	e->stats.by_op = xcalloc(catalog_count() + 1, sizeof(*e->stats.by_op));
	e->prng = mix64(seed ^ 0x5eedf00dULL);
	atomic_init(&e->stopping, 0);
}

/* emu_release - frees everything emu_init and the requests made. */
void emu_release(struct emu *e)
{
	state_release(&e->state);
	countmap_clear(&e->stats.mutations);
	countmap_clear(&e->stats.applied);
	free(e->stats.by_op);
	limits_release(&e->buckets);
	free(e->token);
	mtx_destroy(&e->lock);
}

/* sleep_ms - sleeps in slices so that SIGTERM (stopping) ends the wait promptly. */
static void sleep_ms(struct emu *e, int64_t ms)
{
	while (ms > 0 && !atomic_load(&e->stopping)) {
		int64_t slice = ms < SLEEP_SLICE_MS ? ms : SLEEP_SLICE_MS;
		struct timespec ts = {(time_t)(slice / 1000), (long)(slice % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

/* draw - one draw against probability p; no draw at all when p is 0. */
static int draw(struct emu *e, double p)
{
	return p > 0 && prng_uniform(&e->prng) < p;
}

/* draw_faults - the request's fate, in the documented order; the first exclusive fault
 * that hits wins. Called with the headers, before the body is read. */
static void draw_faults(struct emu *e, struct conn_req *r)
{
	static const enum emu_fault order[] = {F_RESET_BEFORE, F_FAIL,     F_NONJSON,
	                                       F_RESET,        F_TRUNCATE, F_TRICKLE};
	mtx_lock(&e->lock);
	const struct emu_settings *s = &e->set;
	const double rates[] = {s->reset_before_rate, s->fail_rate,     s->nonjson_rate,
	                        s->reset_rate,        s->truncate_rate, s->trickle_rate};
	for (size_t i = 0; i < ARRAY_SIZE(order) && r->fault < 0; i++)
		if (draw(e, rates[i]))
			r->fault = (int)order[i];
	r->hang = draw(e, s->hang_rate);
	if (r->fault >= 0)
		e->stats.faults[r->fault]++;
	if (r->hang)
		e->stats.faults[F_HANG]++;
	if (r->fault == F_RESET_BEFORE)
		e->stats.requests++;
	mtx_unlock(&e->lock);
}

/* --- checks on the request ------------------------------------------------------------ */

/* token_equal - compares in time that depends on the lengths only. */
static int token_equal(const char *given, const char *want)
{
	size_t lg = strlen(given), lw = strlen(want);
	volatile unsigned char diff = (unsigned char)(lg != lw);
	for (size_t i = 0; i < lw; i++)
		diff |= (unsigned char)((i < lg ? given[i] : 0) ^ want[i]);
	return diff == 0;
}

/* bearer_token - the X of "Authorization: Bearer X", or NULL when malformed. */
static const char *bearer_token(const char *auth)
{
	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
		return NULL;
	const char *t = auth + 7;
	while (*t == ' ')
		t++;
	if (!*t || strpbrk(t, " \t\r\n"))
		return NULL;
	return t;
}

/* media_type_ok - an Accept range or Content-Type the API serves; with need set, only
 * exactly application/vnd.segment.<need>+json or application/json, which the API serves
 * on every endpoint (at the endpoint's most stable version) and the official SDKs send. */
static int media_type_ok(const char *mt, size_t n, const char *need)
{
	static const char *const ok[] = {"*/*",
	                                 "application/*",
	                                 "application/json",
	                                 "application/vnd.segment.v1+json",
	                                 "application/vnd.segment.v1beta+json",
	                                 "application/vnd.segment.v1alpha+json"};
	char want[64];
	if (need) {
		snprintf(want, sizeof(want), "application/vnd.segment.%s+json", need);
		if (strlen(ok[2]) == n && strncasecmp(mt, ok[2], n) == 0)
			return 1;
		return strlen(want) == n && strncasecmp(mt, want, n) == 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		if (strlen(ok[i]) == n && strncasecmp(mt, ok[i], n) == 0)
			return 1;
	return 0;
}

/* header_accepts - some media range of a comma-separated header passes media_type_ok. */
static int header_accepts(const char *header, const char *need)
{
	const char *p = header;
	while (*p) {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, ",;");
		size_t len = n;
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len && media_type_ok(p, len, need))
			return 1;
		p += n;
		p += strcspn(p, ",");
	}
	return 0;
}

/* check_media - 406 for an Accept the op is not served at (v1alpha ops demand v1alpha
 * or plain JSON), 415 for a body that is not JSON. */
static int check_media(struct emu_call *c, struct MHD_Connection *conn, size_t body_len)
{
	const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept");
	const char *ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
	const char *need = strcmp(c->op->version, "v1alpha") == 0 ? "v1alpha" : NULL;
	if ((need && !accept) || (accept && !header_accepts(accept, need))) {
		call_fail(c, 406, NULL,
		          "%s is served as application/vnd.segment.%s+json or "
		          "application/json: send one of them in Accept",
		          c->op->operation_id, c->op->version);
		return -1;
	}
	if (body_len && ctype && !header_accepts(ctype, NULL)) {
		call_fail(c, 415, NULL, "content type %s is not supported: send JSON", ctype);
		return -1;
	}
	return 0;
}

/* parse_body - the JSON body into c->body; 400 when it does not parse. */
static int parse_body(struct emu_call *c, const struct strbuf *body)
{
	if (!body->len)
		return 0;
	c->body = cJSON_ParseWithLength(body->buf, body->len);
	if (!c->body) {
		call_fail(c, 400, NULL, "request body is not valid JSON");
		return -1;
	}
	if (!cJSON_IsObject(c->body)) {
		call_fail(c, 422, NULL, "request body must be a JSON object");
		return -1;
	}
	return 0;
}

/* collect_arg - MHD's query iterator: each key=value into the emu_query. */
static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
	(void)kind;
	query_add(cls, key, value);
	return MHD_YES;
}

/* op_index - the operation's place in the catalog, for by_operation. */
static size_t op_index(const struct op_def *op)
{
	size_t n = catalog_count();
	for (size_t i = 0; i < n; i++)
		if (catalog_at(i) == op)
			return i;
	return n;
}

/* rate_limited - the 429 envelope with data {msBeforeNext, remainingPoints, consumedPoints}. */
static void rate_limited(struct emu_call *c, const struct rate_view *v)
{
	call_fail(c, 429, NULL, "rate limit exceeded: retry in %lld ms",
	          (long long)v->ms_before_next);
	cJSON *err = cJSON_GetArrayItem(cJSON_GetObjectItem(c->out, "errors"), 0);
	cJSON *data = cJSON_AddObjectToObject(err, "data");
	cJSON_AddNumberToObject(data, "msBeforeNext", (double)v->ms_before_next);
	cJSON_AddNumberToObject(data, "remainingPoints", 0);
	cJSON_AddNumberToObject(data, "consumedPoints", (double)v->capacity);
}

/* run_call - auth, route, media, rate limit, params, handler; the lock is held. */
static void run_call(struct emu *e, struct MHD_Connection *conn, const char *url,
                     const char *method, struct conn_req *r, struct emu_call *c, struct answer *a)
{
	const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	const char *token = bearer_token(auth);
	if (!token || (e->token && !token_equal(token, e->token))) {
		call_fail(c, 401, NULL,
		          token ? "the bearer token is not valid"
		                : "missing or malformed Authorization: Bearer token");
		return;
	}
	c->op = catalog_match(method, url);
	if (c->op && c->op->is_raw)
		c->op = NULL;
	if (!c->op) {
		call_fail(c, 404, NULL, "no operation serves %s %s", method, url);
		return;
	}
	snprintf(a->media, sizeof(a->media), "application/vnd.segment.%s+json", c->op->version);
	e->stats.by_op[op_index(c->op)]++;
	if (check_media(c, conn, r->body.len))
		return;
	if (limits_admit(&e->buckets, &e->set, token, c->op, clock_mono_ms(), clock_wall_ms(),
	                 &a->rate)) {
		e->stats.rate_limited++;
		rate_limited(c, &a->rate);
		return;
	}
	if (r->too_large) {
		call_fail(c, 413, NULL, "request body is larger than %d bytes", EMU_MAX_BODY);
		return;
	}
	struct emu_query q = {0};
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, &q);
	int bad = parse_body(c, &r->body) || call_read_params(c, url, &q);
	if (c->op->mutates) {
		ops_mutation_key(c, &c->mutation);
		countmap_add(&e->stats.mutations, c->mutation.buf, 1);
	}
	if (!bad)
		ops_dispatch(c);
	if (c->op->mutates && !bad && c->status >= 200 && c->status <= 299 && !c->unchanged)
		countmap_add(&e->stats.applied, c->mutation.buf, 1);
	query_release(&q);
}

/* answer_api - the API call's answer, printed; the lock is taken here. */
static void answer_api(struct emu *e, struct MHD_Connection *conn, const char *url,
                       const char *method, struct conn_req *r, struct answer *a)
{
	struct emu_call c = {.emu = e, .mutation = STRBUF_INIT};
	snprintf(a->media, sizeof(a->media), "application/vnd.segment.v1+json");
	a->content_type = a->media;
	mtx_lock(&e->lock);
	run_call(e, conn, url, method, r, &c, a);
	if (!c.out)
		call_fail(&c, 500, NULL, "the emulator produced no answer");
	a->status = c.status;
	e->stats.requests++;
	e->stats.by_status[c.status]++;
	mtx_unlock(&e->lock);
	a->body = cJSON_PrintUnformatted(c.out);
	a->len = strlen(a->body);
	cJSON_Delete(c.out);
	cJSON_Delete(c.in);
	cJSON_Delete(c.body);
	sb_release(&c.mutation);
}

/* answer_fault - a --fail-status envelope or --nonjson-rate HTML, nothing applied. */
static void answer_fault(struct emu *e, int fault, struct answer *a)
{
	mtx_lock(&e->lock);
	a->status = fault == F_FAIL ? e->set.fail_status : 502;
	e->stats.requests++;
	e->stats.by_status[a->status]++;
	mtx_unlock(&e->lock);
	if (fault == F_FAIL) {
		cJSON *env =
		    error_envelope(a->status, NULL, "the service is unavailable, try again");
		a->body = cJSON_PrintUnformatted(env);
		cJSON_Delete(env);
		snprintf(a->media, sizeof(a->media), "application/vnd.segment.v1+json");
		a->content_type = a->media;
	} else {
		a->body = xstrdup("<html><body>Bad Gateway</body></html>");
		a->content_type = "text/html";
	}
	a->len = strlen(a->body);
}

/* slow_read - MHD pulls a trickled or truncated body through here. */
static ssize_t slow_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct slow_body *sb = cls;
	size_t limit = sb->trickle ? sb->len : sb->cut;
	if (pos >= limit || atomic_load(&sb->emu->stopping))
		return MHD_CONTENT_READER_END_WITH_ERROR;
	size_t n = limit - (size_t)pos;
	if (sb->trickle) {
		sleep_ms(sb->emu, TRICKLE_EVERY_MS);
		if (n > sb->chunk)
			n = sb->chunk;
	}
	if (n > max)
		n = max;
	memcpy(out, sb->buf + pos, n);
	return (ssize_t)n;
}

/* slow_free - MHD is done with a slow body. */
static void slow_free(void *cls)
{
	struct slow_body *sb = cls;
	free(sb->buf);
	free(sb);
}

/* make_response - the MHD response for an answer, plain, trickled or truncated. */
static struct MHD_Response *make_response(struct emu *e, struct answer *a, int fault)
{
	if (fault != F_TRICKLE && fault != F_TRUNCATE)
		return MHD_create_response_from_buffer(a->len, a->body, MHD_RESPMEM_MUST_FREE);
	struct slow_body *sb = xcalloc(1, sizeof(*sb));
	sb->emu = e;
	sb->buf = a->body;
	sb->len = a->len;
	sb->cut = a->len / 2;
	sb->chunk = a->len / 25 > 4 ? a->len / 25 : 4;
	sb->trickle = fault == F_TRICKLE;
	return MHD_create_response_from_callback(a->len, 4096, slow_read, sb, slow_free);
}

/* add_rate_headers - X-RateLimit-* on every limited-API answer, Retry-After on a 429. */
static void add_rate_headers(struct MHD_Response *resp, const struct answer *a)
{
	char buf[48];
	if (!a->rate.shown)
		return;
	snprintf(buf, sizeof(buf), "%ld", a->rate.consumed);
	MHD_add_response_header(resp, "X-RateLimit-Consumed", buf);
	snprintf(buf, sizeof(buf), "%ld", a->rate.remaining);
	MHD_add_response_header(resp, "X-RateLimit-Remaining", buf);
	format_http_date(a->rate.reset_wall_ms, buf);
	MHD_add_response_header(resp, "X-RateLimit-Reset", buf);
	if (a->status == 429) {
		snprintf(buf, sizeof(buf), "%lld",
		         (long long)((a->rate.ms_before_next + 999) / 1000));
		MHD_add_response_header(resp, "Retry-After", buf);
	}
}

/* send_answer - queues the answer on the connection. */
static enum MHD_Result send_answer(struct emu *e, struct MHD_Connection *conn, struct answer *a,
                                   int fault)
{
	struct MHD_Response *resp = make_response(e, a, fault);
	if (!resp) {
		free(a->body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", a->content_type);
	add_rate_headers(resp, a);
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)a->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* log_request - --log: method, path and status; never headers (the token is in one). */
static void log_request(struct emu *e, const char *method, const char *url, int status,
                        const char *note)
{
	mtx_lock(&e->lock);
	int on = e->set.log;
	mtx_unlock(&e->lock);
	if (on)
		logmsg(LOG_INFO, "%s %s %d%s", method, url, status, note);
}

/* api_request - the last MHD call of an API request: faults around the real answer. */
static enum MHD_Result api_request(struct emu *e, struct MHD_Connection *conn, const char *url,
                                   const char *method, struct conn_req *r)
{
	struct answer a = {0};
	mtx_lock(&e->lock);
	int64_t delay = e->set.delay_ms, hang = r->hang ? e->set.hang_ms : 0;
	if (delay)
		e->stats.faults[F_DELAY]++;
	mtx_unlock(&e->lock);
	sleep_ms(e, hang + delay);
	if (r->fault == F_FAIL || r->fault == F_NONJSON) {
		answer_fault(e, r->fault, &a);
		log_request(e, method, url, a.status, " (fault)");
		return send_answer(e, conn, &a, -1);
	}
	answer_api(e, conn, url, method, r, &a);
	if (r->fault == F_RESET) {
		log_request(e, method, url, a.status, " (applied, connection reset)");
		free(a.body);
		return MHD_NO;
	}
	log_request(e, method, url, a.status,
	            r->fault == F_TRICKLE    ? " (trickled)"
	            : r->fault == F_TRUNCATE ? " (truncated)"
	                                     : "");
	return send_answer(e, conn, &a, r->fault);
}

/* --- admin endpoints: /__emu/stats, /__emu/state, /__emu/config, /__emu/reset ------- */

/* stats_json - the counters, as GET /__emu/stats shows them. */
static cJSON *stats_json(const struct emu *e)
{
	static const char *const fault_names[F_COUNT] = {
	    [F_RESET_BEFORE] = "reset_before",
	    [F_FAIL] = "fail",
	    [F_NONJSON] = "nonjson",
	    [F_HANG] = "hang",
	    [F_DELAY] = "delay",
	    [F_RESET] = "reset",
	    [F_TRUNCATE] = "truncate",
	    [F_TRICKLE] = "trickle",
	};
	char code[8];
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "requests", (double)e->stats.requests);
	cJSON *st = cJSON_AddObjectToObject(o, "by_status");
	for (int i = 0; i < 600; i++) {
		if (!e->stats.by_status[i])
			continue;
		snprintf(code, sizeof(code), "%d", i);
		cJSON_AddNumberToObject(st, code, (double)e->stats.by_status[i]);
	}
	cJSON *ops = cJSON_AddObjectToObject(o, "by_operation");
	for (size_t i = 0; i < catalog_count(); i++)
		if (e->stats.by_op[i])
			cJSON_AddNumberToObject(ops, catalog_at(i)->operation_id,
			                        (double)e->stats.by_op[i]);
	cJSON_AddNumberToObject(o, "rate_limited", (double)e->stats.rate_limited);
	cJSON *f = cJSON_AddObjectToObject(o, "faults");
	for (int i = 0; i < F_COUNT; i++)
		cJSON_AddNumberToObject(f, fault_names[i], (double)e->stats.faults[i]);
	cJSON_AddItemToObject(o, "mutations", countmap_to_json(&e->stats.mutations));
	cJSON_AddItemToObject(o, "applied", countmap_to_json(&e->stats.applied));
	return o;
}

/* stats_reset - POST /__emu/reset: counters to zero, state kept. */
static void stats_reset(struct emu *e)
{
	uint64_t *by_op = e->stats.by_op;
	countmap_clear(&e->stats.mutations);
	countmap_clear(&e->stats.applied);
	memset(by_op, 0, (catalog_count() + 1) * sizeof(*by_op));
	memset(&e->stats, 0, sizeof(e->stats));
	e->stats.by_op = by_op;
}

/* admin_config - POST /__emu/config: new settings, all or nothing; buckets start over. */
static cJSON *admin_config(struct emu *e, const struct strbuf *body, int *status)
{
	struct strbuf err = STRBUF_INIT;
	cJSON *in = cJSON_ParseWithLength(body->buf, body->len);
	cJSON *out;
	if (settings_apply_json(&e->set, in, &err)) {
		*status = in ? 422 : 400;
		out = error_envelope(*status, NULL, in ? err.buf : "config body is not valid JSON");
	} else {
		limits_release(&e->buckets);
		out = settings_to_json(&e->set);
	}
	cJSON_Delete(in);
	sb_release(&err);
	return out;
}

/* admin_request - the /__emu/ endpoints: no auth, never faulted, not counted. */
static enum MHD_Result admin_request(struct emu *e, struct MHD_Connection *conn, const char *url,
                                     const char *method, struct conn_req *r)
{
	struct answer a = {.status = 200, .content_type = "application/json"};
	int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
	cJSON *out;
	mtx_lock(&e->lock);
	if (get && strcmp(url, "/__emu/stats") == 0) {
		out = stats_json(e);
	} else if (get && strcmp(url, "/__emu/state") == 0) {
		out = state_dump(&e->state);
	} else if (get && strcmp(url, "/__emu/config") == 0) {
		out = settings_to_json(&e->set);
	} else if (post && strcmp(url, "/__emu/config") == 0) {
		out = admin_config(e, &r->body, &a.status);
	} else if (post && strcmp(url, "/__emu/reset") == 0) {
		stats_reset(e);
		out = cJSON_CreateObject();
		cJSON_AddStringToObject(out, "status", "reset");
	} else {
		a.status = 404;
		out = error_envelope(404, NULL, "no such emulator endpoint");
	}
	mtx_unlock(&e->lock);
	a.body = cJSON_PrintUnformatted(out);
	a.len = strlen(a.body);
	cJSON_Delete(out);
	return send_answer(e, conn, &a, -1);
}

/* --- MHD callbacks ------------------------------------------------------------------- */

/* on_request - MHD's access handler, called for headers, body chunks, and the end. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct emu *e = cls;
	struct conn_req *r = *con_cls;
	(void)version;
	if (!r) {
		r = xcalloc(1, sizeof(*r));
		sb_init(&r->body, 0);
		r->fault = -1;
		r->admin = strncmp(url, "/__emu/", 7) == 0;
		*con_cls = r;
		if (!r->admin)
			draw_faults(e, r);
		if (r->fault == F_RESET_BEFORE) {
			log_request(e, method, url, 0, " (connection reset before reading)");
			return MHD_NO;
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (r->body.len + *upload_data_size > EMU_MAX_BODY)
			r->too_large = 1;
		else
			sb_add(&r->body, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	return r->admin ? admin_request(e, conn, url, method, r)
	                : api_request(e, conn, url, method, r);
}

/* on_completed - MHD is done with a request (answered or not): free its context. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
	struct conn_req *r = *con_cls;
	(void)cls;
	(void)conn;
	(void)code;
	if (!r)
		return;
	sb_release(&r->body);
	free(r);
	*con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* mhd_log - MHD's own complaints: at startup always, later only with --log, since
 * injected faults make it report every connection they cut. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct emu *e = cls;
	struct strbuf msg = STRBUF_INIT;
	mtx_lock(&e->lock);
	int on = e->set.log || !e->started;
	mtx_unlock(&e->lock);
	if (!on)
		return;
	sb_vaddf(&msg, fmt, ap);
	while (msg.len && msg.buf[msg.len - 1] == '\n')
		sb_setlen(&msg, msg.len - 1);
	logmsg(LOG_WARN, "libmicrohttpd: %s", msg.buf);
	sb_release(&msg);
}

/* server_start - listens on 127.0.0.1:port (0 picks one); *bound is the port taken. */
struct MHD_Daemon *server_start(struct emu *e, uint16_t port, uint16_t *bound)
{
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* the logger comes first, or MHD logs the options before it on its own */
	struct MHD_Daemon *d = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
	        MHD_USE_ERROR_LOG,
	    port, NULL, NULL, on_request, e, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, e,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
	    e, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)2048, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)512, MHD_OPTION_END);
	if (!d)
		return NULL;
	mtx_lock(&e->lock);
	e->started = 1;
	mtx_unlock(&e->lock);
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	*bound = info ? info->port : port;
	return d;
}

/* server_stop - closes every connection and joins their threads. */
void server_stop(struct MHD_Daemon *d)
{
	MHD_stop_daemon(d);
}
