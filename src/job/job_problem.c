/* job_problem.c - a job file's problems: collected (job_problem_add, ctx_problem), worded
 * (JSON pointers, cut values, wrong types, integer ranges, "did you mean"), and written as
 * the body of NAME.error.json. */
#include "job_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "strbuf.h"
#include "util.h"

#define MAX_PROBLEMS 1000 /* a file of 100000 bad jobs needs no 100000-entry report */

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
void __attribute__((format(printf, 4, 5)))
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
void sb_add_pointer_token(struct strbuf *sb, const char *name)
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

/* json_walk - depth first, with each value's pointer; see job_int.h. */
int json_walk(const cJSON *v, struct strbuf *path,
              int (*visit)(const cJSON *v, struct strbuf *path, void *arg), void *arg)
{
	int seen = visit(v, path, arg);
	int rc = seen < 0 ? -1 : 0;
	const cJSON *child;
	size_t i = 0;
	if (seen != 0)
		return rc;
	cJSON_ArrayForEach(child, v)
	{
		size_t len = path->len;
		if (cJSON_IsObject(v))
			sb_add_pointer_token(path, child->string);
		else
			sb_addf(path, "/%zu", i++);
		if (json_walk(child, path, visit, arg) < 0)
			rc = -1;
		sb_setlen(path, len);
	}
	return rc;
}

/* pointer2 - "/a" or "/a/b" into sb, escaped; returns sb's text. */
const char *pointer2(struct strbuf *sb, const char *a, const char *b)
{
	sb_reset(sb);
	sb_add_pointer_token(sb, a);
	if (b)
		sb_add_pointer_token(sb, b);
	return sb->buf;
}

/* shown - s cut to SHOWN_BYTES at a character boundary, so messages stay readable. */
const char *shown(const char *s, char buf[SHOWN_BYTES + 4])
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
const char *json_type_name(const cJSON *v)
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
void wrong_type(struct ctx *c, const char *rel, const char *name, const cJSON *v,
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
int integer_field(struct ctx *c, const cJSON *v, const char *rel, const char *name, int64_t lo,
                  int64_t hi, int64_t *out)
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
int in_list(const char *s, const char *const *values)
{
	for (; *values; values++)
		if (!strcmp(s, *values))
			return 1;
	return 0;
}

/* sb_add_list - "a, b, c" from a NULL-terminated list or the first n names. */
void sb_add_list(struct strbuf *sb, const char *const *values, size_t n)
{
	for (size_t i = 0; i < n && values[i]; i++) {
		if (i)
			sb_adds(sb, ", ");
		sb_adds(sb, values[i]);
	}
}

/* suggestion - "did you mean X" when a candidate is close, else "one of a, b, c". */
void suggestion(struct strbuf *sb, const char *word, const char *const *candidates, size_t n)
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
int has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
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
