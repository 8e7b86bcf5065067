/* emu_limits.c - run-time settings (faults and rates), token buckets, counters. */
#include "emu.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util.h"

#define MAX_SLEEP_MS 3600000
#define MAX_BUCKETS 4096

/* --- settings ----------------------------------------------------------------------- */

enum setting_kind { S_PROB, S_MS, S_STATUS, S_RATE, S_BOOL };

struct setting {
	const char *name;
	enum setting_kind kind;
	size_t offset;
};

#define SETTING(field, kind)                                                                       \
	{                                                                                          \
#field, kind, offsetof(struct emu_settings, field)                                 \
	}

static const struct setting settings_table[] = {
    SETTING(fail_rate, S_PROB),     SETTING(fail_status, S_STATUS),
    SETTING(reset_rate, S_PROB),    SETTING(reset_before_rate, S_PROB),
    SETTING(delay_ms, S_MS),        SETTING(hang_rate, S_PROB),
    SETTING(hang_ms, S_MS),         SETTING(trickle_rate, S_PROB),
    SETTING(truncate_rate, S_PROB), SETTING(nonjson_rate, S_PROB),
    SETTING(rate, S_RATE),          SETTING(endpoint_limits, S_BOOL),
    SETTING(log, S_BOOL),
};

/* settings_defaults - no faults, no rate limit, 503 for --fail-rate, 30 s hangs. */
void settings_defaults(struct emu_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->fail_status = 503;
	s->hang_ms = 30000;
}

/* find_setting - by name, with '-' and '_' alike ("fail-rate" is "fail_rate"). */
static const struct setting *find_setting(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(settings_table); i++) {
		const char *a = settings_table[i].name, *b = name;
		while (*a && (*a == *b || (*a == '_' && *b == '-'))) {
			a++;
			b++;
		}
		if (!*a && !*b)
			return &settings_table[i];
	}
	return NULL;
}

/* settings_known - whether name is a setting (for the command line's checks). */
int settings_known(const char *name)
{
	return find_setting(name) != NULL;
}

/* parse_long_in - a whole number in [lo, hi]. */
static int parse_long_in(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* parse_bool - true/false, 1/0, on/off, yes/no. */
static int parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"1", "true", "on", "yes"};
	static const char *const no[] = {"0", "false", "off", "no"};
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return *out = 1, 0;
		if (strcasecmp(s, no[i]) == 0)
			return *out = 0, 0;
	}
	return -1;
}

/* parse_rate - "100/s", "600/min", "5/10s", "1000/h"; "", "off" or "none" turn it off. */
int parse_rate(const char *text, struct emu_rate *out)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"ms", 1},       {"s", 1000},      {"sec", 1000},     {"second", 1000},
	             {"m", 60000},    {"min", 60000},   {"minute", 60000}, {"h", 3600000},
	             {"hr", 3600000}, {"hour", 3600000}};
	if (!*text || strcasecmp(text, "off") == 0 || strcasecmp(text, "none") == 0) {
		memset(out, 0, sizeof(*out));
		return 0;
	}
	char *end;
	errno = 0;
	double n = strtod(text, &end);
	if (errno || end == text || *end != '/' || !(n >= 1 && n <= 1e9))
		return -1;
	const char *p = end + 1;
	long mult = 1;
	if (*p >= '0' && *p <= '9') {
		mult = strtol(p, &end, 10);
		p = end;
		if (mult < 1 || mult > 1000000)
			return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcasecmp(p, units[i].unit) == 0 ||
		    (strlen(p) == strlen(units[i].unit) + 1 && p[strlen(p) - 1] == 's' &&
		     strncasecmp(p, units[i].unit, strlen(units[i].unit)) == 0)) {
			out->on = 1;
			out->capacity = n;
			out->period_ms = units[i].ms * mult;
			return 0;
		}
	}
	return -1;
}

/* settings_set - one setting from its text form. */
int settings_set(struct emu_settings *s, const char *name, const char *value, struct strbuf *err)
{
	const struct setting *st = find_setting(name);
	char *field;
	long l;
	int b;
	if (!st) {
		sb_addf(err, "unknown setting %s", name);
		return -1;
	}
	field = (char *)s + st->offset;
	switch (st->kind) {
	case S_PROB: {
		char *end;
		double p = strtod(value, &end);
		if (end == value || *end || !(p >= 0 && p <= 1))
			break;
		memcpy(field, &p, sizeof(p));
		return 0;
	}
	case S_MS:
		if (parse_long_in(value, 0, MAX_SLEEP_MS, &l))
			break;
		int64_t ms = l;
		memcpy(field, &ms, sizeof(ms));
		return 0;
	case S_STATUS:
		if (parse_long_in(value, 400, 599, &l))
			break;
		b = (int)l;
		memcpy(field, &b, sizeof(b));
		return 0;
	case S_RATE:
		if (parse_rate(value, (struct emu_rate *)(void *)field))
			break;
		return 0;
	case S_BOOL:
		if (parse_bool(value, &b))
			break;
		memcpy(field, &b, sizeof(b));
		return 0;
	}
	static const char *const expect[] = {
	    [S_PROB] = "a probability from 0 to 1",
	    [S_MS] = "milliseconds, at most 3600000",
	    [S_STATUS] = "an HTTP status from 400 to 599",
	    [S_RATE] = "N/PERIOD such as 100/s or 600/min, or off",
	    [S_BOOL] = "true or false",
	};
	sb_addf(err, "%s must be %s (got \"%s\")", st->name, expect[st->kind], value);
	return -1;
}

/* settings_apply_json - {"fail_rate":0.3,"rate":"100/s",...}, all or nothing. */
int settings_apply_json(struct emu_settings *s, const cJSON *obj, struct strbuf *err)
{
	struct emu_settings next = *s;
	const cJSON *v;
	char num[64];
	if (!cJSON_IsObject(obj)) {
		sb_adds(err, "config must be a JSON object");
		return -1;
	}
	cJSON_ArrayForEach(v, obj)
	{
		const char *text = num;
		if (cJSON_IsString(v))
			text = v->valuestring;
		else if (cJSON_IsNumber(v))
			snprintf(num, sizeof(num), "%.17g", v->valuedouble);
		else if (cJSON_IsBool(v))
			text = cJSON_IsTrue(v) ? "true" : "false";
		else if (cJSON_IsNull(v))
			text = "";
		else
			text = "(not a scalar)";
		if (settings_set(&next, v->string, text, err))
			return -1;
	}
	*s = next;
	return 0;
}

/* rate_unit - "600/min", or "5/10s" when the period is several units. */
static void rate_unit(char out[64], double n, int64_t units, const char *unit)
{
	if (units == 1)
		snprintf(out, 64, "%g/%s", n, unit);
	else
		snprintf(out, 64, "%g/%lld%s", n, (long long)units, unit);
}

/* rate_text - "100/s"-style text of a rate, "off" when there is none. */
static void rate_text(const struct emu_rate *r, char out[64])
{
	if (!r->on)
		snprintf(out, 64, "off");
	else if (r->period_ms % 3600000 == 0)
		rate_unit(out, r->capacity, r->period_ms / 3600000, "h");
	else if (r->period_ms % 60000 == 0)
		rate_unit(out, r->capacity, r->period_ms / 60000, "min");
	else if (r->period_ms % 1000 == 0)
		rate_unit(out, r->capacity, r->period_ms / 1000, "s");
	else
		rate_unit(out, r->capacity, r->period_ms, "ms");
}

/* settings_to_json - every setting, as GET /__emu/config shows them. */
cJSON *settings_to_json(const struct emu_settings *s)
{
	char rate[64];
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "fail_rate", s->fail_rate);
	cJSON_AddNumberToObject(o, "fail_status", s->fail_status);
	cJSON_AddNumberToObject(o, "reset_rate", s->reset_rate);
	cJSON_AddNumberToObject(o, "reset_before_rate", s->reset_before_rate);
	cJSON_AddNumberToObject(o, "delay_ms", (double)s->delay_ms);
	cJSON_AddNumberToObject(o, "hang_rate", s->hang_rate);
	cJSON_AddNumberToObject(o, "hang_ms", (double)s->hang_ms);
	cJSON_AddNumberToObject(o, "trickle_rate", s->trickle_rate);
	cJSON_AddNumberToObject(o, "truncate_rate", s->truncate_rate);
	cJSON_AddNumberToObject(o, "nonjson_rate", s->nonjson_rate);
	rate_text(&s->rate, rate);
	cJSON_AddStringToObject(o, "rate", rate);
	cJSON_AddBoolToObject(o, "endpoint_limits", s->endpoint_limits);
	cJSON_AddBoolToObject(o, "log", s->log);
	return o;
}

/* --- token buckets ------------------------------------------------------------------ */

/* bucket_get - the bucket of key, created full. */
static struct emu_bucket *bucket_get(struct emu_buckets *bk, uint64_t key, double capacity,
                                     int64_t now)
{
	for (size_t i = 0; i < bk->n; i++)
		if (bk->b[i].key == key)
			return &bk->b[i];
	if (bk->n >= MAX_BUCKETS)
		bk->n = 0; /* a flood of distinct tokens: forget them all rather than grow */
	if (bk->n == bk->alloc) {
		bk->alloc = bk->alloc ? bk->alloc * 2 : 8;
		bk->b = xrealloc(bk->b, bk->alloc * sizeof(*bk->b));
	}
	struct emu_bucket *b = &bk->b[bk->n++];
	b->key = key;
	b->tokens = capacity;
	b->updated_ms = now;
	return b;
}

/* refill - continuous refill at capacity per period, never above capacity. */
static void refill(struct emu_bucket *b, const struct emu_rate *r, int64_t now)
{
	if (now > b->updated_ms) {
		b->tokens += (double)(now - b->updated_ms) * r->capacity / (double)r->period_ms;
		if (b->tokens > r->capacity)
			b->tokens = r->capacity;
	}
	b->updated_ms = now;
}

/* fill_view - what the headers show of a bucket. */
static void fill_view(struct rate_view *v, const struct emu_bucket *b, const struct emu_rate *r,
                      int64_t wall)
{
	double missing = r->capacity - b->tokens;
	v->shown = 1;
	v->capacity = (long)r->capacity;
	v->remaining = b->tokens > 0 ? (long)floor(b->tokens) : 0;
	v->consumed = (long)r->capacity - v->remaining;
	v->reset_wall_ms = wall + (int64_t)ceil(missing * (double)r->period_ms / r->capacity);
}

/* limits_admit - one token from each bucket that applies, or none if any is short. */
int limits_admit(struct emu_buckets *bk, const struct emu_settings *s, const char *token,
                 const struct op_def *op, int64_t mono_ms, int64_t wall_ms, struct rate_view *v)
{
	struct emu_bucket *b[2];
	struct emu_rate rates[2];
	size_t n = 0;
	uint64_t tok = fnv1a64(token, FNV1A64_INIT);
	memset(v, 0, sizeof(*v));
	if (s->rate.on) {
		rates[n] = s->rate;
		b[n] = bucket_get(bk, fnv1a64("\n*", tok), s->rate.capacity, mono_ms);
		n++;
	}
	if (s->endpoint_limits && op && op->rate_per_min > 0) {
		rates[n] = (struct emu_rate){1, op->rate_per_min, 60000};
		b[n] = bucket_get(bk, fnv1a64(catalog_rate_group(op), fnv1a64("\n", tok)),
		                  rates[n].capacity, mono_ms);
		n++;
	}
	for (size_t i = 0; i < n; i++)
		refill(b[i], &rates[i], mono_ms);
	for (size_t i = 0; i < n; i++) {
		if (b[i]->tokens < 1) {
			fill_view(v, b[i], &rates[i], wall_ms);
			v->ms_before_next = (int64_t)ceil(
			    (1 - b[i]->tokens) * (double)rates[i].period_ms / rates[i].capacity);
			if (v->ms_before_next < 1)
				v->ms_before_next = 1;
			return 1;
		}
	}
	for (size_t i = 0; i < n; i++)
		b[i]->tokens -= 1;
	if (n)
		fill_view(v, b[0], &rates[0], wall_ms);
	return 0;
}

/* limits_release - forgets every bucket. */
void limits_release(struct emu_buckets *bk)
{
	free(bk->b);
	memset(bk, 0, sizeof(*bk));
}

/* --- counters ----------------------------------------------------------------------- */

/* countmap_grow - doubles the table, rehashing. */
static void countmap_grow(struct countmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	char **keys = xcalloc(cap, sizeof(*keys));
	uint64_t *counts = xcalloc(cap, sizeof(*counts));
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t j = fnv1a64(m->keys[i], FNV1A64_INIT) & (cap - 1);
		while (keys[j])
			j = (j + 1) & (cap - 1);
		keys[j] = m->keys[i];
		counts[j] = m->counts[i];
	}
	free(m->keys);
	free(m->counts);
	m->keys = keys;
	m->counts = counts;
	m->cap = cap;
}

/* countmap_add - counts[key] += by. */
void countmap_add(struct countmap *m, const char *key, uint64_t by)
{
	if ((m->n + 1) * 10 > m->cap * 7)
		countmap_grow(m);
	size_t j = fnv1a64(key, FNV1A64_INIT) & (m->cap - 1);
	while (m->keys[j] && strcmp(m->keys[j], key) != 0)
		j = (j + 1) & (m->cap - 1);
	if (!m->keys[j]) {
		m->keys[j] = xstrdup(key);
		m->n++;
	}
	m->counts[j] += by;
}

/* countmap_clear - empties and frees the table. */
void countmap_clear(struct countmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->counts);
	memset(m, 0, sizeof(*m));
}

/* countmap_to_json - {"key": count, ...}. */
cJSON *countmap_to_json(const struct countmap *m)
{
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; i < m->cap; i++)
		if (m->keys[i])
			cJSON_AddNumberToObject(o, m->keys[i], (double)m->counts[i]);
	return o;
}

/* format_http_date - IMF-fixdate without the locale's say in day and month names. */
void format_http_date(int64_t ms, char out[40])
{
	static const char days[][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
	         months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}
