/* pg_int.h - what the files of the PostgreSQL store share: the store's struct, and the
 * helpers that prepare, run and read its statements. Private to src/store/; with the
 * store's pg*.c files, the only ones that include libpq-fe.h.
 *
 * The files mirror the SQLite store's: pg.c (connections, migrations, transactions,
 * errors, the helpers below), pg_ingest.c (files, outputs, keys, inserts), pg_jobs.c
 * (claiming, attempts, state changes, nodes and leases), pg_deps.c (jobs that wait for
 * jobs), pg_runs.c (pages, recovery, children, control, buckets), pg_rows.c (the rows
 * the views read), pg_results.c (results files). Each is compiled with pg_names.h
 * first, so the store.h functions it defines are the PostgreSQL store's.
 *
 * Statements are static strings in the file that uses them, run by pg_query: each is
 * prepared once per connection, on first use, and found again by its address (and its
 * text's hash). A text built at run time works too, unprepared once PG_STMTS_MAX are.
 * Parameters and results are in text form.
 */
#ifndef SEGSPOOL_PG_INT_H
#define SEGSPOOL_PG_INT_H

#include <libpq-fe.h>
#include <stdint.h>

#include "store.h"
#include "store_ops.h"
#include "strbuf.h"

/* generated from sql/postgresql/NNN_*.sql by cmake/embed_sql.cmake */
extern const char *const pg_migrations[];
extern const size_t pg_migration_count;

#define PG_ATTEMPT_BODY_MAX 4096 /* bytes of a non-2xx answer's body kept with it */
#define PG_PARAMS_MAX 24
#define PG_STMTS_MAX 256 /* statements prepared per connection */

/* next_run_ms of a job parked for its dependencies, as in SQLite (9999-12-31) */
#define PG_DEPS_PARKED_MS INT64_C(253402300799999)

/* one connection and the statements prepared on it */
struct pg_conn {
	PGconn *conn;
	const char *prepared[PG_STMTS_MAX]; /* statement texts by address; name "sN" = index */
	uint64_t hash[PG_STMTS_MAX];        /* of each one's text: a text built at run time whose
	                                     * buffer's address comes back holding another statement
	                                     * never runs the old one */
	int nprepared;
};

/* what the pipeline (pg_pipe.c) waits to hear, in the order it was sent */
enum pg_pend {
	PG_PEND_PREPARE,   /* a statement prepared on the way */
	PG_PEND_WRITE,     /* a write nobody waits for: only its success matters */
	PG_PEND_COMMIT,    /* COMMIT: the server must say COMMIT, not ROLLBACK */
	PG_PEND_RESULT,    /* a statement whose caller waits for its rows (pg_pipe_wait) */
	PG_PEND_CLAIM,     /* a claim sent ahead: its rows go to the stash (pg_claim_arrived) */
	PG_PEND_NEXT_DUE,  /* the next due time, sent with each claim */
	PG_PEND_FILES_DUE, /* this node's files whose jobs all ended, sent with each commit */
	PG_PEND_RESCUE,    /* a sweep: how many jobs it took back, logged when it comes */
	PG_PEND_CANCELS,   /* this node's jobs a user asked to cancel: into the stash */
	PG_PEND_SYNC,      /* the end of a committed transaction (PQpipelineSync) */
};

struct pg_pending {
	enum pg_pend kind;
	int answered;     /* its result came; the NULL that ends it is next */
	const char *what; /* for the error: "record an attempt" (a static string) */
};

/* the main connection in pipeline mode (store_async_start): statements go out without
 * waiting and their answers are read in order, by store_async_poll as they arrive or by
 * pg_pipe_wait for a caller that needs one now. A failure anywhere fails the rest: the
 * daemon's node starts again, its transactions undone by the server. */
struct pg_pipe {
	int on;
	struct pg_pending *q; /* a ring: head, n entries */
	size_t cap, head, n;
	int txn;                 /* BEGIN sent and no COMMIT or ROLLBACK since */
	int failed;              /* st->err says what failed first; nothing more is sent */
	int commits;             /* syncs sent and not yet answered */
	int unsent;              /* libpq holds bytes the socket did not take yet */
	int events;              /* STORE_ASYNC_* seen since the last store_async_poll */
	PGresult *waited;        /* the PG_PEND_RESULT answer pg_pipe_wait waits for */
	int claiming;            /* a claim was sent and its rows have not come */
	int claim_max;           /* how many it asked for */
	int64_t claim_bound;     /* the priority below which the next claim looks (INT64_MAX:
	                          * from the top; a claim that found a priority with fewer due
	                          * jobs than it asked for looks below it next) */
	int claim_in_txn;        /* the claim out was sent in the open transaction */
	int claim_dropped;       /* the claim out is a rolled back transaction's: its rows,
	                          * when they come, are not claimed (pg_claims_drop) */
	struct job_row *claimed; /* the stash: claimed (running under this node), not taken */
	int nclaimed, claimed_cap;
	int nfresh; /* the stash's last rows claimed by the open transaction (the rest committed) */
	int64_t next_due_ms; /* as the last claim's probe saw it (0: none) */
	PGresult *files_due; /* the last commit's probe of files due, not yet read */
	int cancels_asked;   /* the cancels were asked for, their answer not yet come */
	int64_t *cancels;    /* their answer, not yet taken (store_cancels_pending) */
	size_t ncancels;
};

/* the side connection in pipeline mode (pg_side.c): takes, holds and heartbeats, each
 * its own transaction (a sync after it), answered in turn */
enum pg_side_kind { PG_SIDE_TAKE, PG_SIDE_WRITE, PG_SIDE_BEAT };
struct pg_side_pending {
	enum pg_side_kind kind;
	int answered; /* 1 its result came, 2 and the NULL after it: the sync is next */
	int64_t cookie;
};
struct pg_side_pipe {
	int on;
	struct pg_side_pending *q; /* a ring: head, n entries */
	size_t cap, head, n;
	int unsent;
	store_take_fn take_fn;
	void *take_arg;
};

struct store {
	struct store_head head;  /* first: the dispatcher's */
	struct pg_conn main;     /* transactions, claims, every job's writes */
	struct pg_conn side;     /* autocommit: heartbeat, buckets (pg_side_open) */
	struct pg_conn listener; /* LISTEN segspool_work only (pg_side_open): its socket is
	                          * readable exactly when an announcement arrived, as no
	                          * query on it ever reads one away unseen */
	char *channel;  /* of NOTIFY and LISTEN: segspool_work, or the schema's own when the
	                 * store is not in public (another schema's store is another queue) */
	char *conninfo; /* as given, for reconnects: never in a message */
	char *where;    /* the URI without its password, for messages */
	int readonly;
	struct strbuf err;
	int busy;    /* the last failure was a lock timeout, deadlock or serialization failure */
	int busy_ms; /* lock_timeout */
	int timeout_undone; /* lock_timeout was set inside a transaction, which a rollback
	                     * undoes: set again once the transaction is over */
	int caller_txn;     /* store_begin's transaction is open (till commit/rollback) */
	int savepoints;     /* open savepoints of store_savepoint */
	int own_read;       /* store_read_begin opened the read transaction */
	int notify_pending; /* the open transaction made jobs due: NOTIFY at its commit */
	int64_t node_id;    /* this daemon's nodes row (store_node_start), 0 for the CLI */
	char *node_name;    /* stable across restarts (hostname:spool), NULL for the CLI */
	int64_t lease_ms;
	struct pg_pipe pipe;
	struct pg_side_pipe side_pipe;
};

/* parameters of one statement, in text form; values point into buf or at the caller's
 * strings, which must outlive the pg_query call */
struct pg_params {
	int n;
	const char *v[PG_PARAMS_MAX];
	char buf[PG_PARAMS_MAX][32];
};

void pg_params_init(struct pg_params *p);
void pg_param_i64(struct pg_params *p, int64_t v);
void pg_param_i64_or_null(struct pg_params *p, int64_t v, int64_t none); /* none -> NULL */
void pg_param_double(struct pg_params *p, double v);
void pg_param_text(struct pg_params *p, const char *s); /* NULL -> NULL */

/* pg_query - runs sql (prepared on first use on that connection) with p (NULL: none):
 * the result when it succeeded (caller PQclear()s it), else NULL with the error in
 * st->err as "cannot WHAT: the server's message" (WHAT as sq_step's: "claim jobs"; one
 * starting with "cannot " is kept as it is) and st->busy set for a lock timeout (55P03),
 * deadlock (40P01) or serialization failure (40001). A lost connection says
 * "connection to the database URI lost". Parameters are untyped: the server infers
 * each one's type from the text, so write $1::bigint where it cannot ($1 IS NULL).
 * After an error inside a transaction, PostgreSQL refuses every statement until the
 * transaction (or a savepoint) is rolled back: the caller's batch is over. */
PGresult *pg_query(struct store *st, const char *sql, const struct pg_params *p, const char *what);
PGresult *pg_query_side(struct store *st, const char *sql, const struct pg_params *p,
                        const char *what);
/* pg_side_open - opens the side connection (autocommit) and the listener (LISTEN on
 * st->channel) unless open; store_node_start calls it. 0, or -1 with st->err. */
int pg_side_open(struct store *st);

/* pg_run - pg_query for a statement whose rows are not read: rows changed, or -1. */
int64_t pg_run(struct store *st, const char *sql, const struct pg_params *p, const char *what);
/* pg_write - a write whose rows are not read: in the pipeline, sent without waiting (its
 * failure fails the transaction later), else run at once. 0 or -1. */
int pg_write(struct store *st, const char *sql, const struct pg_params *p, const char *what);
/* pg_server_err - st->err from the server's answer r (or the connection's state) */
void pg_server_err(struct store *st, PGconn *conn, const PGresult *r, const char *what);
/* pg_exec_text - SQL text without parameters, not prepared (BEGIN, migrations). 0 or -1. */
int pg_exec_text(struct store *st, const char *sql, const char *what);

/* --- pg_pipe.c: the pipeline on the main connection ------------------------------------ */

/* pg_pipe_send - sends sql (prepared on the way on first use) with p without waiting for
 * its answer, which is read later as kind says. 0, or -1 with st->err (the pipeline has
 * failed, or the connection). */
int pg_pipe_send(struct store *st, const char *sql, const struct pg_params *p, enum pg_pend kind,
                 const char *what);
/* pg_pipe_send_text - unprepared sql without parameters (BEGIN, SET ...), not waited for */
int pg_pipe_send_text(struct store *st, const char *sql, enum pg_pend kind, const char *what);
/* pg_pipe_pushed - what was just sent on the main connection is expected, as kind */
void pg_pipe_pushed(struct store *st, enum pg_pend kind, const char *what);
/* pg_pipe_flush_request - asks the server for the answers so far (a claim's rows are wanted
 * before the commit) */
int pg_pipe_flush_request(struct store *st);
/* pg_pipe_wait - sends sql and waits for its answer (and every earlier one): the result,
 * or NULL with st->err. */
PGresult *pg_pipe_wait(struct store *st, const char *sql, const struct pg_params *p,
                       const char *what);
/* pg_pipe_wait_text - pg_pipe_wait for unprepared sql without parameters (a cursor's) */
PGresult *pg_pipe_wait_text(struct store *st, const char *sql, const char *what);
/* pg_pipe_commit - COMMIT and a sync point; with wait, waits until it is answered. */
int pg_pipe_commit(struct store *st, int wait);
/* pg_pipe_fail - the pipeline failed (st->err set by the caller, or msg): 0 rows of
 * nothing more; returns -1 */
int pg_pipe_fail(struct store *st, const char *msg);
void pg_pipe_free(struct store *st);

/* pg_side.c: the side connection's pipeline. pg_side_start enters it (store_async_start),
 * pg_side_send sends a statement and its sync, pg_side_poll reads what came (never
 * waiting): its STORE_ASYNC_* or -1 (st->err), pg_side_free at close. */
int pg_side_start(struct store *st);
int pg_side_send(struct store *st, const char *sql, const struct pg_params *p,
                 enum pg_side_kind kind, int64_t cookie, const char *what);
int pg_side_poll(struct store *st);
void pg_side_free(struct store *st);

/* pg_jobs.c: a claim's rows, arrived (into the stash) */
void pg_claim_arrived(struct store *st, const PGresult *r);
/* pg_claims_drop - the transaction is rolled back: what it claimed (the stash's fresh
 * rows, those of its claim still out) is not this node's; earlier commits' rows are */
void pg_claims_drop(struct store *st);
/* pg_nodes.c: a sweep's and the cancels' answers, arrived */
void pg_rescue_arrived(struct store *st, const PGresult *r);
void pg_cancels_arrived(struct store *st, const PGresult *r);
/* pg_results.c: the probe of files due, sent just before COMMIT */
int pg_files_due_send(struct store *st);

/* PG_REF - an attempt named by its job and number (a pipelined attempt_begin cannot wait
 * for its id): bit 62 set, the job in bits 24..61, the number below */
#define PG_REF_FLAG (INT64_C(1) << 62)
#define PG_REF(job, no) (PG_REF_FLAG | ((int64_t)(job) << 24) | (int64_t)(no))
#define PG_REF_JOB(ref) (((ref) & ~PG_REF_FLAG) >> 24)
#define PG_REF_NO(ref) ((ref) & ((INT64_C(1) << 24) - 1))

/* reading a result: a NULL column reads as the default, or NULL */
int64_t pg_get_i64(const PGresult *r, int row, int col, int64_t dflt);
double pg_get_double(const PGresult *r, int row, int col, double dflt);
const char *pg_get_text(const PGresult *r, int row, int col); /* valid until PQclear */
char *pg_get_dup(const PGresult *r, int row, int col);        /* malloc'd, or NULL */

/* pg_fail - sets st->err (printf-style) and returns -1 */
int pg_fail(struct store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* how a write call is wrapped, as in SQLite: joined to the caller's transaction, or in
 * one of its own, or (claims, recovery) in a savepoint when joined. */
enum pg_wrap { PG_JOINED, PG_OWN_TXN, PG_SAVEPOINT };
int pg_op_begin(struct store *st, enum pg_wrap *how);
int pg_op_begin_atomic(struct store *st, enum pg_wrap *how);
int pg_op_end(struct store *st, enum pg_wrap how, int rc); /* commits or rolls back; rc back */

/* pg_now_ms - the database's clock, for leases and buckets (nodes' clocks may disagree) */
#define PG_NOW_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"

/* --- pg_jobs.c, pg_deps.c, pg_nodes.c: what the other files use of them -------------- */

#define PG_BIT(s) (1u << (s))

/* the WHERE of a state change (pg_change_state): $1 the job, $4 the one state it must be
 * in (NULL when pg_change_state read it first), $5 this node (NULL for none): a running
 * job is changed only by the node that owns it. The update sets $3 (the new state) and
 * $2 (now) itself, and owner = NULL; its own parameters are $6 on. */
#define PG_FROM_STATE                                                                              \
	"WHERE id = $1 AND ($4::int IS NULL OR state = $4::int) "                                  \
	"AND ($5::bigint IS NULL OR state <> 1 OR owner = $5::bigint)"

/* pg_change_state - a job in one of the allowed states moves to `to` by the update sql
 * (PG_FROM_STATE, then extra's values as $6...), with its transitions row. Returns 0, 1
 * when the job is in a state that does not allow it (nothing done, the reason in
 * store_errmsg), -1 on error, when there is no such job, or when another node owns it
 * ("lease lost"). */
int pg_change_state(struct store *st, int64_t id, unsigned allowed, enum job_state to,
                    const char *sql, const struct pg_params *extra, const char *verb,
                    const char *reason, int64_t now_ms);
/* pg_strict - a change the scheduler asked for: the wrong state is an error (-1) for it */
int pg_strict(int rc);
/* pg_record_transition - the history row of a state change (from < 0: none) */
int pg_record_transition(struct store *st, int64_t id, int from, enum job_state to, int64_t now_ms,
                         const char *reason);
/* pg_job_state_get - a job's state: 0, 1 when there is no such job, -1 */
int pg_job_state_get(struct store *st, int64_t id, enum job_state *state);

/* pg_deps.c: what a job's state change means for the jobs that wait for it, inside the
 * change's own transaction (as sqlite_deps.c's sq_deps_*) */
int pg_deps_succeeded(struct store *st, int64_t id, int64_t now_ms);
int pg_deps_ended(struct store *st, int64_t id, int64_t now_ms);
int pg_deps_unsucceeded(struct store *st, int64_t id, int64_t now_ms);
/* pg_deps_requeued - id was put back to queued by a retry: parked if some dependency of
 * it has not succeeded (pg_runs.c's store_job_retry calls it after the change). */
int pg_deps_requeued(struct store *st, int64_t id, int64_t now_ms);

/* pg_rows.c: lists streamed from a cursor, PG_CURSOR_CHUNK rows at a time, so memory
 * stays independent of their length. sql is a SELECT with its values written in
 * (integers only: it cannot be prepared); fn gets each row (non-zero stops). In the open
 * transaction, else in one of its own. 0 or -1. */
typedef int (*pg_row_fn)(const PGresult *r, int row, void *arg);
int pg_cursor_foreach(struct store *st, const char *sql, const char *what, pg_row_fn fn, void *arg);
/* pg_summaries_foreach - the rows of sql, in the columns of struct job_summary, to fn */
int pg_summaries_foreach(struct store *st, const char *sql, const char *what, store_summary_fn fn,
                         void *arg);

#endif
