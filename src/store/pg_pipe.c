/* pg_pipe.c - the main connection in libpq's pipeline mode (store_async_start): the
 * daemon's statements go out without waiting, and their answers are read in the order they
 * were sent, as they come (store_async_poll, from the daemon's loop when the socket is
 * readable) or at once for a caller that needs one (pg_pipe_wait). A commit ends with a
 * sync point; its answer says the transaction is durable.
 *
 * A write's check (the job still running under this node, the attempt still open) is in
 * its SQL (segspool_fence, segspool_expect: sql/postgresql/003_pipeline.sql), so a failed
 * check is an error the server raises, and the server then skips everything up to the
 * sync point: nothing of that transaction is kept. Any failure is final for the store:
 * st->err keeps the first, every later call fails, and the daemon's node starts again.
 */
#include "pg_int.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* pg_pipe_pushed - see pg_int.h: the ring grows as needed. */
void pg_pipe_pushed(struct store *st, enum pg_pend kind, const char *what)
{
	struct pg_pipe *pp = &st->pipe;
	if (pp->n == pp->cap) {
		size_t cap = pp->cap ? 2 * pp->cap : 64;
		struct pg_pending *q = xmalloc(cap * sizeof(*q));
		for (size_t i = 0; i < pp->n; i++)
			q[i] = pp->q[(pp->head + i) % pp->cap];
		free(pp->q);
		pp->q = q;
		pp->cap = cap;
		pp->head = 0;
	}
	struct pg_pending *e = &pp->q[(pp->head + pp->n++) % pp->cap];
	e->kind = kind;
	e->answered = 0;
	e->what = what;
}

/* pop - the oldest entry is answered in full. */
static void pop(struct pg_pipe *pp)
{
	pp->head = (pp->head + 1) % pp->cap;
	pp->n--;
}

/* pg_pipe_fail - see pg_int.h: the first failure is the one kept. */
int pg_pipe_fail(struct store *st, const char *msg)
{
	if (!st->pipe.failed && msg)
		pg_fail(st, "%s", msg);
	st->pipe.failed = 1;
	return -1;
}

/* conn_failed - the connection could not send or read: said with libpq's reason. */
static int conn_failed(struct store *st, const char *what)
{
	if (!st->pipe.failed)
		pg_server_err(st, st->main.conn, NULL, what);
	return pg_pipe_fail(st, NULL);
}

/* await - waits until the socket is ready for events (no timeout: the connection's TCP
 * keepalives and tcp_user_timeout end a silent one). */
static int await(struct store *st, short events)
{
	struct pollfd pfd = {.fd = PQsocket(st->main.conn), .events = events};
	for (;;) {
		int rc = poll(&pfd, 1, -1);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR) {
			pg_fail(st, "cannot wait for the database %s: %s", st->where,
			        strerror(errno));
			return pg_pipe_fail(st, NULL);
		}
	}
}

/* flush - sends what libpq holds: all of it with wait (reading meanwhile, so that a
 * server blocked on writing to us cannot block us), else what the socket takes now. */
static int flush(struct store *st, int wait)
{
	PGconn *c = st->main.conn;
	for (;;) {
		int rc = PQflush(c);
		st->pipe.unsent = rc == 1;
		if (rc == 0 || (rc == 1 && !wait))
			return 0;
		if (rc < 0)
			return conn_failed(st, "send to the database");
		if (await(st, POLLOUT | POLLIN) < 0)
			return -1;
		if (!PQconsumeInput(c))
			return conn_failed(st, "read from the database");
	}
}

/* answered - r, the answer to the oldest entry h: checked, and kept where it is wanted. */
static void answered(struct store *st, struct pg_pending *h, PGresult *r)
{
	struct pg_pipe *pp = &st->pipe;
	ExecStatusType s = PQresultStatus(r);
	h->answered = 1;
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		if (!pp->failed && s == PGRES_PIPELINE_ABORTED)
			pg_fail(st, "cannot %s: an earlier statement of its transaction failed",
			        h->what);
		else if (!pp->failed)
			pg_server_err(st, st->main.conn, r, h->what);
		pp->failed = 1;
		PQclear(r);
		return;
	}
	switch (h->kind) {
	case PG_PEND_COMMIT:
		if (strcmp(PQcmdStatus(r), "COMMIT") != 0)
			pg_pipe_fail(st, "cannot commit: the server rolled the transaction back");
		break;
	case PG_PEND_RESULT:
		PQclear(pp->waited);
		pp->waited = r;
		return;
	case PG_PEND_CLAIM:
		pg_claim_arrived(st, r);
		pp->events |= STORE_ASYNC_CLAIMED;
		break;
	case PG_PEND_NEXT_DUE:
		pp->next_due_ms = PQntuples(r) ? pg_get_i64(r, 0, 0, 0) : 0;
		break;
	case PG_PEND_RESCUE:
		pg_rescue_arrived(st, r);
		break;
	case PG_PEND_CANCELS:
		pg_cancels_arrived(st, r);
		if (pp->ncancels)
			pp->events |= STORE_ASYNC_CANCELS;
		break;
	case PG_PEND_FILES_DUE:
		if (PQntuples(r) > 0) {
			PQclear(pp->files_due);
			pp->files_due = r;
			pp->events |= STORE_ASYNC_FILES;
			return;
		}
		break;
	default:
		break;
	}
	PQclear(r);
}

/* step - handles the next answer: 1 when one was, 0 when none has come (without wait) or
 * none is expected, -1 when the connection failed. */
static int step(struct store *st, int wait)
{
	struct pg_pipe *pp = &st->pipe;
	PGconn *c = st->main.conn;
	if (!pp->n)
		return 0;
	if (!PQconsumeInput(c))
		return conn_failed(st, "read from the database");
	while (PQisBusy(c)) {
		if (!wait)
			return 0;
		if (flush(st, 0) < 0 || await(st, (short)(POLLIN | (pp->unsent ? POLLOUT : 0))) < 0)
			return -1;
		if (!PQconsumeInput(c))
			return conn_failed(st, "read from the database");
	}
	struct pg_pending *h = &pp->q[pp->head];
	PGresult *r = PQgetResult(c);
	if (!r) {
		/* the end of h's answer; none at all means the connection broke */
		if (!h->answered)
			return conn_failed(st, h->what);
		pop(pp);
		return 1;
	}
	if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
		PQclear(r);
		if (h->kind != PG_PEND_SYNC)
			return pg_pipe_fail(st,
			                    "cannot read the database's answers: they are out of "
			                    "step with what was sent");
		pop(pp);
		pp->commits--;
		if (!pp->failed)
			pp->events |= STORE_ASYNC_COMMITTED;
		return 1;
	}
	if (h->answered || h->kind == PG_PEND_SYNC) {
		PQclear(r);
		return pg_pipe_fail(st, "cannot read the database's answers: they are out of step "
		                        "with what was sent");
	}
	answered(st, h, r);
	return 1;
}

/* pg_pipe_flush_request - see pg_int.h. */
int pg_pipe_flush_request(struct store *st)
{
	if (!PQsendFlushRequest(st->main.conn))
		return conn_failed(st, "ask the database for its answers");
	return flush(st, 0);
}

/* wait_sent - the answer to the PG_PEND_RESULT just sent: everything sent before it is
 * answered first, in turn. */
static PGresult *wait_sent(struct store *st, const char *what)
{
	struct pg_pipe *pp = &st->pipe;
	logmsg(LOG_DEBUG, "database %s: waiting for the answer to %s (%zu before it)", st->where,
	       what, pp->n - 1);
	if (!PQsendFlushRequest(st->main.conn)) {
		conn_failed(st, what);
		return NULL;
	}
	if (flush(st, 1) < 0)
		return NULL;
	while (pp->n && step(st, 1) >= 0)
		;
	PGresult *r = pp->waited;
	pp->waited = NULL;
	if (pp->failed || !r) {
		PQclear(r);
		if (!pp->failed)
			conn_failed(st, what);
		return NULL;
	}
	return r;
}

/* pg_pipe_wait - see pg_int.h. */
PGresult *pg_pipe_wait(struct store *st, const char *sql, const struct pg_params *p,
                       const char *what)
{
	return pg_pipe_send(st, sql, p, PG_PEND_RESULT, what) < 0 ? NULL : wait_sent(st, what);
}

/* pg_pipe_wait_text - see pg_int.h. */
PGresult *pg_pipe_wait_text(struct store *st, const char *sql, const char *what)
{
	return pg_pipe_send_text(st, sql, PG_PEND_RESULT, what) < 0 ? NULL : wait_sent(st, what);
}

/* pg_pipe_commit - see pg_int.h. */
int pg_pipe_commit(struct store *st, int wait)
{
	struct pg_pipe *pp = &st->pipe;
	pp->txn = 0;
	pp->claim_in_txn = 0; /* its claims are this node's once it commits */
	pp->nfresh = 0;
	if (pg_pipe_send_text(st, "COMMIT", PG_PEND_COMMIT, "commit") < 0)
		return -1;
	if (!PQpipelineSync(st->main.conn))
		return conn_failed(st, "commit");
	pg_pipe_pushed(st, PG_PEND_SYNC, "commit");
	pp->commits++;
	if (flush(st, 0) < 0)
		return -1;
	return wait ? store_async_wait(st) : 0;
}

/* store_async_start - see store.h: the main connection enters pipeline mode, its sends
 * made non-blocking (flushed as the socket takes them). Outside any transaction only. */
int store_async_start(struct store *st)
{
	PGconn *c = st->main.conn;
	if (st->pipe.on)
		return 0;
	if (!c || PQstatus(c) != CONNECTION_OK || PQtransactionStatus(c) != PQTRANS_IDLE)
		return pg_fail(st, "cannot start the pipeline: the connection is not idle");
	if (PQsetnonblocking(c, 1) != 0 || !PQenterPipelineMode(c)) {
		pg_server_err(st, c, NULL, "start the pipeline");
		return -1;
	}
	st->pipe.on = 1;
	return pg_side_start(st);
}

/* store_async_fd - see store.h. */
int store_async_fd(struct store *st)
{
	return st->pipe.on ? PQsocket(st->main.conn) : -1;
}

/* store_async_wants_write - see store.h. */
int store_async_wants_write(struct store *st)
{
	return st->pipe.on && (st->pipe.unsent || st->side_pipe.unsent);
}

/* store_async_poll - see store.h. */
int store_async_poll(struct store *st)
{
	struct pg_pipe *pp = &st->pipe;
	if (!pp->on)
		return 0;
	/* read even with nothing expected: a connection the server closed says so here,
	 * and its socket would stay readable for good */
	if (!pp->failed &&
	    (!PQconsumeInput(st->main.conn) || PQstatus(st->main.conn) == CONNECTION_BAD))
		conn_failed(st, "read from the database");
	if (!pp->failed && flush(st, 0) == 0)
		while (step(st, 0) > 0 && !pp->failed)
			;
	int side = pg_side_poll(st);
	if (pp->failed || side < 0)
		return -1;
	int events = pp->events | side;
	pp->events = 0;
	return events;
}

/* store_async_wait - see store.h. */
int store_async_wait(struct store *st)
{
	struct pg_pipe *pp = &st->pipe;
	if (!pp->on)
		return 0;
	if (pp->commits > 0)
		logmsg(LOG_DEBUG, "database %s: waiting for %d commit(s) to be answered", st->where,
		       pp->commits);
	if (!pp->failed && flush(st, 1) == 0)
		while (pp->commits > 0 && !pp->failed && step(st, 1) >= 0)
			;
	return pp->failed ? -1 : 0;
}

/* store_commits_pending - see store.h. */
int store_commits_pending(struct store *st)
{
	return st->pipe.commits;
}

/* pg_pipe_free - see pg_int.h: what is kept of answers not taken. */
void pg_pipe_free(struct store *st)
{
	struct pg_pipe *pp = &st->pipe;
	PQclear(pp->waited);
	PQclear(pp->files_due);
	free(pp->cancels);
	while (pp->nclaimed > 0)
		job_row_release(&pp->claimed[--pp->nclaimed]);
	free(pp->claimed);
	free(pp->q);
	memset(pp, 0, sizeof(*pp));
	pg_side_free(st);
}
