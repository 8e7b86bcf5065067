/* ingest_check.c - a file's jobs checked before any is inserted: outputs inside the
 * output directory, clashing neither with each other nor with unfinished jobs in the
 * store; each problem placed where it is (a pointer, a line). */
#include "daemon_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "config.h"
#include "job.h"
#include "output.h"
#include "spool.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

/* shape_of - the file's format, and whether a JSON document is an array. */
struct doc_shape shape_of(const char *name, const struct strbuf *data)
{
	struct doc_shape sh = {data->buf, data->len, 0, 0};
	sh.lines = job_format_for_name(name) == JOB_FORMAT_JSONL;
	const char *p = data->buf, *end = data->buf + data->len;
	if (end - p >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	sh.array = !sh.lines && p < end && *p == '[';
	return sh;
}

/* job_line - the line of the i-th job of a JSON Lines file (blank lines hold none; a
 * byte-order mark does not count). */
static int job_line(const struct doc_shape *sh, size_t i)
{
	int line = 0;
	size_t pos = sh->len >= 3 && memcmp(sh->data, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
	while (pos < sh->len) {
		const char *nl = memchr(sh->data + pos, '\n', sh->len - pos);
		size_t end = nl ? (size_t)(nl - sh->data) : sh->len;
		size_t k = pos;
		while (k < end &&
		       (sh->data[k] == ' ' || sh->data[k] == '\t' || sh->data[k] == '\r'))
			k++;
		line++;
		if (k < end && i-- == 0)
			return line;
		pos = end + 1;
	}
	return 0;
}

/* output_problem - a problem with job i's output, where the file's shape says. */
static void output_problem(struct job_list *list, const struct doc_shape *sh, size_t i,
                           const char *what, const char *expected)
{
	char where[32];
	if (sh->array)
		snprintf(where, sizeof(where), "/%zu/output", i);
	else
		snprintf(where, sizeof(where), "/output");
	job_problem_add(list, where, sh->lines ? job_line(sh, i) : 0, what, expected);
}

/* check_outputs - output paths must not lead through a symlink out of out/. */
void check_outputs(struct daemon *d, struct job_list *list, const struct doc_shape *sh)
{
	for (size_t i = 0; i < list->njobs; i++) {
		const char *path = list->jobs[i].output;
		struct strbuf err = STRBUF_INIT;
		if (path && output_check_dirs(d->sp.out_fd, path, &err) < 0)
			output_problem(list, sh, i, err.buf, "a path inside the output directory");
		sb_release(&err);
	}
}

/* path_cmp - byte order with '/' below every other byte: a path is then followed at
 * once by the paths inside it ("d1", "d1/y.json", "d1-x"), so comparing neighbours finds
 * every clash. */
static int path_cmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned char x = *a == '/' ? 1 : (unsigned char)*a;
		unsigned char y = *b == '/' ? 1 : (unsigned char)*b;
		if (x != y || !x)
			return (int)x - (int)y;
	}
}

/* is_dir_of - a is a directory on b's path ("d1" of "d1/y.json"). */
static int is_dir_of(const char *a, const char *b)
{
	size_t n = strlen(a);
	return strncmp(a, b, n) == 0 && b[n] == '/';
}

struct output_ref {
	const char *path;
	size_t job;
};

/* cmp_output_ref - by path (path_cmp), then by job index. */
static int cmp_output_ref(const void *pa, const void *pb)
{
	const struct output_ref *a = pa, *b = pb;
	int c = path_cmp(a->path, b->path);
	return c ? c : (a->job > b->job) - (a->job < b->job);
}

/* clash_problem - job later's output clashes with other, the output of whose ("job 3 of
 * this file", "job 12, which has not finished"). */
static void clash_problem(struct job_list *list, const struct doc_shape *sh, size_t later,
                          const char *other, const char *whose)
{
	const char *path = list->jobs[later].output;
	struct strbuf what = STRBUF_INIT;
	if (strcmp(path, other) == 0)
		sb_addf(&what, "output \"%s\" is also the output of %s", path, whose);
	else if (is_dir_of(other, path))
		sb_addf(&what, "output \"%s\" lies inside \"%s\", the output of %s", path, other,
		        whose);
	else
		sb_addf(&what, "output \"%s\" is a directory of \"%s\", the output of %s", path,
		        other, whose);
	output_problem(list, sh, later, what.buf,
	               "an output no other job writes, and neither inside nor around another's");
	sb_release(&what);
}

/* check_file_clashes - two jobs of the file with the same output, or one's inside the
 * other's: one would replace the other's file, or find a file where it needs a directory. */
void check_file_clashes(struct job_list *list, const struct doc_shape *sh)
{
	struct output_ref *refs = xmalloc((list->njobs ? list->njobs : 1) * sizeof(*refs));
	size_t n = 0;
	for (size_t i = 0; i < list->njobs; i++)
		if (list->jobs[i].output)
			refs[n++] = (struct output_ref){list->jobs[i].output, i};
	qsort(refs, n, sizeof(*refs), cmp_output_ref);
	for (size_t k = 1; k < n; k++) {
		const struct output_ref *a = &refs[k - 1], *b = &refs[k];
		if (strcmp(a->path, b->path) != 0 && !is_dir_of(a->path, b->path))
			continue;
		const struct output_ref *first = a->job < b->job ? a : b;
		const struct output_ref *later = a->job < b->job ? b : a;
		char whose[48];
		snprintf(whose, sizeof(whose), "job %zu of this file", first->job);
		clash_problem(list, sh, later->job, first->path, whose);
	}
	free(refs);
}

/* check_store_clashes - a job's output against the explicit outputs of unfinished jobs
 * already recorded. A job whose key is recorded is skipped: it is not added again. */
int check_store_clashes(struct daemon *d, struct job_list *list, const struct doc_shape *sh)
{
	for (size_t i = 0; i < list->njobs; i++) {
		const struct job *j = &list->jobs[i];
		if (!j->output)
			continue;
		int dup = j->key ? store_key_recorded(d->st, j->key) : 0;
		int64_t id = 0;
		char *other = NULL;
		int rc = dup ? dup : store_output_conflict(d->st, j->output, &id, &other);
		if (rc < 0)
			return -1;
		if (rc && !dup) {
			char whose[64];
			snprintf(whose, sizeof(whose), "job %lld, which has not finished",
			         (long long)id);
			clash_problem(list, sh, i, other, whose);
		}
		free(other);
	}
	return 0;
}
