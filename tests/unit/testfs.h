/* testfs.h - file helpers shared by the spool and output tests. The includer defines
 * base_dir (the test's temporary directory) before including this. */
#ifndef SEGSPOOL_TESTFS_H
#define SEGSPOOL_TESTFS_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "strbuf.h"
#include "util.h"

/* testfs_start - creates base_dir (a mkdtemp template) and quiets the log: the failures
 * the tests provoke log errors, which SEGSPOOL_TEST_VERBOSE shows. 0, or -1 (reported). */
static inline int testfs_start(void)
{
	if (!mkdtemp(base_dir)) {
		perror("mkdtemp");
		return -1;
	}
	if (!getenv("SEGSPOOL_TEST_VERBOSE"))
		log_set_level((enum log_level)(LOG_ERROR + 1));
	return 0;
}

/* path_of - base_dir/rel in a rotating static buffer. */
static inline const char *path_of(const char *rel)
{
	static char buf[4][512];
	static int which;
	which = (which + 1) % 4;
	snprintf(buf[which], sizeof(buf[which]), "%s/%s", base_dir, rel);
	return buf[which];
}

/* write_text - creates a file with text in it. */
static inline void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

/* read_text - a whole small file into sb (reset first); -1 if it cannot be opened. */
static inline int read_text(const char *path, struct strbuf *sb)
{
	sb_reset(sb);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sb_add(sb, buf, n);
	fclose(f);
	return 0;
}

/* exists - path exists as anything, symlinks not followed. */
static inline int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* count_entries - entries in a directory, "." and ".." excluded; -1 if unreadable. */
static inline int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

#endif
