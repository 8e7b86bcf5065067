/* txn.c - the iteration's one transaction: opened unless another process locks the store,
 * a failed write noted so that the commit refuses, then the commit itself: buckets saved,
 * outputs put in place, the store committed, ingested files moved out of incoming/. */
#include "daemon_int.h"

#include <stdlib.h>

#include "config.h"
#include "output.h"
#include "ratelimit.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

/* txn_try - opens the iteration's transaction: 0, or -1 while another process holds the
 * store's write lock (then nothing may be written: answers are held, nothing new is sent).
 * Any other failure stops the daemon. */
int txn_try(struct daemon *d)
{
	if (d->reset_needed || !d->st)
		return -1; /* a shared store's lease or connection lost: nothing more is written */
	if (d->in_txn)
		return 0;
	int64_t now = clock_wall_ms();
	if (d->busy_since_ms && now < d->busy_next_ms)
		return -1; /* locked a moment ago: not asked again (and waited on) each turn */
	if (store_begin(d->st) < 0) {
		if (!store_busy(d->st) && d->shared) {
			node_lost(d, "cannot begin a transaction: %s", store_errmsg(d->st));
			return -1;
		}
		if (!store_busy(d->st))
			die("%s; stopping (nothing is lost: files stay in incoming/ until their "
			    "jobs "
			    "are committed)",
			    store_errmsg(d->st));
		if (!d->busy_since_ms) {
			d->busy_since_ms = d->busy_logged_ms = now;
			d->busy_retry_ms = STORE_BUSY_WAIT_MS;
			logmsg(LOG_WARN,
			       "waiting for the database %s: it is locked by another process; "
			       "holding answers and sending nothing new until it is free",
			       d->cfg->db_name);
		} else if (now - d->busy_logged_ms >= STORE_BUSY_LOG_MS) {
			d->busy_logged_ms = now;
			logmsg(LOG_WARN,
			       "the database %s is still locked by another process (for %lld "
			       "s); %d answer(s) held, %d request(s) in flight",
			       d->cfg->db_name, (long long)((now - d->busy_since_ms) / 1000),
			       d->nheld, d->ninflight);
		}
		d->busy_next_ms = now + d->busy_retry_ms;
		return -1;
	}
	if (d->busy_since_ms) {
		logmsg(LOG_INFO,
		       "the database is free again after %lld ms; recording %d held "
		       "answer(s)",
		       (long long)(now - d->busy_since_ms), d->nheld);
		d->busy_since_ms = 0;
	}
	d->in_txn = 1;
	return 0;
}

/* txn - every write of an iteration joins one transaction, committed before sleep. The
 * callers run where txn_try (or make_room) has already succeeded this iteration: the
 * answer path, dispatch and the prepare callback check it before they write. Should the
 * lock be gone anyway, the ordinary busy timeout is waited before giving up. */
void txn(struct daemon *d)
{
	if (d->in_txn)
		return;
	store_set_busy_timeout(d->st, 5000);
	int rc = txn_try(d);
	store_set_busy_timeout(d->st, STORE_WAIT_MS(d));
	if (rc < 0 && d->shared) {
		node_lost(d, "the database %s stayed locked in the middle of a batch",
		          d->cfg->db_name);
		return;
	}
	if (rc < 0)
		die("the database %s stayed locked by another process in the middle of a batch; "
		    "stopping (the jobs concerned run again at the next start)",
		    d->cfg->db_name);
}

/* write_failed - a store write of this iteration failed: logged, and the commit will
 * refuse the whole transaction rather than keep half of what the iteration decided. */
void write_failed(struct daemon *d, int64_t job_id, const char *what)
{
	struct strbuf msg = STRBUF_INIT;
	sb_addf(&msg, "cannot %s", what);
	if (job_id)
		sb_addf(&msg, " of job %lld", (long long)job_id);
	sb_addf(&msg, ": %s", store_errmsg(d->st));
	if (!d->reset_needed) /* after the first, the rest fail as the transaction did */
		log_job(LOG_ERROR, job_id, NULL, NULL, "%s", msg.buf);
	if (!d->txn_failed++)
		sb_adds(&d->txn_first_failure, msg.buf);
	if (d->shared) /* the connection cut, a deadlock: this node starts again */
		node_lost(d, "%s", msg.buf);
	sb_release(&msg);
}

static void save_bucket(const struct rl_bucket *b, void *arg)
{
	struct daemon *d = arg;
	double tokens;
	int64_t updated, hold;
	rl_bucket_state(b, &tokens, &updated, &hold);
	if (store_bucket_save(d->st, rl_bucket_key(b), tokens, updated, hold) < 0)
		write_failed(d, 0, "save a rate-limit bucket");
}

/* refuse_failed - a write of this transaction failed: none of it is committed. -1 when
 * the shared store's node starts again instead (node_lost said so). */
static int refuse_failed(struct daemon *d)
{
	if (d->reset_needed)
		return -1;
	if (d->txn_failed)
		die("refusing to commit: %d store write(s) of this batch failed (the first: %s); "
		    "stopping so that nothing half-recorded is kept (the jobs concerned are queued "
		    "again at the next start)",
		    d->txn_failed, d->txn_first_failure.buf);
	return 0;
}

/* output_not_placed - a staged output that could not be put in place: its job, recorded
 * succeeded in this transaction, fails instead with its result kept; the daemon runs on. */
static void output_not_placed(int64_t job_id, const char *why, void *arg)
{
	struct daemon *d = arg;
	char *ej = error_json("OutputError", why, 0);
	log_job(LOG_ERROR, job_id, NULL, job_state_name(JS_FAILED),
	        "job %lld failed: %s; its result is kept: retry it to write the file "
	        "without sending the request again",
	        (long long)job_id, why);
	if (store_job_output_lost(d->st, job_id, ej,
	                          "the request succeeded but the output file "
	                          "could not be put in place; retry the job to write it from the "
	                          "stored result",
	                          clock_wall_ms()) < 0)
		write_failed(d, job_id, "record a lost output");
	free(ej);
}

/* wait_answered - waits for the commits in flight, their requests then released: 0, or
 * -1 when one failed (node_lost said why). */
static int wait_answered(struct daemon *d)
{
	if (store_async_wait(d->st) < 0) {
		node_lost(d, "cannot commit: %s", store_errmsg(d->st));
		return -1;
	}
	async_settle(d);
	return 0;
}

/* commit_now - a commit that cannot wait for the one in flight (the staged outputs are
 * at their limit): that one's answer is waited for first. */
void commit_now(struct daemon *d)
{
	if (d->async && d->st && !d->reset_needed && store_commits_pending(d->st) > 0 &&
	    wait_answered(d) < 0)
		return;
	commit(d);
}

/* commit - the iteration's one commit; then files leave incoming/. */
void commit(struct daemon *d)
{
	int64_t now = clock_wall_ms();
	if (d->reset_needed || !d->st)
		return; /* the prepare starts the node again: nothing of this batch is kept */
	if (d->async && (store_commits_pending(d->st) > 0 || d->releasing))
		return; /* one commit in flight: this transaction goes on until it is answered */
	if (!d->shared && d->buckets_dirty &&
	    (now - d->last_bucket_save_ms >= BUCKET_SAVE_MS || d->stopping) && txn_try(d) == 0) {
		rl_foreach(d->rl, save_bucket, d);
		d->buckets_dirty = 0;
		d->last_bucket_save_ms = now;
	}
	results_reserve(d); /* files whose jobs have all ended: their results file named */
	if (refuse_failed(d) < 0)
		return;
	if (output_batch_count(d->outputs)) {
		txn(d); /* output_not_placed records in it */
		if (refuse_failed(d) < 0)
			return;
		output_batch_commit(d->outputs, output_not_placed, d);
		if (refuse_failed(d) < 0)
			return;
	}
	if (d->in_txn) {
		int rc = store_commit(d->st);
		if (rc < 0 && d->shared) {
			/* the outputs are in place already, their jobs not recorded: they run
			 * again (the rescue), and write them again */
			node_lost(d, "cannot commit: %s", store_errmsg(d->st));
			return;
		}
		if (rc < 0)
			die("cannot commit to %s: %s; stopping (nothing is lost: uncommitted "
			    "files stay in incoming/)",
			    d->cfg->db_name, store_errmsg(d->st));
		d->in_txn = 0;
		if (d->async)
			async_committing(d);
	}
	if (d->async && (d->archive.n || d->results_pending)) {
		/* files leave incoming/, and results files are written, once their commit is
		 * answered: rare enough to wait for here */
		if (wait_answered(d) < 0)
			return;
	}
	if (d->async && store_commits_pending(d->st) > 0)
		return;
	archive_committed(d);
	results_write(d); /* from the committed rows, never before the commit */
}
