/* test_store_sqlite.c - what only the SQLite backend has: its file (the header's
 * version and application id, a file that is not a database, a missing one), the
 * migrations it carries, and a database or WAL removed or replaced under an open store.
 * The store API itself is test_store.c's. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "store_fixture.h"
#include "strbuf.h"
#include "testlib.h"
#include "util.h"

/* generated from sql/sqlite/NNN_*.sql: the schema version a new database gets */
extern const size_t store_migration_count;

/* header_u32 - a big-endian field of the SQLite file header. */
static uint32_t header_u32(const char *path, off_t off)
{
	unsigned char b[4] = {0};
	int fd = open(path, O_RDONLY);
	if (fd >= 0) {
		if (pread(fd, b, 4, off) != 4)
			memset(b, 0, 4);
		close(fd);
	}
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* patch_header_u32 - overwrites a header field, as another program might have. */
static void patch_header_u32(const char *path, off_t off, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
	                      (unsigned char)(v >> 8), (unsigned char)v};
	int fd = open(path, O_WRONLY);
	if (fd >= 0) {
		CHECK(pwrite(fd, b, 4, off) == 4);
		close(fd);
	}
}

TEST(test_open_migrate_reopen)
{
	struct store *st = open_fresh("migrate.db");
	struct job_new j = new_job("listSources", "k1", 0, 0);
	int64_t id = insert(st, &j, 1000);
	CHECK(id > 0);
	store_close(st);
	const char *path = dbpath.buf;
	CHECK_INT(header_u32(path, 60), store_migration_count); /* user_version */
	CHECK_INT(header_u32(path, 68), 0x53475350);            /* application_id */
	CHECK_INT(header_u32(path, 18) >> 16, 0x0202);          /* WAL: write and read versions 2 */
	CHECK_INT(header_u32(path, 16) >> 16, 2048);            /* page size of a new database */

	char *err = NULL;
	CHECK_INT(store_open(path, 0, &st, &err), 0);
	CHECK_INT(state_of(st, id), JS_QUEUED);
	store_close(st);
	CHECK_INT(store_open(path, STORE_READONLY, &st, &err), 0);
	CHECK_INT(state_of(st, id), JS_QUEUED);
	store_close(st);
}

TEST(test_newer_schema_refused)
{
	store_close(open_fresh("newer.db"));
	patch_header_u32(dbpath.buf, 60, 99);
	struct store *st = NULL;
	char *err = NULL;
	CHECK_INT(store_open(dbpath.buf, 0, &st, &err), -1);
	CHECK(st == NULL);
	CHECK(err && strstr(err, "schema version 99, newer than this segspool knows"));
	free(err);
}

TEST(test_foreign_database_refused)
{
	store_close(open_fresh("foreign.db"));
	patch_header_u32(dbpath.buf, 68, 0x12345678);
	struct store *st = NULL;
	char *err = NULL;
	CHECK_INT(store_open(dbpath.buf, 0, &st, &err), -1);
	CHECK(err && strstr(err, "is not a segspool database or is corrupt"));
	free(err);
}

TEST(test_corrupt_file)
{
	const char *path = db_named("garbage.db");
	struct strbuf junk = STRBUF_INIT;
	for (int i = 0; i < 200; i++)
		sb_adds(&junk, "this is not an sqlite database at all. ");
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, junk.buf, junk.len) == (ssize_t)junk.len);
	close(fd);
	sb_release(&junk);

	for (int ro = 0; ro <= 1; ro++) {
		struct store *st = NULL;
		char *err = NULL;
		CHECK_INT(store_open(path, ro ? STORE_READONLY : 0, &st, &err), -1);
		CHECK(err && strstr(err, "garbage.db is not a segspool database or is corrupt"));
		CHECK(err && strstr(err, "move it aside"));
		CHECK(err && strstr(err, "not run again unless you move them back into incoming/"));
		free(err);
	}
}

TEST(test_readonly_missing)
{
	const char *path = db_named("missing.db");
	struct store *st = NULL;
	char *err = NULL;
	CHECK_INT(store_open(path, STORE_READONLY, &st, &err), -1);
	CHECK(err && strstr(err, "missing.db does not exist"));
	free(err);
	CHECK(access(path, F_OK) != 0); /* and it was not created */
}

/* db_file - the database's path with suffix ("-wal", ".moved"), in a static buffer. */
static const char *db_file(const char *suffix)
{
	static char buf[512];
	snprintf(buf, sizeof(buf), "%s%s", dbpath.buf, suffix);
	return buf;
}

/* rename_path - the database's file with one suffix renamed to another. */
static void rename_path(const char *from_suffix, const char *to_suffix)
{
	char from[512];
	snprintf(from, sizeof(from), "%s", db_file(from_suffix));
	CHECK_INT(rename(from, db_file(to_suffix)), 0);
}

/* test_check_file - the database or its WAL removed or replaced under an open store. */
TEST(test_check_file)
{
	struct store *st = open_fresh("vanish.db");
	char *err = NULL;
	CHECK_INT(store_check_file(st, &err), 0);
	CHECK(err == NULL);
	/* the WAL renamed away: the path no longer names it */
	rename_path("-wal", "-wal.moved");
	CHECK_INT(store_check_file(st, &err), -1);
	CHECK(err && strstr(err, "-wal was removed"));
	free(err);
	/* a different file at the WAL's path */
	int fd = open(db_file("-wal"), O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0);
	close(fd);
	CHECK_INT(store_check_file(st, &err), -1);
	CHECK(err && strstr(err, "-wal was replaced"));
	free(err);
	rename_path("-wal.moved", "-wal");
	CHECK_INT(store_check_file(st, &err), 0);
	/* the database unlinked: no link left on the open file */
	CHECK_INT(unlink(dbpath.buf), 0);
	CHECK_INT(store_check_file(st, &err), -1);
	CHECK(err && strstr(err, "database") && strstr(err, "was removed"));
	free(err);
	store_close(st);
	/* replaced by another file */
	st = open_fresh("vanish2.db");
	rename_path("", ".moved");
	fd = open(dbpath.buf, O_CREAT | O_WRONLY, 0600);
	close(fd);
	CHECK_INT(store_check_file(st, &err), -1);
	CHECK(err && strstr(err, "was replaced by another file"));
	free(err);
	store_close(st);
	unlink(db_file(".moved"));
	/* a reader checks nothing */
	st = open_fresh("vanish3.db");
	store_close(st);
	CHECK_INT(store_open(dbpath.buf, STORE_READONLY, &st, &err), 0);
	CHECK_INT(store_check_file(st, &err), 0);
	store_close(st);
}

int main(void)
{
	log_set_level(LOG_WARN);
	fixture_begin("test_store_sqlite");
	RUN(test_open_migrate_reopen);
	RUN(test_newer_schema_refused);
	RUN(test_foreign_database_refused);
	RUN(test_corrupt_file);
	RUN(test_readonly_missing);
	RUN(test_check_file);
	fixture_end();
	return tl_finish();
}
