/* job.h - parse and validate job documents. Pure: no I/O, no clock, no SQLite, no HTTP.
 *
 * A document is one job object, a JSON array of job objects, or JSON Lines (one job
 * object a line; blank lines are skipped). Every problem found is reported with where it
 * is: a JSON pointer ("/0/params/slug") and, for JSON Lines, the line number.
 * This is the fuzz target: any byte string must give either jobs or problems.
 */
#ifndef SEGSPOOL_JOB_H
#define SEGSPOOL_JOB_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct op_def;
struct strbuf;

#define JOB_MAX_FILE_BYTES (8u * 1024u * 1024u) /* a larger file is rejected whole */
#define JOB_MAX_LINE_BYTES (1024u * 1024u)      /* one JSON Lines line */
#define JOB_MAX_DEPTH 64                        /* nesting of arrays and objects */
#define JOB_MAX_JOBS 100000                     /* jobs in one file */
#define JOB_MAX_SPLIT_WINDOWS 10000             /* children of one fan-out job */

enum job_format { JOB_FORMAT_JSON, JOB_FORMAT_JSONL };

enum paginate_mode { PAGINATE_NONE, PAGINATE_ALL, PAGINATE_LIMIT };

enum on_unknown { ON_UNKNOWN_RETRY, ON_UNKNOWN_FAIL };

/* a reference in params, {"$ref": "KEY#POINTER"}: the value at POINTER (RFC 6901, "" for
 * the whole) in the stored result of the job keyed KEY, put in at claim. KEY is what comes
 * before the first '#', so a key holding '#' cannot be referenced. */
struct job_ref {
	char *param_pointer; /* where in params the reference sits: "/sourceId", "/a/0/b" */
	char *key;           /* the job referenced */
	char *pointer;       /* into its result: "/source/id", or "" */
};

struct job {
	const struct op_def *op; /* from the catalog; never NULL in a parsed job */
	struct cJSON *params;    /* owned; an object (empty when the job gave none) */
	char *workspace;         /* "default" when not given */
	char *region;            /* "api" or "eu1"; NULL when not given: the workspace's */
	char *key;               /* idempotency key, or NULL */
	char *output;            /* relative output path, or NULL: the engine picks one */
	int no_output;           /* "output": false: results stay in the store only */
	enum paginate_mode paginate;
	int max_pages;    /* PAGINATE_LIMIT: pages at most */
	int page_count;   /* items a page asked for; 0 = the params' or default */
	int max_attempts; /* 0 = the config's default; likewise the three below */
	int64_t initial_ms;
	int64_t max_ms;
	int64_t max_age_ms;
	int64_t not_before_ms; /* 0 = now */
	int priority;          /* higher runs first; default 0 */
	int64_t split_ms;      /* event-volume fan-out window; 0 = no split */
	enum on_unknown on_unknown;
	/* the keys waited for: first the nafter_given of "after" in its order, then those
	 * only references name; no key twice */
	char **after;
	size_t nafter;
	size_t nafter_given;
	struct job_ref *refs; /* in params order (depth first) */
	size_t nrefs;
	int line;  /* JSON Lines line of the job, 0 for JSON */
	int index; /* position in the document's array, -1 when it is one object or JSON Lines */
};

struct job_problem {
	char *where;    /* JSON pointer, e.g. "/params/granularity" ("" for the document) */
	int line;       /* JSON Lines line number, 0 for JSON documents */
	char *what;     /* what is wrong, lowercase */
	char *expected; /* what was expected, or NULL */
};

struct job_list {
	struct job *jobs;
	size_t njobs;
	struct job_problem *problems;
	size_t nproblems;
};

/* job_parse_buffer - parse and validate a whole document. All jobs and all problems are
 * collected (a bad job does not stop the others being checked). Returns 0 when there
 * are no problems, 1 when there are (the caller rejects the file whole). */
int job_parse_buffer(const char *buf, size_t len, enum job_format fmt, struct job_list *out);
/* job_format_for_name - JSON Lines for names ending in .jsonl, else JSON. */
enum job_format job_format_for_name(const char *name);
void job_list_release(struct job_list *list);

/* job_parse_object - validate one job object; problems are appended to list with
 * where prefixed by pointer_prefix. Returns 0 and fills *out, or -1. */
int job_parse_object(const struct cJSON *obj, const char *pointer_prefix, int line, struct job *out,
                     struct job_list *list);
void job_release(struct job *job);

/* job_to_json - the job's canonical form (what the store keeps): op and params, then
 * only the members that differ from their defaults; caller frees. */
char *job_to_json(const struct job *job);
/* job_from_json - parse a canonical form back (an absent member takes its default, so
 * the fully explicit form older databases hold reads the same); returns 0 or -1. */
int job_from_json(const char *text, struct job *out);

/* job_problems_json - the problems as the body of NAME.error.json; caller frees. */
char *job_problems_json(const struct job_list *list, const char *file_name);
/* job_problem_add - append a problem (used by the spool for file-level problems too). */
void job_problem_add(struct job_list *list, const char *where, int line, const char *what,
                     const char *expected);

/* job_list_check_refs - the file's "after" keys and references: each names a job of the
 * file or one known (known(key, arg) != 0 for a key already in the store; known NULL:
 * none is), and no jobs wait for each other in a cycle. Problems are appended to list
 * (where: "/3/after/0", "/3/params/sourceId"; line for JSON Lines); returns how many. */
int job_list_check_refs(struct job_list *list, int (*known)(const char *key, void *arg), void *arg);
/* job_list_check_stored_refs - as job_list_check_refs does for references to jobs of the
 * file, the references to jobs already in the store against the result shape of their
 * operation, which op_of(key, arg) gives (NULL: not known, not checked); returns how many
 * problems it added. */
int job_list_check_stored_refs(struct job_list *list,
                               const struct op_def *(*op_of)(const char *key, void *arg),
                               void *arg);
/* job_list_layers - the dependency layers (Kahn's order): layer_of_job[i] is 0 for a job
 * waiting for no job of the file, else one more than the highest layer it waits for.
 * Returns the number of layers, or -1 when there is a cycle (layer_of_job[i] is then -1
 * for the jobs in or after it). */
int job_list_layers(const struct job_list *list, int *layer_of_job);
/* job_pointer_get - the value at an RFC 6901 pointer in v ("" is v itself), or NULL with
 * why said (when why is not NULL): "no member \"id\" at /source". */
const struct cJSON *job_pointer_get(const struct cJSON *v, const char *pointer, struct strbuf *why);
/* job_ref_put - a copy of value in place of the reference ref in job->params (at claim:
 * its dependency's result is known); 0, or -1 when ref is not one of job's. */
int job_ref_put(struct job *job, const struct job_ref *ref, const struct cJSON *value);
/* job_params_problem - the job's params checked against its operation again (after its
 * references were put in): 0, or -1 with the first problem in why. */
int job_params_problem(const struct job *job, struct strbuf *why);

/* job_check_output_path - output_path_check (output.h), the rule output_open applies:
 * 0, or -1 with the reason in why (static string). */
int job_check_output_path(const char *path, const char **why);

/* job_mutates - whether the job's request may change state on the server: its operation's
 * method, a raw job's own (params.method), by http_method_mutates. The store records it at
 * insert, so recovery knows an attempt a crash left open may have been applied. */
int job_mutates(const struct job *job);

#endif
