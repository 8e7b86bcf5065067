/* sqlite_nodes.c - what several daemons on one store need, in the store that has one
 * writer: nothing is shared, no lease can be lost, no other node announces work; the
 * daemon's own buckets (ratelimit.c) are the only ones. */
#include "sqlite_int.h"

#include <stdlib.h>

/* store_shared - see store.h: one writer, never shared. */
int store_shared(struct store *st)
{
	(void)st;
	return 0;
}

/* store_node_start - see store.h: the writer's lock is its identity. */
int store_node_start(struct store *st, const char *name, int64_t lease_ms, int64_t now_ms)
{
	(void)st, (void)name, (void)lease_ms, (void)now_ms;
	return 0;
}

/* store_nodes_foreach - see store.h: no node. */
int store_nodes_foreach(struct store *st, store_node_fn fn, void *arg)
{
	(void)st, (void)fn, (void)arg;
	return 0;
}

/* store_heartbeat - see store.h: no lease to renew. */
int store_heartbeat(struct store *st, int64_t now_ms)
{
	(void)st, (void)now_ms;
	return 0;
}

/* store_rescue - see store.h: no other node's jobs; a crash is store_recover's. */
int64_t store_rescue(struct store *st, int64_t now_ms)
{
	(void)st, (void)now_ms;
	return 0;
}

/* store_bucket_take - see store.h: the daemon's buckets are in memory; asking this
 * store is a caller's mistake. */
int store_bucket_take(struct store *st, const char *key, double rate, double burst, int64_t now_ms,
                      int64_t *wait_ms)
{
	(void)rate, (void)burst, (void)now_ms;
	*wait_ms = 0;
	return sq_fail(st, "take from bucket %s: the SQLite store has no shared buckets", key);
}

/* store_bucket_hold - see store.h: as store_bucket_take. */
int store_bucket_hold(struct store *st, const char *key, int64_t until_ms)
{
	(void)until_ms;
	return sq_fail(st, "hold bucket %s: the SQLite store has no shared buckets", key);
}

/* store_wakeup_fd - see store.h: nobody else announces work. */
int store_wakeup_fd(struct store *st)
{
	(void)st;
	return -1;
}

/* store_wakeup_drain - see store.h. */
int store_wakeup_drain(struct store *st)
{
	(void)st;
	return 0;
}

/* store_cancels_pending - see store.h: cancels reach the one daemon by control files. */
int store_cancels_pending(struct store *st, int64_t **ids, size_t *n)
{
	(void)st;
	*ids = NULL;
	*n = 0;
	return 0;
}

/* store_async_start - see store.h: SQLite's commits are durable when they return. */
int store_async_start(struct store *st)
{
	(void)st;
	return -1;
}

/* store_async_fd - see store.h: no pipeline, no socket. */
int store_async_fd(struct store *st)
{
	(void)st;
	return -1;
}

/* store_async_wants_write - see store.h. */
int store_async_wants_write(struct store *st)
{
	(void)st;
	return 0;
}

/* store_async_poll - see store.h: nothing is ever left to come. */
int store_async_poll(struct store *st)
{
	(void)st;
	return 0;
}

/* store_async_wait - see store.h. */
int store_async_wait(struct store *st)
{
	(void)st;
	return 0;
}

/* store_commits_pending - see store.h. */
int store_commits_pending(struct store *st)
{
	(void)st;
	return 0;
}

/* store_async_takes - see store.h: SQLite's daemon has its buckets in memory. */
void store_async_takes(struct store *st, store_take_fn fn, void *arg)
{
	(void)st;
	(void)fn;
	(void)arg;
}

/* store_bucket_take_async - see store.h: no pipeline. */
int store_bucket_take_async(struct store *st, const char *key, double rate, double burst,
                            int64_t cookie)
{
	(void)rate, (void)burst, (void)cookie;
	return sq_fail(st, "take from bucket %s: the SQLite store has no shared buckets", key);
}

/* store_async_side_fd - see store.h. */
int store_async_side_fd(struct store *st)
{
	(void)st;
	return -1;
}
