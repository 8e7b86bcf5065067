/* log.c - the log: stderr lines, or journald's native protocol (see log.h). */
#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "strbuf.h"
#include "util.h"

static enum log_level log_threshold = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};
/* syslog's numbers, which journald's PRIORITY= and sd-daemon(3)'s "<N>" prefix use */
static const int level_priority[] = {7, 6, 4, 3};
/* the datagram socket to journald, opened at the first entry; atomic because the
 * emulator logs from its server's threads */
static atomic_int journal_fd = -1;

/* log_set_level - messages below level are dropped. */
void log_set_level(enum log_level level)
{
	log_threshold = level;
}

/* log_parse_level - "debug", "info", "warn" or "error". */
int log_parse_level(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

/* escape - log_escape's work; with keep_newlines, \n stays itself, for a journal field
 * that carries its length and so cannot be cut into a forged entry. */
static void escape(struct strbuf *out, const char *s, size_t n, int keep_newlines)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != 0x7f) {
			sb_addch(out, (char)c);
		} else if (c == '\n') {
			sb_adds(out, keep_newlines ? "\n" : "\\n");
		} else if (c == '\r') {
			sb_adds(out, "\\r");
		} else if (c == '\t') {
			sb_adds(out, "\\t");
		} else {
			char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
			sb_add(out, esc, sizeof(esc));
		}
	}
}

/* log_escape - s with \n, \r, \t and the other control bytes (< 0x20, 0x7f) written
 * as escapes: a logged file name or server message cannot start a forged log line. */
void log_escape(struct strbuf *out, const char *s, size_t n)
{
	escape(out, s, n, 0);
}

/* stderr_is_journal - whether $JOURNAL_STREAM ("DEV:INO", set by systemd when a service's
 * output goes to the journal) names the file open as standard error: a process that
 * inherited the variable with its stderr sent elsewhere (a terminal, a file) keeps the
 * line form. */
static int stderr_is_journal(void)
{
	const char *p = getenv("JOURNAL_STREAM");
	if (!p || *p < '0' || *p > '9')
		return 0;
	char *end;
	errno = 0;
	unsigned long long dev = strtoull(p, &end, 10);
	if (errno || *end != ':' || end[1] < '0' || end[1] > '9')
		return 0;
	p = end + 1;
	unsigned long long ino = strtoull(p, &end, 10);
	if (errno || *end)
		return 0;
	struct stat st;
	if (fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* journal_field - one field of a native entry: NAME=VALUE\n, or, for a value with a
 * newline, the protocol's binary form: NAME\n, the length as 64-bit little-endian, the
 * value, \n. */
static void journal_field(struct strbuf *e, const char *name, const char *v, size_t n)
{
	sb_adds(e, name);
	if (!memchr(v, '\n', n)) {
		sb_addch(e, '=');
	} else {
		unsigned char len[8];
		for (size_t i = 0; i < sizeof(len); i++)
			len[i] = (unsigned char)((uint64_t)n >> (8 * i));
		sb_addch(e, '\n');
		sb_add(e, len, sizeof(len));
	}
	sb_add(e, v, n);
	sb_addch(e, '\n');
}

/* journal_entry - the native entry for msg: its priority, who says it, and the job's
 * fields; control characters but newlines escaped as on a line. */
static void journal_entry(struct strbuf *e, enum log_level level, const struct log_job_ref *job,
                          const struct strbuf *msg)
{
	struct strbuf v = STRBUF_INIT;
	sb_addf(e, "PRIORITY=%d\nSYSLOG_IDENTIFIER=segspool\n", level_priority[level]);
	escape(&v, msg->buf, msg->len, 1);
	journal_field(e, "MESSAGE", v.buf, v.len);
	if (job && job->id > 0)
		sb_addf(e, "SEGSPOOL_JOB=%lld\n", (long long)job->id);
	if (job && job->op) {
		sb_reset(&v);
		log_escape(&v, job->op, strlen(job->op));
		journal_field(e, "SEGSPOOL_OP", v.buf, v.len);
	}
	if (job && job->state) {
		sb_reset(&v);
		log_escape(&v, job->state, strlen(job->state));
		journal_field(e, "SEGSPOOL_STATE", v.buf, v.len);
	}
	sb_release(&v);
}

/* journal_send - the entry as one datagram to journald; 0, or -1 when it was not sent (no
 * socket there, or an entry bigger than LOG_DATAGRAM_MAX). */
static int journal_send(const struct strbuf *e)
{
	if (e->len > LOG_DATAGRAM_MAX)
		return -1;
	/* a test stands in for journald with a socket of its own: CI machines run no
	 * journald, and a test must not write into the machine's journal */
	const char *path = getenv("SEGSPOOL_JOURNAL_SOCKET");
	if (!path || !*path)
		path = LOG_JOURNAL_SOCKET;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t plen = strlen(path);
	if (plen >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, plen);
	int fd = atomic_load(&journal_fd);
	if (fd < 0) {
		int none = -1;
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		if (!atomic_compare_exchange_strong(&journal_fd, &none, fd)) {
			close(fd);
			fd = none;
		}
	}
	ssize_t n;
	do
		n = sendto(fd, e->buf, e->len, MSG_NOSIGNAL, (const struct sockaddr *)&sa,
		           sizeof(sa));
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)e->len ? 0 : -1;
}

/* log_vmsg - see log.h: the message in the form stderr calls for. */
void log_vmsg(enum log_level level, const struct log_job_ref *job, const char *suffix,
              const char *fmt, va_list ap)
{
	if (level < log_threshold)
		return;
	int saved = errno;
	struct strbuf msg = STRBUF_INIT, out = STRBUF_INIT;
	sb_vaddf(&msg, fmt, ap);
	if (suffix)
		sb_adds(&msg, suffix);
	if (!stderr_is_journal()) {
		char when[48];
		format_iso8601(clock_wall_ms(), when);
		sb_addf(&out, "%s segspool[%ld] %s: ", when, (long)getpid(), level_names[level]);
	} else {
		journal_entry(&out, level, job, &msg);
		int sent = journal_send(&out) == 0;
		sb_reset(&out);
		if (sent)
			goto done;
		/* journald stamps and attributes each line of the stream itself */
		sb_addf(&out, "<%d>", level_priority[level]);
	}
	log_escape(&out, msg.buf, msg.len);
	sb_addch(&out, '\n');
	/* one write per line, so lines from concurrent processes do not interleave */
	ssize_t unused = write(STDERR_FILENO, out.buf, out.len);
	(void)unused;
done:
	sb_release(&msg);
	sb_release(&out);
	errno = saved;
}

/* logmsg - one message, about no job in particular. */
void logmsg(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, NULL, NULL, fmt, ap);
	va_end(ap);
}

/* log_job - one message about a job, with its fields in the journal. */
void log_job(enum log_level level, int64_t id, const char *op, const char *state, const char *fmt,
             ...)
{
	struct log_job_ref job = {.id = id, .op = op, .state = state};
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, &job, NULL, fmt, ap);
	va_end(ap);
}
