/* node.c - one daemon among several on a shared store (PostgreSQL): it joins as a node,
 * renews its lease by a heartbeat that also brings the cancels asked from elsewhere and,
 * with each heartbeat, sweeps for nodes whose lease ran out; it wakes when another
 * node announces work. When its lease or its connection is lost it aborts every request,
 * drops what it held without writing, and joins again as a new node once the database
 * answers. None of this runs with a store that is not shared (SQLite): d->shared is 0. */
#include "daemon_int.h"

#include <stdarg.h>
#include <stdlib.h>

#include "config.h"
#include "http.h"
#include "output.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

#define RECONNECT_MIN_MS 500
#define RECONNECT_MAX_MS 30000

static void on_reconnect(struct ev_loop *loop, ev_timer *w, int revents);

/* add_expired - the name of a node whose lease ran out, for the rescue's log. */
static int add_expired(const struct node_rec *n, void *arg)
{
	struct strbuf *names = arg;
	if (n->lease_left_ms <= 0)
		sb_addf(names, "%s%s (pid %lld)", names->len ? ", " : "", n->name,
		        (long long)n->pid);
	return 0;
}

/* rescue - the jobs of nodes whose lease ran out (or marked dead) queued again. */
static void rescue(struct daemon *d, const char *when)
{
	struct strbuf names = STRBUF_INIT;
	if (d->async) { /* sent; the store says what it took back when the answer comes */
		if (store_rescue(d->st, clock_wall_ms()) < 0)
			write_failed(d, 0, "take back the jobs of expired leases");
		return;
	}
	/* without the names the log says less; the rescue says whether the store is there */
	if (store_nodes_foreach(d->st, add_expired, &names) < 0)
		sb_reset(&names);
	int64_t n = store_rescue(d->st, clock_wall_ms());
	if (n < 0)
		write_failed(d, 0, "take back the jobs of expired leases");
	else if (n > 0)
		logmsg(LOG_INFO,
		       "%s: %lld job(s) left running by daemons whose lease ran out (%s) are "
		       "queued again",
		       when, (long long)n, names.len ? names.buf : "nodes marked dead");
	sb_release(&names);
}

/* on_wakeup - another node announced work: consumed here, claimed by the prepare that
 * follows. */
static void on_wakeup(struct ev_loop *loop, ev_io *w, int revents)
{
	struct daemon *d = w->data;
	(void)loop;
	(void)revents;
	if (d->st && !d->reset_needed && store_wakeup_drain(d->st) < 0)
		node_lost(d, "cannot read the work announcements: %s", store_errmsg(d->st));
}

/* on_heartbeat - the lease renewed; the cancels and the sweep are done by the next
 * prepare, in its transaction. */
static void on_heartbeat(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	(void)loop;
	(void)revents;
	if (!d->st || d->reset_needed)
		return;
	int rc = store_heartbeat(d->st, clock_wall_ms());
	if (rc == 1) {
		node_lost(d, "node %s lost its lease (another daemon took its jobs back)",
		          d->cfg->node);
		return;
	}
	if (rc < 0) {
		node_lost(d, "cannot renew the lease of node %s: %s", d->cfg->node,
		          store_errmsg(d->st));
		return;
	}
	d->cancels_due = 1;
	d->rescue_due = 1;
}

/* node_join - see daemon_int.h. */
int node_join(struct daemon *d, const char *when)
{
	if (store_node_start(d->st, d->cfg->node, d->cfg->lease_ms, clock_wall_ms()) < 0)
		return error("cannot join %s as node %s: %s", d->cfg->db_name, d->cfg->node,
		             store_errmsg(d->st));
	/* store_node_start marked this daemon's earlier nodes dead (a restart, or a
	 * reconnect: none of their requests is in flight): their jobs come back now */
	int64_t n = store_rescue(d->st, clock_wall_ms());
	if (n < 0)
		return error("cannot take back the jobs of expired leases: %s",
		             store_errmsg(d->st));
	logmsg(LOG_INFO,
	       "%s: node %s joined %s (lease %lld s); %lld job(s) left running by expired "
	       "or earlier nodes are queued again",
	       when, d->cfg->node, d->cfg->db_name, (long long)(d->cfg->lease_ms / 1000),
	       (long long)n);
	double beat_s = (double)config_heartbeat_ms(d->cfg) / 1000.0;
	ev_timer_set(&d->heartbeat, beat_s, beat_s);
	ev_timer_start(d->loop, &d->heartbeat);
	int fd = store_wakeup_fd(d->st);
	if (fd >= 0) {
		ev_io_set(&d->wakeup_io, fd, EV_READ);
		ev_io_start(d->loop, &d->wakeup_io);
	}
	return 0;
}

/* node_init - the watchers, before the first join. */
void node_init(struct daemon *d)
{
	ev_timer_init(&d->heartbeat, on_heartbeat, 1., 1.);
	d->heartbeat.data = d;
	ev_io_init(&d->wakeup_io, on_wakeup, 0, EV_READ);
	d->wakeup_io.data = d;
	ev_timer_init(&d->reconnect, on_reconnect, 0., 0.);
	d->reconnect.data = d;
	async_init(d);
	sb_init(&d->lost_why, 0);
}

/* node_stop - the watchers stopped (at exit, or before a reconnect). */
void node_stop(struct daemon *d)
{
	ev_timer_stop(d->loop, &d->heartbeat);
	ev_io_stop(d->loop, &d->wakeup_io);
	ev_timer_stop(d->loop, &d->reconnect);
}

/* node_lost - see daemon_int.h. */
void node_lost(struct daemon *d, const char *fmt, ...)
{
	if (d->reset_needed++)
		return; /* the first reason is the one */
	va_list ap;
	va_start(ap, fmt);
	sb_vaddf(&d->lost_why, fmt, ap);
	va_end(ap);
}

/* node_cancels - running jobs of this node that a user cancelled from anywhere: their
 * requests aborted, as a cancel by control file does. */
static void node_cancels(struct daemon *d)
{
	int64_t *ids = NULL;
	size_t n = 0;
	if (txn_try(d) < 0)
		return;
	if (store_cancels_pending(d->st, &ids, &n) < 0) {
		write_failed(d, 0, "read the cancels asked for this node's jobs");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct run *r = run_find(d, ids[i]);
		if (r && r->held)
			continue; /* its answer is recorded first; a later heartbeat ends it */
		log_job(LOG_INFO, ids[i], NULL, NULL, "job %lld cancelled by the user%s",
		        (long long)ids[i], r && r->xfer ? " (its request aborted)" : "");
		cancel_running(d, ids[i]);
	}
	free(ids);
}

/* node_iteration - see daemon_int.h. */
void node_iteration(struct daemon *d)
{
	if (d->rescue_due && txn_try(d) == 0) {
		d->rescue_due = 0;
		rescue(d, "sweep");
	}
	if (d->cancels_due) {
		d->cancels_due = 0;
		node_cancels(d);
	}
}

/* reconnect - the store opened again and this daemon joined as a new node: 0, or -1
 * (tried again later). */
static int reconnect(struct daemon *d)
{
	char *err = NULL;
	if (store_open(d->cfg->db_path, STORE_WAIT_FOR_CLI, &d->st, &err) < 0) {
		logmsg(LOG_WARN, "cannot reconnect to %s: %s; trying again in %lld ms",
		       d->cfg->db_name, err ? err : "cannot open the store",
		       (long long)d->reconnect_ms);
		free(err);
		d->st = NULL;
		return -1;
	}
	if (node_join(d, "reconnected") < 0) {
		logmsg(LOG_WARN, "trying again in %lld ms", (long long)d->reconnect_ms);
		store_close(d->st);
		d->st = NULL;
		ev_timer_stop(d->loop, &d->heartbeat);
		ev_io_stop(d->loop, &d->wakeup_io);
		return -1;
	}
	store_set_busy_timeout(d->st, STORE_WAIT_MS(d));
	async_start(d);
	/* what the dropped transaction held is done again: files still in incoming/ are
	 * ingested anew, results files looked for, the rescued jobs claimed by someone */
	d->scan_needed = 1;
	d->results_check = d->results_pending = 1;
	return 0;
}

/* on_reconnect - another try, each a little later while the database does not answer. */
static void on_reconnect(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	(void)revents;
	if (d->st || reconnect(d) == 0) {
		ev_timer_stop(loop, &d->tick);
		ev_timer_set(&d->tick, 0., 0.);
		ev_timer_start(loop, &d->tick);
		return;
	}
	ev_timer_set(&d->reconnect, (double)d->reconnect_ms / 1000.0, 0.);
	ev_timer_start(loop, &d->reconnect);
	d->reconnect_ms =
	    d->reconnect_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : d->reconnect_ms * 2;
}

/* node_reset - see daemon_int.h. */
void node_reset(struct daemon *d)
{
	int inflight = d->ninflight, held = d->nruns - d->ninflight;
	logmsg(LOG_ERROR,
	       "%s; aborting %d request(s) and dropping %d other job(s) of this node without "
	       "recording them (their jobs are taken back by a rescue), then joining %s again "
	       "as a new node",
	       d->lost_why.buf, inflight, held, d->cfg->db_name);
	node_stop(d);
	async_stop(d); /* the requests waiting for a commit are dropped with their runs */
	/* nothing more goes out under the old node: every transfer dropped, no callback */
	http_free(d->http);
	d->http = http_open(d);
	d->ninflight = 0;
	d->nheld = 0;
	d->held_head = d->held_tail = NULL;
	while (d->runs) {
		struct run *r = d->runs;
		if (r->held) { /* its answer is dropped with the transaction: said above */
			sb_release(&r->held->body);
			free(r->held);
			r->held = NULL;
		}
		run_free(r);
	}
	output_batch_free(d->outputs); /* staged outputs of jobs never recorded succeeded */
	d->outputs = output_batch_new();
	names_clear(&d->archive); /* their jobs are rolled back: the files stay in incoming/ */
	free(d->archive_ids);
	d->archive_ids = NULL;
	d->archive_ids_alloc = 0;
	store_rollback(d->st);
	store_close(d->st);
	d->st = NULL;
	d->in_txn = 0;
	d->txn_failed = 0;
	sb_reset(&d->txn_first_failure);
	d->busy_since_ms = 0;
	d->rescue_due = d->cancels_due = 0;
	d->reset_needed = 0;
	sb_reset(&d->lost_why);
	d->resets++;
	d->reconnect_ms = RECONNECT_MIN_MS;
	ev_timer_set(&d->reconnect, 0., 0.);
	ev_timer_start(d->loop, &d->reconnect);
}
