/* metrics.c - the daemon's metrics_file: the counts kept since the start (d->metrics, fed
 * where attempts end and where admission holds a job for a bucket) and the store's jobs
 * by state, written in the Prometheus text format every METRICS_INTERVAL_S and at exit.
 * The file is written beside its final name and renamed over it, so node_exporter's
 * textfile collector reads a whole one; not fsynced: it is rewritten seconds later, and
 * after a crash an old or missing file says no more than the crash does. */
#include "daemon_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "metrics.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

#define METRICS_INTERVAL_S 5.0

/* tmp_path - ".NAME.tmp" in the directory of path: a dotfile, and not *.prom, which the
 * textfile collector would read. */
static void tmp_path(const char *path, struct strbuf *out)
{
	const char *slash = strrchr(path, '/');
	if (slash)
		sb_add(out, path, (size_t)(slash - path + 1));
	sb_addf(out, ".%s.tmp", slash ? slash + 1 : path);
}

/* write_text - text to path by a temporary file and a rename; 0, or -1 with why. */
static int write_text(const char *path, const struct strbuf *text, struct strbuf *why)
{
	struct strbuf tmp = STRBUF_INIT;
	tmp_path(path, &tmp);
	int rc = -1;
	int fd = open(tmp.buf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		sb_addf(why, "cannot create %s: %s", tmp.buf, strerror(errno));
		goto out;
	}
	if (write_all(fd, text->buf, text->len) < 0) {
		sb_addf(why, "cannot write %s: %s", tmp.buf, strerror(errno));
		close(fd);
		unlink(tmp.buf);
		goto out;
	}
	if (close(fd) < 0) {
		sb_addf(why, "cannot write %s: %s", tmp.buf, strerror(errno));
		unlink(tmp.buf);
		goto out;
	}
	if (rename(tmp.buf, path) < 0) {
		sb_addf(why, "cannot rename %s to %s: %s", tmp.buf, path, strerror(errno));
		unlink(tmp.buf);
		goto out;
	}
	rc = 0;
out:
	sb_release(&tmp);
	return rc;
}

/* metrics_file_write - one write of the file; a failure is logged once, until a write
 * succeeds again (every 5 s would bury the log). */
static void metrics_file_write(struct daemon *d)
{
	const char *path = d->cfg->metrics_file;
	struct strbuf text = STRBUF_INIT, why = STRBUF_INIT;
	if (!path || !d->st)
		return; /* none, or reconnecting to a shared store: the next write */
	if (metrics_read_queue(d->metrics, d->st) < 0)
		sb_addf(&why, "cannot count the jobs: %s", store_errmsg(d->st));
	else
		metrics_format(d->metrics, clock_wall_ms(), &text);
	if (why.len || write_text(path, &text, &why) < 0) {
		if (!d->metrics_failing)
			logmsg(LOG_WARN, "metrics file %s not written: %s (said once, until it is)",
			       path, why.buf);
		d->metrics_failing = 1;
	} else if (d->metrics_failing) {
		logmsg(LOG_INFO, "metrics file %s written again", path);
		d->metrics_failing = 0;
	}
	sb_release(&text);
	sb_release(&why);
}

/* on_metrics_timer - every METRICS_INTERVAL_S. */
static void on_metrics_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	metrics_file_write(w->data);
}

/* metrics_file_start - the counts from now; the file at the loop's first iteration, then
 * every METRICS_INTERVAL_S, when the config names one. */
void metrics_file_start(struct daemon *d)
{
	d->metrics = metrics_new(METRICS_DAEMON);
	metrics_set_start(d->metrics, clock_wall_ms());
	ev_timer_init(&d->metrics_timer, on_metrics_timer, 0., METRICS_INTERVAL_S);
	d->metrics_timer.data = d;
	if (d->cfg->metrics_file)
		ev_timer_start(d->loop, &d->metrics_timer);
}

/* metrics_file_stop - the last write, with the final counts, and the counts freed. */
void metrics_file_stop(struct daemon *d)
{
	if (!d->metrics)
		return;
	ev_timer_stop(d->loop, &d->metrics_timer);
	metrics_file_write(d);
	metrics_free(d->metrics);
	d->metrics = NULL;
}
