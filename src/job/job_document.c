/* job_document.c - a whole job document: byte-level checks first (size, NUL, UTF-8,
 * nesting), then cJSON, as one JSON value or JSON Lines; each job to parse_job, and keys
 * used twice in one file. */
#include "job_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "strbuf.h"
#include "util.h"

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
