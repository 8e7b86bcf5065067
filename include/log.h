/* log.h - the log: one line a message on standard error, or, when standard error is
 * journald's (systemd's $JOURNAL_STREAM names it), journal entries that carry their
 * priority and, for a message about a job, the job's fields.
 *
 * Three forms, chosen for each message:
 *   - a terminal, a file, a pipe: "TIME segspool[PID] LEVEL: MESSAGE", as always;
 *   - stderr is the journal stream and the journal's socket answers: one datagram of
 *     journald's native protocol, with PRIORITY=, SYSLOG_IDENTIFIER=segspool and, from
 *     log_job, SEGSPOOL_JOB=, SEGSPOOL_OP=, SEGSPOOL_STATE= (so that
 *     `journalctl -u segspool SEGSPOOL_JOB=42` shows one job's story);
 *   - stderr is the journal stream but the datagram cannot be sent (no socket, a message
 *     too big for one): "<P>MESSAGE" on stderr, sd-daemon(3)'s priority prefix, with no
 *     timestamp of its own (journald stamps every line). */
#ifndef SEGSPOOL_LOG_H
#define SEGSPOOL_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct strbuf;

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* LOG_JOURNAL_SOCKET - journald's native socket; $SEGSPOOL_JOURNAL_SOCKET replaces it. */
#define LOG_JOURNAL_SOCKET "/run/systemd/journal/socket"
/* LOG_DATAGRAM_MAX - the largest entry sent as one datagram; a bigger one goes to stderr
 * (prefix form) rather than fail on a socket buffer's size. */
#define LOG_DATAGRAM_MAX (64 * 1024)

void log_set_level(enum log_level level);
int log_parse_level(const char *name, enum log_level *out);

/* logmsg - one message: the line of the form above; the message's control characters
 * are escaped (log_escape), so on stderr it is always one line. */
void logmsg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* log_job_ref - the job a message is about: id (0: none), its operation and the state it
 * is in or moves to (NULL: not said). */
struct log_job_ref {
	int64_t id;
	const char *op;
	const char *state;
};

/* log_job - logmsg about one job: under journald the entry carries SEGSPOOL_JOB=id (when
 * id > 0), SEGSPOOL_OP=op and SEGSPOOL_STATE=state (when not NULL); elsewhere the line is
 * logmsg's, word for word. */
void log_job(enum log_level level, int64_t id, const char *op, const char *state, const char *fmt,
             ...) __attribute__((format(printf, 5, 6)));

/* log_vmsg - the one writer under logmsg, log_job, error() and die(): job may be NULL,
 * suffix (or NULL) follows the formatted message. errno is kept. */
void log_vmsg(enum log_level level, const struct log_job_ref *job, const char *suffix,
              const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

/* log_escape - appends s[0..n) with \n, \r, \t as such and other bytes < 0x20 and 0x7f
 * as \xNN; bytes from 0x80 (UTF-8) are kept. */
void log_escape(struct strbuf *out, const char *s, size_t n);

#endif
