/* daemon.h - the daemon: wires spool intake, the store, rate limits, retries, pagination
 * and HTTP on one libev loop. One process, one thread. */
#ifndef SEGSPOOL_DAEMON_H
#define SEGSPOOL_DAEMON_H

struct config;

/* daemon_run - runs until SIGTERM/SIGINT (or, with until_idle, until nothing is left
 * to do). Returns the process exit code: 0 clean stop, 1 could not start. */
int daemon_run(struct config *cfg, int until_idle);

#endif
