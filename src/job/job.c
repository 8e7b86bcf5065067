/* job.c - parse and validate job documents: byte-level checks on the whole document
 * first (size, NUL, UTF-8, nesting), then cJSON, then each job against the catalog.
 * Pure: no I/O, no clock. Every problem is collected, so one rejection names them all. */
#include "job.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "catalog.h"
#include "json_print.h"
#include "output.h"
#include "retry.h"
#include "strbuf.h"
#include "util.h"

#define MAX_KEY_BYTES 200
#define MAX_WORKSPACE_BYTES 64
#define MAX_PAGE_COUNT 1000
#define MAX_PAGES 1000000
#define MAX_PROBLEMS 1000     /* a file of 100000 bad jobs needs no 100000-entry report */
#define MAX_SUGGEST_BYTES 200 /* edit distance on a megabyte name would take seconds */
#define SHOWN_BYTES 64
/* a job's workspace and region when it names none; the canonical form leaves them out */
#define CANON_WORKSPACE "default"
#define CANON_REGION "api"

#define EVENTS_VOLUME_OP "getEventsVolumeFromWorkspace"

static const char *const job_fields[] = {
    "op",    "params",     "workspace", "region", "key",        "paginate", "output",
    "retry", "not_before", "priority",  "split",  "on_unknown", "comment",
};

static const char *const retry_fields[] = {
    "max_attempts", "initial_ms", "max_ms", "max_age", "max_age_ms",
};

/* where problems of one job object go, and how its pointers start */
struct ctx {
	struct job_list *list;
	const char *prefix;
	int line;
	int bad;
};

/* keys already used in this file, for the duplicate check: open addressing */
struct key_seen {
	char *key;
	char *where;
	int line;
};

struct key_set {
	struct key_seen *slots;
	size_t cap;
	size_t n;
};

/* is_pow2_or_zero - arrays grow by doubling exactly when their length reaches one */
static int is_pow2_or_zero(size_t n)
{
	return (n & (n - 1)) == 0;
}

/* job_problem_add - append a copy of one problem; past MAX_PROBLEMS only a note. */
void job_problem_add(struct job_list *list, const char *where, int line, const char *what,
                     const char *expected)
{
	if (list->nproblems > MAX_PROBLEMS)
		return;
	if (list->nproblems == MAX_PROBLEMS) {
		where = "";
		line = 0;
		what = "too many problems: the rest are not listed";
		expected = NULL;
	}
	if (is_pow2_or_zero(list->nproblems))
		list->problems =
		    xrealloc(list->problems,
		             (list->nproblems ? 2 * list->nproblems : 1) * sizeof(*list->problems));
	struct job_problem *p = &list->problems[list->nproblems++];
	p->where = xstrdup(where ? where : "");
	p->line = line;
	p->what = xstrdup(what);
	p->expected = expected ? xstrdup(expected) : NULL;
}

/* ctx_problem - a problem at the job's pointer followed by rel (already escaped). */
static void __attribute__((format(printf, 4, 5)))
ctx_problem(struct ctx *c, const char *rel, const char *expected, const char *fmt, ...)
{
	struct strbuf where = STRBUF_INIT, what = STRBUF_INIT;
	va_list ap;

	sb_adds(&where, c->prefix);
	sb_adds(&where, rel);
	va_start(ap, fmt);
	sb_vaddf(&what, fmt, ap);
	va_end(ap);
	job_problem_add(c->list, where.buf, c->line, what.buf, expected);
	c->bad++;
	sb_release(&where);
	sb_release(&what);
}

/* sb_add_pointer_token - "/" and name escaped as RFC 6901 wants (~ as ~0, / as ~1). */
static void sb_add_pointer_token(struct strbuf *sb, const char *name)
{
	sb_addch(sb, '/');
	for (;;) {
		size_t run = strcspn(name, "~/");
		sb_add(sb, name, run);
		name += run;
		if (!*name)
			return;
		sb_adds(sb, *name == '~' ? "~0" : "~1");
		name++;
	}
}

/* pointer2 - "/a" or "/a/b" into sb, escaped; returns sb's text. */
static const char *pointer2(struct strbuf *sb, const char *a, const char *b)
{
	sb_reset(sb);
	sb_add_pointer_token(sb, a);
	if (b)
		sb_add_pointer_token(sb, b);
	return sb->buf;
}

/* shown - s cut to SHOWN_BYTES at a character boundary, so messages stay readable. */
static const char *shown(const char *s, char buf[SHOWN_BYTES + 4])
{
	size_t n = strlen(s);
	if (n <= SHOWN_BYTES)
		return s;
	n = SHOWN_BYTES;
	/* s is longer than SHOWN_BYTES here (cppcheck follows a short constant argument
	 * past the early return above) */
	/* cppcheck-suppress arrayIndexOutOfBounds */
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	memcpy(buf, s, n);
	memcpy(buf + n, "...", 4);
	return buf;
}

/* json_type_name - "a string", "an object", ... for wrong-type messages. */
static const char *json_type_name(const cJSON *v)
{
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsNull(v))
		return "null";
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsObject(v))
		return "an object";
	return "an invalid value";
}

/* wrong_type - the common "wrong type for NAME: got X" problem. */
static void wrong_type(struct ctx *c, const char *rel, const char *name, const cJSON *v,
                       const char *expected)
{
	char buf[SHOWN_BYTES + 4];
	ctx_problem(c, rel, expected, "wrong type for %s: got %s", shown(name, buf),
	            json_type_name(v));
}

/* json_integer - v as an integer in [lo, hi]: 0, -1 when not a number, -2 when out of
 * range, -3 when fractional. lo and hi must be well inside +-2^53. */
static int json_integer(const cJSON *v, int64_t lo, int64_t hi, int64_t *out)
{
	if (!cJSON_IsNumber(v))
		return -1;
	double d = v->valuedouble;
	if (isfinite(d) && d != floor(d))
		return -3;
	if (!isfinite(d) || d < (double)lo || d > (double)hi)
		return -2;
	*out = (int64_t)d;
	return 0;
}

/* integer_field - an integer in [lo, hi] or a problem naming the range. */
static int integer_field(struct ctx *c, const cJSON *v, const char *rel, const char *name,
                         int64_t lo, int64_t hi, int64_t *out)
{
	char expected[96];
	snprintf(expected, sizeof(expected), "an integer from %lld to %lld", (long long)lo,
	         (long long)hi);
	switch (json_integer(v, lo, hi, out)) {
	case 0:
		return 0;
	case -1:
		wrong_type(c, rel, name, v, expected);
		return -1;
	case -3:
		ctx_problem(c, rel, expected, "%s is not an integer: %.15g", name, v->valuedouble);
		return -1;
	default:
		ctx_problem(c, rel, expected, "%s out of range: %.15g", name, v->valuedouble);
		return -1;
	}
}

/* in_list - whether s is one of the NULL-terminated values. */
static int in_list(const char *s, const char *const *values)
{
	for (; *values; values++)
		if (!strcmp(s, *values))
			return 1;
	return 0;
}

/* sb_add_list - "a, b, c" from a NULL-terminated list or the first n names. */
static void sb_add_list(struct strbuf *sb, const char *const *values, size_t n)
{
	for (size_t i = 0; i < n && values[i]; i++) {
		if (i)
			sb_adds(sb, ", ");
		sb_adds(sb, values[i]);
	}
}

/* suggestion - "did you mean X" when a candidate is close, else "one of a, b, c". */
static void suggestion(struct strbuf *sb, const char *word, const char *const *candidates, size_t n)
{
	const char *close = NULL;
	if (strlen(word) <= MAX_SUGGEST_BYTES)
		close = suggest_close(word, candidates, n);
	if (close) {
		sb_addf(sb, "did you mean %s", close);
	} else {
		sb_adds(sb, "one of ");
		sb_add_list(sb, candidates, n);
	}
}

/* has_control - whether s holds a C0 control character or DEL. */
static int has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* --- params against the catalog ------------------------------------------------- */

/* describe_param - what a parameter of this type must look like. */
static void describe_param(struct strbuf *sb, const struct op_param *p)
{
	switch (p->type) {
	case PT_STRING:
		sb_adds(sb, p->in == PARAM_PATH ? "a non-empty string" : "a string");
		break;
	case PT_BOOLEAN:
		sb_adds(sb, "true or false");
		break;
	case PT_NUMBER:
		sb_adds(sb, "a number");
		break;
	case PT_OBJECT:
		sb_adds(sb, "an object");
		break;
	case PT_ARRAY:
		sb_adds(sb, "an array");
		break;
	case PT_STRING_ARRAY:
		sb_adds(sb, "an array of strings");
		if (p->enum_values) {
			sb_adds(sb, ", each one of ");
			sb_add_list(sb, p->enum_values, SIZE_MAX);
		}
		break;
	case PT_ENUM:
		if (p->enum_values) {
			sb_adds(sb, "one of ");
			sb_add_list(sb, p->enum_values, SIZE_MAX);
		} else {
			sb_adds(sb, "a string");
		}
		break;
	case PT_PAGINATION:
		sb_adds(sb,
		        "an object {\"count\": 1.." STR(MAX_PAGE_COUNT) ", \"cursor\": \"...\"}");
		break;
	case PT_DATETIME:
		sb_adds(sb, "an RFC 3339 time such as 2026-11-26T03:00:00Z");
		break;
	case PT_ANY:
		sb_adds(sb, "any JSON value");
		break;
	}
}

/* param_msg - where a parameter is and what it should be, as a problem with it says
 * them: built on first use, as a valid parameter (the usual case) needs neither. */
struct param_msg {
	const struct op_param *p;
	struct strbuf rel, expected;
};

/* pm_rel - "/params/NAME". */
static const char *pm_rel(struct param_msg *m)
{
	if (!m->rel.len)
		pointer2(&m->rel, "params", m->p->name);
	return m->rel.buf;
}

/* pm_expected - the parameter's description (describe_param). */
static const char *pm_expected(struct param_msg *m)
{
	if (!m->expected.len)
		describe_param(&m->expected, m->p);
	return m->expected.buf;
}

/* check_string_array - an array of strings, each in enum_values when there are any. */
static void check_string_array(struct ctx *c, struct param_msg *m, const cJSON *v)
{
	const struct op_param *p = m->p;
	char buf[SHOWN_BYTES + 4];
	struct strbuf elem_rel = STRBUF_INIT;
	const cJSON *e;
	size_t i = 0;

	if (!cJSON_IsArray(v)) {
		wrong_type(c, pm_rel(m), p->name, v, pm_expected(m));
		return;
	}
	cJSON_ArrayForEach(e, v)
	{
		int bad_type = !cJSON_IsString(e);
		if (bad_type || (p->enum_values && !in_list(e->valuestring, p->enum_values))) {
			sb_reset(&elem_rel);
			sb_addf(&elem_rel, "%s/%zu", pm_rel(m), i);
			if (bad_type)
				ctx_problem(c, elem_rel.buf, pm_expected(m),
				            "wrong type for %s element %zu: got %s", p->name, i,
				            json_type_name(e));
			else
				ctx_problem(c, elem_rel.buf, pm_expected(m),
				            "invalid value \"%s\" in %s",
				            shown(e->valuestring, buf), p->name);
		}
		i++;
	}
	sb_release(&elem_rel);
}

/* check_pagination - {"count": 1..1000 (required), "cursor": string}, nothing else. */
static void check_pagination(struct ctx *c, struct param_msg *pm, const cJSON *v)
{
	const char *rel = pm_rel(pm);
	static const char *const keys[] = {"count", "cursor"};
	char buf[SHOWN_BYTES + 4];
	struct strbuf sub = STRBUF_INIT, exp = STRBUF_INIT;
	const cJSON *m;
	int64_t count;

	if (!cJSON_IsObject(v)) {
		wrong_type(c, rel, pm->p->name, v, pm_expected(pm));
		return;
	}
	cJSON_ArrayForEach(m, v)
	{
		sb_reset(&sub);
		sb_adds(&sub, rel);
		sb_add_pointer_token(&sub, m->string);
		if (!strcmp(m->string, "count")) {
			integer_field(c, m, sub.buf, "pagination count", 1, MAX_PAGE_COUNT, &count);
		} else if (!strcmp(m->string, "cursor")) {
			if (!cJSON_IsString(m))
				wrong_type(c, sub.buf, "pagination cursor", m, "a string");
		} else {
			sb_reset(&exp);
			suggestion(&exp, m->string, keys, ARRAY_SIZE(keys));
			ctx_problem(c, sub.buf, exp.buf, "unknown key \"%s\" in pagination",
			            shown(m->string, buf));
		}
	}
	if (!cJSON_GetObjectItemCaseSensitive(v, "count")) {
		sb_reset(&sub);
		sb_adds(&sub, rel);
		sb_adds(&sub, "/count");
		ctx_problem(c, sub.buf, "an integer from 1 to " STR(MAX_PAGE_COUNT),
		            "missing count in pagination");
	}
	sb_release(&sub);
	sb_release(&exp);
}

/* check_value_rules - checks beyond the JSON type: non-empty path params, enum values,
 * parseable times, and the raw request's path. */
static void check_value_rules(struct ctx *c, const struct op_def *op, struct param_msg *m,
                              const cJSON *v)
{
	const struct op_param *p = m->p;
	char buf[SHOWN_BYTES + 4];
	int64_t ms;

	if (p->in == PARAM_PATH && cJSON_IsString(v) && !*v->valuestring)
		ctx_problem(c, pm_rel(m), pm_expected(m), "empty path parameter %s", p->name);
	if (p->type == PT_ENUM && p->enum_values && !in_list(v->valuestring, p->enum_values))
		ctx_problem(c, pm_rel(m), pm_expected(m), "invalid value \"%s\" for %s",
		            shown(v->valuestring, buf), p->name);
	if (p->type == PT_DATETIME && parse_iso8601(v->valuestring, &ms))
		ctx_problem(c, pm_rel(m), pm_expected(m), "invalid time \"%s\" for %s",
		            shown(v->valuestring, buf), p->name);
	if (op->is_raw && !strcmp(p->name, "path") && cJSON_IsString(v)) {
		const char *why = catalog_raw_path_problem(v->valuestring);
		if (why)
			ctx_problem(c, pm_rel(m),
			            "an API path such as /sources, without scheme, host or ..",
			            "invalid raw path \"%s\": %s", shown(v->valuestring, buf), why);
	}
}

/* check_param_value - one present parameter against its catalog entry. */
static void check_param_value(struct ctx *c, const struct op_def *op, const struct op_param *p,
                              const cJSON *v)
{
	struct param_msg m = {p, STRBUF_INIT, STRBUF_INIT};
	int type_ok = 0;

	switch (p->type) {
	case PT_STRING:
	case PT_ENUM:
	case PT_DATETIME:
		type_ok = cJSON_IsString(v);
		break;
	case PT_BOOLEAN:
		type_ok = cJSON_IsBool(v);
		break;
	case PT_NUMBER:
		type_ok = cJSON_IsNumber(v) && isfinite(v->valuedouble);
		break;
	case PT_OBJECT:
		type_ok = cJSON_IsObject(v);
		break;
	case PT_ARRAY:
		type_ok = cJSON_IsArray(v);
		break;
	case PT_STRING_ARRAY:
		check_string_array(c, &m, v);
		goto out;
	case PT_PAGINATION:
		check_pagination(c, &m, v);
		goto out;
	case PT_ANY:
		goto out;
	}
	if (!type_ok)
		wrong_type(c, pm_rel(&m), p->name, v, pm_expected(&m));
	else
		check_value_rules(c, op, &m, v);
out:
	sb_release(&m.rel);
	sb_release(&m.expected);
}

/* unknown_param - a parameter the operation does not take, with the nearest name. */
static void unknown_param(struct ctx *c, const struct op_def *op, const char *name)
{
	const char *names[64];
	size_t n = op->nparams < ARRAY_SIZE(names) ? op->nparams : ARRAY_SIZE(names);
	struct strbuf rel = STRBUF_INIT, expected = STRBUF_INIT;
	char buf[SHOWN_BYTES + 4];

	for (size_t i = 0; i < n; i++)
		names[i] = op->params[i].name;
	if (n)
		suggestion(&expected, name, names, n);
	else
		sb_addf(&expected, "no parameters: %s takes none", op->operation_id);
	ctx_problem(c, pointer2(&rel, "params", name), expected.buf,
	            "unknown parameter \"%s\" for %s", shown(name, buf), op->operation_id);
	sb_release(&rel);
	sb_release(&expected);
}

/* param_time - params.NAME as milliseconds when it is a valid time string. */
static int param_time(const cJSON *params, const char *name, int64_t *ms)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
	return cJSON_IsString(v) && !parse_iso8601(v->valuestring, ms) ? 0 : -1;
}

/* check_params - every parameter known and well-typed, every required one present. */
static void check_params(struct ctx *c, const struct op_def *op, const cJSON *params)
{
	struct strbuf rel = STRBUF_INIT, expected = STRBUF_INIT;
	const cJSON *m;
	int64_t start, end;

	cJSON_ArrayForEach(m, params)
	{
		const struct op_param *p = catalog_param(op, m->string);
		if (p)
			check_param_value(c, op, p, m);
		else
			unknown_param(c, op, m->string);
	}
	for (size_t i = 0; i < op->nparams; i++) {
		const struct op_param *p = &op->params[i];
		if (!(p->required || p->in == PARAM_PATH) ||
		    cJSON_GetObjectItemCaseSensitive(params, p->name))
			continue;
		sb_reset(&expected);
		describe_param(&expected, p);
		ctx_problem(c, pointer2(&rel, "params", p->name), expected.buf,
		            "missing required parameter %s for %s", p->name, op->operation_id);
	}
	if (!strcmp(op->operation_id, EVENTS_VOLUME_OP) &&
	    !param_time(params, "startTime", &start) && !param_time(params, "endTime", &end) &&
	    start >= end)
		ctx_problem(c, "/params/endTime", "an endTime later than startTime",
		            "startTime is not before endTime");
	sb_release(&rel);
	sb_release(&expected);
}

/* --- the job's own fields ----------------------------------------------------------- */

/* check_unknown_fields - names outside job_fields, each with the nearest known one. */
static void check_unknown_fields(struct ctx *c, const cJSON *obj)
{
	struct strbuf rel = STRBUF_INIT, expected = STRBUF_INIT;
	char buf[SHOWN_BYTES + 4];
	const cJSON *m;

	cJSON_ArrayForEach(m, obj)
	{
		int known = 0;
		for (size_t i = 0; i < ARRAY_SIZE(job_fields); i++)
			known |= !strcmp(m->string, job_fields[i]);
		if (known)
			continue;
		sb_reset(&expected);
		suggestion(&expected, m->string, job_fields, ARRAY_SIZE(job_fields));
		ctx_problem(c, pointer2(&rel, m->string, NULL), expected.buf,
		            "unknown field \"%s\"", shown(m->string, buf));
	}
	sb_release(&rel);
	sb_release(&expected);
}

/* name_cmp - qsort order of member names, for finding duplicates. */
static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* duplicate_member - the problem of a name given twice in the object at path. */
static void duplicate_member(struct ctx *c, struct strbuf *path, const char *name)
{
	char buf[SHOWN_BYTES + 4];
	size_t len = path->len;
	sb_add_pointer_token(path, name);
	ctx_problem(c, path->buf, "each name once in an object", "duplicate member \"%s\"",
	            shown(name, buf));
	sb_setlen(path, len);
}

/* check_duplicate_members - cJSON keeps both of {"a":1,"a":2} and we would silently
 * use the first; say so instead (once an object). A small object (a job, its params) is
 * compared pair by pair; sorting keeps huge ones cheap. */
static void check_duplicate_members(struct ctx *c, const cJSON *obj, struct strbuf *path)
{
	enum { SMALL_OBJECT = 12 };
	const char *small[SMALL_OBJECT];
	size_t n = 0, i = 0;
	const cJSON *m;

	cJSON_ArrayForEach(m, obj) n++;
	if (n < 2)
		return;
	const char **names = n <= SMALL_OBJECT ? small : xmalloc(n * sizeof(*names));
	cJSON_ArrayForEach(m, obj) names[i++] = m->string;
	if (n <= SMALL_OBJECT) {
		for (i = 1; i < n; i++)
			for (size_t j = 0; j < i; j++)
				if (!strcmp(names[j], names[i])) {
					duplicate_member(c, path, names[i]);
					return;
				}
		return;
	}
	qsort(names, n, sizeof(*names), name_cmp);
	for (i = 1; i < n; i++)
		if (!strcmp(names[i - 1], names[i])) {
			duplicate_member(c, path, names[i]);
			break;
		}
	free(names);
}

/* check_tree - the whole job: duplicate member names anywhere, and numbers too large for
 * a double (cJSON turns 1e999 into infinity, which would be stored as null). */
static void check_tree(struct ctx *c, const cJSON *v, struct strbuf *path)
{
	const cJSON *child;
	size_t i = 0;

	if (cJSON_IsNumber(v) && !isfinite(v->valuedouble)) {
		ctx_problem(c, path->buf, "a number within double range", "number out of range");
		return;
	}
	if (cJSON_IsObject(v))
		check_duplicate_members(c, v, path);
	cJSON_ArrayForEach(child, v)
	{
		size_t len = path->len;
		if (cJSON_IsObject(v))
			sb_add_pointer_token(path, child->string);
		else
			sb_addf(path, "/%zu", i++);
		check_tree(c, child, path);
		sb_setlen(path, len);
	}
}

/* parse_op - the operation, by operationId or display name. */
static const struct op_def *parse_op(struct ctx *c, const cJSON *obj)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "op");
	struct strbuf expected = STRBUF_INIT;
	char buf[SHOWN_BYTES + 4];
	const struct op_def *op = NULL;
	const char *close = NULL;

	if (!v) {
		ctx_problem(c, "/op", "an operationId such as listSources, or a display name",
		            "missing field op");
		return NULL;
	}
	if (!cJSON_IsString(v)) {
		wrong_type(c, "/op", "op", v, "a string: an operationId or a display name");
		return NULL;
	}
	op = catalog_find(v->valuestring);
	if (op)
		return op;
	if (strlen(v->valuestring) <= MAX_SUGGEST_BYTES)
		close = catalog_suggest(v->valuestring);
	if (close)
		sb_addf(&expected, "did you mean %s", close);
	else
		sb_adds(&expected, "an operationId or display name from the catalog");
	ctx_problem(c, "/op", expected.buf, "unknown op \"%s\"", shown(v->valuestring, buf));
	sb_release(&expected);
	return NULL;
}

/* valid_workspace - [A-Za-z0-9_.-]{1,64}: it names a token in the config. */
static int valid_workspace(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > MAX_WORKSPACE_BYTES)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* string_field - obj.name as a string, NULL when absent; a problem when not a string. */
static const char *string_field(struct ctx *c, const cJSON *obj, const char *name,
                                const char *expected)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	struct strbuf rel = STRBUF_INIT;

	if (!v)
		return NULL;
	if (cJSON_IsString(v))
		return v->valuestring;
	wrong_type(c, pointer2(&rel, name, NULL), name, v, expected);
	sb_release(&rel);
	return NULL;
}

/* default_output_name - whether a path has the form the daemon gives a job that named no
 * output ("createSource-12.json", "listSources-3-2.jsonl", at the top of the output
 * directory): such a name belongs to the job of that id, and an explicit output taking it
 * would replace that job's file. The form is output_default_name_op's, the builder's. */
static int default_output_name(const char *path)
{
	size_t n = output_default_name_op(path);
	if (!n || n >= 128)
		return 0;
	char op[128];
	memcpy(op, path, n);
	op[n] = '\0';
	const struct op_def *def = catalog_find(op);
	return def && strcmp(def->operation_id, op) == 0;
}

/* parse_strings - workspace, region, key, output, on_unknown and comment. */
static void parse_strings(struct ctx *c, const cJSON *obj, struct job *j)
{
	static const char ws_expected[] =
	    "1 to " STR(MAX_WORKSPACE_BYTES) " letters, digits, '_', '.' or '-'";
	static const char key_expected[] =
	    "a string of 1 to " STR(MAX_KEY_BYTES) " bytes without control characters";
	char buf[SHOWN_BYTES + 4];
	const char *s, *why;

	if ((s = string_field(c, obj, "workspace", ws_expected))) {
		if (valid_workspace(s))
			j->workspace = xstrdup(s);
		else
			ctx_problem(c, "/workspace", ws_expected, "invalid workspace \"%s\"",
			            shown(s, buf));
	}
	if ((s = string_field(c, obj, "region", "api or eu1"))) {
		if (!strcmp(s, "api") || !strcmp(s, "eu1"))
			j->region = xstrdup(s);
		else
			ctx_problem(c, "/region", "api or eu1", "invalid region \"%s\"",
			            shown(s, buf));
	}
	if ((s = string_field(c, obj, "key", key_expected))) {
		if (!*s || strlen(s) > MAX_KEY_BYTES || has_control(s))
			ctx_problem(c, "/key", key_expected, "invalid key \"%s\"", shown(s, buf));
		else
			j->key = xstrdup(s);
	}
	if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(obj, "output")))
		j->no_output = 1;
	else if ((s = string_field(c, obj, "output", "a relative path, or false for none"))) {
		if (job_check_output_path(s, &why))
			ctx_problem(c, "/output", "a relative path inside the output directory",
			            "invalid output path \"%s\": %s", shown(s, buf), why);
		else if (default_output_name(s))
			ctx_problem(c, "/output", "another name",
			            "output \"%s\" has the form of a default output name "
			            "(OPERATION-ID.json), which belongs to the job of that id",
			            shown(s, buf));
		else
			j->output = xstrdup(s);
	}
	if ((s = string_field(c, obj, "on_unknown", "retry or fail"))) {
		if (!strcmp(s, "retry") || !strcmp(s, "fail"))
			j->on_unknown = !strcmp(s, "fail") ? ON_UNKNOWN_FAIL : ON_UNKNOWN_RETRY;
		else
			ctx_problem(c, "/on_unknown", "retry or fail", "invalid on_unknown \"%s\"",
			            shown(s, buf));
	}
	string_field(c, obj, "comment", "a string");
}

/* parse_paginate_limit - {"max_pages": N (required), "count": 1..1000}. */
static void parse_paginate_limit(struct ctx *c, const cJSON *v, struct job *j)
{
	static const char *const keys[] = {"max_pages", "count"};
	struct strbuf rel = STRBUF_INIT, expected = STRBUF_INIT;
	char buf[SHOWN_BYTES + 4];
	const cJSON *m;
	int64_t n;

	cJSON_ArrayForEach(m, v)
	{
		pointer2(&rel, "paginate", m->string);
		if (!strcmp(m->string, "max_pages")) {
			if (!integer_field(c, m, rel.buf, "max_pages", 1, MAX_PAGES, &n))
				j->max_pages = (int)n;
		} else if (!strcmp(m->string, "count")) {
			if (!integer_field(c, m, rel.buf, "paginate count", 1, MAX_PAGE_COUNT, &n))
				j->page_count = (int)n;
		} else {
			sb_reset(&expected);
			suggestion(&expected, m->string, keys, ARRAY_SIZE(keys));
			ctx_problem(c, rel.buf, expected.buf, "unknown key \"%s\" in paginate",
			            shown(m->string, buf));
		}
	}
	if (!cJSON_GetObjectItemCaseSensitive(v, "max_pages"))
		ctx_problem(c, "/paginate/max_pages", "an integer from 1 to " STR(MAX_PAGES),
		            "missing max_pages in paginate");
	sb_release(&rel);
	sb_release(&expected);
}

/* parse_paginate - "all" | "none" | false | {"max_pages", "count"}; paginated ops fetch
 * every page unless told otherwise. */
static void parse_paginate(struct ctx *c, const cJSON *obj, const struct op_def *op, struct job *j)
{
	static const char expected[] = "\"all\", \"none\", false, or "
	                               "{\"max_pages\": N, \"count\": 1.." STR(MAX_PAGE_COUNT) "}";
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "paginate");
	char buf[SHOWN_BYTES + 4];
	enum paginate_mode mode;

	j->paginate = op && op->paginated ? PAGINATE_ALL : PAGINATE_NONE;
	if (!v)
		return;
	if (cJSON_IsFalse(v) || (cJSON_IsString(v) && !strcmp(v->valuestring, "none"))) {
		mode = PAGINATE_NONE;
	} else if (cJSON_IsString(v) && !strcmp(v->valuestring, "all")) {
		mode = PAGINATE_ALL;
	} else if (cJSON_IsObject(v)) {
		mode = PAGINATE_LIMIT;
		parse_paginate_limit(c, v, j);
	} else if (cJSON_IsString(v)) {
		ctx_problem(c, "/paginate", expected, "invalid paginate \"%s\"",
		            shown(v->valuestring, buf));
		return;
	} else {
		wrong_type(c, "/paginate", "paginate", v, expected);
		return;
	}
	if (mode != PAGINATE_NONE && op && !op->paginated) {
		ctx_problem(c, "/paginate", "no paginate field, or \"none\"",
		            "paginate given for %s, which is not paginated", op->operation_id);
		return;
	}
	j->paginate = mode;
}

/* parse_retry_member - one key of the retry object. */
static void parse_retry_member(struct ctx *c, const cJSON *m, const char *rel, struct job *j)
{
	struct strbuf expected = STRBUF_INIT;
	char buf[SHOWN_BYTES + 4];
	int64_t n;

	if (!strcmp(m->string, "max_attempts")) {
		if (!integer_field(c, m, rel, "max_attempts", 1, RETRY_MAX_ATTEMPTS, &n))
			j->max_attempts = (int)n;
	} else if (!strcmp(m->string, "initial_ms")) {
		integer_field(c, m, rel, "initial_ms", 1, RETRY_MAX_INITIAL_MS, &j->initial_ms);
	} else if (!strcmp(m->string, "max_ms")) {
		integer_field(c, m, rel, "max_ms", 1, RETRY_MAX_BACKOFF_MS, &j->max_ms);
	} else if (!strcmp(m->string, "max_age_ms")) {
		integer_field(c, m, rel, "max_age_ms", 1, RETRY_MAX_AGE_MS, &j->max_age_ms);
	} else if (!strcmp(m->string, "max_age")) {
		static const char age_expected[] =
		    "a duration such as 2d, 6h or 30m, at most " STR(RETRY_MAX_AGE_DAYS) "d";
		if (!cJSON_IsString(m))
			wrong_type(c, rel, "max_age", m, age_expected);
		else if (parse_duration_ms(m->valuestring, &n) || n > RETRY_MAX_AGE_MS)
			ctx_problem(c, rel, age_expected, "invalid max_age \"%s\"",
			            shown(m->valuestring, buf));
		else
			j->max_age_ms = n;
	} else {
		suggestion(&expected, m->string, retry_fields, ARRAY_SIZE(retry_fields));
		ctx_problem(c, rel, expected.buf, "unknown key \"%s\" in retry",
		            shown(m->string, buf));
	}
	sb_release(&expected);
}

/* parse_retry - per-job overrides of the config's retry policy; 0 keeps the default. */
static void parse_retry(struct ctx *c, const cJSON *obj, struct job *j)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "retry");
	struct strbuf rel = STRBUF_INIT;
	const cJSON *m;
	char expected[64];

	if (!v)
		return;
	if (!cJSON_IsObject(v)) {
		wrong_type(c, "/retry", "retry", v,
		           "an object {max_attempts, initial_ms, max_ms, max_age}");
		return;
	}
	cJSON_ArrayForEach(m, v) parse_retry_member(c, m, pointer2(&rel, "retry", m->string), j);
	if (cJSON_GetObjectItemCaseSensitive(v, "max_age") &&
	    cJSON_GetObjectItemCaseSensitive(v, "max_age_ms"))
		ctx_problem(c, "/retry/max_age_ms", "max_age or max_age_ms, not both",
		            "both max_age and max_age_ms given");
	if (j->initial_ms && j->max_ms && j->max_ms < j->initial_ms) {
		snprintf(expected, sizeof(expected), "at least initial_ms (%lld)",
		         (long long)j->initial_ms);
		ctx_problem(c, "/retry/max_ms", expected, "max_ms is less than initial_ms");
	}
	sb_release(&rel);
}

/* parse_schedule - not_before and priority. */
static void parse_schedule(struct ctx *c, const cJSON *obj, struct job *j)
{
	static const char time_expected[] = "an RFC 3339 time such as 2026-11-27T03:00:00Z";
	const cJSON *v;
	const char *s;
	char buf[SHOWN_BYTES + 4];
	int64_t n;

	if ((s = string_field(c, obj, "not_before", time_expected)) &&
	    parse_iso8601(s, &j->not_before_ms))
		ctx_problem(c, "/not_before", time_expected, "invalid not_before \"%s\"",
		            shown(s, buf));
	v = cJSON_GetObjectItemCaseSensitive(obj, "priority");
	if (v && !integer_field(c, v, "/priority", "priority", -1000, 1000, &n))
		j->priority = (int)n;
}

/* parse_split - the event-volume window fan-out: a duration that cuts
 * [startTime, endTime) into at most JOB_MAX_SPLIT_WINDOWS windows. */
static void parse_split(struct ctx *c, const cJSON *obj, const struct op_def *op, struct job *j)
{
	static const char expected[] = "a duration such as 1d, 6h or 30m";
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(obj, "params");
	const char *s = string_field(c, obj, "split", expected);
	char buf[SHOWN_BYTES + 4], why[96];
	int64_t ms, start, end;

	if (!s)
		return;
	if (parse_duration_ms(s, &ms)) {
		ctx_problem(c, "/split", expected, "invalid split \"%s\"", shown(s, buf));
		return;
	}
	if (op && strcmp(op->operation_id, EVENTS_VOLUME_OP)) {
		ctx_problem(c, "/split", "split only with " EVENTS_VOLUME_OP, "split given for %s",
		            op->operation_id);
		return;
	}
	if (op && cJSON_IsObject(params) && !param_time(params, "startTime", &start) &&
	    !param_time(params, "endTime", &end) && start < end) {
		int64_t span = end - start;
		int64_t windows = span / ms + (span % ms != 0);
		if (windows > JOB_MAX_SPLIT_WINDOWS) {
			snprintf(why, sizeof(why), "at most %d windows: a coarser split",
			         JOB_MAX_SPLIT_WINDOWS);
			ctx_problem(c, "/split", why, "split \"%s\" is too fine: %lld windows",
			            shown(s, buf), (long long)windows);
			return;
		}
	}
	j->split_ms = ms;
}

/* job_defaults - a job with nothing given: fields the parser fills stay NULL/0. */
static void job_defaults(struct job *j)
{
	memset(j, 0, sizeof(*j));
	j->paginate = PAGINATE_NONE;
	j->on_unknown = ON_UNKNOWN_RETRY;
}

/* parse_job - job_parse_object but for the params, left NULL for the caller to copy or
 * take from obj. */
static int parse_job(const cJSON *obj, const char *pointer_prefix, int line, struct job *out,
                     struct job_list *list)
{
	struct ctx c = {list, pointer_prefix ? pointer_prefix : "", line, 0};
	struct strbuf path = STRBUF_INIT;
	const cJSON *params;
	struct job j;

	job_defaults(&j);
	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(obj)) {
		ctx_problem(&c, "", "a job object", "job is %s, not an object",
		            json_type_name(obj));
		return -1;
	}
	check_tree(&c, obj, &path);
	sb_release(&path);
	check_unknown_fields(&c, obj);
	j.op = parse_op(&c, obj);
	params = cJSON_GetObjectItemCaseSensitive(obj, "params");
	if (params && !cJSON_IsObject(params))
		wrong_type(&c, "/params", "params", params, "an object of parameters by name");
	else if (j.op)
		check_params(&c, j.op, params);
	parse_strings(&c, obj, &j);
	parse_paginate(&c, obj, j.op, &j);
	parse_retry(&c, obj, &j);
	parse_schedule(&c, obj, &j);
	parse_split(&c, obj, j.op, &j);
	if (c.bad) {
		job_release(&j);
		return -1;
	}
	if (!j.workspace)
		j.workspace = xstrdup(CANON_WORKSPACE);
	if (!j.region)
		j.region = xstrdup(CANON_REGION);
	*out = j;
	return 0;
}

/* job_parse_object - validate one job object; see job.h. */
int job_parse_object(const cJSON *obj, const char *pointer_prefix, int line, struct job *out,
                     struct job_list *list)
{
	if (parse_job(obj, pointer_prefix, line, out, list) < 0)
		return -1;
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(obj, "params");
	out->params = params ? cJSON_Duplicate(params, 1) : cJSON_CreateObject();
	if (!out->params)
		die("cannot copy job params: out of memory");
	return 0;
}

/* job_release - frees what the job owns and zeroes it. */
void job_release(struct job *job)
{
	cJSON_Delete(job->params);
	free(job->workspace);
	free(job->region);
	free(job->key);
	free(job->output);
	memset(job, 0, sizeof(*job));
}

/* job_list_release - frees every job and problem. */
void job_list_release(struct job_list *list)
{
	for (size_t i = 0; i < list->njobs; i++)
		job_release(&list->jobs[i]);
	for (size_t i = 0; i < list->nproblems; i++) {
		free(list->problems[i].where);
		free(list->problems[i].what);
		free(list->problems[i].expected);
	}
	free(list->jobs);
	free(list->problems);
	memset(list, 0, sizeof(*list));
}

/* --- document-level checks ---------------------------------------------------------- */

/* line_and_column - 1-based position of offset, for messages. */
static void line_and_column(const char *buf, size_t off, size_t *line, size_t *col)
{
	const char *nl;
	size_t start = 0;

	*line = 1;
	while ((nl = memchr(buf + start, '\n', off - start))) {
		(*line)++;
		start = (size_t)(nl - buf) + 1;
	}
	*col = off - start + 1;
}

/* utf8_invalid_at - offset of the first byte that is not well-formed UTF-8 (overlong
 * forms and surrogates included), or len. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char b = s[i];
		size_t need;
		unsigned char lo = 0x80, hi = 0xBF;
		if (b < 0x80) {
			i++;
			continue;
		}
		if (b >= 0xC2 && b <= 0xDF) {
			need = 1;
		} else if (b >= 0xE0 && b <= 0xEF) {
			need = 2;
			if (b == 0xE0)
				lo = 0xA0; /* overlong */
			else if (b == 0xED)
				hi = 0x9F; /* UTF-16 surrogates */
		} else if (b >= 0xF0 && b <= 0xF4) {
			need = 3;
			if (b == 0xF0)
				lo = 0x90; /* overlong */
			else if (b == 0xF4)
				hi = 0x8F; /* above U+10FFFF */
		} else {
			return i;
		}
		if (i + need >= len)
			return i; /* truncated at the end */
		if (s[i + 1] < lo || s[i + 1] > hi)
			return i;
		for (size_t k = 2; k <= need; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xBF)
				return i;
		i += need + 1;
	}
	return len;
}

/* too_deep_at - offset of the bracket that nests deeper than JOB_MAX_DEPTH outside
 * strings, or len. cJSON recurses per level, so this runs before it. */
static size_t too_deep_at(const char *s, size_t len)
{
	int depth = 0, in_string = 0, escaped = 0;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (in_string) {
			if (escaped)
				escaped = 0;
			else if (ch == '\\')
				escaped = 1;
			else if (ch == '"')
				in_string = 0;
		} else if (ch == '"') {
			in_string = 1;
		} else if (ch == '[' || ch == '{') {
			if (++depth > JOB_MAX_DEPTH)
				return i;
		} else if ((ch == ']' || ch == '}') && depth > 0) {
			depth--;
		}
	}
	return len;
}

/* is_blank - only JSON whitespace, after a byte order mark when bom_ok. */
static int is_blank(const char *s, size_t len, int bom_ok)
{
	if (bom_ok && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
		s += 3;
		len -= 3;
	}
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return 0;
	return 1;
}

/* check_bytes - the document as bytes: size, emptiness, NUL, UTF-8, and (for JSON)
 * nesting depth. Returns -1 when it must not reach cJSON. */
static int check_bytes(const char *buf, size_t len, enum job_format fmt, struct job_list *out)
{
	struct strbuf what = STRBUF_INIT;
	const char *nul;
	size_t off, line, col;
	int bad = 0;

	if (len > JOB_MAX_FILE_BYTES) {
		sb_addf(&what, "file is larger than %u bytes (%zu bytes)", JOB_MAX_FILE_BYTES, len);
		job_problem_add(out, "", 0, what.buf, "a smaller file: split the jobs");
		sb_release(&what);
		return -1;
	}
	if (is_blank(buf, len, 1)) {
		job_problem_add(out, "", 0, "file is empty",
		                "a job object, an array of jobs or JSON Lines");
		return -1;
	}
	if ((nul = memchr(buf, '\0', len))) {
		off = (size_t)(nul - buf);
		line_and_column(buf, off, &line, &col);
		sb_addf(&what, "file contains a nul byte at offset %zu (line %zu, column %zu)", off,
		        line, col);
		job_problem_add(out, "", 0, what.buf, "UTF-8 JSON text");
		bad = 1;
	}
	if ((off = utf8_invalid_at((const unsigned char *)buf, len)) < len) {
		line_and_column(buf, off, &line, &col);
		sb_reset(&what);
		sb_addf(&what, "invalid utf-8 at offset %zu (line %zu, column %zu)", off, line,
		        col);
		job_problem_add(out, "", 0, what.buf, "UTF-8 JSON text");
		bad = 1;
	}
	if (fmt == JOB_FORMAT_JSON && (off = too_deep_at(buf, len)) < len) {
		line_and_column(buf, off, &line, &col);
		sb_reset(&what);
		sb_addf(&what, "nesting deeper than %d levels at offset %zu (line %zu, column %zu)",
		        JOB_MAX_DEPTH, off, line, col);
		job_problem_add(out, "", 0, what.buf,
		                "arrays and objects nested at most " STR(JOB_MAX_DEPTH) " deep");
		bad = 1;
	}
	sb_release(&what);
	return bad ? -1 : 0;
}

/* sb_add_snippet - up to 24 bytes of text ending just past off, on one line, cut at
 * character boundaries: cJSON's offset is approximate, so show what is around it. */
static void sb_add_snippet(struct strbuf *sb, const char *text, size_t len, size_t off)
{
	size_t end = off < len ? off + 1 : len, start = end > 24 ? end - 24 : 0;
	while (start < end && ((unsigned char)text[start] & 0xC0) == 0x80)
		start++;
	while (end < len && ((unsigned char)text[end] & 0xC0) == 0x80)
		end++;
	sb_adds(sb, " near \"");
	for (size_t i = start; i < end; i++)
		sb_addch(sb, text[i] == '\n' || text[i] == '\r' || text[i] == '\t' ? ' ' : text[i]);
	sb_addch(sb, '"');
}

/* parse_json_text - cJSON over len bytes (no NUL inside); NULL with a problem naming the
 * offset, line and column when it is not one JSON value with nothing after it. */
static cJSON *parse_json_text(const char *text, size_t len, const char *where, int line,
                              struct job_list *out)
{
	char *copy = xstrndup(text, len);
	const char *end = NULL;
	struct strbuf what = STRBUF_INIT;
	size_t off, eline, col;
	cJSON *root, *lenient;

	/* the NUL is inside the length: cJSON demands it there to accept the end */
	root = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 1);
	if (root) {
		free(copy);
		return root;
	}
	if (!end)
		end = cJSON_GetErrorPtr();
	off = end && end >= copy && end <= copy + len ? (size_t)(end - copy) : 0;
	lenient = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 0);
	if (lenient) {
		off = (size_t)(end - copy);
		while (off < len && strchr(" \t\r\n", copy[off]))
			off++;
		sb_adds(&what, "invalid json: trailing data after the value");
		cJSON_Delete(lenient);
	} else {
		sb_adds(&what, "invalid json");
	}
	line_and_column(copy, off, &eline, &col);
	if (line)
		sb_addf(&what, " at offset %zu (column %zu)", off, col);
	else
		sb_addf(&what, " at offset %zu (line %zu, column %zu)", off, eline, col);
	sb_add_snippet(&what, copy, len, off);
	job_problem_add(out, where, line, what.buf,
	                "one JSON value: a job object or an array of them");
	sb_release(&what);
	free(copy);
	return NULL;
}

/* key_set_slot - the slot holding key, or the empty one where it would go. */
static struct key_seen *key_set_slot(struct key_set *set, const char *key)
{
	size_t i = (size_t)fnv1a64(key, FNV1A64_INIT) & (set->cap - 1);
	while (set->slots[i].key && strcmp(set->slots[i].key, key))
		i = (i + 1) & (set->cap - 1);
	return &set->slots[i];
}

/* key_set_grow - doubles the table, keeping it at most half full. */
static void key_set_grow(struct key_set *set)
{
	struct key_set bigger = {NULL, set->cap ? 2 * set->cap : 64, set->n};
	bigger.slots = xcalloc(bigger.cap, sizeof(*bigger.slots));
	for (size_t i = 0; i < set->cap; i++)
		if (set->slots[i].key)
			*key_set_slot(&bigger, set->slots[i].key) = set->slots[i];
	free(set->slots);
	*set = bigger;
}

/* key_set_release - frees the table and its copies. */
static void key_set_release(struct key_set *set)
{
	for (size_t i = 0; i < set->cap; i++) {
		free(set->slots[i].key);
		free(set->slots[i].where);
	}
	free(set->slots);
	memset(set, 0, sizeof(*set));
}

/* check_duplicate_key - a key seen earlier in the file is a problem at this job. */
static void check_duplicate_key(const cJSON *obj, const char *prefix, int line,
                                struct key_set *keys, struct job_list *out)
{
	const cJSON *v = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, "key") : NULL;
	struct strbuf where = STRBUF_INIT, what = STRBUF_INIT, expected = STRBUF_INIT;
	char buf[SHOWN_BYTES + 4];
	struct key_seen *slot;

	if (!cJSON_IsString(v) || !*v->valuestring)
		return;
	if (2 * (keys->n + 1) > keys->cap)
		key_set_grow(keys);
	slot = key_set_slot(keys, v->valuestring);
	if (!slot->key) {
		slot->key = xstrdup(v->valuestring);
		slot->where = xstrdup(prefix);
		slot->line = line;
		keys->n++;
		return;
	}
	sb_addf(&where, "%s/key", prefix);
	sb_addf(&what, "duplicate key \"%s\"", shown(v->valuestring, buf));
	if (slot->line)
		sb_addf(&expected, "a key used once a file; first used on line %d", slot->line);
	else
		sb_addf(&expected, "a key used once a file; first used at %s",
		        *slot->where ? slot->where : "/");
	job_problem_add(out, where.buf, line, what.buf, expected.buf);
	sb_release(&where);
	sb_release(&what);
	sb_release(&expected);
}

/* take_job - one element of the document: validated, kept if good (its params taken out
 * of the document, which is freed after), key checked. */
static void take_job(cJSON *obj, const char *prefix, int line, struct key_set *keys,
                     struct job_list *out)
{
	struct job j;
	if (!parse_job(obj, prefix, line, &j, out)) {
		cJSON *params = cJSON_GetObjectItemCaseSensitive(obj, "params");
		j.params = params ? cJSON_DetachItemViaPointer(obj, params) : cJSON_CreateObject();
		if (!j.params)
			die("cannot create job params: out of memory");
		if (is_pow2_or_zero(out->njobs))
			out->jobs = xrealloc(out->jobs, (out->njobs ? 2 * out->njobs : 1) *
			                                    sizeof(*out->jobs));
		out->jobs[out->njobs++] = j;
	}
	check_duplicate_key(obj, prefix, line, keys, out);
}

/* parse_json_document - one job object or an array of them. */
static void parse_json_document(const char *buf, size_t len, struct job_list *out)
{
	struct key_set keys = {NULL, 0, 0};
	cJSON *elem;
	char prefix[32], what[96];
	size_t n = 0, i = 0;
	cJSON *root = parse_json_text(buf, len, "", 0, out);

	if (!root)
		return;
	if (cJSON_IsObject(root)) {
		take_job(root, "", 0, &keys, out);
	} else if (!cJSON_IsArray(root)) {
		snprintf(what, sizeof(what), "document is %s, not a job object or an array of jobs",
		         json_type_name(root));
		job_problem_add(out, "", 0, what, "a job object, or an array of job objects");
	} else {
		cJSON_ArrayForEach(elem, root) n++;
		if (n == 0) {
			job_problem_add(out, "", 0, "no jobs: the array is empty",
			                "at least one job object");
		} else if (n > JOB_MAX_JOBS) {
			snprintf(what, sizeof(what), "too many jobs: %zu", n);
			job_problem_add(out, "", 0, what,
			                "at most " STR(JOB_MAX_JOBS) " jobs a file");
		} else {
			cJSON_ArrayForEach(elem, root)
			{
				snprintf(prefix, sizeof(prefix), "/%zu", i++);
				take_job(elem, prefix, 0, &keys, out);
			}
		}
	}
	key_set_release(&keys);
	cJSON_Delete(root);
}

/* parse_jsonl_line - one non-blank line of a JSON Lines document. */
static void parse_jsonl_line(const char *s, size_t len, int line, struct key_set *keys,
                             struct job_list *out)
{
	struct strbuf what = STRBUF_INIT;
	size_t off;
	cJSON *obj;

	if (len > JOB_MAX_LINE_BYTES) {
		sb_addf(&what, "line is longer than %u bytes (%zu bytes)", JOB_MAX_LINE_BYTES, len);
		job_problem_add(out, "", line, what.buf, "one job object a line");
	} else if ((off = too_deep_at(s, len)) < len) {
		sb_addf(&what, "nesting deeper than %d levels at column %zu", JOB_MAX_DEPTH,
		        off + 1);
		job_problem_add(out, "", line, what.buf,
		                "arrays and objects nested at most " STR(JOB_MAX_DEPTH) " deep");
	} else if ((obj = parse_json_text(s, len, "", line, out))) {
		if (cJSON_IsObject(obj)) {
			take_job(obj, "", line, keys, out);
		} else {
			sb_addf(&what, "line is %s, not a job object", json_type_name(obj));
			job_problem_add(out, "", line, what.buf, "one job object a line");
		}
		cJSON_Delete(obj);
	}
	sb_release(&what);
}

/* parse_jsonl_document - one job object a line; blank lines are skipped. */
static void parse_jsonl_document(const char *buf, size_t len, struct job_list *out)
{
	struct key_set keys = {NULL, 0, 0};
	size_t pos = 0, njobs = 0;
	char what[64];
	int line = 0;

	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - buf) : len;
		size_t start = pos;
		pos = end + 1;
		line++;
		if (end > start && buf[end - 1] == '\r')
			end--;
		if (is_blank(buf + start, end - start, start == 0))
			continue;
		if (++njobs > JOB_MAX_JOBS) {
			snprintf(what, sizeof(what), "too many jobs: more than %d", JOB_MAX_JOBS);
			job_problem_add(out, "", line, what,
			                "at most " STR(JOB_MAX_JOBS) " jobs a file");
			break;
		}
		parse_jsonl_line(buf + start, end - start, line, &keys, out);
	}
	if (!njobs)
		job_problem_add(out, "", 0, "no jobs: every line is blank",
		                "one job object a line");
	key_set_release(&keys);
}

/* job_parse_buffer - parse and validate a whole document; see job.h. */
int job_parse_buffer(const char *buf, size_t len, enum job_format fmt, struct job_list *out)
{
	memset(out, 0, sizeof(*out));
	if (!buf)
		len = 0, buf = "";
	if (check_bytes(buf, len, fmt, out) == 0) {
		if (fmt == JOB_FORMAT_JSONL)
			parse_jsonl_document(buf, len, out);
		else
			parse_json_document(buf, len, out);
	}
	return out->nproblems ? 1 : 0;
}

/* job_format_for_name - JSON Lines for names ending in .jsonl (any case), else JSON. */
enum job_format job_format_for_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n >= 6 && !strcasecmp(name + n - 6, ".jsonl"))
		return JOB_FORMAT_JSONL;
	return JOB_FORMAT_JSON;
}

/* --- canonical form ------------------------------------------------------------------ */

/* add_member - ,"name": before a member's value; no comma first in an object. */
static void add_member(struct strbuf *sb, const char *name)
{
	/* names are this file's own identifiers: nothing in them to escape */
	sb_adds(sb, sb->len && sb->buf[sb->len - 1] != '{' ? ",\"" : "\"");
	sb_adds(sb, name);
	sb_adds(sb, "\":");
}

/* add_int - an integer member, printed exactly (cJSON prints numbers through doubles). */
static void add_int(struct strbuf *sb, const char *name, int64_t v)
{
	add_member(sb, name);
	sb_add_int(sb, v);
}

/* add_string_or_null - a string member, or null when s is NULL. */
static void add_string_or_null(struct strbuf *sb, const char *name, const char *s)
{
	add_member(sb, name);
	if (s)
		sb_add_json_string(sb, s);
	else
		sb_adds(sb, "null");
}

/* job_to_json - the canonical form; see job.h. A member at its default (job_defaults,
 * CANON_WORKSPACE, CANON_REGION) is left out: the form is read at every claim and kept
 * in every row. Printed directly: it runs once for every job ingested. */
char *job_to_json(const struct job *job)
{
	struct strbuf sb = STRBUF_INIT;

	sb_addch(&sb, '{');
	add_string_or_null(&sb, "op", job->op->operation_id);
	add_member(&sb, "params");
	if (job->params)
		sb_add_json_value(&sb, job->params);
	else
		sb_adds(&sb, "{}");
	if (job->workspace && strcmp(job->workspace, CANON_WORKSPACE))
		add_string_or_null(&sb, "workspace", job->workspace);
	if (job->region && strcmp(job->region, CANON_REGION))
		add_string_or_null(&sb, "region", job->region);
	if (job->key)
		add_string_or_null(&sb, "key", job->key);
	if (job->no_output) {
		add_member(&sb, "output");
		sb_adds(&sb, "false");
	} else if (job->output) {
		add_string_or_null(&sb, "output", job->output);
	}
	if (job->paginate == PAGINATE_LIMIT) {
		add_member(&sb, "paginate");
		sb_addch(&sb, '{');
		add_int(&sb, "max_pages", job->max_pages);
		add_int(&sb, "count", job->page_count);
		sb_addch(&sb, '}');
	} else if (job->paginate == PAGINATE_ALL) {
		add_string_or_null(&sb, "paginate", "all");
	}
	if (job->max_attempts || job->initial_ms || job->max_ms || job->max_age_ms) {
		add_member(&sb, "retry");
		sb_addch(&sb, '{');
		add_int(&sb, "max_attempts", job->max_attempts);
		add_int(&sb, "initial_ms", job->initial_ms);
		add_int(&sb, "max_ms", job->max_ms);
		add_int(&sb, "max_age_ms", job->max_age_ms);
		sb_addch(&sb, '}');
	}
	if (job->not_before_ms)
		add_int(&sb, "not_before_ms", job->not_before_ms);
	if (job->priority)
		add_int(&sb, "priority", job->priority);
	if (job->split_ms)
		add_int(&sb, "split_ms", job->split_ms);
	if (job->on_unknown == ON_UNKNOWN_FAIL)
		add_string_or_null(&sb, "on_unknown", "fail");
	sb_addch(&sb, '}');
	return sb_detach(&sb, NULL);
}

/* The canonical form is read back at every claim, so it is read from the text's spans
 * (json_next_member) after one validity pass, without a cJSON tree for anything but the
 * params. Names are matched as written: the canonical form never escapes them. */

/* canon_collect - the first member of each of names[0..n) in the object span, or a NULL
 * value where absent; 0, or -1 when the span is not an object. */
static int canon_collect(const char *text, size_t len, const char *const *names, size_t n,
                         struct json_member *found)
{
	struct json_member m;
	size_t pos = 0;
	int rc;
	for (size_t i = 0; i < n; i++)
		found[i].value = NULL;
	while ((rc = json_next_member(text, len, &pos, &m)) > 0)
		for (size_t i = 0; i < n; i++)
			if (!found[i].value && strlen(names[i]) == m.name_len &&
			    !memcmp(names[i], m.name, m.name_len)) {
				found[i] = m;
				break;
			}
	return rc;
}

/* span_is - whether a value's text is exactly word. */
static int span_is(const struct json_member *m, const char *word)
{
	return m->value && strlen(word) == m->value_len && !memcmp(m->value, word, m->value_len);
}

/* canon_int - a member that must be an integer in [lo, hi], written as digits; 0 when
 * absent. */
static int canon_int(const struct json_member *m, int64_t lo, int64_t hi, int64_t *out)
{
	*out = 0;
	if (!m->value)
		return 0;
	if (m->value_len > 20)
		return -1;
	char digits[24];
	memcpy(digits, m->value, m->value_len);
	digits[m->value_len] = '\0';
	char *end;
	errno = 0;
	long long v = strtoll(digits, &end, 10);
	if (end == digits || *end || errno || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* canon_string - a member that must be a string, or null when nullable; *out is a copy
 * (escapes decoded by cJSON, which the canonical form only needs for unusual text), or
 * of absent when the member is absent. */
static int canon_string(const struct json_member *m, int nullable, const char *absent, char **out)
{
	*out = NULL;
	if (!m->value) {
		*out = absent ? xstrdup(absent) : NULL;
		return 0;
	}
	if (span_is(m, "null"))
		return nullable ? 0 : -1;
	if (m->value_len < 2 || m->value[0] != '"')
		return -1;
	if (!memchr(m->value, '\\', m->value_len)) {
		*out = xstrndup(m->value + 1, m->value_len - 2);
		return 0;
	}
	cJSON *v = cJSON_ParseWithLength(m->value, m->value_len);
	if (cJSON_IsString(v))
		*out = xstrdup(v->valuestring);
	cJSON_Delete(v);
	return *out ? 0 : -1;
}

/* canon_paginate - "none", "all" or {"max_pages", "count"}. */
static int canon_paginate(const struct json_member *m, struct job *j)
{
	static const char *const names[] = {"max_pages", "count"};
	struct json_member f[ARRAY_SIZE(names)];
	int64_t pages, count;
	if (!m->value || span_is(m, "\"none\"")) {
		j->paginate = PAGINATE_NONE;
	} else if (span_is(m, "\"all\"")) {
		j->paginate = PAGINATE_ALL;
	} else if (m->value && m->value[0] == '{' &&
	           !canon_collect(m->value, m->value_len, names, ARRAY_SIZE(names), f) &&
	           !canon_int(&f[0], 0, INT_MAX, &pages) && !canon_int(&f[1], 0, INT_MAX, &count)) {
		j->paginate = PAGINATE_LIMIT;
		j->max_pages = (int)pages;
		j->page_count = (int)count;
	} else {
		return -1;
	}
	return 0;
}

/* canon_retry - {"max_attempts", "initial_ms", "max_ms", "max_age_ms"}. */
static int canon_retry(const struct json_member *m, struct job *j)
{
	static const char *const names[] = {"max_attempts", "initial_ms", "max_ms", "max_age_ms"};
	struct json_member f[ARRAY_SIZE(names)];
	const int64_t big = (int64_t)JSON_EXACT_INT_LIMIT;
	int64_t attempts;
	if (!m->value)
		return 0; /* the config's defaults */
	if (m->value[0] != '{' ||
	    canon_collect(m->value, m->value_len, names, ARRAY_SIZE(names), f) ||
	    canon_int(&f[0], 0, INT_MAX, &attempts) || canon_int(&f[1], 0, big, &j->initial_ms) ||
	    canon_int(&f[2], 0, big, &j->max_ms) || canon_int(&f[3], 0, big, &j->max_age_ms))
		return -1;
	j->max_attempts = (int)attempts;
	return 0;
}

enum canon_member {
	CM_OP,
	CM_PARAMS,
	CM_WORKSPACE,
	CM_REGION,
	CM_KEY,
	CM_OUTPUT,
	CM_PAGINATE,
	CM_RETRY,
	CM_NOT_BEFORE,
	CM_PRIORITY,
	CM_SPLIT,
	CM_ON_UNKNOWN,
	CM_COUNT
};

static const char *const canon_names[CM_COUNT] = {
    [CM_OP] = "op",
    [CM_PARAMS] = "params",
    [CM_WORKSPACE] = "workspace",
    [CM_REGION] = "region",
    [CM_KEY] = "key",
    [CM_OUTPUT] = "output",
    [CM_PAGINATE] = "paginate",
    [CM_RETRY] = "retry",
    [CM_NOT_BEFORE] = "not_before_ms",
    [CM_PRIORITY] = "priority",
    [CM_SPLIT] = "split_ms",
    [CM_ON_UNKNOWN] = "on_unknown",
};

/* canon_fields - everything but op and params from a canonical object's members. */
static int canon_fields(const struct json_member *f, struct job *j)
{
	const int64_t big = (int64_t)JSON_EXACT_INT_LIMIT;
	int64_t priority;

	if (canon_string(&f[CM_WORKSPACE], 0, CANON_WORKSPACE, &j->workspace) ||
	    canon_string(&f[CM_REGION], 0, CANON_REGION, &j->region) ||
	    canon_string(&f[CM_KEY], 1, NULL, &j->key) ||
	    (!(j->no_output = span_is(&f[CM_OUTPUT], "false")) &&
	     canon_string(&f[CM_OUTPUT], 1, NULL, &j->output)) ||
	    canon_paginate(&f[CM_PAGINATE], j) || canon_retry(&f[CM_RETRY], j) ||
	    canon_int(&f[CM_NOT_BEFORE], -big, big, &j->not_before_ms) ||
	    canon_int(&f[CM_PRIORITY], INT_MIN, INT_MAX, &priority) ||
	    canon_int(&f[CM_SPLIT], 0, big, &j->split_ms))
		return -1;
	j->priority = (int)priority;
	if (span_is(&f[CM_ON_UNKNOWN], "\"fail\""))
		j->on_unknown = ON_UNKNOWN_FAIL;
	else if (!f[CM_ON_UNKNOWN].value || span_is(&f[CM_ON_UNKNOWN], "\"retry\""))
		j->on_unknown = ON_UNKNOWN_RETRY;
	else
		return -1;
	return 0;
}

/* job_from_json - parse a canonical form back; see job.h. */
int job_from_json(const char *text, struct job *out)
{
	struct json_member f[CM_COUNT];
	struct job j;
	char *op = NULL;
	size_t len = text ? strlen(text) : 0;

	job_defaults(&j);
	memset(out, 0, sizeof(*out));
	if (!text || !json_object_check(text, len, NULL, NULL, NULL) ||
	    canon_collect(text, len, canon_names, CM_COUNT, f) || !f[CM_OP].value ||
	    canon_string(&f[CM_OP], 0, NULL, &op) || !(j.op = catalog_find(op)) ||
	    !f[CM_PARAMS].value || f[CM_PARAMS].value[0] != '{' || canon_fields(f, &j))
		goto fail;
	j.params = cJSON_ParseWithLength(f[CM_PARAMS].value, f[CM_PARAMS].value_len);
	if (!cJSON_IsObject(j.params))
		goto fail;
	free(op);
	*out = j;
	return 0;
fail:
	free(op);
	job_release(&j);
	return -1;
}

/* job_problems_json - {"file", "problems": [{where, line, what, expected}]}. */
char *job_problems_json(const struct job_list *list, const char *file_name)
{
	cJSON *o = cJSON_CreateObject(), *arr;
	char *text;

	if (file_name)
		cJSON_AddStringToObject(o, "file", file_name);
	else
		cJSON_AddNullToObject(o, "file");
	arr = cJSON_AddArrayToObject(o, "problems");
	for (size_t i = 0; i < list->nproblems; i++) {
		const struct job_problem *p = &list->problems[i];
		cJSON *item = cJSON_CreateObject();
		cJSON_AddStringToObject(item, "where", p->where ? p->where : "");
		if (p->line)
			cJSON_AddNumberToObject(item, "line", p->line);
		cJSON_AddStringToObject(item, "what", p->what ? p->what : "");
		if (p->expected)
			cJSON_AddStringToObject(item, "expected", p->expected);
		cJSON_AddItemToArray(arr, item);
	}
	text = cJSON_Print(o);
	cJSON_Delete(o);
	if (!text)
		die("cannot print problems: out of memory");
	return text;
}

/* --- output paths --------------------------------------------------------------------- */

/* job_check_output_path - output.c's rule, the one output_open applies; see job.h. */
int job_check_output_path(const char *path, const char **why)
{
	const char *reason = output_path_check(path);
	if (why)
		*why = reason;
	return reason ? -1 : 0;
}

/* --- effects -------------------------------------------------------------------------- */

/* job_mutates - see job.h; a raw job without a method string (never a parsed one) counts
 * as a mutation, the side on which nothing is sent twice. */
int job_mutates(const struct job *job)
{
	const char *method = job->op->method;
	if (job->op->is_raw) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(job->params, "method");
		if (!cJSON_IsString(m))
			return 1;
		method = m->valuestring;
	}
	return http_method_mutates(method);
}
