/* test_log - the log's three forms: journald's native datagrams (with a job's fields),
 * the priority-prefixed line when the journal's socket cannot take them, and the plain
 * line when standard error is not the journal stream. A socket of the test's own stands
 * in for journald ($SEGSPOOL_JOURNAL_SOCKET), a temporary file for standard error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"
#include "testlib.h"
#include "util.h"

static char dir[] = "/tmp/test_log.XXXXXX";
static char sock_path[64];
static int journal = -1; /* the stand-in journald's socket */

/* journal_open - binds the stand-in journal socket and points the log at it. */
static int journal_open(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sock_path, sizeof(sock_path), "%s/journal.sock", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	journal = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (journal < 0 || bind(journal, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("journal socket");
		return -1;
	}
	setenv("SEGSPOOL_JOURNAL_SOCKET", sock_path, 1);
	return 0;
}

/* journal_close - the journal goes away: its socket is closed and unlinked. */
static void journal_close(void)
{
	close(journal);
	journal = -1;
	unlink(sock_path);
}

/* journal_recv - the next datagram into e (reset first); its length, or -1 when none. */
static ssize_t journal_recv(struct strbuf *e)
{
	sb_reset(e);
	sb_grow(e, LOG_DATAGRAM_MAX * 2);
	ssize_t n = recv(journal, e->buf, e->alloc - 1, MSG_DONTWAIT);
	if (n >= 0)
		sb_setlen(e, (size_t)n);
	return n;
}

/* entry_field - the value of field name in the native entry e, into v: 1 (and *binary
 * set when the field came in the length-prefixed form), 0 when absent, -1 when e does
 * not follow the protocol. */
static int entry_field(const struct strbuf *e, const char *name, struct strbuf *v, int *binary)
{
	size_t i = 0, nlen = strlen(name);
	sb_reset(v);
	while (i < e->len) {
		const char *line = e->buf + i;
		const char *nl = memchr(line, '\n', e->len - i);
		const char *eq = memchr(line, '=', e->len - i);
		if (!nl)
			return -1;
		const char *val;
		size_t vlen, next;
		int bin = !eq || nl < eq;
		size_t flen = (size_t)((bin ? nl : eq) - line);
		if (!bin) {
			val = eq + 1;
			vlen = (size_t)(nl - val);
			next = (size_t)(nl + 1 - e->buf);
		} else {
			size_t at = (size_t)(nl + 1 - e->buf);
			uint64_t len = 0;
			if (e->len - at < 8)
				return -1;
			for (int k = 7; k >= 0; k--)
				len = len << 8 | (unsigned char)e->buf[at + (size_t)k];
			if (e->len - at - 8 < len + 1 || e->buf[at + 8 + len] != '\n')
				return -1;
			val = e->buf + at + 8;
			vlen = (size_t)len;
			next = at + 8 + (size_t)len + 1;
		}
		if (flen == nlen && !memcmp(line, name, nlen)) {
			sb_add(v, val, vlen);
			if (binary)
				*binary = bin;
			return 1;
		}
		i = next;
	}
	return 0;
}

struct capture {
	int fd, saved;
};

/* capture_start - standard error becomes a temporary file; with journal_stream,
 * $JOURNAL_STREAM names that file, as systemd names the journal's stream. */
static void capture_start(struct capture *c, int journal_stream)
{
	char path[64];
	snprintf(path, sizeof(path), "%s/stderr.XXXXXX", dir);
	c->fd = mkstemp(path);
	unlink(path);
	c->saved = dup(STDERR_FILENO);
	if (journal_stream) {
		struct stat st;
		char js[64];
		fstat(c->fd, &st);
		snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
		         (unsigned long long)st.st_ino);
		setenv("JOURNAL_STREAM", js, 1);
	}
	dup2(c->fd, STDERR_FILENO);
}

/* capture_end - standard error back, and what was written to it in out. */
static void capture_end(struct capture *c, struct strbuf *out)
{
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	sb_reset(out);
	char buf[4096];
	ssize_t n;
	off_t off = 0;
	while ((n = pread(c->fd, buf, sizeof(buf), off)) > 0) {
		sb_add(out, buf, (size_t)n);
		off += n;
	}
	close(c->fd);
}

/* a job's message goes to the journal with the job's fields; a multi-line message in
 * the protocol's binary form, its other control characters escaped as on a line */
TEST(native_entry_with_job_fields)
{
	struct strbuf e = STRBUF_INIT, v = STRBUF_INIT, err = STRBUF_INIT;
	struct capture c;
	int bin = -1;
	capture_start(&c, 1);
	log_job(LOG_ERROR, 42, "createSource", "failed", "job %d (%s) failed: %s", 42,
	        "createSource", "HTTP 404 NotFound\nsecond line\x01");
	capture_end(&c, &err);
	CHECK_INT(err.len, 0); /* in the journal only, not twice */
	CHECK(journal_recv(&e) > 0);
	CHECK_INT(entry_field(&e, "MESSAGE", &v, &bin), 1);
	CHECK_STR(v.buf, "job 42 (createSource) failed: HTTP 404 NotFound\nsecond line\\x01");
	CHECK_INT(bin, 1);
	CHECK(memmem(e.buf, e.len, "MESSAGE\n", 8) != NULL); /* no "MESSAGE=" line */
	CHECK(memmem(e.buf, e.len, "MESSAGE=", 8) == NULL);
	CHECK_INT(entry_field(&e, "PRIORITY", &v, &bin), 1);
	CHECK_STR(v.buf, "3");
	CHECK_INT(bin, 0);
	CHECK_INT(entry_field(&e, "SYSLOG_IDENTIFIER", &v, NULL), 1);
	CHECK_STR(v.buf, "segspool");
	CHECK_INT(entry_field(&e, "SEGSPOOL_JOB", &v, NULL), 1);
	CHECK_STR(v.buf, "42");
	CHECK_INT(entry_field(&e, "SEGSPOOL_OP", &v, NULL), 1);
	CHECK_STR(v.buf, "createSource");
	CHECK_INT(entry_field(&e, "SEGSPOOL_STATE", &v, NULL), 1);
	CHECK_STR(v.buf, "failed");
	CHECK(journal_recv(&e) < 0); /* one datagram a message */

	/* a message about no job: no job fields; one line, in the text form */
	capture_start(&c, 1);
	logmsg(LOG_INFO, "running on spool %s", "/var/spool/segspool");
	error("cannot open %s", "x");
	capture_end(&c, &err);
	CHECK_INT(err.len, 0);
	CHECK(journal_recv(&e) > 0);
	CHECK_INT(entry_field(&e, "MESSAGE", &v, &bin), 1);
	CHECK_STR(v.buf, "running on spool /var/spool/segspool");
	CHECK_INT(bin, 0);
	CHECK_INT(entry_field(&e, "PRIORITY", &v, NULL), 1);
	CHECK_STR(v.buf, "6");
	CHECK_INT(entry_field(&e, "SEGSPOOL_JOB", &v, NULL), 0);
	CHECK_INT(entry_field(&e, "SEGSPOOL_STATE", &v, NULL), 0);
	CHECK(journal_recv(&e) > 0); /* error() is logged the same way */
	CHECK_INT(entry_field(&e, "PRIORITY", &v, NULL), 1);
	CHECK_STR(v.buf, "3");
	CHECK_INT(entry_field(&e, "MESSAGE", &v, NULL), 1);
	CHECK_STR(v.buf, "cannot open x");

	/* a job without op or state said: only the id */
	capture_start(&c, 1);
	log_job(LOG_WARN, 7, NULL, NULL, "job %d: the request could not be started", 7);
	capture_end(&c, &err);
	CHECK(journal_recv(&e) > 0);
	CHECK_INT(entry_field(&e, "SEGSPOOL_JOB", &v, NULL), 1);
	CHECK_STR(v.buf, "7");
	CHECK_INT(entry_field(&e, "SEGSPOOL_OP", &v, NULL), 0);
	CHECK_INT(entry_field(&e, "PRIORITY", &v, NULL), 1);
	CHECK_STR(v.buf, "4");
	sb_release(&e);
	sb_release(&v);
	sb_release(&err);
}

/* an entry bigger than a datagram is written to the stream, with its priority */
TEST(big_entry_goes_to_the_stream)
{
	struct strbuf e = STRBUF_INIT, err = STRBUF_INIT, big = STRBUF_INIT;
	struct capture c;
	for (size_t i = 0; i < LOG_DATAGRAM_MAX; i++)
		sb_addch(&big, (char)('a' + i % 26));
	capture_start(&c, 1);
	log_job(LOG_INFO, 42, "getSource", "succeeded", "%s", big.buf);
	capture_end(&c, &err);
	CHECK(journal_recv(&e) < 0);
	CHECK_INT(err.len, 3 + big.len + 1);
	CHECK(strncmp(err.buf, "<6>abc", 6) == 0);
	CHECK(err.len && err.buf[err.len - 1] == '\n');
	sb_release(&e);
	sb_release(&err);
	sb_release(&big);
}

/* no journal socket: the stream gets "<N>MESSAGE", no timestamp (journald adds its own) */
TEST(prefix_when_socket_absent)
{
	struct strbuf err = STRBUF_INIT;
	struct capture c;
	journal_close();
	capture_start(&c, 1);
	logmsg(LOG_WARN, "cannot read %s", "a.json\nforged");
	log_job(LOG_ERROR, 42, "createSource", "failed", "job %d failed", 42);
	log_set_level(LOG_DEBUG);
	logmsg(LOG_DEBUG, "ingested %s", "b.json");
	log_set_level(LOG_INFO);
	logmsg(LOG_DEBUG, "dropped below the level");
	capture_end(&c, &err);
	CHECK_STR(err.buf, "<4>cannot read a.json\\nforged\n"
	                   "<3>job 42 failed\n"
	                   "<7>ingested b.json\n");
	sb_release(&err);
}

/* plain lines when $JOURNAL_STREAM is absent, names another file, or is malformed: even
 * with a journal socket there, nothing is sent to it */
TEST(plain_when_stream_differs)
{
	struct strbuf e = STRBUF_INIT, err = STRBUF_INIT, want = STRBUF_INIT;
	struct capture c;
	if (journal_open() < 0)
		return;
	const char *streams[] = {NULL, "1:2", "", "12", "x:y", "-"};
	for (size_t i = 0; i < ARRAY_SIZE(streams); i++) {
		if (streams[i])
			setenv("JOURNAL_STREAM", streams[i], 1);
		else
			unsetenv("JOURNAL_STREAM");
		capture_start(&c, 0);
		log_job(LOG_WARN, 42, "createSource", "waiting", "job %d: next try in %d ms", 42,
		        1000);
		capture_end(&c, &err);
		sb_reset(&want);
		sb_addf(&want, " segspool[%ld] warn: job 42: next try in 1000 ms\n",
		        (long)getpid());
		CHECK(err.len > want.len && !strcmp(err.buf + err.len - want.len, want.buf));
		/* the line starts with its own time: 2026-12-01T00:00:00.123Z */
		CHECK(err.len > 20 && err.buf[4] == '-' && err.buf[10] == 'T');
		CHECK(journal_recv(&e) < 0);
	}
	/* the stream's numbers with anything after them are not the stream */
	capture_start(&c, 1);
	const char *js = getenv("JOURNAL_STREAM");
	sb_reset(&want);
	sb_addf(&want, "%sx", js ? js : "");
	setenv("JOURNAL_STREAM", want.buf, 1);
	logmsg(LOG_INFO, "hello");
	capture_end(&c, &err);
	CHECK(strstr(err.buf, " info: hello\n") != NULL);
	CHECK(journal_recv(&e) < 0);
	unsetenv("JOURNAL_STREAM");
	sb_release(&e);
	sb_release(&err);
	sb_release(&want);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	if (journal_open() < 0)
		return 1;
	RUN(native_entry_with_job_fields);
	RUN(big_entry_goes_to_the_stream);
	RUN(prefix_when_socket_absent);
	RUN(plain_when_stream_differs);
	journal_close();
	rmdir(dir);
	return tl_finish();
}
