/* catalog.h - the table of Segment Public API operations, and request building from it.
 *
 * The table is data: tools/gen_catalog.py turns data/operations.json (a copy of the
 * project's operation list) into src/job/catalog_table.c. Validation (job.c), request
 * building (here), result extraction (paginate.c) and the emulator's routing all read
 * this one table; no code is written per operation.
 */
#ifndef SEGSPOOL_CATALOG_H
#define SEGSPOOL_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

struct cJSON;

enum param_in { PARAM_PATH, PARAM_QUERY, PARAM_BODY };

enum param_type {
	PT_STRING,
	PT_BOOLEAN,
	PT_NUMBER,
	PT_OBJECT,
	PT_ARRAY,        /* array of anything (e.g. invites, propertyRenames) */
	PT_STRING_ARRAY, /* array of strings; enum_values, when set, constrain each */
	PT_ENUM,         /* string from enum_values */
	PT_PAGINATION,   /* {"count": number (required), "cursor": string} */
	PT_DATETIME,     /* ISO-8601 string */
	PT_ANY,
};

struct op_param {
	const char *name;
	enum param_in in;
	enum param_type type;
	int required;
	const char *const *enum_values; /* NULL-terminated, or NULL */
};

/* a member the result of an operation holds (its data object, as stored), from the
 * OpenAPI spec (data/result_shapes.json): the JSON type at an RFC 6901 pointer; only
 * PT_STRING, PT_NUMBER, PT_BOOLEAN, PT_OBJECT and PT_ARRAY occur */
struct result_member {
	const char *pointer; /* "/source/id" */
	enum param_type type;
};

struct op_def {
	const char *operation_id; /* "createSource"; "raw" for the generic request */
	const char *name;         /* "Create Source" */
	const char *method;       /* "GET", "POST", ...; "ANY" for raw */
	const char *path;         /* "/sources/{sourceId}" */
	const struct op_param *params;
	size_t nparams;
	int success_status;
	const char *result_keys[3]; /* keys under data shown as the result; NULL-terminated */
	const char *items_key;      /* array under data for paginated operations, else NULL */
	const struct result_member *result_shape; /* sorted by pointer; NULL when unknown */
	size_t nresult_shape;
	int paginated;
	const char *version; /* "v1", "v1beta", "v1alpha" */
	int rate_per_min;    /* documented per-endpoint limit per token; 0 = workspace default */
	int mutates;         /* anything but GET */
	int is_raw;
	const char *reconcile; /* its reconcile rule as JSON text (reconcile_rule.h), or NULL */
};

size_t catalog_count(void);
const struct op_def *catalog_at(size_t i);
/* catalog_find - by operationId or display name, case-insensitively; NULL if unknown. */
const struct op_def *catalog_find(const char *name);
/* by_operation_id - bsearch(3) comparison of an operationId key with an entry of a table
 * sorted by operationId whose first member is the operationId (the catalog's, the
 * emulator's handlers). */
int by_operation_id(const void *key, const void *entry);
/* catalog_suggest - the closest operationId to an unknown name, or NULL if none is close. */
const char *catalog_suggest(const char *name);
const struct op_param *catalog_param(const struct op_def *op, const char *name);
/* catalog_match - the operation serving METHOD PATH (path without query), for routing
 * in the emulator; NULL if none. */
const struct op_def *catalog_match(const char *method, const char *path);
/* catalog_rate_group - the rate-limit group of an operation: operationId when it has a
 * documented limit of its own, else "default". */
const char *catalog_rate_group(const struct op_def *op);

/* catalog_raw_path_problem - why a raw request's path is refused (validation and
 * catalog_build use this one rule), or NULL when it is safe to append to the base URL. */
const char *catalog_raw_path_problem(const char *path);

/* suggest_close - the candidate within edit distance max(2, len/3) of word, or NULL. */
const char *suggest_close(const char *word, const char *const *candidates, size_t n);

struct built_request {
	const char *method; /* static string */
	struct strbuf url;  /* base + path with escaped path params + query */
	struct strbuf body; /* JSON body, empty when has_body is 0 */
	int has_body;
	char media_type[64]; /* application/vnd.segment.v1+json etc: Accept and Content-Type */
};

void built_request_init(struct built_request *req);
void built_request_release(struct built_request *req);

/* catalog_build - turns (op, params) into a request against base_url (no trailing slash).
 * params holds path, query and body parameters by name (for raw: method, path, query,
 * body, version). When cursor is non-NULL it replaces pagination.cursor; page_count > 0
 * replaces pagination.count. Arrays in the query are sent as name.0=a&name.1=b,
 * pagination as pagination[count]=N&pagination[cursor]=C.
 * Returns 0, or -1 with the reason appended to err. */
int catalog_build(const struct op_def *op, const struct cJSON *params, const char *base_url,
                  const char *cursor, int page_count, struct built_request *out,
                  struct strbuf *err);

#endif
