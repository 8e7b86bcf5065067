/* catalog.c - lookups in the operation table, and requests built from it.
 *
 * Nothing here knows a particular operation: find, match and build read the generated
 * table (catalog_table.c), so a new operation is a change to data/operations.json only.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "catalog.h"
#include "json_print.h"
#include "catalog_table.h"
#include "paginate.h"
#include "strbuf.h"
#include "util.h"

/* catalog_count - number of table entries, the raw request included. */
size_t catalog_count(void)
{
	return catalog_ops_count;
}

/* catalog_at - the i-th entry in operationId order, or NULL past the end. */
const struct op_def *catalog_at(size_t i)
{
	return i < catalog_ops_count ? &catalog_ops[i] : NULL;
}

/* by_operation_id - see catalog.h. */
int by_operation_id(const void *key, const void *entry)
{
	return strcmp(key, *(const char *const *)entry);
}

/* find_exact - by operationId, case-sensitively (the table is sorted). */
static const struct op_def *find_exact(const char *id)
{
	return bsearch(id, catalog_ops, catalog_ops_count, sizeof(catalog_ops[0]), by_operation_id);
}

/* catalog_find - by operationId or display name; an exact operationId wins. */
const struct op_def *catalog_find(const char *name)
{
	const struct op_def *op;

	if (!name)
		return NULL;
	op = find_exact(name);
	if (op)
		return op;
	for (size_t i = 0; i < catalog_ops_count; i++)
		if (!strcasecmp(name, catalog_ops[i].operation_id))
			return &catalog_ops[i];
	for (size_t i = 0; i < catalog_ops_count; i++)
		if (!strcasecmp(name, catalog_ops[i].name))
			return &catalog_ops[i];
	return NULL;
}

/* catalog_param - the parameter NAME of op (names are case-sensitive, as in JSON). */
const struct op_param *catalog_param(const struct op_def *op, const char *name)
{
	if (!op || !name)
		return NULL;
	for (size_t i = 0; i < op->nparams; i++)
		if (!strcmp(op->params[i].name, name))
			return &op->params[i];
	return NULL;
}

/* catalog_rate_group - own group for a documented per-endpoint limit, else "default". */
const char *catalog_rate_group(const struct op_def *op)
{
	return op && op->rate_per_min > 0 ? op->operation_id : "default";
}

/* lower - ASCII lowercase, so that distances ignore case without touching locale. */
static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* edit_distance - Levenshtein distance, case-insensitive; stops early past limit. */
static size_t edit_distance(const char *a, const char *b, size_t limit)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t *row, result;

	if ((la > lb ? la - lb : lb - la) > limit)
		return limit + 1;
	row = xmalloc((lb + 1) * sizeof(*row));
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0], best = i;
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
			size_t v = diag + cost;
			if (up + 1 < v)
				v = up + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			row[j] = v;
			diag = up;
			if (v < best)
				best = v;
		}
		if (best > limit) {
			free(row);
			return limit + 1;
		}
	}
	result = row[lb];
	free(row);
	return result;
}

/* suggest_close - the nearest candidate within max(2, len/3) edits; first one on ties. */
const char *suggest_close(const char *word, const char *const *candidates, size_t n)
{
	const char *best = NULL;
	size_t limit, best_dist;

	if (!word || !*word)
		return NULL;
	limit = strlen(word) / 3;
	if (limit < 2)
		limit = 2;
	best_dist = limit + 1;
	for (size_t i = 0; i < n; i++) {
		size_t d;
		if (!candidates[i])
			continue;
		d = edit_distance(word, candidates[i], limit);
		if (d < best_dist) {
			best_dist = d;
			best = candidates[i];
		}
	}
	return best;
}

/* catalog_suggest - operationId nearest to name, comparing ids and display names. */
const char *catalog_suggest(const char *name)
{
	const char **candidates;
	const char *hit, *id = NULL;

	candidates = xmalloc(2 * catalog_ops_count * sizeof(*candidates));
	for (size_t i = 0; i < catalog_ops_count; i++) {
		candidates[2 * i] = catalog_ops[i].operation_id;
		candidates[2 * i + 1] = catalog_ops[i].name;
	}
	hit = suggest_close(name, candidates, 2 * catalog_ops_count);
	for (size_t i = 0; hit && i < 2 * catalog_ops_count; i++)
		if (candidates[i] == hit)
			id = catalog_ops[i / 2].operation_id;
	free(candidates);
	return id;
}

/* segment_end - end of the path segment starting at s (the next '/' or the end). */
static const char *segment_end(const char *s, const char *end)
{
	while (s < end && *s != '/')
		s++;
	return s;
}

/* match_template - literal segments matched if PATH fits TEMPLATE, else -1.
 * A {param} segment takes any non-empty segment; the count ranks the candidates. */
static int match_template(const char *tmpl, const char *path, const char *path_end)
{
	const char *t = tmpl, *t_end = tmpl + strlen(tmpl), *p = path;
	int literals = 0;

	if (*t != '/' || p >= path_end || *p != '/')
		return -1;
	while (t < t_end && p < path_end) {
		const char *ts, *ps;
		if (*t != '/' || *p != '/')
			return -1;
		t++;
		p++;
		ts = segment_end(t, t_end);
		ps = segment_end(p, path_end);
		if (*t == '{' && ts > t && ts[-1] == '}') {
			if (ps == p)
				return -1;
		} else {
			if (ts - t != ps - p || memcmp(t, p, (size_t)(ts - t)))
				return -1;
			literals++;
		}
		t = ts;
		p = ps;
	}
	return t == t_end && p == path_end ? literals : -1;
}

/* catalog_match - the operation for METHOD PATH; literal segments beat {params}. */
const struct op_def *catalog_match(const char *method, const char *path)
{
	const struct op_def *best = NULL;
	const char *path_end;
	int best_literals = -1;

	if (!method || !path)
		return NULL;
	path_end = path + strcspn(path, "?#");
	for (size_t i = 0; i < catalog_ops_count; i++) {
		const struct op_def *op = &catalog_ops[i];
		int literals;
		if (op->is_raw || strcmp(op->method, method))
			continue;
		literals = match_template(op->path, path, path_end);
		if (literals > best_literals) {
			best_literals = literals;
			best = op;
		}
	}
	return best;
}

/* built_request_init - an empty request, ready for catalog_build. */
void built_request_init(struct built_request *req)
{
	req->method = NULL;
	sb_init(&req->url, 0);
	sb_init(&req->body, 0);
	req->has_body = 0;
	req->media_type[0] = '\0';
}

/* built_request_release - frees the buffers; the request can be built into again. */
void built_request_release(struct built_request *req)
{
	sb_release(&req->url);
	sb_release(&req->body);
	req->has_body = 0;
	req->method = NULL;
	req->media_type[0] = '\0';
}

/* fail - appends the reason to err (when there is one) and returns -1. */
__attribute__((format(printf, 2, 3))) static int fail(struct strbuf *err, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		sb_vaddf(err, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* is_integral - whether d prints exactly as an integer. */
static int is_integral(double d)
{
	return isfinite(d) && d == floor(d) && fabs(d) < JSON_EXACT_INT_LIMIT;
}

/* add_number - a JSON number in a URL: no fraction when integral. */
static void add_number(struct strbuf *sb, double d)
{
	if (is_integral(d))
		sb_addf(sb, "%lld", (long long)d);
	else
		sb_addf(sb, "%.17g", d);
}

/* add_scalar - a string, number or boolean as URL-encoded text (callers check the type). */
static void add_scalar(struct strbuf *sb, const cJSON *v)
{
	if (cJSON_IsString(v))
		sb_add_urlencoded(sb, v->valuestring);
	else if (cJSON_IsNumber(v))
		add_number(sb, v->valuedouble);
	else if (cJSON_IsBool(v))
		sb_adds(sb, cJSON_IsTrue(v) ? "true" : "false");
}

/* query_sep - '?' before the first query parameter of url, '&' after. */
static void query_sep(struct strbuf *url)
{
	sb_addch(url, strchr(url->buf, '?') ? '&' : '?');
}

/* add_query_pair - appends name=value; name is given already encoded. */
static void add_query_pair(struct strbuf *url, const char *enc_name, const cJSON *v)
{
	query_sep(url);
	sb_adds(url, enc_name);
	sb_addch(url, '=');
	add_scalar(url, v);
}

/* add_path - the op's path with each {param} replaced by its escaped value. */
static int add_path(struct strbuf *url, const struct op_def *op, const cJSON *params,
                    struct strbuf *err)
{
	const char *p = op->path;

	while (*p) {
		const char *open = strchr(p, '{'), *close;
		const cJSON *v;
		char *name;

		if (!open) {
			sb_adds(url, p);
			break;
		}
		close = strchr(open, '}');
		if (!close)
			return fail(err, "bad path template %s for %s", op->path, op->operation_id);
		sb_add(url, p, (size_t)(open - p));
		name = xstrndup(open + 1, (size_t)(close - open - 1));
		v = cJSON_GetObjectItemCaseSensitive(params, name);
		if (cJSON_IsString(v) && v->valuestring[0]) {
			sb_add_urlencoded(url, v->valuestring);
		} else if (cJSON_IsNumber(v) && is_integral(v->valuedouble)) {
			add_number(url, v->valuedouble);
		} else {
			fail(err, "%s path parameter %s", v ? "invalid" : "missing", name);
			free(name);
			return -1;
		}
		free(name);
		p = close + 1;
	}
	return 0;
}

/* pagination_count - the page size to send: page_count, else params', else 0 (none). */
static int pagination_count(const cJSON *pagination, int page_count, long long *count,
                            struct strbuf *err)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(pagination, "count");

	*count = 0;
	if (page_count > 0) {
		*count = page_count;
		return 0;
	}
	if (!c)
		return 0;
	if (!cJSON_IsNumber(c) || !is_integral(c->valuedouble) || c->valuedouble < 1)
		return fail(err, "pagination.count must be a positive integer");
	*count = (long long)c->valuedouble;
	return 0;
}

/* add_pagination - pagination[count]=N&pagination[cursor]=C, brackets escaped. */
static int add_pagination(struct strbuf *url, const struct op_def *op, const cJSON *pagination,
                          const char *cursor, int page_count, struct strbuf *err)
{
	const cJSON *c;
	long long count;

	if (pagination && !cJSON_IsObject(pagination))
		return fail(err, "pagination for %s must be an object", op->operation_id);
	if (pagination_count(pagination, page_count, &count, err))
		return -1;
	c = cJSON_GetObjectItemCaseSensitive(pagination, "cursor");
	if (!op->paginated || !cursor) {
		if (c && !cJSON_IsString(c) && !cJSON_IsNull(c))
			return fail(err, "pagination.cursor must be a string");
		cursor = cJSON_IsString(c) ? c->valuestring : NULL;
	}
	if (cursor && !*cursor)
		cursor = NULL;
	/* Segment rejects a cursor without a count: keep the default page size then. */
	if (cursor && count == 0)
		count = PAGINATE_DEFAULT_COUNT;
	if (count == 0)
		return 0;
	query_sep(url);
	sb_addf(url, "pagination%%5Bcount%%5D=%lld", count);
	if (cursor) {
		sb_adds(url, "&pagination%5Bcursor%5D=");
		sb_add_urlencoded(url, cursor);
	}
	return 0;
}

/* enum_allows - whether s is one of the NULL-terminated values (all pass when NULL). */
static int enum_allows(const char *const *values, const char *s)
{
	if (!values)
		return 1;
	for (; *values; values++)
		if (!strcmp(*values, s))
			return 1;
	return 0;
}

/* add_string_array - name.0=a&name.1=b, each value checked against the enum. */
static int add_string_array(struct strbuf *url, const struct op_param *param, const cJSON *v,
                            struct strbuf *err)
{
	struct strbuf key = STRBUF_INIT;
	const cJSON *item;
	int i = 0;

	if (!cJSON_IsArray(v))
		return fail(err, "%s must be an array of strings", param->name);
	cJSON_ArrayForEach(item, v)
	{
		if (!cJSON_IsString(item) || !enum_allows(param->enum_values, item->valuestring)) {
			sb_release(&key);
			return fail(err, "invalid value in %s[%d]", param->name, i);
		}
		sb_reset(&key);
		sb_add_urlencoded(&key, param->name);
		sb_addf(&key, ".%d", i++);
		add_query_pair(url, key.buf, item);
	}
	sb_release(&key);
	return 0;
}

/* add_query_param - one PARAM_QUERY parameter of a catalog operation. */
static int add_query_param(struct strbuf *url, const struct op_param *param, const cJSON *v,
                           struct strbuf *err)
{
	struct strbuf key = STRBUF_INIT;

	if (param->type == PT_STRING_ARRAY)
		return add_string_array(url, param, v, err);
	if (cJSON_IsArray(v) || cJSON_IsObject(v))
		return fail(err, "%s must be a single value", param->name);
	if (param->type == PT_ENUM &&
	    !(cJSON_IsString(v) && enum_allows(param->enum_values, v->valuestring)))
		return fail(err, "invalid value for %s", param->name);
	if ((param->type == PT_DATETIME || param->type == PT_STRING) && !cJSON_IsString(v))
		return fail(err, "%s must be a string", param->name);
	sb_add_urlencoded(&key, param->name);
	add_query_pair(url, key.buf, v);
	sb_release(&key);
	return 0;
}

/* add_query - the op's query parameters present in params, in catalog order. */
static int add_query(struct strbuf *url, const struct op_def *op, const cJSON *params,
                     const char *cursor, int page_count, struct strbuf *err)
{
	for (size_t i = 0; i < op->nparams; i++) {
		const struct op_param *param = &op->params[i];
		const cJSON *v;

		if (param->in != PARAM_QUERY)
			continue;
		v = cJSON_GetObjectItemCaseSensitive(params, param->name);
		if (param->type == PT_PAGINATION) {
			if (add_pagination(url, op, cJSON_IsNull(v) ? NULL : v, cursor, page_count,
			                   err))
				return -1;
			continue;
		}
		if (!v || cJSON_IsNull(v))
			continue;
		if (add_query_param(url, param, v, err))
			return -1;
	}
	return 0;
}

/* add_body - a JSON object of the op's body parameters present in params, printed
 * straight into the body. */
static void add_body(struct built_request *out, const struct op_def *op, const cJSON *params)
{
	int declared = 0, first = 1;

	if (strcmp(op->method, "GET") == 0 || strcmp(op->method, "DELETE") == 0)
		return;
	sb_addch(&out->body, '{');
	for (size_t i = 0; i < op->nparams; i++) {
		const struct op_param *param = &op->params[i];
		if (param->in != PARAM_BODY)
			continue;
		declared = 1;
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, param->name);
		if (!v)
			continue;
		if (!first)
			sb_addch(&out->body, ',');
		first = 0;
		sb_add_json_string(&out->body, param->name);
		sb_addch(&out->body, ':');
		sb_add_json_value(&out->body, v);
	}
	sb_addch(&out->body, '}');
	if (!declared)
		sb_reset(&out->body);
	out->has_body = declared;
}

/* check_known - every member of params is a parameter of op. */
static int check_known(const struct op_def *op, const cJSON *params, struct strbuf *err)
{
	const cJSON *item;

	if (params && !cJSON_IsObject(params))
		return fail(err, "parameters for %s must be an object", op->operation_id);
	cJSON_ArrayForEach(item, params)
	{
		if (!item->string || !catalog_param(op, item->string))
			return fail(err, "unknown parameter %s for %s",
			            item->string ? item->string : "(unnamed)", op->operation_id);
	}
	return 0;
}

/* set_media_type - application/vnd.segment.VERSION+json. */
static void set_media_type(struct built_request *out, const char *version)
{
	snprintf(out->media_type, sizeof(out->media_type), "application/vnd.segment.%s+json",
	         version);
}

/* raw_method - the static method string for a raw request, or NULL. */
static const char *raw_method(const cJSON *v)
{
	static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};

	if (!cJSON_IsString(v))
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
		if (!strcasecmp(v->valuestring, methods[i]))
			return methods[i];
	return NULL;
}

/* catalog_raw_path_problem - the one rule for a raw path, for validation and building:
 * relative to the base URL, it cannot leave it (no scheme, no //host, no .. even
 * percent-encoded), split the request line or carry a query or fragment. */
const char *catalog_raw_path_problem(const char *path)
{
	if (path[0] != '/')
		return "it does not start with /";
	if (path[1] == '/')
		return "it starts with //";
	if (strstr(path, "://"))
		return "it contains ://";
	if (strstr(path, "..") || strcasestr(path, "%2e"))
		return "it contains .. (or %2e, an encoded dot)";
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (*p <= ' ' || *p == 0x7f)
			return "it contains a forbidden character (whitespace or a control "
			       "character)";
		if (*p == '?' || *p == '#')
			return "it contains a forbidden character, ? or # (give the query as "
			       "params.query)";
	}
	return NULL;
}

/* raw_path_ok - catalog_raw_path_problem as a build error. */
static int raw_path_ok(const char *path, struct strbuf *err)
{
	const char *why = catalog_raw_path_problem(path);
	return why ? fail(err, "invalid raw path: %s", why) : 0;
}

/* add_raw_member - one member of raw query: scalar, name.N array or name[key] object. */
static int add_raw_member(struct strbuf *url, const cJSON *v, struct strbuf *err)
{
	struct strbuf key = STRBUF_INIT;
	const cJSON *container = cJSON_IsArray(v) || cJSON_IsObject(v) ? v : NULL;
	const cJSON *item;
	int i = 0, rc = 0;

	if (!container && !cJSON_IsNull(v)) {
		sb_add_urlencoded(&key, v->string);
		add_query_pair(url, key.buf, v);
	}
	cJSON_ArrayForEach(item, container)
	{
		if (cJSON_IsNull(item))
			continue;
		if (cJSON_IsArray(item) || cJSON_IsObject(item)) {
			rc = fail(err, "raw query %s nests too deep", v->string);
			break;
		}
		sb_reset(&key);
		sb_add_urlencoded(&key, v->string);
		if (cJSON_IsArray(v)) {
			sb_addf(&key, ".%d", i++);
		} else {
			/* Brackets escaped, as for pagination[count]: what Segment's SDKs send. */
			sb_adds(&key, "%5B");
			sb_add_urlencoded(&key, item->string);
			sb_adds(&key, "%5D");
		}
		add_query_pair(url, key.buf, item);
	}
	sb_release(&key);
	return rc;
}

/* build_raw - the generic request: method, path, query, body and version from params. */
static int build_raw(const cJSON *params, struct built_request *out, struct strbuf *err)
{
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(params, "path");
	const cJSON *query = cJSON_GetObjectItemCaseSensitive(params, "query");
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(params, "body");
	const cJSON *version = cJSON_GetObjectItemCaseSensitive(params, "version");
	const struct op_param *vparam = catalog_param(find_exact("raw"), "version");
	const cJSON *members = cJSON_IsObject(query) ? query : NULL;
	const cJSON *member;

	out->method = raw_method(cJSON_GetObjectItemCaseSensitive(params, "method"));
	if (!out->method)
		return fail(err, "raw method must be one of GET, POST, PUT, PATCH, DELETE");
	if (!cJSON_IsString(path))
		return fail(err, "raw path must be a string");
	if (raw_path_ok(path->valuestring, err))
		return -1;
	if (version && !cJSON_IsNull(version) &&
	    !(cJSON_IsString(version) && vparam &&
	      enum_allows(vparam->enum_values, version->valuestring)))
		return fail(err, "raw version must be one of v1, v1beta, v1alpha");
	if (query && !cJSON_IsNull(query) && !cJSON_IsObject(query))
		return fail(err, "raw query must be an object");
	sb_adds(&out->url, path->valuestring);
	cJSON_ArrayForEach(member, members)
	{
		if (add_raw_member(&out->url, member, err))
			return -1;
	}
	if (body && !cJSON_IsNull(body)) {
		char *text = cJSON_PrintUnformatted(body);
		if (!text)
			die("out of memory building a raw body");
		sb_adds(&out->body, text);
		cJSON_free(text);
		out->has_body = 1;
	}
	set_media_type(out, cJSON_IsString(version) ? version->valuestring : "v1");
	return 0;
}

/* build_op - a catalog operation's request: path, query and body from params. */
static int build_op(const struct op_def *op, const cJSON *params, const char *cursor,
                    int page_count, struct built_request *out, struct strbuf *err)
{
	out->method = op->method;
	if (add_path(&out->url, op, params, err))
		return -1;
	if (add_query(&out->url, op, params, cursor, page_count, err))
		return -1;
	add_body(out, op, params);
	set_media_type(out, op->version);
	return 0;
}

/* catalog_build - (op, params) as method, URL, body and media type against base_url. */
int catalog_build(const struct op_def *op, const struct cJSON *params, const char *base_url,
                  const char *cursor, int page_count, struct built_request *out, struct strbuf *err)
{
	int rc;

	sb_reset(&out->url);
	sb_reset(&out->body);
	out->has_body = 0;
	out->method = NULL;
	out->media_type[0] = '\0';
	if (!op)
		return fail(err, "no operation to build");
	if (check_known(op, params, err))
		return -1;
	sb_adds(&out->url, base_url ? base_url : "");
	if (op->is_raw)
		rc = build_raw(params, out, err);
	else
		rc = build_op(op, params, cursor, page_count, out, err);
	if (rc) {
		sb_reset(&out->url);
		sb_reset(&out->body);
		out->has_body = 0;
		out->method = NULL;
		out->media_type[0] = '\0';
	}
	return rc;
}
