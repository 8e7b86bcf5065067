/* cli.h - what the command line's files share: the commands that live outside main.c
 * (their rows are in main.c's table) and the store opened as they read it. */
#ifndef SEGSPOOL_CLI_H
#define SEGSPOOL_CLI_H

/* the exit codes of every command (status adds 3: no daemon runs) */
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

struct cJSON;
struct config;
struct job_list;
struct store;
struct strbuf;

/* cli_open_store_ro - the store, read-only (as list/show/stats open it); NULL after
 * saying why on standard error. */
struct store *cli_open_store_ro(const struct config *cfg);

/* cli_usage_error - "segspool: " and the message on standard error; EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* cli_print_json - the document on standard output, indented when pretty. */
void cli_print_json(const struct cJSON *doc, int pretty);

/* cmd_list, cmd_show, cmd_stats, cmd_metrics - the store read and printed (reading.c). */
int cmd_list(struct config *cfg, int argc, char **argv);
int cmd_show(struct config *cfg, int argc, char **argv);
int cmd_stats(struct config *cfg, int argc, char **argv);
int cmd_metrics(struct config *cfg, int argc, char **argv);

/* cli_parse_file - one input (a path, or "-" for standard input) read into data, parsed
 * and validated into *list (the caller releases it), its "after" keys and references
 * against the file's own jobs and those of st (NULL: no store yet); its problems printed
 * on standard error with where they are. 0 good, 1 bad. */
int cli_parse_file(const char *path, struct strbuf *data, struct job_list *list, struct store *st);
/* cli_shared_store - the store, read-only, when db names a PostgreSQL database (a store
 * several daemons work); NULL when it names an SQLite file (saying nothing), or when the
 * database cannot be opened (said why on standard error). */
struct store *cli_shared_store(const struct config *cfg);
/* cli_store_if_any - the store read-only when its file exists, else NULL (said why on
 * standard error when it exists but cannot be opened). */
struct store *cli_store_if_any(const struct config *cfg);

/* cmd_plan - segspool plan FILE... [--json] (plan_cmd.c). */
int cmd_plan(struct config *cfg, int argc, char **argv);
/* cmd_watch - segspool watch [ID] [--until-idle] [--interval S] (watch.c). */
int cmd_watch(struct config *cfg, int argc, char **argv);
/* cmd_status - segspool status [--json] (status.c): 0 a daemon runs, 3 none. */
int cmd_status(struct config *cfg, int argc, char **argv);

#endif
