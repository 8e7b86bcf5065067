/* job_refs.c - what a job waits for: its "after" keys and the {"$ref": "KEY#/pointer"}
 * values in its params, checked one job at a time at parse; then, over a whole file, that
 * every key names a job of the file or of the store and that no jobs wait in a cycle, and
 * the file's dependency layers. Pure: no I/O, no clock. */
#include "job_int.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "strbuf.h"
#include "util.h"

static const char ref_expected[] = "{\"$ref\": \"KEY#/pointer\"}: a job's key, '#', then an "
                                   "RFC 6901 pointer into its result (\"\" for the whole)";

/* --- a set of strings, by index into the caller's array ------------------------------ */

/* open addressing over indices + 1 (0 = empty); the strings stay the caller's */
struct name_set {
	size_t *slots;
	size_t cap;
};

/* name_set_init - room for n names at load under one half. */
static void name_set_init(struct name_set *s, size_t n)
{
	s->cap = 16;
	while (s->cap < 2 * n)
		s->cap *= 2;
	s->slots = xcalloc(s->cap, sizeof(*s->slots));
}

/* name_set_slot - the slot of name, or of the empty slot where it would go. */
static size_t *name_set_slot(const struct name_set *s, const char *name,
                             const char *(*name_of)(size_t i, const void *arg), const void *arg)
{
	size_t h = (size_t)fnv1a64(name, FNV1A64_INIT) & (s->cap - 1);
	while (s->slots[h] && strcmp(name_of(s->slots[h] - 1, arg), name))
		h = (h + 1) & (s->cap - 1);
	return &s->slots[h];
}

/* string_at - name_of over a plain array of strings. */
static const char *string_at(size_t i, const void *arg)
{
	return ((char *const *)arg)[i];
}

/* job_key_at - name_of over a job_list's jobs (their keys). */
static const char *job_key_at(size_t i, const void *arg)
{
	return ((const struct job_list *)arg)->jobs[i].key;
}

/* --- one job: its after and its references ------------------------------------------- */

/* is_ref_object - an object whose only member is "$ref": a reference, not a value. */
int is_ref_object(const cJSON *v)
{
	return cJSON_IsObject(v) && v->child && !v->child->next && v->child->string &&
	       !strcmp(v->child->string, "$ref");
}

/* pointer_problem - why s is not an RFC 6901 pointer ("" or "/..." with ~ only as ~0 and
 * ~1), or NULL. */
static const char *pointer_problem(const char *s)
{
	if (*s && *s != '/')
		return "the pointer must be empty or start with '/'";
	for (; *s; s++)
		if (*s == '~' && s[1] != '0' && s[1] != '1')
			return "'~' in a pointer must be followed by 0 or 1";
	return NULL;
}

/* add_ref - one {"$ref"} at path: checked, then kept in j. */
static int add_ref(struct ctx *c, const cJSON *v, const char *path, struct job *j)
{
	const cJSON *s = v->child;
	char buf[SHOWN_BYTES + 4];
	const char *hash, *why = NULL;
	struct strbuf rel = STRBUF_INIT;

	sb_adds(&rel, "/params");
	sb_adds(&rel, path);
	if (!cJSON_IsString(s)) {
		if (c)
			wrong_type(c, rel.buf, "$ref", s, ref_expected);
		goto bad;
	}
	hash = strchr(s->valuestring, '#');
	if (!hash)
		why = "no '#' between the key and the pointer";
	else if (!valid_key_n(s->valuestring, (size_t)(hash - s->valuestring)))
		why =
		    "the key must be 1 to " STR(MAX_KEY_BYTES) " bytes without control characters";
	else if (!(why = pointer_problem(hash + 1)) && j->key &&
	         strlen(j->key) == (size_t)(hash - s->valuestring) &&
	         !memcmp(j->key, s->valuestring, strlen(j->key)))
		why = "it names the job's own key";
	if (why) {
		if (c)
			ctx_problem(c, rel.buf, ref_expected, "invalid reference \"%s\": %s",
			            shown(s->valuestring, buf), why);
		goto bad;
	}
	if (is_pow2_or_zero(j->nrefs))
		j->refs = xrealloc(j->refs, (j->nrefs ? 2 * j->nrefs : 1) * sizeof(*j->refs));
	struct job_ref *r = &j->refs[j->nrefs++];
	r->param_pointer = xstrdup(path);
	r->key = xstrndup(s->valuestring, (size_t)(hash - s->valuestring));
	r->pointer = xstrdup(hash + 1);
	sb_release(&rel);
	return 0;
bad:
	sb_release(&rel);
	return -1;
}

/* where find_refs puts what it finds */
struct refs_walk {
	struct ctx *c;
	struct job *j;
};

/* find_refs - json_walk's visit: a {"$ref"} at path in params, not walked into. */
static int find_refs(const cJSON *v, struct strbuf *path, void *arg)
{
	struct refs_walk *w = arg;
	if (!is_ref_object(v))
		return 0;
	return add_ref(w->c, v, path->buf, w->j) < 0 ? -1 : 1;
}

/* after_union - the references' keys after the given ones, each key once. */
static void after_union(struct job *j)
{
	struct name_set set;
	size_t cap = j->nafter + j->nrefs;

	name_set_init(&set, cap);
	j->after = xrealloc(j->after, (cap ? cap : 1) * sizeof(*j->after));
	for (size_t i = 0; i < j->nafter; i++)
		*name_set_slot(&set, j->after[i], string_at, j->after) = i + 1;
	for (size_t i = 0; i < j->nrefs; i++) {
		size_t *slot = name_set_slot(&set, j->refs[i].key, string_at, j->after);
		if (*slot)
			continue;
		j->after[j->nafter] = xstrdup(j->refs[i].key);
		*slot = ++j->nafter;
	}
	free(set.slots);
}

/* job_refs_collect - the references in params, and after as the union of the given keys
 * (j->after[0..nafter_given), already there) and theirs. 0, or -1 (with problems through c
 * when c is not NULL). */
int job_refs_collect(struct ctx *c, const cJSON *params, struct job *j)
{
	struct strbuf path = STRBUF_INIT;
	struct refs_walk w = {c, j};
	int rc = params ? json_walk(params, &path, find_refs, &w) : 0;
	sb_release(&path);
	after_union(j);
	return rc;
}

/* parse_after - "after": an array of distinct keys, none the job's own; then the
 * references in params (job_refs_collect). */
void parse_after(struct ctx *c, const cJSON *obj, const cJSON *params, struct job *j)
{
	static const char expected[] = "an array of the keys of jobs this one waits for";
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "after"), *e;
	struct strbuf rel = STRBUF_INIT;
	char buf[SHOWN_BYTES + 4];
	struct name_set set;
	size_t i = 0, n = 0;

	if (v && !cJSON_IsArray(v)) {
		wrong_type(c, "/after", "after", v, expected);
		v = NULL;
	}
	cJSON_ArrayForEach(e, v) n++;
	name_set_init(&set, n);
	j->after = xmalloc((n ? n : 1) * sizeof(*j->after));
	cJSON_ArrayForEach(e, v)
	{
		sb_reset(&rel);
		sb_addf(&rel, "/after/%zu", i++);
		if (!cJSON_IsString(e)) {
			wrong_type(c, rel.buf, "after element", e, "a job's key");
			continue;
		}
		if (!valid_key_n(e->valuestring, strlen(e->valuestring))) {
			ctx_problem(c, rel.buf,
			            "a string of 1 to " STR(
			                MAX_KEY_BYTES) " bytes without control characters",
			            "invalid key \"%s\" in after", shown(e->valuestring, buf));
			continue;
		}
		if (j->key && !strcmp(j->key, e->valuestring)) {
			ctx_problem(c, rel.buf, "the keys of other jobs",
			            "job waits for itself: \"%s\" is its own key",
			            shown(e->valuestring, buf));
			continue;
		}
		size_t *slot = name_set_slot(&set, e->valuestring, string_at, j->after);
		if (*slot) {
			ctx_problem(c, rel.buf, "each key once", "duplicate key \"%s\" in after",
			            shown(e->valuestring, buf));
			continue;
		}
		j->after[j->nafter] = xstrdup(e->valuestring);
		*slot = ++j->nafter;
	}
	free(set.slots);
	sb_release(&rel);
	j->nafter_given = j->nafter;
	if (cJSON_IsObject(params))
		job_refs_collect(c, params, j);
	else
		after_union(j);
}

/* job_refs_release - what job_refs_collect and parse_after gave j. */
void job_refs_release(struct job *j)
{
	for (size_t i = 0; i < j->nafter; i++)
		free(j->after[i]);
	for (size_t i = 0; i < j->nrefs; i++) {
		free(j->refs[i].param_pointer);
		free(j->refs[i].key);
		free(j->refs[i].pointer);
	}
	free(j->after);
	free(j->refs);
	j->after = NULL;
	j->refs = NULL;
	j->nafter = j->nafter_given = j->nrefs = 0;
}

/* --- a whole file: keys known, cycles, layers ---------------------------------------- */

/* the file's jobs as a graph: deps[dep_start[i]..dep_start[i + 1]) are the jobs of the
 * file job i waits for (by index), dep_at the after entry that names each */
struct graph {
	size_t *dep_start, *deps, *dep_at;
	size_t *user_start, *users; /* the other way: the jobs waiting for each */
};

/* key_index - the jobs' keys by index; the first of a key given twice wins. */
static void key_index(const struct job_list *list, struct name_set *set)
{
	name_set_init(set, list->njobs);
	for (size_t i = 0; i < list->njobs; i++) {
		if (!list->jobs[i].key)
			continue;
		size_t *slot = name_set_slot(set, list->jobs[i].key, job_key_at, list);
		if (!*slot)
			*slot = i + 1;
	}
}

/* graph_build - the edges among the file's jobs (a key outside the file is no edge; nor
 * is a job's own key, which parse refuses but job_from_json does not check). */
static void graph_build(const struct job_list *list, const struct name_set *keys, struct graph *g)
{
	size_t n = list->njobs, nedges = 0, k = 0;

	g->dep_start = xcalloc(n + 1, sizeof(size_t));
	for (size_t i = 0; i < n; i++)
		nedges += list->jobs[i].nafter;
	g->deps = xmalloc((nedges ? nedges : 1) * sizeof(size_t));
	g->dep_at = xmalloc((nedges ? nedges : 1) * sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		const struct job *j = &list->jobs[i];
		g->dep_start[i] = k;
		for (size_t m = 0; m < j->nafter; m++) {
			size_t at = *name_set_slot(keys, j->after[m], job_key_at, list);
			if (at && at - 1 != i) {
				g->deps[k] = at - 1;
				g->dep_at[k++] = m;
			}
		}
	}
	g->dep_start[n] = k;
	g->user_start = xcalloc(n + 1, sizeof(size_t));
	g->users = xmalloc((k ? k : 1) * sizeof(size_t));
	for (size_t e = 0; e < k; e++)
		g->user_start[g->deps[e] + 1]++;
	for (size_t i = 0; i < n; i++)
		g->user_start[i + 1] += g->user_start[i];
	size_t *fill = xmalloc((n ? n : 1) * sizeof(size_t));
	memcpy(fill, g->user_start, (n ? n : 1) * sizeof(size_t));
	for (size_t i = 0; i < n; i++)
		for (size_t e = g->dep_start[i]; e < g->dep_start[i + 1]; e++)
			g->users[fill[g->deps[e]]++] = i;
	free(fill);
}

/* graph_release - frees the arrays. */
static void graph_release(struct graph *g)
{
	free(g->dep_start);
	free(g->deps);
	free(g->dep_at);
	free(g->user_start);
	free(g->users);
}

/* graph_layers - Kahn's algorithm; returns the number of layers, -1 when jobs are left
 * (layer -1) in or after a cycle. */
static int graph_layers(const struct graph *g, size_t n, int *layer)
{
	size_t *left = xmalloc((n ? n : 1) * sizeof(size_t));
	size_t *queue = xmalloc((n ? n : 1) * sizeof(size_t));
	size_t head = 0, tail = 0;
	int nlayers = 0;

	for (size_t i = 0; i < n; i++) {
		left[i] = g->dep_start[i + 1] - g->dep_start[i];
		layer[i] = left[i] ? -1 : 0;
		if (!left[i])
			queue[tail++] = i;
	}
	while (head < tail) {
		size_t i = queue[head++];
		if (layer[i] + 1 > nlayers)
			nlayers = layer[i] + 1;
		for (size_t e = g->user_start[i]; e < g->user_start[i + 1]; e++) {
			size_t u = g->users[e];
			if (layer[i] + 1 > layer[u])
				layer[u] = layer[i] + 1;
			if (!--left[u])
				queue[tail++] = u;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (left[i])
			layer[i] = -1;
	free(left);
	free(queue);
	return tail == n ? nlayers : -1;
}

/* job_list_layers - see job.h. */
int job_list_layers(const struct job_list *list, int *layer_of_job)
{
	struct name_set keys;
	struct graph g;

	key_index(list, &keys);
	graph_build(list, &keys, &g);
	int rc = graph_layers(&g, list->njobs, layer_of_job);
	graph_release(&g);
	free(keys.slots);
	return rc;
}

/* job_ctx - a ctx for problems of the job at index i of the file. */
static void job_ctx(struct job_list *list, const struct job *j, char prefix[32], struct ctx *c)
{
	if (j->index >= 0)
		snprintf(prefix, 32, "/%d", j->index);
	else
		prefix[0] = '\0';
	c->list = list;
	c->prefix = prefix;
	c->line = j->line;
	c->bad = 0;
}

/* after_origin - where j's after[m] was given: "/after/N", or the params pointer of the
 * first reference naming it. */
static const char *after_origin(const struct job *j, size_t m, struct strbuf *sb)
{
	sb_reset(sb);
	if (m < j->nafter_given) {
		sb_addf(sb, "/after/%zu", m);
		return sb->buf;
	}
	for (size_t r = 0; r < j->nrefs; r++)
		if (!strcmp(j->refs[r].key, j->after[m])) {
			sb_adds(sb, "/params");
			sb_adds(sb, j->refs[r].param_pointer);
			break;
		}
	return sb->buf;
}

/* report_cycle - the cycle that the walk from start through unfinished deps runs into,
 * once: mark[] holds the walk that saw a job (0 none). Named from its first job in
 * file order, where that job names the next. */
static void report_cycle(struct job_list *list, const struct graph *g, const int *layer,
                         size_t *mark, size_t *next_edge, size_t start, size_t walk)
{
	size_t i = start;
	while (!mark[i]) {
		mark[i] = walk;
		size_t e = g->dep_start[i];
		while (layer[g->deps[e]] >= 0) /* an unfinished job waits for an unfinished one */
			e++;
		next_edge[i] = e;
		i = g->deps[e];
	}
	if (mark[i] != walk)
		return; /* into a cycle already reported */
	size_t first = i;
	for (size_t k = g->deps[next_edge[i]]; k != i; k = g->deps[next_edge[k]])
		if (k < first)
			first = k;
	struct strbuf what = STRBUF_INIT, rel = STRBUF_INIT;
	char buf[SHOWN_BYTES + 4], prefix[32];
	sb_adds(&what, "jobs wait for each other in a cycle: ");
	size_t k = first;
	do {
		sb_addf(&what, "\"%s\" waits for ", shown(list->jobs[k].key, buf));
		k = g->deps[next_edge[k]];
	} while (k != first);
	sb_addf(&what, "\"%s\"", shown(list->jobs[first].key, buf));
	const struct job *j = &list->jobs[first];
	struct ctx c;
	job_ctx(list, j, prefix, &c);
	ctx_problem(&c, after_origin(j, g->dep_at[next_edge[first]], &rel),
	            "jobs that wait for jobs before them, without a loop", "%s", what.buf);
	sb_release(&what);
	sb_release(&rel);
}

/* next_token - the reference token of pointer p (after its '/') decoded (~1 '/', ~0 '~')
 * into tok; returns where the next one starts ('/' or the end). */
static const char *next_token(const char *p, struct strbuf *tok)
{
	sb_reset(tok);
	for (; *p && *p != '/'; p++) {
		if (*p == '~' && (p[1] == '0' || p[1] == '1')) {
			sb_addch(tok, p[1] == '0' ? '~' : '/');
			p++;
		} else {
			sb_addch(tok, *p);
		}
	}
	return p;
}

/* --- a reference against the result shape of the job it names ------------------------- */

/* shape_type - the type the operation's result holds at pointer: 1 with *type, 0 when
 * the table does not know it. */
static int shape_type(const struct op_def *op, const char *pointer, size_t len,
                      enum param_type *type)
{
	for (size_t i = 0; i < op->nresult_shape; i++) {
		const char *p = op->result_shape[i].pointer;
		if (strlen(p) == len && !memcmp(p, pointer, len)) {
			*type = op->result_shape[i].type;
			return 1;
		}
	}
	return 0;
}

/* type_word - "a string", "an object", ... for a result member's type. */
static const char *type_word(enum param_type t)
{
	switch (t) {
	case PT_STRING:
		return "a string";
	case PT_NUMBER:
		return "a number";
	case PT_BOOLEAN:
		return "true or false";
	case PT_OBJECT:
		return "an object";
	case PT_ARRAY:
		return "an array";
	default:
		return "a value";
	}
}

/* type_fits - whether a parameter of type want can take a value of type got. */
static int type_fits(enum param_type want, enum param_type got)
{
	switch (want) {
	case PT_STRING:
	case PT_ENUM:
	case PT_DATETIME:
		return got == PT_STRING;
	case PT_NUMBER:
	case PT_BOOLEAN:
		return got == want;
	case PT_OBJECT:
	case PT_PAGINATION:
		return got == PT_OBJECT;
	case PT_ARRAY:
	case PT_STRING_ARRAY:
		return got == PT_ARRAY;
	case PT_ANY:
		return 1;
	}
	return 1;
}

/* param_of_ref - the parameter a reference stands for and the type its value must have:
 * a parameter itself ("/sourceId"), or an element of a string array ("/labels/0"). */
static int param_of_ref(const struct job *j, const struct job_ref *r, const char **name,
                        enum param_type *want)
{
	struct strbuf tok = STRBUF_INIT;
	const char *rest = next_token(r->param_pointer + 1, &tok);
	const struct op_param *p = catalog_param(j->op, tok.buf);
	int ok = 0;
	if (p && !*rest) {
		*want = p->type;
		ok = 1;
	} else if (p && p->type == PT_STRING_ARRAY && !strchr(rest + 1, '/')) {
		*want = PT_STRING;
		ok = 1;
	}
	if (ok)
		*name = p->name;
	sb_release(&tok);
	return ok;
}

/* members_of - "/source/id, /source/name, ..." (up to three) of the object at prefix
 * (plen bytes) in the result shape, into sb; returns how many it has. */
static size_t members_of(const struct op_def *op, const char *prefix, size_t plen,
                         struct strbuf *sb)
{
	size_t n = 0;
	for (size_t i = 0; i < op->nresult_shape; i++) {
		const char *m = op->result_shape[i].pointer;
		if (strlen(m) > plen + 1 && !memcmp(m, prefix, plen) && m[plen] == '/' &&
		    !strchr(m + plen + 1, '/') && n++ < 3)
			sb_addf(sb, "%s%s", n > 1 ? ", " : "", m);
	}
	if (n > 3)
		sb_adds(sb, ", ...");
	return n;
}

/* check_ref_shape - the pointer's members against what op's result holds, and the
 * value's type against its parameter's, where the operation table knows them. */
static void check_ref_shape(struct ctx *c, const struct job *j, const struct job_ref *r,
                            const struct op_def *op)
{
	char buf[SHOWN_BYTES + 4], kbuf[SHOWN_BYTES + 4];
	struct strbuf rel = STRBUF_INIT, members = STRBUF_INIT;
	enum param_type got = PT_OBJECT, want;
	const char *p = r->pointer, *name;

	/* pages are stored as a summary, not as the data object the table describes */
	if (!op->nresult_shape || op->is_raw || op->paginated)
		return;
	sb_adds(&rel, "/params");
	sb_adds(&rel, r->param_pointer);
	while (*p == '/') {
		size_t plen = (size_t)(p - r->pointer); /* the prefix already known */
		const char *next = strchr(p + 1, '/');
		size_t len = next ? (size_t)(next - r->pointer) : strlen(r->pointer);
		if (got == PT_ARRAY)
			goto out; /* an element: the table says no more */
		if (got == PT_OBJECT && shape_type(op, r->pointer, len, &got)) {
			p = r->pointer + len;
			continue;
		}
		sb_reset(&members);
		size_t n = got == PT_OBJECT ? members_of(op, r->pointer, plen, &members) : 0;
		if (got == PT_OBJECT && !n)
			goto out; /* an object the table does not detail */
		struct strbuf expected = STRBUF_INIT;
		if (n)
			sb_addf(&expected, "a pointer to a member the result has: %s", members.buf);
		else
			sb_addf(&expected, "a pointer that ends at %.*s, %s", (int)plen, r->pointer,
			        type_word(got));
		ctx_problem(c, rel.buf, expected.buf,
		            "reference \"%s#%s\": a result of %s cannot hold %.*s",
		            shown(r->key, kbuf), shown(r->pointer, buf), op->operation_id, (int)len,
		            r->pointer);
		sb_release(&expected);
		goto out;
	}
	if (param_of_ref(j, r, &name, &want) && !type_fits(want, got))
		ctx_problem(c, rel.buf, "a pointer to a value the parameter can take",
		            "reference \"%s#%s\" is %s in a result of %s, which %s cannot take",
		            shown(r->key, kbuf), shown(r->pointer, buf), type_word(got),
		            op->operation_id, name);
out:
	sb_release(&rel);
	sb_release(&members);
}

/* job_list_check_refs - see job.h. */
int job_list_check_refs(struct job_list *list, int (*known)(const char *key, void *arg), void *arg)
{
	size_t before = list->nproblems, n = list->njobs;
	struct strbuf rel = STRBUF_INIT;
	char buf[SHOWN_BYTES + 4], prefix[32];
	struct name_set keys;
	struct graph g;

	key_index(list, &keys);
	for (size_t i = 0; i < n; i++) {
		const struct job *j = &list->jobs[i];
		struct ctx c;
		job_ctx(list, j, prefix, &c);
		for (size_t m = 0; m < j->nafter; m++) {
			if (*name_set_slot(&keys, j->after[m], job_key_at, list) ||
			    (known && known(j->after[m], arg)))
				continue;
			ctx_problem(&c, after_origin(j, m, &rel),
			            "the key of a job in this file or already in the store",
			            "unknown key \"%s\"", shown(j->after[m], buf));
		}
		for (size_t r = 0; r < j->nrefs; r++) {
			size_t at = *name_set_slot(&keys, j->refs[r].key, job_key_at, list);
			if (at) /* one in the store is checked at claim, its result then known */
				check_ref_shape(&c, j, &j->refs[r], list->jobs[at - 1].op);
		}
	}
	graph_build(list, &keys, &g);
	int *layer = xmalloc((n ? n : 1) * sizeof(int));
	if (graph_layers(&g, n, layer) < 0) {
		size_t *mark = xcalloc(n, sizeof(size_t));
		size_t *next_edge = xcalloc(n, sizeof(size_t));
		for (size_t i = 0, walk = 0; i < n; i++)
			if (layer[i] < 0 && !mark[i])
				report_cycle(list, &g, layer, mark, next_edge, i, ++walk);
		free(mark);
		free(next_edge);
	}
	free(layer);
	graph_release(&g);
	free(keys.slots);
	sb_release(&rel);
	return (int)(list->nproblems - before);
}

/* --- at claim: a reference's value put in its place ----------------------------------- */

/* array_at - the element of arr a token names (digits, no leading zero), or NULL. */
static cJSON *array_at(const cJSON *arr, const char *tok)
{
	size_t n = strlen(tok), i = 0;
	if (!n || n > 9 || strspn(tok, "0123456789") != n || (n > 1 && tok[0] == '0'))
		return NULL;
	size_t want = (size_t)strtoul(tok, NULL, 10);
	cJSON *e;
	cJSON_ArrayForEach(e, arr)
	{
		if (i++ == want)
			return e;
	}
	return NULL;
}

/* job_pointer_get - see job.h. */
const cJSON *job_pointer_get(const cJSON *v, const char *pointer, struct strbuf *why)
{
	struct strbuf tok = STRBUF_INIT, at = STRBUF_INIT;
	const char *p = pointer;
	char buf[SHOWN_BYTES + 4];

	while (v && *p == '/') {
		const char *next = next_token(p + 1, &tok);
		const cJSON *child = NULL;
		if (cJSON_IsObject(v))
			child = cJSON_GetObjectItemCaseSensitive(v, tok.buf);
		else if (cJSON_IsArray(v))
			child = array_at(v, tok.buf);
		if (!child && why) {
			if (cJSON_IsObject(v))
				sb_addf(why, "no member \"%s\"", shown(tok.buf, buf));
			else if (cJSON_IsArray(v))
				sb_addf(why, "no element \"%s\" in an array of %d",
				        shown(tok.buf, buf), cJSON_GetArraySize(v));
			else
				sb_addf(why, "%s has no member \"%s\"", json_type_name(v),
				        shown(tok.buf, buf));
			if (at.len)
				sb_addf(why, " at %s", at.buf);
			else
				sb_adds(why, " at the top");
		}
		sb_add(&at, p, (size_t)(next - p));
		v = child;
		p = next;
	}
	sb_release(&tok);
	sb_release(&at);
	return v;
}

/* copy_nameless - a deep copy of v without its member name ("id" of the result): it
 * takes the reference's place and name. NULL when out of memory. */
static cJSON *copy_nameless(const cJSON *v)
{
	cJSON *copy = cJSON_Duplicate(v, 1);
	if (copy && copy->string) {
		if (!(copy->type & cJSON_StringIsConst))
			cJSON_free(copy->string);
		copy->string = NULL;
		copy->type &= ~cJSON_StringIsConst;
	}
	return copy;
}

/* job_ref_put - see job.h. */
int job_ref_put(struct job *job, const struct job_ref *ref, const cJSON *value)
{
	struct strbuf tok = STRBUF_INIT;
	const char *p = ref->param_pointer;
	cJSON *parent = job->params, *at = NULL;
	int rc = -1;

	while (parent && *p == '/') {
		const char *next = next_token(p + 1, &tok);
		at = cJSON_IsObject(parent)  ? cJSON_GetObjectItemCaseSensitive(parent, tok.buf)
		     : cJSON_IsArray(parent) ? array_at(parent, tok.buf)
		                             : NULL;
		if (!*next)
			break;
		parent = at;
		p = next;
	}
	if (at && is_ref_object(at)) {
		cJSON *copy = copy_nameless(value);
		if (!copy)
			die("cannot copy a reference's value: out of memory");
		if (at->string) {
			char *name = xstrdup(at->string);
			rc = cJSON_ReplaceItemInObjectCaseSensitive(parent, name, copy) ? 0 : -1;
			free(name);
		} else {
			rc = cJSON_ReplaceItemViaPointer(parent, at, copy) ? 0 : -1;
		}
		if (rc < 0)
			cJSON_Delete(copy);
	}
	sb_release(&tok);
	return rc;
}

/* job_params_problem - see job.h. */
int job_params_problem(const struct job *job, struct strbuf *why)
{
	struct job_list list = {0};
	struct ctx c = {&list, "", 0, 0};
	check_params(&c, job->op, job->params);
	if (list.nproblems) {
		sb_adds(why, list.problems[0].what);
		if (list.problems[0].expected)
			sb_addf(why, " (expected %s)", list.problems[0].expected);
	}
	int bad = list.nproblems != 0;
	job_list_release(&list);
	return bad ? -1 : 0;
}

/* job_list_check_stored_refs - see job.h. */
int job_list_check_stored_refs(struct job_list *list,
                               const struct op_def *(*op_of)(const char *key, void *arg), void *arg)
{
	size_t before = list->nproblems;
	char prefix[32];
	struct name_set keys;

	key_index(list, &keys);
	for (size_t i = 0; i < list->njobs; i++) {
		const struct job *j = &list->jobs[i];
		struct ctx c;
		job_ctx(list, j, prefix, &c);
		for (size_t r = 0; r < j->nrefs; r++) {
			if (*name_set_slot(&keys, j->refs[r].key, job_key_at, list))
				continue; /* the file's: job_list_check_refs's */
			const struct op_def *op = op_of(j->refs[r].key, arg);
			if (op)
				check_ref_shape(&c, j, &j->refs[r], op);
		}
	}
	free(keys.slots);
	return (int)(list->nproblems - before);
}
