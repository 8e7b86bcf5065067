/* pg.c - the PostgreSQL store's frame: connections, errors, statements prepared once per
 * connection, transactions, and opening: migrations under an advisory lock, so daemons
 * starting at once migrate once. See store.h for the contract, pg_int.h for the files.
 *
 * Concurrency: any number of daemons (nodes) and CLI commands work one database at a
 * time; row locks (claims take theirs with SKIP LOCKED) do what SQLite's one writer did.
 * A failed statement aborts PostgreSQL's whole transaction, so a caller's batch that saw
 * an error can only be rolled back (to its savepoint): nothing more of it is written.
 */
#include "pg_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define PG_BUSY_TIMEOUT_MS 5000
/* pg_advisory_xact_lock's key for migrations: "Segspool" as a big-endian integer */
#define PG_MIGRATE_LOCK INT64_C(6009323023301046124)
#define PG_APPNAME_MAX 64 /* NAMEDATALEN: the server cuts application_name at 63 bytes */

/* who this process is, for application_name (pg_stat_activity shows it) */
static char owner_role[32] = "cli";
static char owner_spool[256];

/* --- errors ---------------------------------------------------------------------- */

/* pg_fail - see pg_int.h. Once the pipeline failed, its first failure is the message
 * every later call keeps (store.h). */
int pg_fail(struct store *st, const char *fmt, ...)
{
	va_list ap;
	if (st->pipe.failed)
		return -1;
	sb_reset(&st->err);
	va_start(ap, fmt);
	sb_vaddf(&st->err, fmt, ap);
	va_end(ap);
	st->busy = 0;
	return -1;
}

/* add_oneline - libpq's message on one line: its lines joined by "; ", no trailing newline. */
static void add_oneline(struct strbuf *sb, const char *msg)
{
	int sep = 0;
	while (msg && *msg) {
		size_t n = strcspn(msg, "\n");
		const char *line = msg;
		while (n && (*line == ' ' || *line == '\t'))
			line++, n--;
		if (n) {
			if (sep)
				sb_adds(sb, "; ");
			sb_add(sb, line, n);
			sep = 1;
		}
		msg = line + n;
		if (*msg == '\n')
			msg++;
	}
}

/* pg_server_err - "cannot WHAT: the server's message" (WHAT as given when it already says
 * "cannot"), st->busy for a lock timeout, deadlock or serialization failure, and the
 * connection's loss said as such. */
void pg_server_err(struct store *st, PGconn *conn, const PGresult *r, const char *what)
{
	if (st->pipe.failed)
		return; /* the pipeline's first failure is kept, as pg_fail keeps it */
	sb_reset(&st->err);
	if (strncmp(what, "cannot ", 7) != 0)
		sb_adds(&st->err, "cannot ");
	sb_addf(&st->err, "%s: ", what);
	st->busy = 0;
	if (!conn || PQstatus(conn) == CONNECTION_BAD) {
		sb_addf(&st->err, "connection to the database %s lost", st->where);
		if (conn && PQerrorMessage(conn)[0]) {
			sb_adds(&st->err, " (");
			add_oneline(&st->err, PQerrorMessage(conn));
			sb_adds(&st->err, ")");
		}
		return;
	}
	const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	/* a reader's write: said as the SQLite store says it */
	if (state && strcmp(state, "25006") == 0)
		sb_adds(&st->err, "attempt to write a readonly database (");
	add_oneline(&st->err, msg ? msg : PQerrorMessage(conn));
	if (state && strcmp(state, "25006") == 0)
		sb_adds(&st->err, ")");
	if (state)
		st->busy = strcmp(state, "55P03") == 0 || strcmp(state, "40P01") == 0 ||
		           strcmp(state, "40001") == 0;
}

/* store_busy - see store.h. */
int store_busy(const struct store *st)
{
	return st->busy;
}

/* store_errmsg - the last error, "" if none yet. */
const char *store_errmsg(struct store *st)
{
	return st->err.buf;
}

/* --- parameters and results ----------------------------------------------------------- */

/* next_param - the next slot of p; more than PG_PARAMS_MAX is a bug of the caller. */
static int next_param(struct pg_params *p)
{
	if (p->n >= PG_PARAMS_MAX) {
		logmsg(LOG_ERROR, "BUG: more than %d parameters for one statement", PG_PARAMS_MAX);
		abort();
	}
	return p->n++;
}

/* pg_params_init - see pg_int.h. */
void pg_params_init(struct pg_params *p)
{
	p->n = 0;
}

/* pg_param_i64 - see pg_int.h. */
void pg_param_i64(struct pg_params *p, int64_t v)
{
	int i = next_param(p);
	snprintf(p->buf[i], sizeof(p->buf[i]), "%" PRId64, v);
	p->v[i] = p->buf[i];
}

/* pg_param_i64_or_null - see pg_int.h. */
void pg_param_i64_or_null(struct pg_params *p, int64_t v, int64_t none)
{
	if (v == none)
		p->v[next_param(p)] = NULL;
	else
		pg_param_i64(p, v);
}

/* pg_param_double - see pg_int.h: 17 digits read back as the same double. */
void pg_param_double(struct pg_params *p, double v)
{
	int i = next_param(p);
	snprintf(p->buf[i], sizeof(p->buf[i]), "%.17g", v);
	p->v[i] = p->buf[i];
}

/* pg_param_text - see pg_int.h. */
void pg_param_text(struct pg_params *p, const char *s)
{
	p->v[next_param(p)] = s;
}

/* pg_get_i64 - see pg_int.h; a boolean column reads as 1 or 0. */
int64_t pg_get_i64(const PGresult *r, int row, int col, int64_t dflt)
{
	if (PQgetisnull(r, row, col))
		return dflt;
	const char *v = PQgetvalue(r, row, col);
	if (!v || !*v)
		return dflt;
	if (v[0] == 't' && v[1] == '\0')
		return 1;
	if (v[0] == 'f' && v[1] == '\0')
		return 0;
	return strtoll(v, NULL, 10);
}

/* pg_get_double - see pg_int.h. */
double pg_get_double(const PGresult *r, int row, int col, double dflt)
{
	if (PQgetisnull(r, row, col))
		return dflt;
	const char *v = PQgetvalue(r, row, col);
	return v && *v ? strtod(v, NULL) : dflt;
}

/* pg_get_text - see pg_int.h. */
const char *pg_get_text(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* pg_get_dup - see pg_int.h. */
char *pg_get_dup(const PGresult *r, int row, int col)
{
	const char *v = pg_get_text(r, row, col);
	return v ? xstrdup(v) : NULL;
}

/* --- statements ----------------------------------------------------------------------- */

/* find_prepared - the slot of sql on c: by its address, confirmed by its text's hash (a
 * buffer built at run time may hold another statement at the same address later), else
 * by the hash alone (the same text from elsewhere); -1 when it is not prepared. */
static int find_prepared(const struct pg_conn *c, const char *sql, uint64_t h)
{
	for (int i = 0; i < c->nprepared; i++)
		if (c->prepared[i] == sql && c->hash[i] == h)
			return i;
	for (int i = 0; i < c->nprepared; i++)
		if (c->hash[i] == h)
			return i;
	return -1;
}

/* statement_slot - the slot of sql's prepared statement on c, prepared first when new
 * (in the pipeline, sent without waiting: its answer is read in turn); -1 when it runs
 * unprepared (PG_STMTS_MAX are), -2 on error. */
static int statement_slot(struct store *st, struct pg_conn *c, const char *sql, const char *what)
{
	char name[16];
	uint64_t h = fnv1a64(sql, FNV1A64_INIT);
	int i = find_prepared(c, sql, h);
	if (i >= 0 || c->nprepared >= PG_STMTS_MAX)
		return i;
	i = c->nprepared;
	snprintf(name, sizeof(name), "s%d", i);
	/* the parameters' types are the server's guess from the text ($1::bigint where it
	 * cannot tell) */
	if (c == &st->main && st->pipe.on) {
		if (!PQsendPrepare(c->conn, name, sql, 0, NULL)) {
			pg_server_err(st, c->conn, NULL, what);
			pg_pipe_fail(st, NULL);
			return -2;
		}
		pg_pipe_pushed(st, PG_PEND_PREPARE, what);
	} else {
		PGresult *r = PQprepare(c->conn, name, sql, 0, NULL);
		if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
			pg_server_err(st, c->conn, r, what);
			PQclear(r);
			return -2;
		}
		PQclear(r);
	}
	c->prepared[i] = sql;
	c->hash[i] = h;
	c->nprepared++;
	return i;
}

/* query_on - pg_query on connection c: the statement prepared on it once, as "sN"; once
 * PG_STMTS_MAX are, others run unprepared. */
static PGresult *query_on(struct store *st, struct pg_conn *c, const char *sql,
                          const struct pg_params *p, const char *what)
{
	char name[16];
	if (c == &st->main && st->pipe.on)
		return pg_pipe_wait(st, sql, p, what);
	if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD) {
		pg_server_err(st, c->conn, NULL, what);
		return NULL;
	}
	int i = statement_slot(st, c, sql, what);
	if (i < -1)
		return NULL;
	snprintf(name, sizeof(name), "s%d", i);
	int n = p ? p->n : 0;
	const char *const *v = p ? p->v : NULL;
	PGresult *r = i >= 0 ? PQexecPrepared(c->conn, name, n, v, NULL, NULL, 0)
	                     : PQexecParams(c->conn, sql, n, NULL, v, NULL, NULL, 0);
	ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK)
		return r;
	pg_server_err(st, c->conn, r, what);
	PQclear(r);
	return NULL;
}

/* pg_pipe_send - see pg_int.h. */
int pg_pipe_send(struct store *st, const char *sql, const struct pg_params *p, enum pg_pend kind,
                 const char *what)
{
	struct pg_conn *c = &st->main;
	char name[16];
	if (st->pipe.failed)
		return -1;
	int i = statement_slot(st, c, sql, what);
	if (i < -1)
		return -1;
	snprintf(name, sizeof(name), "s%d", i);
	int n = p ? p->n : 0;
	const char *const *v = p ? p->v : NULL;
	int sent = i >= 0 ? PQsendQueryPrepared(c->conn, name, n, v, NULL, NULL, 0)
	                  : PQsendQueryParams(c->conn, sql, n, NULL, v, NULL, NULL, 0);
	if (!sent) {
		pg_server_err(st, c->conn, NULL, what);
		return pg_pipe_fail(st, NULL);
	}
	pg_pipe_pushed(st, kind, what);
	return 0;
}

/* pg_pipe_send_text - see pg_int.h. */
int pg_pipe_send_text(struct store *st, const char *sql, enum pg_pend kind, const char *what)
{
	if (st->pipe.failed)
		return -1;
	if (!PQsendQueryParams(st->main.conn, sql, 0, NULL, NULL, NULL, NULL, 0)) {
		pg_server_err(st, st->main.conn, NULL, what);
		return pg_pipe_fail(st, NULL);
	}
	pg_pipe_pushed(st, kind, what);
	return 0;
}

/* pg_write - see pg_int.h. */
int pg_write(struct store *st, const char *sql, const struct pg_params *p, const char *what)
{
	if (st->pipe.on)
		return pg_pipe_send(st, sql, p, PG_PEND_WRITE, what);
	return pg_run(st, sql, p, what) < 0 ? -1 : 0;
}

/* pg_query - see pg_int.h. */
PGresult *pg_query(struct store *st, const char *sql, const struct pg_params *p, const char *what)
{
	return query_on(st, &st->main, sql, p, what);
}

/* pg_query_side - pg_query on the side connection (autocommit), open after
 * store_node_start. */
PGresult *pg_query_side(struct store *st, const char *sql, const struct pg_params *p,
                        const char *what)
{
	if (!st->side.conn) {
		pg_fail(st, "cannot %s: this store has not joined as a node (store_node_start)",
		        what);
		return NULL;
	}
	return query_on(st, &st->side, sql, p, what);
}

/* pg_run - see pg_int.h. */
int64_t pg_run(struct store *st, const char *sql, const struct pg_params *p, const char *what)
{
	PGresult *r = pg_query(st, sql, p, what);
	if (!r)
		return -1;
	const char *n = PQcmdTuples(r);
	int64_t rows = n && *n ? strtoll(n, NULL, 10) : 0;
	PQclear(r);
	return rows;
}

/* exec_on - SQL text (one statement or several) on conn, unprepared. 0 or -1. */
static int exec_on(struct store *st, PGconn *conn, const char *sql, const char *what)
{
	if (!conn || PQstatus(conn) == CONNECTION_BAD) {
		pg_server_err(st, conn, NULL, what);
		return -1;
	}
	PGresult *r = PQexec(conn, sql);
	ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
		PQclear(r);
		return 0;
	}
	pg_server_err(st, conn, r, what);
	PQclear(r);
	return -1;
}

/* pg_exec_text - see pg_int.h. */
int pg_exec_text(struct store *st, const char *sql, const char *what)
{
	if (!st->pipe.on)
		return exec_on(st, st->main.conn, sql, what);
	/* in the pipeline, the transaction's state is ours to follow: libpq learns it only
	 * at a sync point */
	if (strncmp(sql, "BEGIN", 5) == 0)
		st->pipe.txn = 1;
	else if (strcmp(sql, "ROLLBACK") == 0)
		st->pipe.txn = 0;
	return pg_pipe_send_text(st, sql, PG_PEND_WRITE, what);
}

/* quiet_exec - SQL for cleanup (a rollback after a failure): the error already recorded
 * is the one kept. */
static void quiet_exec(struct store *st, const char *sql)
{
	if (st->pipe.on) { /* after a failure nothing is sent: the node starts again */
		pg_exec_text(st, sql, "roll back");
		return;
	}
	if (st->main.conn && PQstatus(st->main.conn) == CONNECTION_OK)
		PQclear(PQexec(st->main.conn, sql));
}

/* set_lock_timeout - SET lock_timeout on conn, quietly (the error already recorded is
 * the one kept); 0 or -1. */
static int set_lock_timeout(PGconn *conn, int ms)
{
	char sql[64];
	snprintf(sql, sizeof(sql), "SET lock_timeout = %d", ms);
	PGresult *r = PQexec(conn, sql);
	int rc = r && PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
	PQclear(r);
	return rc;
}

/* txn_over - after a commit, rollback or rollback to a savepoint: a lock_timeout set in
 * the transaction may have been undone with it, so it is set again (outside a
 * transaction for good). */
static void txn_over(struct store *st)
{
	PGconn *conn = st->main.conn;
	if (st->pipe.on)
		return; /* store_set_busy_timeout sends its SET in the pipeline, in turn */
	if (!st->timeout_undone || !conn || PQstatus(conn) != CONNECTION_OK)
		return;
	PGTransactionStatusType ts = PQtransactionStatus(conn);
	if (ts == PQTRANS_INERROR)
		return;
	if (set_lock_timeout(conn, st->busy_ms) == 0 && ts == PQTRANS_IDLE)
		st->timeout_undone = 0;
}

/* query_value - the first column of the first row of unprepared sql: 1 with *out, 0 when
 * it is NULL or there is no row, -1 error. */
static int query_value(struct store *st, const char *sql, const char *what, int64_t *out)
{
	if (!st->main.conn || PQstatus(st->main.conn) == CONNECTION_BAD) {
		pg_server_err(st, st->main.conn, NULL, what);
		return -1;
	}
	PGresult *r = PQexec(st->main.conn, sql);
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		pg_server_err(st, st->main.conn, r, what);
		PQclear(r);
		return -1;
	}
	int rc = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0);
	if (rc)
		*out = pg_get_i64(r, 0, 0, 0);
	PQclear(r);
	return rc;
}

/* --- transactions --------------------------------------------------------------------- */

/* in_transaction - whether a transaction (the caller's or ours) is open, also one an error
 * aborted (it takes a ROLLBACK still). */
static int in_transaction(const struct store *st)
{
	if (st->pipe.on)
		return st->pipe.txn;
	PGTransactionStatusType ts =
	    st->main.conn ? PQtransactionStatus(st->main.conn) : PQTRANS_UNKNOWN;
	return ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR || ts == PQTRANS_ACTIVE;
}

/* aborted - the open transaction saw an error: PostgreSQL runs nothing more in it. */
static int aborted(const struct store *st)
{
	if (st->pipe.on)
		return st->pipe.failed;
	return st->main.conn && PQtransactionStatus(st->main.conn) == PQTRANS_INERROR;
}

static const char notify_sql[] = "SELECT pg_notify($1, '')";

/* commit_txn - commits the open transaction, first announcing work when it made jobs due
 * (NOTIFY is delivered at COMMIT, so listeners never see uncommitted jobs). On failure
 * the transaction is rolled back. 0 or -1. */
static int commit_body(struct store *st, int wait)
{
	int notify = st->notify_pending;
	st->notify_pending = 0;
	if (st->pipe.on) {
		struct pg_params p;
		pg_params_init(&p);
		pg_param_text(&p, st->channel);
		if (st->pipe.failed)
			return -1;
		if (notify &&
		    pg_pipe_send(st, notify_sql, &p, PG_PEND_WRITE, "announce new work") < 0)
			return -1;
		if (st->node_name && pg_files_due_send(st) < 0)
			return -1;
		return pg_pipe_commit(st, wait);
	}
	if (aborted(st)) {
		/* COMMIT would answer "ROLLBACK" without an error: say it */
		quiet_exec(st, "ROLLBACK");
		return pg_fail(st, "cannot commit: an earlier error aborted the transaction; "
		                   "it was rolled back");
	}
	if (notify) {
		struct pg_params p;
		pg_params_init(&p);
		pg_param_text(&p, st->channel);
		PGresult *r = pg_query(st, notify_sql, &p, "announce new work");
		if (!r) {
			quiet_exec(st, "ROLLBACK");
			return -1;
		}
		PQclear(r);
	}
	if (st->main.conn && PQstatus(st->main.conn) == CONNECTION_OK) {
		PGresult *r = PQexec(st->main.conn, "COMMIT");
		ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
		if (s == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0) {
			PQclear(r);
			return 0;
		}
		if (s == PGRES_COMMAND_OK)
			pg_fail(st, "cannot commit: the server rolled the transaction back");
		else
			pg_server_err(st, st->main.conn, r, "commit");
		PQclear(r);
	} else {
		pg_server_err(st, st->main.conn, NULL, "commit");
	}
	if (in_transaction(st))
		quiet_exec(st, "ROLLBACK");
	return -1;
}

static int commit_txn(struct store *st, int wait)
{
	int rc = commit_body(st, wait);
	txn_over(st);
	return rc;
}

/* store_begin - starts the caller's write transaction (a group commit). */
int store_begin(struct store *st)
{
	if (in_transaction(st))
		return pg_fail(st, "cannot begin a transaction: one is already open");
	st->busy = 0;
	if (pg_exec_text(st, "BEGIN", "begin a transaction") < 0)
		return -1;
	st->caller_txn = 1;
	st->savepoints = 0;
	st->notify_pending = 0;
	return 0;
}

/* store_commit - commits the caller's transaction; on failure it is rolled back. */
int store_commit(struct store *st)
{
	st->caller_txn = 0;
	st->savepoints = 0;
	if (!in_transaction(st)) {
		st->notify_pending = 0;
		return pg_fail(st, "cannot commit: no transaction is open");
	}
	return commit_txn(st, 0); /* in the pipeline, answered later (store_async_poll) */
}

/* store_rollback - undoes the caller's transaction; a no-op when none is open. */
int store_rollback(struct store *st)
{
	st->caller_txn = 0;
	st->savepoints = 0;
	st->notify_pending = 0;
	if (!in_transaction(st))
		return 0;
	if (st->pipe.on)
		pg_claims_drop(st); /* its claims are undone with it */
	int rc = pg_exec_text(st, "ROLLBACK", "roll back");
	txn_over(st);
	return rc;
}

/* savepoint_sql - the statement for the savepoint of depth n (its own name, so each
 * store_release/rollback_to undoes the innermost). */
static void savepoint_sql(char *buf, size_t size, const char *verb, int n)
{
	snprintf(buf, size, "%s sp_%d", verb, n);
}

/* store_savepoint - marks where store_rollback_to returns to (one file's jobs). */
int store_savepoint(struct store *st)
{
	char sql[64];
	if (!in_transaction(st))
		return pg_fail(st, "cannot set a savepoint: no transaction is open");
	savepoint_sql(sql, sizeof(sql), "SAVEPOINT", st->savepoints + 1);
	if (pg_exec_text(st, sql, "set a savepoint") < 0)
		return -1;
	st->savepoints++;
	return 0;
}

/* store_release - keeps what was done since the savepoint (within the transaction). */
int store_release(struct store *st)
{
	char sql[64];
	if (st->savepoints <= 0)
		return pg_fail(st, "cannot release the savepoint: none is set");
	savepoint_sql(sql, sizeof(sql), "RELEASE SAVEPOINT", st->savepoints);
	if (pg_exec_text(st, sql, "release the savepoint") < 0)
		return -1;
	st->savepoints--;
	return 0;
}

/* store_rollback_to - undoes everything since the savepoint and forgets it; the
 * transaction works again after an error since then. */
int store_rollback_to(struct store *st)
{
	char sql[64];
	if (st->savepoints <= 0)
		return pg_fail(st, "cannot roll back to the savepoint: none is set");
	savepoint_sql(sql, sizeof(sql), "ROLLBACK TO SAVEPOINT", st->savepoints);
	if (pg_exec_text(st, sql, "roll back to the savepoint") < 0)
		return -1;
	txn_over(st);
	return store_release(st);
}

/* pg_op_begin - see pg_int.h: a transaction unless the caller has one open. */
int pg_op_begin(struct store *st, enum pg_wrap *how)
{
	if (aborted(st))
		return pg_fail(st,
		               "the batch's transaction was aborted by an earlier error; nothing "
		               "more of it is written");
	if (st->caller_txn && !in_transaction(st)) {
		if (!st->main.conn || PQstatus(st->main.conn) == CONNECTION_BAD) {
			pg_server_err(st, st->main.conn, NULL, "write");
			return -1;
		}
		return pg_fail(st, "the batch's transaction ended after an earlier error; nothing "
		                   "more of it is written");
	}
	*how = in_transaction(st) ? PG_JOINED : PG_OWN_TXN;
	if (*how == PG_JOINED)
		return 0;
	st->notify_pending = 0;
	return pg_exec_text(st, "BEGIN", "begin a transaction");
}

/* pg_op_begin_atomic - see pg_int.h: as pg_op_begin, with a savepoint when joining. */
int pg_op_begin_atomic(struct store *st, enum pg_wrap *how)
{
	if (pg_op_begin(st, how) < 0)
		return -1;
	if (*how == PG_OWN_TXN)
		return 0;
	*how = PG_SAVEPOINT;
	return pg_exec_text(st, "SAVEPOINT pg_op", "set a savepoint");
}

/* pg_op_end - see pg_int.h: commits (or releases) when rc >= 0, else undoes what
 * pg_op_begin* opened; rc, or -1 when the commit failed. The first error is kept. */
int pg_op_end(struct store *st, enum pg_wrap how, int rc)
{
	if (how == PG_JOINED)
		return rc;
	if (rc >= 0) {
		if (how == PG_OWN_TXN)
			return commit_txn(st, 1) == 0 ? rc : -1;
		if (pg_exec_text(st, "RELEASE SAVEPOINT pg_op", "commit") == 0)
			return rc;
		rc = -1;
	}
	if (!in_transaction(st))
		return rc;
	if (how == PG_OWN_TXN) {
		st->notify_pending = 0;
		quiet_exec(st, "ROLLBACK");
	} else {
		quiet_exec(st, "ROLLBACK TO SAVEPOINT pg_op");
		quiet_exec(st, "RELEASE SAVEPOINT pg_op");
	}
	txn_over(st);
	return rc;
}

/* store_read_begin - the reads until store_read_end share one snapshot; inside a write
 * transaction, that one. */
int store_read_begin(struct store *st)
{
	st->own_read = !in_transaction(st);
	if (!st->own_read)
		return 0;
	if (pg_exec_text(st, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "begin a read") <
	    0) {
		st->own_read = 0;
		return -1;
	}
	return 0;
}

/* store_read_end - ends store_read_begin's snapshot, if it opened one. */
void store_read_end(struct store *st)
{
	if (st->own_read && in_transaction(st))
		quiet_exec(st, "ROLLBACK"); /* only read: ending it either way is the same */
	st->own_read = 0;
	txn_over(st);
}

/* --- what only one writer's files had ------------------------------------------------- */

/* store_check_file - see store.h: nothing on disk of ours can vanish. */
int store_check_file(struct store *st, char **err_out)
{
	(void)st;
	*err_out = NULL;
	return 0;
}

/* store_shared - see store.h: other daemons may claim from the same database. */
int store_shared(struct store *st)
{
	(void)st;
	return 1;
}

/* store_owner - see store.h: no single writer, so no owner line. */
int store_owner(const char *path, struct store_owner *out)
{
	(void)path;
	memset(out, 0, sizeof(*out));
	return 1;
}

/* store_set_owner - see store.h: here, what application_name says of this process. */
void store_set_owner(const char *role, const char *spool)
{
	snprintf(owner_role, sizeof(owner_role), "%s", role ? role : "cli");
	snprintf(owner_spool, sizeof(owner_spool), "%s", spool ? spool : "");
}

/* --- connections -------------------------------------------------------------------- */

/* notice_log - the server's notices (CREATE ... IF NOT EXISTS skipping) at debug level,
 * not on stderr. */
static void notice_log(void *arg, const char *message)
{
	const struct store *st = arg;
	struct strbuf sb = STRBUF_INIT;
	add_oneline(&sb, message);
	logmsg(LOG_DEBUG, "database %s: %s", st->where, sb.buf);
	sb_release(&sb);
}

/* app_name - "segspool ROLE SPOOL" for pg_stat_activity, printable ASCII (the server
 * would turn anything else into "?"), cut to what the server keeps. */
static void app_name(char *buf, size_t size, const char *suffix)
{
	char full[512];
	snprintf(full, sizeof(full), "segspool %s%s%s%s", owner_role, suffix,
	         owner_spool[0] ? " " : "", owner_spool);
	size_t i;
	for (i = 0; i + 1 < size && full[i]; i++)
		buf[i] = full[i] >= 32 && full[i] < 127 ? full[i] : '?';
	buf[i] = '\0';
}

/* durable_commits - a writer's commits are on disk when COMMIT returns: the daemon
 * deletes spool files once their jobs are committed. A server (or database, or role) set
 * to synchronous_commit = off would lose the last of them in a crash, so the session puts
 * it back on, unless the connection string itself asked for off (options=-c...): the
 * user's own choice. Stricter settings (remote_apply...) are kept. */
static int durable_commits(struct store *st, PGconn *conn)
{
	static int told;
	PGresult *r = PQexec(conn, "SELECT setting, source FROM pg_catalog.pg_settings "
	                           "WHERE name = 'synchronous_commit'");
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		pg_server_err(st, conn, r, "read synchronous_commit");
		PQclear(r);
		return -1;
	}
	int off = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "off") == 0 &&
	          strcmp(PQgetvalue(r, 0, 1), "client") != 0;
	if (off && !told++)
		logmsg(LOG_INFO,
		       "database %s: synchronous_commit is off (%s); segspool's sessions set it "
		       "on, as a commit lost in a crash would lose jobs whose spool files are gone "
		       "(options=-csynchronous_commit=off in the URI accepts that)",
		       st->where, PQgetvalue(r, 0, 1));
	PQclear(r);
	return off ? exec_on(st, conn, "SET synchronous_commit = on", "set synchronous_commit") : 0;
}

/* connect_to - a new connection to the store's database, with the session's settings;
 * NULL with the reason in st->err. */
static PGconn *connect_to(struct store *st, const char *suffix)
{
	char name[PG_APPNAME_MAX];
	app_name(name, sizeof(name), suffix);
	/* dbname is expanded (a URI or key=value list): it overrides what comes before it
	 * (defaults: a server or network gone silent is noticed within about half a minute,
	 * by TCP keepalives and a timeout on unacknowledged sends, instead of a call that
	 * hangs the daemon's loop for good), and what follows overrides it */
	const char *const keys[] = {"connect_timeout",  "keepalives",
	                            "keepalives_idle",  "keepalives_interval",
	                            "keepalives_count", "tcp_user_timeout",
	                            "dbname",           "application_name",
	                            "client_encoding",  NULL};
	const char *const vals[] = {"10",    "1",          "10", "5",    "3",
	                            "20000", st->conninfo, name, "UTF8", NULL};
	PGconn *conn = PQconnectdbParams(keys, vals, 1);
	if (!conn) {
		pg_fail(st, "cannot connect to database %s: out of memory", st->where);
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		pg_fail(st, "cannot connect to database %s: ", st->where);
		add_oneline(&st->err, PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	PQsetNoticeProcessor(conn, notice_log, st);
	char sql[256];
	snprintf(sql, sizeof(sql), "SET lock_timeout = %d;%s", st->busy_ms,
	         st->readonly ? " SET default_transaction_read_only = on;" : "");
	if (exec_on(st, conn, sql, "set up the session") < 0 ||
	    (!st->readonly && durable_commits(st, conn) < 0)) {
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* close_conn - the connection closed (its prepared statements go with it). */
static void close_conn(struct pg_conn *c)
{
	if (c->conn)
		PQfinish(c->conn);
	c->conn = NULL;
	c->nprepared = 0;
}

/* pg_side_open - see pg_int.h. */
int pg_side_open(struct store *st)
{
	if (!st->side.conn) {
		st->side.conn = connect_to(st, " side");
		if (!st->side.conn)
			return -1;
	}
	if (!st->listener.conn) {
		st->listener.conn = connect_to(st, " listen");
		if (!st->listener.conn)
			return -1;
		char sql[128];
		snprintf(sql, sizeof(sql), "LISTEN \"%s\"", st->channel);
		if (exec_on(st, st->listener.conn, sql, "listen for new work") < 0) {
			close_conn(&st->listener);
			return -1;
		}
	}
	return 0;
}

/* store_wakeup_fd - see store.h: the listening connection's socket. */
int store_wakeup_fd(struct store *st)
{
	return st->listener.conn ? PQsocket(st->listener.conn) : -1;
}

/* store_wakeup_drain - see store.h: reads what arrived, 1 when it held an announcement. */
int store_wakeup_drain(struct store *st)
{
	PGconn *conn = st->listener.conn;
	if (!conn)
		return 0;
	if (!PQconsumeInput(conn)) {
		pg_server_err(st, conn, NULL, "read announcements of new work");
		if (PQstatus(conn) != CONNECTION_BAD) {
			sb_adds(&st->err, " (");
			add_oneline(&st->err, PQerrorMessage(conn));
			sb_adds(&st->err, ")");
		}
		return -1;
	}
	int any = 0;
	PGnotify *n;
	while ((n = PQnotifies(conn))) {
		any = 1;
		PQfreemem(n);
	}
	return any;
}

/* store_set_busy_timeout - see store.h: how long a statement waits for a row or table
 * lock (lock_timeout) before it fails busy. */
void store_set_busy_timeout(struct store *st, int ms)
{
	if (st->pipe.on && (ms < 0 ? 0 : ms) == st->busy_ms)
		return; /* nothing to send (the daemon sets it around each begin) */
	st->busy_ms = ms < 0 ? 0 : ms;
	/* inside a transaction, a rollback would undo the SET: done again after it */
	if (in_transaction(st))
		st->timeout_undone = 1;
	struct pg_conn *conns[] = {&st->main, &st->side};
	if (st->pipe.on) {
		char sql[64];
		snprintf(sql, sizeof(sql), "SET lock_timeout = %d", st->busy_ms);
		if (!st->pipe.failed)
			pg_pipe_send_text(st, sql, PG_PEND_WRITE, "set lock_timeout");
		conns[0] = &st->side;   /* the main one's is in the pipeline */
		if (st->side_pipe.on) { /* and so is the side one's */
			if (!st->pipe.failed)
				pg_side_send(st, sql, NULL, PG_SIDE_WRITE, 0, "set lock_timeout");
			return;
		}
	}
	for (size_t i = 0; i < sizeof(conns) / sizeof(conns[0]); i++) {
		PGconn *conn = conns[i]->conn;
		if (conn && PQstatus(conn) == CONNECTION_OK &&
		    PQtransactionStatus(conn) != PQTRANS_INERROR &&
		    set_lock_timeout(conn, st->busy_ms) < 0)
			logmsg(LOG_WARN, "database %s: cannot set the lock timeout: %s", st->where,
			       PQerrorMessage(conn));
	}
}

/* password_span - where the password of a URI (user:PASSWORD@) or key=value list
 * (password=PASSWORD) is, for a string libpq could not parse: its length, 0 if none. */
static size_t password_span(const char *conninfo, const char **pw)
{
	const char *p = strstr(conninfo, "://");
	if (p) {
		p += 3;
		size_t auth = strcspn(p, "/?");
		const char *at = NULL;
		for (size_t i = 0; i < auth; i++)
			if (p[i] == '@')
				at = p + i;
		const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
		if (!colon)
			return 0;
		*pw = colon + 1;
		return (size_t)(at - *pw);
	}
	p = strstr(conninfo, "password");
	if (!p)
		return 0;
	p += strcspn(p, "=");
	if (*p == '=')
		p++;
	p += strspn(p, " '");
	*pw = p;
	return strcspn(p, " '");
}

/* quotes_password - msg (libpq's reason for refusing conninfo) holds a piece of its
 * password (three characters, or all of a shorter one) or might: then it is not shown. */
static int quotes_password(const char *conninfo, const char *msg)
{
	const char *pw = NULL;
	size_t n = password_span(conninfo, &pw);
	if (!pw && strstr(conninfo, "password"))
		return 1;
	size_t w = n < 3 ? n : 3;
	for (size_t i = 0; w && i + w <= n; i++) {
		char piece[4];
		memcpy(piece, pw + i, w);
		piece[w] = '\0';
		if (strstr(msg, piece))
			return 1;
	}
	return 0;
}

/* redact - the connection string as messages show it: postgresql://user@host:port/db,
 * never its password (nor any other parameter). -1 with the message in out when libpq
 * cannot parse it. */
static int redact(const char *conninfo, struct strbuf *out)
{
	char *errmsg = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
	if (!opts) {
		sb_adds(out, "cannot open the PostgreSQL database: its connection string is not a "
		             "valid libpq URI or key=value list");
		if (errmsg && !quotes_password(conninfo, errmsg)) {
			sb_adds(out, " (");
			add_oneline(out, errmsg);
			sb_adds(out, ")");
		}
		PQfreemem(errmsg);
		return -1;
	}
	const char *host = NULL, *port = NULL, *db = NULL, *user = NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val || !o->val[0])
			continue;
		if (strcmp(o->keyword, "host") == 0 ||
		    (!host && strcmp(o->keyword, "hostaddr") == 0))
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
		else if (strcmp(o->keyword, "dbname") == 0)
			db = o->val;
		else if (strcmp(o->keyword, "user") == 0)
			user = o->val;
	}
	sb_adds(out, "postgresql://");
	if (user)
		sb_addf(out, "%s@", user);
	sb_adds(out, host ? host : "");
	if (port)
		sb_addf(out, ":%s", port);
	sb_addf(out, "/%s", db ? db : "");
	PQconninfoFree(opts);
	return 0;
}

/* --- migrations ----------------------------------------------------------------------- */

/* schema_version - the version recorded in the current schema: 1 with *version, 0 when
 * the schema has no store yet (*others: how many tables of another program it holds). */
static int schema_version(struct store *st, int64_t *version, int64_t *others)
{
	int64_t exists = 0;
	*version = 0;
	*others = 0;
	if (query_value(st, "SELECT (to_regclass('schema_version') IS NOT NULL)::int",
	                "read the schema version", &exists) < 0)
		return -1;
	if (!exists) {
		if (query_value(st,
		                "SELECT count(*) FROM pg_catalog.pg_tables "
		                "WHERE schemaname = current_schema()",
		                "read the schema's tables", others) < 0)
			return -1;
		return 0;
	}
	if (query_value(st, "SELECT coalesce(max(version), 0) FROM schema_version",
	                "read the schema version", version) < 0)
		return -1;
	return 1;
}

/* too_new - the refusal of a database a newer segspool wrote. */
static int too_new(struct store *st, int64_t version)
{
	return pg_fail(st,
	               "database %s has schema version %" PRId64 ", newer than this segspool "
	               "knows (%zu): it was written by a newer segspool; run that one",
	               st->where, version, pg_migration_count);
}

/* apply_migration - the next migration and its version, in one transaction under the
 * migration lock: the version is read under it, as another daemon may have migrated since
 * we looked. 1 when nothing was left to do, 0 when one was applied, -1. */
static int apply_migration(struct store *st)
{
	struct strbuf what = STRBUF_INIT;
	char sql[128];
	int64_t version = 0, others = 0;
	if (pg_exec_text(st, "BEGIN", "begin the schema upgrade") < 0)
		return -1;
	/* a daemon migrating holds the lock briefly; waiting for it is not busy */
	snprintf(sql, sizeof(sql),
	         "SET LOCAL lock_timeout = '60s'; SELECT pg_advisory_xact_lock(%" PRId64 ")",
	         PG_MIGRATE_LOCK);
	if (pg_exec_text(st, sql, "take the schema upgrade's lock") < 0)
		goto undo;
	int rc = schema_version(st, &version, &others);
	if (rc < 0)
		goto undo;
	if (rc == 0 && others > 0) {
		pg_fail(st,
		        "database %s is not a segspool store: its schema holds %" PRId64 " tables "
		        "of another program and no schema_version; give segspool an empty "
		        "database (or schema) of its own",
		        st->where, others);
		goto undo;
	}
	if (version > (int64_t)pg_migration_count) {
		too_new(st, version);
		goto undo;
	}
	if (version == (int64_t)pg_migration_count) {
		quiet_exec(st, "COMMIT");
		return 1;
	}
	if (rc == 0 && pg_exec_text(st,
	                            "CREATE TABLE schema_version (version INTEGER NOT NULL); "
	                            "INSERT INTO schema_version VALUES (0)",
	                            "create the schema version's table") < 0)
		goto undo;
	sb_addf(&what, "apply migration %" PRId64 " in database %s", version + 1, st->where);
	rc = pg_exec_text(st, pg_migrations[version], what.buf);
	sb_release(&what);
	if (rc < 0)
		goto undo;
	snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %" PRId64, version + 1);
	if (pg_exec_text(st, sql, "set the schema version") < 0 ||
	    pg_exec_text(st, "COMMIT", "commit the schema upgrade") < 0)
		goto undo;
	logmsg(LOG_INFO, "database %s: schema upgraded to version %" PRId64, st->where,
	       version + 1);
	return 0;
undo:
	if (in_transaction(st))
		quiet_exec(st, "ROLLBACK");
	return -1;
}

/* check_readonly - a reader migrates nothing: the store must exist, at our version. */
static int check_readonly(struct store *st)
{
	int64_t version = 0, others = 0;
	int rc = schema_version(st, &version, &others);
	if (rc < 0)
		return -1;
	if (rc == 0)
		return pg_fail(st,
		               "database %s has no segspool store yet (no schema_version table): "
		               "start the daemon once to create it",
		               st->where);
	if (version > (int64_t)pg_migration_count)
		return too_new(st, version);
	if (version < (int64_t)pg_migration_count)
		return pg_fail(st,
		               "database %s has schema version %" PRId64 ", this segspool needs "
		               "%zu: start the daemon once to upgrade it",
		               st->where, version, pg_migration_count);
	return 0;
}

/* set_channel - the channel of the store's announcements: the database's segspool_work
 * for a store in public, else one of its schema's (a name within the server's 63 bytes),
 * so the stores of other schemas in the same database (tests, tenants) wake nobody here. */
static int set_channel(struct store *st)
{
	PGresult *r = PQexec(st->main.conn, "SELECT current_schema()");
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		pg_server_err(st, st->main.conn, r, "read the current schema");
		PQclear(r);
		return -1;
	}
	const char *schema = PQntuples(r) == 1 ? pg_get_text(r, 0, 0) : NULL;
	if (!schema || strcmp(schema, "public") == 0) {
		st->channel = xstrdup("segspool_work");
	} else {
		char name[64];
		snprintf(name, sizeof(name), "segspool_work_%016" PRIx64,
		         fnv1a64(schema, FNV1A64_INIT));
		st->channel = xstrdup(name);
	}
	PQclear(r);
	return 0;
}

/* open_checked - the body of store_open; the reason for a failure in st->err. */
static int open_checked(struct store *st)
{
	st->main.conn = connect_to(st, "");
	if (!st->main.conn)
		return -1;
	if (st->readonly)
		return check_readonly(st) < 0 ? -1 : set_channel(st);
	for (;;) {
		int rc = apply_migration(st);
		if (rc < 0)
			return -1;
		if (rc > 0)
			return set_channel(st);
	}
}

/* store_open - connects and migrates; see store.h. */
int store_open(const char *path, int flags, struct store **out, char **err_out)
{
	struct store *st = xcalloc(1, sizeof(*st));
	struct strbuf where = STRBUF_INIT;
	st->head.ops = &pg_store_ops;
	st->head.backend = "PostgreSQL";
	sb_init(&st->err, 0);
	*out = NULL;
	if (err_out)
		*err_out = NULL;
	if (redact(path, &where) < 0) {
		if (err_out)
			*err_out = xstrdup(where.buf);
		sb_release(&where);
		store_close(st);
		return -1;
	}
	st->where = sb_detach(&where, NULL);
	st->conninfo = xstrdup(path);
	st->readonly = (flags & STORE_READONLY) != 0;
	st->busy_ms = PG_BUSY_TIMEOUT_MS;
	if (open_checked(st) < 0) {
		if (err_out && !strstr(st->err.buf, st->where)) {
			struct strbuf why = STRBUF_INIT;
			sb_addf(&why, "cannot open database %s: %s", st->where, st->err.buf);
			*err_out = sb_detach(&why, NULL);
		} else if (err_out) {
			*err_out = xstrdup(st->err.buf);
		}
		store_close(st);
		return -1;
	}
	*out = st;
	return 0;
}

/* store_close - closes the connections (an open transaction is rolled back by the
 * server); NULL is fine. */
void store_close(struct store *st)
{
	if (!st)
		return;
	close_conn(&st->listener);
	close_conn(&st->side);
	pg_pipe_free(st);
	close_conn(&st->main);
	sb_release(&st->err);
	free(st->conninfo);
	free(st->channel);
	free(st->where);
	free(st->node_name);
	free(st);
}
