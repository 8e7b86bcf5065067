/* pg_nodes.c - several daemons on one PostgreSQL store: each joins as a node (a nodes
 * row), claims jobs under a lease its heartbeat renews, and takes back the running jobs
 * of nodes whose lease ran out. Leases go by the database's clock (PG_NOW_MS), as the
 * nodes' clocks may disagree; the heartbeat runs on the side connection, so a long
 * transaction on the main one does not let the lease run out. The live nodes are listed
 * for status and for the rescue's log. */
#include "pg_int.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* this_host - where this process runs, as the nodes rows say: the host name and the
 * pid namespace (containers may share a name), so that a pid is this host's pid. */
static void this_host(struct strbuf *out)
{
	char name[256] = "", ns[64];
	if (gethostname(name, sizeof(name) - 1) < 0)
		name[0] = '\0';
	ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
	sb_adds(out, name[0] ? name : "?");
	if (n > 0) {
		ns[n] = '\0';
		sb_addf(out, " %s", ns);
	}
}

/* bury_earlier - the live nodes rows of name on this host whose process is this one (a
 * store closed and opened again, its requests aborted) or is gone (a daemon killed and
 * restarted) are dead now: their jobs come back at the next rescue, not a lease later. */
static int bury_earlier(struct store *st, const char *name, const char *host)
{
	static const char live_sql[] =
	    "SELECT id, pid FROM nodes WHERE name = $1 AND host = $2 AND dead = 0";
	static const char bury_sql[] = "UPDATE nodes SET dead = 1 WHERE id = $1 AND dead = 0";
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, name);
	pg_param_text(&p, host);
	PGresult *r = pg_query_side(st, live_sql, &p, "look up this node's earlier rows");
	if (!r)
		return -1;
	int rc = 0;
	for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
		int64_t pid = pg_get_i64(r, i, 1, 0);
		if (pid != (int64_t)getpid() &&
		    (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH))
			continue; /* alive: a second daemon of that name, whose lease decides */
		pg_params_init(&p);
		pg_param_i64(&p, pg_get_i64(r, i, 0, 0));
		PGresult *u = pg_query_side(st, bury_sql, &p, "mark an earlier node dead");
		rc = u ? 0 : -1;
		PQclear(u);
	}
	PQclear(r);
	return rc;
}

/* store_node_start - see store.h: a new nodes row, its id kept in st; this node's
 * earlier rows that nobody runs any more are marked dead first. */
int store_node_start(struct store *st, const char *name, int64_t lease_ms, int64_t now_ms)
{
	static const char sql[] =
	    "INSERT INTO nodes (name, host, pid, started_ms, lease_until_ms, lease_ms) "
	    "VALUES ($1, $2, $3, " PG_NOW_MS ", " PG_NOW_MS " + $4::bigint, $4::bigint) "
	    "RETURNING id";
	struct strbuf host = STRBUF_INIT;
	struct pg_params p;
	(void)now_ms; /* the lease is the database's clock's */
	if (!name || !*name)
		return pg_fail(st, "cannot join as a node without a name");
	if (lease_ms <= 0)
		return pg_fail(st, "cannot join as node %s: a lease of %" PRId64 " ms", name,
		               lease_ms);
	if (pg_side_open(st) < 0)
		return -1;
	this_host(&host);
	if (bury_earlier(st, name, host.buf) < 0) {
		sb_release(&host);
		return -1;
	}
	pg_params_init(&p);
	pg_param_text(&p, name);
	pg_param_text(&p, host.buf);
	pg_param_i64(&p, (int64_t)getpid());
	pg_param_i64(&p, lease_ms);
	PGresult *r = pg_query_side(st, sql, &p, "join as a node");
	sb_release(&host);
	if (!r)
		return -1;
	int64_t id = PQntuples(r) ? pg_get_i64(r, 0, 0, 0) : 0;
	PQclear(r);
	if (!id)
		return pg_fail(st, "cannot join as node %s: no id returned", name);
	st->node_id = id;
	free(st->node_name);
	st->node_name = xstrdup(name);
	st->lease_ms = lease_ms;
	return 0;
}

/* store_heartbeat - see store.h: the lease renewed from the database's now, unless
 * another node has marked this one dead (its jobs taken back). */
int store_heartbeat(struct store *st, int64_t now_ms)
{
	static const char sql[] = "UPDATE nodes SET lease_until_ms = " PG_NOW_MS " + lease_ms "
	                          "WHERE id = $1 AND dead = 0";
	struct pg_params p;
	(void)now_ms;
	if (!st->node_id)
		return pg_fail(st, "cannot renew a lease: this store has not joined as a node");
	pg_params_init(&p);
	pg_param_i64(&p, st->node_id);
	if (st->side_pipe.on) /* a lease found lost comes as STORE_ASYNC_LEASE_LOST */
		return pg_side_send(st, sql, &p, PG_SIDE_BEAT, 0, "renew this node's lease");
	PGresult *r = pg_query_side(st, sql, &p, "renew this node's lease");
	if (!r)
		return -1;
	int renewed = atoi(PQcmdTuples(r)) > 0;
	PQclear(r);
	if (renewed)
		return 0;
	pg_fail(st, "lease lost: node %" PRId64 " (%s) was taken for dead and its jobs taken back",
	        st->node_id, st->node_name ? st->node_name : "?");
	return 1;
}

/* Every node sweeps, and several find the same lease run out at once: the rows a sweep
 * changes are locked in id order, skipping those another sweep (or the dead node's own
 * transaction, still open) holds, so sweeps never wait for each other nor deadlock; what
 * one skips, the next takes. */

/* the nodes whose lease ran out are dead (a heartbeat renewing one at the same moment
 * wins: its row is skipped, or rechecked once locked) */
static const char mark_dead_sql[] =
    "WITH d AS (SELECT id FROM nodes WHERE dead = 0 AND lease_until_ms < " PG_NOW_MS
    " ORDER BY id FOR NO KEY UPDATE SKIP LOCKED) "
    "UPDATE nodes SET dead = 1 FROM d WHERE nodes.id = d.id";
/* the running jobs of dead nodes, queued again with their transitions rows; taken
 * before their attempts are closed, and only when their rows are not locked, so an
 * attempt_begin of the dead node (which locks the job's row till its commit) either
 * committed before and is closed below, or is refused */
static const char rescue_sql[] =
    "WITH c AS (SELECT j.id, n.name FROM jobs j JOIN nodes n ON n.id = j.owner "
    "WHERE j.state = 1 AND n.dead = 1 ORDER BY j.id FOR NO KEY UPDATE OF j SKIP LOCKED), "
    "r AS (UPDATE jobs SET state = 0, owner = NULL, updated_ms = $1 FROM c "
    "WHERE jobs.id = c.id RETURNING jobs.id, c.name), "
    "t AS (INSERT INTO transitions (job_id, from_state, to_state, at_ms, reason) "
    "SELECT id, 1, 0, $1::bigint, 'rescued: daemon ' || name || ' stopped renewing its lease' "
    "FROM r) SELECT id FROM r ORDER BY id";
/* the running jobs of no node: claimed by a store that never joined as one (a daemon
 * alone on the store), which is not running them any more when a store without a node
 * recovers: as store_recover in SQLite */
static const char orphans_sql[] =
    "WITH c AS (SELECT id FROM jobs WHERE state = 1 AND owner IS NULL ORDER BY id "
    "FOR NO KEY UPDATE SKIP LOCKED), "
    "r AS (UPDATE jobs SET state = 0, updated_ms = $1 FROM c WHERE jobs.id = c.id "
    "RETURNING jobs.id), t AS (INSERT INTO transitions (job_id, from_state, to_state, at_ms, "
    "reason) SELECT id, 1, 0, $1::bigint, 'daemon restarted; was running' FROM r) "
    "SELECT id FROM r ORDER BY id";
/* their open attempts: "interrupted" for reads (safe to repeat), "unknown" for mutations
 * (the server may have applied them), as store_recover closes them */
static const char close_sql[] =
    "UPDATE attempts a SET outcome = CASE WHEN j.mutates = 0 THEN 'interrupted' "
    "ELSE 'unknown' END FROM jobs j WHERE j.id = a.job_id AND a.job_id = ANY ($1::bigint[]) "
    "AND a.outcome IS NULL";

/* take_back - the jobs sql (rescue_sql, orphans_sql) queued again, their ids added to
 * ids ("{1,2}" as it is built: "{1,2"); how many, or -1. */
static int64_t take_back(struct store *st, const char *sql, int64_t now_ms, struct strbuf *ids,
                         const char *what)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_i64(&p, now_ms);
	PGresult *r = pg_query(st, sql, &p, what);
	if (!r)
		return -1;
	int n = PQntuples(r);
	for (int i = 0; i < n; i++)
		sb_addf(ids, "%s%" PRId64, ids->len > 1 ? "," : "", pg_get_i64(r, i, 0, 0));
	PQclear(r);
	return n;
}

/* in the pipeline, the sweep in one statement: the nodes whose lease ran out marked
 * dead, their jobs and those of nodes dead already queued again, the open attempts of those closed,
 * and the announcement */
static const char piped_rescue_sql[] =
    "WITH d AS (SELECT id FROM nodes WHERE dead = 0 AND lease_until_ms < " PG_NOW_MS
    " ORDER BY id FOR NO KEY UPDATE SKIP LOCKED), "
    "m AS (UPDATE nodes SET dead = 1 FROM d WHERE nodes.id = d.id RETURNING nodes.id), "
    "c AS (SELECT j.id, n.name, j.mutates FROM jobs j JOIN nodes n ON n.id = j.owner "
    "WHERE j.state = 1 AND (n.dead = 1 OR n.id IN (SELECT id FROM m)) "
    "ORDER BY j.id FOR NO KEY UPDATE OF j SKIP LOCKED), "
    "r AS (UPDATE jobs SET state = 0, owner = NULL, updated_ms = $1 FROM c "
    "WHERE jobs.id = c.id RETURNING jobs.id, c.name, c.mutates), "
    "t AS (INSERT INTO transitions (job_id, from_state, to_state, at_ms, reason) "
    "SELECT id, 1, 0, $1::bigint, 'rescued: daemon ' || name || ' stopped renewing its lease' "
    "FROM r), "
    "a AS (UPDATE attempts a SET outcome = CASE WHEN r.mutates = 0 THEN 'interrupted' "
    "ELSE 'unknown' END FROM r WHERE a.job_id = r.id AND a.outcome IS NULL), "
    "n AS (SELECT pg_notify($2, '') FROM (SELECT 1 FROM r LIMIT 1) x) "
    "SELECT (SELECT count(*) FROM r), (SELECT string_agg(DISTINCT name, ', ') FROM r), "
    "(SELECT count(*) FROM n), (SELECT count(*) FROM m)";

/* after it, in a statement of its own (its own snapshot): the open attempts of dead
 * nodes whose jobs they no longer run, among them one whose transaction committed after
 * the sweep's snapshot was taken but before it locked the job */
static const char piped_close_sql[] =
    "UPDATE attempts a SET outcome = CASE WHEN j.mutates = 0 THEN 'interrupted' "
    "ELSE 'unknown' END FROM jobs j, nodes n WHERE a.outcome IS NULL AND n.id = a.node_id "
    "AND n.dead = 1 AND j.id = a.job_id AND NOT (j.state = 1 AND j.owner = a.node_id)";

/* pg_rescue_arrived - see pg_int.h: said as the daemon says a sweep's rescue. */
void pg_rescue_arrived(struct store *st, const PGresult *r)
{
	(void)st;
	int64_t n = PQntuples(r) ? pg_get_i64(r, 0, 0, 0) : 0;
	if (n > 0)
		logmsg(LOG_INFO,
		       "sweep: %" PRId64 " job(s) left running by daemons whose lease ran out (%s) "
		       "are queued again",
		       n, pg_get_text(r, 0, 1) ? pg_get_text(r, 0, 1) : "nodes marked dead");
}

/* store_rescue - see store.h: one transaction. A store that is no node (a daemon alone
 * on the store, recovering at its start) also takes back the jobs of no node. */
int64_t store_rescue(struct store *st, int64_t now_ms)
{
	enum pg_wrap how;
	struct pg_params p;
	struct strbuf ids = STRBUF_INIT;
	int64_t n = -1, orphans = 0;
	if (st->pipe.on && st->node_id && st->pipe.txn) {
		pg_params_init(&p);
		pg_param_i64(&p, now_ms);
		pg_param_text(&p, st->channel);
		if (pg_pipe_send(st, piped_rescue_sql, &p, PG_PEND_RESCUE,
		                 "take back the jobs of dead nodes") < 0)
			return -1;
		return pg_write(st, piped_close_sql, NULL, "close the attempts of rescued jobs");
	}
	if (pg_op_begin_atomic(st, &how) < 0)
		return -1;
	sb_addch(&ids, '{');
	if (pg_run(st, mark_dead_sql, NULL, "mark expired nodes dead") >= 0)
		n = take_back(st, rescue_sql, now_ms, &ids, "take back the jobs of dead nodes");
	if (n >= 0 && !st->node_id)
		orphans = take_back(st, orphans_sql, now_ms, &ids, "take back the jobs of no node");
	n = orphans < 0 ? -1 : n < 0 ? -1 : n + orphans;
	sb_addch(&ids, '}');
	if (n > 0) {
		pg_params_init(&p);
		pg_param_text(&p, ids.buf);
		if (pg_run(st, close_sql, &p, "close the attempts of rescued jobs") < 0)
			n = -1;
		else
			st->notify_pending = 1;
	}
	sb_release(&ids);
	return pg_op_end(st, how, n < 0 ? -1 : 0) < 0 ? -1 : n;
}

/* store_cancels_pending - see store.h: this node's running jobs a user asked to cancel. */
int store_cancels_pending(struct store *st, int64_t **ids, size_t *n)
{
	static const char sql[] = "SELECT id FROM jobs WHERE state = 1 AND owner = $1 "
	                          "AND cancel_requested = 1 ORDER BY id";
	struct pg_params p;
	*ids = NULL;
	*n = 0;
	if (!st->node_id)
		return 0; /* no node, no running jobs of its own */
	pg_params_init(&p);
	pg_param_i64(&p, st->node_id);
	if (st->pipe.on) { /* the answer to the call before, and the question sent again */
		struct pg_pipe *pp = &st->pipe;
		if (pp->failed)
			return -1;
		*ids = pp->cancels;
		*n = pp->ncancels;
		pp->cancels = NULL;
		pp->ncancels = 0;
		if (*n || pp->cancels_asked)
			return 0;
		pp->cancels_asked = 1;
		/* answered now, not with the next commit: a flush request (as for a claim) */
		return pg_pipe_send(st, sql, &p, PG_PEND_CANCELS, "read the cancels asked for") < 0
		           ? -1
		           : pg_pipe_flush_request(st);
	}
	PGresult *r = pg_query(st, sql, &p, "read the cancels asked for");
	if (!r)
		return -1;
	int rows = PQntuples(r);
	if (rows > 0) {
		*ids = xmalloc((size_t)rows * sizeof(**ids));
		for (int i = 0; i < rows; i++)
			(*ids)[i] = pg_get_i64(r, i, 0, 0);
		*n = (size_t)rows;
	}
	PQclear(r);
	return 0;
}

/* pg_cancels_arrived - see pg_int.h. */
void pg_cancels_arrived(struct store *st, const PGresult *r)
{
	struct pg_pipe *pp = &st->pipe;
	int rows = PQntuples(r);
	pp->cancels_asked = 0;
	free(pp->cancels);
	pp->cancels = rows ? xmalloc((size_t)rows * sizeof(*pp->cancels)) : NULL;
	pp->ncancels = 0;
	for (int i = 0; i < rows; i++) {
		int64_t id = pg_get_i64(r, i, 0, 0), stashed = 0;
		/* one still in the claim's stash is ended by the daemon when it is handed out */
		for (int k = 0; k < pp->nclaimed && !stashed; k++)
			if (pp->claimed[k].id == id)
				stashed = pp->claimed[k].cancel_requested = 1;
		if (!stashed)
			pp->cancels[pp->ncancels++] = id;
	}
}

static const char sql_nodes[] =
    "SELECT id, name, host, pid, started_ms, lease_until_ms - " PG_NOW_MS
    " FROM nodes WHERE dead = 0 ORDER BY id";

/* store_nodes_foreach - see store.h. */
int store_nodes_foreach(struct store *st, store_node_fn fn, void *arg)
{
	PGresult *r = pg_query(st, sql_nodes, NULL, "list the nodes");
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		struct node_rec n = {
		    .id = pg_get_i64(r, i, 0, 0),
		    .name = pg_get_text(r, i, 1),
		    .host = pg_get_text(r, i, 2),
		    .pid = pg_get_i64(r, i, 3, 0),
		    .started_ms = pg_get_i64(r, i, 4, 0),
		    .lease_left_ms = pg_get_i64(r, i, 5, 0),
		};
		if (!n.name)
			n.name = "";
		if (fn(&n, arg))
			break;
	}
	PQclear(r);
	return 0;
}
