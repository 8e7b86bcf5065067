/* util.h - errors, memory, clocks, time formats and small file helpers. */
#ifndef SEGSPOOL_UTIL_H
#define SEGSPOOL_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log.h" /* logmsg and the levels, for every caller of util.h */

struct strbuf;

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* STR - a macro's value as a string literal, for messages that state a limit: the text
 * follows the macro ("at most " STR(JOB_MAX_JOBS) " jobs"). The macro must be a plain
 * number. */
#define STR(x) STR_(x)
#define STR_(x) #x

/* error - prints "error: MSG" to the log and returns -1, for `return error(...)`. */
int error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* error_errno - as error, with ": strerror(errno)" appended. */
int error_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Lock files name their holder in one line, "pid=N role=ROLE WHAT=PATH", ROLE being
 * "daemon" or "cli:COMMAND" (a CLI command changing the store itself, e.g. "cli:retry"):
 * a daemon that finds a CLI command holding a lock waits for it; one that finds another
 * daemon says so and exits. */
struct lock_owner {
	long pid;
	char role[32];
};
void lock_owner_line(struct strbuf *out, long pid, const char *role, const char *what,
                     const char *path);
/* lock_owner_parse - the holder from a lock file's text; 0, or -1 when it names none. */
int lock_owner_parse(const char *text, size_t n, struct lock_owner *out);
/* lock_owner_command - "retry" for role "cli:retry"; NULL for a daemon. */
const char *lock_owner_command(const struct lock_owner *o);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* http_method_mutates - whether a request with this method may change state on the
 * server (anything but GET and HEAD): such a request is never sent twice by itself. Here,
 * not in http.c, so the job module can decide it at insert without linking curl. */
int http_method_mutates(const char *method);

int64_t clock_wall_ms(void);
int64_t clock_mono_ms(void);

/* RFC 3339 / ISO-8601 in UTC: "2026-11-26T03:00:00Z" or with milliseconds. */
void format_iso8601(int64_t ms, char out[48]);
/* Accepts YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM); returns 0 or -1. */
int parse_iso8601(const char *s, int64_t *ms);
/* IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 HTTP date); returns 0 or -1. */
int parse_http_date(const char *s, int64_t *ms);
/* Durations such as "1d", "6h", "30m", "45s", "250ms"; returns 0 or -1. */
int parse_duration_ms(const char *s, int64_t *ms);

/* FNV1A64_INIT - the 64-bit FNV-1a offset basis: where a hash starts. */
#define FNV1A64_INIT 0xcbf29ce484222325ULL
/* fnv1a64_mem - 64-bit FNV-1a of data[0..len) continuing from h (FNV1A64_INIT to start):
 * the one hash of hash tables, bucket keys and file identities. */
uint64_t fnv1a64_mem(const void *data, size_t len, uint64_t h);
/* fnv1a64 - as fnv1a64_mem, of the NUL-terminated s. */
uint64_t fnv1a64(const char *s, uint64_t h);
/* 64-bit FNV-1a, hex-encoded into out (17 bytes): a file's identity with its name. */
void hash_hex(const void *data, size_t len, char out[17]);

/* JSON_EXACT_INT_LIMIT - 2^53: every integer of smaller magnitude is exact in a double
 * (and in JSON readers that use them), the next ones are not. */
#define JSON_EXACT_INT_LIMIT 9007199254740992.0

/* json_member_span - in text (valid JSON, e.g. already parsed), the raw text of the top
 * object's first member named key, as cJSON_GetObjectItemCaseSensitive would find it:
 * *off and *len set, 0 returned. -1 when text is not an object, has no such member, or
 * spells a member name with escapes (then the caller falls back to printing it). */
int json_member_span(const char *text, size_t n, const char *key, size_t *off, size_t *len);

/* json_member - one member of an object, as spans of the text it was found in: the name
 * between its quotes (escapes left as written) and the value's whole text. */
struct json_member {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};
/* json_next_member - the members of the object text (valid JSON) in order: start with
 * *pos = 0; each call returns 1 with *m set, 0 after the last, -1 on text that is not an
 * object. */
int json_next_member(const char *text, size_t n, size_t *pos, struct json_member *m);

/* JSON_MAX_DEPTH - the deepest nesting json_object_check accepts, as cJSON's default. */
#define JSON_MAX_DEPTH 1000
/* json_object_check - 1 when text is exactly one JSON object (RFC 8259: strings with
 * valid escapes and no raw control characters, numbers by the grammar, whitespace
 * around), at most JSON_MAX_DEPTH deep; else 0. Checks without building a tree, for a
 * body that is kept as text. With key (and off, len): *off and *len give the raw text of
 * the first top-level member named key, as cJSON_GetObjectItemCaseSensitive would find
 * it; *len is 0 when there is none, or when a name spelled with escapes comes first
 * (then the caller must parse to know). */
int json_object_check(const char *text, size_t n, const char *key, size_t *off, size_t *len);
/* json_too_deep - 1 when text would be a JSON object but for nesting deeper than
 * JSON_MAX_DEPTH (what json_object_check and cJSON refuse), else 0. For saying why a
 * body was refused, after the fact: it may allocate as much as the text is long. */
int json_too_deep(const char *text, size_t n);

/* write_all - write(2) until all of data is written (EINTR retried); 0 or -1 (errno). */
int write_all(int fd, const void *data, size_t len);
/* fsync_dirfd - fsync a directory so that renames and unlinks in it are durable. */
int fsync_dirfd(int dirfd);
/* own_like_dir - when root creates fd in dirfd, a directory of another user's (a spool
 * its service user owns), fd becomes that user's, so the service can read it. */
void own_like_dir(int dirfd, int fd);
/* write_file_atomic_at - NAME appears whole or not at all: write .NAME.part (O_EXCL),
 * fsync, renameat over NAME, fsync the directory. */
int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode);
/* read_file_at - reads a regular file (no symlink followed) of at most max bytes.
 * Returns 0, or -1 with a reason in why ("is a directory", "larger than ...", ...). */
int read_file_at(int dirfd, const char *name, size_t max, struct strbuf *out, struct strbuf *why);
/* read_file_at_stat - read_file_at, with the open file's fstat in *st_out (if not NULL):
 * the identity of the very file whose bytes were read. */
struct stat;
int read_file_at_stat(int dirfd, const char *name, size_t max, struct strbuf *out,
                      struct strbuf *why, struct stat *st_out);

/* rename_noreplace - renameat that fails with EEXIST rather than replace newname; the
 * check-then-rename fallback (filesystems without RENAME_NOREPLACE) is safe enough as
 * only the lock-holding daemon moves files into archive/, rejected/ and out/. */
int rename_noreplace(int olddir, const char *oldname, int newdir, const char *newname);

#endif
