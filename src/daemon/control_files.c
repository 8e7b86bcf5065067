/* control_files.c - the CLI's cancel and retry, sent as control files: each read, carried
 * out by control.c within the loop's transaction, then removed. */
#include "daemon_int.h"

#include "control.h"
#include "http.h"
#include "spool.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

/* control_ctx - what control.c's hooks need: the daemon, and the request they report on. */
struct control_ctx {
	struct daemon *d;
	const struct control_request *req;
};

/* ended_meanwhile - a cancel read a moment ago (a shared store's, at a heartbeat) for a
 * job that has ended since: it stays as it ended. */
static int ended_meanwhile(struct daemon *d, int64_t id)
{
	struct job_row row;
	if (store_get(d->st, id, &row) != 0)
		return 0;
	int ended = job_state_terminal(row.state);
	job_row_release(&row);
	return ended;
}

/* cancel_running - see daemon_int.h. */
void cancel_running(struct daemon *d, int64_t id)
{
	struct run *r = run_find(d, id);
	if (r && r->xfer)
		http_cancel(d->http, r->xfer);
	else if (r && r->gated)
		r->gated_cancel = 1; /* answered "cancelled" once its commit is, never sent */
	else if (r)
		end_job(r, JS_CANCELLED, NULL, "cancelled by the user");
	else {
		txn(d); /* a heartbeat's cancel may come right after a commit */
		if (store_job_end(d->st, id, JS_CANCELLED, NULL, "cancelled by the user",
		                  clock_wall_ms()) < 0 &&
		    !ended_meanwhile(d, id))
			write_failed(d, id, "record the cancel");
	}
}

/* abort_running - control.c's hook for a cancelled job that is running. */
static void abort_running(int64_t id, void *arg)
{
	cancel_running(((struct control_ctx *)arg)->d, id);
}

/* log_outcome - control.c's report: one log line per requested job. */
static void log_outcome(int64_t id, enum control_outcome o, size_t nchildren, const char *why,
                        void *arg)
{
	int cancel = ((struct control_ctx *)arg)->req->action == CONTROL_CANCEL;
	if (o == CONTROL_DONE || o == CONTROL_ABORTED)
		log_job(LOG_INFO, id, NULL,
		        o == CONTROL_DONE ? job_state_name(cancel ? JS_CANCELLED : JS_QUEUED)
		                          : NULL,
		        "job %lld %s%s, with %zu child job(s)", (long long)id,
		        cancel ? "cancelled" : "queued again",
		        o == CONTROL_ABORTED ? " (its request aborted)" : "", nchildren);
	else
		log_job(LOG_WARN, id, NULL, NULL, "job %lld cannot be %s: %s", (long long)id,
		        cancel ? "cancelled" : "retried", why ? why : "");
}

/* apply_control - a control file from the CLI, carried out by control.c within the
 * loop's transaction. */
static void apply_control(struct daemon *d, const char *text)
{
	struct control_request req;
	struct strbuf why = STRBUF_INIT;
	if (control_request_parse(text, &req, &why) < 0) {
		logmsg(LOG_WARN, "ignoring a control file: %s", why.buf);
		sb_release(&why);
		return;
	}
	sb_release(&why);
	struct control_ctx ctx = {d, &req};
	struct control_hooks hooks = {abort_running, log_outcome, &ctx};
	txn(d);
	if (control_apply(d->st, &req, clock_wall_ms(), &hooks) < 0)
		write_failed(d, 0, req.action == CONTROL_CANCEL ? "cancel jobs" : "retry jobs");
	control_request_release(&req);
}

/* control_one - one control file: read, applied, removed. */
int control_one(const char *name, void *arg)
{
	struct daemon *d = arg;
	struct strbuf text = STRBUF_INIT;
	if (spool_control_read(&d->sp, name, &text) == 0)
		apply_control(d, text.buf);
	sb_release(&text);
	spool_control_done(&d->sp, name);
	return 0;
}
