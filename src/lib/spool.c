/* spool.c - the spool directory protocol: Maildir-style tmp/ -> incoming/ renames, one
 * daemon per spool (flock), inotify with rescans, rejected/ and archive/, control files.
 * Everything below the root is reached with *at() calls on directory fds, so a renamed
 * or replaced path cannot redirect us once the spool is open. */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "strbuf.h"
#include "util.h"

#define SPOOL_NAME_MAX 200
#define CONTROL_MAX (1024 * 1024)
/* how many ".N" suffixes we try before giving up on a crowded archive/ or rejected/ */
#define SUFFIX_TRIES 10000

/* the stamp counter: distinct names for several submissions in one millisecond */
static unsigned long stamp_counter;

struct spool_dir {
	const char *name;
	mode_t mode;
	int follow; /* may be a symlink (the admin may put outputs on another disk) */
	size_t offset;
};

static const struct spool_dir spool_dirs[] = {
    {"tmp", 0700, 0, offsetof(struct spool, tmp_fd)},
    {"incoming", 0700, 0, offsetof(struct spool, incoming_fd)},
    {"rejected", 0700, 0, offsetof(struct spool, rejected_fd)},
    {"archive", 0700, 0, offsetof(struct spool, archive_fd)},
    {"control", 0700, 0, offsetof(struct spool, control_fd)},
    {"out", 0755, 1, offsetof(struct spool, out_fd)},
};

/* dir_fd_slot - the struct spool member that holds d's fd. */
static int *dir_fd_slot(struct spool *sp, const struct spool_dir *d)
{
	return (int *)(void *)((char *)sp + d->offset);
}

/* close_fd - closes *fd if open and marks it closed. */
static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* spool_init_fds - every fd closed, so spool_close is safe on a half-opened spool. */
static void spool_init_fds(struct spool *sp)
{
	sp->root = NULL;
	sp->root_fd = sp->lock_fd = sp->watch_fd = sp->watch_wd = -1;
	for (size_t i = 0; i < ARRAY_SIZE(spool_dirs); i++)
		*dir_fd_slot(sp, &spool_dirs[i]) = -1;
}

/* open_root - the spool directory itself (created 0700 when asked). */
static int open_root(const char *root, int create)
{
	if (create && mkdir(root, 0700) < 0 && errno != EEXIST)
		return error_errno("cannot create spool directory %s", root);
	int fd = open(root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	if (errno == ENOTDIR)
		return error("cannot open spool %s: it exists but is not a directory", root);
	if (errno == ENOENT)
		return error("cannot open spool %s: no such directory", root);
	return error_errno("cannot open spool directory %s", root);
}

/* open_subdir - one of tmp/, incoming/, ...; created when asked. */
static int open_subdir(struct spool *sp, const struct spool_dir *d, int create, int *created)
{
	int made = 0;
	if (create) {
		if (mkdirat(sp->root_fd, d->name, d->mode) == 0)
			*created = made = 1;
		else if (errno != EEXIST)
			return error_errno("cannot create %s/%s", sp->root, d->name);
	}
	int flags = O_DIRECTORY | O_RDONLY | O_CLOEXEC | (d->follow ? 0 : O_NOFOLLOW);
	int fd = openat(sp->root_fd, d->name, flags);
	if (fd >= 0 && made)
		own_like_dir(sp->root_fd, fd); /* made by root's CLI: the service's all the same */
	if (fd >= 0)
		return fd;
	if (errno == ENOENT)
		return error("cannot open %s/%s: missing (is %s a spool?)", sp->root, d->name,
		             sp->root);
	if (errno == ENOTDIR || errno == ELOOP)
		return error("cannot open %s/%s: not a directory", sp->root, d->name);
	return error_errno("cannot open %s/%s", sp->root, d->name);
}

/* spool_open - opens the root and each subdirectory, creating them when asked. */
int spool_open(const char *root, int create, struct spool *sp)
{
	spool_init_fds(sp);
	sp->root_fd = open_root(root, create);
	if (sp->root_fd < 0)
		return -1;
	sp->root = xstrdup(root);
	int created = 0;
	for (size_t i = 0; i < ARRAY_SIZE(spool_dirs); i++) {
		int fd = open_subdir(sp, &spool_dirs[i], create, &created);
		if (fd < 0) {
			spool_close(sp);
			return -1;
		}
		*dir_fd_slot(sp, &spool_dirs[i]) = fd;
	}
	/* new subdirectories are entries of the root: make them durable */
	if (created && fsync_dirfd(sp->root_fd) < 0) {
		spool_close(sp);
		return -1;
	}
	return 0;
}

/* spool_close - closes every fd; closing the lock fd releases the flock. */
void spool_close(struct spool *sp)
{
	for (size_t i = 0; i < ARRAY_SIZE(spool_dirs); i++)
		close_fd(dir_fd_slot(sp, &spool_dirs[i]));
	close_fd(&sp->root_fd);
	close_fd(&sp->lock_fd);
	close_fd(&sp->watch_fd);
	free(sp->root);
	sp->root = NULL;
}

/* write_lock_owner - records who we are in the lock file, so the next process to find
 * it locked can name us, and a daemon can tell a CLI command (worth waiting for) from
 * another daemon. */
static int write_lock_owner(struct spool *sp, int fd, const char *role)
{
	struct strbuf line = STRBUF_INIT;
	lock_owner_line(&line, (long)getpid(), role, "spool", sp->root);
	int rc = 0;
	if (ftruncate(fd, 0) < 0 || pwrite(fd, line.buf, line.len, 0) != (ssize_t)line.len)
		rc = error_errno("cannot write the lock holder into %s/.lock", sp->root);
	sb_release(&line);
	return rc;
}

/* spool_lock_as - takes the lock as role: 0 taken, 1 another process holds it, -1 error. */
int spool_lock_as(struct spool *sp, const char *role)
{
	if (sp->lock_fd >= 0)
		return 0;
	int fd = openat(sp->root_fd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return error_errno("cannot open %s/.lock", sp->root);
	own_like_dir(sp->root_fd, fd); /* root's CLI first: the service must open it after */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int saved = errno;
		close(fd);
		if (saved == EWOULDBLOCK)
			return 1;
		errno = saved;
		return error_errno("cannot lock %s/.lock", sp->root);
	}
	if (write_lock_owner(sp, fd, role) < 0) {
		close(fd);
		return -1;
	}
	sp->lock_fd = fd;
	return 0;
}

/* spool_lock - takes the daemon lock: 0 taken, 1 another process holds it, -1 error. */
int spool_lock(struct spool *sp)
{
	return spool_lock_as(sp, "daemon");
}

/* spool_lock_holder - who the lock file names: 0 with *out set, -1 when it names none. */
int spool_lock_holder(struct spool *sp, struct lock_owner *out)
{
	memset(out, 0, sizeof(*out));
	int fd = openat(sp->root_fd, ".lock", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	char buf[256];
	ssize_t n = pread(fd, buf, sizeof(buf), 0);
	close(fd);
	if (n <= 0)
		return -1;
	return lock_owner_parse(buf, (size_t)n, out);
}

/* spool_lock_owner - the pid the lock holder wrote, or 0 when unknown. */
int spool_lock_owner(struct spool *sp)
{
	struct lock_owner o;
	return spool_lock_holder(sp, &o) == 0 ? (int)o.pid : 0;
}

/* pid_alive - a process of that pid exists (EPERM: it does, not ours). */
static int pid_alive(long pid)
{
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* the pause between tries, and how long a holder may take to write its line */
#define LOCK_POLL_MS 50
#define LOCK_SETTLE_MS 2000

/* spool_lock_wait - spool_lock_as, waiting up to max_wait_ms while a CLI command holds
 * the lock (it holds it for one short transaction), and a moment while the holder has
 * not written its line yet (the file names nobody, or a process that has exited). */
int spool_lock_wait(struct spool *sp, const char *role, int64_t max_wait_ms,
                    struct lock_owner *holder)
{
	int64_t start = clock_mono_ms();
	int logged = 0;
	for (;;) {
		int lk = spool_lock_as(sp, role);
		if (lk != 1)
			return lk;
		int known = spool_lock_holder(sp, holder) == 0 && pid_alive(holder->pid);
		const char *cmd = known ? lock_owner_command(holder) : NULL;
		int64_t waited = clock_mono_ms() - start;
		if (known && !cmd)
			return 1; /* a daemon */
		if (waited >= (cmd ? max_wait_ms : LOCK_SETTLE_MS)) {
			if (!known)
				memset(holder, 0, sizeof(*holder));
			return 1;
		}
		if (cmd && !logged) {
			logmsg(LOG_INFO, "waiting for segspool %s (pid %ld) to finish", cmd,
			       holder->pid);
			logged = 1;
		}
		struct timespec ts = {0, LOCK_POLL_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/* has_suffix - s ends in suffix. */
static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* has_job_extension - ".json" or ".jsonl". */
static int has_job_extension(const char *name)
{
	return has_suffix(name, ".json") || has_suffix(name, ".jsonl");
}

/* spool_name_wanted - no dotfile, no slash, .json or .jsonl, at most SPOOL_NAME_MAX bytes. */
int spool_name_wanted(const char *name)
{
	return name[0] && name[0] != '.' && !strchr(name, '/') && strlen(name) <= SPOOL_NAME_MAX &&
	       has_job_extension(name);
}

/* add_stamp - "<unix ms>-<pid>-<counter>": unique among concurrent submitters. The
 * fixed widths make name order the order of submission within one process. */
static void add_stamp(struct strbuf *sb)
{
	sb_addf(sb, "%013lld-%07ld-%06lu", (long long)clock_wall_ms(), (long)getpid(),
	        ++stamp_counter);
}

/* is_name_char - the characters a submitted name keeps. */
static int is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* hint_base - the base name of hint; stdin's name for none or "-". */
static const char *hint_base(const char *hint)
{
	if (!hint || strcmp(hint, "-") == 0)
		return "stdin.json";
	const char *slash = strrchr(hint, '/');
	const char *base = slash ? slash + 1 : hint;
	return *base ? base : "stdin.json";
}

/* submit_name - stamp, "-", the hint's sanitised base name, a .json/.jsonl extension;
 * the stem is shortened so the whole stays a wanted name. */
static void submit_name(const char *hint, struct strbuf *name)
{
	struct strbuf base = STRBUF_INIT;
	for (const char *p = hint_base(hint); *p; p++)
		sb_addch(&base, is_name_char(*p) ? *p : '_');
	const char *ext = ".json";
	if (has_suffix(base.buf, ".jsonl"))
		ext = ".jsonl";
	if (has_job_extension(base.buf))
		sb_setlen(&base, base.len - strlen(ext));
	sb_reset(name);
	add_stamp(name);
	sb_addch(name, '-');
	size_t room = SPOOL_NAME_MAX - name->len - strlen(ext);
	sb_add(name, base.buf, base.len < room ? base.len : room);
	sb_adds(name, ext);
	sb_release(&base);
}

/* create_in_tmp - tmp/NAME with O_EXCL, written and fsynced; a name taken (by another
 * submitter's clock going backwards) gets a new stamp. */
static int create_in_tmp(struct spool *sp, const char *hint, const void *data, size_t len,
                         struct strbuf *name)
{
	int fd = -1;
	for (int tries = 0; fd < 0 && tries < 100; tries++) {
		submit_name(hint, name);
		fd = openat(sp->tmp_fd, name->buf,
		            O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 && errno != EEXIST)
			return error_errno("cannot create %s/tmp/%s", sp->root, name->buf);
	}
	if (fd < 0)
		return error("cannot create a unique name in %s/tmp", sp->root);
	own_like_dir(sp->root_fd, fd); /* root's `segspool submit` to a service's spool */
	if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		error_errno("cannot write %s/tmp/%s", sp->root, name->buf);
		close(fd);
		unlinkat(sp->tmp_fd, name->buf, 0);
		return -1;
	}
	if (close(fd) < 0) {
		error_errno("cannot write %s/tmp/%s", sp->root, name->buf);
		unlinkat(sp->tmp_fd, name->buf, 0);
		return -1;
	}
	return 0;
}

/* spool_submit - tmp/NAME (complete, fsynced) renamed into incoming/. */
int spool_submit(struct spool *sp, const char *hint, const void *data, size_t len,
                 struct strbuf *final_name)
{
	struct strbuf name = STRBUF_INIT;
	if (create_in_tmp(sp, hint, data, len, &name) < 0) {
		sb_release(&name);
		return -1;
	}
	if (renameat(sp->tmp_fd, name.buf, sp->incoming_fd, name.buf) < 0) {
		error_errno("cannot rename %s/tmp/%s into incoming/", sp->root, name.buf);
		unlinkat(sp->tmp_fd, name.buf, 0);
		sb_release(&name);
		return -1;
	}
	int ret = 0;
	if (fsync_dirfd(sp->incoming_fd) < 0 || fsync_dirfd(sp->tmp_fd) < 0)
		ret = -1;
	if (final_name)
		sb_add(final_name, name.buf, name.len);
	sb_release(&name);
	return ret;
}

/* cmp_names - qsort comparator for an array of C strings. */
static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct name_list {
	char **names;
	size_t n, alloc;
};

/* name_list_add - appends a copy of name. */
static void name_list_add(struct name_list *l, const char *name)
{
	if (l->n == l->alloc) {
		l->alloc = l->alloc ? 2 * l->alloc : 16;
		l->names = xrealloc(l->names, l->alloc * sizeof(*l->names));
	}
	l->names[l->n++] = xstrdup(name);
}

/* name_list_free - frees the names and the array. */
static void name_list_free(struct name_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	l->names = NULL;
	l->n = l->alloc = 0;
}

/* list_dir_sorted - names in dirfd that want() accepts, sorted. The DIR works on a
 * duplicate, which shares the offset with dirfd: hence the rewind. */
static int list_dir_sorted(int dirfd, const char *what, int (*want)(const char *),
                           struct name_list *out)
{
	int dup_fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0)
		return error_errno("cannot list %s", what);
	DIR *dir = fdopendir(dup_fd);
	if (!dir) {
		close(dup_fd);
		return error_errno("cannot list %s", what);
	}
	rewinddir(dir);
	struct dirent *de;
	for (;;) {
		errno = 0;
		de = readdir(dir);
		if (!de)
			break;
		if (want(de->d_name))
			name_list_add(out, de->d_name);
	}
	int saved = errno;
	closedir(dir);
	if (saved) {
		errno = saved;
		name_list_free(out);
		return error_errno("cannot read directory %s", what);
	}
	if (out->n)
		qsort(out->names, out->n, sizeof(*out->names), cmp_names);
	return 0;
}

/* call_each - fn for each name until one returns non-zero (returned). */
static int call_each(const struct name_list *l, spool_name_fn fn, void *arg)
{
	for (size_t i = 0; i < l->n; i++) {
		int ret = fn(l->names[i], arg);
		if (ret)
			return ret;
	}
	return 0;
}

/* spool_scan - wanted names of incoming/ in strcmp order; any file type is reported,
 * since the caller rejects a directory or symlink that carries a job's name. */
int spool_scan(struct spool *sp, spool_name_fn fn, void *arg)
{
	struct name_list l = {0};
	if (list_dir_sorted(sp->incoming_fd, "incoming/", spool_name_wanted, &l) < 0)
		return -1;
	int ret = call_each(&l, fn, arg);
	name_list_free(&l);
	return ret;
}

/* spool_read - a regular file of incoming/, no symlink followed, at most max bytes. */
int spool_read(struct spool *sp, const char *name, size_t max, struct strbuf *out,
               struct strbuf *why, struct stat *st)
{
	return read_file_at_stat(sp->incoming_fd, name, max, out, why, st);
}

/* entry_exists - dirfd/name exists as anything (a dangling symlink counts). */
static int entry_exists(int dirfd, const char *name)
{
	struct stat st;
	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
}

/* suffixed_name - name, or name.N for n > 0. */
static void suffixed_name(struct strbuf *sb, const char *name, int n)
{
	sb_reset(sb);
	sb_adds(sb, name);
	if (n)
		sb_addf(sb, ".%d", n);
}

/* spool_archive - into archive/ under a name never used there (keep), or unlinked. */
int spool_archive(struct spool *sp, const char *name, int keep)
{
	/* No fsync here: the file's jobs are already committed. If a crash loses this move,
	 * the file reappears in incoming/ and is recognised by its identity (name, content
	 * hash, inode and ctime, which a lost rename leaves as they were), and
	 * moved again; an fsync per file would cap ingest at the disk's flush rate. */
	if (!keep) {
		if (unlinkat(sp->incoming_fd, name, 0) < 0)
			return error_errno("cannot remove %s/incoming/%s", sp->root, name);
		return 0;
	}
	struct strbuf target = STRBUF_INIT;
	int ret = -1;
	for (int n = 0; n < SUFFIX_TRIES; n++) {
		suffixed_name(&target, name, n);
		ret = rename_noreplace(sp->incoming_fd, name, sp->archive_fd, target.buf);
		if (ret == 0 || errno != EEXIST)
			break;
	}
	if (ret < 0)
		error_errno("cannot move %s/incoming/%s to archive/", sp->root, name);
	sb_release(&target);
	return ret < 0 ? -1 : 0;
}

/* free_reject_name - the first NAME[.N] for which neither NAME[.N] nor its
 * .error.json exists in rejected/. */
static int free_reject_name(struct spool *sp, const char *name, struct strbuf *target,
                            struct strbuf *errfile)
{
	for (int n = 0; n < SUFFIX_TRIES; n++) {
		suffixed_name(target, name, n);
		sb_reset(errfile);
		sb_addf(errfile, "%s.error.json", target->buf);
		if (!entry_exists(sp->rejected_fd, target->buf) &&
		    !entry_exists(sp->rejected_fd, errfile->buf))
			return 0;
	}
	return error("cannot find a free name for %s in %s/rejected", name, sp->root);
}

/* remove_from_incoming - the last resort for a file that cannot be moved. */
static void remove_from_incoming(struct spool *sp, const char *name)
{
	if (unlinkat(sp->incoming_fd, name, 0) == 0 ||
	    (errno == EISDIR && unlinkat(sp->incoming_fd, name, AT_REMOVEDIR) == 0))
		logmsg(LOG_WARN, "removed %s/incoming/%s, which could not be moved to rejected/",
		       sp->root, name);
	else
		error_errno("cannot remove %s/incoming/%s either", sp->root, name);
}

/* spool_reject - the error file first (so a rejected file is never without its reason),
 * then the entry itself, whatever its type; rename never follows a symlink. Returns -1
 * only when the entry is still in incoming/: the caller must then remember the name and
 * not look at it again, or every rescan would reject it anew. An entry that vanished
 * meanwhile returns 0: there is nothing left to loop on. */
int spool_reject(struct spool *sp, const char *name, const char *error_json)
{
	struct strbuf target = STRBUF_INIT, errfile = STRBUF_INIT;
	int ret = -1;
	if (free_reject_name(sp, name, &target, &errfile) < 0)
		goto out;
	if (write_file_atomic_at(sp->rejected_fd, errfile.buf, error_json, strlen(error_json),
	                         0644) < 0)
		goto out;
	if (rename_noreplace(sp->incoming_fd, name, sp->rejected_fd, target.buf) == 0) {
		ret = 0;
	} else if (errno == ENOENT) {
		/* gone before we could move it: no file to go with the error file */
		logmsg(LOG_WARN, "%s/incoming/%s vanished before it could be rejected", sp->root,
		       name);
		unlinkat(sp->rejected_fd, errfile.buf, 0);
		ret = 0;
	} else {
		error_errno("cannot move %s/incoming/%s to rejected/", sp->root, name);
		remove_from_incoming(sp, name);
		if (entry_exists(sp->incoming_fd, name))
			unlinkat(sp->rejected_fd, errfile.buf, 0); /* nothing was rejected */
		else
			ret = 0;
	}
	if (fsync_dirfd(sp->rejected_fd) < 0 || fsync_dirfd(sp->incoming_fd) < 0)
		logmsg(LOG_WARN, "rejected %s may not be durable yet", name);
out:
	sb_release(&target);
	sb_release(&errfile);
	return ret;
}

/* same_directory - path names the directory open as fd (not a replacement). */
static int same_directory(const char *path, int fd)
{
	struct stat a, b;
	return stat(path, &a) == 0 && fstat(fd, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/* add_incoming_watch - inotify on incoming/ by path, checked to be the incoming/ we have
 * open (inotify takes a path, not a directory fd); a watch on an earlier incoming/ is
 * dropped. */
static int add_incoming_watch(struct spool *sp, int fd)
{
	struct strbuf path = STRBUF_INIT;
	sb_addf(&path, "%s/incoming", sp->root);
	/* MOVE_SELF: incoming/ renamed away, seen at once. A removal is seen by the next
	 * rescan: the fd we hold keeps the directory alive, and DELETE_SELF waits for that */
	uint32_t mask = IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF |
	                IN_Q_OVERFLOW | IN_ONLYDIR;
	int wd = inotify_add_watch(fd, path.buf, mask);
	if (wd < 0) {
		error_errno("cannot watch %s", path.buf);
		goto fail;
	}
	if (!same_directory(path.buf, sp->incoming_fd)) {
		error("cannot watch %s: it was replaced since the spool was opened", path.buf);
		inotify_rm_watch(fd, wd);
		goto fail;
	}
	/* the old directory's watch, if it still exists (renamed away rather than removed) */
	if (sp->watch_wd >= 0 && sp->watch_wd != wd)
		inotify_rm_watch(fd, sp->watch_wd);
	sp->watch_wd = wd;
	sb_release(&path);
	return 0;
fail:
	sb_release(&path);
	return -1;
}

/* spool_watch_start - inotify on incoming/. */
int spool_watch_start(struct spool *sp)
{
	if (sp->watch_fd >= 0)
		return 0;
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return error_errno("cannot start inotify");
	if (add_incoming_watch(sp, fd) < 0) {
		close(fd);
		return -1;
	}
	sp->watch_fd = fd;
	return 0;
}

enum dir_state { DIR_SAME, DIR_GONE, DIR_REPLACED };

/* dir_state - whether name under at (or the path name, with at AT_FDCWD) is still the
 * directory open as fd. A path we cannot look at for another reason counts as the same:
 * reopening it would fail too. */
static enum dir_state dir_state(int at, const char *name, int follow, int fd)
{
	struct stat path_st, fd_st;
	if (fstatat(at, name, &path_st, follow ? 0 : AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT || errno == ENOTDIR ? DIR_GONE : DIR_SAME;
	if (fstat(fd, &fd_st) < 0)
		return DIR_SAME;
	if (path_st.st_dev == fd_st.st_dev && path_st.st_ino == fd_st.st_ino)
		return DIR_SAME;
	return DIR_REPLACED;
}

/* state_word - for the warning. */
static const char *state_word(enum dir_state s)
{
	return s == DIR_GONE ? "was removed" : "was replaced";
}

/* refresh_subdir - one of tmp/, incoming/, ... reopened (created if missing) when its
 * path no longer names the open fd. 0 same, 1 reopened, -1 error. */
static int refresh_subdir(struct spool *sp, const struct spool_dir *d)
{
	int *slot = dir_fd_slot(sp, d);
	enum dir_state s = dir_state(sp->root_fd, d->name, d->follow, *slot);
	if (s == DIR_SAME)
		return 0;
	int created = 0;
	int fd = open_subdir(sp, d, 1, &created);
	if (fd < 0)
		return error("%s/%s %s while the daemon ran, and cannot be reopened", sp->root,
		             d->name, state_word(s));
	if (created)
		fsync_dirfd(sp->root_fd);
	close_fd(slot);
	*slot = fd;
	logmsg(LOG_WARN, "%s/%s %s while the daemon ran; %s", sp->root, d->name, state_word(s),
	       created ? "created it again" : "opened the new one");
	if (strcmp(d->name, "incoming") == 0 && sp->watch_fd >= 0) {
		if (add_incoming_watch(sp, sp->watch_fd) == 0)
			logmsg(LOG_WARN, "watching the new %s/incoming with inotify", sp->root);
		else
			logmsg(LOG_WARN,
			       "cannot watch the new %s/incoming with inotify; it is "
			       "rescanned periodically",
			       sp->root);
	}
	return 1;
}

/* spool_out_is_own - see spool.h. */
int spool_out_is_own(const struct spool *sp, const char *out_dir)
{
	if (!out_dir || !*out_dir)
		return 1;
	size_t n = strlen(sp->root);
	return strncmp(out_dir, sp->root, n) == 0 && strcmp(out_dir + n, "/out") == 0;
}

/* refresh_out_dir - an output directory of the configuration's own, outside the spool:
 * reopened (made 0755 if missing) when replaced. 0 same, 1 reopened, -1 error. */
static int refresh_out_dir(struct spool *sp, const char *out_dir)
{
	enum dir_state s = dir_state(AT_FDCWD, out_dir, 1, sp->out_fd);
	if (s == DIR_SAME)
		return 0;
	int created = mkdir(out_dir, 0755) == 0;
	int fd = open(out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return error_errno("output directory %s %s while the daemon ran, and cannot be "
		                   "reopened",
		                   out_dir, state_word(s));
	close_fd(&sp->out_fd);
	sp->out_fd = fd;
	logmsg(LOG_WARN, "output directory %s %s while the daemon ran; %s", out_dir, state_word(s),
	       created ? "created it again" : "opened the new one");
	return 1;
}

/* spool_refresh_out - the output directory alone; see spool.h. */
int spool_refresh_out(struct spool *sp, const char *out_dir)
{
	if (!spool_out_is_own(sp, out_dir))
		return refresh_out_dir(sp, out_dir);
	for (size_t i = 0; i < ARRAY_SIZE(spool_dirs); i++)
		if (spool_dirs[i].offset == offsetof(struct spool, out_fd))
			return refresh_subdir(sp, &spool_dirs[i]);
	return 0;
}

/* spool_refresh - see spool.h. */
int spool_refresh(struct spool *sp, const char *out_dir)
{
	enum dir_state root = dir_state(AT_FDCWD, sp->root, 1, sp->root_fd);
	if (root != DIR_SAME)
		return error("spool directory %s %s while the daemon ran; its lock and "
		             "directories are gone with it",
		             sp->root, state_word(root));
	int own_out = spool_out_is_own(sp, out_dir), changed = 0;
	for (size_t i = 0; i < ARRAY_SIZE(spool_dirs); i++) {
		const struct spool_dir *d = &spool_dirs[i];
		if (d->offset == offsetof(struct spool, out_fd) && !own_out)
			continue;
		int rc = refresh_subdir(sp, d);
		if (rc < 0)
			return -1;
		changed |= rc;
	}
	if (!own_out) {
		int rc = refresh_out_dir(sp, out_dir);
		if (rc < 0)
			return -1;
		changed |= rc;
	}
	return changed;
}

/* handle_events - fn for each wanted name in one read's worth of events. */
static int handle_events(const char *buf, size_t len, int wd, spool_name_fn fn, void *arg,
                         int *overflow)
{
	const char *p = buf;
	while (p < buf + len) {
		const struct inotify_event *ev = (const struct inotify_event *)(const void *)p;
		p += sizeof(*ev) + ev->len;
		if (ev->mask & IN_Q_OVERFLOW)
			*overflow = 1;
		/* what is left of the watch on an earlier incoming/ (spool_refresh moved it) */
		if (ev->wd != wd)
			continue;
		/* incoming/ itself went away: a rescan, whose spool_refresh says so */
		if ((ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) && !*overflow)
			*overflow = SPOOL_WATCH_MOVED;
		if (!ev->len || !spool_name_wanted(ev->name))
			continue;
		int ret = fn(ev->name, arg);
		if (ret) {
			/* the rest of this buffer is lost: a rescan picks it up */
			*overflow = 1;
			return ret;
		}
	}
	return 0;
}

/* spool_watch_drain - reads events until the queue is empty. A fn that returns
 * non-zero stops the drain; that value is returned and *overflow set so the caller
 * rescans for what was not handed out. */
int spool_watch_drain(struct spool *sp, spool_name_fn fn, void *arg, int *overflow)
{
	_Alignas(struct inotify_event) char buf[8192];
	int dummy = 0;
	if (!overflow)
		overflow = &dummy;
	if (sp->watch_fd < 0)
		return error("cannot read inotify events: the watch was not started");
	for (;;) {
		ssize_t n = read(sp->watch_fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return error_errno("cannot read inotify events");
		}
		if (n == 0)
			return 0;
		int ret = handle_events(buf, (size_t)n, sp->watch_wd, fn, arg, overflow);
		if (ret)
			return ret;
	}
}

/* spool_control_submit - control/<stamp>.json, atomically (a dotfile until complete). */
int spool_control_submit(struct spool *sp, const char *json)
{
	struct strbuf name = STRBUF_INIT;
	add_stamp(&name);
	sb_adds(&name, ".json");
	int ret = write_file_atomic_at(sp->control_fd, name.buf, json, strlen(json), 0600);
	sb_release(&name);
	return ret;
}

/* control_name_wanted - a finished control file: not a dotfile, ends in .json. */
static int control_name_wanted(const char *name)
{
	return name[0] && name[0] != '.' && !strchr(name, '/') && has_suffix(name, ".json");
}

/* spool_control_scan - the control files, oldest stamp first. */
int spool_control_scan(struct spool *sp, spool_name_fn fn, void *arg)
{
	struct name_list l = {0};
	if (list_dir_sorted(sp->control_fd, "control/", control_name_wanted, &l) < 0)
		return -1;
	int ret = call_each(&l, fn, arg);
	name_list_free(&l);
	return ret;
}

/* spool_control_read - one control file, at most CONTROL_MAX bytes (1 MiB). */
int spool_control_read(struct spool *sp, const char *name, struct strbuf *out)
{
	struct strbuf why = STRBUF_INIT;
	int ret = 0;
	if (read_file_at(sp->control_fd, name, CONTROL_MAX, out, &why) < 0)
		ret = error("cannot read %s/control/%s: %s", sp->root, name, why.buf);
	sb_release(&why);
	return ret;
}

/* spool_control_done - removes a control file once acted upon. */
int spool_control_done(struct spool *sp, const char *name)
{
	if (unlinkat(sp->control_fd, name, 0) < 0)
		return error_errno("cannot remove %s/control/%s", sp->root, name);
	return fsync_dirfd(sp->control_fd);
}
