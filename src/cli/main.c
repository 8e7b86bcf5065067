/* main.c - the segspool command line: a table of subcommands {name, fn, help}. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "cli.h"
#include "config.h"
#include "control.h"
#include "job.h"
#include "metrics.h"
#include "retry.h"
#include "daemon.h"
#include "segspool_version.h"
#include "spool.h"
#include "store.h"
#include "views.h"
#include "strbuf.h"
#include "util.h"

/* the Debian package's configuration (packaging/segspool.json) */
#define SYSTEM_CONFIG "/etc/segspool/segspool.json"

struct cmd {
	const char *name;
	int (*fn)(struct config *cfg, int argc, char **argv);
	const char *usage;
	const char *help;
};

static const struct cmd *find_cmd(const char *name);

/* cli_usage_error - see cli.h. */
int cli_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("segspool: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return EXIT_USAGE;
}

/* read_input - a file's bytes, or stdin's for "-". */
static int read_input(const char *path, struct strbuf *out, struct strbuf *why)
{
	if (strcmp(path, "-") != 0)
		return read_file_at(AT_FDCWD, path, JOB_MAX_FILE_BYTES, out, why);
	char buf[65536];
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			sb_addf(why, "cannot read standard input: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			return 0;
		sb_add(out, buf, (size_t)n);
		if (out->len > JOB_MAX_FILE_BYTES) {
			sb_addf(why, "standard input is larger than the limit of %u bytes",
			        JOB_MAX_FILE_BYTES);
			return -1;
		}
	}
}

/* print_problems - FILE:LINE: POINTER: what (expected ...), one a line. */
static void print_problems(const char *file, const struct job_list *list)
{
	for (size_t i = 0; i < list->nproblems; i++) {
		const struct job_problem *p = &list->problems[i];
		fprintf(stderr, "%s", file);
		if (p->line)
			fprintf(stderr, ":%d", p->line);
		fprintf(stderr, ": %s%s%s", p->where[0] ? p->where : "", p->where[0] ? ": " : "",
		        p->what);
		if (p->expected)
			fprintf(stderr,
			        strncmp(p->expected, "did you mean", 12) == 0 ? " (%s?)"
			                                                      : " (expected %s)",
			        p->expected);
		fputc('\n', stderr);
	}
}

/* cli_parse_file - one input read, parsed and validated into *list (the caller releases
 * it); its problems printed. 0 good, 1 bad. */
/* key_in_store - job_list_check_refs's known(): a key a job in the store has. */
static int key_in_store(const char *key, void *arg)
{
	return arg && store_key_recorded(arg, key) == 1;
}

int cli_parse_file(const char *path, struct strbuf *data, struct job_list *list, struct store *st)
{
	struct strbuf why = STRBUF_INIT;
	memset(list, 0, sizeof(*list));
	if (read_input(path, data, &why) < 0) {
		fprintf(stderr, "%s: %s\n", path, why.buf);
		sb_release(&why);
		return 1;
	}
	sb_release(&why);
	const char *name = strcmp(path, "-") == 0 ? "stdin.json" : path;
	int bad = job_parse_buffer(data->buf, data->len, job_format_for_name(name), list);
	if (!bad && job_list_check_refs(list, key_in_store, st) > 0)
		bad = 1;
	if (bad)
		print_problems(path, list);
	return bad ? 1 : 0;
}

/* check_file - parse and validate one input against the keys of st (NULL: none);
 * prints its problems. 0 good, 1 bad. */
static int check_file(const char *path, struct strbuf *data, size_t *njobs, struct store *st)
{
	struct job_list list;
	int bad = cli_parse_file(path, data, &list, st);
	*njobs = list.njobs;
	job_list_release(&list);
	return bad;
}

/* cli_shared_store - see cli.h. */
struct store *cli_shared_store(const struct config *cfg)
{
	return store_is_postgresql(cfg->db_path) ? cli_open_store_ro(cfg) : NULL;
}

/* cli_store_if_any - the store read-only when it exists; see cli.h. */
struct store *cli_store_if_any(const struct config *cfg)
{
	return access(cfg->db_path, F_OK) == 0 ? cli_open_store_ro(cfg) : cli_shared_store(cfg);
}

static int cmd_validate(struct config *cfg, int argc, char **argv)
{
	if (argc < 2)
		return cli_usage_error("usage: segspool validate FILE...|-");
	int bad = 0;
	struct store *st = cli_store_if_any(cfg);
	for (int i = 1; i < argc; i++) {
		struct strbuf data = STRBUF_INIT;
		size_t n = 0;
		if (check_file(argv[i], &data, &n, st))
			bad = 1;
		else
			printf("%s: ok, %zu job(s)\n", argv[i], n);
		sb_release(&data);
	}
	if (st)
		store_close(st);
	return bad ? EXIT_FAILED : EXIT_OK;
}

static int cmd_submit(struct config *cfg, int argc, char **argv)
{
	if (argc < 2)
		return cli_usage_error("usage: segspool submit FILE...|-");
	struct spool sp;
	if (spool_open(cfg->spool_dir, 1, &sp) < 0)
		return EXIT_FAILED;
	int bad = 0;
	struct store *st = cli_store_if_any(cfg);
	for (int i = 1; i < argc; i++) {
		struct strbuf data = STRBUF_INIT, name = STRBUF_INIT;
		size_t n = 0;
		if (check_file(argv[i], &data, &n, st)) {
			fprintf(stderr, "%s: not submitted\n", argv[i]);
			bad = 1;
		} else if (spool_submit(&sp, argv[i], data.buf, data.len, &name) < 0) {
			fprintf(stderr, "%s: cannot submit into %s/incoming\n", argv[i],
			        cfg->spool_dir);
			bad = 1;
		} else {
			printf("%s: submitted as %s/incoming/%s (%zu job(s))\n", argv[i],
			       cfg->spool_dir, name.buf, n);
		}
		sb_release(&data);
		sb_release(&name);
	}
	if (st)
		store_close(st);
	spool_close(&sp);
	return bad ? EXIT_FAILED : EXIT_OK;
}

static int cmd_run(struct config *cfg, int argc, char **argv)
{
	int until_idle = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--until-idle") == 0)
			until_idle = 1;
		else
			return cli_usage_error(
			    "run: unknown option %s (usage: segspool run [--until-idle])", argv[i]);
	}
	return daemon_run(cfg, until_idle) == 0 ? EXIT_OK : EXIT_FAILED;
}

/* how long a CLI command waits for another one that holds the spool lock */
#define CLI_LOCK_WAIT_MS 60000

/* cli_report - what control.c did with each job, kept until the spool lock is let go:
 * stdout may be a slow pipe, and a daemon may be waiting for the lock. */
struct cli_report {
	enum control_action action;
	struct strbuf out, err;
};

static void report_outcome(int64_t id, enum control_outcome o, size_t nchildren, const char *why,
                           void *arg)
{
	struct cli_report *r = arg;
	if (o == CONTROL_DONE || o == CONTROL_ABORTED) {
		sb_addf(&r->out, "job %lld: %s", (long long)id,
		        r->action == CONTROL_RETRY ? "queued again"
		        : o == CONTROL_ABORTED
		            ? "cancelled (the daemon running it aborts its request)"
		            : "cancelled");
		if (nchildren)
			sb_addf(&r->out, ", with %zu child job(s)", nchildren);
		sb_addch(&r->out, '\n');
	} else {
		sb_addf(&r->err, "job %lld: cannot %s it (%s)\n", (long long)id,
		        control_action_name(r->action), why ? why : "unknown reason");
	}
}

/* leave_running - a shared store: a running job keeps running, its cancel_requested set
 * by store_job_cancel; the daemon whose node runs it aborts the request (heartbeat). */
static void leave_running(int64_t id, void *arg)
{
	(void)id;
	(void)arg;
}

/* control_in_store - no daemon runs (or the store is shared: the daemons read it): the
 * request on the store, in one transaction, while this command holds the spool lock (a
 * shared store's daemons need none). */
static int control_in_store(struct config *cfg, const struct control_request *req,
                            struct cli_report *rep, int shared)
{
	struct store *st = NULL;
	char *err = NULL;
	if (store_open(cfg->db_path, 0, &st, &err) < 0) {
		fprintf(stderr, "segspool: %s\n", err ? err : "cannot open the store");
		free(err);
		return EXIT_FAILED;
	}
	struct control_hooks hooks = {shared ? leave_running : NULL, report_outcome, rep};
	int rc = EXIT_OK, bad = -1;
	if (store_begin(st) == 0)
		bad = control_apply(st, req, clock_wall_ms(), &hooks);
	if (bad < 0 || store_commit(st) < 0) {
		store_rollback(st);
		sb_reset(&rep->out);
		sb_addf(&rep->err, "segspool: cannot %s: %s; nothing was changed\n",
		        control_action_name(req->action), store_errmsg(st));
		rc = EXIT_FAILED;
	} else if (bad > 0) {
		rc = EXIT_FAILED;
	}
	store_close(st);
	return rc;
}

/* control - retry/cancel: through the spool when a daemon runs, else on the store. */
static int control(struct config *cfg, int argc, char **argv, enum control_action action)
{
	const char *name = control_action_name(action);
	struct control_request req = {.action = action};
	req.ids = xcalloc((size_t)argc, sizeof(*req.ids));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--state") == 0 && i + 1 < argc) {
			if (job_state_parse(argv[++i], &req.state) < 0) {
				control_request_release(&req);
				return cli_usage_error("%s: unknown state %s", name, argv[i]);
			}
			req.by_state = 1;
			continue;
		}
		char *end;
		errno = 0;
		long long n = strtoll(argv[i], &end, 10);
		if (*end || n <= 0 || errno) {
			control_request_release(&req);
			return cli_usage_error("usage: segspool %s ID...%s", name,
			                       action == CONTROL_RETRY ? "|--state S" : "");
		}
		req.ids[req.nids++] = n;
	}
	if (!req.nids && !req.by_state) {
		control_request_release(&req);
		return cli_usage_error("usage: segspool %s ID...", name);
	}
	if (req.nids && req.by_state) {
		control_request_release(&req);
		return cli_usage_error("%s: give job ids or --state, not both", name);
	}
	struct store *shared = cli_shared_store(cfg);
	if (shared) {
		/* several daemons work it, none through a control file: written directly */
		store_close(shared);
		struct cli_report rep = {action, STRBUF_INIT, STRBUF_INIT};
		int rc = control_in_store(cfg, &req, &rep, 1);
		fwrite(rep.out.buf, 1, rep.out.len, stdout);
		fwrite(rep.err.buf, 1, rep.err.len, stderr);
		sb_release(&rep.out);
		sb_release(&rep.err);
		control_request_release(&req);
		return rc;
	}
	if (store_is_postgresql(cfg->db_path)) {
		/* its database cannot be read (said why): no daemon reads a control file for it */
		control_request_release(&req);
		return EXIT_FAILED;
	}
	struct spool sp;
	if (spool_open(cfg->spool_dir, 1, &sp) < 0) {
		control_request_release(&req);
		return EXIT_FAILED;
	}
	struct strbuf role = STRBUF_INIT;
	sb_addf(&role, "cli:%s", name);
	store_set_owner(role.buf, cfg->spool_dir); /* a daemon starting meanwhile waits for us */
	struct cli_report rep = {action, STRBUF_INIT, STRBUF_INIT};
	struct lock_owner who;
	int rc = EXIT_OK;
	int lk = spool_lock_wait(&sp, role.buf, CLI_LOCK_WAIT_MS, &who);
	if (lk == 1 && lock_owner_command(&who)) {
		fprintf(stderr, "segspool: segspool %s (pid %ld) still holds spool %s after %d s\n",
		        lock_owner_command(&who), who.pid, cfg->spool_dir, CLI_LOCK_WAIT_MS / 1000);
		rc = EXIT_FAILED;
	} else if (lk == 1) {
		char *text = control_request_to_json(&req);
		if (spool_control_submit(&sp, text) < 0)
			rc = EXIT_FAILED;
		else
			printf("%s request handed to the running daemon (pid %ld)\n", name,
			       who.pid);
		free(text);
	} else if (lk == 0) {
		rc = control_in_store(cfg, &req, &rep, 0);
	} else {
		rc = EXIT_FAILED;
	}
	spool_close(&sp); /* lets go of the lock before the (maybe long) report */
	fwrite(rep.out.buf, 1, rep.out.len, stdout);
	fwrite(rep.err.buf, 1, rep.err.len, stderr);
	sb_release(&rep.out);
	sb_release(&rep.err);
	sb_release(&role);
	control_request_release(&req);
	return rc;
}

static int cmd_retry(struct config *cfg, int argc, char **argv)
{
	return control(cfg, argc, argv, CONTROL_RETRY);
}

static int cmd_cancel(struct config *cfg, int argc, char **argv)
{
	return control(cfg, argc, argv, CONTROL_CANCEL);
}

static int cmd_ops(struct config *cfg, int argc, char **argv)
{
	(void)cfg;
	int json = argc > 1 && strcmp(argv[1], "--json") == 0;
	cJSON *arr = json ? cJSON_CreateArray() : NULL;
	if (!json)
		printf("%-36s %-7s %-55s %-9s %s\n", "OPERATION", "METHOD", "PATH", "PAGINATED",
		       "RATE");
	for (size_t i = 0; i < catalog_count(); i++) {
		const struct op_def *op = catalog_at(i);
		char rate[32];
		if (op->rate_per_min)
			snprintf(rate, sizeof(rate), "%d/min", op->rate_per_min);
		else
			snprintf(rate, sizeof(rate), "default");
		if (json) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "operationId", op->operation_id);
			cJSON_AddStringToObject(o, "name", op->name);
			cJSON_AddStringToObject(o, "method", op->method);
			cJSON_AddStringToObject(o, "path", op->path);
			cJSON_AddBoolToObject(o, "paginated", op->paginated);
			cJSON_AddStringToObject(o, "version", op->version);
			cJSON_AddStringToObject(o, "rate", rate);
			cJSON_AddItemToArray(arr, o);
		} else {
			printf("%-36s %-7s %-55s %-9s %s\n   %s\n", op->operation_id, op->method,
			       op->path[0] ? op->path : "(caller-supplied)",
			       op->paginated ? "yes" : "no", rate, op->name);
		}
	}
	if (json) {
		cli_print_json(arr, 1);
		cJSON_Delete(arr);
	}
	return EXIT_OK;
}

static int cmd_help(struct config *cfg, int argc, char **argv);

/* finish_stdout - as git does at exit: output that could not be written (a full disk,
 * an I/O error) is a failure, not a silent exit 0. A closed stdout, a pipe or a socket
 * is left alone (a reader that went away is not our failure). */
static int finish_stdout(int rc)
{
	struct stat st;
	if (fstat(fileno(stdout), &st) < 0 || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
		return rc;
	errno = 0;
	int failed = fflush(stdout) != 0;
	int why = errno;
	if (!failed && ferror(stdout)) { /* an earlier write failed; its errno is gone */
		failed = 1;
		why = EIO;
	}
	if (fclose(stdout) != 0 && !failed) {
		failed = 1;
		why = errno;
	}
	if (!failed)
		return rc;
	fprintf(stderr, "segspool: cannot write to standard output: %s\n", strerror(why));
	return EXIT_FAILED;
}

static const struct cmd commands[] = {
    {"run", cmd_run, "run [--until-idle]", "the daemon, in the foreground"},
    {"submit", cmd_submit, "submit FILE...|-", "validate, then drop atomically into the spool"},
    {"validate", cmd_validate, "validate FILE...|-", "check only: every problem, with where it is"},
    {"plan", cmd_plan, "plan FILE... [--json]",
     "what the files would do: jobs in dependency layers, requests, time at the limits"},
    {"list", cmd_list, "list [--state S | --file NAME] [--limit N] [--json]",
     "jobs, newest first (1000; --limit 0: all); a file's in its order"},
    {"show", cmd_show, "show ID [--json]", "one job: spec, history, attempts, pages, result"},
    {"stats", cmd_stats, "stats [--json]", "jobs by state, attempts by outcome, requests"},
    {"metrics", cmd_metrics, "metrics", "jobs, attempts, responses, durations as Prometheus text"},
    {"retry", cmd_retry, "retry ID...|--state S",
     "failed, dead or cancelled jobs back into the queue"},
    {"cancel", cmd_cancel, "cancel ID...", "stop a job that has not succeeded"},
    {"ops", cmd_ops, "ops [--json]", "the operation catalog"},
    {"watch", cmd_watch, "watch [ID|--until-idle] [--interval S]",
     "live progress; with ID, exit 0 once it succeeds, 1 if it fails"},
    {"status", cmd_status, "status [--json]",
     "is a daemon running (pid, since), the queue, holds; exit 0 yes, 3 no"},
    {"help", cmd_help, "help", "this text"},
};

static const struct cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int cmd_help(struct config *cfg, int argc, char **argv)
{
	(void)cfg;
	(void)argc;
	(void)argv;
	printf("usage: segspool [--config FILE] [--spool DIR] [--db FILE] [--api-base URL]\n"
	       "                [--log-level L] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		printf("  %-40s %s\n", commands[i].usage, commands[i].help);
	printf("\nThe API token comes from $SEGMENT_TOKEN or a workspace's token_file in the "
	       "config;\nit is never read from job files or the command line.\n");
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct strbuf err = STRBUF_INIT;
	const char *config_path = NULL, *spool = NULL, *db = NULL, *api = NULL, *level = NULL;
	int i;
	config_init(&cfg);
	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i += 2) {
		const char *opt = argv[i];
		if (strcmp(opt, "--version") == 0)
			return puts("segspool " SEGSPOOL_VERSION), config_release(&cfg),
			       finish_stdout(EXIT_OK);
		if (strcmp(opt, "--help") == 0) {
			cmd_help(&cfg, 0, NULL);
			config_release(&cfg);
			return finish_stdout(EXIT_OK);
		}
		if (i + 1 >= argc)
			return cli_usage_error("%s needs a value", opt);
		if (strcmp(opt, "--config") == 0)
			config_path = argv[i + 1];
		else if (strcmp(opt, "--spool") == 0)
			spool = argv[i + 1];
		else if (strcmp(opt, "--db") == 0)
			db = argv[i + 1];
		else if (strcmp(opt, "--api-base") == 0)
			api = argv[i + 1];
		else if (strcmp(opt, "--log-level") == 0)
			level = argv[i + 1];
		else
			return cli_usage_error("unknown option %s (see segspool help)", opt);
	}
	if (i >= argc)
		return cmd_help(&cfg, 0, NULL), config_release(&cfg), finish_stdout(EXIT_USAGE);
	const struct cmd *c = find_cmd(argv[i]);
	if (!c)
		return cli_usage_error("unknown command %s (see segspool help)", argv[i]);
	/* ./segspool.json, else the packaged service's, so an operator's CLI on a server
	 * speaks to the spool and store the unit runs on without --config */
	if (!config_path && !getenv("SEGSPOOL_NO_DEFAULT_CONFIG")) {
		if (access("segspool.json", R_OK) == 0)
			config_path = "segspool.json";
		else if (access(SYSTEM_CONFIG, R_OK) == 0)
			config_path = SYSTEM_CONFIG;
	}
	if (config_path && config_load(&cfg, config_path, &err) < 0) {
		fprintf(stderr, "segspool: %s\n", err.buf);
		sb_release(&err);
		config_release(&cfg);
		return EXIT_USAGE;
	}
	if (spool) {
		free(cfg.spool_dir);
		cfg.spool_dir = xstrdup(spool);
	}
	if (db) {
		free(cfg.db_path);
		cfg.db_path = xstrdup(db);
	}
	if (api) {
		free(cfg.api_base);
		cfg.api_base = xstrdup(api);
	}
	if (level && log_parse_level(level, &cfg.log_level) < 0)
		return cli_usage_error("--log-level: expected debug, info, warn or error");
	config_finish(&cfg, &err);
	log_set_level(cfg.log_level);
	int rc = c->fn(&cfg, argc - i, argv + i);
	sb_release(&err);
	config_release(&cfg);
	return finish_stdout(rc);
}
