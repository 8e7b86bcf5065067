/* cli.h - what the command line's files share: the commands that live outside main.c
 * (their rows are in main.c's table) and the store opened as they read it. */
#ifndef SEGSPOOL_CLI_H
#define SEGSPOOL_CLI_H

struct config;
struct store;

/* cli_open_store_ro - the store, read-only (as list/show/stats open it); NULL after
 * saying why on standard error. */
struct store *cli_open_store_ro(const struct config *cfg);

/* cmd_watch - segspool watch [ID] [--until-idle] [--interval S] (watch.c). */
int cmd_watch(struct config *cfg, int argc, char **argv);
/* cmd_status - segspool status [--json] (status.c): 0 a daemon runs, 3 none. */
int cmd_status(struct config *cfg, int argc, char **argv);

#endif
