/* store_fixture.h - where the store tests keep their stores: the one place that knows
 * the backend. The SQLite backend's stores are files in a temporary directory. With
 * SEGSPOOL_TEST_PG set to a libpq URI (or SEGSPOOL_TEST_PG_FILE naming a file holding
 * one: ctest's cluster, tests/pg/pgcluster.py), the stores are PostgreSQL ones instead:
 * each name a schema of its own in that database, made empty when named, so test_store.c
 * runs unchanged on both. Static functions, included by one test file each. */
#ifndef SEGSPOOL_STORE_FIXTURE_H
#define SEGSPOOL_STORE_FIXTURE_H

#include <dirent.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "strbuf.h"
#include "testlib.h"

static char tmpdir[64];
static struct strbuf dbpath = STRBUF_INIT;
static struct strbuf pg_uri = STRBUF_INIT; /* the PostgreSQL database, "" for SQLite */
static PGconn *pg_admin;                   /* makes and drops the tests' schemas */

/* fixture_pg - the stores are PostgreSQL ones (SEGSPOOL_TEST_PG or _FILE was given). */
static inline int fixture_pg(void)
{
	return pg_uri.len > 0;
}

/* pg_admin_exec - runs sql on the fixture's own connection, or the test exits. */
static inline void pg_admin_exec(const char *sql)
{
	PGresult *r = PQexec(pg_admin, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "store_fixture: %s: %s", sql, PQerrorMessage(pg_admin));
		exit(1);
	}
	PQclear(r);
}

/* pg_schema_of - the schema of the store named name: this process's (tests run at once
 * in one database), in letters, digits and _ only. */
static inline void pg_schema_of(const char *name, struct strbuf *out)
{
	sb_addf(out, "t%ld_", (long)getpid());
	for (const char *p = name; *p; p++)
		sb_addch(out, (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ? *p : '_');
}

/* pg_location - the URI of the store in schema: the database's, its search_path that
 * schema (a URI parameter, or a key=value one). */
static inline void pg_location(const char *schema, struct strbuf *out)
{
	sb_reset(out);
	if (strncmp(pg_uri.buf, "postgres", 8) == 0)
		sb_addf(out, "%s%soptions=-csearch_path%%3D%s", pg_uri.buf,
		        strchr(pg_uri.buf, '?') ? "&" : "?", schema);
	else
		sb_addf(out, "%s options='-csearch_path=%s'", pg_uri.buf, schema);
}

/* remove_db - the database and its WAL companions. */
static inline void remove_db(const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	unlink(path);
	sb_addf(&sb, "%s-wal", path);
	unlink(sb.buf);
	sb_reset(&sb);
	sb_addf(&sb, "%s-shm", path);
	unlink(sb.buf);
	sb_release(&sb);
}

/* db_named - a fresh store location named name (any earlier store of that name removed). */
static inline const char *db_named(const char *name)
{
	if (fixture_pg()) {
		struct strbuf schema = STRBUF_INIT, sql = STRBUF_INIT;
		pg_schema_of(name, &schema);
		sb_addf(&sql, "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", schema.buf,
		        schema.buf);
		pg_admin_exec(sql.buf);
		pg_location(schema.buf, &dbpath);
		sb_release(&sql);
		sb_release(&schema);
		return dbpath.buf;
	}
	sb_reset(&dbpath);
	sb_addf(&dbpath, "%s/%s", tmpdir, name);
	remove_db(dbpath.buf);
	return dbpath.buf;
}

/* open_fresh - a new writable store, or the test fails loudly. */
static inline struct store *open_fresh(const char *name)
{
	struct store *st = NULL;
	char *err = NULL;
	if (store_open(db_named(name), 0, &st, &err) < 0) {
		fprintf(stderr, "cannot open %s: %s\n", name, err);
		free(err);
		exit(1);
	}
	return st;
}

/* store_reopen_test - the store of the last db_named/open_fresh again, with flags. */
static inline int store_reopen_test(int flags, struct store **st, char **err)
{
	return store_open(dbpath.buf, flags, st, err);
}

/* fixture_read_pg - the database of SEGSPOOL_TEST_PG, else of the file SEGSPOOL_TEST_PG_FILE
 * names (its first line), into pg_uri; nothing for SQLite. */
static inline void fixture_read_pg(void)
{
	const char *uri = getenv("SEGSPOOL_TEST_PG");
	const char *file = getenv("SEGSPOOL_TEST_PG_FILE");
	char line[1024] = "";
	if ((!uri || !*uri) && file && *file) {
		FILE *f = fopen(file, "r");
		if (!f || !fgets(line, sizeof(line), f)) {
			fprintf(stderr, "store_fixture: cannot read the PostgreSQL URI from %s\n",
			        file);
			exit(1);
		}
		fclose(f);
		line[strcspn(line, "\r\n")] = '\0';
		uri = line;
	}
	if (!uri || !*uri)
		return;
	sb_adds(&pg_uri, uri);
	pg_admin = PQconnectdb(uri);
	if (PQstatus(pg_admin) != CONNECTION_OK) {
		fprintf(stderr, "store_fixture: cannot connect to %s: %s", uri,
		        PQerrorMessage(pg_admin));
		exit(1);
	}
	pg_admin_exec("SET client_min_messages = warning");
}

/* fixture_begin - the temporary directory for the stores; exits on failure. */
static inline void fixture_begin(const char *name)
{
	fixture_read_pg();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/%s.XXXXXX", name);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		exit(1);
	}
}

/* fixture_end - every store of the temporary directory removed, and the directory. */
static inline void fixture_end(void)
{
	if (fixture_pg()) {
		struct strbuf sql = STRBUF_INIT;
		sb_addf(&sql,
		        "DO $$DECLARE s text; BEGIN FOR s IN SELECT nspname FROM pg_namespace "
		        "WHERE nspname LIKE 't%ld\\_%%' LOOP EXECUTE 'DROP SCHEMA ' || s || "
		        "' CASCADE'; END LOOP; END$$",
		        (long)getpid());
		pg_admin_exec(sql.buf);
		sb_release(&sql);
		PQfinish(pg_admin);
		pg_admin = NULL;
		sb_release(&pg_uri);
	}
	DIR *dir = opendir(tmpdir);
	struct dirent *e;
	while (dir && (e = readdir(dir)))
		if (e->d_name[0] != '.') {
			sb_reset(&dbpath);
			sb_addf(&dbpath, "%s/%s", tmpdir, e->d_name);
			unlink(dbpath.buf);
		}
	if (dir)
		closedir(dir);
	rmdir(tmpdir);
	sb_release(&dbpath);
}

/* new_job - a job_new with the fields most tests want. */
static inline struct job_new new_job(const char *op, const char *key, int priority,
                                     int64_t not_before)
{
	struct job_new j = {0};
	j.op_id = op;
	j.spec_json = "{\"op\":\"listSources\",\"params\":{}}";
	j.key = key;
	j.workspace = "default";
	j.priority = priority;
	j.not_before_ms = not_before;
	j.max_attempts = 5;
	return j;
}

/* insert - inserts a job and returns its id (0 on failure). */
static inline int64_t insert(struct store *st, const struct job_new *j, int64_t now)
{
	int64_t id = 0;
	if (store_job_insert(st, j, now, &id) != STORE_INSERTED)
		return 0;
	return id;
}

/* state_of - a job's current state, or -1. */
static inline int state_of(struct store *st, int64_t id)
{
	struct job_row row;
	if (store_get(st, id, &row) != 0)
		return -1;
	int s = (int)row.state;
	job_row_release(&row);
	return s;
}

#endif
