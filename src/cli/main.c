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

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* the Debian package's configuration (packaging/segspool.json) */
#define SYSTEM_CONFIG "/etc/segspool/segspool.json"

struct cmd {
	const char *name;
	int (*fn)(struct config *cfg, int argc, char **argv);
	const char *usage;
	const char *help;
};

static const struct cmd *find_cmd(const char *name);

/* usage_error - "usage: ..." on stderr, exit code 2. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
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

/* cli_store_if_any - the store read-only when it exists; see cli.h. */
struct store *cli_store_if_any(const struct config *cfg)
{
	struct store *st = NULL;
	char *err = NULL;
	if (access(cfg->db_path, F_OK) != 0)
		return NULL;
	if (store_open(cfg->db_path, STORE_READONLY, &st, &err) < 0) {
		fprintf(stderr, "segspool: without the store's keys: %s\n", err);
		free(err);
		return NULL;
	}
	return st;
}

static int cmd_validate(struct config *cfg, int argc, char **argv)
{
	if (argc < 2)
		return usage_error("usage: segspool validate FILE...|-");
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
		return usage_error("usage: segspool submit FILE...|-");
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
			return usage_error(
			    "run: unknown option %s (usage: segspool run [--until-idle])", argv[i]);
	}
	return daemon_run(cfg, until_idle) == 0 ? EXIT_OK : EXIT_FAILED;
}

/* open_store_ro - the store, read-only, for list/show/stats. */
static struct store *open_store_ro(struct config *cfg)
{
	struct store *st = NULL;
	char *err = NULL;
	if (store_open(cfg->db_path, STORE_READONLY, &st, &err) < 0) {
		fprintf(stderr, "segspool: %s\n", err ? err : "cannot open the store");
		free(err);
		return NULL;
	}
	return st;
}

static void print_json(const cJSON *doc, int pretty)
{
	char *text = pretty ? cJSON_Print(doc) : cJSON_PrintUnformatted(doc);
	puts(text);
	free(text);
}

static const char *json_str(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsString(v) ? v->valuestring : "-";
}

/* json_array - the member NAME that is an array (a document may also have a number of
 * that name, e.g. "attempts"). */
static const cJSON *json_array(const cJSON *obj, const char *name)
{
	for (const cJSON *it = obj ? obj->child : NULL; it; it = it->next)
		if (it->string && strcmp(it->string, name) == 0 && cJSON_IsArray(it))
			return it;
	return NULL;
}

static long long json_num(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

/* parse_limit - --limit's value: a non-negative decimal integer (0: no limit). */
static int parse_limit(const char *text, int *out)
{
	char *end;
	if (!*text || strspn(text, "0123456789") != strlen(text))
		return -1;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || v > INT_MAX - 1)
		return -1;
	*out = (int)v;
	return 0;
}

/* add_escaped - text on one line (control characters escaped), padded to width. */
static void add_escaped(struct strbuf *out, const char *text, size_t width)
{
	size_t start = out->len;
	log_escape(out, text, strlen(text));
	while (out->len - start < width)
		sb_addch(out, ' ');
}

/* list_total - how many jobs list would show without a limit, or -1. */
static int64_t list_total(struct store *st, const enum job_state *filter)
{
	int64_t counts[JS_COUNT], total = 0;
	if (store_counts(st, counts) < 0)
		return -1;
	for (int i = 0; i < JS_COUNT; i++)
		total += counts[i];
	return filter ? counts[*filter] : total;
}

/* print_list_rows - list's table (or its JSON lines) of the rows of view_list. */
static void print_list_rows(const cJSON *rows, int json)
{
	if (json) {
		for (const cJSON *r = rows->child; r; r = r->next)
			print_json(r, 0);
		return;
	}
	printf("%-8s %-10s %-34s %-6s %-24s %s\n", "ID", "STATE", "OP", "TRIES", "KEY", "REASON");
	struct strbuf line = STRBUF_INIT;
	for (const cJSON *r = rows->child; r; r = r->next) {
		sb_reset(&line);
		sb_addf(&line, "%-8lld %-10s %-34s %-6lld ", json_num(r, "id"),
		        json_str(r, "state"), json_str(r, "op"), json_num(r, "attempts"));
		add_escaped(&line, json_str(r, "key"), 24);
		sb_addch(&line, ' ');
		add_escaped(&line, json_str(r, "reason"), 0);
		printf("%s\n", line.buf);
	}
	sb_release(&line);
}

/* list_file - list --file NAME: the jobs of the spool files ingested as NAME (or
 * submitted under it) in the file's order, then how far each file is from its results
 * file (on standard error with --json, whose standard output holds job rows only). */
static int list_file(struct config *cfg, const char *name, int json, int limit)
{
	struct store *st = open_store_ro(cfg);
	if (!st)
		return EXIT_FAILED;
	cJSON *files = view_files(st, name, limit ? limit + 1 : 0);
	if (!files) {
		fprintf(stderr, "segspool: cannot list the jobs of file %s in %s: %s\n", name,
		        cfg->db_path, store_errmsg(st));
		store_close(st);
		return EXIT_FAILED;
	}
	int rc = EXIT_OK;
	if (!files->child) {
		fprintf(stderr, "segspool: no file %s was ingested into %s\n", name, cfg->db_path);
		rc = EXIT_FAILED;
	}
	FILE *note = json ? stderr : stdout;
	for (const cJSON *f = files->child; f; f = f->next) {
		cJSON *rows = cJSON_GetObjectItemCaseSensitive(f, "jobs");
		int cut = limit && cJSON_GetArraySize(rows) > limit;
		if (cut)
			cJSON_DeleteItemFromArray(rows, limit);
		print_list_rows(rows, json);
		long long njobs = json_num(f, "njobs"), dups = json_num(f, "duplicates");
		fprintf(note, "file %s: %lld job(s)", json_str(f, "name"), njobs);
		if (dups)
			fprintf(note, " (%lld with a key already recorded)", dups);
		const cJSON *results = cJSON_GetObjectItemCaseSensitive(f, "results");
		if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(f, "remaining")) &&
		    !cJSON_IsString(results))
			fprintf(note,
			        "; %lld of %lld ended; the results file is written when all "
			        "have",
			        json_num(f, "ended"), njobs - dups);
		else if (cJSON_IsString(results))
			fprintf(note, "; all ended; results %s: %s/%s",
			        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "results_written"))
			            ? "in"
			            : "being written to",
			        cfg->output_dir, results->valuestring);
		fprintf(note, "%s\n", cut ? "; showing the first jobs, --limit 0 shows all" : "");
	}
	cJSON_Delete(files);
	store_close(st);
	return rc;
}

static int cmd_list(struct config *cfg, int argc, char **argv)
{
	int json = 0, limit = 1000;
	const char *file = NULL;
	enum job_state state;
	const enum job_state *filter = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--state") == 0 && i + 1 < argc) {
			if (job_state_parse(argv[++i], &state) < 0)
				return usage_error(
				    "list: unknown state %s (queued, running, waiting, "
				    "succeeded, failed, dead, cancelled)",
				    argv[i]);
			filter = &state;
		} else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
			if (parse_limit(argv[++i], &limit) < 0)
				return usage_error(
				    "list: --limit wants a number of jobs (0 for all), "
				    "not %s",
				    argv[i]);
		} else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc) {
			file = argv[++i];
		} else {
			return usage_error(
			    "usage: segspool list [--state S | --file NAME] [--limit N] "
			    "[--json]");
		}
	}
	if (file && filter)
		return usage_error("list: --file and --state cannot be used together");
	if (file)
		return list_file(cfg, file, json, limit);
	struct store *st = open_store_ro(cfg);
	if (!st)
		return EXIT_FAILED;
	/* one row more than shown tells whether the limit cut the list */
	cJSON *rows = view_list(st, filter, limit ? limit + 1 : 0);
	if (!rows) {
		fprintf(stderr, "segspool: cannot list the jobs of %s: %s\n", cfg->db_path,
		        store_errmsg(st));
		store_close(st);
		return EXIT_FAILED;
	}
	int cut = limit && cJSON_GetArraySize(rows) > limit;
	int64_t total = -1;
	if (cut) {
		cJSON_DeleteItemFromArray(rows, limit);
		total = list_total(st, filter);
	}
	print_list_rows(rows, json);
	if (cut && total > limit)
		fprintf(stderr, "segspool: showing %d of %lld jobs; --limit 0 shows all\n", limit,
		        (long long)total);
	else if (cut) /* the count failed, or jobs went since the list was read */
		fprintf(stderr, "segspool: showing the first %d jobs; --limit 0 shows all\n",
		        limit);
	cJSON_Delete(rows);
	store_close(st);
	return EXIT_OK;
}

/* print_body - an attempt's kept body, each line indented, control characters escaped. */
static void print_body(const char *body)
{
	struct strbuf sb = STRBUF_INIT;
	sb_adds(&sb, "      body: ");
	for (const char *p = body; *p;) {
		size_t n = strcspn(p, "\n");
		log_escape(&sb, p, n);
		sb_adds(&sb, "\n");
		p += n;
		if (*p == '\n' && *++p)
			sb_adds(&sb, "            ");
	}
	fputs(sb.buf, stdout);
	sb_release(&sb);
}

/* add_source - {"value": ..., "from": "job"|"config"|"default"} as policy member name. */
static void add_source(cJSON *policy, const char *name, cJSON *value, enum policy_source from)
{
	cJSON *o = cJSON_AddObjectToObject(policy, name);
	cJSON_AddItemToObject(o, "value", value);
	cJSON_AddStringToObject(o, "from", policy_source_name(from));
}

/* duration_value - a max_age as the config writes it, "none" for no limit. */
static cJSON *duration_value(int64_t ms)
{
	char text[32];
	if (ms <= 0)
		return cJSON_CreateString("none");
	retry_format_duration(ms, text);
	return cJSON_CreateString(text);
}

/* add_policy - doc's "policy": the settings the job runs with (its stored spec leaves
 * defaults out) and where each came from, with this command's config as the daemon's. */
static void add_policy(const struct config *cfg, cJSON *doc)
{
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(doc, "spec");
	char *text = cJSON_IsObject(spec) ? cJSON_PrintUnformatted(spec) : NULL;
	struct job job;
	if (!text || job_from_json(text, &job) < 0) {
		free(text);
		return; /* show says what it can: the spec itself is shown as stored */
	}
	free(text);
	struct config builtin;
	config_init(&builtin);
	struct retry_policy own = {.max_attempts = job.max_attempts,
	                           .initial_ms = job.initial_ms,
	                           .max_ms = job.max_ms,
	                           .max_age_ms = job.max_age_ms};
	struct retry_policy_sources from;
	struct retry_policy p = retry_policy_effective(&builtin.retry, &cfg->retry, &own, &from);
	config_release(&builtin);
	cJSON *pol = cJSON_AddObjectToObject(doc, "policy");
	add_source(pol, "max_attempts", cJSON_CreateNumber(p.max_attempts), from.max_attempts);
	add_source(pol, "initial_ms", cJSON_CreateNumber((double)p.initial_ms), from.initial_ms);
	add_source(pol, "max_ms", cJSON_CreateNumber((double)p.max_ms), from.max_ms);
	add_source(pol, "max_age", duration_value(p.max_age_ms), from.max_age_ms);
	add_source(pol, "on_unknown",
	           cJSON_CreateString(job.on_unknown == ON_UNKNOWN_FAIL ? "fail" : "retry"),
	           job.on_unknown == ON_UNKNOWN_FAIL ? POLICY_FROM_JOB : POLICY_FROM_DEFAULT);
	const cJSON *file = cJSON_GetObjectItemCaseSensitive(doc, "file");
	if (job.no_output && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(file, "remaining"))) {
		/* a job of a batch: its result goes to the file's results file (issue 13) */
		cJSON *o = cJSON_AddObjectToObject(pol, "output");
		cJSON_AddItemToObject(o, "value", cJSON_CreateFalse());
		cJSON_AddStringToObject(o, "from", "file");
	} else if (job.no_output) {
		add_source(pol, "output", cJSON_CreateFalse(), POLICY_FROM_JOB);
	} else if (job.output) {
		add_source(pol, "output", cJSON_CreateString(job.output), POLICY_FROM_JOB);
	} else {
		/* the name the daemon picked, once it has; else the form it will take */
		const char *picked =
		    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "output"));
		struct strbuf name = STRBUF_INIT;
		if (picked)
			sb_adds(&name, picked);
		else
			sb_addf(&name, "%s-%lld.%s", json_str(doc, "op"), json_num(doc, "id"),
			        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "paginated"))
			            ? "jsonl"
			            : "json");
		add_source(pol, "output", cJSON_CreateString(name.buf), POLICY_FROM_DEFAULT);
		sb_release(&name);
	}
	job_release(&job);
}

/* show_text - a readable view of view_show's document. */
static void show_text(const cJSON *j)
{
	printf("job %lld: %s  %s\n", json_num(j, "id"), json_str(j, "op"), json_str(j, "state"));
	printf("  key: %s  workspace: %s  attempts: %lld  created: %s\n", json_str(j, "key"),
	       json_str(j, "workspace"), json_num(j, "attempts_counted"), json_str(j, "created"));
	const cJSON *pol = cJSON_GetObjectItemCaseSensitive(j, "policy");
	if (cJSON_IsObject(pol)) {
		printf("  policy:");
		for (const cJSON *m = pol->child; m; m = m->next) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "value");
			char *text = cJSON_IsString(v) ? NULL : cJSON_PrintUnformatted(v);
			printf(" %s %s (%s)%s", m->string, text ? text : cJSON_GetStringValue(v),
			       json_str(m, "from"), m->next ? "," : "\n");
			free(text);
		}
	}
	const cJSON *v;
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "output")) && cJSON_IsString(v))
		printf("  output: %s\n", v->valuestring);
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "file")) && cJSON_IsObject(v)) {
		printf("  file: %s, line %lld", json_str(v, "name"), json_num(v, "line"));
		const cJSON *res = cJSON_GetObjectItemCaseSensitive(v, "results");
		if (cJSON_IsString(res))
			printf("; results: %s\n", res->valuestring);
		else if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(v, "remaining")))
			printf("; %lld of %lld job(s) ended, results when all have\n",
			       json_num(v, "ended"),
			       json_num(v, "njobs") - json_num(v, "duplicates"));
		else
			printf("\n");
	}
	if (json_num(j, "pages_done"))
		printf("  pages: %lld  items: %lld\n", json_num(j, "pages_done"),
		       json_num(j, "items_done"));
	const cJSON *tr = json_array(j, "transitions");
	printf("  history:\n");
	for (const cJSON *t = tr ? tr->child : NULL; t; t = t->next)
		printf("    %s  %s -> %s  %s\n", json_str(t, "at"), json_str(t, "from"),
		       json_str(t, "to"), json_str(t, "reason"));
	const cJSON *at = json_array(j, "attempts");
	if (at && at->child) {
		printf("  attempts:\n");
		for (const cJSON *a = at->child; a; a = a->next) {
			printf("    #%lld %s  %s  status %lld  %lld ms  %s\n",
			       json_num(a, "attempt"), json_str(a, "started"),
			       json_str(a, "outcome"), json_num(a, "http_status"),
			       json_num(a, "duration_ms"), json_str(a, "request"));
			const cJSON *res = cJSON_GetObjectItemCaseSensitive(a, "resolved");
			if (cJSON_IsObject(res)) {
				char *text = cJSON_PrintUnformatted(res);
				printf("      resolved: %s\n", text);
				free(text);
			}
			const char *body =
			    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "body"));
			if (body)
				print_body(body);
		}
	}
	const cJSON *kids = cJSON_GetObjectItemCaseSensitive(j, "children");
	if (kids) {
		printf("  children: %lld total, %lld succeeded, %lld active\n",
		       json_num(kids, "total"), json_num(kids, "succeeded"),
		       json_num(kids, "active"));
	}
	const char *names[] = {"result", "error"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		v = cJSON_GetObjectItemCaseSensitive(j, names[i]);
		if (v && !cJSON_IsNull(v)) {
			char *text = cJSON_Print(v);
			printf("  %s: %s\n", names[i], text);
			free(text);
		}
	}
}

static int cmd_show(struct config *cfg, int argc, char **argv)
{
	int json = 0;
	const char *id = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (!id)
			id = argv[i];
		else
			return usage_error("usage: segspool show ID [--json]");
	}
	char *end;
	long long n = id ? strtoll(id, &end, 10) : 0;
	if (!id || *end || n <= 0)
		return usage_error("usage: segspool show ID [--json] (ID is a job number)");
	struct store *st = open_store_ro(cfg);
	if (!st)
		return EXIT_FAILED;
	cJSON *doc = view_show(st, n);
	int rc = EXIT_OK;
	if (doc)
		add_policy(cfg, doc);
	if (!doc) {
		fprintf(stderr, "segspool: no job %lld in %s\n", n, cfg->db_path);
		rc = EXIT_FAILED;
	} else if (json) {
		print_json(doc, 1);
	} else {
		show_text(doc);
	}
	cJSON_Delete(doc);
	store_close(st);
	return rc;
}

static int cmd_stats(struct config *cfg, int argc, char **argv)
{
	int json = argc > 1 && strcmp(argv[1], "--json") == 0;
	struct store *st = open_store_ro(cfg);
	if (!st)
		return EXIT_FAILED;
	cJSON *doc = view_stats(st);
	int rc = EXIT_OK;
	if (doc) {
		print_json(doc, !json);
	} else {
		fprintf(stderr, "segspool: cannot read the statistics of %s: %s\n", cfg->db_path,
		        store_errmsg(st));
		rc = EXIT_FAILED;
	}
	cJSON_Delete(doc);
	store_close(st);
	return rc;
}

/* cmd_metrics - the store's metrics in the Prometheus text format (src/lib/metrics.c),
 * for scripts and a cron-driven textfile. */
static int cmd_metrics(struct config *cfg, int argc, char **argv)
{
	if (argc > 1)
		return usage_error("metrics: unknown argument %s (usage: segspool metrics)",
		                   argv[1]);
	struct store *st = open_store_ro(cfg);
	if (!st)
		return EXIT_FAILED;
	struct metrics *m = metrics_new(METRICS_STORE);
	struct strbuf text = STRBUF_INIT;
	int rc = EXIT_OK;
	/* one snapshot: a running daemon's attempts and jobs agree with each other */
	if (store_read_begin(st) < 0 || metrics_read_queue(m, st) < 0 ||
	    metrics_read_attempts(m, st) < 0) {
		fprintf(stderr, "segspool: cannot read the metrics of %s: %s\n", cfg->db_path,
		        store_errmsg(st));
		rc = EXIT_FAILED;
	} else {
		metrics_format(m, clock_wall_ms(), &text);
		fwrite(text.buf, 1, text.len, stdout);
	}
	store_read_end(st);
	sb_release(&text);
	metrics_free(m);
	store_close(st);
	return rc;
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
		        r->action == CONTROL_RETRY ? "queued again" : "cancelled");
		if (nchildren)
			sb_addf(&r->out, ", with %zu child job(s)", nchildren);
		sb_addch(&r->out, '\n');
	} else {
		sb_addf(&r->err, "job %lld: cannot %s it (%s)\n", (long long)id,
		        control_action_name(r->action), why ? why : "unknown reason");
	}
}

/* control_in_store - no daemon runs: the request on the store, in one transaction, while
 * this command holds the spool lock. */
static int control_in_store(struct config *cfg, const struct control_request *req,
                            struct cli_report *rep)
{
	struct store *st = NULL;
	char *err = NULL;
	if (store_open(cfg->db_path, 0, &st, &err) < 0) {
		fprintf(stderr, "segspool: %s\n", err ? err : "cannot open the store");
		free(err);
		return EXIT_FAILED;
	}
	struct control_hooks hooks = {NULL, report_outcome, rep};
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
				return usage_error("%s: unknown state %s", name, argv[i]);
			}
			req.by_state = 1;
			continue;
		}
		char *end;
		errno = 0;
		long long n = strtoll(argv[i], &end, 10);
		if (*end || n <= 0 || errno) {
			control_request_release(&req);
			return usage_error("usage: segspool %s ID...%s", name,
			                   action == CONTROL_RETRY ? "|--state S" : "");
		}
		req.ids[req.nids++] = n;
	}
	if (!req.nids && !req.by_state) {
		control_request_release(&req);
		return usage_error("usage: segspool %s ID...", name);
	}
	if (req.nids && req.by_state) {
		control_request_release(&req);
		return usage_error("%s: give job ids or --state, not both", name);
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
		rc = control_in_store(cfg, &req, &rep);
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
		print_json(arr, 1);
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
			return usage_error("%s needs a value", opt);
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
			return usage_error("unknown option %s (see segspool help)", opt);
	}
	if (i >= argc)
		return cmd_help(&cfg, 0, NULL), config_release(&cfg), finish_stdout(EXIT_USAGE);
	const struct cmd *c = find_cmd(argv[i]);
	if (!c)
		return usage_error("unknown command %s (see segspool help)", argv[i]);
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
		return usage_error("--log-level: expected debug, info, warn or error");
	config_finish(&cfg, &err);
	log_set_level(cfg.log_level);
	int rc = c->fn(&cfg, argc - i, argv + i);
	sb_release(&err);
	config_release(&cfg);
	return finish_stdout(rc);
}
