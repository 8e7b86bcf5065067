/* results_file.c - one results file per batch (issue 13): a spool file of more than one
 * job gets out/results/NAME.results.jsonl, one line per job in the file's order, once
 * every job of it has ended; its jobs keep their results in the store instead of writing
 * an output file each.
 *
 * Exactly once, whatever the moment of a kill -9: the store counts each file's jobs not
 * yet ended in the same transaction as their state changes (sql/sqlite/010_results.sql).
 * The commit that sees a count reach 0 also records the results file's name, chosen
 * free (results_reserve); only after that commit is the file written from the committed
 * rows (.part, fsync, rename, fsync of the directory) and then marked in place
 * (results_write). A stop before the commit leaves nothing: the jobs' ends are undone
 * with it and run again. A stop after it leaves a name without its file, or the file
 * whole under that name (a rename is atomic): the next start writes the one, keeps the
 * other. The file is not staged before the commit with the outputs: that commit could
 * still fail or be cut by a kill, and the file would then be in place for ends the store
 * never kept, and written a second time (as NAME-2) when the jobs end again. */
#include "daemon_int.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "job.h"
#include "output.h"
#include "spool.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

#define RESULTS_DIR "results"
#define RESULTS_SUFFIX ".results.jsonl"
#define RESULTS_STEM_MAX 200      /* bytes of the file's name kept in the results' name */
#define RESULTS_FLUSH_BYTES 65536 /* lines gathered before each write */
#define RESULTS_RETRY_MS 10000    /* after a results file could not be written */
#define SUBMIT_PREFIX_LEN 29      /* "<13 digits>-<7 digits>-<6 digits>-" (spool.c) */

/* results_wanted - the file gets a results file: more than one job. */
int results_wanted(const struct job_list *list)
{
	return list->njobs > 1;
}

/* results_default_outputs - in a file with a results file (batch: the list is all or
 * part of one), a job that names no output
 * keeps its result in the store ("output": false) and is listed in the results file;
 * paginated exports and split jobs keep their JSON Lines files, which a line of JSON
 * cannot hold. */
void results_default_outputs(struct job_list *list, int batch)
{
	if (!batch)
		return;
	for (size_t i = 0; i < list->njobs; i++) {
		struct job *j = &list->jobs[i];
		int pages = j->op->paginated && j->paginate != PAGINATE_NONE;
		if (!j->output && !pages && !j->split_ms)
			j->no_output = 1;
	}
}

/* results_lines - each job's line in the file: for JSON Lines its line number (blank
 * lines hold no job, a byte-order mark does not count), else its position from 1. One
 * pass over the data; malloc'd, njobs entries. */
int *results_lines(const char *data, size_t len, int jsonl, size_t njobs)
{
	int *lines = xmalloc((njobs ? njobs : 1) * sizeof(*lines));
	size_t i = 0;
	if (!jsonl) {
		for (; i < njobs; i++)
			lines[i] = (int)i + 1;
		return lines;
	}
	size_t pos = len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
	int line = 0;
	while (pos < len && i < njobs) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - data) : len;
		size_t k = pos;
		while (k < end && (data[k] == ' ' || data[k] == '\t' || data[k] == '\r'))
			k++;
		line++;
		if (k < end)
			lines[i++] = line;
		pos = end + 1;
	}
	for (; i < njobs; i++) /* not reached for a file the parser read */
		lines[i] = 0;
	return lines;
}

/* results_stem - the file's name as the user gave it: without the prefix `segspool
 * submit` adds, without its .json or .jsonl extension. */
static void results_stem(const char *name, int64_t file_id, struct strbuf *out)
{
	size_t n = strlen(name);
	const char *p = name;
	int prefixed = n > SUBMIT_PREFIX_LEN;
	for (size_t k = 0; prefixed && k < SUBMIT_PREFIX_LEN; k++)
		prefixed = (k == 13 || k == 21 || k == 28) ? name[k] == '-'
		                                           : (name[k] >= '0' && name[k] <= '9');
	if (prefixed)
		p += SUBMIT_PREFIX_LEN;
	n = strlen(p);
	if (n > 6 && strcmp(p + n - 6, ".jsonl") == 0)
		n -= 6;
	else if (n > 5 && strcmp(p + n - 5, ".json") == 0)
		n -= 5;
	sb_add(out, p, n < RESULTS_STEM_MAX ? n : RESULTS_STEM_MAX);
	struct strbuf probe = STRBUF_INIT;
	sb_addf(&probe, RESULTS_DIR "/%s-999" RESULTS_SUFFIX, out->buf);
	if (!out->len || output_path_check(probe.buf)) { /* a name no output can have */
		sb_reset(out);
		sb_addf(out, "file-%lld", (long long)file_id);
	}
	sb_release(&probe);
}

struct file_list {
	int64_t *ids;
	char **names; /* the file's name (due) or its results path (pending) */
	size_t n;
};

/* collect_file - a row of store_files_results_due/_pending, kept: the names are chosen
 * and the files written after the statement is done. */
static int collect_file(const struct file_rec *f, void *arg)
{
	struct file_list *l = arg;
	l->ids = xrealloc(l->ids, (l->n + 1) * sizeof(*l->ids));
	l->names = xrealloc(l->names, (l->n + 1) * sizeof(*l->names));
	l->ids[l->n] = f->id;
	l->names[l->n++] = xstrdup(f->results ? f->results : f->name);
	return 0;
}

static void file_list_release(struct file_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->ids);
	free(l->names);
	memset(l, 0, sizeof(*l));
}

/* out_fd - the output directory, reopened first if it was removed or replaced. */
static int out_fd(struct daemon *d)
{
	if (spool_refresh_out(&d->sp, output_dir_path(d)) < 0)
		logmsg(LOG_ERROR, "results files cannot be written until the output directory is "
		                  "back");
	return d->sp.out_fd;
}

/* name_free - no file there on disk, and no other file's results file named so. */
static int name_free(struct daemon *d, const char *path)
{
	if (faccessat(out_fd(d), path, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	int taken = store_results_name_taken(d->st, path);
	if (taken < 0)
		write_failed(d, 0, "look up the name of a results file");
	return taken == 0;
}

/* results_reserve - in the iteration's open transaction, just before its commit: each
 * file whose jobs have all ended gets its results file's name, NAME.results.jsonl or
 * NAME-2.results.jsonl and so on when that is taken. Cheap when none is due: one probe
 * of an index that holds only the files waiting for their results. */
void results_reserve(struct daemon *d)
{
	struct file_list due = {0};
	/* at start: a CLI command may have ended a file's last job while no daemon ran (a
	 * store locked by another process now: looked at by a later commit) */
	if (d->results_check && txn_try(d) == 0)
		d->results_check = 0;
	if (!d->in_txn)
		return;
	if (store_files_results_due(d->st, collect_file, &due) < 0) {
		write_failed(d, 0, "look up the files whose jobs have all ended");
		return;
	}
	for (size_t i = 0; i < due.n; i++) {
		struct strbuf stem = STRBUF_INIT, path = STRBUF_INIT;
		results_stem(due.names[i], due.ids[i], &stem);
		sb_addf(&path, RESULTS_DIR "/%s" RESULTS_SUFFIX, stem.buf);
		for (int n = 2; n < 1000 && !name_free(d, path.buf) && !d->txn_failed; n++) {
			sb_reset(&path);
			sb_addf(&path, RESULTS_DIR "/%s-%d" RESULTS_SUFFIX, stem.buf, n);
		}
		if (store_file_results_set(d->st, due.ids[i], path.buf) < 0)
			write_failed(d, 0, "record the name of a results file");
		else
			logmsg(LOG_DEBUG, "%s: every job has ended; its results go to %s",
			       due.names[i], path.buf);
		d->results_pending = 1;
		sb_release(&stem);
		sb_release(&path);
	}
	file_list_release(&due);
}

struct results_sink {
	struct output_file *of;
	struct strbuf buf;
	int64_t lines;
	int failed;
};

/* flush_lines - the gathered lines into the .part. */
static void flush_lines(struct results_sink *k)
{
	if (k->buf.len && output_append(k->of, k->buf.buf, k->buf.len) < 0)
		k->failed = 1; /* output_commit says why */
	sb_reset(&k->buf);
}

/* result_line - {"line", "id", "key", "op", "state", "result" | "error"} of one line. */
static int result_line(const struct result_rec *r, void *arg)
{
	struct results_sink *k = arg;
	struct strbuf *b = &k->buf;
	sb_adds(b, "{\"line\":");
	sb_add_int(b, r->line);
	sb_adds(b, ",\"id\":");
	sb_add_int(b, r->id);
	sb_adds(b, ",\"key\":");
	if (r->key)
		sb_add_json_string(b, r->key);
	else
		sb_adds(b, "null");
	sb_adds(b, ",\"op\":");
	sb_add_json_string(b, r->op_id ? r->op_id : "");
	sb_adds(b, ",\"state\":");
	sb_add_json_string(b, job_state_name(r->state));
	if (r->duplicate)
		sb_adds(b, ",\"duplicate\":true");
	const char *value = r->state == JS_SUCCEEDED ? r->result_json : r->error_json;
	sb_adds(b, r->state == JS_SUCCEEDED ? ",\"result\":" : ",\"error\":");
	sb_adds(b, value ? value : "null");
	sb_adds(b, "}\n");
	k->lines++;
	if (b->len >= RESULTS_FLUSH_BYTES)
		flush_lines(k);
	return k->failed;
}

/* write_one - the results file of file_id at path, streamed from the store row by row
 * into its .part, then put in place. 0, or -1 with why in err. */
static int write_one(struct daemon *d, int64_t file_id, const char *path, int64_t *lines,
                     struct strbuf *err)
{
	struct results_sink k = {.buf = STRBUF_INIT};
	if (output_open(out_fd(d), path, &k.of, err) < 0)
		return -1;
	sb_grow(&k.buf, RESULTS_FLUSH_BYTES + 4096);
	int rc = store_file_results_foreach(d->st, file_id, result_line, &k);
	flush_lines(&k);
	sb_release(&k.buf);
	if (rc < 0) {
		output_abort(k.of);
		sb_addf(err, "cannot read the jobs of the file: %s", store_errmsg(d->st));
		return -1;
	}
	*lines = k.lines;
	return output_commit(k.of, err); /* reports a failed write, with its reason */
}

/* results_write - after the commit: each results file named but not yet in place is
 * written from the committed rows, then marked in place. One found already there is the
 * one a stop interrupted after its rename: whole, and kept. A failure is logged and tried
 * again RESULTS_RETRY_MS later; nothing is lost meanwhile (the rows stay). */
void results_write(struct daemon *d)
{
	if (!d->results_pending || d->in_txn)
		return;
	int64_t now = clock_wall_ms();
	if (now < d->results_retry_ms)
		return;
	struct file_list pending = {0};
	if (store_files_results_pending(d->st, collect_file, &pending) < 0) {
		logmsg(LOG_ERROR, "cannot look up the results files to write: %s",
		       store_errmsg(d->st));
		d->results_retry_ms = now + RESULTS_RETRY_MS;
		return;
	}
	int again = 0;
	for (size_t i = 0; i < pending.n; i++) {
		const char *path = pending.names[i];
		struct strbuf err = STRBUF_INIT;
		int64_t lines = -1;
		if (faccessat(out_fd(d), path, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
			logmsg(LOG_INFO, "results file %s was put in place before a stop; kept",
			       path);
		} else if (write_one(d, pending.ids[i], path, &lines, &err) < 0) {
			logmsg(LOG_ERROR, "cannot write results file %s: %s; trying again in %d s",
			       path, err.buf, RESULTS_RETRY_MS / 1000);
			again = 1;
			sb_release(&err);
			continue;
		} else {
			logmsg(LOG_INFO, "results file %s written: %lld line(s)", path,
			       (long long)lines);
		}
		sb_release(&err);
		/* its own transaction: the batch's is committed */
		if (store_file_results_done(d->st, pending.ids[i]) < 0) {
			logmsg(LOG_WARN,
			       "cannot record that results file %s is in place: %s; "
			       "recorded later (it is not written again)",
			       path, store_errmsg(d->st));
			again = 1;
		}
	}
	file_list_release(&pending);
	d->results_pending = again;
	if (again)
		d->results_retry_ms = now + RESULTS_RETRY_MS;
}
