/* pg_buckets.c - the rate-limit buckets of the PostgreSQL store: the saved form of a
 * daemon's own buckets (as in SQLite), and the buckets every node takes from (GCRA on
 * the database's clock, sql/postgresql/002_buckets.sql). Taking and holding go by the
 * side connection, autocommit: a bucket's row is locked for one statement, never across
 * the daemon's group transaction, where every node's take would queue behind it. */
#include "pg_int.h"

#include <math.h>
#include <stdlib.h>

#include "util.h"

/* a node's saved bucket never shortens a hold another node set (store_bucket_hold) */
static const char BUCKET_SAVE[] =
    "INSERT INTO buckets (key, tokens, updated_ms, hold_until_ms) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, "
    "updated_ms = excluded.updated_ms, "
    "hold_until_ms = GREATEST(buckets.hold_until_ms, excluded.hold_until_ms)";
static const char BUCKETS[] = "SELECT key, tokens, updated_ms, hold_until_ms FROM buckets "
                              "ORDER BY key COLLATE \"C\"";
static const char BUCKET_TAKE[] = "SELECT segspool_bucket_take($1, $2, $3)";
/* a later hold wins; the row is made when no node took from the bucket yet. $2 is how
 * long from now, on the database's clock (which takes compare with) */
static const char BUCKET_HOLD[] =
    "INSERT INTO buckets (key, hold_until_ms) VALUES ($1, " PG_NOW_MS " + $2::bigint) "
    "ON CONFLICT (key) DO UPDATE "
    "SET hold_until_ms = GREATEST(buckets.hold_until_ms, excluded.hold_until_ms)";

/* store_bucket_save - a rate-limit bucket's state, inserted or replaced. A node's (one
 * that joined: the daemon, saving in its group transaction) goes by the side connection,
 * committed at once: the row locked till the group commits would stall every other
 * node's take from that bucket. What a bucket was is advice for a restart: it need not
 * be undone with the group. */
int store_bucket_save(struct store *st, const char *key, double tokens, int64_t updated_ms,
                      int64_t hold_until_ms)
{
	enum pg_wrap how = PG_JOINED;
	struct pg_params p;
	int side = st->side.conn != NULL;
	if (!side && pg_op_begin(st, &how) < 0)
		return -1;
	pg_params_init(&p);
	pg_param_text(&p, key);
	pg_param_double(&p, tokens);
	pg_param_i64(&p, updated_ms);
	pg_param_i64(&p, hold_until_ms);
	const char *what = "save a rate-limit bucket";
	if (st->side_pipe.on)
		return pg_side_send(st, BUCKET_SAVE, &p, PG_SIDE_WRITE, 0, what);
	PGresult *r =
	    side ? pg_query_side(st, BUCKET_SAVE, &p, what) : pg_query(st, BUCKET_SAVE, &p, what);
	int rc = r ? 0 : -1;
	PQclear(r);
	return side ? rc : pg_op_end(st, how, rc);
}

/* store_bucket_foreach - every saved bucket, by key. */
int store_bucket_foreach(struct store *st, store_bucket_fn fn, void *arg)
{
	PGresult *r = pg_query(st, BUCKETS, NULL, "read rate-limit buckets");
	if (!r)
		return -1;
	for (int i = 0, n = PQntuples(r); i < n; i++)
		fn(pg_get_text(r, i, 0), pg_get_double(r, i, 1, 0), pg_get_i64(r, i, 2, 0),
		   pg_get_i64(r, i, 3, 0), arg);
	PQclear(r);
	return 0;
}

/* bucket_query - a bucket's statement on the side connection, or, for a store without
 * one (the CLI's), on the main one: a single statement, its row lock gone with it when
 * no transaction is open there. */
static PGresult *bucket_query(struct store *st, const char *sql, const struct pg_params *p,
                              const char *what)
{
	if (st->side.conn)
		return pg_query_side(st, sql, p, what);
	return pg_query(st, sql, p, what);
}

/* take_params - BUCKET_TAKE's parameters, unless rate or burst is not a number. */
static int take_params(struct store *st, const char *key, double rate, double burst,
                       struct pg_params *p)
{
	if (!isfinite(rate) || !isfinite(burst))
		return pg_fail(st,
		               "cannot take from bucket %s: rate %g or burst %g is not a number",
		               key, rate, burst);
	pg_params_init(p);
	pg_param_text(p, key);
	pg_param_double(p, rate);
	pg_param_double(p, burst);
	return 0;
}

/* store_bucket_take - one token from key, or the wait until one may be taken: the
 * database decides in one call (its clock; the row locked by it alone), so two nodes
 * never both take the last token. */
int store_bucket_take(struct store *st, const char *key, double rate, double burst, int64_t now_ms,
                      int64_t *wait_ms)
{
	struct pg_params p;
	(void)now_ms; /* the nodes' clocks may disagree: the database's decides */
	*wait_ms = 0;
	if (take_params(st, key, rate, burst, &p) < 0)
		return -1;
	PGresult *r = bucket_query(st, BUCKET_TAKE, &p, "take from a rate-limit bucket");
	if (!r)
		return -1;
	int64_t wait = PQntuples(r) > 0 ? pg_get_i64(r, 0, 0, -1) : -1;
	PQclear(r);
	if (wait < 0)
		return pg_fail(st, "cannot take from bucket %s: the database gave no answer", key);
	*wait_ms = wait;
	return 0;
}

/* store_bucket_take_async - see store.h: in the side connection's pipeline. */
int store_bucket_take_async(struct store *st, const char *key, double rate, double burst,
                            int64_t cookie)
{
	struct pg_params p;
	if (!st->side_pipe.on)
		return pg_fail(st, "cannot take from bucket %s later: the store has no pipeline",
		               key);
	if (take_params(st, key, rate, burst, &p) < 0)
		return -1;
	return pg_side_send(st, BUCKET_TAKE, &p, PG_SIDE_TAKE, cookie,
	                    "take from a rate-limit bucket");
}

/* store_bucket_hold - nobody takes from key before until_ms; the later hold wins.
 * until_ms is on this machine's clock (the caller's now plus a Retry-After): held as
 * that long from now on the database's, as another node's clock may be ahead. */
int store_bucket_hold(struct store *st, const char *key, int64_t until_ms)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, key);
	pg_param_i64(&p, until_ms - clock_wall_ms());
	if (st->side_pipe.on)
		return pg_side_send(st, BUCKET_HOLD, &p, PG_SIDE_WRITE, 0,
		                    "hold a rate-limit bucket");
	PGresult *r = bucket_query(st, BUCKET_HOLD, &p, "hold a rate-limit bucket");
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}
