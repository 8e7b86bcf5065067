/* util.c - errors (logged by log.c), memory, clocks, time formats and small file helpers. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "strbuf.h"

/* lock_owner_line - the line a lock holder writes into its lock file. */
void lock_owner_line(struct strbuf *out, long pid, const char *role, const char *what,
                     const char *path)
{
	sb_addf(out, "pid=%ld role=%s %s=", pid, role, what);
	log_escape(out, path, strlen(path)); /* the line stays one line */
	sb_addch(out, '\n');
}

/* lock_owner_parse - pid and role from lock_owner_line's text; a bare "N" (written by
 * segspool before roles) is a daemon. */
int lock_owner_parse(const char *text, size_t n, struct lock_owner *out)
{
	char line[160];
	size_t len = n < sizeof(line) - 1 ? n : sizeof(line) - 1;
	memcpy(line, text, len);
	line[len] = '\0';
	line[strcspn(line, "\n")] = '\0';
	memset(out, 0, sizeof(*out));
	const char *p = strncmp(line, "pid=", 4) == 0 ? line + 4 : line;
	char *end;
	errno = 0;
	long pid = strtol(p, &end, 10);
	if (end == p || errno || pid <= 0 || pid > 0x7fffffffL)
		return -1;
	out->pid = pid;
	if (p == line) { /* the old form: the pid alone */
		if (*end)
			return -1;
		snprintf(out->role, sizeof(out->role), "daemon");
		return 0;
	}
	if (strncmp(end, " role=", 6) != 0)
		return -1;
	const char *role = end + 6;
	size_t rlen = strcspn(role, " ");
	if (rlen == 0 || rlen >= sizeof(out->role))
		return -1;
	memcpy(out->role, role, rlen);
	out->role[rlen] = '\0';
	return 0;
}

/* lock_owner_command - for a CLI holder ("cli:retry"), its command ("retry"); else NULL. */
const char *lock_owner_command(const struct lock_owner *o)
{
	return strncmp(o->role, "cli:", 4) == 0 ? o->role + 4 : NULL;
}

/* error - logs an error, returns -1. */
int error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(LOG_ERROR, NULL, NULL, fmt, ap);
	va_end(ap);
	return -1;
}

/* error_errno - logs an error with strerror(errno), returns -1. */
int error_errno(const char *fmt, ...)
{
	int saved = errno;
	char suffix[160];
	snprintf(suffix, sizeof(suffix), ": %s", strerror(saved));
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(LOG_ERROR, NULL, suffix, fmt, ap);
	va_end(ap);
	errno = saved;
	return -1;
}

/* die - logs and exits with status 1. */
_Noreturn void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(LOG_ERROR, NULL, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

/* xmalloc - malloc or die. */
void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

/* xcalloc - calloc or die. */
void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		die("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

/* xrealloc - realloc or die. */
void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		die("out of memory (%zu bytes)", n);
	return q;
}

/* xstrdup - strdup or die. */
char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

/* xstrndup - the first n bytes of s, NUL-terminated. */
char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* clock_wall_ms - milliseconds since the epoch. */
int64_t clock_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* http_method_mutates - see util.h. */
int http_method_mutates(const char *method)
{
	return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

/* clock_mono_ms - milliseconds on the monotonic clock. */
int64_t clock_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* days_from_civil - days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* format_iso8601 - "YYYY-MM-DDTHH:MM:SSZ", with ".mmm" when ms has a fraction. */
void format_iso8601(int64_t ms, char out[48])
{
	time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	int frac = (int)(ms - (int64_t)secs * 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	if (frac)
		snprintf(out, 48, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
	else
		snprintf(out, 48, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
		         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/* parse_iso8601 - a UTC instant from RFC 3339 text. */
int parse_iso8601(const char *s, int64_t *ms)
{
	int y, mo, d, h, mi, sec, frac = 0;
	const char *p = s;
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d))
		return -1;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -1;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
	    digits(&p, 2, &sec))
		return -1;
	if (*p == '.') {
		p++;
		int nd = 0, scale = 100;
		while (*p >= '0' && *p <= '9') {
			if (nd < 3)
				frac += (*p - '0') * scale;
			scale /= 10;
			nd++;
			p++;
		}
		if (!nd)
			return -1;
	}
	int64_t offset_min = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1, oh, om;
		p++;
		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
			return -1;
		offset_min = sign * (oh * 60 + om);
	} else {
		return -1;
	}
	if (*p)
		return -1;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
		return -1;
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo == 2 && d == 29 && !leap)
		return -1;
	int64_t days = days_from_civil(y, mo, d);
	*ms = ((days * 24 + h) * 60 + mi - offset_min) * 60000 + (int64_t)sec * 1000 + frac;
	return 0;
}

/* parse_http_date - IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". */
int parse_http_date(const char *s, int64_t *ms)
{
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	const char *comma = strchr(s, ',');
	if (!comma)
		return -1;
	const char *p = comma + 1;
	while (*p == ' ')
		p++;
	int d, y, h, mi, sec, mo = -1;
	if (digits(&p, 2, &d) || *p++ != ' ')
		return -1;
	for (int i = 0; i < 12; i++)
		if (strncmp(p, months[i], 3) == 0)
			mo = i + 1;
	if (mo < 0)
		return -1;
	p += 3;
	if (*p++ != ' ' || digits(&p, 4, &y) || *p++ != ' ' || digits(&p, 2, &h) || *p++ != ':' ||
	    digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &sec))
		return -1;
	while (*p == ' ')
		p++;
	if (strcmp(p, "GMT") != 0 && strcmp(p, "UTC") != 0)
		return -1;
	if (d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	*ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000;
	return 0;
}

/* parse_duration_ms - "250ms", "45s", "30m", "6h", "1d", "2w". */
int parse_duration_ms(const char *s, int64_t *ms)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || v <= 0)
		return -1;
	int64_t unit;
	if (strcmp(end, "ms") == 0)
		unit = 1;
	else if (strcmp(end, "s") == 0)
		unit = 1000;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		unit = 60000;
	else if (strcmp(end, "h") == 0)
		unit = 3600000;
	else if (strcmp(end, "d") == 0)
		unit = 86400000;
	else if (strcmp(end, "w") == 0)
		unit = 7 * 86400000LL;
	else
		return -1;
	if (v > INT64_MAX / unit)
		return -1;
	*ms = (int64_t)v * unit;
	return 0;
}

/* fnv1a64_mem - FNV-1a over data[0..len), from h. */
uint64_t fnv1a64_mem(const void *data, size_t len, uint64_t h)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* fnv1a64 - FNV-1a over a string, from h. */
uint64_t fnv1a64(const char *s, uint64_t h)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* hash_hex - 64-bit FNV-1a of data, as 16 hex digits. */
void hash_hex(const void *data, size_t len, char out[17])
{
	snprintf(out, 17, "%016llx", (unsigned long long)fnv1a64_mem(data, len, FNV1A64_INIT));
}

/* fsync_dirfd - makes the directory's entries durable. */
int fsync_dirfd(int dirfd)
{
	if (fsync(dirfd) < 0)
		return error_errno("cannot fsync directory");
	return 0;
}

/* write_all - write(2) until done. */
int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* own_like_dir - see util.h; a failure (root squashed on NFS) is a warning. */
void own_like_dir(int dirfd, int fd)
{
	struct stat st;
	if (geteuid() != 0 || fstat(dirfd, &st) < 0 || st.st_uid == 0)
		return;
	if (fchown(fd, st.st_uid, st.st_gid) < 0)
		logmsg(LOG_WARN, "cannot give a new file to user %ld, the directory's owner: %s",
		       (long)st.st_uid, strerror(errno));
}

/* write_file_atomic_at - .NAME.part, fsync, rename to NAME, fsync the directory. */
int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode)
{
	struct strbuf part = STRBUF_INIT;
	sb_addf(&part, ".%s.part", name);
	unlinkat(dirfd, part.buf, 0); /* a leftover of a crash; O_EXCL below */
	int fd =
	    openat(dirfd, part.buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		error_errno("cannot create %s", part.buf);
		sb_release(&part);
		return -1;
	}
	own_like_dir(dirfd, fd);
	if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		error_errno("cannot write %s", part.buf);
		close(fd);
		unlinkat(dirfd, part.buf, 0);
		sb_release(&part);
		return -1;
	}
	close(fd);
	if (renameat(dirfd, part.buf, dirfd, name) < 0) {
		error_errno("cannot rename %s to %s", part.buf, name);
		unlinkat(dirfd, part.buf, 0);
		sb_release(&part);
		return -1;
	}
	sb_release(&part);
	return fsync_dirfd(dirfd);
}

/* read_file_at - a regular file, no symlink followed, at most max bytes. */
int read_file_at(int dirfd, const char *name, size_t max, struct strbuf *out, struct strbuf *why)
{
	return read_file_at_stat(dirfd, name, max, out, why, NULL);
}

/* read_file_at_stat - read_file_at, and the open file's fstat in *st_out when given. */
int read_file_at_stat(int dirfd, const char *name, size_t max, struct strbuf *out,
                      struct strbuf *why, struct stat *st_out)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno == ELOOP)
			sb_adds(why, "is a symbolic link (refused: a link could point anywhere)");
		else
			sb_addf(why, "cannot open: %s", strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		sb_addf(why, "cannot stat: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		sb_adds(why, "is a directory, not a file");
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		sb_adds(why, "is not a regular file (a fifo, socket or device)");
		close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size > max) {
		sb_addf(why, "is %lld bytes, larger than the limit of %zu bytes",
		        (long long)st.st_size, max);
		close(fd);
		return -1;
	}
	sb_grow(out, (size_t)st.st_size);
	for (;;) {
		sb_grow(out, 8192);
		ssize_t n = read(fd, out->buf + out->len, out->alloc - out->len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			sb_addf(why, "cannot read: %s", strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		sb_setlen(out, out->len + (size_t)n);
		if (out->len > max) {
			sb_addf(why, "grew past the limit of %zu bytes while being read", max);
			close(fd);
			return -1;
		}
	}
	close(fd);
	if (st_out)
		*st_out = st;
	return 0;
}

/* json_ws - the first index at or after i that is not JSON whitespace. */
static size_t json_ws(const char *s, size_t i, size_t n)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* json_string_end - s[i] opens a string: the index just past its closing quote, or n + 1. */
static size_t json_string_end(const char *s, size_t i, size_t n)
{
	for (i++; i < n; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return n + 1;
}

/* json_value_end - the index just past the value starting at s[i], or n + 1. */
static size_t json_value_end(const char *s, size_t i, size_t n)
{
	if (i >= n)
		return n + 1;
	if (s[i] == '"')
		return json_string_end(s, i, n);
	if (s[i] != '{' && s[i] != '[') {
		while (i < n && !strchr(",}] \t\r\n", s[i]))
			i++;
		return i;
	}
	size_t depth = 0;
	while (i < n) {
		if (s[i] == '"') {
			i = json_string_end(s, i, n);
			continue;
		}
		if (s[i] == '{' || s[i] == '[')
			depth++;
		else if ((s[i] == '}' || s[i] == ']') && --depth == 0)
			return i + 1;
		i++;
	}
	return n + 1;
}

/* json_scan_string - s[i] opens a string: the index just past its closing quote when the
 * string is valid JSON (escapes as RFC 8259 lists them, no raw control characters),
 * else 0. */
static size_t json_scan_string(const char *s, size_t i, size_t n)
{
	for (i++; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"')
			return i + 1;
		if (c < 0x20)
			return 0;
		if (c != '\\')
			continue;
		if (++i >= n)
			return 0;
		if (s[i] == 'u') {
			if (n - i <= 4)
				return 0;
			for (size_t k = 1; k <= 4; k++)
				if (!isxdigit((unsigned char)s[i + k]))
					return 0;
			i += 4;
		} else if (!strchr("\"\\/bfnrt", s[i]) || !s[i]) {
			return 0;
		}
	}
	return 0;
}

/* json_scan_digits - the index past the run of digits at s[i] (i itself if none). */
static size_t json_scan_digits(const char *s, size_t i, size_t n)
{
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	return i;
}

/* json_scan_number - s[i] starts a number: the index just past it when it follows the
 * JSON grammar (no leading zeros, digits after '.' and 'e'), else 0. */
static size_t json_scan_number(const char *s, size_t i, size_t n)
{
	if (i < n && s[i] == '-')
		i++;
	if (i < n && s[i] == '0')
		i++;
	else if (i < n && s[i] >= '1' && s[i] <= '9')
		i = json_scan_digits(s, i, n);
	else
		return 0;
	if (i < n && s[i] == '.') {
		size_t d = ++i;
		if ((i = json_scan_digits(s, i, n)) == d)
			return 0;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		size_t d = i;
		if ((i = json_scan_digits(s, i, n)) == d)
			return 0;
	}
	return i;
}

/* json_scan_scalar - s[i] starts a string, number or literal: the index past it, or 0. */
static size_t json_scan_scalar(const char *s, size_t i, size_t n)
{
	static const char *const literals[] = {"true", "false", "null"};
	if (s[i] == '"')
		return json_scan_string(s, i, n);
	if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9'))
		return json_scan_number(s, i, n);
	for (size_t k = 0; k < sizeof(literals) / sizeof(literals[0]); k++) {
		size_t len = strlen(literals[k]);
		if (n - i >= len && !memcmp(s + i, literals[k], len))
			return i + len;
	}
	return 0;
}

/* object_scan - json_object_check's walk with the stack of open brackets given (max
 * deep): 1 for an object, 0 for text that is not one, -1 when the nesting would pass
 * max (nothing wrong before that point). */
static int object_scan(const char *s, size_t n, const char *key, size_t *off, size_t *len,
                       char *open, size_t max)
{
	size_t depth = 0, i = json_ws(s, 0, n);
	size_t klen = key ? strlen(key) : 0, start = 0;
	int want_key = 0;   /* inside an object, where a member's name must come next */
	int capturing = 0;  /* the top-level value being scanned is key's */
	int settled = !key; /* key's member found, or a top-level name spelled with escapes
	                     * came first (cJSON might match it: the caller must look) */

	if (len)
		*len = 0;
	if (i >= n || s[i] != '{')
		return 0;
	for (;;) {
		i = json_ws(s, i, n);
		if (i >= n)
			return 0;
		if (want_key) {
			size_t name = i + 1;
			if (s[i] != '"' || !(i = json_scan_string(s, i, n)))
				return 0;
			if (!settled && depth == 1) {
				if (memchr(s + name, '\\', i - 1 - name)) {
					settled = 1;
				} else if (i - 1 - name == klen && !memcmp(s + name, key, klen)) {
					settled = capturing = 1;
				}
			}
			i = json_ws(s, i, n);
			if (i >= n || s[i] != ':')
				return 0;
			i = json_ws(s, i + 1, n);
			if (i >= n)
				return 0;
			want_key = 0;
			if (depth == 1)
				start = i;
		}
		if (s[i] == '{' || s[i] == '[') {
			if (depth == max)
				return -1;
			open[depth++] = s[i] == '{' ? '}' : ']';
			i = json_ws(s, i + 1, n);
			if (i < n && s[i] == open[depth - 1]) {
				depth--;
				i++;
			} else {
				want_key = open[depth - 1] == '}';
				continue;
			}
		} else if (!(i = json_scan_scalar(s, i, n))) {
			return 0;
		}
		/* after a value: a comma, or the closing brackets */
		for (;;) {
			if (capturing && depth == 1) {
				capturing = 0;
				if (off && len) {
					*off = start;
					*len = i - start;
				}
			}
			i = json_ws(s, i, n);
			if (depth == 0)
				return i == n;
			if (i >= n)
				return 0;
			if (s[i] == ',') {
				want_key = open[depth - 1] == '}';
				i++;
				break;
			}
			if (s[i] != open[depth - 1])
				return 0;
			depth--;
			i++;
		}
	}
}

/* json_object_check - see util.h. One pass, no allocation: the nesting is kept as a
 * stack of the open brackets. */
int json_object_check(const char *s, size_t n, const char *key, size_t *off, size_t *len)
{
	char open[JSON_MAX_DEPTH];
	return object_scan(s, n, key, off, len, open, sizeof(open)) == 1;
}

/* json_too_deep - see util.h: the limited walk, then, only when that stopped at the
 * limit, an unlimited one (the nesting can be no deeper than the text is long). */
int json_too_deep(const char *s, size_t n)
{
	char open[JSON_MAX_DEPTH];
	if (object_scan(s, n, NULL, NULL, NULL, open, sizeof(open)) != -1)
		return 0;
	char *deep = xmalloc(n);
	int ret = object_scan(s, n, NULL, NULL, NULL, deep, n) == 1;
	free(deep);
	return ret;
}

/* json_next_member - see util.h. */
int json_next_member(const char *text, size_t n, size_t *pos, struct json_member *m)
{
	size_t i = json_ws(text, *pos, n);
	if (i >= n)
		return -1;
	if (text[i] == (*pos == 0 ? '{' : ','))
		i = json_ws(text, i + 1, n);
	else if (*pos != 0 && text[i] != '}')
		return -1;
	if (i < n && text[i] == '}')
		return 0;
	if (i >= n || text[i] != '"')
		return -1;
	size_t kend = json_string_end(text, i, n);
	if (kend > n)
		return -1;
	m->name = text + i + 1;
	m->name_len = kend - i - 2;
	i = json_ws(text, kend, n);
	if (i >= n || text[i] != ':')
		return -1;
	size_t v = json_ws(text, i + 1, n), vend = json_value_end(text, v, n);
	if (v >= n || vend > n)
		return -1;
	m->value = text + v;
	m->value_len = vend - v;
	*pos = vend;
	return 1;
}

/* json_member_span - see util.h: json_next_member's walk, stopped at the name, or at a
 * name spelled with escapes (which only a parser can compare). */
int json_member_span(const char *text, size_t n, const char *key, size_t *off, size_t *len)
{
	size_t klen = strlen(key), pos = 0;
	struct json_member m;
	while (json_next_member(text, n, &pos, &m) > 0) {
		if (memchr(m.name, '\\', m.name_len))
			return -1;
		if (m.name_len == klen && !memcmp(m.name, key, klen)) {
			*off = (size_t)(m.value - text);
			*len = m.value_len;
			return 0;
		}
	}
	return -1;
}

/* rename_noreplace - see util.h. */
int rename_noreplace(int olddir, const char *oldname, int newdir, const char *newname)
{
	if (renameat2(olddir, oldname, newdir, newname, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	struct stat st;
	if (fstatat(newdir, newname, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT) {
		errno = EEXIST;
		return -1;
	}
	return renameat(olddir, oldname, newdir, newname);
}
