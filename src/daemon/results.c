/* results.c - a run's next state: success with its output (staged, put in place just
 * before the commit), pages recorded one by one and written as JSON Lines, or the end of
 * the job (failed, dead, cancelled), or waiting for the next try. */
#include "daemon_int.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "config.h"
#include "job.h"
#include "output.h"
#include "paginate.h"
#include "spool.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

/* end_job - failed, dead or cancelled, with the reason; frees the run. */
void end_job(struct run *r, enum job_state to, const char *err_json, const char *reason)
{
	struct daemon *d = r->d;
	txn(d);
	if (r->count_on_end && store_job_count_attempt(d->st, r->row.id) < 0)
		write_failed(d, r->row.id, "count an attempt");
	if (store_job_end(d->st, r->row.id, to, err_json, reason, clock_wall_ms()) < 0)
		write_failed(d, r->row.id, "record the end");
	log_job(to == JS_CANCELLED ? LOG_INFO : LOG_WARN, r->row.id, r->row.op_id,
	        job_state_name(to), "job %lld (%s) %s: %s", (long long)r->row.id, r->row.op_id,
	        job_state_name(to), reason);
	run_free(r);
}

/* wait_job - back to waiting until next_ms; frees the run. */
void wait_job(struct run *r, int64_t next_ms, int count_attempt, enum job_wait why,
              const char *reason)
{
	struct daemon *d = r->d;
	txn(d);
	if (store_job_wait(d->st, r->row.id, next_ms, count_attempt, why, reason, clock_wall_ms()) <
	    0)
		write_failed(d, r->row.id, "reschedule");
	run_free(r);
}

/* out_dir_fd - the output directory's fd, reopened first if it was removed or replaced
 * since (an output made in a removed directory would fail, or vanish with it). */
static int out_dir_fd(struct daemon *d)
{
	if (spool_refresh_out(&d->sp, output_dir_path(d)) < 0)
		logmsg(LOG_ERROR, "outputs cannot be written until the output directory is back");
	return d->sp.out_fd;
}

/* default_output - where a job's output goes when it named none: "<op>-<id>.json", or
 * "<op>-<id>-2.json" and so on when that name is taken. Ids start again at 1 in a new
 * database, and an earlier run's output must not be replaced by a stranger's. */
void default_output(const struct run *r, struct strbuf *path)
{
	int jsonl = multi_page(r);
	int out_fd = out_dir_fd(r->d);
	output_default_name(path, r->row.op_id, r->row.id, jsonl, 1);
	/* taken on disk, or by an output of this batch not yet renamed into place */
	for (int n = 2; n < 1000 && (faccessat(out_fd, path->buf, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
	                             output_batch_claimant(r->d->outputs, path->buf));
	     n++) {
		sb_reset(path);
		output_default_name(path, r->row.op_id, r->row.id, jsonl, n);
	}
}

/* output_path_of - the job's output path: the one it named (0), or a default one (1),
 * which is put in place only if still free when the batch commits. */
int output_path_of(const struct run *r, struct strbuf *path)
{
	if (r->job.output) {
		sb_adds(path, r->job.output);
		return 0;
	}
	default_output(r, path);
	return 1;
}

/* make_room - the iteration's transaction open, and room in the batch of outputs: a
 * full one is committed (outputs, then the store) before a job's answer is recorded,
 * never in the middle of it, so a job's success and its file join one transaction. At
 * most one output is staged per answer or claimed job. -1 while another process holds
 * the store's lock: the caller holds the answer or claims nothing. */
int make_room(struct daemon *d)
{
	if (txn_try(d) < 0)
		return -1;
	if (output_batch_count(d->outputs) >= OUTPUT_BATCH_MAX) {
		commit_now(d);
		if (txn_try(d) < 0)
			return -1; /* another writer took the lock between our commit and begin */
	}
	return 0;
}

/* open_output - the .part of a job's output, once nothing else claims its path: a path
 * another output of this batch stages (or a directory on its way or below it), or a
 * directory standing at its name, is refused. */
static int open_output(struct daemon *d, const char *path, int keep_existing,
                       struct output_file **of, struct strbuf *err)
{
	int64_t other = output_batch_claimant(d->outputs, path);
	struct stat st;
	if (other) {
		sb_addf(err,
		        "output %s collides with the output of job %lld, written in the same "
		        "batch (two files cannot share a name, nor can a file be a directory of "
		        "another)",
		        path, (long long)other);
		return -1;
	}
	int out_fd = out_dir_fd(d);
	if (fstatat(out_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
		sb_addf(err, "output %s is a directory in the output directory", path);
		return -1;
	}
	if (output_open(out_fd, path, of, err) < 0)
		return -1;
	if (keep_existing)
		output_keep_existing(*of);
	return 0;
}

/* stage_output - a whole output, staged in the iteration's batch under the job's id. */
static int stage_output(struct daemon *d, int64_t job_id, const char *path, int keep_existing,
                        const void *data, size_t len, struct strbuf *err)
{
	struct output_file *of;
	if (open_output(d, path, keep_existing, &of, err) < 0)
		return -1;
	output_append(of, data, len); /* a failure is reported by output_stage */
	return output_stage(d->outputs, of, job_id, err);
}

/* write_result_output - a single response's data object, pretty-printed. */
int write_result_output(struct run *r, const cJSON *data, struct strbuf *where, struct strbuf *err)
{
	int keep = output_path_of(r, where);
	char *text = data ? cJSON_Print(data) : xstrdup("null");
	struct strbuf body = STRBUF_INIT;
	sb_adds(&body, text);
	sb_addch(&body, '\n');
	free(text);
	int rc = stage_output(r->d, r->row.id, where->buf, keep, body.buf, body.len, err);
	sb_release(&body);
	return rc;
}

struct page_sink {
	struct output_file *of;
	int64_t items;
	int failed;
	int write_failed; /* output_stage then says why (e.g. no space left) */
};

/* page_items_to_output - one recorded page's items, one JSON object a line. */
static int page_items_to_output(int page_no, const char *items_json, void *arg)
{
	struct page_sink *sink = arg;
	(void)page_no;
	cJSON *items = cJSON_Parse(items_json);
	if (!cJSON_IsArray(items)) {
		cJSON_Delete(items);
		sink->failed = 1;
		return 1;
	}
	struct strbuf line = STRBUF_INIT;
	for (cJSON *it = items->child; it; it = it->next) {
		char *text = cJSON_PrintUnformatted(it);
		sb_reset(&line);
		sb_adds(&line, text);
		sb_addch(&line, '\n');
		free(text);
		if (output_append(sink->of, line.buf, line.len) < 0) {
			sink->failed = sink->write_failed = 1;
			break;
		}
		sink->items++;
	}
	sb_release(&line);
	cJSON_Delete(items);
	return sink->failed;
}

/* write_pages_output - the items of jobs' pages, in order, into one JSON Lines file. */
int write_pages_output(struct daemon *d, int64_t job_id, const int64_t *ids, size_t n,
                       const char *path, int keep_existing, int64_t *items, struct strbuf *err)
{
	struct page_sink sink = {0};
	if (open_output(d, path, keep_existing, &sink.of, err) < 0)
		return -1;
	for (size_t i = 0; i < n && !sink.failed; i++)
		if (store_pages_foreach(d->st, ids[i], page_items_to_output, &sink) < 0)
			sink.failed = 1;
	if (sink.failed && !sink.write_failed) {
		output_abort(sink.of);
		sb_addf(err, "cannot read the recorded pages for %s", path);
		return -1;
	}
	*items = sink.items;
	/* reports a failed write, with its reason */
	return output_stage(d->outputs, sink.of, job_id, err);
}

/* succeed_job - records success with the result; frees the run. */
void succeed_job(struct run *r, const char *result_json, const char *output)
{
	struct daemon *d = r->d;
	struct job_success ok = {
	    .result_json = result_json, .output_path = output, .count_attempt = r->count_on_end};
	txn(d);
	if (store_job_succeed(d->st, r->row.id, &ok, clock_wall_ms()) < 0)
		write_failed(d, r->row.id, "record the success");
	else
		log_job(LOG_DEBUG, r->row.id, r->row.op_id, job_state_name(JS_SUCCEEDED),
		        "job %lld (%s) succeeded", (long long)r->row.id, r->row.op_id);
	run_free(r);
}

/* finish_pages - all pages in: the JSON Lines output (top-level jobs), then success. */
void finish_pages(struct run *r)
{
	struct daemon *d = r->d;
	struct strbuf path = STRBUF_INIT, err = STRBUF_INIT;
	int64_t items = r->row.items_done;
	if (r->row.parent_id == 0 && !r->job.no_output) {
		int keep = output_path_of(r, &path);
		if (write_pages_output(d, r->row.id, &r->row.id, 1, path.buf, keep, &items, &err) <
		    0) {
			char *ej = error_json("OutputError", err.buf, 0);
			end_job(r, JS_FAILED, ej, "cannot write the output file");
			free(ej);
			goto out;
		}
	}
	char *summary = paginate_result_summary(r->row.pages_done, items, r->row.total_entries,
	                                        path.len ? path.buf : NULL);
	succeed_job(r, summary, path.len ? path.buf : NULL);
	free(summary);
out:
	sb_release(&path);
	sb_release(&err);
}

/* on_page - one page in: record it, then fetch the next or finish. */
static void on_page(struct run *r, const cJSON *body)
{
	struct daemon *d = r->d;
	struct page_result pr;
	const char *why = NULL;
	if (paginate_extract(r->job.op, body, &pr, &why) < 0) {
		char *ej = error_json("BadResponse", why, 0);
		end_job(r, JS_FAILED, ej, why);
		free(ej);
		return;
	}
	char *items = cJSON_PrintUnformatted(pr.items);
	int64_t nitems = cJSON_GetArraySize(pr.items);
	int page_no = r->row.pages_done + 1;
	txn(d);
	if (store_page_record(d->st, r->row.id, page_no, r->row.cursor, pr.next, items, nitems,
	                      pr.total, clock_wall_ms()) < 0) {
		free(items);
		write_failed(d, r->row.id, "record a page");
		run_free(r);
		return;
	}
	free(items);
	free(r->row.cursor);
	r->row.cursor = pr.next ? xstrdup(pr.next) : NULL;
	r->row.pages_done = page_no;
	r->row.items_done += nitems;
	r->row.total_entries = pr.total;
	r->row.attempts = 0; /* a page that arrived resets the attempts of the next */
	enum page_step step =
	    paginate_step(r->row.cursor, r->row.pages_done, r->job.max_pages, d->cfg->max_pages, 0);
	int seen = 0;
	if (step != PAGE_DONE) {
		/* this page is recorded: its own cursor is among those looked up */
		seen = store_page_cursor_seen(d->st, r->row.id, r->row.cursor);
		if (seen < 0) {
			log_job(LOG_ERROR, r->row.id, r->row.op_id, NULL,
			        "cannot check the cursors of job %lld: %s", (long long)r->row.id,
			        store_errmsg(d->st));
			seen = 0;
		}
		step = paginate_step(r->row.cursor, r->row.pages_done, r->job.max_pages,
		                     d->cfg->max_pages, seen);
	}
	if (step == PAGE_REPEAT || step == PAGE_TOO_MANY) {
		struct strbuf reason = STRBUF_INIT;
		paginate_step_reason(step, r->row.cursor, r->row.pages_done, d->cfg->max_pages,
		                     seen, &reason);
		char *ej = error_json(step == PAGE_REPEAT ? "CursorRepeated" : "TooManyPages",
		                      reason.buf, 0);
		end_job(r, JS_FAILED, ej, reason.buf);
		free(ej);
		sb_release(&reason);
		return;
	}
	if (step == PAGE_NEXT && !d->stopping) {
		r->hold_until_ms = 0;
		send_or_hold(r);
	} else if (step == PAGE_NEXT) {
		txn(d);
		if (store_job_requeue(d->st, r->row.id, "daemon stopping; resumes at the next page",
		                      clock_wall_ms()) < 0)
			write_failed(d, r->row.id, "requeue");
		run_free(r);
	} else {
		finish_pages(r);
	}
}

/* result_text - the response's data member as text to keep: its span of the raw body
 * (no re-printing; found while checking the body when there is no tree, len 0 if not),
 * else printed from the tree (parsed here when there is none yet); "null" when there is
 * no data member. */
static char *result_text(const struct strbuf *raw, const cJSON *body, size_t off, size_t len)
{
	if (body && json_member_span(raw->buf, raw->len, "data", &off, &len) < 0)
		len = 0;
	if (len)
		return xstrndup(raw->buf + off, len);
	cJSON *parsed = body ? NULL : cJSON_ParseWithLength(raw->buf, raw->len);
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(body ? body : parsed, "data");
	char *text = data ? cJSON_PrintUnformatted(data) : xstrdup("null");
	cJSON_Delete(parsed);
	return text;
}

/* needs_tree - whether a successful response is read as a cJSON tree: pages are taken
 * apart and output files pretty-printed; a result kept in the store only is stored as
 * the text it came in, so checking that text is enough. */
int needs_tree(const struct run *r)
{
	return multi_page(r) || !r->job.no_output;
}

/* on_success - a 2xx with a JSON object body (raw is its text; body its tree when
 * needs_tree, else NULL, and then off and len the data member's span, len 0 if unknown). */
void on_success(struct run *r, cJSON *body, const struct strbuf *raw, size_t off, size_t len)
{
	if (multi_page(r)) {
		on_page(r, body);
		return;
	}
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(body, "data");
	struct strbuf where = STRBUF_INIT, err = STRBUF_INIT;
	char *text = result_text(raw, body, off, len);
	if (r->job.no_output) {
		succeed_job(r, text, NULL);
	} else if (write_result_output(r, data, &where, &err) < 0) {
		char *ej = error_json("OutputError", err.buf, 0);
		/* the API call succeeded: keep its data, so a retry rewrites the output from it
		 * and never sends the mutation again */
		txn(r->d);
		if (store_job_set_result(r->d->st, r->row.id, text) < 0)
			write_failed(r->d, r->row.id, "keep the result");
		end_job(r, JS_FAILED, ej,
		        "the request succeeded but the output file could not be "
		        "written; retry the job to write it from the stored result");
		free(ej);
	} else {
		succeed_job(r, text, where.buf);
	}
	free(text);
	sb_release(&where);
	sb_release(&err);
}
