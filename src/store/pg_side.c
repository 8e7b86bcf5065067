/* pg_side.c - the side connection in libpq's pipeline mode, beside the main one's
 * (pg_pipe.c): the daemon's takes from shared buckets, its holds and its heartbeats go
 * out without waiting, each followed by a sync so that it is a transaction of its own (a
 * bucket's row is locked for one statement only, as in autocommit), and their answers
 * are read in turn as they come. A take's wait goes to the daemon's function, with the
 * cookie it gave; a failure fails the store, as the main pipeline's does. Statements go
 * unprepared: a synchronous PQprepare is not allowed in a pipeline, and these are short.
 */
#include "pg_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* what - an entry's kind, said in an error */
static const char *what(enum pg_side_kind kind)
{
	return kind == PG_SIDE_TAKE   ? "take from a rate-limit bucket"
	       : kind == PG_SIDE_BEAT ? "renew this node's lease"
	                              : "hold a rate-limit bucket";
}

/* side_failed - the side connection could not send or read. */
static int side_failed(struct store *st, const char *doing)
{
	if (!st->pipe.failed)
		pg_server_err(st, st->side.conn, NULL, doing);
	return pg_pipe_fail(st, NULL);
}

/* side_flush - what the socket takes now. */
static int side_flush(struct store *st)
{
	int rc = PQflush(st->side.conn);
	st->side_pipe.unsent = rc == 1;
	return rc < 0 ? side_failed(st, "send to the database") : 0;
}

/* pg_side_start - see pg_int.h: nothing to do for a store without a side connection. */
int pg_side_start(struct store *st)
{
	PGconn *c = st->side.conn;
	if (!c || st->side_pipe.on)
		return 0;
	if (PQsetnonblocking(c, 1) != 0 || !PQenterPipelineMode(c)) {
		pg_server_err(st, c, NULL, "start the side connection's pipeline");
		return -1;
	}
	st->side_pipe.on = 1;
	return 0;
}

/* pg_side_send - see pg_int.h. */
int pg_side_send(struct store *st, const char *sql, const struct pg_params *p,
                 enum pg_side_kind kind, int64_t cookie, const char *doing)
{
	struct pg_side_pipe *sp = &st->side_pipe;
	PGconn *c = st->side.conn;
	if (st->pipe.failed)
		return -1;
	if (!PQsendQueryParams(c, sql, p ? p->n : 0, NULL, p ? p->v : NULL, NULL, NULL, 0) ||
	    !PQpipelineSync(c))
		return side_failed(st, doing);
	if (sp->n == sp->cap) {
		size_t cap = sp->cap ? 2 * sp->cap : 64;
		struct pg_side_pending *q = xmalloc(cap * sizeof(*q));
		for (size_t i = 0; i < sp->n; i++)
			q[i] = sp->q[(sp->head + i) % sp->cap];
		free(sp->q);
		sp->q = q;
		sp->cap = cap;
		sp->head = 0;
	}
	struct pg_side_pending *e = &sp->q[(sp->head + sp->n++) % sp->cap];
	e->kind = kind;
	e->answered = 0;
	e->cookie = cookie;
	return side_flush(st);
}

/* answered - the result r of entry h: a take's wait to the daemon, a heartbeat's renewal
 * checked. */
static int answered(struct store *st, struct pg_side_pending *h, PGresult *r)
{
	struct pg_side_pipe *sp = &st->side_pipe;
	ExecStatusType s = PQresultStatus(r);
	int events = 0;
	h->answered = 1;
	if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
		pg_server_err(st, st->side.conn, r, what(h->kind));
		PQclear(r);
		return pg_pipe_fail(st, NULL);
	}
	if (h->kind == PG_SIDE_TAKE) {
		int64_t wait = PQntuples(r) > 0 ? pg_get_i64(r, 0, 0, -1) : -1;
		if (wait < 0) {
			PQclear(r);
			return pg_pipe_fail(st,
			                    "cannot take from a rate-limit bucket: the database "
			                    "gave no answer");
		}
		if (sp->take_fn)
			sp->take_fn(h->cookie, wait, sp->take_arg);
	} else if (h->kind == PG_SIDE_BEAT && atoi(PQcmdTuples(r)) == 0) {
		pg_fail(st,
		        "lease lost: node %" PRId64 " (%s) was taken for dead and its jobs taken "
		        "back",
		        st->node_id, st->node_name ? st->node_name : "?");
		events = STORE_ASYNC_LEASE_LOST;
	}
	PQclear(r);
	return events;
}

/* pg_side_poll - see pg_int.h. */
int pg_side_poll(struct store *st)
{
	struct pg_side_pipe *sp = &st->side_pipe;
	PGconn *c = st->side.conn;
	int events = 0;
	if (!sp->on || st->pipe.failed)
		return st->pipe.failed ? -1 : 0;
	if (side_flush(st) < 0 || !PQconsumeInput(c) || PQstatus(c) == CONNECTION_BAD)
		return side_failed(st, "read from the database");
	while (sp->n && !PQisBusy(c)) {
		struct pg_side_pending *h = &sp->q[sp->head];
		PGresult *r = PQgetResult(c);
		if (!r) {
			if (h->answered != 1)
				return side_failed(st, what(h->kind));
			h->answered = 2;
			continue;
		}
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			if (h->answered != 2)
				return pg_pipe_fail(
				    st, "cannot read the database's answers on the side "
				        "connection: they are out of step");
			sp->head = (sp->head + 1) % sp->cap;
			sp->n--;
			continue;
		}
		if (h->answered) {
			PQclear(r);
			return pg_pipe_fail(st, "cannot read the database's answers on the side "
			                        "connection: they are out of step");
		}
		int ev = answered(st, h, r);
		if (ev < 0)
			return -1;
		events |= ev;
	}
	return events;
}

/* pg_side_free - see pg_int.h. */
void pg_side_free(struct store *st)
{
	free(st->side_pipe.q);
	memset(&st->side_pipe, 0, sizeof(st->side_pipe));
}

/* store_async_side_fd - see store.h. */
int store_async_side_fd(struct store *st)
{
	return st->side_pipe.on ? PQsocket(st->side.conn) : -1;
}

/* store_async_takes - see store.h. */
void store_async_takes(struct store *st, store_take_fn fn, void *arg)
{
	st->side_pipe.take_fn = fn;
	st->side_pipe.take_arg = arg;
}
