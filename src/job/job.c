/* job.c - one job object: its tree (duplicate names, numbers out of range), its own
 * fields (op, workspace, region, key, output, on_unknown) and, through the other files,
 * its params and policy; the job's release, output-path rule and effects. Pure: no I/O,
 * no clock. Every problem is collected, so one rejection names them all. */
#include "job.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "job_int.h"
#include "output.h"
#include "strbuf.h"
#include "util.h"

#define MAX_WORKSPACE_BYTES 64

static const char *const job_fields[] = {
    "op",    "params",     "workspace", "region", "key",        "paginate", "output",
    "retry", "not_before", "priority",  "split",  "on_unknown", "comment",  "after",
};

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
static int check_tree(const cJSON *v, struct strbuf *path, void *arg)
{
	struct ctx *c = arg;
	if (cJSON_IsNumber(v) && !isfinite(v->valuedouble)) {
		ctx_problem(c, path->buf, "a number within double range", "number out of range");
		return 1;
	}
	if (cJSON_IsObject(v))
		check_duplicate_members(c, v, path);
	return 0;
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
const char *string_field(struct ctx *c, const cJSON *obj, const char *name, const char *expected)
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

/* job_defaults - a job with nothing given: fields the parser fills stay NULL/0. */
void job_defaults(struct job *j)
{
	memset(j, 0, sizeof(*j));
	j->paginate = PAGINATE_NONE;
	j->on_unknown = ON_UNKNOWN_RETRY;
	j->index = -1;
}

/* array_index - N of a prefix "/N" (an element of the document's array), else -1. */
static int array_index(const char *prefix)
{
	char *end;
	if (prefix[0] != '/' || prefix[1] < '0' || prefix[1] > '9')
		return -1;
	long n = strtol(prefix + 1, &end, 10);
	return *end || n > JOB_MAX_JOBS ? -1 : (int)n;
}

/* parse_job - job_parse_object but for the params, left NULL for the caller to copy or
 * take from obj. */
int parse_job(const cJSON *obj, const char *pointer_prefix, int line, struct job *out,
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
	json_walk(obj, &path, check_tree, &c);
	sb_release(&path);
	check_unknown_fields(&c, obj);
	j.op = parse_op(&c, obj);
	params = cJSON_GetObjectItemCaseSensitive(obj, "params");
	if (params && !cJSON_IsObject(params))
		wrong_type(&c, "/params", "params", params, "an object of parameters by name");
	else if (j.op)
		check_params(&c, j.op, params);
	parse_strings(&c, obj, &j);
	parse_after(&c, obj, cJSON_IsObject(params) ? params : NULL, &j);
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
	j.line = line;
	j.index = array_index(c.prefix);
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
	job_refs_release(job);
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
