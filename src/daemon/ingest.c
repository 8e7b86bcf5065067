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
