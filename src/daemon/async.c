/* async.c - a store whose commits are answered later (PostgreSQL's pipeline, issue #15):
 * its socket watched by the loop, its answers read as they come, and the requests whose
 * attempts a commit records sent once that commit is answered, never before. */
#include "daemon_int.h"

#include <stdlib.h>

#include "config.h"
#include "store.h"
#include "util.h"

/* on_async - the store's socket is readable (answers) or writable (what was sent is
 * still going out). */
static void on_async(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	async_settle(w->data);
}

/* async_init - the watcher, before the first join. */
void async_init(struct daemon *d)
{
	ev_io_init(&d->async_io, on_async, 0, EV_READ);
	d->async_io.data = d;
	ev_io_init(&d->async_side_io, on_async, 0, EV_READ);
	d->async_side_io.data = d;
}

/* async_start - see daemon_int.h: unless the config says no, or the store has none. */
void async_start(struct daemon *d)
{
	d->async = 0;
	if (!d->cfg->pipeline || store_async_start(d->st) < 0)
		return;
	d->async = 1;
	ev_io_set(&d->async_io, store_async_fd(d->st), EV_READ);
	ev_io_start(d->loop, &d->async_io);
	if (store_async_side_fd(d->st) >= 0) {
		ev_io_set(&d->async_side_io, store_async_side_fd(d->st), EV_READ);
		ev_io_start(d->loop, &d->async_side_io);
	}
	store_async_takes(d->st, on_take, d);
	logmsg(LOG_DEBUG, "the store's writes are pipelined; requests go once their commit is "
	                  "answered");
}

/* async_stop - see daemon_int.h: at a reset (the runs waiting are dropped with it) or exit. */
void async_stop(struct daemon *d)
{
	ev_io_stop(d->loop, &d->async_io);
	ev_io_stop(d->loop, &d->async_side_io);
	d->async = 0;
	d->ngated = 0;
}

/* watch - w on fd, for writing too with want_write. */
static void watch(struct daemon *d, ev_io *w, int fd, int want_write)
{
	int want = EV_READ | (want_write ? EV_WRITE : 0);
	if (fd < 0 || (ev_is_active(w) && (w->events & (EV_READ | EV_WRITE)) == want))
		return;
	ev_io_stop(d->loop, w);
	ev_io_set(w, fd, want);
	ev_io_start(d->loop, w);
}

/* async_watch - see daemon_int.h. */
void async_watch(struct daemon *d)
{
	if (!d->async || !d->st)
		return;
	int w = store_async_wants_write(d->st);
	watch(d, &d->async_io, store_async_fd(d->st), w);
	watch(d, &d->async_side_io, store_async_side_fd(d->st), w);
}

/* release - the commit in flight was answered: its requests go. They are found first, by
 * job, and no commit is sent meanwhile (d->releasing): an answer made for a cancelled one
 * would commit the open transaction, and the requests it records must wait for that. */
static void release(struct daemon *d)
{
	size_t n = 0, i = 0;
	if (d->releasing)
		return;
	for (struct run *r = d->runs; r; r = r->next)
		n += r->gated == 2;
	if (!n)
		return;
	int64_t *ids = xmalloc(n * sizeof(*ids));
	for (struct run *r = d->runs; r && i < n; r = r->next)
		if (r->gated == 2)
			ids[i++] = r->row.id;
	d->releasing = 1;
	for (i = 0; i < n && !d->reset_needed; i++) {
		struct run *r = run_find(d, ids[i]);
		if (r && r->gated == 2)
			send_gated(r);
	}
	d->releasing = 0;
	free(ids);
}

/* async_committing - see daemon_int.h. */
void async_committing(struct daemon *d)
{
	for (struct run *r = d->runs; r; r = r->next)
		if (r->gated == 1)
			r->gated = 2;
}

/* async_settle - see daemon_int.h. */
int async_settle(struct daemon *d)
{
	if (!d->async || !d->st || d->reset_needed)
		return 0;
	int ev = store_async_poll(d->st);
	if (ev < 0) {
		node_lost(d, "the database failed a pipelined write or commit: %s",
		          store_errmsg(d->st));
		return -1;
	}
	if ((ev & STORE_ASYNC_COMMITTED) && !store_commits_pending(d->st))
		release(d);
	if (ev & STORE_ASYNC_FILES)
		d->results_check = 1; /* named at the next commit */
	if (ev & STORE_ASYNC_LEASE_LOST) {
		node_lost(d, "node %s lost its lease (another daemon took its jobs back)",
		          d->cfg->node);
		return -1;
	}
	if (ev & STORE_ASYNC_CANCELS)
		d->cancels_due = 1; /* the next prepare aborts their requests */
	async_watch(d);
	return ev;
}
