/* daemon.c - the daemon: spool intake, claiming due jobs, admission (rate limits and the
 * in-flight cap), requests, outcomes, pages, fan-out and outputs, on one libev loop.
 *
 * Durability: every store write of a loop iteration joins one transaction, committed in
 * the ev_prepare callback (the loop's "before sleep"). Ingested files leave incoming/
 * only after that commit; outputs are renamed into place just before it, so a job is
 * never recorded succeeded without its output file. A request leaves only after the
 * attempt that carries it is committed (curl sends from the loop, after the prepare).
 */
#include "daemon.h"

#include <cjson/cJSON.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "config.h"
#include "control.h"
#include "http.h"
#include "job.h"
#include "output.h"
#include "paginate.h"
#include "ratelimit.h"
#include "retry.h"
#include "spool.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

#define PARENT_POLL_MS 500
#define LOCAL_HOLD_MAX_MS 1000 /* longer rate-limit waits go back to the store */
#define LIMIT_WAIT_REASON "waiting for the rate limit" /* our own limit, not the server's */
/* a workspace without a usable token: its jobs wait, burning no attempts, until a SIGHUP */
#define TOKEN_WAIT_REASON "waiting for a usable API token"
#define TOKEN_RECHECK_MS (10 * 60 * 1000)
#define STORE_BUSY_WAIT_MS 100   /* the daemon's busy timeout: the loop must keep running */
#define STORE_BUSY_RETRY_MAX_MS 2000
#define STORE_BUSY_LOG_MS 10000
#define CONTROL_POLL_S 0.25
#define BUCKET_SAVE_MS 1000
#define SPOOL_LOCK_WAIT_MS 60000 /* for a CLI command holding the spool lock */
#define RETRY_WARN_FAILURES 3    /* failures in a row from which each retry is a warning */

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
	struct http_xfer *xfer;   /* set while a request is in flight */
	int64_t hold_until_ms;    /* not in flight: when to try again */
	int64_t attempt_id;
	struct rl_bucket *ws_bucket, *op_bucket;
	struct strbuf request;    /* "GET /sources?..." for the attempt row */
	const char *method;       /* of the request in flight or last sent (a static string) */
	int interrupt;            /* cancelled because the daemon stops, not by the user */
	int count_on_end;         /* the answer's attempt counts; recorded with the job's end */
	struct http_response *held; /* an answer kept while the store is busy, recorded later */
	struct run *held_next;
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
	int txn_failed;         /* writes of this transaction that failed: the commit refuses */
	struct strbuf txn_first_failure;
	int64_t busy_since_ms;  /* another process holds the store's write lock; 0 when not */
	int64_t busy_logged_ms, busy_retry_ms;
	struct run *held_head, *held_tail; /* answers waiting for the store, in arrival order */
	int nheld;
	int wake_limit_waiters, wake_token_waiters, requeue_idle; /* for the next transaction */
	struct names pending;   /* incoming/ names to ingest */
	struct names archive;   /* ingested: leave incoming/ after the commit */
	struct store_file_id *archive_ids; /* which file each of archive is, as read */
	size_t archive_ids_alloc;
	struct names stuck;     /* could neither ingest nor move: skip until restart */
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
	int64_t files_ingested, files_rejected, jobs_ingested, duplicates, requests;
};

static void dispatch(struct daemon *d);
static void send_or_hold(struct run *r);
static void after_signals(struct daemon *d);

/* names_push - appends a copy of name. */
static void names_push(struct names *ns, const char *name)
{
	if (ns->n == ns->alloc) {
		ns->alloc = ns->alloc ? ns->alloc * 2 : 64;
		ns->v = xrealloc(ns->v, ns->alloc * sizeof(*ns->v));
	}
	ns->v[ns->n++] = xstrdup(name);
}

/* names_has - linear search; only the small stuck list uses it. */
static int names_has(const struct names *ns, const char *name)
{
	for (size_t i = ns->head; i < ns->n; i++)
		if (strcmp(ns->v[i], name) == 0)
			return 1;
	return 0;
}

/* names_clear - frees every name. */
static void names_clear(struct names *ns)
{
	for (size_t i = ns->head; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
	memset(ns, 0, sizeof(*ns));
}

/* txn_try - opens the iteration's transaction: 0, or -1 while another process holds the
 * store's write lock (then nothing may be written: answers are held, nothing new is sent).
 * Any other failure stops the daemon. */
static int txn_try(struct daemon *d)
{
	if (d->in_txn)
		return 0;
	int64_t now = clock_wall_ms();
	if (store_begin(d->st) < 0) {
		if (!store_busy(d->st))
			die("%s; stopping (nothing is lost: files stay in incoming/ until their jobs "
			    "are committed)", store_errmsg(d->st));
		if (!d->busy_since_ms) {
			d->busy_since_ms = d->busy_logged_ms = now;
			d->busy_retry_ms = STORE_BUSY_WAIT_MS;
			logmsg(LOG_WARN, "waiting for the database %s: it is locked by another process; "
			       "holding answers and sending nothing new until it is free",
			       d->cfg->db_path);
		} else if (now - d->busy_logged_ms >= STORE_BUSY_LOG_MS) {
			d->busy_logged_ms = now;
			logmsg(LOG_WARN, "the database %s is still locked by another process (for %lld "
			       "s); %d answer(s) held, %d request(s) in flight", d->cfg->db_path,
			       (long long)((now - d->busy_since_ms) / 1000), d->nheld, d->ninflight);
		}
		return -1;
	}
	if (d->busy_since_ms) {
		logmsg(LOG_INFO, "the database is free again after %lld ms; recording %d held "
		       "answer(s)", (long long)(now - d->busy_since_ms), d->nheld);
		d->busy_since_ms = 0;
	}
	d->in_txn = 1;
	return 0;
}

/* txn - every write of an iteration joins one transaction, committed before sleep. The
 * callers run where txn_try has already succeeded this iteration; only after a commit in
 * mid-iteration (a full output batch) may the lock have been taken meanwhile, and then
 * the ordinary busy timeout is waited before giving up. */
static void txn(struct daemon *d)
{
	if (d->in_txn)
		return;
	store_set_busy_timeout(d->st, 5000);
	int rc = txn_try(d);
	store_set_busy_timeout(d->st, STORE_BUSY_WAIT_MS);
	if (rc < 0)
		die("the database %s stayed locked by another process in the middle of a batch; "
		    "stopping (the jobs concerned run again at the next start)", d->cfg->db_path);
}

/* write_failed - a store write of this iteration failed: logged, and the commit will
 * refuse the whole transaction rather than keep half of what the iteration decided. */
static void write_failed(struct daemon *d, int64_t job_id, const char *what)
{
	struct strbuf msg = STRBUF_INIT;
	sb_addf(&msg, "cannot %s", what);
	if (job_id)
		sb_addf(&msg, " of job %lld", (long long)job_id);
	sb_addf(&msg, ": %s", store_errmsg(d->st));
	logmsg(LOG_ERROR, "%s", msg.buf);
	if (!d->txn_failed++)
		sb_adds(&d->txn_first_failure, msg.buf);
	sb_release(&msg);
}

/* --- tokens -------------------------------------------------------------------- */

/* token_for - the workspace's token, read once (again after SIGHUP). */
static struct token *token_for(struct daemon *d, const char *workspace)
{
	for (size_t i = 0; i < d->ntokens; i++)
		if (strcmp(d->tokens[i].workspace, workspace) == 0)
			return &d->tokens[i];
	d->tokens = xrealloc(d->tokens, (d->ntokens + 1) * sizeof(*d->tokens));
	struct token *t = &d->tokens[d->ntokens++];
	memset(t, 0, sizeof(*t));
	t->workspace = xstrdup(workspace);
	sb_init(&t->value, 0);
	struct strbuf err = STRBUF_INIT;
	t->ok = config_token(d->cfg, workspace, &t->value, &err) == 0;
	if (!t->ok) {
		t->error = sb_detach(&err, NULL);
		logmsg(LOG_ERROR, "%s", t->error);
	}
	sb_release(&err);
	return t;
}

/* tokens_forget - wipes and frees the cached tokens. */
static void tokens_forget(struct daemon *d)
{
	for (size_t i = 0; i < d->ntokens; i++) {
		if (d->tokens[i].value.alloc)
			explicit_bzero(d->tokens[i].value.buf, d->tokens[i].value.alloc);
		sb_release(&d->tokens[i].value);
		free(d->tokens[i].workspace);
		free(d->tokens[i].error);
	}
	free(d->tokens);
	d->tokens = NULL;
	d->ntokens = 0;
}

/* --- ingest -------------------------------------------------------------------- */

/* reject_file - rejected/NAME with NAME.error.json beside it; the daemon runs on. */
static void reject_file(struct daemon *d, const char *name, const struct job_list *problems)
{
	char *doc = job_problems_json(problems, name);
	logmsg(LOG_WARN, "rejected %s: %s%s%s", name,
	       problems->nproblems ? problems->problems[0].where : "",
	       problems->nproblems && problems->problems[0].where[0] ? ": " : "",
	       problems->nproblems ? problems->problems[0].what : "invalid");
	if (spool_reject(&d->sp, name, doc) < 0) {
		logmsg(LOG_ERROR, "cannot move %s to rejected/; leaving it in incoming/ until restart",
		       name);
		names_push(&d->stuck, name);
	}
	d->files_rejected++;
	free(doc);
}

/* reject_reason - a file-level problem (unreadable, a directory, too big). */
static void reject_reason(struct daemon *d, const char *name, const char *why)
{
	struct job_list list;
	memset(&list, 0, sizeof(list));
	job_problem_add(&list, "", 0, why, "a regular JSON or JSON Lines file");
	reject_file(d, name, &list);
	job_list_release(&list);
}

/* doc_shape - how a file's jobs are addressed in its problems: "/output" in a single
 * object, "/N/output" in an array, "/output" with a line number in JSON Lines. */
struct doc_shape {
	const char *data;
	size_t len;
	int array, lines;
};

/* shape_of - the file's format, and whether a JSON document is an array. */
static struct doc_shape shape_of(const char *name, const struct strbuf *data)
{
	struct doc_shape sh = {data->buf, data->len, 0, 0};
	sh.lines = job_format_for_name(name) == JOB_FORMAT_JSONL;
	const char *p = data->buf, *end = data->buf + data->len;
	if (end - p >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	sh.array = !sh.lines && p < end && *p == '[';
	return sh;
}

/* job_line - the line of the i-th job of a JSON Lines file (blank lines hold none; a
 * byte-order mark does not count). */
static int job_line(const struct doc_shape *sh, size_t i)
{
	int line = 0;
	size_t pos = sh->len >= 3 && memcmp(sh->data, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
	while (pos < sh->len) {
		const char *nl = memchr(sh->data + pos, '\n', sh->len - pos);
		size_t end = nl ? (size_t)(nl - sh->data) : sh->len;
		size_t k = pos;
		while (k < end && (sh->data[k] == ' ' || sh->data[k] == '\t' || sh->data[k] == '\r'))
			k++;
		line++;
		if (k < end && i-- == 0)
			return line;
		pos = end + 1;
	}
	return 0;
}

/* output_problem - a problem with job i's output, where the file's shape says. */
static void output_problem(struct job_list *list, const struct doc_shape *sh, size_t i,
			   const char *what, const char *expected)
{
	char where[32];
	if (sh->array)
		snprintf(where, sizeof(where), "/%zu/output", i);
	else
		snprintf(where, sizeof(where), "/output");
	job_problem_add(list, where, sh->lines ? job_line(sh, i) : 0, what, expected);
}

/* check_outputs - output paths must not lead through a symlink out of out/. */
static void check_outputs(struct daemon *d, struct job_list *list, const struct doc_shape *sh)
{
	for (size_t i = 0; i < list->njobs; i++) {
		const char *path = list->jobs[i].output;
		struct strbuf err = STRBUF_INIT;
		if (path && output_check_dirs(d->sp.out_fd, path, &err) < 0)
			output_problem(list, sh, i, err.buf, "a path inside the output directory");
		sb_release(&err);
	}
}

/* path_cmp - byte order with '/' below every other byte: a path is then followed at
 * once by the paths inside it ("d1", "d1/y.json", "d1-x"), so comparing neighbours finds
 * every clash. */
static int path_cmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned char x = *a == '/' ? 1 : (unsigned char)*a;
		unsigned char y = *b == '/' ? 1 : (unsigned char)*b;
		if (x != y || !x)
			return (int)x - (int)y;
	}
}

/* is_dir_of - a is a directory on b's path ("d1" of "d1/y.json"). */
static int is_dir_of(const char *a, const char *b)
{
	size_t n = strlen(a);
	return strncmp(a, b, n) == 0 && b[n] == '/';
}

struct output_ref {
	const char *path;
	size_t job;
};

/* cmp_output_ref - by path (path_cmp), then by job index. */
static int cmp_output_ref(const void *pa, const void *pb)
{
	const struct output_ref *a = pa, *b = pb;
	int c = path_cmp(a->path, b->path);
	return c ? c : (a->job > b->job) - (a->job < b->job);
}

/* clash_problem - job later's output clashes with other, the output of whose ("job 3 of
 * this file", "job 12, which has not finished"). */
static void clash_problem(struct job_list *list, const struct doc_shape *sh, size_t later,
			  const char *other, const char *whose)
{
	const char *path = list->jobs[later].output;
	struct strbuf what = STRBUF_INIT;
	if (strcmp(path, other) == 0)
		sb_addf(&what, "output \"%s\" is also the output of %s", path, whose);
	else if (is_dir_of(other, path))
		sb_addf(&what, "output \"%s\" lies inside \"%s\", the output of %s", path, other,
			whose);
	else
		sb_addf(&what, "output \"%s\" is a directory of \"%s\", the output of %s", path,
			other, whose);
	output_problem(list, sh, later, what.buf,
		       "an output no other job writes, and neither inside nor around another's");
	sb_release(&what);
}

/* check_file_clashes - two jobs of the file with the same output, or one's inside the
 * other's: one would replace the other's file, or find a file where it needs a directory. */
static void check_file_clashes(struct job_list *list, const struct doc_shape *sh)
{
	struct output_ref *refs = xmalloc((list->njobs ? list->njobs : 1) * sizeof(*refs));
	size_t n = 0;
	for (size_t i = 0; i < list->njobs; i++)
		if (list->jobs[i].output)
			refs[n++] = (struct output_ref){list->jobs[i].output, i};
	qsort(refs, n, sizeof(*refs), cmp_output_ref);
	for (size_t k = 1; k < n; k++) {
		const struct output_ref *a = &refs[k - 1], *b = &refs[k];
		if (strcmp(a->path, b->path) != 0 && !is_dir_of(a->path, b->path))
			continue;
		const struct output_ref *first = a->job < b->job ? a : b;
		const struct output_ref *later = a->job < b->job ? b : a;
		char whose[48];
		snprintf(whose, sizeof(whose), "job %zu of this file", first->job);
		clash_problem(list, sh, later->job, first->path, whose);
	}
	free(refs);
}

/* check_store_clashes - a job's output against the explicit outputs of unfinished jobs
 * already recorded. A job whose key is recorded is skipped: it is not added again. */
static int check_store_clashes(struct daemon *d, struct job_list *list,
			       const struct doc_shape *sh)
{
	for (size_t i = 0; i < list->njobs; i++) {
		const struct job *j = &list->jobs[i];
		if (!j->output)
			continue;
		int dup = j->key ? store_key_recorded(d->st, j->key) : 0;
		int64_t id = 0;
		char *other = NULL;
		int rc = dup ? dup : store_output_conflict(d->st, j->output, &id, &other);
		if (rc < 0)
			return -1;
		if (rc && !dup) {
			char whose[64];
			snprintf(whose, sizeof(whose), "job %lld, which has not finished",
				 (long long)id);
			clash_problem(list, sh, i, other, whose);
		}
		free(other);
	}
	return 0;
}

/* insert_jobs - one file's jobs, under a savepoint of the iteration's transaction. */
static int insert_jobs(struct daemon *d, const char *name, const char *hash,
		       const struct store_file_id *fid, const struct job_list *list, int64_t now)
{
	int dups = 0;
	txn(d);
	if (store_savepoint(d->st) < 0)
		return -1;
	for (size_t i = 0; i < list->njobs; i++) {
		const struct job *j = &list->jobs[i];
		char *spec = job_to_json(j);
		struct job_new nj = {
			.op_id = j->op->operation_id,
			.spec_json = spec,
			.key = j->key,
			.workspace = j->workspace,
			.output_path = j->output,
			.source_file = name,
			.priority = j->priority,
			.not_before_ms = j->not_before_ms,
			.max_attempts = j->max_attempts ? j->max_attempts : d->cfg->retry.max_attempts,
			.paginated = j->op->paginated && j->paginate != PAGINATE_NONE,
		};
		int64_t id = 0;
		int rc = store_job_insert(d->st, &nj, now, &id);
		free(spec);
		if (rc < 0) {
			store_rollback_to(d->st);
			return -1;
		}
		if (rc == STORE_DUPLICATE) {
			dups++;
			logmsg(LOG_INFO, "%s: job %zu has key \"%s\", already recorded as job %lld: "
			       "not run again", name, i, j->key, (long long)id);
		}
	}
	if (store_file_record(d->st, name, hash, fid, now, (int)list->njobs, dups) < 0 ||
	    store_release(d->st) < 0) {
		store_rollback_to(d->st);
		return -1;
	}
	d->jobs_ingested += (int64_t)list->njobs - dups;
	d->duplicates += dups;
	return 0;
}

/* file_id_of - the identity of a file read, as the store keeps it. */
static struct store_file_id file_id_of(const struct stat *st)
{
	struct store_file_id id = {
		.dev = (int64_t)st->st_dev,
		.ino = (int64_t)st->st_ino,
		.ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + (int64_t)st->st_ctim.tv_nsec,
		.size = (int64_t)st->st_size,
	};
	return id;
}

/* archive_push - name leaves incoming/ after the commit, if it is still the file read. */
static void archive_push(struct daemon *d, const char *name, const struct store_file_id *id)
{
	if (d->archive.n == d->archive_ids_alloc) {
		d->archive_ids_alloc = d->archive_ids_alloc ? 2 * d->archive_ids_alloc : 64;
		d->archive_ids = xrealloc(d->archive_ids,
					  d->archive_ids_alloc * sizeof(*d->archive_ids));
	}
	d->archive_ids[d->archive.n] = *id;
	names_push(&d->archive, name);
}

/* recognised - this very file's jobs were committed and it never left incoming/: a stop
 * came between the commit and the move. It is moved, its jobs not added again. (An event
 * and a rescan that name a file twice in one iteration find it too: moved once.) */
static void recognised(struct daemon *d, const char *name, const char *hash,
		       const struct store_file_id *id, int how)
{
	if (names_has(&d->archive, name))
		return;
	if (how == STORE_FILE_LEGACY) {
		/* recorded before identities were kept: matched by name and content, as then,
		 * this once; a later file of that name and content is new */
		txn(d);
		if (store_file_adopt(d->st, name, hash, id) < 0)
			logmsg(LOG_ERROR, "cannot record the identity of %s: %s", name,
			       store_errmsg(d->st));
	}
	logmsg(LOG_INFO, "%s: this file's jobs were recorded before a stop, but it had not left "
	       "incoming/ (%s); moving it without adding them again", name,
	       how == STORE_FILE_LEGACY ? "the same name and content, recorded by an older "
	       "segspool" : "the same file: name, content, inode and ctime");
	archive_push(d, name, id);
}

/* ingest_one - parse, validate, insert; the file moves after the commit. */
static void ingest_one(struct daemon *d, const char *name)
{
	struct strbuf data = STRBUF_INIT, why = STRBUF_INIT;
	struct stat fst;
	if (names_has(&d->stuck, name))
		goto out;
	if (spool_read(&d->sp, name, JOB_MAX_FILE_BYTES, &data, &why, &fst) < 0) {
		if (faccessat(d->sp.incoming_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			goto out; /* already moved: a rescan and an event named it twice */
		reject_reason(d, name, why.buf);
		goto out;
	}
	char hash[17];
	hash_hex(data.buf, data.len, hash);
	struct store_file_id fid = file_id_of(&fst);
	int seen = store_file_seen(d->st, name, hash, &fid);
	if (seen < 0) {
		logmsg(LOG_ERROR, "cannot look up %s in the store: %s", name, store_errmsg(d->st));
		goto out;
	}
	if (seen) {
		recognised(d, name, hash, &fid, seen);
		goto out;
	}
	struct job_list list;
	memset(&list, 0, sizeof(list));
	int bad = job_parse_buffer(data.buf, data.len, job_format_for_name(name), &list);
	if (!bad) {
		struct doc_shape sh = shape_of(name, &data);
		check_outputs(d, &list, &sh);
		check_file_clashes(&list, &sh);
		if (check_store_clashes(d, &list, &sh) < 0) {
			logmsg(LOG_ERROR, "cannot check the outputs of %s against the store: %s; it "
			       "stays in incoming/", name, store_errmsg(d->st));
			job_list_release(&list);
			goto out;
		}
	}
	if (bad || list.nproblems) {
		reject_file(d, name, &list);
	} else if (insert_jobs(d, name, hash, &fid, &list, clock_wall_ms()) < 0) {
		logmsg(LOG_ERROR, "cannot record the jobs of %s: %s; it stays in incoming/", name,
		       store_errmsg(d->st));
	} else {
		archive_push(d, name, &fid);
		d->files_ingested++;
		logmsg(LOG_DEBUG, "ingested %s: %zu job(s)", name, list.njobs);
	}
	job_list_release(&list);
out:
	sb_release(&data);
	sb_release(&why);
}

static int scan_one(const char *name, void *arg)
{
	names_push(&((struct daemon *)arg)->pending, name);
	return 0;
}

/* output_dir_path - the output directory as configured, NULL for the spool's own out/. */
static const char *output_dir_path(const struct daemon *d)
{
	return d->cfg->output_dir && *d->cfg->output_dir ? d->cfg->output_dir : NULL;
}

/* out_dir_fd - the output directory's fd, reopened first if it was removed or replaced
 * since (an output made in a removed directory would fail, or vanish with it). */
static int out_dir_fd(struct daemon *d)
{
	if (spool_refresh_out(&d->sp, output_dir_path(d)) < 0)
		logmsg(LOG_ERROR, "outputs cannot be written until the output directory is back");
	return d->sp.out_fd;
}

/* check_store_file - the database is still the file we write; else stop: our commits
 * would go where nobody looks. */
static void check_store_file(struct daemon *d)
{
	char *err = NULL;
	if (store_check_file(d->st, &err) < 0)
		die("%s; stopping without committing anything more (files not yet moved out of "
		    "incoming/ stay there, to be ingested into the database the next start "
		    "finds)", err);
}

/* check_files - at each rescan: the database still the file we write, the spool's
 * directories still the ones open (else reopened, and what we knew of incoming/
 * forgotten). */
static void check_files(struct daemon *d)
{
	check_store_file(d);
	int rc = spool_refresh(&d->sp, output_dir_path(d));
	if (rc < 0)
		die("cannot go on with spool %s; stopping (nothing is lost: files not yet "
		    "committed stay in incoming/)", d->sp.root);
	if (rc > 0)
		names_clear(&d->stuck); /* names of the old incoming/ */
}

/* ingest_pending - up to claim_batch files per iteration, so requests keep flowing. */
static void ingest_pending(struct daemon *d)
{
	if (d->pending.head == d->pending.n && d->scan_needed) {
		names_clear(&d->pending);
		d->scan_needed = 0;
		d->last_scan_ms = clock_wall_ms();
		check_files(d);
		if (spool_scan(&d->sp, scan_one, d) < 0)
			logmsg(LOG_ERROR, "cannot scan %s/incoming", d->sp.root);
	}
	int budget = d->cfg->claim_batch;
	while (d->pending.head < d->pending.n && budget-- > 0) {
		char *name = d->pending.v[d->pending.head++];
		ingest_one(d, name);
		free(name);
	}
	if (d->pending.head == d->pending.n)
		names_clear(&d->pending);
}

/* replaced_since_read - name in incoming/ is no longer the inode that was read (a writer
 * renamed a new file over it): that one is not ingested yet and must stay. */
static int replaced_since_read(struct daemon *d, const char *name, const struct store_file_id *id)
{
	struct stat st;
	if (fstatat(d->sp.incoming_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0; /* gone: spool_archive says what it can */
	return (int64_t)st.st_dev != id->dev || (int64_t)st.st_ino != id->ino;
}

/* archive_committed - after the commit, ingested files leave incoming/: only if it was
 * committed into the database that is still there, or their jobs would be lost with it. */
static void archive_committed(struct daemon *d)
{
	if (d->archive.n)
		check_store_file(d);
	for (size_t i = 0; i < d->archive.n; i++) {
		const char *name = d->archive.v[i];
		if (replaced_since_read(d, name, &d->archive_ids[i])) {
			logmsg(LOG_INFO, "%s was replaced in incoming/ after it was read; the new file "
			       "is ingested on its own", name);
			d->scan_needed = 1;
			continue;
		}
		if (spool_archive(&d->sp, name, d->cfg->keep_archive) < 0 &&
		    faccessat(d->sp.incoming_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			logmsg(LOG_ERROR, "cannot move %s out of incoming/ (its jobs are recorded; "
			       "it will be recognised and moved on the next scan)", name);
	}
	names_clear(&d->archive);
	free(d->archive_ids);
	d->archive_ids = NULL;
	d->archive_ids_alloc = 0;
}

/* --- runs ---------------------------------------------------------------------- */

static void run_link(struct daemon *d, struct run *r)
{
	r->next = d->runs;
	r->prev = NULL;
	if (d->runs)
		d->runs->prev = r;
	d->runs = r;
	d->nruns++;
}

/* run_free - unlinks and frees a run whose job has reached its next state. */
static void run_free(struct run *r)
{
	struct daemon *d = r->d;
	if (r->prev)
		r->prev->next = r->next;
	else
		d->runs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	d->nruns--;
	if (r->held) {
		logmsg(LOG_ERROR, "job %lld: an answer held for the locked store is dropped at exit; "
		       "its attempt is recovered as interrupted at the next start", (long long)r->row.id);
		sb_release(&r->held->body);
		free(r->held);
	}
	if (r->job_parsed)
		job_release(&r->job);
	job_row_release(&r->row);
	sb_release(&r->request);
	free(r);
}

static struct run *run_find(struct daemon *d, int64_t id)
{
	for (struct run *r = d->runs; r; r = r->next)
		if (r->row.id == id)
			return r;
	return NULL;
}

/* policy_of - the job's retry settings over the config's defaults. */
static struct retry_policy policy_of(const struct daemon *d, const struct job *j)
{
	struct retry_policy own = {.max_attempts = j->max_attempts, .initial_ms = j->initial_ms,
				   .max_ms = j->max_ms, .max_age_ms = j->max_age_ms};
	return retry_policy_merge(&d->cfg->retry, &own);
}

static int multi_page(const struct run *r)
{
	return r->job.op->paginated &&
	       (r->job.paginate != PAGINATE_NONE || r->row.parent_id != 0);
}

/* error_json - {"errors":[{"type":...,"message":...}]}, the API's own envelope shape. */
static char *error_json(const char *type, const char *message, int status)
{
	struct strbuf sb = STRBUF_INIT;
	sb_adds(&sb, "{\"errors\":[{\"type\":");
	sb_add_json_string(&sb, type);
	sb_adds(&sb, ",\"message\":");
	sb_add_json_string(&sb, message);
	if (status)
		sb_addf(&sb, ",\"status\":%d", status);
	sb_adds(&sb, "}]}");
	return sb_detach(&sb, NULL);
}

/* end_job - failed, dead or cancelled, with the reason; frees the run. */
static void end_job(struct run *r, enum job_state to, const char *err_json, const char *reason)
{
	struct daemon *d = r->d;
	txn(d);
	if (r->count_on_end && store_job_count_attempt(d->st, r->row.id) < 0)
		write_failed(d, r->row.id, "count an attempt");
	if (store_job_end(d->st, r->row.id, to, err_json, reason, clock_wall_ms()) < 0)
		write_failed(d, r->row.id, "record the end");
	logmsg(to == JS_CANCELLED ? LOG_INFO : LOG_WARN, "job %lld (%s) %s: %s",
	       (long long)r->row.id, r->row.op_id, job_state_name(to), reason);
	run_free(r);
}

/* wait_job - back to waiting until next_ms; frees the run. */
static void wait_job(struct run *r, int64_t next_ms, int count_attempt, const char *reason)
{
	struct daemon *d = r->d;
	txn(d);
	if (store_job_wait(d->st, r->row.id, next_ms, count_attempt, reason, clock_wall_ms()) < 0)
		write_failed(d, r->row.id, "reschedule");
	run_free(r);
}

/* default_output - where a job's output goes when it named none: "<op>-<id>.json", or
 * "<op>-<id>-2.json" and so on when that name is taken. Ids start again at 1 in a new
 * database, and an earlier run's output must not be replaced by a stranger's. */
static void default_output(const struct run *r, struct strbuf *path)
{
	const char *ext = multi_page(r) ? "jsonl" : "json";
	int out_fd = out_dir_fd(r->d);
	sb_addf(path, "%s-%lld.%s", r->row.op_id, (long long)r->row.id, ext);
	/* taken on disk, or by an output of this batch not yet renamed into place */
	for (int n = 2; n < 1000 && (faccessat(out_fd, path->buf, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
				     output_batch_claimant(r->d->outputs, path->buf));
	     n++) {
		sb_reset(path);
		sb_addf(path, "%s-%lld-%d.%s", r->row.op_id, (long long)r->row.id, n, ext);
	}
}

static void commit(struct daemon *d);

#define OUTPUT_BATCH_MAX 256 /* open directory fds held by staged outputs */

/* make_room - a full batch of outputs is committed (outputs, then the store) before a
 * job's answer is recorded, never in the middle of it: a job's success and its file join
 * one transaction. At most one output is staged per answer or claimed job. */
static void make_room(struct daemon *d)
{
	if (output_batch_count(d->outputs) >= OUTPUT_BATCH_MAX) {
		commit(d);
		txn(d);
	}
}

/* open_output - the .part of a job's output, once nothing else claims its path: a path
 * another output of this batch stages (or a directory on its way or below it), or a
 * directory standing at its name, is refused. */
static int open_output(struct daemon *d, const char *path, struct output_file **of,
		       struct strbuf *err)
{
	int64_t other = output_batch_claimant(d->outputs, path);
	struct stat st;
	if (other) {
		sb_addf(err, "output %s collides with the output of job %lld, written in the same "
			"batch (two files cannot share a name, nor can a file be a directory of "
			"another)", path, (long long)other);
		return -1;
	}
	int out_fd = out_dir_fd(d);
	if (fstatat(out_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
		sb_addf(err, "output %s is a directory in the output directory", path);
		return -1;
	}
	return output_open(out_fd, path, of, err);
}

/* stage_output - a whole output, staged in the iteration's batch under the job's id. */
static int stage_output(struct daemon *d, int64_t job_id, const char *path, const void *data,
			size_t len, struct strbuf *err)
{
	struct output_file *of;
	if (open_output(d, path, &of, err) < 0)
		return -1;
	output_append(of, data, len); /* a failure is reported by output_stage */
	return output_stage(d->outputs, of, job_id, err);
}

/* write_result_output - a single response's data object, pretty-printed. */
static int write_result_output(struct run *r, const cJSON *data, struct strbuf *where,
			       struct strbuf *err)
{
	if (r->job.output)
		sb_adds(where, r->job.output);
	else
		default_output(r, where);
	char *text = data ? cJSON_Print(data) : xstrdup("null");
	struct strbuf body = STRBUF_INIT;
	sb_adds(&body, text);
	sb_addch(&body, '\n');
	free(text);
	int rc = stage_output(r->d, r->row.id, where->buf, body.buf, body.len, err);
	sb_release(&body);
	return rc;
}

struct page_sink {
	struct output_file *of;
	int64_t items;
	int failed;
	int write_failed; /* output_stage then says why (e.g. no space left) */
};

/* page_items_to_output - one recorded page's items, one JSON object a line. */
static int page_items_to_output(int page_no, const char *items_json, void *arg)
{
	struct page_sink *sink = arg;
	(void)page_no;
	cJSON *items = cJSON_Parse(items_json);
	if (!cJSON_IsArray(items)) {
		cJSON_Delete(items);
		sink->failed = 1;
		return 1;
	}
	struct strbuf line = STRBUF_INIT;
	for (cJSON *it = items->child; it; it = it->next) {
		char *text = cJSON_PrintUnformatted(it);
		sb_reset(&line);
		sb_adds(&line, text);
		sb_addch(&line, '\n');
		free(text);
		if (output_append(sink->of, line.buf, line.len) < 0) {
			sink->failed = sink->write_failed = 1;
			break;
		}
		sink->items++;
	}
	sb_release(&line);
	cJSON_Delete(items);
	return sink->failed;
}

/* write_pages_output - the items of jobs' pages, in order, into one JSON Lines file. */
static int write_pages_output(struct daemon *d, int64_t job_id, const int64_t *ids, size_t n,
			      const char *path, int64_t *items, struct strbuf *err)
{
	struct page_sink sink = {0};
	if (open_output(d, path, &sink.of, err) < 0)
		return -1;
	for (size_t i = 0; i < n && !sink.failed; i++)
		if (store_pages_foreach(d->st, ids[i], page_items_to_output, &sink) < 0)
			sink.failed = 1;
	if (sink.failed && !sink.write_failed) {
		output_abort(sink.of);
		sb_addf(err, "cannot read the recorded pages for %s", path);
		return -1;
	}
	*items = sink.items;
	/* reports a failed write, with its reason */
	return output_stage(d->outputs, sink.of, job_id, err);
}

/* succeed_job - records success with the result; frees the run. */
static void succeed_job(struct run *r, const char *result_json, const char *output)
{
	struct daemon *d = r->d;
	struct job_success ok = {.result_json = result_json, .output_path = output,
				 .count_attempt = r->count_on_end};
	txn(d);
	if (store_job_succeed(d->st, r->row.id, &ok, clock_wall_ms()) < 0)
		write_failed(d, r->row.id, "record the success");
	else
		logmsg(LOG_DEBUG, "job %lld (%s) succeeded", (long long)r->row.id, r->row.op_id);
	run_free(r);
}

/* finish_pages - all pages in: the JSON Lines output (top-level jobs), then success. */
static void finish_pages(struct run *r)
{
	struct daemon *d = r->d;
	struct strbuf path = STRBUF_INIT, err = STRBUF_INIT;
	int64_t items = r->row.items_done;
	if (r->row.parent_id == 0 && !r->job.no_output) {
		if (r->job.output)
			sb_adds(&path, r->job.output);
		else
			default_output(r, &path);
		if (write_pages_output(d, r->row.id, &r->row.id, 1, path.buf, &items, &err) < 0) {
			char *ej = error_json("OutputError", err.buf, 0);
			end_job(r, JS_FAILED, ej, "cannot write the output file");
			free(ej);
			goto out;
		}
	}
	char *summary = paginate_result_summary(r->row.pages_done, items, r->row.total_entries,
						path.len ? path.buf : NULL);
	succeed_job(r, summary, path.len ? path.buf : NULL);
	free(summary);
out:
	sb_release(&path);
	sb_release(&err);
}

/* --- fan-out ------------------------------------------------------------------- */

/* create_children - one child job per time window, each paginated. */
static int create_children(struct run *r, int64_t now)
{
	struct daemon *d = r->d;
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(r->job.params, "startTime");
	const cJSON *en = cJSON_GetObjectItemCaseSensitive(r->job.params, "endTime");
	int64_t start, end;
	if (!cJSON_IsString(st) || !cJSON_IsString(en) || parse_iso8601(st->valuestring, &start) ||
	    parse_iso8601(en->valuestring, &end))
		return -1;
	struct time_window *w = xcalloc(JOB_MAX_SPLIT_WINDOWS, sizeof(*w));
	int n = paginate_split(start, end, r->job.split_ms, w, JOB_MAX_SPLIT_WINDOWS);
	int rc = n > 0 ? 0 : -1;
	txn(d);
	for (int i = 0; i < n && rc == 0; i++) {
		struct job child = r->job; /* shallow: only params, key, output, split change */
		char a[48], b[48];
		format_iso8601(w[i].start_ms, a);
		format_iso8601(w[i].end_ms, b);
		child.params = cJSON_Duplicate(r->job.params, 1);
		cJSON_ReplaceItemInObjectCaseSensitive(child.params, "startTime", cJSON_CreateString(a));
		cJSON_ReplaceItemInObjectCaseSensitive(child.params, "endTime", cJSON_CreateString(b));
		child.key = NULL;
		child.output = NULL;
		child.split_ms = 0;
		if (child.paginate == PAGINATE_NONE)
			child.paginate = PAGINATE_ALL;
		char *spec = job_to_json(&child);
		cJSON_Delete(child.params);
		struct job_new nj = {
			.op_id = r->row.op_id,
			.spec_json = spec,
			.workspace = r->job.workspace,
			.priority = r->job.priority,
			.not_before_ms = now,
			.parent_id = r->row.id,
			.max_attempts = policy_of(d, &r->job).max_attempts,
			.paginated = 1,
		};
		int64_t id;
		if (store_job_insert(d->st, &nj, now, &id) != STORE_INSERTED)
			rc = -1;
		free(spec);
	}
	free(w);
	return rc < 0 ? -1 : n;
}

/* children_reasons - why children did not succeed, for the parent's error. */
static char *children_reasons(struct daemon *d, const int64_t *ids, size_t n)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *errs = cJSON_AddArrayToObject(doc, "errors");
	for (size_t i = 0; i < n; i++) {
		struct job_row c;
		if (store_get(d->st, ids[i], &c) != 0)
			continue;
		if (c.state != JS_SUCCEEDED) {
			cJSON *show = store_show_json(d->st, ids[i]);
			cJSON *e = cJSON_CreateObject();
			char msg[96];
			snprintf(msg, sizeof(msg), "child job %lld ended %s", (long long)c.id,
				 job_state_name(c.state));
			cJSON_AddStringToObject(e, "type", "ChildFailed");
			cJSON_AddStringToObject(e, "message", msg);
			cJSON *cerr = show ? cJSON_DetachItemFromObject(show, "error") : NULL;
			if (cerr)
				cJSON_AddItemToObject(e, "data", cerr);
			cJSON_AddItemToArray(errs, e);
			cJSON_Delete(show);
		}
		job_row_release(&c);
	}
	char *text = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	return text;
}

/* run_parent - a fan-out job: create children once, then wait for them and merge. */
static void run_parent(struct run *r)
{
	struct daemon *d = r->d;
	int64_t now = clock_wall_ms();
	int64_t *ids = NULL;
	size_t n = 0;
	if (store_children_ids(d->st, r->row.id, &ids, &n) < 0) {
		wait_job(r, now + PARENT_POLL_MS, 0, "cannot read children; trying again");
		return;
	}
	if (n == 0) {
		int made = create_children(r, now);
		if (made < 0) {
			char *ej = error_json("SplitError", "cannot split the time range", 0);
			end_job(r, JS_FAILED, ej, "cannot split the time range");
			free(ej);
		} else {
			logmsg(LOG_INFO, "job %lld split into %d child jobs", (long long)r->row.id,
			       made);
			wait_job(r, now + PARENT_POLL_MS, 0, "waiting for its child jobs");
		}
		free(ids);
		return;
	}
	struct child_counts c;
	if (store_children_counts(d->st, r->row.id, &c) < 0 || c.active > 0) {
		wait_job(r, now + PARENT_POLL_MS, 0, "waiting for its child jobs");
		free(ids);
		return;
	}
	if (c.succeeded != c.total) {
		char *ej = children_reasons(d, ids, n);
		end_job(r, JS_FAILED, ej, "some child jobs did not succeed");
		free(ej);
		free(ids);
		return;
	}
	struct strbuf path = STRBUF_INIT, err = STRBUF_INIT;
	if (r->job.output)
		sb_adds(&path, r->job.output);
	else
		default_output(r, &path);
	int64_t items = 0;
	if (r->job.no_output) {
		struct strbuf sum = STRBUF_INIT;
		sb_addf(&sum, "{\"children\":%zu,\"output\":null}", n);
		succeed_job(r, sum.buf, NULL);
		sb_release(&sum);
	} else if (write_pages_output(d, r->row.id, ids, n, path.buf, &items, &err) < 0) {
		char *ej = error_json("OutputError", err.buf, 0);
		end_job(r, JS_FAILED, ej, "cannot write the merged output");
		free(ej);
	} else {
		struct strbuf sum = STRBUF_INIT;
		sb_addf(&sum, "{\"children\":%zu,\"items\":%lld,\"output\":", n, (long long)items);
		sb_add_json_string(&sum, path.buf);
		sb_addch(&sum, '}');
		succeed_job(r, sum.buf, path.buf);
		sb_release(&sum);
	}
	sb_release(&path);
	sb_release(&err);
	free(ids);
}

/* --- requests -------------------------------------------------------------------- */

/* TOO_DEEP - why a 2xx body json_too_deep flags is refused (STR: a macro's value as a
 * string literal). */
#define STR_(x) #x
#define STR(x) STR_(x)
#define TOO_DEEP "response body nests deeper than " STR(JSON_MAX_DEPTH) " levels (the limit)"

/* body_error - the response body when it is JSON (the API's envelope), else a made one;
 * a redirect (never followed) says where it pointed. */
static char *body_error(const struct http_response *resp, const char *fallback_type)
{
	char msg[700];
	if (resp->error == HTTP_OK && resp->status >= 300 && resp->status <= 399) {
		int n = snprintf(msg, sizeof(msg), "HTTP %d: redirects are not followed",
				 resp->status);
		if (resp->location[0] && n > 0)
			snprintf(msg + n, sizeof(msg) - (size_t)n, " (Location: %s)", resp->location);
		return error_json(fallback_type, msg, resp->status);
	}
	cJSON *j = cJSON_ParseWithLength(resp->body.buf, resp->body.len);
	if (j && cJSON_IsObject(j)) {
		char *text = cJSON_PrintUnformatted(j);
		cJSON_Delete(j);
		return text;
	}
	cJSON_Delete(j);
	if (resp->error != HTTP_OK)
		snprintf(msg, sizeof(msg), "%s", resp->errmsg);
	else
		snprintf(msg, sizeof(msg), "HTTP %d with a body that is not JSON", resp->status);
	return error_json(fallback_type, msg, resp->status);
}

/* add_capped - s escaped to one line (log_escape), cut to max bytes with "...". */
static void add_capped(struct strbuf *out, const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n <= max) {
		log_escape(out, s, n);
		return;
	}
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--; /* not inside a UTF-8 sequence */
	log_escape(out, s, max);
	sb_adds(out, "...");
}

/* api_answer - what the API said, in one line for logs and reasons: "HTTP 404 NotFound:
 * source metadata X not found (field metadataId)", from err_json (body_error's: the
 * API's envelope, or one made for a transport error or a body that is not one). The
 * body is redacted already (http.c); control characters are escaped, long texts cut. */
static void api_answer(struct strbuf *out, int status, const char *err_json)
{
	char prefix[32] = "";
	if (status > 0)
		snprintf(prefix, sizeof(prefix), "HTTP %d", status);
	cJSON *j = err_json ? cJSON_Parse(err_json) : NULL;
	const cJSON *errors = cJSON_GetObjectItemCaseSensitive(j, "errors");
	const cJSON *e = cJSON_IsArray(errors) ? cJSON_GetArrayItem(errors, 0) : j;
	const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "type"));
	const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "message"));
	const char *field = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "field"));
	if (!msg)
		msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "error"));
	size_t start = out->len;
	if (msg && prefix[0] && strncmp(msg, prefix, strlen(prefix)) == 0) {
		add_capped(out, msg, 400); /* our own text, which names the status already */
	} else {
		sb_adds(out, prefix);
		/* HttpError is the type body_error gives what is not the API's envelope */
		if (type && *type && strcmp(type, "HttpError") != 0) {
			if (out->len > start)
				sb_addch(out, ' ');
			add_capped(out, type, 64);
		}
		if (msg && *msg) {
			if (out->len > start)
				sb_adds(out, ": ");
			add_capped(out, msg, 400);
		}
	}
	if (field && *field) {
		sb_adds(out, " (field ");
		add_capped(out, field, 64);
		sb_addch(out, ')');
	}
	int more = cJSON_IsArray(errors) ? cJSON_GetArraySize(errors) - 1 : 0;
	if (more > 0)
		sb_addf(out, " (and %d more error%s)", more, more > 1 ? "s" : "");
	if (out->len == start)
		sb_adds(out, "no answer");
	cJSON_Delete(j);
}

/* add_last_answer - "; the last answer: HTTP 429 TooManyRequests: ..." for a job that
 * ends without an answer in hand (held by a rate limit until its max age passed), from
 * its last recorded attempt; nothing when it has none. */
static void add_last_answer(struct run *r, struct strbuf *out)
{
	int status;
	char *error, *body;
	if (r->row.tries == 0 || store_last_attempt(r->d->st, r->row.id, &status, &error, &body))
		return;
	cJSON *j = body ? cJSON_Parse(body) : NULL;
	char *ej = cJSON_IsObject(j) ? NULL : error_json("HttpError", error ? error : "", status);
	if (status || error) {
		sb_adds(out, "; the last answer: ");
		api_answer(out, status, ej ? ej : body);
	}
	cJSON_Delete(j);
	free(ej);
	free(error);
	free(body);
}

/* on_page - one page in: record it, then fetch the next or finish. */
static void on_page(struct run *r, const cJSON *body)
{
	struct daemon *d = r->d;
	struct page_result pr;
	const char *why = NULL;
	if (paginate_extract(r->job.op, body, &pr, &why) < 0) {
		char *ej = error_json("BadResponse", why, 0);
		end_job(r, JS_FAILED, ej, why);
		free(ej);
		return;
	}
	char *items = cJSON_PrintUnformatted(pr.items);
	int64_t nitems = cJSON_GetArraySize(pr.items);
	int page_no = r->row.pages_done + 1;
	txn(d);
	if (store_page_record(d->st, r->row.id, page_no, r->row.cursor, pr.next, items, nitems,
			      pr.total, clock_wall_ms()) < 0) {
		free(items);
		write_failed(d, r->row.id, "record a page");
		run_free(r);
		return;
	}
	free(items);
	free(r->row.cursor);
	r->row.cursor = pr.next ? xstrdup(pr.next) : NULL;
	r->row.pages_done = page_no;
	r->row.items_done += nitems;
	r->row.total_entries = pr.total;
	r->row.attempts = 0; /* a page that arrived resets the attempts of the next */
	enum page_step step = paginate_step(r->row.cursor, r->row.pages_done, r->job.max_pages,
					    d->cfg->max_pages, 0);
	int seen = 0;
	if (step != PAGE_DONE) {
		/* this page is recorded: its own cursor is among those looked up */
		seen = store_page_cursor_seen(d->st, r->row.id, r->row.cursor);
		if (seen < 0) {
			logmsg(LOG_ERROR, "cannot check the cursors of job %lld: %s",
			       (long long)r->row.id, store_errmsg(d->st));
			seen = 0;
		}
		step = paginate_step(r->row.cursor, r->row.pages_done, r->job.max_pages,
				     d->cfg->max_pages, seen);
	}
	if (step == PAGE_REPEAT || step == PAGE_TOO_MANY) {
		struct strbuf reason = STRBUF_INIT;
		paginate_step_reason(step, r->row.cursor, r->row.pages_done, d->cfg->max_pages,
				     seen, &reason);
		char *ej = error_json(step == PAGE_REPEAT ? "CursorRepeated" : "TooManyPages",
				      reason.buf, 0);
		end_job(r, JS_FAILED, ej, reason.buf);
		free(ej);
		sb_release(&reason);
		return;
	}
	if (step == PAGE_NEXT && !d->stopping) {
		r->hold_until_ms = 0;
		send_or_hold(r);
	} else if (step == PAGE_NEXT) {
		txn(d);
		if (store_job_requeue(d->st, r->row.id, "daemon stopping; resumes at the next page",
				      clock_wall_ms()) < 0)
			write_failed(d, r->row.id, "requeue");
		run_free(r);
	} else {
		finish_pages(r);
	}
}

/* result_text - the response's data member as text to keep: its span of the raw body
 * (no re-printing; found while checking the body when there is no tree, len 0 if not),
 * else printed from the tree (parsed here when there is none yet); "null" when there is
 * no data member. */
static char *result_text(const struct strbuf *raw, const cJSON *body, size_t off, size_t len)
{
	if (body && json_member_span(raw->buf, raw->len, "data", &off, &len) < 0)
		len = 0;
	if (len)
		return xstrndup(raw->buf + off, len);
	cJSON *parsed = body ? NULL : cJSON_ParseWithLength(raw->buf, raw->len);
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(body ? body : parsed, "data");
	char *text = data ? cJSON_PrintUnformatted(data) : xstrdup("null");
	cJSON_Delete(parsed);
	return text;
}

/* needs_tree - whether a successful response is read as a cJSON tree: pages are taken
 * apart and output files pretty-printed; a result kept in the store only is stored as
 * the text it came in, so checking that text is enough. */
static int needs_tree(const struct run *r)
{
	return multi_page(r) || !r->job.no_output;
}

/* on_success - a 2xx with a JSON object body (raw is its text; body its tree when
 * needs_tree, else NULL, and then off and len the data member's span, len 0 if unknown). */
static void on_success(struct run *r, cJSON *body, const struct strbuf *raw, size_t off,
                       size_t len)
{
	if (multi_page(r)) {
		on_page(r, body);
		return;
	}
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(body, "data");
	struct strbuf where = STRBUF_INIT, err = STRBUF_INIT;
	char *text = result_text(raw, body, off, len);
	if (r->job.no_output) {
		succeed_job(r, text, NULL);
	} else if (write_result_output(r, data, &where, &err) < 0) {
		char *ej = error_json("OutputError", err.buf, 0);
		/* the API call succeeded: keep its data, so a retry rewrites the output from it
		 * and never sends the mutation again */
		txn(r->d);
		if (store_job_set_result(r->d->st, r->row.id, text) < 0)
			write_failed(r->d, r->row.id, "keep the result");
		end_job(r, JS_FAILED, ej, "the request succeeded but the output file could not be "
			"written; retry the job to write it from the stored result");
		free(ej);
	} else {
		succeed_job(r, text, where.buf);
	}
	free(text);
	sb_release(&where);
	sb_release(&err);
}

/* limiting_bucket - the bucket a 429 is charged to: the operation's own, when it has a
 * documented limit, else the workspace's. */
static struct rl_bucket *limiting_bucket(const struct run *r)
{
	return r->op_bucket ? r->op_bucket : r->ws_bucket;
}

/* hold_bucket - a 429 holds the bucket that limited us. */
static void hold_bucket(struct run *r, int64_t until)
{
	rl_hold(limiting_bucket(r), until);
	r->d->buckets_dirty = 1;
}

/* server_wait - a wait the server asked of the run's requests on bucket b, cut to
 * max_server_wait; a cut is logged once per hold of the bucket, not once per job. */
static int64_t server_wait(struct run *r, struct rl_bucket *b, int64_t asked, const char *source,
			   int64_t now)
{
	int warn;
	int64_t wait = rl_cap_wait(b, asked, r->d->cfg->max_server_wait_ms, now, &warn);
	if (warn) {
		char want[32], cap[32];
		retry_format_duration(asked, want);
		retry_format_duration(wait, cap);
		logmsg(LOG_WARN, "server asked job %lld (%s) to wait %s (%s); waiting %s, the "
		       "max_server_wait", (long long)r->row.id, r->row.op_id, want, source, cap);
	}
	return wait;
}

/* run_mutates - whether the request in flight may change state: its method, as the HTTP
 * module judges it (the catalog marks raw as mutating whatever method it is given). */
static int run_mutates(const struct run *r)
{
	return http_method_mutates(r->method);
}

/* after_lost_answer - the reason for a mutation refused with 409 or 404 after an attempt
 * whose answer was lost: that earlier request was most likely applied (a create that
 * now conflicts, a delete of what is gone), which the bare status would hide. */
static const char *after_lost_answer(struct run *r, int status, const char *reason, char *buf,
				     size_t size)
{
	if ((status != 409 && status != 404) || !run_mutates(r) || r->row.tries < 2 ||
	    store_count_lost_answers(r->d->st, r->row.id) <= 0)
		return reason;
	snprintf(buf, size, "HTTP %d after an earlier attempt whose answer was lost: that "
		 "request was probably applied (see the attempts); not retried", status);
	return buf;
}

/* record_response - an answer, with the iteration's transaction open: classify, record,
 * decide. */
static void record_response(struct run *r, struct http_response *resp)
{
	struct daemon *d = r->d;
	make_room(d);
	int64_t now = clock_wall_ms();
	enum outcome o;
	cJSON *body = NULL;
	size_t data_off = 0, data_len = 0;
	const char *errmsg = resp->errmsg[0] ? resp->errmsg : NULL;
	if (resp->error == HTTP_ERR_CANCELLED) {
		o = OUTCOME_CANCELLED;
	} else {
		o = retry_classify(resp->status, resp->error != HTTP_OK, resp->request_sent,
				   run_mutates(r));
		if (o == OUTCOME_SUCCESS) {
			int is_object;
			if (needs_tree(r)) {
				body = cJSON_ParseWithLength(resp->body.buf, resp->body.len);
				is_object = cJSON_IsObject(body);
			} else {
				is_object = json_object_check(resp->body.buf, resp->body.len, "data",
							      &data_off, &data_len);
			}
			if (!is_object) {
				o = run_mutates(r) ? OUTCOME_UNKNOWN : OUTCOME_RETRY;
				errmsg = json_too_deep(resp->body.buf, resp->body.len)
						 ? TOO_DEEP : "response body is not JSON";
			}
		}
	}
	struct rl_bucket *limited = limiting_bucket(r);
	/* "Retry-After: 0" or a date gone by is no wait: a 429 always waits, longer while
	 * they continue. Counted before this answer's own X-RateLimit-Reset holds the bucket. */
	int64_t least = o == OUTCOME_RATE_LIMITED
				? rl_note_429(limited, now, d->cfg->max_server_wait_ms)
				: 0;
	if (resp->rl_remaining >= 0 || resp->rl_reset[0]) {
		int64_t reset = rl_reset_ms(resp->rl_reset, now);
		if (resp->rl_remaining == 0 && reset > now)
			reset = now + server_wait(r, r->ws_bucket, reset - now, "X-RateLimit-Reset",
						  now);
		rl_observe(r->ws_bucket, resp->rl_remaining, reset, now);
		d->buckets_dirty = 1;
	}
	int64_t floor_ms = -1;
	if (o == OUTCOME_RATE_LIMITED) {
		int64_t ra = retry_after_ms(resp->retry_after, now);
		int64_t mb = retry_ms_before_next(resp->body.buf, resp->body.len);
		if (ra >= 0 || mb >= 0)
			floor_ms = server_wait(r, limited, ra > mb ? ra : mb,
					       ra > mb ? "Retry-After" : "msBeforeNext", now);
		if (floor_ms < least)
			floor_ms = least;
		hold_bucket(r, now + floor_ms);
	} else {
		if (o == OUTCOME_RETRY || o == OUTCOME_UNKNOWN) {
			int64_t ra = retry_after_ms(resp->retry_after, now);
			if (ra >= 0)
				floor_ms = server_wait(r, limited, ra, "Retry-After", now);
		}
		if (resp->error == HTTP_OK && resp->status > 0) {
			rl_note_answer(r->ws_bucket);
			if (r->op_bucket)
				rl_note_answer(r->op_bucket);
		}
	}
	const char *outcome = (o == OUTCOME_CANCELLED && r->interrupt)
				      ? (run_mutates(r) ? "unknown" : "interrupted")
				      : outcome_name(o);
	char status_msg[64];
	if (!errmsg && resp->status >= 300) {
		snprintf(status_msg, sizeof(status_msg), "HTTP %d", resp->status);
		errmsg = status_msg;
	}
	/* a non-2xx answer's body says why (a proxy's violations, a gateway's message); a
	 * 2xx keeps its result elsewhere, so the success path stores nothing more */
	int keep_body = resp->status > 0 && (resp->status < 200 || resp->status > 299);
	struct attempt_end ae = {
		.body = keep_body ? resp->body.buf : NULL,
		.body_len = keep_body ? resp->body.len : 0,
		.http_status = resp->status,
		.error = errmsg,
		.outcome = outcome,
		.duration_ms = resp->duration_ms,
		.retry_after_ms = floor_ms,
		.rl_remaining = resp->rl_remaining,
		.rl_reset = resp->rl_reset[0] ? resp->rl_reset : NULL,
		.request = r->request.buf,
	};
	txn(d);
	if (store_attempt_end(d->st, r->attempt_id, &ae) < 0)
		write_failed(d, r->row.id, "record an attempt");
	if (o == OUTCOME_CANCELLED) {
		if (r->interrupt) {
			if (store_job_requeue(d->st, r->row.id,
					      "daemon stopped during the request; will be sent again",
					      now) < 0)
				write_failed(d, r->row.id, "requeue");
			run_free(r);
		} else {
			end_job(r, JS_CANCELLED, NULL, "cancelled by the user during a request");
		}
		cJSON_Delete(body);
		return;
	}
	struct retry_policy p = policy_of(d, &r->job);
	struct retry_decision dec;
	retry_decide(&p, o, r->row.attempts, r->row.created_ms, now, floor_ms,
		     r->job.on_unknown == ON_UNKNOWN_RETRY, rng_next(&d->rng), &dec);
	if (dec.action == RETRY_SUCCEED && !multi_page(r))
		r->count_on_end = dec.count_attempt; /* folded into the success (or end) update */
	else if (dec.action != RETRY_WAIT && dec.count_attempt &&
		 store_job_count_attempt(d->st, r->row.id) < 0)
		write_failed(d, r->row.id, "count an attempt");
	if (dec.action == RETRY_SUCCEED) {
		on_success(r, body, &resp->body, data_off, data_len);
	} else if (dec.action == RETRY_WAIT) {
		int failures = r->row.attempts + 1; /* in a row: a success or a page resets them */
		if (dec.count_attempt && failures >= RETRY_WARN_FAILURES) {
			/* failing again and again: the API's answer, at warn level */
			char *ej = body_error(resp, o == OUTCOME_UNKNOWN ? "UnknownOutcome"
									 : "HttpError");
			struct strbuf answer = STRBUF_INIT;
			api_answer(&answer, resp->status, ej);
			logmsg(LOG_WARN,
			       "job %lld (%s): attempt %d failed: %s; %s; next try in %lld ms",
			       (long long)r->row.id, r->row.op_id, failures, answer.buf, dec.reason,
			       (long long)(dec.next_run_ms - now));
			sb_release(&answer);
			free(ej);
		} else {
			logmsg(LOG_DEBUG, "job %lld: %s; next try in %lld ms", (long long)r->row.id,
			       dec.reason, (long long)(dec.next_run_ms - now));
		}
		wait_job(r, dec.next_run_ms, dec.count_attempt, dec.reason);
	} else {
		char *ej = body_error(resp, o == OUTCOME_UNKNOWN ? "UnknownOutcome" : "HttpError");
		char why[512];
		const char *after =
			after_lost_answer(r, resp->status, dec.reason, why, sizeof(why));
		/* the reason (logged, listed, in the history) carries the API's own answer */
		struct strbuf reason = STRBUF_INIT;
		if (after == why) { /* names the status itself */
			sb_addf(&reason, "%s; the API said: ", after);
			api_answer(&reason, 0, ej);
		} else {
			api_answer(&reason, resp->status, ej);
			sb_addf(&reason, "; %s", after);
		}
		end_job(r, dec.action == RETRY_DEAD ? JS_DEAD : JS_FAILED, ej, reason.buf);
		sb_release(&reason);
		free(ej);
	}
	cJSON_Delete(body);
}

/* hold_response - keeps an answer that cannot be recorded yet (the store is locked by
 * another process): it is recorded, in arrival order, once the lock is free. Losing it
 * would mean sending a mutation again after a restart. */
static void hold_response(struct daemon *d, struct run *r, struct http_response *resp)
{
	r->held = xmalloc(sizeof(*r->held));
	*r->held = *resp;
	sb_init(&resp->body, 0); /* the body now belongs to the held copy */
	r->held_next = NULL;
	if (d->held_tail)
		d->held_tail->held_next = r;
	else
		d->held_head = r;
	d->held_tail = r;
	d->nheld++;
}

/* record_held - the answers held while the store was locked, oldest first. */
static void record_held(struct daemon *d)
{
	while (d->held_head) {
		struct run *r = d->held_head;
		struct http_response *resp = r->held;
		d->held_head = r->held_next;
		if (!d->held_head)
			d->held_tail = NULL;
		d->nheld--;
		r->held = NULL;
		record_response(r, resp);
		sb_release(&resp->body);
		free(resp);
	}
}

/* on_response - the completion callback: recorded now, or held while the store is
 * locked by another process (and behind answers already held, to keep their order). */
static void on_response(struct http_response *resp, void *arg)
{
	struct run *r = arg;
	struct daemon *d = r->d;
	r->xfer = NULL;
	d->ninflight--;
	d->requests++;
	if (d->held_head || txn_try(d) < 0) {
		hold_response(d, r, resp);
		return;
	}
	record_response(r, resp);
}

/* request_line - "METHOD /path?query" for the attempt row: no host, no token. */
static void request_line(struct strbuf *out, const char *method, const char *url,
			 const char *base)
{
	size_t blen = strlen(base);
	sb_reset(out);
	sb_adds(out, method);
	sb_addch(out, ' ');
	sb_adds(out, strncmp(url, base, blen) == 0 ? url + blen : url);
}

/* send_now - builds the request, records the attempt, submits it. */
static void send_now(struct run *r, const struct token *tok)
{
	struct daemon *d = r->d;
	const char *base = config_base_url(d->cfg, r->job.region);
	struct built_request req;
	struct strbuf err = STRBUF_INIT;
	built_request_init(&req);
	int count = r->job.page_count;
	if (catalog_build(r->job.op, r->job.params, base, multi_page(r) ? r->row.cursor : NULL,
			  multi_page(r) && count == 0 && !cJSON_GetObjectItemCaseSensitive(
								 r->job.params, "pagination")
				  ? PAGINATE_DEFAULT_COUNT
				  : count,
			  &req, &err) < 0) {
		char *ej = error_json("BuildError", err.buf, 0);
		end_job(r, JS_FAILED, ej, "cannot build the request");
		free(ej);
		goto out;
	}
	request_line(&r->request, req.method, req.url.buf, base);
	r->method = req.method;
	txn(d);
	if (store_attempt_begin(d->st, r->row.id, ++r->row.tries, clock_wall_ms(), r->request.buf,
				&r->attempt_id) < 0) {
		write_failed(d, r->row.id, "record an attempt");
		run_free(r); /* nothing is sent: the commit refuses, the job runs after a restart */
		goto out;
	}
	struct http_request hr = {
		.method = req.method,
		.url = req.url.buf,
		.body = req.has_body ? req.body.buf : NULL,
		.body_len = req.has_body ? req.body.len : 0,
		.media_type = req.media_type,
		.bearer_token = tok->value.buf,
	};
	if (http_submit(d->http, &hr, on_response, r, &r->xfer) < 0) {
		struct attempt_end ae = {.outcome = "retry", .error = "request refused locally",
					 .retry_after_ms = -1, .rl_remaining = -1,
					 .request = r->request.buf};
		if (store_attempt_end(d->st, r->attempt_id, &ae) < 0)
			write_failed(d, r->row.id, "record an attempt");
		logmsg(LOG_WARN, "job %lld: the request could not be started; trying again in 1 s",
		       (long long)r->row.id);
		wait_job(r, clock_wall_ms() + 1000, 0, "the request could not be started");
		goto out;
	}
	d->ninflight++;
out:
	built_request_release(&req);
	sb_release(&err);
}

/* send_or_hold - admission: the in-flight cap and both rate-limit buckets. */
static void send_or_hold(struct run *r)
{
	struct daemon *d = r->d;
	int64_t now = clock_wall_ms();
	const struct workspace_cfg *w = config_workspace(d->cfg, r->job.workspace);
	struct token *tok = token_for(d, r->job.workspace);
	if (!tok->ok) {
		/* not the job's fault: it waits, burning no attempt, for the SIGHUP that
		 * brings a token (token_for said why, once, at error level) */
		struct strbuf why = STRBUF_INIT;
		sb_addf(&why, "%s for workspace %s: %s (fix it, then send SIGHUP)", TOKEN_WAIT_REASON,
			r->job.workspace, tok->error);
		wait_job(r, now + TOKEN_RECHECK_MS, 0, why.buf);
		sb_release(&why);
		return;
	}
	double rate = w && w->rate_per_sec > 0 ? w->rate_per_sec : d->cfg->rate_per_sec;
	double burst = w && w->burst > 0 ? w->burst : d->cfg->burst;
	char key[256];
	snprintf(key, sizeof(key), "ws:%s", r->job.workspace);
	r->ws_bucket = rl_bucket_get(d->rl, key, rate, burst, now);
	r->op_bucket = NULL;
	if (d->cfg->endpoint_limits && r->job.op->rate_per_min > 0) {
		snprintf(key, sizeof(key), "ws:%s/op:%s", r->job.workspace,
			 catalog_rate_group(r->job.op));
		/* a tenth of the minute's allowance may go at once: 6 for 60/min, 1 for 5/min */
		double op_burst = r->job.op->rate_per_min / 10 > 1 ? r->job.op->rate_per_min / 10 : 1;
		r->op_bucket = rl_bucket_get(d->rl, key, r->job.op->rate_per_min / 60.0, op_burst, now);
	}
	int64_t wait = rl_wait_ms(r->ws_bucket, now);
	if (r->op_bucket) {
		int64_t w2 = rl_wait_ms(r->op_bucket, now);
		wait = w2 > wait ? w2 : wait;
	}
	if (wait > 0) {
		/* held: until the limit lets it go, or its max age has come (then dead) */
		struct retry_policy p = policy_of(d, &r->job);
		struct retry_decision dec;
		retry_limit_wait(&p, r->row.created_ms, now, wait, &dec);
		if (dec.action == RETRY_DEAD) {
			char *ej = error_json("MaxAgePassed", dec.reason, 0);
			struct strbuf reason = STRBUF_INIT;
			sb_adds(&reason, dec.reason);
			add_last_answer(r, &reason);
			end_job(r, JS_DEAD, ej, reason.buf);
			sb_release(&reason);
			free(ej);
		} else if (wait > LOCAL_HOLD_MAX_MS) {
			wait_job(r, dec.next_run_ms, 0, LIMIT_WAIT_REASON);
		} else {
			r->hold_until_ms = dec.next_run_ms;
		}
		return;
	}
	if (http_capacity(d->http) <= 0) {
		r->hold_until_ms = now + 1;
		return;
	}
	rl_take(r->ws_bucket, now);
	if (r->op_bucket)
		rl_take(r->op_bucket, now);
	d->buckets_dirty = 1;
	send_now(r, tok);
}

/* rewrite_stored_result - a job whose request already succeeded (its output failed):
 * write the output from the stored data, send nothing. 1 if it was such a job. */
static int rewrite_stored_result(struct run *r)
{
	char *stored = NULL;
	if (store_job_result(r->d->st, r->row.id, &stored) < 0 || !stored)
		return 0;
	cJSON *data = cJSON_Parse(stored);
	struct strbuf where = STRBUF_INIT, err = STRBUF_INIT;
	if (write_result_output(r, data, &where, &err) < 0) {
		char *ej = error_json("OutputError", err.buf, 0);
		end_job(r, JS_FAILED, ej, "the output file could not be written");
		free(ej);
	} else {
		logmsg(LOG_INFO, "job %lld: output written from the stored result; the request "
		       "had already succeeded and is not sent again", (long long)r->row.id);
		succeed_job(r, stored, where.buf);
	}
	cJSON_Delete(data);
	free(stored);
	sb_release(&where);
	sb_release(&err);
	return 1;
}

/* start_run - a claimed job: parse its spec and take the path its kind needs. */
static void start_run(struct daemon *d, struct job_row *row)
{
	struct run *r = xcalloc(1, sizeof(*r));
	r->d = d;
	r->row = *row;
	sb_init(&r->request, 0);
	run_link(d, r);
	if (job_from_json(r->row.spec_json, &r->job) < 0) {
		char *ej = error_json("BadSpec", "the stored job spec cannot be read", 0);
		end_job(r, JS_FAILED, ej, "the stored job spec cannot be read");
		free(ej);
		return;
	}
	r->job_parsed = 1;
	if (r->row.cancel_requested) {
		end_job(r, JS_CANCELLED, NULL, "cancelled by the user");
		return;
	}
	if (r->job.split_ms && r->row.parent_id == 0) {
		run_parent(r);
		return;
	}
	if (!multi_page(r) && r->row.has_result && rewrite_stored_result(r))
		return;
	if (multi_page(r) && r->row.pages_done > 0 &&
	    !paginate_more(r->row.cursor, r->row.pages_done, r->job.max_pages)) {
		finish_pages(r); /* every page was recorded before a restart */
		return;
	}
	send_or_hold(r);
}

/* dispatch - held runs whose wait is over, then newly due jobs, while there is room. */
static void dispatch(struct daemon *d)
{
	if (d->stopping)
		return;
	int64_t now = clock_wall_ms();
	for (struct run *r = d->runs, *next; r; r = next) {
		next = r->next;
		if (!r->xfer && r->hold_until_ms && r->hold_until_ms <= now) {
			r->hold_until_ms = 0;
			send_or_hold(r);
		}
	}
	struct job_row rows[64];
	for (;;) {
		int room = d->cfg->max_in_flight - d->nruns;
		if (room <= 0 || http_capacity(d->http) <= 0)
			break;
		if (room > (int)ARRAY_SIZE(rows))
			room = (int)ARRAY_SIZE(rows);
		txn(d);
		int n = store_claim_due(d->st, now, rows, room);
		if (n < 0) {
			logmsg(LOG_ERROR, "cannot claim jobs: %s", store_errmsg(d->st));
			break;
		}
		for (int i = 0; i < n; i++) {
			make_room(d);
			start_run(d, &rows[i]);
		}
		if (n < room)
			break;
	}
}

/* --- control files ----------------------------------------------------------------- */

/* control_ctx - what control.c's hooks need: the daemon, and the request they report on. */
struct control_ctx {
	struct daemon *d;
	const struct control_request *req;
};

/* abort_running - control.c's hook for a cancelled job that is running: abort its
 * request in flight (on_response then ends it cancelled), or end a run that is held. */
static void abort_running(int64_t id, void *arg)
{
	struct daemon *d = ((struct control_ctx *)arg)->d;
	struct run *r = run_find(d, id);
	if (r && r->xfer)
		http_cancel(d->http, r->xfer);
	else if (r)
		end_job(r, JS_CANCELLED, NULL, "cancelled by the user");
	else if (store_job_end(d->st, id, JS_CANCELLED, NULL, "cancelled by the user",
			       clock_wall_ms()) < 0)
		write_failed(d, id, "record the cancel");
}

/* log_outcome - control.c's report: one log line per requested job. */
static void log_outcome(int64_t id, enum control_outcome o, size_t nchildren, const char *why,
			void *arg)
{
	int cancel = ((struct control_ctx *)arg)->req->action == CONTROL_CANCEL;
	if (o == CONTROL_DONE || o == CONTROL_ABORTED)
		logmsg(LOG_INFO, "job %lld %s%s, with %zu child job(s)", (long long)id,
		       cancel ? "cancelled" : "queued again",
		       o == CONTROL_ABORTED ? " (its request aborted)" : "", nchildren);
	else
		logmsg(LOG_WARN, "job %lld cannot be %s: %s", (long long)id,
		       cancel ? "cancelled" : "retried", why ? why : "");
}

/* apply_control - a control file from the CLI, carried out by control.c within the
 * loop's transaction. */
static void apply_control(struct daemon *d, const char *text)
{
	struct control_request req;
	struct strbuf why = STRBUF_INIT;
	if (control_request_parse(text, &req, &why) < 0) {
		logmsg(LOG_WARN, "ignoring a control file: %s", why.buf);
		sb_release(&why);
		return;
	}
	sb_release(&why);
	struct control_ctx ctx = {d, &req};
	struct control_hooks hooks = {abort_running, log_outcome, &ctx};
	txn(d);
	if (control_apply(d->st, &req, clock_wall_ms(), &hooks) < 0)
		write_failed(d, 0, req.action == CONTROL_CANCEL ? "cancel jobs" : "retry jobs");
	control_request_release(&req);
}

/* control_one - one control file: read, applied, removed. */
static int control_one(const char *name, void *arg)
{
	struct daemon *d = arg;
	struct strbuf text = STRBUF_INIT;
	if (spool_control_read(&d->sp, name, &text) == 0)
		apply_control(d, text.buf);
	sb_release(&text);
	spool_control_done(&d->sp, name);
	return 0;
}

/* --- the loop ------------------------------------------------------------------ */

static void save_bucket(const struct rl_bucket *b, void *arg)
{
	struct daemon *d = arg;
	double tokens;
	int64_t updated, hold;
	rl_bucket_state(b, &tokens, &updated, &hold);
	if (store_bucket_save(d->st, rl_bucket_key(b), tokens, updated, hold) < 0)
		write_failed(d, 0, "save a rate-limit bucket");
}

struct restoring {
	struct daemon *d;
	int64_t now;
	int cut;
};

/* restore_bucket - a saved bucket; a hold past max_server_wait from now is cut to it (it
 * was saved by a run under a larger max_server_wait, or by one that had none). */
static void restore_bucket(const char *key, double tokens, int64_t updated, int64_t hold,
			   void *arg)
{
	struct restoring *rs = arg;
	int64_t max = rs->d->cfg->max_server_wait_ms;
	int64_t until = rl_hold_clamp(hold, rs->now, max);
	if (until != hold) {
		char left[32], cap[32];
		retry_format_duration(hold - rs->now, left);
		retry_format_duration(max, cap);
		logmsg(LOG_WARN, "rate-limit bucket %s was held for %s more; waiting %s, the "
		       "max_server_wait", key, left, cap);
		rs->cut++;
	}
	rl_restore(rs->d->rl, key, tokens, updated, until);
}

/* restore_buckets - the saved buckets; when a hold was cut, the jobs parked by holds are
 * due again, to be parked anew by the buckets as they are now. */
static void restore_buckets(struct daemon *d)
{
	struct restoring rs = {.d = d, .now = clock_wall_ms()};
	store_bucket_foreach(d->st, restore_bucket, &rs);
	if (!rs.cut)
		return;
	int64_t woken = store_wake_waiters(d->st, LIMIT_WAIT_REASON, rs.now);
	int64_t woken429 = store_wake_waiters(d->st, RETRY_RATE_LIMITED_REASON, rs.now);
	if (woken < 0 || woken429 < 0)
		logmsg(LOG_ERROR, "cannot wake jobs waiting for the rate limit: %s",
		       store_errmsg(d->st));
}

/* refuse_failed - a write of this transaction failed: none of it is committed. */
static void refuse_failed(struct daemon *d)
{
	if (d->txn_failed)
		die("refusing to commit: %d store write(s) of this batch failed (the first: %s); "
		    "stopping so that nothing half-recorded is kept (the jobs concerned are queued "
		    "again at the next start)", d->txn_failed, d->txn_first_failure.buf);
}

/* output_not_placed - a staged output that could not be put in place: its job, recorded
 * succeeded in this transaction, fails instead with its result kept; the daemon runs on. */
static void output_not_placed(int64_t job_id, const char *why, void *arg)
{
	struct daemon *d = arg;
	char *ej = error_json("OutputError", why, 0);
	logmsg(LOG_ERROR, "job %lld failed: %s; its result is kept: retry it to write the file "
	       "without sending the request again", (long long)job_id, why);
	if (store_job_output_lost(d->st, job_id, ej, "the request succeeded but the output file "
				  "could not be put in place; retry the job to write it from the "
				  "stored result", clock_wall_ms()) < 0)
		write_failed(d, job_id, "record a lost output");
	free(ej);
}

/* commit - the iteration's one commit; then files leave incoming/. */
static void commit(struct daemon *d)
{
	int64_t now = clock_wall_ms();
	if (d->buckets_dirty && (now - d->last_bucket_save_ms >= BUCKET_SAVE_MS || d->stopping) &&
	    txn_try(d) == 0) {
		rl_foreach(d->rl, save_bucket, d);
		d->buckets_dirty = 0;
		d->last_bucket_save_ms = now;
	}
	refuse_failed(d);
	if (output_batch_count(d->outputs)) {
		txn(d); /* output_not_placed records in it */
		output_batch_commit(d->outputs, output_not_placed, d);
		refuse_failed(d);
	}
	if (d->in_txn) {
		if (store_commit(d->st) < 0)
			die("cannot commit to %s: %s; stopping (nothing is lost: uncommitted "
			    "files stay in incoming/)", d->cfg->db_path, store_errmsg(d->st));
		d->in_txn = 0;
	}
	archive_committed(d);
}

/* next_wake_ms - the earliest of: a held run, the next due job, the next rescan. */
static int64_t next_wake_ms(struct daemon *d, int64_t now)
{
	int64_t next = d->last_scan_ms + d->cfg->rescan_ms;
	for (struct run *r = d->runs; r; r = r->next)
		if (!r->xfer && r->hold_until_ms && r->hold_until_ms < next)
			next = r->hold_until_ms;
	if (d->nruns < d->cfg->max_in_flight) {
		int64_t due = store_next_due_ms(d->st);
		if (due > 0 && due < next)
			next = due;
	}
	return next > now ? next - now : 0;
}

/* idle - nothing left that can move without outside help: no job, or only jobs that
 * wait for a usable token (a SIGHUP or the next start brings them back). */
static int idle(struct daemon *d)
{
	if (d->nruns || d->pending.head != d->pending.n || d->scan_needed)
		return 0;
	int64_t active = store_count_active(d->st);
	if (active == 0)
		return 1;
	if (active < 0 || store_count_waiting_for(d->st, TOKEN_WAIT_REASON) != active)
		return 0;
	logmsg(LOG_WARN, "%lld job(s) wait for a usable API token (see the errors above); they "
	       "run after a SIGHUP or the next start that finds one", (long long)active);
	return 1;
}

/* needs_store - whether this iteration may write: answers held, what signals asked for,
 * control files, files to ingest, a held run whose wait is over, or room for more jobs.
 * An iteration that only moved bytes for requests in flight opens no transaction. */
static int needs_store(struct daemon *d)
{
	if (d->nheld || d->wake_limit_waiters || d->wake_token_waiters || d->requeue_idle)
		return 1;
	if (d->stopping)
		return 0;
	if (d->control_needed || d->scan_needed || d->pending.head < d->pending.n ||
	    (d->nruns < d->cfg->max_in_flight && http_capacity(d->http) > 0))
		return 1;
	int64_t now = clock_wall_ms();
	for (struct run *r = d->runs; r; r = r->next)
		if (!r->xfer && r->hold_until_ms && r->hold_until_ms <= now)
			return 1;
	return 0;
}

/* on_prepare - the loop's "before sleep": ingest, dispatch, commit, rearm. */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct daemon *d = w->data;
	(void)revents;
	if (needs_store(d) && txn_try(d) < 0) {
		/* the store is locked by another process: try again soon, a little later each time */
		ev_timer_stop(loop, &d->tick);
		ev_timer_set(&d->tick, (double)d->busy_retry_ms / 1000.0, 0.);
		ev_timer_start(loop, &d->tick);
		d->busy_retry_ms = d->busy_retry_ms * 2 > STORE_BUSY_RETRY_MAX_MS
					   ? STORE_BUSY_RETRY_MAX_MS
					   : d->busy_retry_ms * 2;
		return;
	}
	record_held(d);
	after_signals(d);
	if (!d->stopping) {
		if (d->control_needed) {
			d->control_needed = 0;
			spool_control_scan(&d->sp, control_one, d);
		}
		ingest_pending(d);
		dispatch(d);
	}
	commit(d);
	if (d->stopping && d->ninflight == 0 && !d->nheld) {
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	if (d->until_idle && !d->stopping && idle(d)) {
		/* one last scan: a file may have arrived since */
		d->scan_needed = 1;
		ingest_pending(d);
		commit(d);
		if (idle(d)) {
			logmsg(LOG_INFO, "nothing left to do; stopping (--until-idle)");
			ev_break(loop, EVBREAK_ALL);
			return;
		}
	}
	int64_t now = clock_wall_ms();
	ev_timer_stop(loop, &d->tick);
	int64_t wake = d->pending.head < d->pending.n ? 0 : next_wake_ms(d, now);
	ev_timer_set(&d->tick, (double)wake / 1000.0, 0.);
	ev_timer_start(loop, &d->tick);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	(void)loop;
	(void)revents;
	if (clock_wall_ms() - d->last_scan_ms >= d->cfg->rescan_ms)
		d->scan_needed = 1;
}

static void on_control_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	((struct daemon *)w->data)->control_needed = 1;
}

static int watch_one(const char *name, void *arg)
{
	names_push(&((struct daemon *)arg)->pending, name);
	return 0;
}

static void on_watch(struct ev_loop *loop, ev_io *w, int revents)
{
	struct daemon *d = w->data;
	int overflow = 0;
	(void)loop;
	(void)revents;
	spool_watch_drain(&d->sp, watch_one, d, &overflow);
	if (overflow == 1)
		logmsg(LOG_WARN, "inotify queue overflowed; rescanning incoming/");
	if (overflow)
		d->scan_needed = 1;
}

/* on_grace - the grace period is over: abort what is still in flight. */
static void on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	(void)loop;
	(void)revents;
	logmsg(LOG_WARN, "grace period over; interrupting %d request(s)", d->ninflight);
	for (struct run *r = d->runs, *next; r; r = next) {
		next = r->next;
		if (r->xfer) {
			r->interrupt = 1;
			http_cancel(d->http, r->xfer);
		}
	}
}

/* requeue_idle_runs - at a stop, runs that are not waiting for an answer go back to the
 * queue. */
static void requeue_idle_runs(struct daemon *d)
{
	for (struct run *r = d->runs, *next; r; r = next) {
		next = r->next;
		if (!r->xfer && !r->held) {
			if (store_job_requeue(d->st, r->row.id, "daemon stopping", clock_wall_ms()) < 0)
				write_failed(d, r->row.id, "requeue");
			run_free(r);
		}
	}
}

/* wake_waiters - jobs parked by reason `prefix` become due (after a SIGHUP). */
static void wake_waiters(struct daemon *d, const char *prefix, const char *what)
{
	int64_t woken = store_wake_waiters(d->st, prefix, clock_wall_ms());
	if (woken < 0)
		write_failed(d, 0, what);
	else if (woken > 0)
		logmsg(LOG_INFO, "%lld job(s) %s are due again", (long long)woken, what);
}

/* after_signals - what signals asked for that writes to the store, now that the
 * iteration's transaction is open. */
static void after_signals(struct daemon *d)
{
	if (d->wake_limit_waiters) {
		d->wake_limit_waiters = 0;
		/* parked by the old limits: due now, to be admitted (or parked) by the new ones */
		wake_waiters(d, LIMIT_WAIT_REASON, "waiting for the rate limit");
	}
	if (d->wake_token_waiters) {
		d->wake_token_waiters = 0;
		wake_waiters(d, TOKEN_WAIT_REASON, "waiting for a usable token");
	}
	if (d->requeue_idle) {
		d->requeue_idle = 0;
		requeue_idle_runs(d);
	}
}

/* begin_stop - no new work; held runs go back to the queue; in-flight ones get grace. */
static void begin_stop(struct daemon *d, const char *why)
{
	if (d->stopping)
		return;
	d->stopping = 1;
	logmsg(LOG_INFO, "%s: stopping; %d request(s) in flight get up to %lld ms", why,
	       d->ninflight, (long long)d->cfg->grace_ms);
	ev_io_stop(d->loop, &d->watch_io);
	ev_timer_stop(d->loop, &d->control_timer);
	d->requeue_idle = 1; /* in the next transaction: a signal may come while the store is locked */
	ev_timer_set(&d->grace_timer, (double)d->cfg->grace_ms / 1000.0, 0.);
	ev_timer_start(d->loop, &d->grace_timer);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	begin_stop(w->data, w->signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* on_hup - reload the config file: rates, retry defaults, tokens. */
static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;
	(void)loop;
	(void)revents;
	if (!d->cfg->config_path) {
		tokens_forget(d);
		d->wake_token_waiters = 1;
		logmsg(LOG_INFO, "SIGHUP: no config file; tokens will be read again");
		return;
	}
	struct config fresh;
	struct strbuf err = STRBUF_INIT;
	config_init(&fresh);
	if (config_load(&fresh, d->cfg->config_path, &err) < 0) {
		logmsg(LOG_ERROR, "SIGHUP: %s; keeping the running configuration", err.buf);
	} else {
		d->cfg->rate_per_sec = fresh.rate_per_sec;
		d->cfg->burst = fresh.burst;
		d->cfg->endpoint_limits = fresh.endpoint_limits;
		d->cfg->retry = fresh.retry;
		d->cfg->max_server_wait_ms = fresh.max_server_wait_ms;
		d->cfg->max_pages = fresh.max_pages;
		d->cfg->grace_ms = fresh.grace_ms;
		d->cfg->rescan_ms = fresh.rescan_ms;
		struct workspace_cfg *tmp = d->cfg->workspaces;
		size_t ntmp = d->cfg->nworkspaces;
		d->cfg->workspaces = fresh.workspaces;
		d->cfg->nworkspaces = fresh.nworkspaces;
		fresh.workspaces = tmp;
		fresh.nworkspaces = ntmp;
		log_set_level(fresh.log_level);
		tokens_forget(d);
		logmsg(LOG_INFO, "SIGHUP: configuration reloaded from %s (paths and http settings "
		       "take effect at restart)", d->cfg->config_path);
		d->wake_limit_waiters = d->wake_token_waiters = 1;
	}
	config_release(&fresh);
	sb_release(&err);
}

/* open_all - spool, lock, store, recovery, buckets, http. */
static int open_all(struct daemon *d)
{
	struct config *cfg = d->cfg;
	struct strbuf why = STRBUF_INIT;
	if (cfg->api_base && http_url_allowed(cfg->api_base, &why) < 0) {
		error("api_base %s refused: %s", cfg->api_base, why.buf);
		sb_release(&why);
		return -1;
	}
	sb_release(&why);
	if (spool_open(cfg->spool_dir, 1, &d->sp) < 0)
		return error("cannot open spool %s", cfg->spool_dir);
	struct lock_owner who;
	int lk = spool_lock_wait(&d->sp, "daemon", SPOOL_LOCK_WAIT_MS, &who);
	if (lk == 1 && lock_owner_command(&who))
		return error("segspool %s (pid %ld) still holds spool %s after %d s",
			     lock_owner_command(&who), who.pid, cfg->spool_dir,
			     SPOOL_LOCK_WAIT_MS / 1000);
	if (lk == 1)
		return error("another segspool daemon is running on spool %s (pid %ld); only one "
			     "may run per spool", cfg->spool_dir, who.pid);
	if (lk < 0)
		return error("cannot lock spool %s", cfg->spool_dir);
	if (strcmp(cfg->output_dir, "") != 0) {
		struct strbuf def = STRBUF_INIT;
		sb_addf(&def, "%s/out", cfg->spool_dir);
		if (strcmp(def.buf, cfg->output_dir) != 0) {
			mkdir(cfg->output_dir, 0755);
			int fd = open(cfg->output_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0) {
				sb_release(&def);
				return error_errno("cannot open output directory %s", cfg->output_dir);
			}
			close(d->sp.out_fd);
			d->sp.out_fd = fd;
		}
		sb_release(&def);
	}
	d->outputs = output_batch_new();
	int swept = output_sweep_parts(d->sp.out_fd);
	if (swept)
		logmsg(LOG_INFO, "removed %d unfinished output file(s) (.part) left by an earlier "
		       "stop", swept);
	char *err = NULL;
	store_set_owner("daemon", cfg->spool_dir);
	if (store_open(cfg->db_path, STORE_WAIT_FOR_CLI, &d->st, &err) < 0) {
		error("%s", err ? err : "cannot open the store");
		free(err);
		return -1;
	}
	store_set_busy_timeout(d->st, STORE_BUSY_WAIT_MS);
	int n = store_recover(d->st, clock_wall_ms());
	if (n > 0)
		logmsg(LOG_WARN, "recovered %d job(s) left running by an earlier stop; they are "
		       "queued again", n);
	d->rl = rl_new();
	restore_buckets(d);
	struct http_opts ho = {
		.connect_timeout_ms = cfg->connect_timeout_ms,
		.timeout_ms = cfg->timeout_ms,
		.max_in_flight = cfg->max_in_flight,
		.max_host_connections = cfg->max_in_flight,
		.ca_file = cfg->ca_file,
		.max_response_bytes = cfg->max_response_bytes,
	};
	d->http = http_new(d->loop, &ho);
	if (!d->http)
		return error("cannot start the HTTP client");
	if (spool_watch_start(&d->sp) < 0)
		logmsg(LOG_WARN, "cannot watch %s/incoming with inotify; rescanning every %lld ms",
		       cfg->spool_dir, (long long)cfg->rescan_ms);
	return 0;
}

static void close_all(struct daemon *d)
{
	while (d->runs)
		run_free(d->runs);
	if (d->http)
		http_free(d->http);
	if (d->rl)
		rl_free(d->rl);
	output_batch_free(d->outputs);
	if (d->st)
		store_close(d->st);
	spool_close(&d->sp);
	tokens_forget(d);
	names_clear(&d->pending);
	names_clear(&d->archive);
	names_clear(&d->stuck);
	sb_release(&d->txn_first_failure);
}

/* summary - what happened, in one log line, then the top failure reasons. */
static void summary(struct daemon *d)
{
	int64_t counts[JS_COUNT] = {0};
	store_counts(d->st, counts);
	struct strbuf sb = STRBUF_INIT;
	for (int s = 0; s < JS_COUNT; s++)
		if (counts[s])
			sb_addf(&sb, " %s=%lld", job_state_name((enum job_state)s),
				(long long)counts[s]);
	logmsg(LOG_INFO, "stopped: %lld file(s) ingested, %lld rejected, %lld job(s) added, %lld "
	       "duplicate key(s), %lld request(s); jobs:%s", (long long)d->files_ingested,
	       (long long)d->files_rejected, (long long)d->jobs_ingested, (long long)d->duplicates,
	       (long long)d->requests, sb.len ? sb.buf : " none");
	sb_release(&sb);
	if (!counts[JS_FAILED] && !counts[JS_DEAD])
		return;
	/* the most common ways jobs ended badly, so the journal says what to look at */
	cJSON *top = store_top_reasons_json(d->st, STORE_TOP_REASONS);
	if (!top)
		logmsg(LOG_WARN, "cannot count the failure reasons: %s", store_errmsg(d->st));
	int i = 0;
	for (const cJSON *t = top ? top->child : NULL; t; t = t->next) {
		const char *why =
			cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "reason"));
		logmsg(LOG_INFO, "top reason %d: %lld job(s) failed or dead: %s", ++i,
		       (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(t, "jobs")),
		       why ? why : "(none given)");
	}
	cJSON_Delete(top);
}

/* daemon_run - see daemon.h. */
int daemon_run(struct config *cfg, int until_idle)
{
	struct daemon d;
	memset(&d, 0, sizeof(d));
	d.cfg = cfg;
	d.until_idle = until_idle;
	d.sp.lock_fd = d.sp.watch_fd = -1;
	sb_init(&d.txn_first_failure, 0);
	d.rng = (uint64_t)clock_wall_ms() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
	d.loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	signal(SIGPIPE, SIG_IGN);
	if (http_global_init() < 0 || open_all(&d) < 0) {
		close_all(&d);
		http_global_cleanup();
		return 1;
	}
	logmsg(LOG_INFO, "running on spool %s (store %s, outputs %s, api %s)", cfg->spool_dir,
	       cfg->db_path, cfg->output_dir, config_base_url(cfg, "api"));
	if (d.sp.watch_fd >= 0) {
		ev_io_init(&d.watch_io, on_watch, d.sp.watch_fd, EV_READ);
		d.watch_io.data = &d;
		ev_io_start(d.loop, &d.watch_io);
	}
	ev_prepare_init(&d.prepare, on_prepare);
	d.prepare.data = &d;
	ev_prepare_start(d.loop, &d.prepare);
	ev_timer_init(&d.tick, on_tick, 0., 0.);
	d.tick.data = &d;
	ev_timer_init(&d.control_timer, on_control_timer, CONTROL_POLL_S, CONTROL_POLL_S);
	d.control_timer.data = &d;
	ev_timer_start(d.loop, &d.control_timer);
	ev_timer_init(&d.grace_timer, on_grace, 0., 0.);
	d.grace_timer.data = &d;
	ev_signal_init(&d.sig_term, on_stop_signal, SIGTERM);
	ev_signal_init(&d.sig_int, on_stop_signal, SIGINT);
	ev_signal_init(&d.sig_hup, on_hup, SIGHUP);
	d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
	ev_signal_start(d.loop, &d.sig_term);
	ev_signal_start(d.loop, &d.sig_int);
	ev_signal_start(d.loop, &d.sig_hup);
	d.scan_needed = 1;
	d.control_needed = 1;
	d.wake_token_waiters = 1; /* tokens are read afresh at start, as after a SIGHUP */
	ev_run(d.loop, 0);
	d.stopping = 1; /* the last commit saves the rate-limit buckets whatever their age */
	commit(&d);
	summary(&d);
	ev_prepare_stop(d.loop, &d.prepare);
	ev_timer_stop(d.loop, &d.tick);
	ev_timer_stop(d.loop, &d.control_timer);
	ev_timer_stop(d.loop, &d.grace_timer);
	ev_io_stop(d.loop, &d.watch_io);
	ev_signal_stop(d.loop, &d.sig_term);
	ev_signal_stop(d.loop, &d.sig_int);
	ev_signal_stop(d.loop, &d.sig_hup);
	close_all(&d);
	http_global_cleanup();
	return 0;
}
