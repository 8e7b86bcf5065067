/* daemon_int.h - what the daemon's files share (private to src/daemon/): the daemon and
 * its runs, the iteration's transaction, and the functions one step of a job's path calls
 * in another. The daemon: spool intake, claiming due jobs, admission (rate limits and the
 * in-flight cap), requests, outcomes, pages, fan-out and outputs, on one libev loop.
 *
 * A job's path, file by file: ingest.c (spool intake), dispatch.c (claiming, admission,
 * the token cache), send.c (the request), outcome.c (the answer), results.c (success,
 * outputs, pages; or the job's end, or a wait), fanout.c (parents and their children),
 * reconcile.c (a lookup before resending a mutation whose answer was lost).
 * loop.c drives each iteration and txn.c commits it; run.c holds a claimed job's lifetime;
 * control_files.c carries out the CLI's cancel and retry; results_file.c writes a file's
 * results file once all its jobs have ended; node.c makes the daemon one of several on a
 * shared store (lease, heartbeat, rescue, wake-ups, and a new start when the lease or the
 * connection is lost).
 *
 * Durability: every store write of a loop iteration joins one transaction, committed in
 * the ev_prepare callback (the loop's "before sleep"). Ingested files leave incoming/
 * only after that commit; outputs are renamed into place just before it, so a job is
 * never recorded succeeded without its output file. A job's first request leaves only
 * after the attempt that carries it is committed (it is sent from the prepare callback,
 * curl sends from the loop after it). The next page of an export is submitted from the
 * answer's callback, and libcurl may send it before the prepare commits its attempt: a
 * read, which a crash then makes the daemon send again, harmlessly.
 */
#ifndef SEGSPOOL_DAEMON_INT_H
#define SEGSPOOL_DAEMON_INT_H

#include <cjson/cJSON.h>
#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon.h"
#include "http.h"
#include "job.h"
#include "metrics.h"
#include "retry.h"
#include "spool.h"
#include "store.h"
#include "strbuf.h"

#define PARENT_POLL_MS 500
#define OUTPUT_BATCH_MAX 256   /* open directory fds held by staged outputs */
#define LOCAL_HOLD_MAX_MS 1000 /* longer rate-limit waits go back to the store */
#define LIMIT_WAIT_REASON "waiting for the rate limit" /* our own limit, not the server's */
/* a workspace without a usable token: its jobs wait, burning no attempts, until a SIGHUP */
#define TOKEN_WAIT_REASON "waiting for a usable API token"
#define TOKEN_RECHECK_MS (10 * 60 * 1000)
#define STORE_BUSY_WAIT_MS 100 /* the daemon's busy timeout: the loop must keep running */
/* a shared store's: rows other daemons' short transactions hold (a file's count, a
 * parent's) are waited for, since a write that gives up costs the node a new start */
#define STORE_SHARED_LOCK_WAIT_MS 5000
#define STORE_WAIT_MS(d) ((d)->shared ? STORE_SHARED_LOCK_WAIT_MS : STORE_BUSY_WAIT_MS)
#define STORE_BUSY_RETRY_MAX_MS 2000
#define STORE_BUSY_LOG_MS 10000
#define CONTROL_POLL_S 0.25
#define BUCKET_SAVE_MS 1000
#define SPOOL_LOCK_WAIT_MS 60000 /* for a CLI command holding the spool lock */
#define RETRY_WARN_FAILURES 3    /* failures in a row from which each retry is a warning */
#define INGEST_CHUNK_JOBS 500    /* JSON Lines jobs parsed and inserted at a time */
#define INGEST_READ_WINDOW 65536 /* bytes of a large JSON Lines file read at a time */
#define NODE_POLL_MS 1000        /* shared store: due work looked for at least this often */

struct names {
	char **v;
	size_t n, alloc, head;
};

struct token {
	char *workspace;
	struct strbuf value;
	int ok;
	char *error;
};

struct daemon;

/* run - one claimed job, from claim to its next state (one lifetime: a struct). */
struct run {
	struct daemon *d;
	struct run *prev, *next;
	struct job_row row;
	struct job job;
	int job_parsed;
	struct http_xfer *xfer; /* set while a request is in flight */
	int64_t hold_until_ms;  /* not in flight: when to try again */
	int64_t attempt_id;
	struct rl_bucket *ws_bucket, *op_bucket;
	struct strbuf request;      /* "GET /sources?..." for the attempt row */
	const char *method;         /* of the request in flight or last sent (a static string) */
	int interrupt;              /* cancelled because the daemon stops, not by the user */
	int count_on_end;           /* the answer's attempt counts; recorded with the job's end */
	struct http_response *held; /* an answer kept while the store is busy, recorded later */
	struct run *held_next;
	struct reconcile *rc; /* looking before a resend (reconcile.c), or NULL */
	char *resolved; /* its references' values ({"/sourceId": ...}) for the attempt, or NULL */
	/* an asynchronous store (async.c): the request waits for the commit that records its
	 * attempt, 1 while that is the open transaction, 2 once its commit is sent; counted
	 * in flight meanwhile. Cancelled before it went (by the user, or a stop's grace):
	 * gated_cancel, and it is answered "cancelled" without going at all. */
	int gated;
	struct built_request *gated_req;
	int gated_cancel;
	/* its takes from the shared buckets, in the store's pipeline (dispatch.c): the next
	 * bucket to take from, one in flight, and the answer come (the wait, 0: taken) */
	int take_next, taking, take_answered;
	int64_t take_wait;
};

struct daemon {
	struct ev_loop *loop;
	struct config *cfg;
	struct spool sp;
	struct store *st;
	struct http *http;
	struct ratelimit *rl;
	ev_io watch_io;
	ev_timer tick, control_timer, grace_timer;
	ev_prepare prepare;
	ev_signal sig_term, sig_int, sig_hup;
	int in_txn;
	int txn_failed; /* writes of this transaction that failed: the commit refuses */
	struct strbuf txn_first_failure;
	int64_t busy_since_ms; /* another process holds the store's write lock; 0 when not */
	int64_t busy_logged_ms, busy_retry_ms;
	int64_t busy_next_ms;              /* while locked: when txn_try asks the store again */
	struct run *held_head, *held_tail; /* answers waiting for the store, in arrival order */
	int nheld;
	int wake_limit_waiters, wake_token_waiters, requeue_idle; /* for the next transaction */
	struct names pending;                                     /* incoming/ names to ingest */
	struct names archive;              /* ingested: leave incoming/ after the commit */
	struct store_file_id *archive_ids; /* which file each of archive is, as read */
	size_t archive_ids_alloc;
	struct names stuck;           /* could neither ingest nor move: skip until restart */
	struct output_batch *outputs; /* staged outputs, made durable just before the commit */
	int scan_needed, control_needed;
	int64_t last_scan_ms, last_bucket_save_ms;
	int buckets_dirty;
	struct run *runs;
	int nruns, ninflight;
	struct token *tokens;
	size_t ntokens;
	uint64_t rng;
	int stopping, until_idle;
	ev_timer watchdog;                  /* WATCHDOG=1 pings, when $WATCHDOG_USEC asks */
	int notify_failed, notify_stopping; /* notify.c: a failure logged, STOPPING=1 sent */
	int64_t files_ingested, files_rejected, jobs_ingested, duplicates, requests;
	struct metrics *metrics; /* counts since the start, for metrics_file (metrics.c) */
	ev_timer metrics_timer;
	int metrics_failing; /* the last write failed (and said so) */
	/* results files (results_file.c): files whose jobs may all have ended to look up at
	 * the next commit, results files named but not yet written, and when to try again */
	int results_check, results_pending;
	int64_t results_retry_ms;
	/* a shared store (node.c): other daemons claim from it too */
	int shared;
	ev_timer heartbeat, reconnect;
	ev_io wakeup_io;
	ev_io async_io;      /* the store's socket, when its commits are answered later (async.c) */
	ev_io async_side_io; /* and its side connection's (takes, holds, heartbeats) */
	int async;
	int ngated;    /* requests waiting for their commit's answer (in ninflight too) */
	int releasing; /* async.c sends the requests of a commit answered: no commit meanwhile */
	int64_t reconnect_ms;
	int rescue_due, cancels_due; /* for the next transaction */
	int reset_needed;            /* the lease or the connection was lost: start again */
	struct strbuf lost_why;      /* why, for the log */
	int resets;
	/* shared buckets that said no, and until when: nobody takes before that (a GCRA's
	 * next free time only moves on), so the runs held on it do not ask again each */
	struct shared_wait {
		char *key;
		int64_t until_ms;
	} * shared_waits;
	size_t nshared_waits;
};

/* Functions used by another file of the daemon, by the file that defines them. */

/* loop.c */
struct http *http_open(struct daemon *d);

/* ingest.c */
void names_push(struct names *ns, const char *name);
void names_clear(struct names *ns);
const char *output_dir_path(const struct daemon *d);
void ingest_pending(struct daemon *d);
void archive_committed(struct daemon *d);

/* dispatch.c */
struct token *token_for(struct daemon *d, const char *workspace);
void tokens_forget(struct daemon *d);
void send_or_hold(struct run *r);
void shared_waits_forget(struct daemon *d);
void dispatch(struct daemon *d);
/* on_take - store_async_takes's function: a take's answer, for the run it was for */
void on_take(int64_t cookie, int64_t wait_ms, void *arg);

/* run.c */
void run_link(struct daemon *d, struct run *r);
void run_free(struct run *r);
struct run *run_find(struct daemon *d, int64_t id);
struct retry_policy policy_of(const struct daemon *d, const struct job *j);
int multi_page(const struct run *r);
char *error_json(const char *type, const char *message, int status);
/* api_answer - what the API said (status, type, message, field), one line, escaped */
void api_answer(struct strbuf *out, int status, const char *err_json);
/* add_last_answer - "; the last answer: ..." from the job's last recorded attempt */
void add_last_answer(struct run *r, struct strbuf *out);

/* send.c */
void send_now(struct run *r, const struct token *tok);
/* send_gated - a request whose attempt's commit was answered: it goes now */
void send_gated(struct run *r);
/* send_room - requests that may start now: the HTTP client's room, less those waiting
 * for their commit */
int send_room(const struct daemon *d);

/* async.c */
void async_init(struct daemon *d);
void async_start(struct daemon *d); /* after a join: the pipeline, if the store has one */
void async_stop(struct daemon *d);
/* async_settle - what the store answered: a commit's answer sends its requests; -1 when
 * it failed (node_lost said why), else the STORE_ASYNC_* seen */
int async_settle(struct daemon *d);
/* async_committing - the commit just sent records the open transaction's requests: they
 * go when async_settle finds it answered */
void async_committing(struct daemon *d);
void async_watch(struct daemon *d); /* the socket watched for writing while bytes wait */
/* commit_now (txn.c) - commit, after waiting for the commit in flight if there is one */
void commit_now(struct daemon *d);

/* outcome.c */
void record_held(struct daemon *d);
void on_response(struct http_response *resp, void *arg);

/* reconcile.c */
struct built_request;
void reconcile_start(struct run *r);
int reconcile_build(struct run *r, const char *base, const char *cursor, int count,
                    struct built_request *req, struct strbuf *err);
const char *reconcile_outcome(struct run *r, const struct http_response *resp, enum outcome *o,
                              const char *outcome);
int reconcile_answered(struct run *r);
void reconcile_free(struct run *r);

/* results.c */
void end_job(struct run *r, enum job_state to, const char *err_json, const char *reason);
void wait_job(struct run *r, int64_t next_ms, int count_attempt, enum job_wait why,
              const char *reason);
void default_output(const struct run *r, struct strbuf *path);
int output_path_of(const struct run *r, struct strbuf *path);
int make_room(struct daemon *d);
int write_result_output(struct run *r, const cJSON *data, struct strbuf *where, struct strbuf *err);
int write_pages_output(struct daemon *d, int64_t job_id, const int64_t *ids, size_t n,
                       const char *path, int keep_existing, int64_t *items, struct strbuf *err);
void succeed_job(struct run *r, const char *result_json, const char *output);
void finish_pages(struct run *r);
int needs_tree(const struct run *r);
void on_success(struct run *r, cJSON *body, const struct strbuf *raw, size_t off, size_t len);

/* fanout.c */
void run_parent(struct run *r);

/* refs.c */
/* refs_check_file - the file's "after" keys and references against its jobs and the store,
 * references against the result shapes of the jobs they name (problems added to list); 0,
 * or -1 when the store could not be read. */
int refs_check_file(struct daemon *d, struct job_list *list);
/* refs_record - the dependencies of the file's jobs just inserted (ids[i], 0 for a job not
 * inserted), in the same transaction; 0 or -1. */
int refs_record(struct daemon *d, const struct job_list *list, const int64_t *ids, int64_t now);
/* refs_resolve - the claimed job's references replaced by their values (kept in
 * r->resolved for the attempt); 0, or -1 when the job was ended failed instead. */
int refs_resolve(struct run *r);

/* control_files.c */
int control_one(const char *name, void *arg);
/* cancel_running - a cancelled job that is running: its request in flight aborted
 * (on_response then ends it cancelled), or a run that is not sending ended, or the row. */
void cancel_running(struct daemon *d, int64_t id);

/* node.c: a shared store */
void node_init(struct daemon *d);
/* node_join - this daemon joins as a new node (when: "started", "reconnected"), its
 * earlier nodes buried by the store, expired leases' jobs taken back; the heartbeat and the wake-up
 * watcher started. 0, or -1 said. */
int node_join(struct daemon *d, const char *when);
void node_stop(struct daemon *d);
/* node_lost - the lease or the connection is lost (why, printf-style): nothing more is
 * written or sent; the next prepare calls node_reset. */
void node_lost(struct daemon *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* node_reset - every request aborted, every run dropped without a store write, the
 * transaction rolled back, the store closed; reopened (again and again while the
 * database does not answer) to join as a new node. */
void node_reset(struct daemon *d);
/* node_iteration - in the iteration's transaction: the sweep and the cancels the
 * heartbeat asked for. */
void node_iteration(struct daemon *d);

/* metrics.c */
void metrics_file_start(struct daemon *d);
void metrics_file_stop(struct daemon *d);

/* notify.c */
int notify_send(const char *state);
void notify_ready(struct daemon *d);
void notify_stopping(struct daemon *d);
void notify_end(struct daemon *d);

/* results_file.c */
int results_wanted(const struct job_list *list);
void results_default_outputs(struct job_list *list, int batch);
int *results_lines(const char *data, size_t len, int jsonl, size_t njobs);
void results_reserve(struct daemon *d);
void results_write(struct daemon *d);

/* txn.c */
int txn_try(struct daemon *d);
void txn(struct daemon *d);
void write_failed(struct daemon *d, int64_t job_id, const char *what);
void commit(struct daemon *d);

/* ingest_check.c: where a job is in its file, and the checks before insertion */
/* doc_shape - how a file's jobs are addressed in its problems: "/output" in a single
 * object, "/N/output" in an array, "/output" with a line number in JSON Lines. */
struct doc_shape {
	const char *data;
	size_t len;
	int array, lines;
};

struct doc_shape shape_of(const char *name, const struct strbuf *data);
void check_outputs(struct daemon *d, struct job_list *list, const struct doc_shape *sh);
void check_file_clashes(struct job_list *list, const struct doc_shape *sh);
int check_store_clashes(struct daemon *d, struct job_list *list, const struct doc_shape *sh);

/* ingest_insert.c */
int insert_jobs(struct daemon *d, const char *name, const char *hash,
                const struct store_file_id *fid, const struct job_list *list, const int *lines,
                int64_t now);
int ingest_chunked(struct daemon *d, const char *name, const char *hash,
                   const struct store_file_id *fid, int fd);

#endif
