/* test_spool - the spool protocol: open, lock, submit, scan, read, archive, reject,
 * inotify, control files; each test works in a fresh temporary directory. */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spool.h"
#include "strbuf.h"
#include "testlib.h"
#include "util.h"

static char base_dir[] = "/tmp/test_spool.XXXXXX";

#include "testfs.h"

/* fresh_spool - an empty, newly created spool at base_dir/NAME. */
static int fresh_spool(const char *name, struct spool *sp)
{
	return spool_open(path_of(name), 1, sp);
}

struct names {
	char list[16][256];
	int n;
	int stop_at; /* return 7 when the stop_at-th name (1-based) is seen; 0 never */
};

/* collect - a spool_name_fn recording names. */
static int collect(const char *name, void *arg)
{
	struct names *nm = arg;
	if (nm->n < 16)
		snprintf(nm->list[nm->n], sizeof(nm->list[0]), "%s", name);
	nm->n++;
	return nm->stop_at && nm->n == nm->stop_at ? 7 : 0;
}

TEST(open_and_create)
{
	struct spool sp;
	CHECK_INT(spool_open(path_of("missing"), 0, &sp), -1);
	CHECK_INT(fresh_spool("s1", &sp), 0);
	CHECK_INT(sp.lock_fd, -1);
	CHECK_INT(sp.watch_fd, -1);
	CHECK(sp.incoming_fd >= 0 && sp.out_fd >= 0 && sp.control_fd >= 0);
	CHECK_STR(sp.root, path_of("s1"));
	struct stat st;
	CHECK_INT(stat(path_of("s1"), &st), 0);
	CHECK_INT(st.st_mode & 07777, 0700);
	static const char *const dirs[] = {"tmp", "incoming", "rejected", "archive", "control"};
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		char rel[64];
		snprintf(rel, sizeof(rel), "s1/%s", dirs[i]);
		CHECK_INT(stat(path_of(rel), &st), 0);
		CHECK(S_ISDIR(st.st_mode));
		CHECK_INT(st.st_mode & 07777, 0700);
	}
	CHECK_INT(stat(path_of("s1/out"), &st), 0);
	CHECK_INT(st.st_mode & 07777, 0755);
	spool_close(&sp);
	CHECK_INT(sp.incoming_fd, -1);
	CHECK(sp.root == NULL);

	/* reopening an existing spool without create works */
	CHECK_INT(spool_open(path_of("s1"), 0, &sp), 0);
	spool_close(&sp);

	/* a missing subdirectory without create is an error, with create it is made */
	CHECK_INT(rmdir(path_of("s1/control")), 0);
	CHECK_INT(spool_open(path_of("s1"), 0, &sp), -1);
	CHECK_INT(spool_open(path_of("s1"), 1, &sp), 0);
	spool_close(&sp);

	/* a root that is a file */
	write_text(path_of("notadir"), "x");
	CHECK_INT(spool_open(path_of("notadir"), 1, &sp), -1);
	CHECK_INT(spool_open(path_of("notadir"), 0, &sp), -1);

	/* a subdirectory that is a file */
	CHECK_INT(rmdir(path_of("s1/archive")), 0);
	write_text(path_of("s1/archive"), "x");
	CHECK_INT(spool_open(path_of("s1"), 1, &sp), -1);
}

TEST(lock_twice)
{
	struct spool a, b;
	CHECK_INT(fresh_spool("lock", &a), 0);
	CHECK_INT(spool_open(path_of("lock"), 0, &b), 0);
	CHECK_INT(spool_lock_owner(&b), 0); /* no lock file yet */
	CHECK_INT(spool_lock(&a), 0);
	CHECK(a.lock_fd >= 0);
	CHECK_INT(spool_lock(&a), 0); /* idempotent */
	/* flock is per open file description: a second open in one process conflicts */
	CHECK_INT(spool_lock(&b), 1);
	CHECK_INT(b.lock_fd, -1);
	CHECK_INT(spool_lock_owner(&b), getpid());
	struct stat st;
	CHECK_INT(stat(path_of("lock/.lock"), &st), 0);
	CHECK_INT(st.st_mode & 07777, 0600);
	spool_close(&a); /* releases the lock */
	CHECK_INT(spool_lock(&b), 0);
	spool_close(&b);
}

TEST(lock_roles)
{
	struct spool a, b;
	struct lock_owner who;
	CHECK_INT(fresh_spool("roles", &a), 0);
	CHECK_INT(spool_open(path_of("roles"), 0, &b), 0);
	CHECK_INT(spool_lock_holder(&b, &who), -1); /* no lock file yet */
	CHECK_INT(spool_lock_as(&a, "cli:retry"), 0);
	CHECK_INT(spool_lock_holder(&b, &who), 0);
	CHECK_INT(who.pid, getpid());
	CHECK_STR(who.role, "cli:retry");
	CHECK_STR(lock_owner_command(&who), "retry");
	/* a CLI holder is waited for, up to the bound */
	int64_t t0 = clock_mono_ms();
	CHECK_INT(spool_lock_wait(&b, "daemon", 300, &who), 1);
	CHECK(clock_mono_ms() - t0 >= 300);
	CHECK_STR(lock_owner_command(&who), "retry");
	spool_close(&a);
	/* a daemon holder is not */
	CHECK_INT(fresh_spool("roles", &a), 0);
	CHECK_INT(spool_lock(&a), 0);
	t0 = clock_mono_ms();
	CHECK_INT(spool_lock_wait(&b, "daemon", 5000, &who), 1);
	CHECK(clock_mono_ms() - t0 < 1000);
	CHECK(lock_owner_command(&who) == NULL);
	CHECK_INT(who.pid, getpid());
	spool_close(&a);
	/* a CLI command that finishes while the daemon waits: the daemon takes the lock */
	int ready[2];
	CHECK_INT(pipe(ready), 0);
	pid_t kid = fork();
	if (kid == 0) {
		struct spool c;
		if (spool_open(path_of("roles"), 0, &c) < 0 || spool_lock_as(&c, "cli:cancel") != 0)
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		usleep(300 * 1000);
		_exit(0);
	}
	char x;
	CHECK_INT(read(ready[0], &x, 1), 1);
	t0 = clock_mono_ms();
	CHECK_INT(spool_lock_wait(&b, "daemon", 10000, &who), 0);
	int64_t waited = clock_mono_ms() - t0;
	CHECK(waited >= 150 && waited < 5000);
	CHECK_INT(spool_lock_holder(&b, &who), 0);
	CHECK_STR(who.role, "daemon");
	int status = 0;
	waitpid(kid, &status, 0);
	CHECK_INT(status, 0);
	close(ready[0]);
	close(ready[1]);
	spool_close(&b);
}

TEST(names_wanted)
{
	CHECK(spool_name_wanted("a.json"));
	CHECK(spool_name_wanted("a.jsonl"));
	CHECK(!spool_name_wanted(".a.json"));
	CHECK(!spool_name_wanted(".json"));
	CHECK(!spool_name_wanted("a.json.part"));
	CHECK(!spool_name_wanted("a.txt"));
	CHECK(!spool_name_wanted("a.JSON"));
	CHECK(!spool_name_wanted("d/a.json"));
	CHECK(!spool_name_wanted(""));
	char long_name[256];
	memset(long_name, 'x', sizeof(long_name));
	strcpy(long_name + 195, ".json"); /* 200 bytes */
	CHECK(spool_name_wanted(long_name));
	strcpy(long_name + 196, ".json"); /* 201 bytes */
	CHECK(!spool_name_wanted(long_name));
}

/* stem_of - the part of a submitted name after "<ms>-<pid>-<counter>-", or NULL when
 * the stamp is malformed. */
static const char *stem_of(const char *name)
{
	const char *p = name;
	for (int field = 0; field < 3; field++) {
		if (*p < '0' || *p > '9')
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
		if (*p++ != '-')
			return NULL;
	}
	return p;
}

/* submit_one - submits text under hint; returns the stem of the final name (static). */
static const char *submit_one(struct spool *sp, const char *hint, const char *text)
{
	static char stem[256];
	struct strbuf name = STRBUF_INIT;
	stem[0] = '\0';
	if (spool_submit(sp, hint, text, strlen(text), &name) == 0) {
		const char *s = stem_of(name.buf);
		snprintf(stem, sizeof(stem), "%s", s ? s : "(bad stamp)");
		CHECK(spool_name_wanted(name.buf));
	}
	sb_release(&name);
	return stem;
}

TEST(submit)
{
	struct spool sp;
	CHECK_INT(fresh_spool("sub", &sp), 0);
	struct strbuf name = STRBUF_INIT, text = STRBUF_INIT;
	CHECK_INT(spool_submit(&sp, "some/dir/my job!.json", "{\"a\":1}", 7, &name), 0);
	CHECK_STR(stem_of(name.buf), "my_job_.json");
	char rel[512];
	snprintf(rel, sizeof(rel), "sub/incoming/%s", name.buf);
	CHECK_INT(read_text(path_of(rel), &text), 0);
	CHECK_STR(text.buf, "{\"a\":1}");
	struct stat st;
	CHECK_INT(stat(path_of(rel), &st), 0);
	CHECK_INT(st.st_mode & 07777, 0600);
	CHECK_INT(count_entries(path_of("sub/tmp")), 0);

	CHECK_STR(submit_one(&sp, NULL, "{}"), "stdin.json");
	CHECK_STR(submit_one(&sp, "-", "{}"), "stdin.json");
	CHECK_STR(submit_one(&sp, "batch.jsonl", "{}\n{}\n"), "batch.jsonl");
	CHECK_STR(submit_one(&sp, "notes.txt", "{}"), "notes.txt.json");
	CHECK_STR(submit_one(&sp, "/abs/.hidden", "{}"), ".hidden.json");
	CHECK_STR(submit_one(&sp, "dir/", "{}"), "stdin.json");
	CHECK_STR(submit_one(&sp, "caf\xc3\xa9.json", "{}"), "caf__.json");

	/* a long hint is shortened, the extension kept */
	char hint[400];
	memset(hint, 'h', sizeof(hint));
	strcpy(hint + 300, ".jsonl");
	sb_reset(&name);
	CHECK_INT(spool_submit(&sp, hint, "{}", 2, &name), 0);
	CHECK(name.len <= 200);
	CHECK(spool_name_wanted(name.buf));
	CHECK(name.len > 6 && strcmp(name.buf + name.len - 6, ".jsonl") == 0);

	/* the same hint twice gives two files */
	struct strbuf second = STRBUF_INIT;
	sb_reset(&name);
	CHECK_INT(spool_submit(&sp, "same.json", "1", 1, &name), 0);
	CHECK_INT(spool_submit(&sp, "same.json", "2", 1, &second), 0);
	CHECK(strcmp(name.buf, second.buf) != 0);
	CHECK_INT(count_entries(path_of("sub/incoming")), 11);
	CHECK_INT(count_entries(path_of("sub/tmp")), 0);
	sb_release(&second);
	sb_release(&name);
	sb_release(&text);
	spool_close(&sp);
}

TEST(scan_order_and_filters)
{
	struct spool sp;
	CHECK_INT(fresh_spool("scan", &sp), 0);
	write_text(path_of("scan/incoming/b.json"), "{}");
	write_text(path_of("scan/incoming/a.jsonl"), "{}");
	write_text(path_of("scan/incoming/.hidden.json"), "{}");
	write_text(path_of("scan/incoming/c.txt"), "{}");
	write_text(path_of("scan/incoming/.b.json.part"), "{}");
	CHECK_INT(mkdir(path_of("scan/incoming/d.json"), 0700), 0);
	CHECK_INT(symlink("/etc/passwd", path_of("scan/incoming/e.json")), 0);
	struct names nm = {0};
	CHECK_INT(spool_scan(&sp, collect, &nm), 0);
	CHECK_INT(nm.n, 4);
	CHECK_STR(nm.list[0], "a.jsonl");
	CHECK_STR(nm.list[1], "b.json");
	CHECK_STR(nm.list[2], "d.json");
	CHECK_STR(nm.list[3], "e.json");

	/* a second scan sees the same (the shared directory offset is rewound) */
	struct names again = {0};
	CHECK_INT(spool_scan(&sp, collect, &again), 0);
	CHECK_INT(again.n, 4);

	struct names stop = {.stop_at = 2};
	CHECK_INT(spool_scan(&sp, collect, &stop), 7);
	CHECK_INT(stop.n, 2);
	spool_close(&sp);
}

TEST(read_refusals)
{
	struct spool sp;
	CHECK_INT(fresh_spool("read", &sp), 0);
	struct strbuf out = STRBUF_INIT, why = STRBUF_INIT;
	write_text(path_of("read/incoming/ok.json"), "{\"ok\":true}");
	CHECK_INT(spool_read(&sp, "ok.json", 1024, &out, &why, NULL), 0);
	CHECK_STR(out.buf, "{\"ok\":true}");

	write_text(path_of("target"), "secret");
	CHECK_INT(symlink(path_of("target"), path_of("read/incoming/link.json")), 0);
	sb_reset(&out);
	CHECK_INT(spool_read(&sp, "link.json", 1024, &out, &why, NULL), -1);
	CHECK(strstr(why.buf, "symbolic link") != NULL);
	CHECK(strstr(out.buf, "secret") == NULL);

	CHECK_INT(mkdir(path_of("read/incoming/dir.json"), 0700), 0);
	sb_reset(&why);
	CHECK_INT(spool_read(&sp, "dir.json", 1024, &out, &why, NULL), -1);
	CHECK(strstr(why.buf, "directory") != NULL);

	CHECK_INT(mkfifo(path_of("read/incoming/fifo.json"), 0600), 0);
	sb_reset(&why);
	CHECK_INT(spool_read(&sp, "fifo.json", 1024, &out, &why, NULL), -1);
	CHECK(strstr(why.buf, "not a regular file") != NULL);

	sb_reset(&why);
	CHECK_INT(spool_read(&sp, "ok.json", 5, &out, &why, NULL), -1);
	CHECK(strstr(why.buf, "larger than") != NULL);

	sb_reset(&why);
	CHECK_INT(spool_read(&sp, "gone.json", 1024, &out, &why, NULL), -1);
	CHECK(strstr(why.buf, "cannot open") != NULL);
	sb_release(&out);
	sb_release(&why);
	spool_close(&sp);
}

TEST(archive_keep_and_delete)
{
	struct spool sp;
	CHECK_INT(fresh_spool("arch", &sp), 0);
	struct strbuf text = STRBUF_INIT;
	write_text(path_of("arch/incoming/x.json"), "first");
	CHECK_INT(spool_archive(&sp, "x.json", 1), 0);
	CHECK(!exists(path_of("arch/incoming/x.json")));
	CHECK_INT(read_text(path_of("arch/archive/x.json"), &text), 0);
	CHECK_STR(text.buf, "first");

	write_text(path_of("arch/incoming/x.json"), "second");
	CHECK_INT(spool_archive(&sp, "x.json", 1), 0);
	write_text(path_of("arch/incoming/x.json"), "third");
	CHECK_INT(spool_archive(&sp, "x.json", 1), 0);
	CHECK_INT(read_text(path_of("arch/archive/x.json"), &text), 0);
	CHECK_STR(text.buf, "first");
	CHECK_INT(read_text(path_of("arch/archive/x.json.1"), &text), 0);
	CHECK_STR(text.buf, "second");
	CHECK_INT(read_text(path_of("arch/archive/x.json.2"), &text), 0);
	CHECK_STR(text.buf, "third");

	write_text(path_of("arch/incoming/y.json"), "gone");
	CHECK_INT(spool_archive(&sp, "y.json", 0), 0);
	CHECK(!exists(path_of("arch/incoming/y.json")));
	CHECK(!exists(path_of("arch/archive/y.json")));
	CHECK_INT(count_entries(path_of("arch/incoming")), 0);

	CHECK_INT(spool_archive(&sp, "never.json", 1), -1);
	CHECK_INT(spool_archive(&sp, "never.json", 0), -1);
	sb_release(&text);
	spool_close(&sp);
}

TEST(reject)
{
	struct spool sp;
	CHECK_INT(fresh_spool("rej", &sp), 0);
	struct strbuf text = STRBUF_INIT;
	write_text(path_of("rej/incoming/x.json"), "{bad");
	CHECK_INT(spool_reject(&sp, "x.json", "{\"problems\":[1]}"), 0);
	CHECK(!exists(path_of("rej/incoming/x.json")));
	CHECK_INT(read_text(path_of("rej/rejected/x.json"), &text), 0);
	CHECK_STR(text.buf, "{bad");
	CHECK_INT(read_text(path_of("rej/rejected/x.json.error.json"), &text), 0);
	CHECK_STR(text.buf, "{\"problems\":[1]}");
	struct stat st;
	CHECK_INT(stat(path_of("rej/rejected/x.json.error.json"), &st), 0);
	CHECK_INT(st.st_mode & 07777, 0644);

	/* the same name again: suffixed, the first one untouched */
	write_text(path_of("rej/incoming/x.json"), "{worse");
	CHECK_INT(spool_reject(&sp, "x.json", "{\"problems\":[2]}"), 0);
	CHECK_INT(read_text(path_of("rej/rejected/x.json"), &text), 0);
	CHECK_STR(text.buf, "{bad");
	CHECK_INT(read_text(path_of("rej/rejected/x.json.1"), &text), 0);
	CHECK_STR(text.buf, "{worse");
	CHECK_INT(read_text(path_of("rej/rejected/x.json.1.error.json"), &text), 0);
	CHECK_STR(text.buf, "{\"problems\":[2]}");

	/* a directory named like a job */
	CHECK_INT(mkdir(path_of("rej/incoming/d.json"), 0700), 0);
	write_text(path_of("rej/incoming/d.json/inner"), "keep");
	CHECK_INT(spool_reject(&sp, "d.json", "{}"), 0);
	CHECK(!exists(path_of("rej/incoming/d.json")));
	CHECK_INT(lstat(path_of("rej/rejected/d.json"), &st), 0);
	CHECK(S_ISDIR(st.st_mode));
	CHECK_INT(read_text(path_of("rej/rejected/d.json/inner"), &text), 0);
	CHECK_STR(text.buf, "keep");

	/* a symlink: moved itself, its target neither moved nor changed */
	write_text(path_of("victim"), "precious");
	CHECK_INT(symlink(path_of("victim"), path_of("rej/incoming/l.json")), 0);
	CHECK_INT(spool_reject(&sp, "l.json", "{}"), 0);
	CHECK(!exists(path_of("rej/incoming/l.json")));
	CHECK_INT(lstat(path_of("rej/rejected/l.json"), &st), 0);
	CHECK(S_ISLNK(st.st_mode));
	CHECK_INT(lstat(path_of("victim"), &st), 0);
	CHECK(S_ISREG(st.st_mode));
	CHECK_INT(read_text(path_of("victim"), &text), 0);
	CHECK_STR(text.buf, "precious");

	/* vanished before the move: nothing stays in incoming/, no orphan error file */
	CHECK_INT(spool_reject(&sp, "ghost.json", "{}"), 0);
	CHECK(!exists(path_of("rej/rejected/ghost.json.error.json")));
	CHECK_INT(count_entries(path_of("rej/incoming")), 0);
	sb_release(&text);
	spool_close(&sp);
}

/* other_fs_dir - a fresh directory on another filesystem than base_dir (EXDEV for
 * renames into it), or NULL. */
static char *other_fs_dir(void)
{
	static char dir[] = "/dev/shm/test_spool.XXXXXX";
	struct stat a, b;
	if (stat(base_dir, &a) < 0 || stat("/dev/shm", &b) < 0 || a.st_dev == b.st_dev)
		return NULL;
	return mkdtemp(dir);
}

TEST(reject_cannot_move)
{
	char *elsewhere = other_fs_dir();
	if (!elsewhere) {
		fprintf(stderr, "skipped: reject_cannot_move (no second filesystem)\n");
		return;
	}
	struct spool sp;
	CHECK_INT(fresh_spool("stuck", &sp), 0);
	/* rejected/ on another filesystem: the rename fails with EXDEV */
	int far_fd = open(elsewhere, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	CHECK(far_fd >= 0);
	close(sp.rejected_fd);
	sp.rejected_fd = far_fd;

	/* a file is removed instead, so it cannot be rejected over and over */
	write_text(path_of("stuck/incoming/f.json"), "{");
	CHECK_INT(spool_reject(&sp, "f.json", "{}"), 0);
	CHECK(!exists(path_of("stuck/incoming/f.json")));

	/* a non-empty directory cannot be removed either: -1, it stays, no error file */
	CHECK_INT(mkdir(path_of("stuck/incoming/d.json"), 0700), 0);
	write_text(path_of("stuck/incoming/d.json/inner"), "x");
	CHECK_INT(spool_reject(&sp, "d.json", "{}"), -1);
	CHECK(exists(path_of("stuck/incoming/d.json")));
	char errfile[600];
	snprintf(errfile, sizeof(errfile), "%s/d.json.error.json", elsewhere);
	CHECK(!exists(errfile));
	spool_close(&sp);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", elsewhere);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", elsewhere);
}

/* wait_readable - poll fd for up to ms milliseconds. */
static int wait_readable(int fd, int ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	return poll(&pfd, 1, ms);
}

TEST(watch)
{
	struct spool sp;
	CHECK_INT(fresh_spool("watch", &sp), 0);
	int overflow = 0;
	struct names nm = {0};
	CHECK_INT(spool_watch_drain(&sp, collect, &nm, &overflow), -1); /* not started */
	CHECK_INT(spool_watch_start(&sp), 0);
	CHECK(sp.watch_fd >= 0);
	CHECK_INT(spool_watch_drain(&sp, collect, &nm, &overflow), 0); /* nothing yet */
	CHECK_INT(nm.n, 0);

	write_text(path_of("watch/tmp/w.json"), "{}");
	write_text(path_of("watch/tmp/.dot.json"), "{}");
	write_text(path_of("watch/tmp/w.txt"), "{}");
	CHECK_INT(rename(path_of("watch/tmp/.dot.json"), path_of("watch/incoming/.dot.json")), 0);
	CHECK_INT(rename(path_of("watch/tmp/w.txt"), path_of("watch/incoming/w.txt")), 0);
	CHECK_INT(rename(path_of("watch/tmp/w.json"), path_of("watch/incoming/w.json")), 0);
	CHECK_INT(wait_readable(sp.watch_fd, 1000), 1);
	CHECK_INT(spool_watch_drain(&sp, collect, &nm, &overflow), 0);
	CHECK_INT(nm.n, 1);
	CHECK_STR(nm.list[0], "w.json");
	CHECK_INT(overflow, 0);

	/* a writer that writes in place: IN_CLOSE_WRITE */
	write_text(path_of("watch/incoming/direct.jsonl"), "{}");
	CHECK_INT(wait_readable(sp.watch_fd, 1000), 1);
	CHECK_INT(spool_watch_drain(&sp, collect, &nm, &overflow), 0);
	CHECK(nm.n >= 2);
	CHECK_STR(nm.list[1], "direct.jsonl");

	/* a callback that stops the drain asks for a rescan */
	struct names stop = {.stop_at = 1};
	write_text(path_of("watch/tmp/s.json"), "{}");
	CHECK_INT(rename(path_of("watch/tmp/s.json"), path_of("watch/incoming/s.json")), 0);
	CHECK_INT(wait_readable(sp.watch_fd, 1000), 1);
	CHECK_INT(spool_watch_drain(&sp, collect, &stop, &overflow), 7);
	CHECK_INT(overflow, 1);
	spool_close(&sp);
	CHECK_INT(sp.watch_fd, -1);
}

/* read_identity - spool_read reports the inode it read: a file dropped again under the
 * same name with the same content is another inode (and ctime). */
TEST(read_identity)
{
	struct spool sp;
	CHECK_INT(fresh_spool("ident", &sp), 0);
	struct strbuf out = STRBUF_INIT, why = STRBUF_INIT;
	struct stat a, b, path_st;
	write_text(path_of("ident/tmp/n.json"), "{}");
	CHECK_INT(rename(path_of("ident/tmp/n.json"), path_of("ident/incoming/n.json")), 0);
	CHECK_INT(spool_read(&sp, "n.json", 1024, &out, &why, &a), 0);
	CHECK_INT(stat(path_of("ident/incoming/n.json"), &path_st), 0);
	CHECK(a.st_ino == path_st.st_ino && a.st_dev == path_st.st_dev);
	CHECK_INT(spool_archive(&sp, "n.json", 1), 0);
	write_text(path_of("ident/tmp/n.json"), "{}");
	CHECK_INT(rename(path_of("ident/tmp/n.json"), path_of("ident/incoming/n.json")), 0);
	sb_reset(&out);
	CHECK_INT(spool_read(&sp, "n.json", 1024, &out, &why, &b), 0);
	CHECK_STR(out.buf, "{}");
	CHECK(a.st_ino != b.st_ino);
	sb_release(&out);
	sb_release(&why);
	spool_close(&sp);
}

/* dir_ino - the inode of an open directory fd. */
static ino_t dir_ino(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* refresh - incoming/ and out/ removed or replaced under an open spool are reopened (made
 * again when missing), the watch follows incoming/; an output directory outside the
 * spool is checked against its own path; a spool root that is gone is an error. */
TEST(refresh)
{
	struct spool sp;
	CHECK_INT(fresh_spool("re", &sp), 0);
	CHECK_INT(spool_watch_start(&sp), 0);
	CHECK_INT(spool_refresh(&sp, NULL), 0);
	CHECK_INT(spool_refresh(&sp, path_of("re/out")), 0);

	/* incoming/ moved away: the watch asks for a rescan at once */
	{
		struct names moved = {0};
		int why = 0;
		CHECK_INT(rename(path_of("re/incoming"), path_of("re/incoming.gone")), 0);
		CHECK_INT(wait_readable(sp.watch_fd, 1000), 1);
		CHECK_INT(spool_watch_drain(&sp, collect, &moved, &why), 0);
		CHECK_INT(why, SPOOL_WATCH_MOVED);
		CHECK_INT(rename(path_of("re/incoming.gone"), path_of("re/incoming")), 0);
		spool_watch_drain(&sp, collect, &moved, &why);
		CHECK_INT(spool_refresh(&sp, NULL), 0); /* the same directory, back */
	}

	/* removed: made again and reopened */
	CHECK_INT(rmdir(path_of("re/incoming")), 0);
	CHECK_INT(spool_refresh(&sp, NULL), 1);
	struct stat st;
	CHECK_INT(stat(path_of("re/incoming"), &st), 0);
	CHECK(dir_ino(sp.incoming_fd) == st.st_ino);
	CHECK_INT(spool_refresh(&sp, NULL), 0);
	/* the watch is on the new directory */
	struct names nm = {0};
	int overflow = 0;
	spool_watch_drain(&sp, collect, &nm, &overflow); /* the old one's IN_IGNORED */
	nm.n = 0;
	write_text(path_of("re/tmp/w.json"), "{}");
	CHECK_INT(rename(path_of("re/tmp/w.json"), path_of("re/incoming/w.json")), 0);
	CHECK_INT(wait_readable(sp.watch_fd, 1000), 1);
	CHECK_INT(spool_watch_drain(&sp, collect, &nm, &overflow), 0);
	CHECK_INT(nm.n, 1);
	CHECK_STR(nm.list[0], "w.json");
	/* and files in it are scanned */
	nm.n = 0;
	CHECK_INT(spool_scan(&sp, collect, &nm), 0);
	CHECK_INT(nm.n, 1);

	/* replaced (renamed away, a new one made): the new one is opened, the old one's
	 * events no longer come */
	spool_watch_drain(&sp, collect, &nm, &overflow);
	CHECK_INT(rename(path_of("re/incoming"), path_of("re/incoming.old")), 0);
	write_text(path_of("re/incoming.old/q.json"), "{}"); /* queued on the old watch */
	CHECK_INT(mkdir(path_of("re/incoming"), 0700), 0);
	CHECK_INT(spool_refresh(&sp, NULL), 1);
	CHECK_INT(stat(path_of("re/incoming"), &st), 0);
	CHECK(dir_ino(sp.incoming_fd) == st.st_ino);
	nm.n = 0;
	overflow = 0;
	CHECK_INT(spool_watch_drain(&sp, collect, &nm, &overflow), 0);
	CHECK_INT(nm.n, 0); /* neither q.json nor the old watch's end */
	CHECK_INT(overflow, 0);
	write_text(path_of("re/incoming.old/x.json"), "{}");
	write_text(path_of("re/incoming/y.json"), "{}");
	CHECK_INT(wait_readable(sp.watch_fd, 1000), 1);
	CHECK_INT(spool_watch_drain(&sp, collect, &nm, &overflow), 0);
	CHECK_INT(nm.n, 1);
	CHECK_STR(nm.list[0], "y.json");

	/* the spool's out/ */
	CHECK_INT(rmdir(path_of("re/out")), 0);
	CHECK_INT(spool_refresh(&sp, path_of("re/out")), 1);
	CHECK_INT(stat(path_of("re/out"), &st), 0);
	CHECK(dir_ino(sp.out_fd) == st.st_ino);
	CHECK_INT(st.st_mode & 07777, 0755);

	/* an output directory of its own: checked against its path, not SPOOL/out */
	CHECK_INT(mkdir(path_of("elsewhere"), 0755), 0);
	close(sp.out_fd);
	sp.out_fd = open(path_of("elsewhere"), O_RDONLY | O_DIRECTORY);
	CHECK_INT(spool_refresh(&sp, path_of("elsewhere")), 0);
	CHECK_INT(rename(path_of("elsewhere"), path_of("elsewhere.old")), 0);
	CHECK_INT(spool_refresh(&sp, path_of("elsewhere")), 1);
	CHECK_INT(stat(path_of("elsewhere"), &st), 0);
	CHECK(dir_ino(sp.out_fd) == st.st_ino);

	/* the root itself gone: an error (the lock went with it) */
	CHECK_INT(rename(path_of("re"), path_of("re.old")), 0);
	CHECK_INT(spool_refresh(&sp, path_of("elsewhere")), -1);
	spool_close(&sp);
}

TEST(control_files)
{
	struct spool sp;
	CHECK_INT(fresh_spool("ctl", &sp), 0);
	CHECK_INT(spool_control_submit(&sp, "{\"action\":\"retry\",\"ids\":[1]}"), 0);
	CHECK_INT(spool_control_submit(&sp, "{\"action\":\"cancel\",\"ids\":[2]}"), 0);
	write_text(path_of("ctl/control/.half.json.part"), "{");
	write_text(path_of("ctl/control/other.txt"), "x");
	struct names nm = {0};
	CHECK_INT(spool_control_scan(&sp, collect, &nm), 0);
	CHECK_INT(nm.n, 2);
	struct strbuf text = STRBUF_INIT;
	CHECK_INT(spool_control_read(&sp, nm.list[0], &text), 0);
	CHECK_STR(text.buf, "{\"action\":\"retry\",\"ids\":[1]}");
	sb_reset(&text);
	CHECK_INT(spool_control_read(&sp, nm.list[1], &text), 0);
	CHECK_STR(text.buf, "{\"action\":\"cancel\",\"ids\":[2]}");
	CHECK_INT(spool_control_done(&sp, nm.list[0]), 0);
	CHECK_INT(spool_control_done(&sp, nm.list[1]), 0);
	CHECK_INT(spool_control_done(&sp, nm.list[1]), -1);
	sb_reset(&text);
	CHECK_INT(spool_control_read(&sp, "missing.json", &text), -1);
	struct names after = {0};
	CHECK_INT(spool_control_scan(&sp, collect, &after), 0);
	CHECK_INT(after.n, 0);

	/* name order is submission order, past ten files in one millisecond too */
	for (int i = 0; i < 12; i++) {
		char json[32];
		snprintf(json, sizeof(json), "{\"n\":%d}", i);
		CHECK_INT(spool_control_submit(&sp, json), 0);
	}
	struct names many = {0};
	CHECK_INT(spool_control_scan(&sp, collect, &many), 0);
	CHECK_INT(many.n, 12);
	for (int i = 0; i < 12 && i < many.n; i++) {
		char json[32];
		snprintf(json, sizeof(json), "{\"n\":%d}", i);
		sb_reset(&text);
		CHECK_INT(spool_control_read(&sp, many.list[i], &text), 0);
		CHECK_STR(text.buf, json);
	}
	sb_release(&text);
	spool_close(&sp);
}

int main(void)
{
	if (testfs_start() < 0)
		return 2;
	RUN(open_and_create);
	RUN(lock_twice);
	RUN(lock_roles);
	RUN(names_wanted);
	RUN(submit);
	RUN(scan_order_and_filters);
	RUN(read_refusals);
	RUN(archive_keep_and_delete);
	RUN(reject);
	RUN(reject_cannot_move);
	RUN(watch);
	RUN(read_identity);
	RUN(refresh);
	RUN(control_files);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", base_dir);
	return tl_finish();
}
