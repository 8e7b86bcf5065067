/* reading.c - the commands that read the store and print it: list (a file's jobs in its
 * order with --file), show (a job whole, with the policy it runs under), stats and
 * metrics; as text for a reader, or JSON. They open the store read-only. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "job.h"
#include "metrics.h"
#include "retry.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"
#include "views.h"

/* cli_print_json - see cli.h. */
void cli_print_json(const cJSON *doc, int pretty)
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
			cli_print_json(r, 0);
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
	struct store *st = cli_open_store_ro(cfg);
	if (!st)
		return EXIT_FAILED;
	cJSON *files = view_files(st, name, limit ? limit + 1 : 0);
	if (!files) {
		fprintf(stderr, "segspool: cannot list the jobs of file %s in %s: %s\n", name,
		        cfg->db_name, store_errmsg(st));
		store_close(st);
		return EXIT_FAILED;
	}
	int rc = EXIT_OK;
	if (!files->child) {
		fprintf(stderr, "segspool: no file %s was ingested into %s\n", name, cfg->db_name);
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

int cmd_list(struct config *cfg, int argc, char **argv)
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
				return cli_usage_error(
				    "list: unknown state %s (queued, running, waiting, "
				    "succeeded, failed, dead, cancelled)",
				    argv[i]);
			filter = &state;
		} else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
			if (parse_limit(argv[++i], &limit) < 0)
				return cli_usage_error(
				    "list: --limit wants a number of jobs (0 for all), "
				    "not %s",
				    argv[i]);
		} else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc) {
			file = argv[++i];
		} else {
			return cli_usage_error(
			    "usage: segspool list [--state S | --file NAME] [--limit N] "
			    "[--json]");
		}
	}
	if (file && filter)
		return cli_usage_error("list: --file and --state cannot be used together");
	if (file)
		return list_file(cfg, file, json, limit);
	struct store *st = cli_open_store_ro(cfg);
	if (!st)
		return EXIT_FAILED;
	/* one row more than shown tells whether the limit cut the list */
	cJSON *rows = view_list(st, filter, limit ? limit + 1 : 0);
	if (!rows) {
		fprintf(stderr, "segspool: cannot list the jobs of %s: %s\n", cfg->db_name,
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

int cmd_show(struct config *cfg, int argc, char **argv)
{
	int json = 0;
	const char *id = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (!id)
			id = argv[i];
		else
			return cli_usage_error("usage: segspool show ID [--json]");
	}
	char *end;
	long long n = id ? strtoll(id, &end, 10) : 0;
	if (!id || *end || n <= 0)
		return cli_usage_error("usage: segspool show ID [--json] (ID is a job number)");
	struct store *st = cli_open_store_ro(cfg);
	if (!st)
		return EXIT_FAILED;
	cJSON *doc = view_show(st, n);
	int rc = EXIT_OK;
	if (doc)
		add_policy(cfg, doc);
	if (!doc) {
		fprintf(stderr, "segspool: no job %lld in %s\n", n, cfg->db_name);
		rc = EXIT_FAILED;
	} else if (json) {
		cli_print_json(doc, 1);
	} else {
		show_text(doc);
	}
	cJSON_Delete(doc);
	store_close(st);
	return rc;
}

int cmd_stats(struct config *cfg, int argc, char **argv)
{
	int json = argc > 1 && strcmp(argv[1], "--json") == 0;
	struct store *st = cli_open_store_ro(cfg);
	if (!st)
		return EXIT_FAILED;
	cJSON *doc = view_stats(st);
	int rc = EXIT_OK;
	if (doc) {
		cli_print_json(doc, !json);
	} else {
		fprintf(stderr, "segspool: cannot read the statistics of %s: %s\n", cfg->db_name,
		        store_errmsg(st));
		rc = EXIT_FAILED;
	}
	cJSON_Delete(doc);
	store_close(st);
	return rc;
}

/* cmd_metrics - the store's metrics in the Prometheus text format (src/lib/metrics.c),
 * for scripts and a cron-driven textfile. */
int cmd_metrics(struct config *cfg, int argc, char **argv)
{
	if (argc > 1)
		return cli_usage_error("metrics: unknown argument %s (usage: segspool metrics)",
		                       argv[1]);
	struct store *st = cli_open_store_ro(cfg);
	if (!st)
		return EXIT_FAILED;
	struct metrics *m = metrics_new(METRICS_STORE);
	struct strbuf text = STRBUF_INIT;
	int rc = EXIT_OK;
	/* one snapshot: a running daemon's attempts and jobs agree with each other */
	if (store_read_begin(st) < 0 || metrics_read_queue(m, st) < 0 ||
	    metrics_read_attempts(m, st) < 0) {
		fprintf(stderr, "segspool: cannot read the metrics of %s: %s\n", cfg->db_name,
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
