/* plan_cmd.c - segspool plan FILE... [--json]: each file validated, then what it would
 * do, sending nothing: its jobs in dependency layers (a layer starts when the one before
 * it has ended), each with its request and the requests it is expected to take, and the
 * time they need under the configured rate limits and Segment's documented endpoint
 * limits. The store, when there is one, says which keys exist and what totals pages
 * had before. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "cli.h"
#include "config.h"
#include "job.h"
#include "plan.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

#define PLAN_GROUPS_MAX 64 /* rate-limit groups of one layer: the catalog has fewer */

/* one file's plan, as it is worked out */
struct file_plan {
	const struct config *cfg;
	struct store *st; /* NULL when there is no store yet */
	const struct job_list *list;
	int *layer;
	int nlayers;
	cJSON *doc; /* the --json form, built whichever way it is printed */
	int64_t requests;
	int at_least;
	double eta_s;
};

/* limits_for - the rate limits that apply to a workspace's jobs. */
static struct plan_limits limits_for(const struct config *cfg, const char *workspace)
{
	struct plan_limits l = {0, 0, cfg->endpoint_limits};
	config_workspace_rate(cfg, workspace, &l.rate_per_sec, &l.burst);
	return l;
}

/* last_total - what the store knows of the operation's totals, -1 nothing. */
static int64_t last_total(struct store *st, const struct job *job)
{
	if (!st || !job->op->paginated)
		return -1;
	int64_t t = store_last_total(st, job->op->operation_id);
	return t < -1 ? -1 : t;
}

/* plan_layer - the jobs of layer L: their entries, and the time the layer takes. */
static void plan_layer(struct file_plan *fp, int L, cJSON *jobs, cJSON *limits)
{
	struct plan_tally tallies[PLAN_GROUPS_MAX];
	size_t ntallies = 0;
	struct strbuf line = STRBUF_INIT;
	const char *workspace = NULL;
	for (size_t i = 0; i < fp->list->njobs; i++) {
		if (fp->layer[i] != L)
			continue;
		const struct job *j = &fp->list->jobs[i];
		struct plan_requests r = plan_job_requests(j, last_total(fp->st, j));
		if (plan_add(tallies, &ntallies, PLAN_GROUPS_MAX, j, r.n) < 0)
			die("plan: more than %d rate-limit groups in one layer", PLAN_GROUPS_MAX);
		workspace = workspace ? workspace : j->workspace;
		fp->requests += r.n;
		fp->at_least |= r.at_least;
		sb_reset(&line);
		plan_request_line(j, &line);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "index", (double)(i + 1));
		if (j->key)
			cJSON_AddStringToObject(o, "key", j->key);
		else
			cJSON_AddNullToObject(o, "key");
		cJSON_AddStringToObject(o, "op", j->op->operation_id);
		cJSON_AddStringToObject(o, "request", line.buf);
		cJSON_AddNumberToObject(o, "layer", L + 1);
		cJSON *after = cJSON_AddArrayToObject(o, "after");
		for (size_t k = 0; k < j->nafter; k++)
			cJSON_AddItemToArray(after, cJSON_CreateString(j->after[k]));
		cJSON_AddNumberToObject(o, "requests", (double)r.n);
		cJSON_AddBoolToObject(o, "at_least", r.at_least);
		cJSON_AddItemToArray(jobs, o);
	}
	sb_release(&line);
	struct plan_limits lim = limits_for(fp->cfg, workspace ? workspace : "default");
	double secs = plan_layer_seconds(&lim, tallies, ntallies);
	fp->eta_s += secs;
	for (size_t g = 0; g < ntallies; g++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "layer", L + 1);
		cJSON_AddStringToObject(o, "group", tallies[g].group);
		cJSON_AddNumberToObject(o, "requests", (double)tallies[g].requests);
		double group_s = plan_tally_seconds(&lim, &tallies[g]);
		if (group_s >= 0) {
			cJSON_AddNumberToObject(o, "rate_per_min", tallies[g].rate_per_min);
			cJSON_AddNumberToObject(o, "seconds", group_s);
		}
		cJSON_AddItemToArray(limits, o);
	}
}

/* print_text - the plan of one file for a reader. */
static void print_text(const char *path, const struct file_plan *fp)
{
	const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(fp->doc, "jobs");
	printf("%s: %zu job(s) in %d layer(s)\n", path, fp->list->njobs, fp->nlayers);
	int last = 0;
	for (const cJSON *o = jobs->child; o; o = o->next) {
		int L = (int)cJSON_GetObjectItemCaseSensitive(o, "layer")->valuedouble;
		if (L != last)
			printf("layer %d%s\n", L, L == 1 ? "" : " (after the layer before it)");
		last = L;
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(o, "key");
		int n = (int)cJSON_GetObjectItemCaseSensitive(o, "requests")->valuedouble;
		printf("  #%-4d %-24s %s  (%s%d request%s)",
		       (int)cJSON_GetObjectItemCaseSensitive(o, "index")->valuedouble,
		       cJSON_IsString(key) ? key->valuestring : "-",
		       cJSON_GetObjectItemCaseSensitive(o, "request")->valuestring,
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "at_least")) ? "at least "
		                                                                     : "",
		       n, n == 1 ? "" : "s");
		const cJSON *after = cJSON_GetObjectItemCaseSensitive(o, "after");
		for (const cJSON *a = after->child; a; a = a->next)
			printf("%s%s", a == after->child ? "  after " : ", ", a->valuestring);
		putchar('\n');
	}
	const cJSON *limits = cJSON_GetObjectItemCaseSensitive(fp->doc, "limits");
	for (const cJSON *o = limits->child; o; o = o->next) {
		const cJSON *rate = cJSON_GetObjectItemCaseSensitive(o, "rate_per_min");
		if (!rate)
			continue;
		printf("  layer %d: %d requests to %s at %d/min: %.0f s\n",
		       (int)cJSON_GetObjectItemCaseSensitive(o, "layer")->valuedouble,
		       (int)cJSON_GetObjectItemCaseSensitive(o, "requests")->valuedouble,
		       cJSON_GetObjectItemCaseSensitive(o, "group")->valuestring,
		       (int)rate->valuedouble,
		       cJSON_GetObjectItemCaseSensitive(o, "seconds")->valuedouble);
	}
	printf("requests: %s%lld; time under the rate limits: %.0f s%s\n",
	       fp->at_least ? "at least " : "", (long long)fp->requests, fp->eta_s,
	       fp->at_least ? " or more (pages not counted yet)" : "");
}

/* plan_file - one file's plan, printed; 0, or 1 when the file is bad. */
static int plan_file(const struct config *cfg, struct store *st, const char *path, int json)
{
	struct strbuf data = STRBUF_INIT;
	struct job_list list;
	int bad = cli_parse_file(path, &data, &list, st);
	sb_release(&data);
	if (bad) {
		job_list_release(&list);
		return 1;
	}
	struct file_plan fp = {.cfg = cfg, .st = st, .list = &list};
	fp.layer = xcalloc(list.njobs ? list.njobs : 1, sizeof(*fp.layer));
	fp.nlayers = job_list_layers(&list, fp.layer);
	fp.doc = cJSON_CreateObject();
	cJSON_AddStringToObject(fp.doc, "file", path);
	cJSON *jobs = cJSON_AddArrayToObject(fp.doc, "jobs");
	cJSON *limits = cJSON_AddArrayToObject(fp.doc, "limits");
	for (int L = 0; L < fp.nlayers; L++)
		plan_layer(&fp, L, jobs, limits);
	cJSON_AddNumberToObject(fp.doc, "layers", fp.nlayers);
	cJSON_AddNumberToObject(fp.doc, "requests", (double)fp.requests);
	cJSON_AddBoolToObject(fp.doc, "requests_at_least", fp.at_least);
	cJSON_AddNumberToObject(fp.doc, "eta_s", fp.eta_s);
	if (json) {
		char *text = cJSON_PrintUnformatted(fp.doc);
		puts(text);
		free(text);
	} else {
		print_text(path, &fp);
	}
	cJSON_Delete(fp.doc);
	free(fp.layer);
	job_list_release(&list);
	return 0;
}

/* cmd_plan - segspool plan FILE... [--json]. */
int cmd_plan(struct config *cfg, int argc, char **argv)
{
	int json = 0, nfiles = 0, bad = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else
			nfiles++;
	}
	if (!nfiles) {
		fprintf(stderr, "segspool: usage: segspool plan FILE... [--json]\n");
		return 2;
	}
	/* what the store knows, when there is one; a plan needs none */
	struct store *st = cli_store_if_any(cfg);
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--json") != 0)
			bad |= plan_file(cfg, st, argv[i], json);
	if (st)
		store_close(st);
	return bad ? 1 : 0;
}
