/* emu_params.c - reading a call's parameters the way the API does: path params from the
 * catalog's path template, query params in every encoding the SDKs use, the JSON body
 * checked against the op's param list; plus error envelopes and pagination cursors.
 */
#include "emu.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* --- envelopes ---------------------------------------------------------------------- */

/* error_type - the envelope's "type" for a status, as the API's examples spell them. */
const char *error_type(int status)
{
	switch (status) {
	case 400:
		return "BadRequest";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "NotFound";
	case 406:
		return "NotAcceptable";
	case 409:
		return "Conflict";
	case 413:
		return "PayloadTooLarge";
	case 415:
		return "UnsupportedMediaType";
	case 422:
		return "ValidationFailure";
	case 429:
		return "RateLimited";
	case 502:
		return "BadGateway";
	case 503:
		return "ServiceUnavailable";
	case 504:
		return "GatewayTimeout";
	default:
		return status >= 500 ? "InternalServerError" : "BadRequest";
	}
}

/* error_envelope - {"errors":[{type, message, field?, status}]}. */
cJSON *error_envelope(int status, const char *field, const char *message)
{
	cJSON *env = cJSON_CreateObject();
	cJSON *errs = cJSON_AddArrayToObject(env, "errors");
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "type", error_type(status));
	cJSON_AddStringToObject(e, "message", message);
	if (field)
		cJSON_AddStringToObject(e, "field", field);
	cJSON_AddNumberToObject(e, "status", status);
	cJSON_AddItemToArray(errs, e);
	return env;
}

/* call_fail - replaces whatever the call had as output with an error envelope. */
void call_fail(struct emu_call *c, int status, const char *field, const char *fmt, ...)
{
	struct strbuf msg = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	sb_vaddf(&msg, fmt, ap);
	va_end(ap);
	cJSON_Delete(c->out);
	c->out = error_envelope(status, field, msg.buf);
	c->status = status;
	sb_release(&msg);
}

/* call_data - a fresh {"data":{}} envelope with the operation's success status. */
cJSON *call_data(struct emu_call *c)
{
	cJSON_Delete(c->out);
	c->out = cJSON_CreateObject();
	c->status = c->op->success_status;
	return cJSON_AddObjectToObject(c->out, "data");
}

/* --- cursors: base64 of the decimal offset, "MA==" is offset 0 ---------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* cursor_encode - the cursor of a page starting at offset. */
void cursor_encode(size_t offset, char out[32])
{
	char dec[24];
	int n = snprintf(dec, sizeof(dec), "%zu", offset);
	size_t o = 0;
	for (int i = 0; i < n; i += 3) {
		unsigned v = (unsigned)(unsigned char)dec[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)(unsigned char)dec[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)dec[i + 2];
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	out[o] = '\0';
}

/* b64_value - a base64 digit's value, or -1. */
static int b64_value(char ch)
{
	const char *p = ch ? strchr(b64, ch) : NULL;
	return p ? (int)(p - b64) : -1;
}

/* cursor_decode - the offset a cursor names; -1 if it is not one of ours. */
int cursor_decode(const char *cursor, size_t *offset)
{
	char dec[32];
	size_t len = strlen(cursor), n = 0;
	if (len == 0 || len % 4 || len > 28)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		for (int k = 0; k < 4; k++) {
			v[k] = cursor[i + (size_t)k] == '=' && i + 4 == len && k >= 2
			           ? 0
			           : b64_value(cursor[i + (size_t)k]);
			if (v[k] < 0)
				return -1;
		}
		unsigned bits = (unsigned)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
		dec[n++] = (char)(bits >> 16);
		if (cursor[i + 2] != '=')
			dec[n++] = (char)(bits >> 8 & 255);
		if (cursor[i + 3] != '=')
			dec[n++] = (char)(bits & 255);
	}
	dec[n] = '\0';
	if (n == 0 || n > 18 || strspn(dec, "0123456789") != n)
		return -1;
	*offset = (size_t)strtoull(dec, NULL, 10);
	return 0;
}

/* page_add - data.pagination {current, next?, previous?, totalEntries}. */
void page_add(cJSON *data, const struct emu_page *page, size_t total)
{
	char cur[32];
	cJSON *p = cJSON_AddObjectToObject(data, "pagination");
	cursor_encode(page->offset, cur);
	cJSON_AddStringToObject(p, "current", cur);
	if (page->offset + page->count < total) {
		cursor_encode(page->offset + page->count, cur);
		cJSON_AddStringToObject(p, "next", cur);
	}
	if (page->offset > 0) {
		cursor_encode(page->offset > page->count ? page->offset - page->count : 0, cur);
		cJSON_AddStringToObject(p, "previous", cur);
	}
	cJSON_AddNumberToObject(p, "totalEntries", (double)total);
}

/* --- the query string ------------------------------------------------------------- */

/* query_add - keeps MHD's pointers: they live as long as the request. */
void query_add(struct emu_query *q, const char *key, const char *value)
{
	if (q->n == q->alloc) {
		q->alloc = q->alloc ? q->alloc * 2 : 8;
		q->args = xrealloc(q->args, q->alloc * sizeof(*q->args));
	}
	q->args[q->n].key = key;
	q->args[q->n].value = value ? value : "";
	q->n++;
}

/* query_release - frees the argument list (not the strings, which are MHD's). */
void query_release(struct emu_query *q)
{
	free(q->args);
	q->args = NULL;
	q->n = q->alloc = 0;
}

/* key_sub - when key is name, name[sub] or name.sub: 1 and *sub (NULL for the bare
 * name); else 0. sub is not NUL-terminated for the bracket form: *sublen says. */
static int key_sub(const char *key, const char *name, const char **sub, size_t *sublen)
{
	size_t n = strlen(name);
	if (strncmp(key, name, n) != 0)
		return 0;
	const char *rest = key + n;
	if (*rest == '\0') {
		*sub = NULL;
		*sublen = 0;
		return 1;
	}
	if (*rest == '.') {
		*sub = rest + 1;
		*sublen = strlen(rest + 1);
		return 1;
	}
	const char *close = *rest == '[' ? strchr(rest, ']') : NULL;
	if (!close || close[1] != '\0')
		return 0;
	*sub = rest + 1;
	*sublen = (size_t)(close - rest - 1);
	return 1;
}

/* query_scalar - the value of the bare name, first occurrence. */
static const char *query_scalar(const struct emu_query *q, const char *name)
{
	for (size_t i = 0; i < q->n; i++)
		if (strcmp(q->args[i].key, name) == 0)
			return q->args[i].value;
	return NULL;
}

/* add_csv - each comma-separated piece of value as a string of arr. */
static void add_csv(cJSON *arr, const char *value)
{
	const char *p = value;
	while (*p) {
		size_t n = strcspn(p, ",");
		if (n) {
			char *piece = xstrndup(p, n);
			cJSON_AddItemToArray(arr, cJSON_CreateString(piece));
			free(piece);
		}
		p += n;
		if (*p == ',')
			p++;
	}
}

/* query_array - name=a&name=b, name.0=a, name[0]=a, name[]=a and name=a,b: all one array. */
static cJSON *query_array(const struct emu_query *q, const char *name)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; i < q->n; i++) {
		const char *sub;
		size_t sublen;
		if (!key_sub(q->args[i].key, name, &sub, &sublen))
			continue;
		if (sub && strspn(sub, "0123456789") != sublen)
			continue;
		add_csv(arr, q->args[i].value);
	}
	return arr;
}

/* parse_count - pagination.count: an integer in 1..EMU_MAX_COUNT. */
static int parse_count(const char *s, size_t *count)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > EMU_MAX_COUNT)
		return -1;
	*count = (size_t)v;
	return 0;
}

/* pagination_json - the Python SDK's pagination={"count":N,"cursor":"..."}. */
static int pagination_json(const char *value, char **count, char **cursor)
{
	cJSON *o = cJSON_Parse(value);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return -1;
	}
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "count");
	if (cJSON_IsNumber(n)) {
		char buf[32];
		snprintf(buf, sizeof(buf), "%.17g", n->valuedouble);
		*count = xstrdup(buf);
	} else if (cJSON_IsString(n)) {
		*count = xstrdup(n->valuestring);
	}
	const char *cur = json_str(o, "cursor");
	if (cur)
		*cursor = xstrdup(cur);
	cJSON_Delete(o);
	return 0;
}

/* read_pagination - c->page from pagination[count]/[cursor], .count/.cursor or JSON. */
static int read_pagination(struct emu_call *c, const struct emu_query *q)
{
	char *count = NULL, *cursor = NULL;
	int bad_json = 0, ret = -1;
	for (size_t i = 0; i < q->n; i++) {
		const char *sub;
		size_t sublen;
		if (!key_sub(q->args[i].key, "pagination", &sub, &sublen))
			continue;
		char **slot = NULL;
		if (!sub) {
			free(count);
			free(cursor);
			count = cursor = NULL;
			bad_json |= pagination_json(q->args[i].value, &count, &cursor) != 0;
			continue;
		}
		if (sublen == 5 && strncmp(sub, "count", 5) == 0)
			slot = &count;
		else if (sublen == 6 && strncmp(sub, "cursor", 6) == 0)
			slot = &cursor;
		if (slot && !*slot)
			*slot = xstrdup(q->args[i].value);
	}
	c->page.offset = 0;
	c->page.count = EMU_DEFAULT_COUNT;
	if (bad_json)
		call_fail(c, 422, "pagination", "pagination must be an object with count");
	else if (cursor && !count)
		call_fail(c, 422, "pagination.count", "pagination.count is required");
	else if (count && parse_count(count, &c->page.count))
		call_fail(c, 422, "pagination.count",
		          "pagination.count must be an integer from 1 to %d", EMU_MAX_COUNT);
	else if (cursor && *cursor && cursor_decode(cursor, &c->page.offset))
		call_fail(c, 422, "pagination.cursor", "pagination.cursor is not a valid cursor");
	else
		ret = 0;
	free(count);
	free(cursor);
	return ret;
}

/* in_enum - s is one of the NULL-terminated values (or there are none). */
static int in_enum(const char *const *values, const char *s)
{
	if (!values)
		return 1;
	for (; *values; values++)
		if (strcmp(*values, s) == 0)
			return 1;
	return 0;
}

/* enum_list - "DAY, HOUR, MINUTE" for messages. */
static void enum_list(struct strbuf *sb, const char *const *values)
{
	for (size_t i = 0; values && values[i]; i++)
		sb_addf(sb, "%s%s", i ? ", " : "", values[i]);
}

/* fail_enum - 422 naming the allowed values. */
static int fail_enum(struct emu_call *c, const struct op_param *p, const char *got)
{
	struct strbuf allowed = STRBUF_INIT;
	enum_list(&allowed, p->enum_values);
	call_fail(c, 422, p->name, "%s must be one of %s (got \"%s\")", p->name, allowed.buf, got);
	sb_release(&allowed);
	return -1;
}

/* read_query_array - an array query param into c->in. */
static int read_query_array(struct emu_call *c, const struct emu_query *q, const struct op_param *p)
{
	cJSON *arr = query_array(q, p->name);
	if (cJSON_GetArraySize(arr) == 0) {
		cJSON_Delete(arr);
		if (p->required) {
			call_fail(c, 422, p->name, "%s is required", p->name);
			return -1;
		}
		return 0;
	}
	cJSON_AddItemToObject(c->in, p->name, arr);
	const cJSON *v;
	cJSON_ArrayForEach(v, arr)
	{
		if (!in_enum(p->enum_values, v->valuestring))
			return fail_enum(c, p, v->valuestring);
	}
	return 0;
}

/* read_query_scalar - a string, enum, number, boolean or date query param into c->in. */
static int read_query_scalar(struct emu_call *c, const struct emu_query *q,
                             const struct op_param *p)
{
	const char *v = query_scalar(q, p->name);
	int64_t ms;
	char *end;
	if (!v || !*v) {
		if (p->required) {
			call_fail(c, 422, p->name, "%s is required", p->name);
			return -1;
		}
		return 0;
	}
	switch (p->type) {
	case PT_ENUM:
		if (!in_enum(p->enum_values, v))
			return fail_enum(c, p, v);
		break;
	case PT_DATETIME:
		if (parse_iso8601(v, &ms)) {
			call_fail(c, 422, p->name, "%s must be an ISO-8601 date-time", p->name);
			return -1;
		}
		break;
	case PT_NUMBER:
		strtod(v, &end);
		if (*end) {
			call_fail(c, 422, p->name, "%s must be a number", p->name);
			return -1;
		}
		break;
	case PT_BOOLEAN:
		if (strcmp(v, "true") && strcmp(v, "false")) {
			call_fail(c, 422, p->name, "%s must be true or false", p->name);
			return -1;
		}
		break;
	default:
		break;
	}
	cJSON_AddStringToObject(c->in, p->name, v);
	return 0;
}

/* type_ok - whether a body value has the declared type. */
static int type_ok(const struct op_param *p, const cJSON *v)
{
	const cJSON *e;
	switch (p->type) {
	case PT_STRING:
	case PT_DATETIME:
		return cJSON_IsString(v);
	case PT_ENUM:
		return cJSON_IsString(v) && in_enum(p->enum_values, v->valuestring);
	case PT_BOOLEAN:
		return cJSON_IsBool(v);
	case PT_NUMBER:
		return cJSON_IsNumber(v);
	case PT_OBJECT:
	case PT_PAGINATION:
		return cJSON_IsObject(v);
	case PT_ARRAY:
		return cJSON_IsArray(v);
	case PT_STRING_ARRAY:
		if (!cJSON_IsArray(v))
			return 0;
		cJSON_ArrayForEach(e, v)
		{
			if (!cJSON_IsString(e) || !in_enum(p->enum_values, e->valuestring))
				return 0;
		}
		return 1;
	case PT_ANY:
		return 1;
	}
	return 0;
}

/* type_name - the expected type, for messages. */
static const char *type_name(enum param_type t)
{
	switch (t) {
	case PT_STRING:
		return "a string";
	case PT_BOOLEAN:
		return "a boolean";
	case PT_NUMBER:
		return "a number";
	case PT_OBJECT:
		return "an object";
	case PT_ARRAY:
		return "an array";
	case PT_STRING_ARRAY:
		return "an array of strings";
	case PT_ENUM:
		return "one of the allowed values";
	case PT_PAGINATION:
		return "an object with count";
	case PT_DATETIME:
		return "an ISO-8601 date-time string";
	case PT_ANY:
		return "anything";
	}
	return "valid";
}

/* read_body - required fields present, known fields well typed; others are ignored,
 * as the real API ignores them. */
static int read_body(struct emu_call *c)
{
	for (size_t i = 0; i < c->op->nparams; i++) {
		const struct op_param *p = &c->op->params[i];
		if (p->in != PARAM_BODY)
			continue;
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->body, p->name);
		if (!v || cJSON_IsNull(v)) {
			if (p->required) {
				call_fail(c, 422, p->name, "%s is required", p->name);
				return -1;
			}
			continue;
		}
		if (!type_ok(p, v)) {
			call_fail(c, 422, p->name, "%s must be %s", p->name, type_name(p->type));
			return -1;
		}
	}
	return 0;
}

/* read_path - the values of {name} segments of op->path, into c->in. */
static int read_path(struct emu_call *c, const char *path)
{
	const char *t = c->op->path, *s = path;
	while (*t && *s) {
		if (*t == '{') {
			const char *tend = strchr(t, '}');
			size_t slen = strcspn(s, "/");
			if (!tend || slen == 0)
				break;
			char *name = xstrndup(t + 1, (size_t)(tend - t - 1));
			char *value = xstrndup(s, slen);
			cJSON_AddStringToObject(c->in, name, value);
			free(name);
			free(value);
			t = tend + 1;
			s += slen;
		} else if (*t++ != *s++) {
			break;
		}
	}
	if (*t || (*s && strcmp(s, "/") != 0)) {
		call_fail(c, 404, NULL, "no route for %s", path);
		return -1;
	}
	return 0;
}

/* call_read_params - everything the handler reads, validated; -1 after call_fail. */
int call_read_params(struct emu_call *c, const char *path, const struct emu_query *q)
{
	c->in = cJSON_CreateObject();
	c->page.offset = 0;
	c->page.count = EMU_DEFAULT_COUNT;
	if (read_path(c, path))
		return -1;
	for (size_t i = 0; i < c->op->nparams; i++) {
		const struct op_param *p = &c->op->params[i];
		int r = 0;
		if (p->in != PARAM_QUERY)
			continue;
		if (p->type == PT_PAGINATION)
			r = read_pagination(c, q);
		else if (p->type == PT_STRING_ARRAY || p->type == PT_ARRAY)
			r = read_query_array(c, q, p);
		else
			r = read_query_scalar(c, q, p);
		if (r)
			return -1;
	}
	return read_body(c);
}
