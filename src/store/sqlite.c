/* sqlite.c - the SQLite store's frame: errors, statements prepared once and kept,
 * transactions (BEGIN IMMEDIATE for writes), and opening: the lock beside the database,
 * migrations, identity checks. See store.h for the contract, sqlite_int.h for the files.
 *
 * Concurrency: one writer (BEGIN IMMEDIATE, so a writer never has to upgrade a read
 * lock and deadlock) and any number of readers, which WAL lets run while it writes.
 */
#include "sqlite_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_vfs.h"
#include "util.h"

/* who this process is, written beside the database for a second writer's message */
static char owner_role[64] = "cli";
static char owner_spool[STORE_OWNER_MAX];

/* --- errors and statements ------------------------------------------------------- */

/* set_err - replaces the message store_errmsg returns. */
void sq_set_err(struct store *st, const char *fmt, ...)
{
	va_list ap;
	sb_reset(&st->err);
	va_start(ap, fmt);
	sb_vaddf(&st->err, fmt, ap);
	va_end(ap);
}

/* fail - "WHAT: sqlite's message" as the last error; returns -1. */
int sq_fail(struct store *st, const char *fmt, ...)
{
	va_list ap;
	sb_reset(&st->err);
	va_start(ap, fmt);
	sb_vaddf(&st->err, fmt, ap);
	va_end(ap);
	sb_addf(&st->err, ": %s", sqlite3_errmsg(st->db));
	st->busy = (sqlite3_errcode(st->db) & 0xff) == SQLITE_BUSY;
	return -1;
}

/* store_busy - see store.h. */
int store_busy(const struct store *st)
{
	return st->busy;
}

/* store_set_busy_timeout - see store.h. */
void store_set_busy_timeout(struct store *st, int ms)
{
	sqlite3_busy_timeout(st->db, ms);
}

/* store_errmsg - the last error, "" if none yet. */
const char *store_errmsg(struct store *st)
{
	return st->err.buf;
}

/* prep - the statement, prepared on first use and reused afterwards. */
sqlite3_stmt *sq_prep(struct store *st, enum stmt_id id)
{
	if (st->stmts[id])
		return st->stmts[id];
	if (sqlite3_prepare_v3(st->db, sq_stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
	                       &st->stmts[id], NULL) != SQLITE_OK) {
		sq_fail(st, "cannot prepare \"%.40s\"", sq_stmt_sql[id]);
		return NULL;
	}
	return st->stmts[id];
}

/* done - makes a statement ready for its next use. */
void sq_done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* step - one step: SQLITE_ROW or SQLITE_DONE, else -1 with "cannot WHAT: ..." (and the
 * statement reset). */
int sq_step(struct store *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return rc;
	sq_fail(st, "cannot %s", what);
	sq_done(s);
	return -1;
}

/* run - steps a statement to its end (a row some PRAGMAs return is ignored) and
 * resets it; 0 or -1. */
int sq_run(struct store *st, sqlite3_stmt *s, const char *what)
{
	if (sq_step(st, s, what) < 0)
		return -1;
	sq_done(s);
	return 0;
}

/* run_id - prepares and runs a statement without parameters. */
int sq_run_id(struct store *st, enum stmt_id id, const char *what)
{
	sqlite3_stmt *s = sq_prep(st, id);
	return s ? sq_run(st, s, what) : -1;
}

/* quiet_run_id - runs a statement for cleanup, keeping the error already recorded. */
void sq_quiet_run_id(struct store *st, enum stmt_id id)
{
	sqlite3_stmt *s = sq_prep(st, id);
	if (s) {
		sqlite3_step(s);
		sq_done(s);
	}
}

/* bind_text - a C string, or NULL as SQL NULL. The text must outlive the step. */
void sq_bind_text(sqlite3_stmt *s, int i, const char *text)
{
	if (text)
		sqlite3_bind_text(s, i, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

/* bind_int64_or_null - v, or NULL when v is the "unknown" value none. */
void sq_bind_int64_or_null(sqlite3_stmt *s, int i, int64_t v, int64_t none)
{
	if (v == none)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_int64(s, i, v);
}

/* column_dup - a malloc'd copy of a text column, NULL for SQL NULL. */
char *sq_column_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? xstrdup((const char *)t) : NULL;
}

/* column_int64_or - the column's value, or dflt for SQL NULL. */
int64_t sq_column_int64_or(sqlite3_stmt *s, int i, int64_t dflt)
{
	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return dflt;
	return sqlite3_column_int64(s, i);
}

/* --- transactions ------------------------------------------------------------------ */

/* in_transaction - whether a transaction (the caller's or ours) is open. */
int sq_in_transaction(struct store *st)
{
	return !sqlite3_get_autocommit(st->db);
}

/* store_begin - starts the caller's write transaction (a group commit). */
int store_begin(struct store *st)
{
	if (sq_in_transaction(st)) {
		sq_set_err(st, "cannot begin a transaction: one is already open");
		return -1;
	}
	st->busy = 0;
	if (st->ncounts) /* left by a transaction SQLite rolled back by itself */
		sq_files_discard(st);
	if (sq_run_id(st, S_BEGIN, "begin a transaction") < 0)
		return -1;
	st->caller_txn = 1;
	return 0;
}

/* store_commit - commits the caller's transaction; on failure it is rolled back. */
int store_commit(struct store *st)
{
	st->caller_txn = 0;
	if (!sq_in_transaction(st)) {
		sq_files_discard(st);
		sq_set_err(st, "cannot commit: no transaction is open");
		return -1;
	}
	/* the files' counts with the state changes they count, in the same commit */
	if (sq_files_flush(st) < 0 || sq_run_id(st, S_COMMIT, "commit") < 0) {
		sq_files_discard(st);
		if (sq_in_transaction(st))
			sq_quiet_run_id(st, S_ROLLBACK);
		return -1;
	}
	return 0;
}

/* store_rollback - undoes the caller's transaction; a no-op when SQLite already did. */
int store_rollback(struct store *st)
{
	st->caller_txn = 0;
	sq_files_discard(st);
	if (!sq_in_transaction(st))
		return 0;
	return sq_run_id(st, S_ROLLBACK, "roll back");
}

/* store_savepoint - marks where store_rollback_to returns to (one file's jobs). */
int store_savepoint(struct store *st)
{
	if (!sq_in_transaction(st)) {
		sq_set_err(st, "cannot set a savepoint: no transaction is open");
		return -1;
	}
	/* what is counted from here on is all a rollback to it drops */
	if (sq_files_flush(st) < 0)
		return -1;
	return sq_run_id(st, S_SAVEPOINT, "set a savepoint");
}

/* store_release - keeps what was done since the savepoint (within the transaction). */
int store_release(struct store *st)
{
	return sq_run_id(st, S_RELEASE, "release the savepoint");
}

/* store_rollback_to - undoes everything since the savepoint and forgets it. */
int store_rollback_to(struct store *st)
{
	sq_files_discard(st); /* all counted after the savepoint's flush */
	if (sq_run_id(st, S_ROLLBACK_TO, "roll back to the savepoint") < 0)
		return -1;
	return sq_run_id(st, S_RELEASE, "release the savepoint");
}

/* op_begin - starts a transaction unless the caller has one open. */
int sq_op_begin(struct store *st, enum op_wrap *how)
{
	if (st->caller_txn && !sq_in_transaction(st)) {
		/* SQLite rolled the caller's batch back by itself (disk full, I/O error): a
		 * write now would commit on its own, keeping the rest of a half-undone batch */
		sq_set_err(st, "the batch's transaction was rolled back by SQLite after an earlier "
		               "error; nothing more of it is written");
		return -1;
	}
	*how = sq_in_transaction(st) ? OP_JOINED : OP_OWN_TXN;
	if (*how == OP_JOINED)
		return 0;
	if (st->ncounts)
		sq_files_discard(st);
	return sq_run_id(st, S_BEGIN, "begin a transaction");
}

/* op_begin_atomic - as op_begin, with a savepoint when joining. */
int sq_op_begin_atomic(struct store *st, enum op_wrap *how)
{
	if (sq_op_begin(st, how) < 0)
		return -1;
	if (*how == OP_OWN_TXN)
		return 0;
	*how = OP_SAVEPOINT;
	if (sq_files_flush(st) < 0) /* as store_savepoint */
		return -1;
	return sq_run_id(st, S_OP_SAVEPOINT, "set a savepoint");
}

/* op_end - commits (or releases) when rc >= 0, else undoes what op_begin* opened;
 * returns rc, or -1 when the commit itself failed. The first error's message is kept. */
int sq_op_end(struct store *st, enum op_wrap how, int rc)
{
	if (how == OP_JOINED)
		return rc;
	if (rc >= 0) {
		if ((how != OP_OWN_TXN || sq_files_flush(st) == 0) &&
		    sq_run_id(st, how == OP_OWN_TXN ? S_COMMIT : S_OP_RELEASE, "commit") == 0)
			return rc;
		rc = -1;
	}
	sq_files_discard(st);
	if (!sq_in_transaction(st))
		return rc; /* SQLite rolled back by itself (I/O error, disk full) */
	if (how == OP_OWN_TXN) {
		sq_quiet_run_id(st, S_ROLLBACK);
	} else {
		sq_quiet_run_id(st, S_OP_ROLLBACK_TO);
		sq_quiet_run_id(st, S_OP_RELEASE);
	}
	return rc;
}

/* --- open, migrate, close --------------------------------------------------------- */

/* pragma_int - the integer a PRAGMA (or any one-value query) returns. */
static int pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return sqlite3_extended_errcode(db);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? SQLITE_OK : sqlite3_extended_errcode(db);
}

/* add_io_reason - SQLite's message with the system's reason (a full disk says so). */
static void add_io_reason(struct store *st, struct strbuf *why, const char *what)
{
	int sys = sqlite3_system_errno(st->db);
	sb_addf(why, "%s %s: %s", what, st->path, sqlite3_errmsg(st->db));
	if (sys == ENOSPC)
		sb_adds(why, " (No space left on device: free space on that filesystem and start "
		             "again; nothing is lost, incoming/ is untouched)");
	else if (sys)
		sb_addf(why, " (%s)", strerror(sys));
}

/* add_corrupt_reason - the message for a file SQLite cannot read as ours, with what to do. */
static void add_corrupt_reason(struct strbuf *why, const char *path, const char *detail)
{
	sb_addf(why,
	        "database %s is not a segspool database or is corrupt: %s; move it aside "
	        "(with its -wal and -shm files) and start again: a new, empty database is "
	        "created and incoming/ is ingested; files already in archive/ are not run "
	        "again unless you move them back into incoming/ (their mutations would then be "
	        "sent again)",
	        path, detail);
}

/* is_corrupt_code - SQLite's codes for "this file is not a (sound) database". */
static int is_corrupt_code(int rc)
{
	rc &= 0xff;
	return rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT;
}

/* check_identity - the file's schema version, after checking it is ours: a fresh
 * database, or one marked with our application id. */
static int check_identity(struct store *st, int64_t *version, struct strbuf *why)
{
	int64_t appid = 0, nobjects = 0;
	int rc = pragma_int(st->db, "PRAGMA user_version", version);
	if (rc == SQLITE_OK)
		rc = pragma_int(st->db, "PRAGMA application_id", &appid);
	if (rc == SQLITE_OK)
		rc = pragma_int(st->db, "SELECT count(*) FROM sqlite_master", &nobjects);
	if (rc != SQLITE_OK) {
		if (is_corrupt_code(rc))
			add_corrupt_reason(why, st->path, sqlite3_errmsg(st->db));
		else
			add_io_reason(st, why, "cannot read database");
		return -1;
	}
	if (*version == 0 && nobjects > 0) {
		add_corrupt_reason(why, st->path, "it holds tables of another program");
		return -1;
	}
	if (*version > 0 && appid != STORE_APPLICATION_ID) {
		add_corrupt_reason(why, st->path, "its application id is not segspool's");
		return -1;
	}
	if (*version > (int64_t)store_migration_count) {
		sb_addf(why,
		        "database %s has schema version %" PRId64 ", newer than this segspool "
		        "knows (%zu): it was written by a newer segspool; run that one",
		        st->path, *version, store_migration_count);
		return -1;
	}
	return 0;
}

/* exec_sql - runs SQL text (several statements) once, as in a migration. */
static int exec_sql(struct store *st, const char *sql, struct strbuf *why, const char *what)
{
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		return 0;
	if (is_corrupt_code(rc))
		add_corrupt_reason(why, st->path, msg ? msg : sqlite3_errstr(rc));
	else
		sb_addf(why, "cannot %s in database %s: %s", what, st->path,
		        msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return -1;
}

/* apply_migration - one migration and its user_version bump, in one transaction.
 * The version is read again under the write lock: another process may have migrated
 * the file since we looked. Returns 1 when nothing was left to do. */
static int apply_migration(struct store *st, struct strbuf *why)
{
	struct strbuf what = STRBUF_INIT;
	char bump[64];
	int64_t version = 0;
	if (exec_sql(st, "BEGIN IMMEDIATE", why, "begin the schema upgrade") < 0)
		return -1;
	int rc = pragma_int(st->db, "PRAGMA user_version", &version);
	if (rc != SQLITE_OK) {
		sb_addf(why, "cannot read the schema version of %s: %s", st->path,
		        sqlite3_errmsg(st->db));
		goto undo;
	}
	if (version >= (int64_t)store_migration_count) {
		sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
		return 1;
	}
	sb_addf(&what, "apply migration %" PRId64, version + 1);
	rc = exec_sql(st, store_migrations[version], why, what.buf);
	sb_release(&what);
	if (rc < 0)
		goto undo;
	snprintf(bump, sizeof(bump), "PRAGMA user_version = %" PRId64, version + 1);
	if (exec_sql(st, bump, why, "set the schema version") < 0 ||
	    exec_sql(st, "COMMIT", why, "commit the schema upgrade") < 0)
		goto undo;
	logmsg(LOG_INFO, "database %s: schema upgraded to version %" PRId64, st->path, version + 1);
	return 0;
undo:
	if (sq_in_transaction(st))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* configure_writer - WAL (readers never block the writer), and synchronous=FULL: the
 * daemon deletes spool files once their jobs are committed, so a commit must be on
 * disk when COMMIT returns. */
static int configure_writer(struct store *st, struct strbuf *why)
{
	sqlite3_stmt *s;
	int ok = 0;
	/* A new database gets 2 KiB pages: a commit changes a few small rows in each of a
	 * dozen B-trees, and every changed page goes to the WAL whole, so smaller pages
	 * write (and copy) less. An existing database keeps its page size (the pragma is
	 * then ignored). */
	if (exec_sql(st, "PRAGMA page_size = 2048", why, "set the page size") < 0)
		return -1;
	if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW) {
			const unsigned char *mode = sqlite3_column_text(s, 0);
			ok = mode && strcasecmp((const char *)mode, "wal") == 0;
			if (!ok)
				sb_addf(why, "cannot put database %s in WAL mode (it stays in %s)",
				        st->path, mode ? (const char *)mode : "?");
		} else {
			sb_addf(why, "cannot put database %s in WAL mode: %s", st->path,
			        sqlite3_errmsg(st->db));
		}
		sqlite3_finalize(s);
	} else {
		sb_addf(why, "cannot put database %s in WAL mode: %s", st->path,
		        sqlite3_errmsg(st->db));
	}
	if (!ok)
		return -1;
	if (exec_sql(st, "PRAGMA synchronous = FULL", why, "set synchronous mode") < 0)
		return -1;
	/* 2 MiB of page cache (used only as needed): a group commit of a big spool file
	 * fits in it, and the daemon's peak RSS stays under its 16 MiB target (4 MiB saved
	 * no reads: the reads left are the checkpoint's, of the WAL) */
	return exec_sql(st, "PRAGMA cache_size = -2048", why, "set the cache size");
}

/* store_set_owner - see store.h. */
void store_set_owner(const char *role, const char *spool)
{
	snprintf(owner_role, sizeof(owner_role), "%s", role ? role : "cli");
	snprintf(owner_spool, sizeof(owner_spool), "%s", spool ? spool : "");
}

/* read_owner - the owner line a lock holder wrote beside the database, or "". */
static void read_owner(const char *owner_path, char *buf, size_t size)
{
	buf[0] = '\0';
	int fd = open(owner_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

/* lock_store - the writer's lock: an flock on the database file itself, so it holds
 * whatever happens to lock files (a spool's .lock removed as "stale", two spools whose
 * config names the same db). SQLite's own locks are fcntl locks, which Linux keeps apart
 * from flock. The holder's pid, role and spool go to PATH.lock for the loser's message;
 * a daemon (STORE_WAIT_FOR_CLI) waits a while for a CLI command instead of failing. */
static int lock_store(struct store *st, int flags, struct strbuf *why)
{
	struct strbuf owner_path = STRBUF_INIT;
	sb_addf(&owner_path, "%s.lock", st->path);
	int fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		sb_addf(why, "cannot open database %s: %s", st->path, strerror(errno));
		sb_release(&owner_path);
		return -1;
	}
	int64_t deadline = clock_mono_ms() + STORE_CLI_WAIT_MS;
	int told = 0;
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		char owner[STORE_OWNER_MAX];
		int saved = errno;
		read_owner(owner_path.buf, owner, sizeof(owner));
		struct lock_owner who;
		int cli = lock_owner_parse(owner, strlen(owner), &who) == 0 &&
		          lock_owner_command(&who) != NULL;
		if (saved != EWOULDBLOCK || !(flags & STORE_WAIT_FOR_CLI) || !cli ||
		    clock_mono_ms() > deadline) {
			if (saved != EWOULDBLOCK)
				sb_addf(why, "cannot lock database %s: %s", st->path,
				        strerror(saved));
			else
				sb_addf(why,
				        "database %s is in use by another segspool process (%s); "
				        "only one daemon or command may write a store at a time",
				        st->path, owner[0] ? owner : "its pid is not recorded yet");
			close(fd);
			sb_release(&owner_path);
			return -1;
		}
		if (!told++)
			logmsg(LOG_INFO,
			       "database %s is held by a segspool command (%s); waiting up "
			       "to %d s for it to finish",
			       st->path, owner, STORE_CLI_WAIT_MS / 1000);
		usleep(100 * 1000);
	}
	int ofd = open(owner_path.buf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (ofd >= 0) {
		struct strbuf line = STRBUF_INIT;
		lock_owner_line(&line, (long)getpid(), owner_role, "spool",
		                owner_spool[0] ? owner_spool : "-");
		if (write(ofd, line.buf, line.len) < 0)
			logmsg(LOG_DEBUG, "cannot write %s: %s", owner_path.buf, strerror(errno));
		sb_release(&line);
		close(ofd);
	}
	sb_release(&owner_path);
	st->db_fd = fd;
	return 0;
}

/* open_checked - the body of store_open; the reason for a failure goes to why. */
static int open_checked(struct store *st, int flags, struct strbuf *why)
{
	/* one connection, one thread: SQLite's own mutexes would only cost time */
	int oflags =
	    SQLITE_OPEN_NOMUTEX |
	    (st->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	struct stat sb;
	int64_t version = 0;

	if (st->readonly && stat(st->path, &sb) < 0) {
		if (errno == ENOENT)
			sb_addf(why, "database %s does not exist", st->path);
		else
			sb_addf(why, "cannot open database %s: %s", st->path, strerror(errno));
		return -1;
	}
	if (!st->readonly && lock_store(st, flags, why) < 0)
		return -1;
	/* the writer's WAL writes are gathered into one per commit (store_vfs.c) */
	const char *vfs =
	    !st->readonly && store_vfs_register() == SQLITE_OK ? STORE_VFS_NAME : NULL;
	if (sqlite3_open_v2(st->path, &st->db, oflags, vfs) != SQLITE_OK) {
		sb_addf(why, "cannot open database %s: %s", st->path,
		        st->db ? sqlite3_errmsg(st->db) : "out of memory");
		return -1;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	if (exec_sql(st, "PRAGMA foreign_keys = ON", why, "enable foreign keys") < 0)
		return -1;
	/* the first read of the file: a non-database shows up here */
	if (check_identity(st, &version, why) < 0)
		return -1;
	if (st->readonly) {
		if (version < (int64_t)store_migration_count) {
			sb_addf(why,
			        "database %s has schema version %" PRId64 ", this segspool needs "
			        "%zu: start the daemon once to upgrade it",
			        st->path, version, store_migration_count);
			return -1;
		}
		return 0;
	}
	if (configure_writer(st, why) < 0)
		return -1;
	/* foreign keys off while the migrations run, as SQLite advises for schema changes:
	 * a table rebuilt (013_key_index.sql) is dropped without its ON DELETE CASCADE
	 * deleting the rows that refer to it. The pragma is a no-op inside a transaction. */
	if (exec_sql(st, "PRAGMA foreign_keys = OFF", why, "disable foreign keys") < 0)
		return -1;
	int rc;
	while ((rc = apply_migration(st, why)) == 0)
		;
	if (rc < 0)
		return -1;
	return exec_sql(st, "PRAGMA foreign_keys = ON", why, "enable foreign keys");
}

/* note_files - which inodes the writer's database and -wal are, for store_check_file. */
static int note_files(struct store *st, struct strbuf *why)
{
	struct stat sb;
	if (fstat(st->db_fd, &sb) < 0) { /* the fd lock_store opened and locked */
		sb_addf(why, "cannot open database %s: %s", st->path, strerror(errno));
		return -1;
	}
	st->db_dev = sb.st_dev;
	st->db_ino = sb.st_ino;
	struct strbuf wal = STRBUF_INIT;
	sb_addf(&wal, "%s-wal", st->path);
	/* WAL mode and the migrations' writes made it; SQLite keeps it while it is open */
	if (stat(wal.buf, &sb) == 0) {
		st->have_wal = 1;
		st->wal_dev = sb.st_dev;
		st->wal_ino = sb.st_ino;
	}
	sb_release(&wal);
	return 0;
}

/* configure_library - SQLite's process-wide settings, before its first use: segspool
 * uses each connection from one thread, and never asks for memory statistics, so the
 * library's mutexes and its per-allocation accounting would only cost time. A call after
 * SQLite was initialized (a second store in the same process) is refused harmlessly. */
static void configure_library(void)
{
	static int done;
	if (done)
		return;
	done = 1;
	(void)sqlite3_config(SQLITE_CONFIG_SINGLETHREAD);
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* store_open - opens (creating if writable) and migrates; see store.h. */
int store_open(const char *path, int flags, struct store **out, char **err_out)
{
	struct store *st = xcalloc(1, sizeof(*st));
	struct strbuf why = STRBUF_INIT;

	configure_library();
	st->head.ops = &sqlite_store_ops;
	st->head.backend = "SQLite";

	st->path = xstrdup(path);
	st->readonly = (flags & STORE_READONLY) != 0;
	st->deps_any = -1;
	sb_init(&st->err, 0);
	*out = NULL;
	if (err_out)
		*err_out = NULL;
	st->db_fd = -1;
	if (open_checked(st, flags, &why) < 0 || (!st->readonly && note_files(st, &why) < 0)) {
		store_close(st);
		if (err_out)
			*err_out = sb_detach(&why, NULL);
		sb_release(&why);
		return -1;
	}
	sb_release(&why);
	*out = st;
	return 0;
}

/* store_close - finalizes the statements and closes the file; NULL is fine. */
void store_close(struct store *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < S_NSTMTS; i++)
		sqlite3_finalize(st->stmts[i]);
	if (st->db && sqlite3_close(st->db) != SQLITE_OK)
		logmsg(LOG_WARN, "cannot close database %s: %s", st->path, sqlite3_errmsg(st->db));
	/* after SQLite's close: closing any fd of the file would drop its fcntl locks */
	if (st->db_fd >= 0)
		close(st->db_fd);
	sb_release(&st->err);
	free(st->counts);
	free(st->path);
	free(st);
}

/* store_owner - the owner line lock_store wrote beside the database, parsed, and when. */
int store_owner(const char *path, struct store_owner *out)
{
	memset(out, 0, sizeof(*out));
	struct strbuf owner_path = STRBUF_INIT;
	sb_addf(&owner_path, "%s.lock", path);
	char line[STORE_OWNER_MAX];
	struct stat sb;
	read_owner(owner_path.buf, line, sizeof(line));
	int rc = stat(owner_path.buf, &sb);
	sb_release(&owner_path);
	struct lock_owner who;
	if (rc < 0 || lock_owner_parse(line, strlen(line), &who) < 0)
		return 1;
	out->pid = who.pid;
	snprintf(out->role, sizeof(out->role), "%s", who.role);
	const char *spool = strstr(line, " spool=");
	snprintf(out->spool, sizeof(out->spool), "%s", spool ? spool + 7 : "");
	out->since_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
	return 0;
}
