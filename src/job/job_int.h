/* job_int.h - what the job module's files share (private to src/job/): where one job's
 * problems go and how they are worded, and the steps of a job's parse that one file calls
 * in another. Pure, as job.h says: no I/O, no clock.
 *
 * The files: job_document.c (a whole document, bytes to jobs), job.c (one job object: its
 * tree and its own fields), job_params.c (its params against the catalog), job_policy.c
 * (paginate, retry, schedule, split), job_problem.c (problems and their words, the error
 * file), job_canon.c (the canonical form the store keeps), job_refs.c (after, $ref and
 * the file's dependency graph).
 */
#ifndef SEGSPOOL_JOB_INT_H
#define SEGSPOOL_JOB_INT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"
#include "strbuf.h"

struct op_def;

#define MAX_PAGE_COUNT 1000
#define MAX_SUGGEST_BYTES 200 /* edit distance on a megabyte name would take seconds */
#define SHOWN_BYTES 64
#define MAX_KEY_BYTES 200
/* a job's workspace and region when it names none; the canonical form leaves them out */
#define CANON_WORKSPACE "default"
#define CANON_REGION "api"

#define EVENTS_VOLUME_OP "getEventsVolumeFromWorkspace"

/* where problems of one job object go, and how its pointers start */
struct ctx {
	struct job_list *list;
	const char *prefix;
	int line;
	int bad;
};

/* is_pow2_or_zero - arrays grow by doubling exactly when their length reaches one */
static inline int is_pow2_or_zero(size_t n)
{
	return (n & (n - 1)) == 0;
}

/* job_problem.c: problems and their words */

/* has_control - whether s holds a C0 control character or DEL. */
int has_control(const char *s);

/* ctx_problem - a problem at the job's pointer followed by rel (already escaped). */
void __attribute__((format(printf, 4, 5)))
ctx_problem(struct ctx *c, const char *rel, const char *expected, const char *fmt, ...);
/* json_walk - v and everything under it, depth first, each visited with its RFC 6901
 * pointer in path (restored on return): visit returns 1 not to go below v, 0 to go on,
 * -1 for a failure (not below v either; the walk goes on beside it). Returns -1 when a
 * visit failed, else 0. */
int json_walk(const cJSON *v, struct strbuf *path,
              int (*visit)(const cJSON *v, struct strbuf *path, void *arg), void *arg);
/* sb_add_pointer_token - "/" and name escaped as RFC 6901 wants (~ as ~0, / as ~1). */
void sb_add_pointer_token(struct strbuf *sb, const char *name);
/* pointer2 - "/a" or "/a/b" into sb, escaped; returns sb's text. */
const char *pointer2(struct strbuf *sb, const char *a, const char *b);
/* shown - s cut to SHOWN_BYTES at a character boundary, so messages stay readable. */
const char *shown(const char *s, char buf[SHOWN_BYTES + 4]);
/* json_type_name - "a string", "an object", ... for wrong-type messages. */
const char *json_type_name(const cJSON *v);
/* wrong_type - the common "wrong type for NAME: got X" problem. */
void wrong_type(struct ctx *c, const char *rel, const char *name, const cJSON *v,
                const char *expected);
/* integer_field - an integer in [lo, hi] or a problem naming the range. */
int integer_field(struct ctx *c, const cJSON *v, const char *rel, const char *name, int64_t lo,
                  int64_t hi, int64_t *out);
/* in_list - whether s is one of the NULL-terminated values. */
int in_list(const char *s, const char *const *values);
/* sb_add_list - "a, b, c" from a NULL-terminated list or the first n names. */
void sb_add_list(struct strbuf *sb, const char *const *values, size_t n);
/* suggestion - "did you mean X" when a candidate is close, else "one of a, b, c". */
void suggestion(struct strbuf *sb, const char *word, const char *const *candidates, size_t n);

/* job_params.c: params against the catalog */

/* param_time - params.NAME as milliseconds when it is a valid time string. */
int param_time(const cJSON *params, const char *name, int64_t *ms);
/* check_params - every parameter known and well-typed, every required one present. */
void check_params(struct ctx *c, const struct op_def *op, const cJSON *params);

/* job_policy.c: how and when the job runs */

/* parse_paginate - "all" | "none" | false | {"max_pages", "count"}. */
void parse_paginate(struct ctx *c, const cJSON *obj, const struct op_def *op, struct job *j);
/* parse_retry - per-job overrides of the config's retry policy; 0 keeps the default. */
void parse_retry(struct ctx *c, const cJSON *obj, struct job *j);
/* parse_schedule - not_before and priority. */
void parse_schedule(struct ctx *c, const cJSON *obj, struct job *j);
/* parse_split - the event-volume window fan-out. */
void parse_split(struct ctx *c, const cJSON *obj, const struct op_def *op, struct job *j);

/* job_refs.c: what a job waits for */

/* valid_key_n - the rule of "key" for s[0..n): 1 to MAX_KEY_BYTES bytes, no control
 * character (s has no NUL within n). */
static inline int valid_key_n(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return n >= 1 && n <= MAX_KEY_BYTES;
}
/* is_ref_object - an object whose only member is "$ref": a reference, not a value. */
int is_ref_object(const cJSON *v);
/* parse_after - "after" (distinct keys, not the job's own) and the references in params
 * (params NULL or an object), into j; after j->key is parsed. */
void parse_after(struct ctx *c, const cJSON *obj, const cJSON *params, struct job *j);
/* job_refs_collect - the references in params, and j->after as the given keys
 * (j->after[0..nafter_given)) then theirs; 0, or -1 (problems through c unless NULL). */
int job_refs_collect(struct ctx *c, const cJSON *params, struct job *j);
/* job_refs_release - frees after and refs. */
void job_refs_release(struct job *j);

/* job.c: one job object */

/* string_field - obj.name as a string, NULL when absent; a problem when not a string. */
const char *string_field(struct ctx *c, const cJSON *obj, const char *name, const char *expected);
/* job_defaults - a job with nothing given: fields the parser fills stay NULL/0. */
void job_defaults(struct job *j);
/* parse_job - job_parse_object but for the params, left NULL for the caller to copy or
 * take from obj. */
int parse_job(const cJSON *obj, const char *pointer_prefix, int line, struct job *out,
              struct job_list *list);

#endif
