/* fanout.c - a job split by time window: its child jobs created once, then waited for,
 * and their pages merged into the parent's output. */
#include "daemon_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "job.h"
#include "paginate.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

/* create_children - one child job per time window, each paginated. */
static int create_children(struct run *r, int64_t now)
{
	struct daemon *d = r->d;
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(r->job.params, "startTime");
	const cJSON *en = cJSON_GetObjectItemCaseSensitive(r->job.params, "endTime");
	int64_t start, end;
	if (!cJSON_IsString(st) || !cJSON_IsString(en) || parse_iso8601(st->valuestring, &start) ||
	    parse_iso8601(en->valuestring, &end))
		return -1;
	struct time_window *w = xcalloc(JOB_MAX_SPLIT_WINDOWS, sizeof(*w));
	int n = paginate_split(start, end, r->job.split_ms, w, JOB_MAX_SPLIT_WINDOWS);
	int rc = n > 0 ? 0 : -1;
	txn(d);
	for (int i = 0; i < n && rc == 0; i++) {
		struct job child = r->job; /* shallow: only params, key, output, split change */
		char a[48], b[48];
		format_iso8601(w[i].start_ms, a);
		format_iso8601(w[i].end_ms, b);
		child.params = cJSON_Duplicate(r->job.params, 1);
		cJSON_ReplaceItemInObjectCaseSensitive(child.params, "startTime",
		                                       cJSON_CreateString(a));
		cJSON_ReplaceItemInObjectCaseSensitive(child.params, "endTime",
		                                       cJSON_CreateString(b));
		child.key = NULL;
		child.output = NULL;
		child.split_ms = 0;
		if (child.paginate == PAGINATE_NONE)
			child.paginate = PAGINATE_ALL;
		char *spec = job_to_json(&child);
		int mutates = job_mutates(&child);
		cJSON_Delete(child.params);
		struct job_new nj = {
		    .op_id = r->row.op_id,
		    .spec_json = spec,
		    .workspace = r->job.workspace,
		    .priority = r->job.priority,
		    .not_before_ms = now,
		    .parent_id = r->row.id,
		    .max_attempts = policy_of(d, &r->job).max_attempts,
		    .paginated = 1,
		    .mutates = mutates,
		};
		int64_t id;
		if (store_job_insert(d->st, &nj, now, &id) != STORE_INSERTED) {
			/* none of the windows may be kept without the others: a retry of the
			 * parent would find children and never make the missing ones */
			write_failed(d, r->row.id, "create a child job");
			rc = -1;
		}
		free(spec);
	}
	free(w);
	return rc < 0 ? -1 : n;
}

/* children_reasons - why children did not succeed, for the parent's error. */
static char *children_reasons(struct daemon *d, const int64_t *ids, size_t n)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *errs = cJSON_AddArrayToObject(doc, "errors");
	for (size_t i = 0; i < n; i++) {
		struct job_row c;
		if (store_get(d->st, ids[i], &c) != 0)
			continue;
		if (c.state != JS_SUCCEEDED) {
			char *stored = NULL;
			store_job_error(d->st, ids[i], &stored);
			cJSON *e = cJSON_CreateObject();
			char msg[96];
			snprintf(msg, sizeof(msg), "child job %lld ended %s", (long long)c.id,
			         job_state_name(c.state));
			cJSON_AddStringToObject(e, "type", "ChildFailed");
			cJSON_AddStringToObject(e, "message", msg);
			cJSON *cerr = stored ? cJSON_Parse(stored) : NULL;
			if (cerr)
				cJSON_AddItemToObject(e, "data", cerr);
			cJSON_AddItemToArray(errs, e);
			free(stored);
		}
		job_row_release(&c);
	}
	char *text = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	return text;
}

/* run_parent - a fan-out job: create children once, then wait for them and merge. */
void run_parent(struct run *r)
{
	struct daemon *d = r->d;
	int64_t now = clock_wall_ms();
	int64_t *ids = NULL;
	size_t n = 0;
	if (store_children_ids(d->st, r->row.id, &ids, &n) < 0) {
		wait_job(r, now + PARENT_POLL_MS, 0, JW_CHILDREN,
		         "cannot read children; trying again");
		return;
	}
	if (n == 0) {
		int made = create_children(r, now);
		if (made < 0) {
			char *ej = error_json("SplitError", "cannot split the time range", 0);
			end_job(r, JS_FAILED, ej, "cannot split the time range");
			free(ej);
		} else {
			log_job(LOG_INFO, r->row.id, r->row.op_id, job_state_name(JS_WAITING),
			        "job %lld split into %d child jobs", (long long)r->row.id, made);
			wait_job(r, now + PARENT_POLL_MS, 0, JW_CHILDREN,
			         "waiting for its child jobs");
		}
		free(ids);
		return;
	}
	struct child_counts c;
	if (store_children_counts(d->st, r->row.id, &c) < 0 || c.active > 0) {
		wait_job(r, now + PARENT_POLL_MS, 0, JW_CHILDREN, "waiting for its child jobs");
		free(ids);
		return;
	}
	if (c.succeeded != c.total) {
		char *ej = children_reasons(d, ids, n);
		end_job(r, JS_FAILED, ej, "some child jobs did not succeed");
		free(ej);
		free(ids);
		return;
	}
	struct strbuf path = STRBUF_INIT, err = STRBUF_INIT;
	int keep = output_path_of(r, &path);
	int64_t items = 0;
	if (r->job.no_output) {
		struct strbuf sum = STRBUF_INIT;
		sb_addf(&sum, "{\"children\":%zu,\"output\":null}", n);
		succeed_job(r, sum.buf, NULL);
		sb_release(&sum);
	} else if (write_pages_output(d, r->row.id, ids, n, path.buf, keep, &items, &err) < 0) {
		char *ej = error_json("OutputError", err.buf, 0);
		end_job(r, JS_FAILED, ej, "cannot write the merged output");
		free(ej);
	} else {
		struct strbuf sum = STRBUF_INIT;
		sb_addf(&sum, "{\"children\":%zu,\"items\":%lld,\"output\":", n, (long long)items);
		sb_add_json_string(&sum, path.buf);
		sb_addch(&sum, '}');
		succeed_job(r, sum.buf, path.buf);
		sb_release(&sum);
	}
	sb_release(&path);
	sb_release(&err);
	free(ids);
}
