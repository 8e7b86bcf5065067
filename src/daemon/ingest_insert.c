/* ingest_insert.c - a checked file's jobs inserted under a savepoint, with its row (the
 * results file's count) and their dependencies; a large JSON Lines file read, checked and
 * inserted INGEST_CHUNK_JOBS lines at a time. */
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

/* note_file_id - store_file_of_job's row: its file's id. */
static int note_file_id(const struct file_rec *f, void *arg)
{
	*(int64_t *)arg = f->id;
	return 0;
}

/* of_this_file - 1 when job id, which holds a key the file has, is one of the file's own
 * jobs (the key given twice in it), 0 when another file's, -1 on a store error. With one
 * writer a file's jobs are the ids from its first on; daemons ingesting into one shared
 * store at once take ids from one sequence in turns, so the id alone cannot tell. */
static int of_this_file(struct daemon *d, int64_t id, int64_t file_id)
{
	int64_t of = 0;
	if (store_file_of_job(d->st, id, note_file_id, &of) < 0)
		return -1;
	return of == file_id;
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
		if (fi->first && id >= fi->first) {
			int own = of_this_file(d, id, fi->file_id);
			if (own < 0)
				return -1;
			if (own)
				return 1;
		}
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
int insert_jobs(struct daemon *d, const char *name, const char *hash,
                const struct store_file_id *fid, const struct job_list *list, const int *lines,
                int64_t now)
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
int ingest_chunked(struct daemon *d, const char *name, const char *hash,
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
