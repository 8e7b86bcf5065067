/* loop.c - the loop: each iteration (the ev_prepare "before sleep") records the answers
 * held for a locked store, applies control files, ingests, dispatches and commits; signals
 * stop it (requests in flight get a grace period) or reload the configuration (SIGHUP);
 * daemon_run opens everything, runs the loop and closes it all. */
#include "daemon_int.h"

#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "output.h"
#include "ratelimit.h"
#include "retry.h"
#include "spool.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

static void after_signals(struct daemon *d);

struct restoring {
	struct daemon *d;
	int64_t now;
	int cut;
};

/* restore_bucket - a saved bucket; a hold past max_server_wait from now is cut to it (it
 * was saved by a run under a larger max_server_wait, or by one that had none). */
static void restore_bucket(const char *key, double tokens, int64_t updated, int64_t hold, void *arg)
{
	struct restoring *rs = arg;
	int64_t max = rs->d->cfg->max_server_wait_ms;
	int64_t until = rl_hold_clamp(hold, rs->now, max);
	if (until != hold) {
		char left[32], cap[32];
		retry_format_duration(hold - rs->now, left);
		retry_format_duration(max, cap);
		logmsg(LOG_WARN,
		       "rate-limit bucket %s was held for %s more; waiting %s, the "
		       "max_server_wait",
		       key, left, cap);
		rs->cut++;
	}
	rl_restore(rs->d->rl, key, tokens, updated, until);
}

/* restore_buckets - the saved buckets; when a hold was cut, the jobs parked by holds are
 * due again, to be parked anew by the buckets as they are now. */
static void restore_buckets(struct daemon *d)
{
	struct restoring rs = {.d = d, .now = clock_wall_ms()};
	store_bucket_foreach(d->st, restore_bucket, &rs);
	if (!rs.cut)
		return;
	int64_t woken = store_wake_waiters(d->st, JW_OUR_LIMIT, rs.now);
	int64_t woken429 = store_wake_waiters(d->st, JW_SERVER_LIMIT, rs.now);
	if (woken < 0 || woken429 < 0)
		logmsg(LOG_ERROR, "cannot wake jobs waiting for the rate limit: %s",
		       store_errmsg(d->st));
}

/* next_wake_ms - the earliest of: a held run, the next due job, the next rescan. */
static int64_t next_wake_ms(struct daemon *d, int64_t now)
{
	int64_t next = d->last_scan_ms + d->cfg->rescan_ms;
	for (struct run *r = d->runs; r; r = r->next)
		if (!r->xfer && r->hold_until_ms && r->hold_until_ms < next)
			next = r->hold_until_ms;
	if (d->nruns < d->cfg->max_in_flight) {
		int64_t due = store_next_due_ms(d->st);
		if (due > 0 && due < next)
			next = due;
	}
	/* other nodes make work due too: their announcements may be missed (a reconnect) */
	if (d->shared && next > now + NODE_POLL_MS)
		next = now + NODE_POLL_MS;
	return next > now ? next - now : 0;
}

/* idle - nothing left that can move without outside help: no job, or only jobs that
 * wait for a usable token (a SIGHUP or the next start brings them back). */
static int idle(struct daemon *d)
{
	if (d->nruns || d->pending.head != d->pending.n || d->scan_needed || !d->st)
		return 0;
	int64_t active = store_count_active(d->st);
	if (active == 0)
		return 1;
	/* and the jobs waiting for those: until a token comes, none of them can move */
	int64_t tokenless = store_count_waiting_for(d->st, JW_TOKEN);
	int64_t parked = store_count_waiting_for(d->st, JW_DEPS);
	if (active < 0 || tokenless < 0 || parked < 0 || tokenless + parked != active)
		return 0;
	logmsg(LOG_WARN,
	       "%lld job(s) wait for a usable API token (see the errors above); they "
	       "run after a SIGHUP or the next start that finds one",
	       (long long)active);
	return 1;
}

/* needs_store - whether this iteration may write: answers held, what signals asked for,
 * control files, files to ingest, a held run whose wait is over, or room for more jobs.
 * An iteration that only moved bytes while the in-flight cap is full opens no
 * transaction. */
static int needs_store(struct daemon *d)
{
	if (d->nheld || d->wake_limit_waiters || d->wake_token_waiters || d->requeue_idle ||
	    d->rescue_due || d->cancels_due)
		return 1;
	if (d->stopping)
		return 0;
	if (d->control_needed || d->scan_needed || d->pending.head < d->pending.n ||
	    (d->nruns < d->cfg->max_in_flight && http_capacity(d->http) > 0))
		return 1;
	int64_t now = clock_wall_ms();
	for (struct run *r = d->runs; r; r = r->next)
		if (!r->xfer && r->hold_until_ms && r->hold_until_ms <= now)
			return 1;
	return 0;
}

/* busy_rearm - the store is locked by another process: try again soon, a little later
 * each time (txn_try does not ask the store before then). */
static void busy_rearm(struct daemon *d)
{
	ev_timer_stop(d->loop, &d->tick);
	ev_timer_set(&d->tick, (double)d->busy_retry_ms / 1000.0, 0.);
	ev_timer_start(d->loop, &d->tick);
	d->busy_retry_ms = d->busy_retry_ms * 2 > STORE_BUSY_RETRY_MAX_MS ? STORE_BUSY_RETRY_MAX_MS
	                                                                  : d->busy_retry_ms * 2;
}

/* on_prepare - the loop's "before sleep": ingest, dispatch, commit, rearm. */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct daemon *d = w->data;
	(void)revents;
	if (d->reset_needed)
		node_reset(d); /* a shared store's lease or connection lost: start again */
	if (d->shared && !d->st) {
		/* reconnecting: nothing is in flight, nothing can be recorded */
		if (d->stopping)
			ev_break(loop, EVBREAK_ALL);
		return;
	}
	if (async_settle(d) < 0) {
		node_reset(d);
		return;
	}
	if (needs_store(d) && txn_try(d) < 0) {
		busy_rearm(d);
		return;
	}
	record_held(d);
	if (d->nheld || (needs_store(d) && txn_try(d) < 0)) {
		/* locked again between a full batch's commit and the next begin */
		busy_rearm(d);
		return;
	}
	after_signals(d);
	if (d->shared)
		node_iteration(d);
	if (!d->stopping) {
		if (d->control_needed) {
			d->control_needed = 0;
			spool_control_scan(&d->sp, control_one, d);
		}
		ingest_pending(d);
		dispatch(d);
	}
	commit(d);
	if (d->reset_needed) {
		node_reset(d);
		return;
	}
	if (d->stopping && d->ninflight == 0 && !d->nheld) {
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	if (d->until_idle && !d->stopping && idle(d)) {
		/* one last scan: a file may have arrived since */
		d->scan_needed = 1;
		if (txn_try(d) == 0)
			ingest_pending(d);
		commit(d);
		if (idle(d)) {
			logmsg(LOG_INFO, "nothing left to do; stopping (--until-idle)");
			ev_break(loop, EVBREAK_ALL);
			return;
		}
	}
	/* answers a waiting read came across (the socket will not say so again) */
	int settled = async_settle(d);
	if (d->reset_needed) {
		node_reset(d);
		return;
	}
	int64_t now = clock_wall_ms();
	ev_timer_stop(loop, &d->tick);
	int64_t wake = d->pending.head < d->pending.n || settled > 0 ? 0 : next_wake_ms(d, now);
	ev_timer_set(&d->tick, (double)wake / 1000.0, 0.);
	ev_timer_start(loop, &d->tick);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	(void)loop;
	(void)revents;
	if (clock_wall_ms() - d->last_scan_ms >= d->cfg->rescan_ms)
		d->scan_needed = 1;
}

static void on_control_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	((struct daemon *)w->data)->control_needed = 1;
}

static int watch_one(const char *name, void *arg)
{
	names_push(&((struct daemon *)arg)->pending, name);
	return 0;
}

static void on_watch(struct ev_loop *loop, ev_io *w, int revents)
{
	struct daemon *d = w->data;
	int overflow = 0;
	(void)loop;
	(void)revents;
	spool_watch_drain(&d->sp, watch_one, d, &overflow);
	if (overflow == 1)
		logmsg(LOG_WARN, "inotify queue overflowed; rescanning incoming/");
	if (overflow)
		d->scan_needed = 1;
}

/* on_grace - the grace period is over: abort what is still in flight. */
static void on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	(void)loop;
	(void)revents;
	logmsg(LOG_WARN, "grace period over; interrupting %d request(s)", d->ninflight);
	for (struct run *r = d->runs, *next; r; r = next) {
		next = r->next;
		if (r->xfer) {
			r->interrupt = 1;
			http_cancel(d->http, r->xfer);
		} else if (r->gated) {
			r->interrupt = r->gated_cancel = 1; /* never sent: its commit says so */
		}
	}
}

/* requeue_idle_runs - at a stop, runs that are not waiting for an answer go back to the
 * queue. */
static void requeue_idle_runs(struct daemon *d)
{
	for (struct run *r = d->runs, *next; r; r = next) {
		next = r->next;
		if (!r->xfer && !r->held && !r->gated) {
			if (store_job_requeue(d->st, r->row.id, "daemon stopping",
			                      clock_wall_ms()) < 0)
				write_failed(d, r->row.id, "requeue");
			run_free(r);
		}
	}
}

/* wake_waiters - jobs that wait for `why` become due (after a SIGHUP). */
static void wake_waiters(struct daemon *d, enum job_wait why, const char *what)
{
	int64_t woken = store_wake_waiters(d->st, why, clock_wall_ms());
	if (woken < 0)
		write_failed(d, 0, what);
	else if (woken > 0)
		logmsg(LOG_INFO, "%lld job(s) %s are due again", (long long)woken, what);
}

/* after_signals - what signals asked for that writes to the store, now that the
 * iteration's transaction is open. */
static void after_signals(struct daemon *d)
{
	if (d->wake_limit_waiters) {
		d->wake_limit_waiters = 0;
		/* parked by the old limits: due now, to be admitted (or parked) by the new ones */
		wake_waiters(d, JW_OUR_LIMIT, "waiting for the rate limit");
	}
	if (d->wake_token_waiters) {
		d->wake_token_waiters = 0;
		wake_waiters(d, JW_TOKEN, "waiting for a usable token");
	}
	if (d->requeue_idle) {
		d->requeue_idle = 0;
		requeue_idle_runs(d);
	}
}

/* begin_stop - no new work; held runs go back to the queue; in-flight ones get grace. */
static void begin_stop(struct daemon *d, const char *why)
{
	if (d->stopping)
		return;
	d->stopping = 1;
	notify_stopping(d);
	logmsg(LOG_INFO, "%s: stopping; %d request(s) in flight get up to %lld ms", why,
	       d->ninflight, (long long)d->cfg->grace_ms);
	ev_io_stop(d->loop, &d->watch_io);
	ev_timer_stop(d->loop, &d->control_timer);
	d->requeue_idle =
	    1; /* in the next transaction: a signal may come while the store is locked */
	ev_timer_set(&d->grace_timer, (double)d->cfg->grace_ms / 1000.0, 0.);
	ev_timer_start(d->loop, &d->grace_timer);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	begin_stop(w->data, w->signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* on_hup - reload the config file: rates, retry defaults, tokens. */
static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;
	(void)loop;
	(void)revents;
	if (!d->cfg->config_path) {
		tokens_forget(d);
		d->wake_token_waiters = 1;
		logmsg(LOG_INFO, "SIGHUP: no config file; tokens will be read again");
		return;
	}
	struct config fresh;
	struct strbuf err = STRBUF_INIT;
	config_init(&fresh);
	if (config_load(&fresh, d->cfg->config_path, &err) < 0) {
		logmsg(LOG_ERROR, "SIGHUP: %s; keeping the running configuration", err.buf);
	} else {
		d->cfg->rate_per_sec = fresh.rate_per_sec;
		d->cfg->burst = fresh.burst;
		d->cfg->endpoint_limits = fresh.endpoint_limits;
		d->cfg->retry = fresh.retry;
		d->cfg->max_server_wait_ms = fresh.max_server_wait_ms;
		d->cfg->max_pages = fresh.max_pages;
		d->cfg->grace_ms = fresh.grace_ms;
		d->cfg->rescan_ms = fresh.rescan_ms;
		struct workspace_cfg *tmp = d->cfg->workspaces;
		size_t ntmp = d->cfg->nworkspaces;
		d->cfg->workspaces = fresh.workspaces;
		d->cfg->nworkspaces = fresh.nworkspaces;
		fresh.workspaces = tmp;
		fresh.nworkspaces = ntmp;
		log_set_level(fresh.log_level);
		tokens_forget(d);
		logmsg(LOG_INFO,
		       "SIGHUP: configuration reloaded from %s (paths and http settings "
		       "take effect at restart)",
		       d->cfg->config_path);
		d->wake_limit_waiters = d->wake_token_waiters = 1;
	}
	config_release(&fresh);
	sb_release(&err);
}

/* http_open - see daemon_int.h: the HTTP client the config asks for. */
struct http *http_open(struct daemon *d)
{
	struct config *cfg = d->cfg;
	struct http_opts ho = {
	    .connect_timeout_ms = cfg->connect_timeout_ms,
	    .timeout_ms = cfg->timeout_ms,
	    .max_in_flight = cfg->max_in_flight,
	    .max_host_connections = cfg->max_in_flight,
	    .ca_file = cfg->ca_file,
	    .max_response_bytes = cfg->max_response_bytes,
	};
	return http_new(d->loop, &ho);
}

/* recover - after a crash, the jobs it left running queued again: by store_recover for
 * the one writer; on a shared store by joining as a node (its earlier run buried, and
 * every expired lease's jobs taken back), never touching other live nodes' jobs. */
static int recover(struct daemon *d)
{
	if (d->shared)
		return node_join(d, "started");
	/* recovery waits the ordinary busy timeout for a lock; a failure stops the start:
	 * jobs left running would otherwise never be claimed again */
	int n = store_recover(d->st, clock_wall_ms());
	if (n < 0)
		return error("cannot recover the jobs an earlier stop left running: %s",
		             store_errmsg(d->st));
	if (n > 0)
		logmsg(LOG_WARN,
		       "recovered %d job(s) left running by an earlier stop; they are "
		       "queued again",
		       n);
	return 0;
}

/* open_all - spool, lock, store, recovery, buckets, http. */
static int open_all(struct daemon *d)
{
	struct config *cfg = d->cfg;
	struct strbuf why = STRBUF_INIT;
	if (cfg->api_base && http_url_allowed(cfg->api_base, &why) < 0) {
		error("api_base %s refused: %s", cfg->api_base, why.buf);
		sb_release(&why);
		return -1;
	}
	sb_release(&why);
	if (spool_open(cfg->spool_dir, 1, &d->sp) < 0)
		return error("cannot open spool %s", cfg->spool_dir);
	struct lock_owner who;
	int lk = spool_lock_wait(&d->sp, "daemon", SPOOL_LOCK_WAIT_MS, &who);
	if (lk == 1 && lock_owner_command(&who))
		return error("segspool %s (pid %ld) still holds spool %s after %d s",
		             lock_owner_command(&who), who.pid, cfg->spool_dir,
		             SPOOL_LOCK_WAIT_MS / 1000);
	if (lk == 1)
		return error("another segspool daemon is running on spool %s (pid %ld); only one "
		             "may run per spool",
		             cfg->spool_dir, who.pid);
	if (lk < 0)
		return error("cannot lock spool %s", cfg->spool_dir);
	if (!spool_out_is_own(&d->sp, cfg->output_dir)) {
		mkdir(cfg->output_dir, 0755);
		int fd = open(cfg->output_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return error_errno("cannot open output directory %s", cfg->output_dir);
		close(d->sp.out_fd);
		d->sp.out_fd = fd;
	}
	d->outputs = output_batch_new();
	int swept = output_sweep_parts(d->sp.out_fd);
	if (swept)
		logmsg(LOG_INFO,
		       "removed %d unfinished output file(s) (.part) left by an earlier "
		       "stop",
		       swept);
	char *err = NULL;
	store_set_owner("daemon", cfg->spool_dir);
	if (store_open(cfg->db_path, STORE_WAIT_FOR_CLI, &d->st, &err) < 0) {
		error("%s", err ? err : "cannot open the store");
		free(err);
		return -1;
	}
	d->shared = store_shared(d->st) == 1;
	if (recover(d) < 0)
		return -1;
	d->rl = rl_new();
	if (!d->shared) /* a shared store's buckets are its own (store_bucket_take) */
		restore_buckets(d);
	store_set_busy_timeout(d->st, STORE_WAIT_MS(d)); /* from here the loop must run on */
	if (d->shared)
		async_start(d);
	d->http = http_open(d);
	if (!d->http)
		return error("cannot start the HTTP client");
	if (spool_watch_start(&d->sp) < 0)
		logmsg(LOG_WARN, "cannot watch %s/incoming with inotify; rescanning every %lld ms",
		       cfg->spool_dir, (long long)cfg->rescan_ms);
	return 0;
}

static void close_all(struct daemon *d)
{
	while (d->runs)
		run_free(d->runs);
	if (d->http)
		http_free(d->http);
	if (d->rl)
		rl_free(d->rl);
	output_batch_free(d->outputs);
	if (d->st)
		store_close(d->st);
	spool_close(&d->sp);
	tokens_forget(d);
	names_clear(&d->pending);
	names_clear(&d->archive);
	names_clear(&d->stuck);
	sb_release(&d->txn_first_failure);
	sb_release(&d->lost_why);
	shared_waits_forget(d);
}

/* log_top_reason - one of the most common reasons jobs ended badly, at info level. */
static int log_top_reason(const char *reason, int64_t n, void *arg)
{
	int *rank = arg;
	logmsg(LOG_INFO, "top reason %d: %lld job(s) failed or dead: %s", ++*rank, (long long)n,
	       reason ? reason : "(none given)");
	return 0;
}

/* summary - what happened, in one log line, then the top failure reasons. */
static void summary(struct daemon *d)
{
	int64_t counts[JS_COUNT] = {0};
	store_counts(d->st, counts);
	struct strbuf sb = STRBUF_INIT;
	for (int s = 0; s < JS_COUNT; s++)
		if (counts[s])
			sb_addf(&sb, " %s=%lld", job_state_name((enum job_state)s),
			        (long long)counts[s]);
	logmsg(LOG_INFO,
	       "stopped: %lld file(s) ingested, %lld rejected, %lld job(s) added, %lld "
	       "duplicate key(s), %lld request(s); jobs:%s",
	       (long long)d->files_ingested, (long long)d->files_rejected,
	       (long long)d->jobs_ingested, (long long)d->duplicates, (long long)d->requests,
	       sb.len ? sb.buf : " none");
	sb_release(&sb);
	if (!counts[JS_FAILED] && !counts[JS_DEAD])
		return;
	/* the most common ways jobs ended badly, so the journal says what to look at */
	int rank = 0;
	if (store_top_reasons_foreach(d->st, STORE_TOP_REASONS, log_top_reason, &rank) < 0)
		logmsg(LOG_WARN, "cannot count the failure reasons: %s", store_errmsg(d->st));
}

/* daemon_run - see daemon.h. */
int daemon_run(struct config *cfg, int until_idle)
{
	struct daemon d;
	memset(&d, 0, sizeof(d));
	d.cfg = cfg;
	d.until_idle = until_idle;
	d.results_check = d.results_pending = 1; /* results files a stop left due or unwritten */
	d.sp.lock_fd = d.sp.watch_fd = -1;
	sb_init(&d.txn_first_failure, 0);
	node_init(&d);
	d.rng = (uint64_t)clock_wall_ms() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
	d.loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	signal(SIGPIPE, SIG_IGN);
	if (http_global_init() < 0 || open_all(&d) < 0) {
		close_all(&d);
		http_global_cleanup();
		return 1;
	}
	logmsg(LOG_INFO, "running on spool %s (store %s, outputs %s, api %s)", cfg->spool_dir,
	       cfg->db_name, cfg->output_dir, config_base_url(cfg, "api"));
	if (d.sp.watch_fd >= 0) {
		ev_io_init(&d.watch_io, on_watch, d.sp.watch_fd, EV_READ);
		d.watch_io.data = &d;
		ev_io_start(d.loop, &d.watch_io);
	}
	ev_prepare_init(&d.prepare, on_prepare);
	d.prepare.data = &d;
	ev_prepare_start(d.loop, &d.prepare);
	ev_timer_init(&d.tick, on_tick, 0., 0.);
	d.tick.data = &d;
	ev_timer_init(&d.control_timer, on_control_timer, CONTROL_POLL_S, CONTROL_POLL_S);
	d.control_timer.data = &d;
	ev_timer_start(d.loop, &d.control_timer);
	ev_timer_init(&d.grace_timer, on_grace, 0., 0.);
	d.grace_timer.data = &d;
	metrics_file_start(&d);
	ev_signal_init(&d.sig_term, on_stop_signal, SIGTERM);
	ev_signal_init(&d.sig_int, on_stop_signal, SIGINT);
	ev_signal_init(&d.sig_hup, on_hup, SIGHUP);
	d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
	ev_signal_start(d.loop, &d.sig_term);
	ev_signal_start(d.loop, &d.sig_int);
	ev_signal_start(d.loop, &d.sig_hup);
	d.scan_needed = 1;
	d.control_needed = 1;
	d.wake_token_waiters = 1; /* tokens are read afresh at start, as after a SIGHUP */
	notify_ready(&d);
	ev_run(d.loop, 0);
	notify_stopping(&d);
	notify_end(&d);
	d.stopping = 1; /* the last commit saves the rate-limit buckets whatever their age */
	node_stop(&d);
	if (d.st && !d.reset_needed) {
		/* the commit in flight answered, then the last one sent and answered */
		if (store_async_wait(d.st) == 0)
			commit(&d);
		if (store_async_wait(d.st) < 0)
			logmsg(LOG_ERROR,
			       "the last commit failed: %s (its jobs run again at the next start)",
			       store_errmsg(d.st));
	}
	async_stop(&d);
	if (d.st)
		summary(&d);
	metrics_file_stop(&d);
	ev_prepare_stop(d.loop, &d.prepare);
	ev_timer_stop(d.loop, &d.tick);
	ev_timer_stop(d.loop, &d.control_timer);
	ev_timer_stop(d.loop, &d.grace_timer);
	ev_io_stop(d.loop, &d.watch_io);
	ev_signal_stop(d.loop, &d.sig_term);
	ev_signal_stop(d.loop, &d.sig_int);
	ev_signal_stop(d.loop, &d.sig_hup);
	close_all(&d);
	http_global_cleanup();
	return 0;
}
