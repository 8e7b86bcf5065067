/* output.c - output files that appear whole or not at all: .NAME.part in the final
 * directory, fsync, renameat over NAME, fsync the directory. Every directory on the way
 * is opened with O_NOFOLLOW from the output directory's fd, so no symlink (planted
 * before or during a run) can carry a write outside it. */
#include "output.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strbuf.h"
#include "util.h"

struct output_file {
	char *relpath;   /* for messages */
	char *name;      /* the final name inside dir_fd */
	char *part_name; /* ".NAME.part" */
	int dir_fd;
	int fd;
	int write_errno; /* the first failed write's errno, reported at commit */
	int64_t tag;     /* the batch caller's, for output_batch_commit's failures */
	int noreplace;   /* put in place only if the name is still free (a default name) */
};

enum walk_mode { WALK_CREATE, WALK_CHECK };

static void add_err(struct strbuf *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* add_err - appends a message to err, or logs it when the caller gave no buffer. */
static void add_err(struct strbuf *err, const char *fmt, ...)
{
	struct strbuf local = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	sb_vaddf(err ? err : &local, fmt, ap);
	va_end(ap);
	if (!err)
		error("%s", local.buf);
	sb_release(&local);
}

/* the decoration create_part adds to the final name: ".NAME.part" */
#define PART_PREFIX "."
#define PART_SUFFIX ".part"
#define PART_EXTRA (sizeof(PART_PREFIX) - 1 + sizeof(PART_SUFFIX) - 1)

_Static_assert(OUTPUT_PATH_MAX < PATH_MAX, "an output path fits the system's path limit");
_Static_assert(OUTPUT_NAME_MAX + PART_EXTRA == NAME_MAX, "a file name's .part fits NAME_MAX");

/* component_problem - why one component (s, n bytes) cannot be opened as output_open will
 * open it, or NULL; the last one also names the .part file, so it has less room. */
static const char *component_problem(const char *s, size_t n, int last)
{
	if (n == 0)
		return "it has an empty component (\"//\" or a trailing \"/\")";
	if (n == 1 && s[0] == '.')
		return "it has a \".\" component";
	if (n == 2 && s[0] == '.' && s[1] == '.')
		return "it has a \"..\" component";
	if (!last && n > NAME_MAX)
		return "it has a directory name longer than " STR(NAME_MAX) " bytes";
	if (last && n > OUTPUT_NAME_MAX)
		return "its file name is longer than " STR(OUTPUT_NAME_MAX) " bytes (" STR(
		    NAME_MAX) ", the system's limit, less the temporary \".NAME.part\" it is "
		              "written as)";
	if (last && s[0] == '.')
		return "it names a hidden file (\".\" starts the last component)";
	return NULL;
}

/* output_path_check - the one rule for output paths; see output.h. */
const char *output_path_check(const char *relpath)
{
	size_t len = relpath ? strlen(relpath) : 0;
	if (!len)
		return "it is empty";
	if (len > OUTPUT_PATH_MAX)
		return "it is longer than 1024 bytes";
	if (relpath[0] == '/')
		return "it is absolute (it must be relative to the output directory)";
	for (const char *s = relpath; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return "it contains a control character";
		if (*s == '\\')
			return "it contains a backslash";
	}
	for (const char *s = relpath;;) {
		const char *slash = strchr(s, '/');
		size_t n = slash ? (size_t)(slash - s) : strlen(s);
		const char *why = component_problem(s, n, !slash);
		if (why || !slash)
			return why;
		s = slash + 1;
	}
}

/* output_default_name - the name of a job's output when it named none; see output.h. */
void output_default_name(struct strbuf *out, const char *op_id, int64_t id, int jsonl, int n)
{
	const char *ext = jsonl ? "jsonl" : "json";
	if (n <= 1)
		sb_addf(out, "%s-%lld.%s", op_id, (long long)id, ext);
	else
		sb_addf(out, "%s-%lld-%d.%s", op_id, (long long)id, n, ext);
}

/* digits_end - past a run of at least one digit at s, or NULL. */
static const char *digits_end(const char *s)
{
	const char *p = s;
	while (*p >= '0' && *p <= '9')
		p++;
	return p > s ? p : NULL;
}

/* output_default_name_op - how long the operation id of a default name is; see output.h. */
size_t output_default_name_op(const char *path)
{
	const char *dash = strchr(path, '-');
	if (!dash || dash == path || strchr(path, '/'))
		return 0;
	const char *p = digits_end(dash + 1);
	if (p && p[0] == '-')
		p = digits_end(p + 1);
	if (!p || (strcmp(p, ".json") != 0 && strcmp(p, ".jsonl") != 0))
		return 0;
	return (size_t)(dash - path);
}

/* check_relpath - output_path_check, with the reason in err. */
static int check_relpath(const char *relpath, struct strbuf *err)
{
	const char *why = output_path_check(relpath);
	if (!why)
		return 0;
	add_err(err, "output path %s: %s", relpath, why);
	return -1;
}

/* refuse_component - why dir/comp could not be opened as a directory: a symlink, or
 * something else; sofar is the path up to comp, for the message. */
static int refuse_component(int dir, const char *comp, const char *relpath, const char *sofar,
                            struct strbuf *err)
{
	struct stat st;
	if (fstatat(dir, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
		add_err(err,
		        "output path %s: %s is a symbolic link; outputs never follow links out "
		        "of the output directory",
		        relpath, sofar);
	else
		add_err(err, "output path %s: %s is not a directory", relpath, sofar);
	return -1;
}

/* open_dir_component - dir/comp as a directory, never through a symlink; made 0755 if
 * missing and mode is WALK_CREATE. Returns the fd, -1 on error, -2 if missing. */
static int open_dir_component(int dir, const char *comp, enum walk_mode mode, const char *relpath,
                              const char *sofar, struct strbuf *err)
{
	const int flags = O_DIRECTORY | O_NOFOLLOW | O_RDONLY | O_CLOEXEC;
	int fd = openat(dir, comp, flags);
	if (fd < 0 && errno == ENOENT) {
		if (mode == WALK_CHECK)
			return -2;
		/* EEXIST: a concurrent writer made it; the open below decides */
		if (mkdirat(dir, comp, 0755) < 0 && errno != EEXIST) {
			add_err(err, "cannot create output directory %s: %s", sofar,
			        strerror(errno));
			return -1;
		}
		fd = openat(dir, comp, flags);
	}
	if (fd >= 0)
		return fd;
	if (errno == ELOOP || errno == ENOTDIR)
		return refuse_component(dir, comp, relpath, sofar, err);
	add_err(err, "cannot open output directory %s: %s", sofar, strerror(errno));
	return -1;
}

/* walk_dirs - opens relpath's parent directory from out_dir_fd. Returns its fd (a new
 * one), -1 on error, or -2 in WALK_CHECK mode when a directory does not exist yet; *base
 * points at the final component. */
static int walk_dirs(int out_dir_fd, const char *relpath, enum walk_mode mode, const char **base,
                     struct strbuf *err)
{
	int cur = fcntl(out_dir_fd, F_DUPFD_CLOEXEC, 0);
	if (cur < 0) {
		add_err(err, "cannot open the output directory: %s", strerror(errno));
		return -1;
	}
	const char *p = relpath, *slash;
	while ((slash = strchr(p, '/'))) {
		char *comp = xstrndup(p, (size_t)(slash - p));
		char *sofar = xstrndup(relpath, (size_t)(slash - relpath));
		int next = open_dir_component(cur, comp, mode, relpath, sofar, err);
		free(comp);
		free(sofar);
		close(cur);
		if (next < 0)
			return next;
		cur = next;
		p = slash + 1;
	}
	*base = p;
	return cur;
}

/* refuse_directory - the final name is an existing directory: rename would fail. */
static int refuse_directory(int dir, const char *name, const char *relpath, struct strbuf *err)
{
	struct stat st;
	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
		add_err(err, "output path %s: is a directory", relpath);
		return -1;
	}
	return 0;
}

/* output_file_free - closes and frees; the .part is left alone. */
static void output_file_free(struct output_file *of)
{
	if (of->fd >= 0)
		close(of->fd);
	if (of->dir_fd >= 0)
		close(of->dir_fd);
	free(of->relpath);
	free(of->name);
	free(of->part_name);
	free(of);
}

/* create_part - .NAME.part, fresh: a stale one (a crash's leftover) is removed first. */
static int create_part(struct output_file *of, struct strbuf *err)
{
	struct strbuf part = STRBUF_INIT;
	sb_addf(&part, PART_PREFIX "%s" PART_SUFFIX, of->name);
	of->part_name = sb_detach(&part, NULL);
	unlinkat(of->dir_fd, of->part_name, 0);
	of->fd = openat(of->dir_fd, of->part_name,
	                O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (of->fd >= 0)
		return 0;
	add_err(err, "cannot create output %s: %s", of->relpath, strerror(errno));
	return -1;
}

/* output_open - parent directories (created 0755 as needed) and the .part file. */
int output_open(int out_dir_fd, const char *relpath, struct output_file **out, struct strbuf *err)
{
	*out = NULL;
	if (check_relpath(relpath, err) < 0)
		return -1;
	const char *base;
	int dir = walk_dirs(out_dir_fd, relpath, WALK_CREATE, &base, err);
	if (dir < 0)
		return -1;
	if (refuse_directory(dir, base, relpath, err) < 0) {
		close(dir);
		return -1;
	}
	struct output_file *of = xcalloc(1, sizeof(*of));
	of->dir_fd = dir;
	of->fd = -1;
	of->relpath = xstrdup(relpath);
	of->name = xstrdup(base);
	if (create_part(of, err) < 0) {
		output_file_free(of);
		return -1;
	}
	*out = of;
	return 0;
}

/* output_append - writes all of data; a failure is remembered and reported at commit. */
int output_append(struct output_file *of, const void *data, size_t len)
{
	const char *p = data;
	if (of->write_errno)
		return -1;
	while (len) {
		ssize_t n = write(of->fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			of->write_errno = errno;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* finish_part - the data on disk and the fd closed; errno-style reason on failure. */
static int finish_part(struct output_file *of)
{
	if (of->write_errno) {
		errno = of->write_errno;
		return -1;
	}
	if (fsync(of->fd) < 0)
		return -1;
	int fd = of->fd;
	of->fd = -1;
	return close(fd);
}

/* output_commit - fsync, rename .part over the final name, fsync the directory. */
int output_commit(struct output_file *of, struct strbuf *err)
{
	int ret = -1;
	if (finish_part(of) < 0) {
		add_err(err, "cannot write output %s: %s", of->relpath, strerror(errno));
		unlinkat(of->dir_fd, of->part_name, 0);
	} else if (renameat(of->dir_fd, of->part_name, of->dir_fd, of->name) < 0) {
		add_err(err, "cannot rename output %s into place: %s", of->relpath,
		        strerror(errno));
		unlinkat(of->dir_fd, of->part_name, 0);
	} else if (fsync(of->dir_fd) < 0) {
		add_err(err, "cannot fsync the directory of output %s: %s", of->relpath,
		        strerror(errno));
	} else {
		ret = 0;
	}
	output_file_free(of);
	return ret;
}

/* output_abort - the .part removed, nothing at the final name changed. */
void output_abort(struct output_file *of)
{
	if (!of)
		return;
	unlinkat(of->dir_fd, of->part_name, 0);
	output_file_free(of);
}

/* output_write - open, append, commit. */
int output_write(int out_dir_fd, const char *relpath, const void *data, size_t len,
                 struct strbuf *err)
{
	struct output_file *of;
	if (output_open(out_dir_fd, relpath, &of, err) < 0)
		return -1;
	output_append(of, data, len); /* a failure is reported by the commit */
	return output_commit(of, err);
}

struct output_batch {
	struct output_file **files;
	size_t n, alloc;
};

/* output_batch_new - an empty batch. */
struct output_batch *output_batch_new(void)
{
	return xcalloc(1, sizeof(struct output_batch));
}

/* output_batch_count - outputs staged and not yet committed. */
size_t output_batch_count(const struct output_batch *b)
{
	return b->n;
}

/* output_stage - closes the .part without an fsync of its own; the batch's commit makes
 * it durable together with the others. */
int output_stage(struct output_batch *b, struct output_file *of, int64_t tag, struct strbuf *err)
{
	of->tag = tag;
	if (of->write_errno) {
		add_err(err, "cannot write output %s: %s", of->relpath, strerror(of->write_errno));
		output_abort(of);
		return -1;
	}
	int fd = of->fd;
	of->fd = -1;
	if (close(fd) < 0) {
		add_err(err, "cannot write output %s: %s", of->relpath, strerror(errno));
		output_abort(of);
		return -1;
	}
	if (b->n == b->alloc) {
		b->alloc = b->alloc ? b->alloc * 2 : 64;
		b->files = xrealloc(b->files, b->alloc * sizeof(*b->files));
	}
	b->files[b->n++] = of;
	return 0;
}

/* path_claims - whether a and b cannot both be files: equal, or one a directory on the
 * other's way ("d1" and "d1/y.json"). */
static int path_claims(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t n = la < lb ? la : lb;
	if (strncmp(a, b, n) != 0)
		return 0;
	return la == lb || (la < lb ? b[la] : a[lb]) == '/';
}

/* output_batch_claimant - see output.h. */
int64_t output_batch_claimant(const struct output_batch *b, const char *relpath)
{
	for (size_t i = 0; i < b->n; i++)
		if (path_claims(b->files[i]->relpath, relpath))
			return b->files[i]->tag;
	return 0;
}

/* output_batch_commit - one syncfs makes every staged .part durable, each is renamed over
 * its final name, and a second syncfs makes the renames durable: two flushes for the
 * whole batch instead of two per file. A file that cannot be renamed is reported and
 * removed; the others land. The batch is empty afterwards. */
int output_batch_commit(struct output_batch *b, output_failed_fn failed, void *arg)
{
	int nfailed = 0;
	char why[512];
	if (!b->n)
		return 0;
	int synced = syncfs(b->files[0]->dir_fd) == 0;
	if (!synced)
		snprintf(why, sizeof(why), "cannot flush outputs to disk: %s", strerror(errno));
	for (size_t i = 0; i < b->n; i++) {
		struct output_file *of = b->files[i];
		if (synced &&
		    (of->noreplace
		         ? rename_noreplace(of->dir_fd, of->part_name, of->dir_fd, of->name)
		         : renameat(of->dir_fd, of->part_name, of->dir_fd, of->name)) == 0)
			continue;
		if (synced)
			snprintf(why, sizeof(why), "cannot rename output %s into place: %s",
			         of->relpath, strerror(errno));
		unlinkat(of->dir_fd, of->part_name, 0);
		of->tag = -of->tag; /* failed: not in place, whatever the second flush does */
		failed(-of->tag, why, arg);
		nfailed++;
	}
	if (synced && syncfs(b->files[0]->dir_fd) < 0) {
		snprintf(why, sizeof(why), "cannot flush output directories to disk: %s",
		         strerror(errno));
		for (size_t i = 0; i < b->n; i++)
			if (b->files[i]->tag > 0) {
				failed(b->files[i]->tag, why, arg);
				nfailed++;
			}
	}
	for (size_t i = 0; i < b->n; i++)
		output_file_free(b->files[i]);
	b->n = 0;
	return nfailed;
}

/* output_batch_free - staged outputs not committed are removed. */
void output_batch_free(struct output_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		output_abort(b->files[i]);
	free(b->files);
	free(b);
}

/* sweep_dir - removes hidden .part files below dir_fd (closes it); depth-limited. */
static int sweep_dir(int dir_fd, int depth)
{
	int removed = 0;
	DIR *d = fdopendir(dir_fd);
	if (!d) {
		close(dir_fd);
		return 0;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		const char *n = e->d_name;
		size_t len = strlen(n);
		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth < 32) {
			int sub =
			    openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				removed += sweep_dir(sub, depth + 1);
		} else if (S_ISREG(st.st_mode) && n[0] == '.' && len > 6 &&
		           strcmp(n + len - 5, ".part") == 0 && unlinkat(dirfd(d), n, 0) == 0) {
			removed++;
		}
	}
	closedir(d);
	return removed;
}

/* output_sweep_parts - removes the hidden .part files a crash left in the output tree. */
int output_sweep_parts(int out_dir_fd)
{
	int fd = openat(out_dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? 0 : sweep_dir(fd, 0);
}

/* output_check_dirs - existing directories on the way are real ones; missing is fine. */
int output_check_dirs(int out_dir_fd, const char *relpath, struct strbuf *err)
{
	if (check_relpath(relpath, err) < 0)
		return -1;
	const char *base;
	int dir = walk_dirs(out_dir_fd, relpath, WALK_CHECK, &base, err);
	if (dir == -2)
		return 0;
	if (dir < 0)
		return -1;
	int ret = refuse_directory(dir, base, relpath, err);
	close(dir);
	return ret;
}

/* output_keep_existing - see output.h. */
void output_keep_existing(struct output_file *of)
{
	of->noreplace = 1;
}
