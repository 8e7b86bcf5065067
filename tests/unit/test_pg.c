/* test_pg.c - what only the PostgreSQL store has: migrations run once by daemons
 * starting at once, a reader that never writes nor creates, messages without the
 * password, the announcements of work (LISTEN/NOTIFY), and the frame pg.c gives the
 * store's other files (statements, transactions and savepoints after an error, lock
 * timeouts). Needs a database: SEGSPOOL_TEST_PG or SEGSPOOL_TEST_PG_FILE (ctest starts a
 * cluster with tests/pg/pgcluster.py); without one it is skipped (exit 77). The store
 * API itself is test_store.c's. */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/store/pg_int.h"
#include "store.h"
#include "store_fixture.h"
#include "strbuf.h"
#include "testlib.h"
#include "util.h"

/* admin_value - the first value sql returns on the fixture's connection, malloc'd
 * ("" for no row, "(null)" for NULL). */
static char *admin_value(const char *sql)
{
	PGresult *r = PQexec(pg_admin, sql);
	char *v;
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		v = xstrdup(PQerrorMessage(pg_admin));
	else if (PQntuples(r) == 0)
		v = xstrdup("");
	else
		v = xstrdup(PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* open_at - a store at uri with flags, or NULL with the reason in *err. */
static struct store *open_at(const char *uri, int flags, char **err)
{
	struct store *st = NULL;
	free(*err);
	*err = NULL;
	return store_open(uri, flags, &st, err) == 0 ? st : NULL;
}

/* readable - fd becomes readable within ms. */
static int readable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* has - s holds sub. */
static int has(const char *s, const char *sub)
{
	return s && strstr(s, sub) != NULL;
}

/* bucket_keys - the keys in the schema's buckets, sorted, joined by ",". */
static char *bucket_keys(struct store *st)
{
	PGresult *r =
	    pg_query(st, "SELECT coalesce(string_agg(key, ',' ORDER BY key), '') FROM buckets",
	             NULL, "read buckets");
	char *v = r ? pg_get_dup(r, 0, 0) : xstrdup(store_errmsg(st));
	PQclear(r);
	return v;
}

static const char insert_bucket[] = "INSERT INTO buckets (key) VALUES ($1)";

/* add_bucket - a row of buckets (any table would do), in st's transaction if open. */
static int64_t add_bucket(struct store *st, const char *key)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, key);
	return pg_run(st, insert_bucket, &p, "add a bucket");
}

TEST(test_migrate_concurrently)
{
	/* daemons starting at once: each migrates under the lock or finds it done */
	for (int round = 0; round < 3; round++) {
		char name[32];
		snprintf(name, sizeof(name), "mig%d", round);
		char *uri = xstrdup(db_named(name));
		int go[2];
		CHECK_INT(pipe(go), 0);
		pid_t kids[4];
		for (int i = 0; i < 4; i++) {
			kids[i] = fork();
			if (kids[i] == 0) {
				char c;
				close(go[1]);
				(void)!read(go[0], &c, 1); /* EOF: all of them at once */
				struct store *st = NULL;
				char *err = NULL;
				int rc = store_open(uri, 0, &st, &err);
				if (rc < 0)
					fprintf(stderr, "open %d: %s\n", i, err);
				store_close(st);
				free(err);
				_exit(rc < 0);
			}
		}
		close(go[0]);
		close(go[1]);
		for (int i = 0; i < 4; i++) {
			int status = -1;
			CHECK_INT(waitpid(kids[i], &status, 0), kids[i]);
			CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		}
		struct strbuf sql = STRBUF_INIT, want = STRBUF_INIT;
		pg_schema_of(name, &want);
		sb_addf(&sql, "SELECT count(*) || ' ' || max(version) FROM %s.schema_version",
		        want.buf);
		sb_reset(&want);
		sb_addf(&want, "1 %zu", pg_migration_count);
		char *got = admin_value(sql.buf);
		CHECK_STR(got, want.buf);
		free(got);
		sb_release(&sql);
		sb_release(&want);
		free(uri);
	}
}

TEST(test_reader)
{
	char *err = NULL;
	char *uri = xstrdup(db_named("reader"));
	/* a reader creates nothing: the store must exist */
	struct store *st = open_at(uri, STORE_READONLY, &err);
	CHECK(st == NULL);
	CHECK(has(err, "no segspool store yet"));
	st = open_at(uri, 0, &err);
	CHECK(st != NULL);
	CHECK_INT(store_shared(st), 1);
	char *ferr = (char *)"x";
	CHECK_INT(store_check_file(st, &ferr), 0);
	CHECK(ferr == NULL);
	store_close(st);
	struct store_owner who;
	CHECK_INT(store_owner(uri, &who), 1);

	st = open_at(uri, STORE_READONLY, &err);
	CHECK(st != NULL);
	if (st) {
		/* on its own, and inside a transaction: the server refuses the write */
		CHECK_INT(add_bucket(st, "ro"), -1);
		CHECK(has(store_errmsg(st), "cannot add a bucket: attempt to write a readonly "
		                            "database (cannot execute INSERT in a read-only "
		                            "transaction)"));
		CHECK_INT(store_begin(st), 0);
		CHECK_INT(add_bucket(st, "ro"), -1);
		CHECK_INT(store_rollback(st), 0);
		store_close(st);
	}

	/* a database a newer segspool wrote: refused, to readers and writers */
	struct strbuf schema = STRBUF_INIT, sql = STRBUF_INIT;
	pg_schema_of("reader", &schema);
	sb_addf(&sql, "UPDATE %s.schema_version SET version = %zu", schema.buf,
	        pg_migration_count + 1);
	pg_admin_exec(sql.buf);
	CHECK(open_at(uri, 0, &err) == NULL);
	CHECK(has(err, "newer than this segspool knows"));
	CHECK(open_at(uri, STORE_READONLY, &err) == NULL);
	CHECK(has(err, "newer than this segspool knows"));
	/* an older one: a reader leaves its upgrade to the daemon */
	sb_reset(&sql);
	sb_addf(&sql, "UPDATE %s.schema_version SET version = %zu", schema.buf,
	        pg_migration_count - 1);
	pg_admin_exec(sql.buf);
	CHECK(open_at(uri, STORE_READONLY, &err) == NULL);
	CHECK(has(err, "start the daemon once to upgrade it"));

	/* a search_path naming no schema: said, with where */
	struct strbuf nowhere = STRBUF_INIT;
	pg_location("no_such_schema", &nowhere);
	CHECK(open_at(nowhere.buf, 0, &err) == NULL);
	CHECK(has(err, "cannot open database postgresql://"));
	CHECK(has(err, "no schema has been selected"));
	sb_release(&nowhere);

	/* a schema of another program's tables is not taken over */
	free(uri);
	uri = xstrdup(db_named("foreign"));
	sb_reset(&schema);
	pg_schema_of("foreign", &schema);
	sb_reset(&sql);
	sb_addf(&sql, "CREATE TABLE %s.jobs (x int)", schema.buf);
	pg_admin_exec(sql.buf);
	CHECK(open_at(uri, 0, &err) == NULL);
	CHECK(has(err, "is not a segspool store"));
	sb_release(&schema);
	sb_release(&sql);
	free(uri);
	free(err);
}

/* uri_with - the fixture's database as a URI (or key=value list) with a password, for
 * database db (NULL: the fixture's, in the store schema of name). */
static void uri_with(struct strbuf *out, int keyvalue, const char *password, const char *db,
                     const char *name)
{
	char *msg = NULL;
	PQconninfoOption *o = PQconninfoParse(pg_uri.buf, &msg), *opts = o;
	const char *host = "", *port = "5432", *user = "", *dbname = "";
	for (; o && o->keyword; o++) {
		if (!o->val)
			continue;
		if (!strcmp(o->keyword, "host"))
			host = o->val;
		else if (!strcmp(o->keyword, "port"))
			port = o->val;
		else if (!strcmp(o->keyword, "user"))
			user = o->val;
		else if (!strcmp(o->keyword, "dbname"))
			dbname = o->val;
	}
	struct strbuf schema = STRBUF_INIT;
	if (name)
		pg_schema_of(name, &schema);
	sb_reset(out);
	if (keyvalue)
		sb_addf(out, "host=%s port=%s user=%s password=%s dbname=%s", host, port, user,
		        password, db ? db : dbname);
	else
		sb_addf(out, "postgresql://%s:%s@%s:%s/%s", user, password, host, port,
		        db ? db : dbname);
	if (name)
		sb_addf(out,
		        keyvalue ? " options='-csearch_path=%s'" : "?options=-csearch_path%%3D%s",
		        schema.buf);
	sb_release(&schema);
	PQconninfoFree(opts);
	PQfreemem(msg);
}

TEST(test_password_never_shown)
{
	static const char pw[] = "s3cr3t-pw";
	struct strbuf uri = STRBUF_INIT;
	char *err = NULL;
	for (int kv = 0; kv < 2; kv++) {
		uri_with(&uri, kv, pw, "no_such_db", NULL);
		CHECK(open_at(uri.buf, 0, &err) == NULL);
		CHECK(has(err, "no_such_db"));
		CHECK(!has(err, pw));
		CHECK(has(err, "cannot connect to database postgresql://"));
	}
	/* a connection cut under an open store (the trust cluster ignores the password) */
	(void)db_named("cut");
	uri_with(&uri, 0, pw, NULL, "cut");
	struct store *st = open_at(uri.buf, 0, &err);
	CHECK(st != NULL);
	if (st) {
		struct strbuf sql = STRBUF_INIT;
		sb_addf(&sql, "SELECT pg_terminate_backend(%d)::text", PQbackendPID(st->main.conn));
		char *t = admin_value(sql.buf);
		CHECK_STR(t, "true");
		free(t);
		sb_release(&sql);
		usleep(100 * 1000);
		CHECK_INT(store_begin(st), -1);
		CHECK(has(store_errmsg(st), "connection to the database postgresql://"));
		CHECK(has(store_errmsg(st), " lost"));
		CHECK(!has(store_errmsg(st), pw));
		CHECK_INT(add_bucket(st, "after"), -1);
		CHECK(has(store_errmsg(st), "lost"));
		store_close(st);
	}
	/* a string libpq cannot parse: no piece of it is quoted back */
	static const char *const bad[] = {
	    "postgresql://u:s3cr3t-pw@host:port:bad/db?nonsense=1",
	    "postgresql://u:s3cr3t-pw@host/db?nonsense=1",
	    "host=h password=s3cr3t-pw nonsense=1",
	    "host=h password='s3cr3t-pw",
	    "host=h pass=s3cr3t-pw",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(open_at(bad[i], 0, &err) == NULL);
		CHECK(has(err, "is not a valid libpq URI"));
		CHECK(!has(err, "cr3"));
	}
	/* and the reason when it cannot hold the password */
	CHECK(open_at("postgresql://u@host/db?nonsense=1", 0, &err) == NULL);
	CHECK(has(err, "nonsense"));
	free(err);
	sb_release(&uri);
}

TEST(test_wakeup)
{
	char *err = NULL;
	char *uri = xstrdup(db_named("wake"));
	struct store *a = open_at(uri, 0, &err);
	struct store *b = open_at(uri, 0, &err);
	CHECK(a && b);
	if (!a || !b)
		goto out;
	CHECK_INT(store_wakeup_fd(b), -1); /* not a node yet */
	CHECK_INT(store_wakeup_drain(b), 0);
	CHECK_INT(pg_side_open(b), 0);
	int fd = store_wakeup_fd(b);
	CHECK(fd >= 0);
	CHECK(!readable(fd, 0));
	CHECK_INT(store_wakeup_drain(b), 0);

	/* the caller's transaction: announced at its commit */
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(add_bucket(a, "k1"), 1);
	a->notify_pending = 1;
	CHECK(!readable(fd, 100)); /* nothing before the commit */
	CHECK_INT(store_commit(a), 0);
	CHECK(readable(fd, 5000));
	CHECK_INT(store_wakeup_drain(b), 1);
	CHECK_INT(store_wakeup_drain(b), 0);

	/* rolled back: nothing to announce */
	CHECK_INT(store_begin(a), 0);
	a->notify_pending = 1;
	CHECK_INT(store_rollback(a), 0);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_commit(a), 0);
	CHECK(!readable(fd, 200));

	/* a call in a transaction of its own */
	enum pg_wrap how;
	CHECK_INT(pg_op_begin(a, &how), 0);
	CHECK_INT(how, PG_OWN_TXN);
	a->notify_pending = 1;
	CHECK_INT(pg_op_end(a, how, 0), 0);
	CHECK(readable(fd, 5000));
	CHECK_INT(store_wakeup_drain(b), 1);
	/* a store of another schema is another queue: its work wakes nobody here */
	char *other_uri = xstrdup(db_named("wake_other"));
	struct store *c = open_at(other_uri, 0, &err);
	CHECK(c != NULL);
	if (c) {
		CHECK(strcmp(c->channel, a->channel) != 0);
		CHECK_INT(store_begin(c), 0);
		c->notify_pending = 1;
		CHECK_INT(store_commit(c), 0);
		CHECK(!readable(fd, 200));
		CHECK_INT(store_wakeup_drain(b), 0);
		store_close(c);
	}
	free(other_uri);
	/* the side connection's own queries read no announcement away */
	PGresult *r = pg_query_side(b, "SELECT 1", NULL, "ping");
	CHECK(r != NULL);
	PQclear(r);
	CHECK(pg_query_side(a, "SELECT 1", NULL, "ping") == NULL);
	CHECK(has(store_errmsg(a), "store_node_start"));
out:
	store_close(a);
	store_close(b);
	free(uri);
	free(err);
}

TEST(test_transactions)
{
	struct store *st = open_fresh("txn");
	char *keys;
	/* nested savepoints: each release/rollback_to is the innermost's */
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_begin(st), -1);
	CHECK(has(store_errmsg(st), "already open"));
	CHECK_INT(add_bucket(st, "a"), 1);
	CHECK_INT(store_savepoint(st), 0);
	CHECK_INT(add_bucket(st, "b"), 1);
	CHECK_INT(store_savepoint(st), 0);
	CHECK_INT(add_bucket(st, "c"), 1);
	CHECK_INT(store_rollback_to(st), 0);
	CHECK_INT(store_release(st), 0);
	CHECK_INT(store_release(st), -1);
	CHECK_INT(store_commit(st), 0);
	keys = bucket_keys(st);
	CHECK_STR(keys, "a,b");
	free(keys);
	CHECK_INT(store_commit(st), -1);
	CHECK(has(store_errmsg(st), "no transaction is open"));

	/* an error aborts the batch: nothing more is written until the savepoint is undone */
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_savepoint(st), 0);
	CHECK_INT(add_bucket(st, "a"), -1); /* its key exists */
	CHECK(has(store_errmsg(st), "cannot add a bucket: duplicate key"));
	CHECK_INT(add_bucket(st, "d"), -1);
	enum pg_wrap how;
	CHECK_INT(pg_op_begin(st, &how), -1);
	CHECK(has(store_errmsg(st), "aborted by an earlier error"));
	CHECK_INT(store_rollback_to(st), 0);
	CHECK_INT(add_bucket(st, "e"), 1);
	CHECK_INT(store_commit(st), 0);
	keys = bucket_keys(st);
	CHECK_STR(keys, "a,b,e");
	free(keys);

	/* committing an aborted transaction fails (the server would say ROLLBACK quietly) */
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(add_bucket(st, "f"), 1);
	CHECK_INT(add_bucket(st, "f"), -1);
	CHECK_INT(store_commit(st), -1);
	CHECK(has(store_errmsg(st), "rolled back"));
	keys = bucket_keys(st);
	CHECK_STR(keys, "a,b,e");
	free(keys);

	/* an atomic call joined to a batch: its failure undoes it alone */
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(pg_op_begin_atomic(st, &how), 0);
	CHECK_INT(how, PG_SAVEPOINT);
	CHECK_INT(add_bucket(st, "g"), 1);
	CHECK_INT(add_bucket(st, "g"), -1);
	CHECK_INT(pg_op_end(st, how, -1), -1);
	CHECK_INT(pg_op_begin(st, &how), 0);
	CHECK_INT(how, PG_JOINED);
	CHECK_INT(add_bucket(st, "h"), 1);
	CHECK_INT(pg_op_end(st, how, 0), 0);
	CHECK_INT(store_commit(st), 0);
	keys = bucket_keys(st);
	CHECK_STR(keys, "a,b,e,h");
	free(keys);

	/* on its own: committed, or rolled back on failure */
	CHECK_INT(pg_op_begin_atomic(st, &how), 0);
	CHECK_INT(how, PG_OWN_TXN);
	CHECK_INT(add_bucket(st, "i"), 1);
	CHECK_INT(pg_op_end(st, how, 1), 1);
	CHECK_INT(pg_op_begin(st, &how), 0);
	CHECK_INT(add_bucket(st, "j"), 1);
	CHECK_INT(pg_op_end(st, how, -1), -1);
	keys = bucket_keys(st);
	CHECK_STR(keys, "a,b,e,h,i");
	free(keys);
	store_close(st);
}

TEST(test_read_snapshot)
{
	char *err = NULL;
	char *uri = xstrdup(db_named("snap"));
	struct store *a = open_at(uri, 0, &err);
	struct store *b = open_at(uri, STORE_READONLY, &err);
	CHECK(a && b);
	if (a && b) {
		CHECK_INT(add_bucket(a, "x"), 1);
		CHECK_INT(store_read_begin(b), 0);
		char *k = bucket_keys(b);
		CHECK_STR(k, "x");
		free(k);
		CHECK_INT(add_bucket(a, "y"), 1);
		k = bucket_keys(b);
		CHECK_STR(k, "x"); /* the snapshot of the first read */
		free(k);
		store_read_end(b);
		k = bucket_keys(b);
		CHECK_STR(k, "x,y");
		free(k);
		/* inside a write transaction, the reads are its own */
		CHECK_INT(store_begin(a), 0);
		CHECK_INT(add_bucket(a, "z"), 1);
		CHECK_INT(store_read_begin(a), 0);
		k = bucket_keys(a);
		CHECK_STR(k, "x,y,z");
		free(k);
		store_read_end(a);
		CHECK_INT(store_commit(a), 0);
	}
	store_close(a);
	store_close(b);
	free(uri);
	free(err);
}

/* show_setting - the session's value of a setting, malloc'd. */
static char *show_setting(struct store *st, const char *name)
{
	static const char sql[] = "SELECT current_setting($1)";
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, name);
	PGresult *r = pg_query(st, sql, &p, "show a setting");
	char *v = r ? pg_get_dup(r, 0, 0) : xstrdup(store_errmsg(st));
	PQclear(r);
	return v;
}

TEST(test_busy)
{
	char *err = NULL;
	char *uri = xstrdup(db_named("busy"));
	struct store *a = open_at(uri, 0, &err);
	struct store *b = open_at(uri, 0, &err);
	CHECK(a && b);
	if (a && b) {
		CHECK_INT(add_bucket(a, "k"), 1);
		CHECK_INT(store_begin(a), 0);
		CHECK_INT(pg_run(a, "UPDATE buckets SET tokens = 2 WHERE key = 'k'", NULL, "hold"),
		          1);
		store_set_busy_timeout(b, 100);
		int64_t t0 = clock_mono_ms();
		CHECK_INT(pg_run(b, "UPDATE buckets SET tokens = 3 WHERE key = 'k'", NULL,
		                 "change a bucket"),
		          -1);
		CHECK(clock_mono_ms() - t0 < 3000);
		CHECK_INT(store_busy(b), 1);
		CHECK(has(store_errmsg(b), "lock timeout"));
		CHECK_INT(add_bucket(b, "other"), 1); /* not in a transaction: b works on */
		CHECK_INT(store_busy(b), 1);          /* till the next failure says otherwise */
		CHECK_INT(add_bucket(b, "other"), -1);
		CHECK_INT(store_busy(b), 0);
		CHECK_INT(store_rollback(a), 0);

		/* a timeout set inside a transaction outlives its rollback (which undoes SETs) */
		store_set_busy_timeout(b, 5000);
		CHECK_INT(store_begin(b), 0);
		store_set_busy_timeout(b, 250);
		CHECK_INT(store_rollback(b), 0);
		char *v = show_setting(b, "lock_timeout");
		CHECK_STR(v, "250ms");
		free(v);
		CHECK_INT(store_begin(b), 0);
		CHECK_INT(store_savepoint(b), 0);
		store_set_busy_timeout(b, 300);
		CHECK_INT(store_rollback_to(b), 0);
		v = show_setting(b, "lock_timeout");
		CHECK_STR(v, "300ms");
		free(v);
		CHECK_INT(add_bucket(b, "other"), -1); /* aborted: set once it is over */
		store_set_busy_timeout(b, 350);
		CHECK_INT(store_commit(b), -1);
		v = show_setting(b, "lock_timeout");
		CHECK_STR(v, "350ms");
		free(v);
	}
	store_close(a);
	store_close(b);
	free(uri);
	free(err);
}

TEST(test_params)
{
	struct store *st = open_fresh("params");
	static const char sql[] = "SELECT $1::bigint, $2::bigint, $3::float8, $4::text, $5::text, "
	                          "$1::bigint > 0";
	for (int round = 0; round < 2; round++) {
		struct pg_params p;
		pg_params_init(&p);
		pg_param_i64(&p, INT64_C(-9007199254740993));
		pg_param_i64_or_null(&p, -1, -1);
		pg_param_double(&p, 0.1);
		pg_param_text(&p, "caf\xc3\xa9 'quoted'");
		pg_param_text(&p, NULL);
		PGresult *r = pg_query(st, sql, &p, "echo");
		CHECK(r != NULL);
		if (!r)
			continue;
		CHECK_INT(pg_get_i64(r, 0, 0, 0), INT64_C(-9007199254740993));
		CHECK_INT(pg_get_i64(r, 0, 1, 42), 42);
		CHECK(pg_get_double(r, 0, 2, 0) == 0.1);
		CHECK_STR(pg_get_text(r, 0, 3), "caf\xc3\xa9 'quoted'");
		CHECK(pg_get_text(r, 0, 4) == NULL);
		CHECK(pg_get_dup(r, 0, 4) == NULL);
		CHECK_INT(pg_get_i64(r, 0, 5, 7), 0);
		CHECK_INT(pg_get_i64(r, 1, 0, 7), 7); /* no such row: the default */
		PQclear(r);
	}
	CHECK_INT(st->main.nprepared, 1); /* prepared once, found again by its address */
	/* a text built at run time: another statement later at the same address runs as
	 * itself, and past the cache's size statements run unprepared */
	char buf[64];
	for (int i = 0; i < PG_STMTS_MAX + 5; i++) {
		snprintf(buf, sizeof(buf), "SELECT %d", i);
		PGresult *r = pg_query(st, buf, NULL, "select a number");
		CHECK_INT(r ? pg_get_i64(r, 0, 0, -1) : -2, i);
		PQclear(r);
	}
	CHECK_INT(st->main.nprepared, PG_STMTS_MAX);
	snprintf(buf, sizeof(buf), "SELECT %d", 3); /* the same text: its statement again */
	PGresult *r3 = pg_query(st, buf, NULL, "select a number");
	CHECK_INT(r3 ? pg_get_i64(r3, 0, 0, -1) : -2, 3);
	PQclear(r3);
	CHECK(pg_query(st, "SELECT nonsense FROM nowhere", NULL, "read nowhere") == NULL);
	CHECK(has(store_errmsg(st), "cannot read nowhere: relation \"nowhere\" does not exist"));
	CHECK(pg_query(st, "SELECT 1/0", NULL, "cannot divide") == NULL);
	CHECK(has(store_errmsg(st), "cannot divide: division by zero"));
	CHECK_INT(add_bucket(st, "n"), 1);
	CHECK_INT(pg_run(st, "UPDATE buckets SET tokens = 1", NULL, "touch"), 1);
	store_close(st);
}

/* sync_commit - the session's synchronous_commit. */
static char *sync_commit(struct store *st)
{
	PGresult *r = pg_query(st, "SHOW synchronous_commit", NULL, "show synchronous_commit");
	char *v = r ? pg_get_dup(r, 0, 0) : xstrdup(store_errmsg(st));
	PQclear(r);
	return v;
}

TEST(test_durable_commits)
{
	char *err = NULL, *v;
	char *uri = xstrdup(db_named("durable"));
	char *db = PQdb(pg_admin);
	struct strbuf sql = STRBUF_INIT;
	/* a database set to lose its last commits in a crash: a writer's session is not */
	sb_addf(&sql, "ALTER DATABASE \"%s\" SET synchronous_commit = off", db);
	pg_admin_exec(sql.buf);
	struct store *st = open_at(uri, 0, &err);
	CHECK(st != NULL);
	if (st) {
		v = sync_commit(st);
		CHECK_STR(v, "on");
		free(v);
		store_close(st);
	}
	/* unless its connection string says so: the user's choice */
	if (strncmp(uri, "postgres", 8) == 0) {
		struct strbuf off = STRBUF_INIT;
		sb_addf(&off, "%s%%20-csynchronous_commit%%3Doff", uri);
		st = open_at(off.buf, 0, &err);
		CHECK(st != NULL);
		if (st) {
			v = sync_commit(st);
			CHECK_STR(v, "off");
			free(v);
			store_close(st);
		}
		sb_release(&off);
	}
	sb_reset(&sql);
	sb_addf(&sql, "ALTER DATABASE \"%s\" RESET synchronous_commit", db);
	pg_admin_exec(sql.buf);
	sb_release(&sql);
	free(uri);
	free(err);
}

TEST(test_file_remaining_trigger)
{
	/* a file's jobs not yet ended, kept by the schema's trigger as jobs change state */
	struct store *st = open_fresh("trigger");
	CHECK_INT(pg_run(st,
	                 "INSERT INTO files (id, name, hash, ingested_ms, remaining) "
	                 "VALUES (1, 'f', 'h', 0, 2)",
	                 NULL, "add a file"),
	          1);
	CHECK_INT(pg_run(st,
	                 "INSERT INTO jobs (id, state, op_id, spec_json, next_run_ms, created_ms, "
	                 "updated_ms, file_id) VALUES (1, 1, 'o', '{}', 0, 0, 0, 1), "
	                 "(2, 1, 'o', '{}', 0, 0, 0, 1), (3, 1, 'o', '{}', 0, 0, 0, NULL)",
	                 NULL, "add jobs"),
	          3);
	static const char set_state[] = "UPDATE jobs SET state = $2 WHERE id = $1";
	static const char remaining[] = "SELECT remaining FROM files WHERE id = 1";
	static const int steps[][3] = {
	    /* job, to, remaining after */
	    {1, 2, 2}, {1, 3, 1}, {1, 4, 1}, {3, 3, 1}, {2, 6, 0}, {1, 0, 1},
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct pg_params p;
		pg_params_init(&p);
		pg_param_i64(&p, steps[i][0]);
		pg_param_i64(&p, steps[i][1]);
		CHECK_INT(pg_run(st, set_state, &p, "change a state"), 1);
		PGresult *r = pg_query(st, remaining, NULL, "read remaining");
		CHECK_INT(r ? pg_get_i64(r, 0, 0, -1) : -2, steps[i][2]);
		PQclear(r);
	}
	/* in a node's group commit, the file's row is not locked till the commit: other
	 * nodes ending jobs of the same file do not wait for the whole batch */
	char *err = NULL;
	struct store *other = NULL;
	CHECK_INT(store_reopen_test(0, &other, &err), 0);
	static const char lock_file[] = "SELECT id FROM files WHERE id = 1 FOR UPDATE NOWAIT";
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(pg_run(st, "UPDATE jobs SET state = 5 WHERE id = 1", NULL, "end"), 1);
	PGresult *r = pg_query(st, remaining, NULL, "read remaining");
	CHECK_INT(r ? pg_get_i64(r, 0, 0, -1) : -2, 1); /* counted at the commit */
	PQclear(r);
	if (other) {
		CHECK_INT(store_begin(other), 0);
		r = pg_query(other, lock_file, NULL, "lock the file");
		CHECK(r != NULL);
		PQclear(r);
		CHECK_INT(store_rollback(other), 0);
	}
	CHECK_INT(store_commit(st), 0);
	r = pg_query(st, remaining, NULL, "read remaining");
	CHECK_INT(r ? pg_get_i64(r, 0, 0, -1) : -2, 0);
	PQclear(r);
	store_close(other);
	free(err);

	/* once its results file is chosen, the count stays as it was */
	CHECK_INT(pg_run(st, "UPDATE files SET results = 'r' WHERE id = 1", NULL, "choose"), 1);
	CHECK_INT(pg_run(st, "UPDATE jobs SET state = 0 WHERE id = 1", NULL, "retry"), 1);
	r = pg_query(st, remaining, NULL, "read remaining");
	CHECK_INT(r ? pg_get_i64(r, 0, 0, -1) : -2, 0);
	PQclear(r);
	store_close(st);
}

int main(void)
{
	log_set_level(LOG_WARN);
	fixture_begin("test_pg");
	if (!fixture_pg()) {
		fprintf(stderr, "skipped: no database (set SEGSPOOL_TEST_PG to a libpq URI)\n");
		fixture_end();
		return 77;
	}
	RUN(test_migrate_concurrently);
	RUN(test_reader);
	RUN(test_password_never_shown);
	RUN(test_wakeup);
	RUN(test_transactions);
	RUN(test_read_snapshot);
	RUN(test_busy);
	RUN(test_params);
	RUN(test_file_remaining_trigger);
	RUN(test_durable_commits);
	fixture_end();
	return tl_finish();
}
