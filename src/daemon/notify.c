/* notify.c - the service manager's notify protocol without libsystemd: a datagram to
 * $NOTIFY_SOCKET for each change, so a Type=notify unit knows when the daemon serves
 * (READY=1: the store is open and recovery done), when it stops (STOPPING=1), and that
 * its loop still turns (WATCHDOG=1 every half of $WATCHDOG_USEC, for WatchdogSec=).
 * Without $NOTIFY_SOCKET (a terminal, a test, cron) every call does nothing. */
#include "daemon_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "strbuf.h"
#include "util.h"

/* notify_send - one datagram of "KEY=VALUE" lines to $NOTIFY_SOCKET (a path, or an
 * abstract name written with a leading '@'); 0 when sent or when the variable is unset. */
int notify_send(const char *state)
{
	const char *addr = getenv("NOTIFY_SOCKET");
	if (!addr || !*addr)
		return 0;
	struct sockaddr_un sa;
	size_t n = strlen(addr);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if ((addr[0] != '/' && addr[0] != '@') || n >= sizeof(sa.sun_path)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(sa.sun_path, addr, n);
	if (addr[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract: the name is the bytes after the NUL, no end */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	ssize_t sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	                      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
	int saved = errno;
	close(fd);
	errno = saved;
	return sent < 0 ? -1 : 0;
}

/* notify - notify_send, with the first failure logged (the watchdog would repeat it
 * every few seconds); the service manager then times the start out, which says why. */
static void notify(struct daemon *d, const char *state)
{
	if (notify_send(state) == 0 || d->notify_failed)
		return;
	d->notify_failed = 1;
	struct strbuf where = STRBUF_INIT;
	log_escape(&where, getenv("NOTIFY_SOCKET"), strlen(getenv("NOTIFY_SOCKET")));
	logmsg(LOG_WARN, "cannot notify the service manager at NOTIFY_SOCKET=%s: %s", where.buf,
	       strerror(errno));
	sb_release(&where);
}

static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	notify(w->data, "WATCHDOG=1");
}

/* watchdog_interval - half of $WATCHDOG_USEC in seconds, when it is meant for us (no
 * $WATCHDOG_PID, or ours); 0 when there is no watchdog. */
static double watchdog_interval(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	char *end;
	if (!usec || !*usec)
		return 0;
	if (pid && *pid && strtol(pid, &end, 10) != (long)getpid())
		return 0;
	errno = 0;
	unsigned long long us = strtoull(usec, &end, 10);
	if (errno || *end || us == 0) {
		logmsg(LOG_WARN, "ignoring WATCHDOG_USEC, not a number of microseconds");
		return 0;
	}
	return (double)us / 2e6;
}

/* notify_ready - READY=1 and the watchdog's pings; called once the store is open, the
 * jobs an earlier stop left running are queued again and the signals are caught. */
void notify_ready(struct daemon *d)
{
	struct strbuf msg = STRBUF_INIT;
	sb_addf(&msg, "READY=1\nSTATUS=running on spool %s\nMAINPID=%ld", d->cfg->spool_dir,
	        (long)getpid());
	notify(d, msg.buf);
	sb_release(&msg);
	double every = watchdog_interval();
	if (every > 0) {
		ev_timer_init(&d->watchdog, on_watchdog, every, every);
		d->watchdog.data = d;
		ev_timer_start(d->loop, &d->watchdog);
	}
}

/* notify_stopping - STOPPING=1, once, when a stop begins (a signal, or --until-idle done). */
void notify_stopping(struct daemon *d)
{
	if (d->notify_stopping)
		return;
	d->notify_stopping = 1;
	notify(d, "STOPPING=1\nSTATUS=stopping");
}

/* notify_end - no more watchdog pings: the loop is over. */
void notify_end(struct daemon *d)
{
	ev_timer_stop(d->loop, &d->watchdog);
}
