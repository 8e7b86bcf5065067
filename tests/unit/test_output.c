/* test_output - atomic output files: .part then rename, directories made on the way,
 * symlinks and escaping paths refused, a full disk reported cleanly. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "output.h"
#include "strbuf.h"
#include "testlib.h"
#include "util.h"

static char base_dir[] = "/tmp/test_output.XXXXXX";
static int out_fd = -1;

#include "testfs.h"

/* contains - err's text has needle. */
static int contains(const struct strbuf *err, const char *needle)
{
	if (strstr(err->buf, needle))
		return 1;
	fprintf(stderr, "  message was: %s\n", err->buf);
	return 0;
}

TEST(nested_commit)
{
	struct output_file *of = NULL;
	struct strbuf err = STRBUF_INIT, text = STRBUF_INIT;
	CHECK_INT(output_open(out_fd, "a/b/c.jsonl", &of, &err), 0);
	CHECK(of != NULL);
	CHECK_STR(err.buf, "");
	struct stat st;
	CHECK_INT(stat(path_of("out/a/b"), &st), 0);
	CHECK(S_ISDIR(st.st_mode));
	CHECK_INT(st.st_mode & 07777, 0755);
	CHECK_INT(output_append(of, "{\"i\":1}\n", 8), 0);
	CHECK_INT(output_append(of, "{\"i\":2}\n", 8), 0);
	/* before the commit: only the hidden .part */
	CHECK(exists(path_of("out/a/b/.c.jsonl.part")));
	CHECK(!exists(path_of("out/a/b/c.jsonl")));
	CHECK_INT(output_commit(of, &err), 0);
	CHECK(!exists(path_of("out/a/b/.c.jsonl.part")));
	CHECK_INT(read_text(path_of("out/a/b/c.jsonl"), &text), 0);
	CHECK_STR(text.buf, "{\"i\":1}\n{\"i\":2}\n");
	CHECK_INT(stat(path_of("out/a/b/c.jsonl"), &st), 0);
	CHECK_INT(st.st_mode & 0777, 0644 & ~0022);
	CHECK_INT(count_entries(path_of("out/a/b")), 1);

	/* an existing directory on the way is reused */
	CHECK_INT(output_write(out_fd, "a/top.json", "{}", 2, &err), 0);
	CHECK_INT(read_text(path_of("out/a/top.json"), &text), 0);
	CHECK_STR(text.buf, "{}");
	sb_release(&err);
	sb_release(&text);
}

TEST(abort_leaves_nothing)
{
	struct output_file *of = NULL;
	struct strbuf err = STRBUF_INIT;
	CHECK_INT(output_open(out_fd, "ab/x.json", &of, &err), 0);
	CHECK_INT(output_append(of, "partial", 7), 0);
	CHECK(exists(path_of("out/ab/.x.json.part")));
	output_abort(of);
	CHECK_INT(count_entries(path_of("out/ab")), 0);
	output_abort(NULL);

	/* aborting leaves an earlier complete output alone */
	CHECK_INT(output_write(out_fd, "ab/y.json", "old", 3, &err), 0);
	CHECK_INT(output_open(out_fd, "ab/y.json", &of, &err), 0);
	CHECK_INT(output_append(of, "new", 3), 0);
	output_abort(of);
	struct strbuf text = STRBUF_INIT;
	CHECK_INT(read_text(path_of("out/ab/y.json"), &text), 0);
	CHECK_STR(text.buf, "old");
	CHECK_INT(count_entries(path_of("out/ab")), 1);
	sb_release(&text);
	sb_release(&err);
}

TEST(symlinks_refused)
{
	struct strbuf err = STRBUF_INIT;
	CHECK_INT(mkdir(path_of("elsewhere"), 0755), 0);
	CHECK_INT(symlink(path_of("elsewhere"), path_of("out/link")), 0);
	CHECK_INT(output_write(out_fd, "link/f.json", "{}", 2, &err), -1);
	CHECK(contains(&err, "output path link/f.json: link is a symbolic link; outputs never "
	                     "follow links out of the output directory"));
	CHECK_INT(count_entries(path_of("elsewhere")), 0);

	/* deeper down, and with a relative link */
	CHECK_INT(mkdir(path_of("out/a2"), 0755), 0);
	CHECK_INT(symlink("../../elsewhere", path_of("out/a2/lnk")), 0);
	sb_reset(&err);
	CHECK_INT(output_write(out_fd, "a2/lnk/deep/f.json", "{}", 2, &err), -1);
	CHECK(contains(&err, "a2/lnk is a symbolic link"));
	CHECK_INT(count_entries(path_of("elsewhere")), 0);

	/* a file where a directory should be */
	write_text(path_of("out/plain"), "x");
	sb_reset(&err);
	CHECK_INT(output_write(out_fd, "plain/f.json", "{}", 2, &err), -1);
	CHECK(contains(&err, "output path plain/f.json: plain is not a directory"));

	/* the final name may be a symlink: it is replaced, never written through */
	write_text(path_of("victim"), "precious");
	CHECK_INT(symlink(path_of("victim"), path_of("out/s.json")), 0);
	sb_reset(&err);
	CHECK_INT(output_write(out_fd, "s.json", "{}", 2, &err), 0);
	struct stat st;
	CHECK_INT(lstat(path_of("out/s.json"), &st), 0);
	CHECK(S_ISREG(st.st_mode));
	struct strbuf text = STRBUF_INIT;
	CHECK_INT(read_text(path_of("victim"), &text), 0);
	CHECK_STR(text.buf, "precious");

	/* the final name an existing directory */
	CHECK_INT(mkdir(path_of("out/isdir.json"), 0755), 0);
	sb_reset(&err);
	CHECK_INT(output_write(out_fd, "isdir.json", "{}", 2, &err), -1);
	CHECK(contains(&err, "is a directory"));
	sb_release(&text);
	sb_release(&err);
}

TEST(lexical_refusals)
{
	static const char *const bad[] = {
	    "../x.json", "a/../../x.json", "a/..",  "/etc/x.json", "", "a//b.json",
	    "a/",        "./x.json",       "a/./b", "a\nb.json",
	};
	struct output_file *of;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct strbuf err = STRBUF_INIT;
		of = (struct output_file *)&of; /* must be reset to NULL on failure */
		CHECK_INT(output_open(out_fd, bad[i], &of, &err), -1);
		CHECK(of == NULL);
		CHECK(strncmp(err.buf, "output path ", 12) == 0);
		sb_reset(&err);
		CHECK_INT(output_check_dirs(out_fd, bad[i], &err), -1);
		CHECK(err.len > 0);
		sb_release(&err);
	}
	struct strbuf err = STRBUF_INIT;
	CHECK_INT(output_write(out_fd, "/etc/x.json", "", 0, &err), -1);
	CHECK(contains(&err, "must be relative"));
	sb_reset(&err);
	CHECK_INT(output_write(out_fd, "../x.json", "", 0, &err), -1);
	CHECK(contains(&err, "\"..\""));
	CHECK(!exists(path_of("x.json")));
	/* a directory that merely starts with dots is fine; a hidden file name is not (the
	 * temporary files are hidden) */
	sb_reset(&err);
	CHECK_INT(output_write(out_fd, "..x/a...json", "{}", 2, &err), 0);
	CHECK(exists(path_of("out/..x/a...json")));
	sb_reset(&err);
	CHECK_INT(output_write(out_fd, "..x/...json", "{}", 2, &err), -1);
	CHECK(contains(&err, "hidden"));
	sb_release(&err);
}

/* name_limit - the file name has room for its ".NAME.part": 249 bytes are written, 250
 * are refused by the check itself (output_path_check, which job validation uses), not
 * by the kernel's "File name too long" once a request has been sent. */
TEST(name_limit)
{
	char name[300];
	memset(name, 'n', sizeof(name));
	memcpy(name + 244, ".json", 6); /* 249 bytes */
	struct strbuf err = STRBUF_INIT;
	CHECK(output_path_check(name) == NULL);
	CHECK_INT(output_write(out_fd, name, "{}", 2, &err), 0);
	char rel[320];
	snprintf(rel, sizeof(rel), "out/%s", name);
	CHECK(exists(path_of(rel)));
	memset(name, 'n', sizeof(name));
	memcpy(name + 245, ".json", 6); /* 250 bytes */
	CHECK(output_path_check(name) != NULL);
	sb_reset(&err);
	CHECK_INT(output_write(out_fd, name, "{}", 2, &err), -1);
	CHECK(contains(&err, "longer than 249 bytes"));
	sb_reset(&err);
	CHECK_INT(output_check_dirs(out_fd, name, &err), -1);
	/* a directory name may take all 255 bytes */
	char path[600];
	memset(path, 'd', 255);
	snprintf(path + 255, sizeof(path) - 255, "/x.json");
	CHECK(output_path_check(path) == NULL);
	sb_reset(&err);
	CHECK_INT(output_write(out_fd, path, "{}", 2, &err), 0);
	sb_release(&err);
}

TEST(overwrite_and_stale_part)
{
	struct strbuf err = STRBUF_INIT, text = STRBUF_INIT;
	CHECK_INT(output_write(out_fd, "o.json", "one", 3, &err), 0);
	CHECK_INT(output_write(out_fd, "o.json", "two!", 4, &err), 0);
	CHECK_INT(read_text(path_of("out/o.json"), &text), 0);
	CHECK_STR(text.buf, "two!");

	/* a crash's leftover .part does not block the next write */
	write_text(path_of("out/.o.json.part"), "garbage from a crash");
	CHECK_INT(output_write(out_fd, "o.json", "three", 5, &err), 0);
	CHECK_INT(read_text(path_of("out/o.json"), &text), 0);
	CHECK_STR(text.buf, "three");
	CHECK(!exists(path_of("out/.o.json.part")));

	/* empty outputs are files too */
	CHECK_INT(output_write(out_fd, "empty.json", "", 0, &err), 0);
	CHECK_INT(read_text(path_of("out/empty.json"), &text), 0);
	CHECK_INT(text.len, 0);
	CHECK_STR(err.buf, "");
	sb_release(&err);
	sb_release(&text);
}

TEST(check_dirs)
{
	struct strbuf err = STRBUF_INIT;
	CHECK_INT(mkdir(path_of("out/cd"), 0755), 0);
	CHECK_INT(mkdir(path_of("out/cd/sub"), 0755), 0);
	CHECK_INT(output_check_dirs(out_fd, "cd/sub/x.json", &err), 0);
	CHECK_INT(output_check_dirs(out_fd, "x.json", &err), 0);
	/* missing directories are fine, and nothing is created */
	CHECK_INT(output_check_dirs(out_fd, "cd/new/deeper/x.json", &err), 0);
	CHECK(!exists(path_of("out/cd/new")));
	CHECK_STR(err.buf, "");

	CHECK_INT(symlink("sub", path_of("out/cd/ln")), 0);
	CHECK_INT(output_check_dirs(out_fd, "cd/ln/x.json", &err), -1);
	CHECK(contains(&err, "cd/ln is a symbolic link"));

	write_text(path_of("out/cd/file"), "x");
	sb_reset(&err);
	CHECK_INT(output_check_dirs(out_fd, "cd/file/x.json", &err), -1);
	CHECK(contains(&err, "cd/file is not a directory"));

	sb_reset(&err);
	CHECK_INT(output_check_dirs(out_fd, "cd/sub", &err), -1);
	CHECK(contains(&err, "is a directory"));

	/* a dangling symlink on the way is still a symlink */
	CHECK_INT(symlink("nowhere", path_of("out/cd/dangling")), 0);
	sb_reset(&err);
	CHECK_INT(output_check_dirs(out_fd, "cd/dangling/x.json", &err), -1);
	CHECK(contains(&err, "cd/dangling is a symbolic link"));
	sb_release(&err);
}

/* full_disk - a 64 KiB tmpfs: writing 1 MB must fail cleanly, with no .part left. */
static void full_disk(void)
{
	const char *mnt = path_of("full");
	char cmd[700];
	if (mkdir(mnt, 0755) < 0)
		return;
	snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=64k tmpfs '%s' 2>/dev/null", mnt);
	if (system(cmd) != 0) {
		fprintf(stderr, "skipped: full-disk output (cannot mount tmpfs)\n");
		return;
	}
	int fd = open(mnt, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	size_t len = 1024 * 1024;
	char *big = xmalloc(len);
	memset(big, 'x', len);
	struct strbuf err = STRBUF_INIT;
	CHECK_INT(output_write(fd, "d/big.jsonl", big, len, &err), -1);
	CHECK(contains(&err, "cannot write output d/big.jsonl: No space left on device"));
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/d", mnt);
	CHECK_INT(count_entries(dir), 0);

	/* with the streaming interface the error surfaces at commit */
	struct output_file *of = NULL;
	sb_reset(&err);
	CHECK_INT(output_open(fd, "d/streamed.jsonl", &of, &err), 0);
	int failed = 0;
	for (int i = 0; i < 32 && !failed; i++)
		failed = output_append(of, big, 64 * 1024) < 0;
	CHECK(failed);
	CHECK_INT(output_commit(of, &err), -1);
	CHECK(contains(&err, "No space left on device"));
	CHECK_INT(count_entries(dir), 0);
	sb_release(&err);
	free(big);
	close(fd);
	snprintf(cmd, sizeof(cmd), "umount '%s'", mnt);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot unmount %s\n", mnt);
}

struct placement {
	int64_t tags[8];
	char why[8][512];
	int n;
};

/* note_failure - output_batch_commit's report, kept for the checks. */
static void note_failure(int64_t tag, const char *why, void *arg)
{
	struct placement *p = arg;
	if (p->n < 8) {
		p->tags[p->n] = tag;
		snprintf(p->why[p->n], sizeof(p->why[0]), "%s", why);
	}
	p->n++;
}

/* stage_text - a whole file staged under tag. */
static int stage_text(struct output_batch *b, const char *path, const char *text, int64_t tag)
{
	struct output_file *of = NULL;
	struct strbuf err = STRBUF_INIT;
	int rc = output_open(out_fd, path, &of, &err);
	if (rc == 0) {
		output_append(of, text, strlen(text));
		rc = output_stage(b, of, tag, &err);
	}
	sb_release(&err);
	return rc;
}

TEST(batch_claims_and_failures)
{
	struct output_batch *b = output_batch_new();
	struct placement p;
	memset(&p, 0, sizeof(p));
	struct strbuf text = STRBUF_INIT;
	CHECK_INT(stage_text(b, "batch/one.json", "1", 11), 0);
	CHECK_INT(stage_text(b, "batch/d1/y.json", "2", 12), 0);
	/* the same name, a directory of a staged file, a file below a staged one */
	CHECK_INT(output_batch_claimant(b, "batch/one.json"), 11);
	CHECK_INT(output_batch_claimant(b, "batch/d1"), 12);
	CHECK_INT(output_batch_claimant(b, "batch/one.json/x"), 11);
	/* neighbours with a common prefix are not claimed */
	CHECK_INT(output_batch_claimant(b, "batch/one.jsonl"), 0);
	CHECK_INT(output_batch_claimant(b, "batch/d"), 0);
	CHECK_INT(output_batch_claimant(b, "batch/d1y.json"), 0);
	/* one file that cannot be renamed into place (a non-empty directory appeared at its
	 * name after it was staged) is reported with its tag; the others land */
	CHECK_INT(stage_text(b, "batch/blocked", "3", 13), 0);
	CHECK_INT(mkdir(path_of("out/batch/blocked"), 0755), 0);
	CHECK_INT(mkdir(path_of("out/batch/blocked/inside"), 0755), 0);
	CHECK_INT(output_batch_commit(b, note_failure, &p), 1);
	CHECK_INT(p.n, 1);
	CHECK_INT(p.tags[0], 13);
	CHECK(strstr(p.why[0], "batch/blocked") != NULL);
	CHECK(!exists(path_of("out/batch/.blocked.part")));
	CHECK_INT(read_text(path_of("out/batch/one.json"), &text), 0);
	CHECK_STR(text.buf, "1");
	CHECK_INT(read_text(path_of("out/batch/d1/y.json"), &text), 0);
	CHECK_STR(text.buf, "2");
	CHECK_INT(output_batch_count(b), 0);
	CHECK_INT(output_batch_claimant(b, "batch/one.json"), 0);
	/* a default name kept free: a file that appeared at it since it was chosen stays */
	struct output_file *of = NULL;
	struct strbuf err = STRBUF_INIT;
	memset(&p, 0, sizeof(p));
	CHECK_INT(output_open(out_fd, "batch/taken.json", &of, &err), 0);
	output_append(of, "new", 3);
	output_keep_existing(of);
	CHECK_INT(output_stage(b, of, 21, &err), 0);
	write_text(path_of("out/batch/taken.json"), "earlier");
	CHECK_INT(output_batch_commit(b, note_failure, &p), 1);
	CHECK_INT(p.tags[0], 21);
	CHECK(strstr(p.why[0], "File exists") != NULL);
	CHECK_INT(read_text(path_of("out/batch/taken.json"), &text), 0);
	CHECK_STR(text.buf, "earlier");
	CHECK(!exists(path_of("out/batch/.taken.json.part")));
	sb_release(&err);
	output_batch_free(b);
	sb_release(&text);
}

/* default_names - the name a job without an output gets, and the form job validation
 * recognises as one: every name the builder makes is recognised, with its OP's length. */
TEST(default_names)
{
	struct strbuf name = STRBUF_INIT;
	output_default_name(&name, "createSource", 12, 0, 1);
	CHECK_STR(name.buf, "createSource-12.json");
	CHECK_INT(output_default_name_op(name.buf), 12);
	sb_reset(&name);
	output_default_name(&name, "listSources", 3, 1, 2);
	CHECK_STR(name.buf, "listSources-3-2.jsonl");
	CHECK_INT(output_default_name_op(name.buf), 11);
	sb_reset(&name);
	output_default_name(&name, "getSource", 9000000000LL, 1, 999);
	CHECK_STR(name.buf, "getSource-9000000000-999.jsonl");
	CHECK_INT(output_default_name_op(name.buf), 9);
	sb_release(&name);

	static const char *const not_default[] = {
	    "createSource.json",        "-12.json",
	    "createSource-.json",       "createSource-12.txt",
	    "createSource-12",          "createSource-1a.json",
	    "createSource-12-.json",    "dir/listSources-3.json",
	    "createSource-12-2-3.json", "createSource-12.json.bak",
	};
	for (size_t i = 0; i < sizeof(not_default) / sizeof(*not_default); i++)
		CHECK_INT(output_default_name_op(not_default[i]), 0);
}

int main(void)
{
	if (testfs_start() < 0)
		return 2;
	umask(022);
	if (mkdir(path_of("out"), 0755) < 0 ||
	    (out_fd = open(path_of("out"), O_DIRECTORY | O_RDONLY | O_CLOEXEC)) < 0) {
		perror(path_of("out"));
		return 2;
	}
	RUN(nested_commit);
	RUN(abort_leaves_nothing);
	RUN(symlinks_refused);
	RUN(lexical_refusals);
	RUN(name_limit);
	RUN(overwrite_and_stale_part);
	RUN(check_dirs);
	RUN(batch_claims_and_failures);
	RUN(full_disk);
	RUN(default_names);
	close(out_fd);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", base_dir);
	return tl_finish();
}
