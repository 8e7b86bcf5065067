/* store_fixture.h - where the store tests keep their stores: the one place that knows
 * the backend. The SQLite backend's stores are files in a temporary directory; a second
 * backend gives store_location its own form (a URI and a schema per test) and runs
 * test_store.c unchanged. Static functions, included by one test file each. */
#ifndef SEGSPOOL_STORE_FIXTURE_H
#define SEGSPOOL_STORE_FIXTURE_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "store.h"
#include "strbuf.h"
#include "testlib.h"

static char tmpdir[64];
static struct strbuf dbpath = STRBUF_INIT;

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

/* fixture_begin - the temporary directory for the stores; exits on failure. */
static inline void fixture_begin(const char *name)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/%s.XXXXXX", name);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		exit(1);
	}
}

/* fixture_end - every store of the temporary directory removed, and the directory. */
static inline void fixture_end(void)
{
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
