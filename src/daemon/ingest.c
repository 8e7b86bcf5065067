/* ingest.c - spool intake: a file in incoming/ is read and validated (outputs inside the
 * output directory, clashing neither with each other nor with unfinished jobs), then its
 * jobs are inserted under a savepoint, or the file is rejected; an ingested file leaves
 * incoming/ only after the commit (archive_committed). */
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

/* names_push - appends a copy of name. */
void names_push(struct names *ns, const char *name)
{
	if (ns->n == ns->alloc) {
		ns->alloc = ns->alloc ? ns->alloc * 2 : 64;
		ns->v = xrealloc(ns->v, ns->alloc * sizeof(*ns->v));
	}
	ns->v[ns->n++] = xstrdup(name);
}

/* names_has - linear search; only the small stuck list uses it. */
static int names_has(const struct names *ns, const char *name)
{
	for (size_t i = ns->head; i < ns->n; i++)
		if (strcmp(ns->v[i], name) == 0)
			return 1;
	return 0;
}

/* names_clear - frees every name. */
void names_clear(struct names *ns)
{
	for (size_t i = ns->head; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
	memset(ns, 0, sizeof(*ns));
}

/* reject_file - rejected/NAME with NAME.error.json beside it; the daemon runs on. */
static void reject_file(struct daemon *d, const char *name, const struct job_list *problems)
{
	char *doc = job_problems_json(problems, name);
	logmsg(LOG_WARN, "rejected %s: %s%s%s", name,
	       problems->nproblems ? problems->problems[0].where : "",
	       problems->nproblems && problems->problems[0].where[0] ? ": " : "",
	       problems->nproblems ? problems->problems[0].what : "invalid");
	if (spool_reject(&d->sp, name, doc) < 0) {
		logmsg(LOG_ERROR,
		       "cannot move %s to rejected/; leaving it in incoming/ until restart", name);
		names_push(&d->stuck, name);
	}
	d->files_rejected++;
	free(doc);
}

/* reject_reason - a file-level problem (unreadable, a directory, too big). */
static void reject_reason(struct daemon *d, const char *name, const char *why)
{
	struct job_list list;
	memset(&list, 0, sizeof(list));
	job_problem_add(&list, "", 0, why, "a regular JSON or JSON Lines file");
	reject_file(d, name, &list);
	job_list_release(&list);
}

/* doc_shape - how a file's jobs are addressed in its problems: "/output" in a single
 * object, "/N/output" in an array, "/output" with a line number in JSON Lines. */
struct doc_shape {
	const char *data;
	size_t len;
	int array, lines;
};

/* shape_of - the file's format, and whether a JSON document is an array. */
static struct doc_shape shape_of(const char *name, const struct strbuf *data)
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
static void check_outputs(struct daemon *d, struct job_list *list, const struct doc_shape *sh)
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
static void check_file_clashes(struct job_list *list, const struct doc_shape *sh)
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
static int check_store_clashes(struct daemon *d, struct job_list *list, const struct doc_shape *sh)
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

/* file_insert - one file's insertion: its row, the ids its jobs took, its duplicates. */
struct file_insert {
	int64_t file_id, first, last;
	int dups;
	size_t base; /* the index in the file of the list's first job */
};

static int insert_jobs_of(struct daemon *d, const char *name, const struct job_list *list,
                          const int *lines, int64_t now, struct file_insert *fi, int64_t *ids);

/* insert_list - a list's jobs (the whole file's, or a chunk of it) into the open
 * savepoint: 0; 1 when a key is that of an earlier job of this very file (a chunk cannot
 * see the others: the caller checks the file whole); -1 on a store error. */
static int insert_list(struct daemon *d, const char *name, const struct job_list *list,
                       const int *lines, int64_t now, struct file_insert *fi)
{
	/* the ids the jobs took, for their dependencies once all are in (refs.c) */
	int64_t *ids = xcalloc(list->njobs ? list->njobs : 1, sizeof(*ids));
	int rc = insert_jobs_of(d, name, list, lines, now, fi, ids);
	if (rc == 0 && refs_record(d, list, ids, now) < 0)
		rc = -1;
	free(ids);
	return rc;
}

/* insert_jobs_of - insert_list's jobs, each one's id into ids[i] (0: a duplicate). */
static int insert_jobs_of(struct daemon *d, const char *name, const struct job_list *list,
                          const int *lines, int64_t now, struct file_insert *fi, int64_t *ids)
{
	for (size_t i = 0; i < list->njobs; i++) {
		const struct job *j = &list->jobs[i];
		char *spec = job_to_json(j);
		struct job_new nj = {
		    .op_id = j->op->operation_id,
		    .spec_json = spec,
		    .key = j->key,
		    .workspace = j->workspace,
		    .output_path = j->output,
		    .source_file = name,
		    .priority = j->priority,
		    .not_before_ms = j->not_before_ms,
		    .max_attempts = j->max_attempts ? j->max_attempts : d->cfg->retry.max_attempts,
		    .paginated = j->op->paginated && j->paginate != PAGINATE_NONE,
		    .mutates = job_mutates(j),
		    .file_id = fi->file_id,
		    .line = lines[i],
		};
		int64_t id = 0;
		int rc = store_job_insert(d->st, &nj, now, &id);
		free(spec);
		if (rc < 0)
			return -1;
		if (rc == STORE_INSERTED) {
			fi->first = fi->first ? fi->first : id;
			fi->last = id;
			ids[i] = id;
			continue;
		}
		if (fi->first && id >= fi->first)
			return 1;
		if (store_file_dup(d->st, fi->file_id, lines[i], id) < 0)
			return -1;
		fi->dups++;
		log_job(LOG_INFO, id, NULL, NULL,
		        "%s: job %zu has key \"%s\", already recorded as job %lld: not run again",
		        name, fi->base + i, j->key, (long long)id);
	}
	return 0;
}

/* file_begin - the savepoint, and the file's row first: its jobs name it, and it counts
 * those not yet ended (results_file.c). */
static int file_begin(struct daemon *d, const char *name, const char *hash,
                      const struct store_file_id *fid, int64_t now, size_t njobs,
                      struct file_insert *fi)
{
	memset(fi, 0, sizeof(*fi));
	txn(d);
	if (store_savepoint(d->st) < 0)
		return -1;
	if (store_file_begin(d->st, name, hash, fid, now, (int)njobs, njobs > 1, &fi->file_id) <
	    0) {
		store_rollback_to(d->st);
		return -1;
	}
	return 0;
}

/* file_end - the range of the file's ids recorded, the savepoint released. */
static int file_end(struct daemon *d, size_t njobs, const struct file_insert *fi)
{
	if (store_file_jobs(d->st, fi->file_id, fi->first, fi->last, (int)njobs) < 0 ||
	    store_release(d->st) < 0) {
		store_rollback_to(d->st);
		return -1;
	}
	d->jobs_ingested += (int64_t)njobs - fi->dups;
	d->duplicates += fi->dups;
	return 0;
}

/* insert_jobs - one file's jobs, under a savepoint of the iteration's transaction. */
static int insert_jobs(struct daemon *d, const char *name, const char *hash,
                       const struct store_file_id *fid, const struct job_list *list,
                       const int *lines, int64_t now)
{
	struct file_insert fi;
	if (file_begin(d, name, hash, fid, now, list->njobs, &fi) < 0)
		return -1;
	if (insert_list(d, name, list, lines, now, &fi) != 0) {
		store_rollback_to(d->st);
		return -1;
	}
	return file_end(d, list->njobs, &fi);
}

/* chunk_end - the end of the first INGEST_CHUNK_JOBS jobs (non-blank lines) of buf, or
 * of the lines it holds whole (at eof also a last line without its newline); their
 * count and the lines passed in *njobs and *nlines. */
static size_t chunk_end(const struct strbuf *buf, int eof, size_t *njobs, int *nlines)
{
	size_t pos = 0;
	*njobs = 0;
	*nlines = 0;
	while (pos < buf->len && *njobs < INGEST_CHUNK_JOBS) {
		const char *nl = memchr(buf->buf + pos, '\n', buf->len - pos);
		if (!nl && !eof)
			break; /* the rest of this line is still to be read */
		size_t end = nl ? (size_t)(nl - buf->buf) : buf->len;
		for (size_t k = pos; k < end; k++)
			if (buf->buf[k] != ' ' && buf->buf[k] != '\t' && buf->buf[k] != '\r') {
				++*njobs;
				break;
			}
		++*nlines;
		pos = nl ? end + 1 : end;
	}
	return pos;
}

/* line_reader - a file read a window at a time, from where the last chunk ended. */
struct line_reader {
	int fd;
	off_t off;
	struct strbuf buf;
	int eof, failed;
};

/* reader_fill - one more window of the file onto buf. */
static void reader_fill(struct line_reader *r)
{
	sb_grow(&r->buf, INGEST_READ_WINDOW);
	ssize_t n = pread(r->fd, r->buf.buf + r->buf.len, INGEST_READ_WINDOW, r->off);
	if (n < 0 && errno == EINTR)
		return;
	if (n <= 0) {
		r->failed = n < 0;
		r->eof = 1;
		return;
	}
	r->off += n;
	sb_setlen(&r->buf, r->buf.len + (size_t)n);
}

/* ingest_chunk - one chunk's jobs parsed, checked and inserted: 0, 1 a problem, -1. */
static int ingest_chunk(struct daemon *d, const char *name, const struct strbuf *chunk,
                        int first_chunk, int line_off, int64_t now, struct file_insert *fi)
{
	struct job_list list;
	memset(&list, 0, sizeof(list));
	int rc;
	/* a byte-order mark is one only at the start of the file */
	if ((!first_chunk && chunk->len >= 3 && memcmp(chunk->buf, "\xef\xbb\xbf", 3) == 0) ||
	    job_parse_buffer(chunk->buf, chunk->len, JOB_FORMAT_JSONL, &list)) {
		rc = 1;
	} else {
		struct doc_shape sh = shape_of(name, chunk);
		check_outputs(d, &list, &sh);
		check_file_clashes(&list, &sh);
		/* references: to earlier chunks' jobs through the store; one to a later chunk is
		 * a problem here, and the whole file's check then sees it right */
		rc = check_store_clashes(d, &list, &sh) < 0 || refs_check_file(d, &list) < 0 ? -1
		     : list.nproblems                                                        ? 1
		                                                                             : 0;
	}
	if (rc == 0) {
		results_default_outputs(&list, 1);
		int *lines = results_lines(chunk->buf, chunk->len, 1, list.njobs);
		for (size_t i = 0; i < list.njobs; i++)
			lines[i] += line_off;
		rc = insert_list(d, name, &list, lines, now, fi);
		fi->base += list.njobs;
		free(lines);
	}
	job_list_release(&list);
	return rc;
}

/* ingest_chunked - a large JSON Lines file read, parsed, checked and inserted
 * INGEST_CHUNK_JOBS lines at a time, so neither the file nor the jobs of its 100,000
 * lines are ever all in memory (a results file per batch makes one file of 20,000 jobs
 * the normal case). Its lines are independent; what one chunk cannot see of another (a
 * key given twice, an output two chunks name) the store sees, the earlier chunks' jobs
 * being in it. 0: ingested; 1: a problem anywhere: nothing kept, and the file is then
 * read and checked whole, as any file, for its list of problems; -1 store error. */
static int ingest_chunked(struct daemon *d, const char *name, const char *hash,
                          const struct store_file_id *fid, int fd)
{
	struct file_insert fi;
	int64_t now = clock_wall_ms();
	if (file_begin(d, name, hash, fid, now, 2, &fi) < 0)
		return -1;
	struct line_reader r = {.fd = fd, .buf = STRBUF_INIT};
	int rc = 0, line_off = 0, first_chunk = 1;
	size_t njobs = 0;
	while (rc == 0 && !(r.eof && !r.buf.len)) {
		size_t n;
		int lines_in;
		size_t end = chunk_end(&r.buf, r.eof, &n, &lines_in);
		if (n < INGEST_CHUNK_JOBS && !r.eof) {
			if (r.buf.len > JOB_MAX_LINE_BYTES + INGEST_READ_WINDOW)
				rc = 1; /* a line too long: the whole file's check says so */
			else
				reader_fill(&r);
			continue;
		}
		if (r.failed)
			rc = 1;
		else if (n)
			rc = ingest_chunk(d, name, &(struct strbuf){.buf = r.buf.buf, .len = end},
			                  first_chunk, line_off, now, &fi);
		njobs += n;
		line_off += lines_in;
		first_chunk = 0;
		memmove(r.buf.buf, r.buf.buf + end, r.buf.len - end);
		sb_setlen(&r.buf, r.buf.len - end);
		if (!end && r.eof)
			break;
	}
	sb_release(&r.buf);
	if (rc == 0 && njobs > JOB_MAX_JOBS)
		rc = 1;
	if (rc != 0) {
		store_rollback_to(d->st);
		return rc;
	}
	return file_end(d, njobs, &fi) < 0 ? -1 : 0;
}

/* file_id_of - the identity of a file read, as the store keeps it. */
static struct store_file_id file_id_of(const struct stat *st)
{
	struct store_file_id id = {
	    .dev = (int64_t)st->st_dev,
	    .ino = (int64_t)st->st_ino,
	    .ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + (int64_t)st->st_ctim.tv_nsec,
	    .size = (int64_t)st->st_size,
	};
	return id;
}

/* archive_push - name leaves incoming/ after the commit, if it is still the file read. */
static void archive_push(struct daemon *d, const char *name, const struct store_file_id *id)
{
	if (d->archive.n == d->archive_ids_alloc) {
		d->archive_ids_alloc = d->archive_ids_alloc ? 2 * d->archive_ids_alloc : 64;
		d->archive_ids =
		    xrealloc(d->archive_ids, d->archive_ids_alloc * sizeof(*d->archive_ids));
	}
	d->archive_ids[d->archive.n] = *id;
	names_push(&d->archive, name);
}

/* recognised - this very file's jobs were committed and it never left incoming/: a stop
 * came between the commit and the move. It is moved, its jobs not added again. (An event
 * and a rescan that name a file twice in one iteration find it too: moved once.) */
static void recognised(struct daemon *d, const char *name, const char *hash,
                       const struct store_file_id *id, int how)
{
	if (names_has(&d->archive, name))
		return;
	if (how == STORE_FILE_LEGACY) {
		/* recorded before identities were kept: matched by name and content, as then,
		 * this once; a later file of that name and content is new */
		txn(d);
		if (store_file_adopt(d->st, name, hash, id) < 0)
			write_failed(d, 0, "record the identity of an ingested file");
	}
	logmsg(LOG_INFO,
	       "%s: this file's jobs were recorded before a stop, but it had not left "
	       "incoming/ (%s); moving it without adding them again",
	       name,
	       how == STORE_FILE_LEGACY ? "the same name and content, recorded by an older "
	                                  "segspool"
	                                : "the same file: name, content, inode and ctime");
	archive_push(d, name, id);
}

static void ingested(struct daemon *d, const char *name, const struct store_file_id *fid);

/* hash_file - the content hash ingest records (hash_hex of the whole file), read a
 * window at a time; the jobs (non-blank lines) counted on the way. 0, or -1 when the
 * file is not the size its fstat said (it is being written: the whole read tells). */
static int hash_file(int fd, int64_t size, char hash[17], size_t *njobs)
{
	char win[INGEST_READ_WINDOW];
	uint64_t h = FNV1A64_INIT;
	int64_t off = 0;
	int blank = 1;
	*njobs = 0;
	for (;;) {
		ssize_t n = pread(fd, win, sizeof(win), (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		h = fnv1a64_mem(win, (size_t)n, h);
		for (ssize_t k = 0; k < n; k++) {
			if (win[k] == '\n') {
				*njobs += !blank;
				blank = 1;
			} else if (win[k] != ' ' && win[k] != '\t' && win[k] != '\r') {
				blank = 0;
			}
		}
		off += n;
	}
	*njobs += !blank;
	snprintf(hash, 17, "%016llx", (unsigned long long)h);
	return off == size ? 0 : -1;
}

/* ingest_streamed - a JSON Lines file of more than INGEST_CHUNK_JOBS jobs, hashed and
 * ingested a window and a chunk at a time (ingest_chunked): 0 done (ingested, or left
 * for a later scan after a store error, logged), 1 for the ordinary path (a small file,
 * one recorded before, anything to report about it). */
static int ingest_streamed(struct daemon *d, const char *name)
{
	int fd = openat(d->sp.incoming_fd, name,
	                O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	struct stat fst;
	char hash[17];
	size_t njobs = 0;
	int rc = 1;
	if (fd < 0)
		return 1;
	if (fstat(fd, &fst) < 0 || !S_ISREG(fst.st_mode) || fst.st_size > JOB_MAX_FILE_BYTES ||
	    hash_file(fd, (int64_t)fst.st_size, hash, &njobs) < 0 || njobs <= INGEST_CHUNK_JOBS ||
	    njobs > JOB_MAX_JOBS)
		goto out;
	struct store_file_id fid = file_id_of(&fst);
	if (store_file_seen(d->st, name, hash, &fid) != STORE_FILE_NEW)
		goto out; /* recognised (or an error to report) on the ordinary path */
	rc = ingest_chunked(d, name, hash, &fid, fd);
	if (rc == 0)
		ingested(d, name, &fid);
	else if (rc < 0)
		logmsg(LOG_ERROR, "cannot record the jobs of %s: %s; it stays in incoming/", name,
		       store_errmsg(d->st));
	rc = rc > 0;
out:
	close(fd);
	return rc;
}

/* ingested - the file's jobs are in the transaction: it moves after the commit. */
static void ingested(struct daemon *d, const char *name, const struct store_file_id *fid)
{
	archive_push(d, name, fid);
	d->files_ingested++;
	logmsg(LOG_DEBUG, "ingested %s", name);
}

/* ingest_one - parse, validate, insert; the file moves after the commit. */
static void ingest_one(struct daemon *d, const char *name)
{
	struct strbuf data = STRBUF_INIT, why = STRBUF_INIT;
	struct stat fst;
	if (names_has(&d->stuck, name))
		goto out;
	if (job_format_for_name(name) == JOB_FORMAT_JSONL && ingest_streamed(d, name) == 0)
		goto out;
	if (spool_read(&d->sp, name, JOB_MAX_FILE_BYTES, &data, &why, &fst) < 0) {
		if (faccessat(d->sp.incoming_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			goto out; /* already moved: a rescan and an event named it twice */
		reject_reason(d, name, why.buf);
		goto out;
	}
	char hash[17];
	hash_hex(data.buf, data.len, hash);
	struct store_file_id fid = file_id_of(&fst);
	int seen = store_file_seen(d->st, name, hash, &fid);
	if (seen < 0) {
		logmsg(LOG_ERROR, "cannot look up %s in the store: %s", name, store_errmsg(d->st));
		goto out;
	}
	if (seen) {
		recognised(d, name, hash, &fid, seen);
		goto out;
	}
	struct job_list list;
	memset(&list, 0, sizeof(list));
	int bad = job_parse_buffer(data.buf, data.len, job_format_for_name(name), &list);
	if (!bad) {
		struct doc_shape sh = shape_of(name, &data);
		check_outputs(d, &list, &sh);
		check_file_clashes(&list, &sh);
		if (check_store_clashes(d, &list, &sh) < 0 || refs_check_file(d, &list) < 0) {
			logmsg(LOG_ERROR,
			       "cannot check the outputs of %s against the store: %s; it "
			       "stays in incoming/",
			       name, store_errmsg(d->st));
			job_list_release(&list);
			goto out;
		}
	}
	int *lines = NULL;
	if (!bad && !list.nproblems) { /* a batch's jobs: one results file (results_file.c) */
		results_default_outputs(&list, results_wanted(&list));
		lines = results_lines(data.buf, data.len,
		                      job_format_for_name(name) == JOB_FORMAT_JSONL, list.njobs);
	}
	if (bad || list.nproblems) {
		reject_file(d, name, &list);
	} else if (insert_jobs(d, name, hash, &fid, &list, lines, clock_wall_ms()) < 0) {
		logmsg(LOG_ERROR, "cannot record the jobs of %s: %s; it stays in incoming/", name,
		       store_errmsg(d->st));
	} else {
		ingested(d, name, &fid);
	}
	free(lines);
	job_list_release(&list);
out:
	sb_release(&data);
	sb_release(&why);
}

static int scan_one(const char *name, void *arg)
{
	names_push(&((struct daemon *)arg)->pending, name);
	return 0;
}

/* output_dir_path - the output directory as configured, NULL for the spool's own out/. */
const char *output_dir_path(const struct daemon *d)
{
	return d->cfg->output_dir && *d->cfg->output_dir ? d->cfg->output_dir : NULL;
}

/* check_store_file - the database is still the file we write; else stop: our commits
 * would go where nobody looks. */
static void check_store_file(struct daemon *d)
{
	char *err = NULL;
	if (store_check_file(d->st, &err) < 0)
		die("%s; stopping without committing anything more (files not yet moved out of "
		    "incoming/ stay there, to be ingested into the database the next start "
		    "finds)",
		    err);
}

/* check_files - at each rescan: the database still the file we write, the spool's
 * directories still the ones open (else reopened, and what we knew of incoming/
 * forgotten). */
static void check_files(struct daemon *d)
{
	check_store_file(d);
	int rc = spool_refresh(&d->sp, output_dir_path(d));
	if (rc < 0)
		die("cannot go on with spool %s; stopping (nothing is lost: files not yet "
		    "committed stay in incoming/)",
		    d->sp.root);
	if (rc > 0)
		names_clear(&d->stuck); /* names of the old incoming/ */
}

/* ingest_pending - up to claim_batch files per iteration, so requests keep flowing. */
void ingest_pending(struct daemon *d)
{
	if (d->pending.head == d->pending.n && d->scan_needed) {
		names_clear(&d->pending);
		d->scan_needed = 0;
		d->last_scan_ms = clock_wall_ms();
		check_files(d);
		if (spool_scan(&d->sp, scan_one, d) < 0)
			logmsg(LOG_ERROR, "cannot scan %s/incoming", d->sp.root);
	}
	int budget = d->cfg->claim_batch;
	while (d->pending.head < d->pending.n && budget-- > 0) {
		char *name = d->pending.v[d->pending.head++];
		ingest_one(d, name);
		free(name);
	}
	if (d->pending.head == d->pending.n)
		names_clear(&d->pending);
}

/* replaced_since_read - name in incoming/ is no longer the file that was read (a writer
 * renamed a new file over it, or rewrote it in place): that one is not ingested yet and
 * must stay. */
static int replaced_since_read(struct daemon *d, const char *name, const struct store_file_id *id)
{
	struct stat st;
	if (fstatat(d->sp.incoming_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0; /* gone: spool_archive says what it can */
	return (int64_t)st.st_dev != id->dev || (int64_t)st.st_ino != id->ino ||
	       (int64_t)st.st_ctim.tv_sec * 1000000000 + (int64_t)st.st_ctim.tv_nsec !=
	           id->ctime_ns ||
	       (int64_t)st.st_size != id->size;
}

/* archive_committed - after the commit, ingested files leave incoming/: only if it was
 * committed into the database that is still there, or their jobs would be lost with it. */
void archive_committed(struct daemon *d)
{
	if (d->archive.n)
		check_store_file(d);
	for (size_t i = 0; i < d->archive.n; i++) {
		const char *name = d->archive.v[i];
		if (replaced_since_read(d, name, &d->archive_ids[i])) {
			logmsg(LOG_INFO,
			       "%s was replaced in incoming/ after it was read; the new file "
			       "is ingested on its own",
			       name);
			d->scan_needed = 1;
			continue;
		}
		if (spool_archive(&d->sp, name, d->cfg->keep_archive) < 0 &&
		    faccessat(d->sp.incoming_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			logmsg(LOG_ERROR,
			       "cannot move %s out of incoming/ (its jobs are recorded; "
			       "it will be recognised and moved on the next scan)",
			       name);
	}
	names_clear(&d->archive);
	free(d->archive_ids);
	d->archive_ids = NULL;
	d->archive_ids_alloc = 0;
}
