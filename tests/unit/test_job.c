/* test_job - the job parser: good jobs of every kind, the canonical round trip, and
 * every bad file in tests/data/bad plus generated big and binary ones. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "job.h"
#include "output.h"
#include "retry.h"
#include "strbuf.h"
#include "testlib.h"
#include "util.h"

static int bad_cases; /* files and generated documents that must be rejected */

/* data_dir - SEGSPOOL_TEST_DATA, else tests/data next to this source file. */
static const char *data_dir(void)
{
	static char path[4096];
	const char *env = getenv("SEGSPOOL_TEST_DATA");
	if (env && *env)
		return env;
	snprintf(path, sizeof(path), "%s", __FILE__);
	char *cut = strstr(path, "/unit/test_job.c");
	if (cut)
		strcpy(cut, "/data");
	else
		snprintf(path, sizeof(path), "tests/data");
	return path;
}

/* parse_str - job_parse_buffer over a C string. */
static int parse_str(const char *s, enum job_format fmt, struct job_list *out)
{
	return job_parse_buffer(s, strlen(s), fmt, out);
}

/* first_problem_text - "what | expected" of the first problem, for substring checks. */
static void first_problem_text(const struct job_list *l, struct strbuf *sb)
{
	sb_reset(sb);
	if (!l->nproblems)
		return;
	sb_adds(sb, l->problems[0].what);
	sb_adds(sb, " | ");
	if (l->problems[0].expected)
		sb_adds(sb, l->problems[0].expected);
}

/* rejected_with - the document is rejected and its first problem mentions expect. */
static int rejected_with(const char *buf, size_t len, enum job_format fmt, const char *expect,
                         struct job_list *l)
{
	struct strbuf text = STRBUF_INIT;
	int ok;

	bad_cases++;
	ok = job_parse_buffer(buf, len, fmt, l) == 1 && l->nproblems > 0;
	first_problem_text(l, &text);
	ok = ok && strstr(text.buf, expect) != NULL;
	if (!ok)
		fprintf(stderr, "  expected a problem with \"%s\", got \"%s\"\n", expect, text.buf);
	sb_release(&text);
	return ok;
}

/* same_waits - the same after keys (given and from references) and references. */
static int same_waits(const struct job *a, const struct job *b)
{
	if (a->nafter != b->nafter || a->nafter_given != b->nafter_given || a->nrefs != b->nrefs)
		return 0;
	for (size_t i = 0; i < a->nafter; i++)
		if (strcmp(a->after[i], b->after[i]))
			return 0;
	for (size_t i = 0; i < a->nrefs; i++)
		if (strcmp(a->refs[i].param_pointer, b->refs[i].param_pointer) ||
		    strcmp(a->refs[i].key, b->refs[i].key) ||
		    strcmp(a->refs[i].pointer, b->refs[i].pointer))
			return 0;
	return 1;
}

/* jobs_equal - every field, params compared as JSON. */
static int jobs_equal(const struct job *a, const struct job *b)
{
#define SAME_STR(x, y) ((!(x) && !(y)) || ((x) && (y) && !strcmp((x), (y))))
	return a->op == b->op && cJSON_Compare(a->params, b->params, 1) &&
	       SAME_STR(a->workspace, b->workspace) && SAME_STR(a->region, b->region) &&
	       SAME_STR(a->key, b->key) && SAME_STR(a->output, b->output) &&
	       a->paginate == b->paginate && a->max_pages == b->max_pages &&
	       a->page_count == b->page_count && a->max_attempts == b->max_attempts &&
	       a->initial_ms == b->initial_ms && a->max_ms == b->max_ms &&
	       a->max_age_ms == b->max_age_ms && a->not_before_ms == b->not_before_ms &&
	       a->priority == b->priority && a->split_ms == b->split_ms &&
	       a->on_unknown == b->on_unknown && same_waits(a, b);
#undef SAME_STR
}

/* round_trips - job_from_json(job_to_json(j)) equals j, and prints the same again. */
static int round_trips(const struct job *j)
{
	char *text = job_to_json(j), *again = NULL;
	struct job back;
	int ok = job_from_json(text, &back) == 0;
	if (ok) {
		ok = jobs_equal(j, &back);
		again = job_to_json(&back);
		ok = ok && !strcmp(text, again);
		job_release(&back);
	}
	if (!ok)
		fprintf(stderr, "  no round trip: %s\n", text);
	free(text);
	free(again);
	return ok;
}

TEST(single_job_with_every_field)
{
	const char *doc =
	    "{\"op\": \"listSources\", \"params\": {\"pagination\": {\"count\": 200}},"
	    " \"workspace\": \"default\", \"region\": \"eu1\", \"key\": \"nightly-2026-11-26\","
	    " \"paginate\": \"all\", \"output\": \"exports/sources.jsonl\","
	    " \"retry\": {\"max_attempts\": 8, \"initial_ms\": 1000, \"max_ms\": 300000,"
	    " \"max_age\": \"2d\"}, \"not_before\": \"2026-11-27T03:00:00Z\", \"priority\": 7,"
	    " \"on_unknown\": \"fail\", \"comment\": \"ignored\"}";
	struct job_list l;
	CHECK_INT(parse_str(doc, JOB_FORMAT_JSON, &l), 0);
	CHECK_INT(l.nproblems, 0);
	CHECK_INT(l.njobs, 1);
	if (l.njobs == 1) {
		const struct job *j = &l.jobs[0];
		CHECK_STR(j->op->operation_id, "listSources");
		CHECK_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(j->params, "pagination"), "count")
		              ->valueint,
		          200);
		CHECK_STR(j->workspace, "default");
		CHECK_STR(j->region, "eu1");
		CHECK_STR(j->key, "nightly-2026-11-26");
		CHECK_STR(j->output, "exports/sources.jsonl");
		CHECK_INT(j->paginate, PAGINATE_ALL);
		CHECK_INT(j->max_attempts, 8);
		CHECK_INT(j->initial_ms, 1000);
		CHECK_INT(j->max_ms, 300000);
		CHECK_INT(j->max_age_ms, 2 * 86400000LL);
		CHECK_INT(j->not_before_ms, 1795748400000LL);
		CHECK_INT(j->priority, 7);
		CHECK_INT(j->on_unknown, ON_UNKNOWN_FAIL);
		CHECK_INT(j->split_ms, 0);
		CHECK(round_trips(j));
	}
	job_list_release(&l);
	CHECK_INT(l.njobs, 0);
	CHECK(l.jobs == NULL);
}

TEST(defaults_when_fields_are_absent)
{
	struct job_list l;
	CHECK_INT(parse_str("{\"op\": \"getSource\", \"params\": {\"sourceId\": \"s1\"}}",
	                    JOB_FORMAT_JSON, &l),
	          0);
	CHECK_INT(l.njobs, 1);
	if (l.njobs == 1) {
		const struct job *j = &l.jobs[0];
		CHECK_STR(j->workspace, "default");
		CHECK(j->region == NULL); /* the workspace's, at send */
		CHECK(j->key == NULL);
		CHECK(j->output == NULL);
		CHECK_INT(j->paginate, PAGINATE_NONE);
		CHECK_INT(j->max_attempts, 0);
		CHECK_INT(j->not_before_ms, 0);
		CHECK_INT(j->priority, 0);
		CHECK_INT(j->on_unknown, ON_UNKNOWN_RETRY);
		CHECK(round_trips(j));
	}
	job_list_release(&l);

	/* no params at all: an empty object, never NULL */
	CHECK_INT(parse_str("{\"op\": \"listSources\"}", JOB_FORMAT_JSON, &l), 0);
	CHECK(l.njobs == 1 && cJSON_IsObject(l.jobs[0].params) && !l.jobs[0].params->child);
	CHECK(l.njobs == 1 && l.jobs[0].paginate == PAGINATE_ALL);
	job_list_release(&l);
}

TEST(op_by_display_name)
{
	struct job_list l;
	CHECK_INT(parse_str("{\"op\": \"Get Events Volume From Workspace\", \"params\":"
	                    " {\"granularity\": \"DAY\", \"startTime\": \"2026-11-01T00:00:00Z\","
	                    " \"endTime\": \"2026-11-02T00:00:00Z\"}}",
	                    JOB_FORMAT_JSON, &l),
	          0);
	CHECK(l.njobs == 1 && !strcmp(l.jobs[0].op->operation_id, "getEventsVolumeFromWorkspace"));
	job_list_release(&l);
	CHECK_INT(parse_str("{\"op\": \"list sources\"}", JOB_FORMAT_JSON, &l), 0);
	CHECK(l.njobs == 1 && !strcmp(l.jobs[0].op->operation_id, "listSources"));
	job_list_release(&l);
}

TEST(array_of_jobs)
{
	struct job_list l;
	CHECK_INT(
	    parse_str(
	        "[{\"op\": \"listSources\", \"key\": \"a\"},"
	        " {\"op\": \"Get Source\", \"params\": {\"sourceId\": \"s\"}, \"key\": \"b\"},"
	        " {\"op\": \"listUsers\"}]",
	        JOB_FORMAT_JSON, &l),
	    0);
	CHECK_INT(l.njobs, 3);
	if (l.njobs == 3) {
		CHECK_STR(l.jobs[1].op->operation_id, "getSource");
		CHECK_STR(l.jobs[1].key, "b");
		CHECK(l.jobs[2].key == NULL);
	}
	job_list_release(&l);
}

TEST(jsonl_with_blank_lines_crlf_and_bom)
{
	const char *doc = "\xEF\xBB\xBF{\"op\": \"listSources\", \"key\": \"1\"}\r\n"
	                  "\n"
	                  "   \t\n"
	                  "{\"op\": \"listUsers\", \"key\": \"2\"}\r\n"
	                  "{\"op\": \"listWarehouses\"}";
	struct job_list l;
	CHECK_INT(parse_str(doc, JOB_FORMAT_JSONL, &l), 0);
	CHECK_INT(l.nproblems, 0);
	CHECK_INT(l.njobs, 3);
	if (l.njobs == 3)
		CHECK_STR(l.jobs[2].op->operation_id, "listWarehouses");
	job_list_release(&l);

	/* problems on a later line name that line, with pointers relative to the line */
	doc = "{\"op\": \"listSources\"}\n\n{\"op\": \"listSources\", \"priority\": \"x\"}\n";
	CHECK_INT(parse_str(doc, JOB_FORMAT_JSONL, &l), 1);
	CHECK_INT(l.nproblems, 1);
	CHECK_INT(l.njobs, 1);
	if (l.nproblems) {
		CHECK_INT(l.problems[0].line, 3);
		CHECK_STR(l.problems[0].where, "/priority");
	}
	job_list_release(&l);
}

TEST(paginate_forms)
{
	struct {
		const char *doc;
		enum paginate_mode mode;
		int max_pages, count;
	} cases[] = {
	    {"{\"op\": \"listSources\", \"paginate\": \"all\"}", PAGINATE_ALL, 0, 0},
	    {"{\"op\": \"listSources\", \"paginate\": \"none\"}", PAGINATE_NONE, 0, 0},
	    {"{\"op\": \"listSources\", \"paginate\": false}", PAGINATE_NONE, 0, 0},
	    {"{\"op\": \"listSources\"}", PAGINATE_ALL, 0, 0},
	    {"{\"op\": \"listSources\", \"paginate\": {\"max_pages\": 3}}", PAGINATE_LIMIT, 3, 0},
	    {"{\"op\": \"listSources\", \"paginate\": {\"max_pages\": 2, \"count\": 1000}}",
	     PAGINATE_LIMIT, 2, 1000},
	    {"{\"op\": \"getSource\", \"params\": {\"sourceId\": \"s\"}, \"paginate\": \"none\"}",
	     PAGINATE_NONE, 0, 0},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct job_list l;
		CHECK_INT(parse_str(cases[i].doc, JOB_FORMAT_JSON, &l), 0);
		CHECK_INT(l.njobs, 1);
		if (l.njobs == 1) {
			CHECK_INT(l.jobs[0].paginate, cases[i].mode);
			CHECK_INT(l.jobs[0].max_pages, cases[i].max_pages);
			CHECK_INT(l.jobs[0].page_count, cases[i].count);
			CHECK(round_trips(&l.jobs[0]));
		}
		job_list_release(&l);
	}
}

TEST(retry_overrides)
{
	struct job_list l;
	CHECK_INT(
	    parse_str("{\"op\": \"listSources\", \"retry\": {\"max_attempts\": 100,"
	              " \"initial_ms\": 86400000, \"max_ms\": 604800000, \"max_age_ms\": 5000}}",
	              JOB_FORMAT_JSON, &l),
	    0);
	CHECK(l.njobs == 1 && l.jobs[0].max_attempts == 100 && l.jobs[0].initial_ms == 86400000 &&
	      l.jobs[0].max_ms == 604800000 && l.jobs[0].max_age_ms == 5000);
	job_list_release(&l);
	CHECK_INT(parse_str("{\"op\": \"listSources\", \"retry\": {\"max_age\": \"90m\"}}",
	                    JOB_FORMAT_JSON, &l),
	          0);
	CHECK(l.njobs == 1 && l.jobs[0].max_age_ms == 90 * 60000 && l.jobs[0].max_attempts == 0);
	job_list_release(&l);
	/* max_ms alone is fine: the initial delay is the config's */
	CHECK_INT(parse_str("{\"op\": \"listSources\", \"retry\": {\"max_ms\": 10}}",
	                    JOB_FORMAT_JSON, &l),
	          0);
	job_list_release(&l);
}

#define SPLIT_DOC                                                                                  \
	"{\"op\": \"getEventsVolumeFromWorkspace\", \"params\": {\"granularity\": \"MINUTE\","     \
	" \"startTime\": \"2026-01-01T00:00:00Z\", \"endTime\": \"%s\"}, \"split\": \"%s\"}"

TEST(split_windows)
{
	struct job_list l;
	struct strbuf doc = STRBUF_INIT;

	sb_addf(&doc, SPLIT_DOC, "2026-01-08T00:00:00Z", "6h");
	CHECK_INT(parse_str(doc.buf, JOB_FORMAT_JSON, &l), 0);
	CHECK(l.njobs == 1 && l.jobs[0].split_ms == 6 * 3600000LL);
	CHECK(l.njobs == 1 && round_trips(&l.jobs[0]));
	job_list_release(&l);

	/* exactly JOB_MAX_SPLIT_WINDOWS windows of one minute is allowed; one more is not */
	sb_reset(&doc);
	sb_addf(&doc, SPLIT_DOC, "2026-01-07T22:40:00Z", "1m"); /* 10000 minutes */
	CHECK_INT(parse_str(doc.buf, JOB_FORMAT_JSON, &l), 0);
	job_list_release(&l);
	sb_reset(&doc);
	sb_addf(&doc, SPLIT_DOC, "2026-01-07T22:40:01Z", "1m"); /* 10000 and a bit */
	CHECK_INT(parse_str(doc.buf, JOB_FORMAT_JSON, &l), 1);
	CHECK(l.nproblems == 1 && strstr(l.problems[0].what, "10001 windows"));
	job_list_release(&l);
	sb_release(&doc);
}

TEST(raw_request)
{
	struct job_list l;
	CHECK_INT(
	    parse_str("{\"op\": \"raw\", \"params\": {\"method\": \"DELETE\", \"path\":"
	              " \"/sources/s1\", \"query\": {\"force\": \"true\"}, \"body\": [1, \"x\"]}}",
	              JOB_FORMAT_JSON, &l),
	    0);
	CHECK(l.njobs == 1 && l.jobs[0].op->is_raw);
	CHECK(l.njobs == 1 && round_trips(&l.jobs[0]));
	job_list_release(&l);
	/* validation refuses every path that catalog_build would refuse at send time */
	const char *bad[] = {"/sources/%2e%2e/admin",
	                     "/sources/%2E./x",
	                     "/a/../b",
	                     "//evil/x",
	                     "https://evil/x",
	                     "/a?b=1",
	                     "/a#f",
	                     "/a b",
	                     "/a\\r\\nX: 1",
	                     "x"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char doc[256];
		snprintf(doc, sizeof(doc),
		         "{\"op\": \"raw\", \"params\": {\"method\": \"GET\", \"path\": \"%s\"}}",
		         bad[i]);
		CHECK_INT(parse_str(doc, JOB_FORMAT_JSON, &l), 1);
		CHECK(l.nproblems == 1 && strstr(l.problems[0].what, "invalid raw path"));
		if (l.nproblems != 1)
			fprintf(stderr, "  accepted raw path %s\n", bad[i]);
		job_list_release(&l);
	}
}

TEST(every_problem_is_collected)
{
	struct job_list l;
	const char *doc = "[{\"op\": \"listSources\"},"
	                  " {\"op\": \"listSourcez\", \"prioirty\": 1},"
	                  " {\"op\": \"getSource\"},"
	                  " {\"op\": \"listUsers\"}]";
	CHECK_INT(parse_str(doc, JOB_FORMAT_JSON, &l), 1);
	CHECK_INT(l.njobs, 2); /* the good ones are kept; the caller rejects the file */
	CHECK_INT(l.nproblems, 3);
	if (l.nproblems == 3) {
		CHECK_STR(l.problems[0].where, "/1/prioirty");
		CHECK_STR(l.problems[0].expected, "did you mean priority");
		CHECK_STR(l.problems[1].where, "/1/op");
		CHECK_STR(l.problems[1].expected, "did you mean listSources");
		CHECK_STR(l.problems[2].where, "/2/params/sourceId");
		CHECK_INT(l.problems[2].line, 0);
	}
	job_list_release(&l);
}

TEST(pointer_escaping)
{
	struct job_list l;
	CHECK_INT(parse_str("{\"op\": \"listSources\", \"a/b~c\": 1}", JOB_FORMAT_JSON, &l), 1);
	CHECK(l.nproblems == 1 && !strcmp(l.problems[0].where, "/a~1b~0c"));
	job_list_release(&l);
	CHECK_INT(
	    parse_str("{\"op\": \"listSources\", \"params\": {\"x/y\": 1}}", JOB_FORMAT_JSON, &l),
	    1);
	CHECK(l.nproblems == 1 && !strcmp(l.problems[0].where, "/params/x~1y"));
	job_list_release(&l);
}

TEST(long_names_are_shortened_in_messages)
{
	struct strbuf doc = STRBUF_INIT;
	struct job_list l;
	sb_adds(&doc, "{\"op\": \"");
	for (int i = 0; i < 5000; i++)
		sb_adds(&doc, "\xC3\xA9"); /* two bytes a character: the cut must not split one */
	sb_adds(&doc, "\"}");
	CHECK_INT(parse_str(doc.buf, JOB_FORMAT_JSON, &l), 1);
	CHECK(l.nproblems == 1 && strlen(l.problems[0].what) < 100);
	CHECK(l.nproblems == 1 && strstr(l.problems[0].what, "\xC3\xA9...\""));
	job_list_release(&l);
	sb_release(&doc);
}

TEST(canonical_form)
{
	struct job_list l;
	CHECK_INT(
	    parse_str("{\"op\": \"List Functions\", \"params\": {\"resourceType\": \"SOURCE\"},"
	              " \"paginate\": {\"max_pages\": 4, \"count\": 50}, \"key\": \"k\","
	              " \"not_before\": \"1969-12-31T00:00:00Z\", \"priority\": -1000}",
	              JOB_FORMAT_JSON, &l),
	    0);
	if (l.njobs == 1) {
		char *text = job_to_json(&l.jobs[0]);
		/* op and params, then only what differs from the defaults */
		CHECK_STR(text,
		          "{\"op\":\"listFunctions\",\"params\":{\"resourceType\":\"SOURCE\"},"
		          "\"key\":\"k\",\"paginate\":{\"max_pages\":4,\"count\":50},"
		          "\"not_before_ms\":-86400000,\"priority\":-1000}");
		free(text);
		CHECK(round_trips(&l.jobs[0]));
		/* the fully explicit form older databases hold reads as the same job */
		const char *explicit_form =
		    "{\"op\":\"listFunctions\",\"params\":{\"resourceType\":\"SOURCE\"},"
		    "\"workspace\":\"default\",\"region\":\"api\",\"key\":\"k\",\"output\":null,"
		    "\"paginate\":{\"max_pages\":4,\"count\":50},\"retry\":{\"max_attempts\":0,"
		    "\"initial_ms\":0,\"max_ms\":0,\"max_age_ms\":0},\"not_before_ms\":-86400000,"
		    "\"priority\":-1000,\"split_ms\":0,\"on_unknown\":\"retry\"}";
		struct job old;
		CHECK_INT(job_from_json(explicit_form, &old), 0);
		char *again = job_to_json(&old);
		/* but for its region, which it names: jobs of those databases went to the US API
		 * whatever their workspace said, and still do */
		CHECK_STR(again,
		          "{\"op\":\"listFunctions\",\"params\":{\"resourceType\":\"SOURCE\"},"
		          "\"region\":\"api\",\"key\":\"k\",\"paginate\":{\"max_pages\":4,"
		          "\"count\":50},\"not_before_ms\":-86400000,\"priority\":-1000}");
		text = job_to_json(&l.jobs[0]);
		CHECK_STR(old.workspace, "default");
		CHECK_STR(old.region, "api");
		free(again);
		free(text);
		job_release(&old);
		/* every member at its default: op and params only, read back with the defaults */
		struct job bare;
		CHECK_INT(job_from_json("{\"op\":\"listSources\",\"params\":{}}", &bare), 0);
		CHECK(bare.op && !strcmp(bare.workspace, "default") && !bare.region && !bare.key &&
		      !bare.output && !bare.no_output && bare.paginate == PAGINATE_NONE &&
		      bare.max_attempts == 0 && bare.priority == 0 && bare.not_before_ms == 0 &&
		      bare.split_ms == 0 && bare.on_unknown == ON_UNKNOWN_RETRY);
		CHECK(round_trips(&bare));
		job_release(&bare);
	}
	job_list_release(&l);
}

TEST(from_json_rejects_what_is_not_canonical)
{
	struct job j;
	const char *bad[] = {
	    NULL,
	    "",
	    "[]",
	    "{\"op\": \"listSources\"}",
	    "{\"op\":\"nope\",\"params\":{},\"workspace\":\"default\",\"region\":\"api\",\"key\":"
	    "null,"
	    "\"output\":null,\"paginate\":\"all\",\"retry\":{\"max_attempts\":0,\"initial_ms\":0,"
	    "\"max_ms\":0,\"max_age_ms\":0},\"not_before_ms\":0,\"priority\":0,\"split_ms\":0,"
	    "\"on_unknown\":\"retry\"}",
	    "{\"op\":\"listSources\",\"params\":{},\"workspace\":\"default\",\"region\":\"api\","
	    "\"key\":null,\"output\":null,\"paginate\":\"all\",\"retry\":{\"max_attempts\":1e300,"
	    "\"initial_ms\":0,\"max_ms\":0,\"max_age_ms\":0},\"not_before_ms\":0,\"priority\":0,"
	    "\"split_ms\":0,\"on_unknown\":\"retry\"}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		CHECK_INT(job_from_json(bad[i], &j), -1);
		CHECK(j.op == NULL && j.params == NULL && j.workspace == NULL);
	}
	const char *good =
	    "{\"op\":\"listSources\",\"params\":{},\"workspace\":\"w\",\"region\":\"eu1\","
	    "\"key\":null,\"output\":\"o.jsonl\",\"paginate\":\"none\",\"retry\":{"
	    "\"max_attempts\":3,\"initial_ms\":0,\"max_ms\":0,\"max_age_ms\":0},"
	    "\"not_before_ms\":1795748400000,\"priority\":0,\"split_ms\":0,"
	    "\"on_unknown\":\"fail\"}";
	CHECK_INT(job_from_json(good, &j), 0);
	CHECK(j.op && j.paginate == PAGINATE_NONE && j.max_attempts == 3 &&
	      !strcmp(j.region, "eu1") && j.not_before_ms == 1795748400000LL &&
	      j.on_unknown == ON_UNKNOWN_FAIL);
	job_release(&j);
	/* read from the text's spans: whitespace anywhere, members in any order, the first of
	 * a repeated name (as cJSON would), escaped strings decoded, a paginate object */
	const char *spaced =
	    "{ \"params\" : { \"pagination\" : { \"count\" : 5 } } ,\n\"op\":\"listSources\","
	    "\"workspace\":\"w\\u00e9\\\"q\",\"workspace\":\"second\",\"region\":\"api\","
	    "\"key\":\"k\\/1\",\"output\":\"d/o\\tx.jsonl\",\"paginate\":{ \"max_pages\": 7 ,"
	    "\"count\":50},\"retry\":{\"max_ms\":9,\"max_attempts\":2,\"initial_ms\":1,"
	    "\"max_age_ms\":0},\"not_before_ms\":-5,\"priority\":-3,\"split_ms\":0,"
	    "\"on_unknown\":\"retry\" }\n";
	CHECK_INT(job_from_json(spaced, &j), 0);
	CHECK_STR(j.workspace, "w\xc3\xa9\"q");
	CHECK_STR(j.key, "k/1");
	CHECK_STR(j.output, "d/o\tx.jsonl");
	CHECK(j.paginate == PAGINATE_LIMIT && j.max_pages == 7 && j.page_count == 50);
	CHECK(j.max_attempts == 2 && j.initial_ms == 1 && j.max_ms == 9 && j.max_age_ms == 0);
	CHECK(j.not_before_ms == -5 && j.priority == -3 && j.on_unknown == ON_UNKNOWN_RETRY);
	CHECK(cJSON_GetObjectItemCaseSensitive(
	          cJSON_GetObjectItemCaseSensitive(j.params, "pagination"), "count") != NULL);
	CHECK(round_trips(&j));
	job_release(&j);
	/* not canonical: a number not written as an integer, a bad escape, a member missing,
	 * invalid JSON after the members that are read, an integer out of range */
	const char *variants[][2] = {
	    {"\"priority\":-3", "\"priority\":-3.0"},
	    {"\"key\":\"k\\/1\"", "\"key\":\"k\\q1\""},
	    {"\"op\":\"listSources\",", ""},
	    {"\"on_unknown\":\"retry\" }", "\"on_unknown\":\"retry\", \"x\": [1,] }"},
	    {"\"priority\":-3", "\"priority\":99999999999"},
	    {"\"paginate\":{ \"max_pages\": 7 ,", "\"paginate\":{ \"max_pages\": \"7\" ,"},
	    {"\"output\":\"d/o\\tx.jsonl\"", "\"output\":true"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(variants); i++) {
		const char *at = strstr(spaced, variants[i][0]);
		CHECK(at != NULL);
		if (!at)
			continue;
		struct strbuf sb = STRBUF_INIT;
		sb_add(&sb, spaced, (size_t)(at - spaced));
		sb_adds(&sb, variants[i][1]);
		sb_adds(&sb, at + strlen(variants[i][0]));
		CHECK_INT(job_from_json(sb.buf, &j), -1);
		CHECK(j.op == NULL && j.params == NULL && j.workspace == NULL);
		sb_release(&sb);
	}
}

TEST(problems_json_shape)
{
	struct job_list l;
	CHECK_INT(parse_str("{\"op\": \"listSources\"}\n{\"op\": 1}\n", JOB_FORMAT_JSONL, &l), 1);
	job_problem_add(&l, "", 0, "file moved twice", NULL);
	char *text = job_problems_json(&l, "batch.jsonl");
	cJSON *o = cJSON_Parse(text);
	CHECK(o != NULL);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "file")), "batch.jsonl");
	CHECK(cJSON_GetObjectItem(o, "rejected_at") == NULL);
	cJSON *probs = cJSON_GetObjectItem(o, "problems");
	CHECK_INT(cJSON_GetArraySize(probs), 2);
	cJSON *p0 = cJSON_GetArrayItem(probs, 0), *p1 = cJSON_GetArrayItem(probs, 1);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(p0, "where")), "/op");
	CHECK_INT(cJSON_GetObjectItem(p0, "line") ? cJSON_GetObjectItem(p0, "line")->valueint : -1,
	          2);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(p0, "what")),
	          "wrong type for op: got a number");
	CHECK(cJSON_GetStringValue(cJSON_GetObjectItem(p0, "expected")) != NULL);
	CHECK(cJSON_GetObjectItem(p1, "line") == NULL);
	CHECK(cJSON_GetObjectItem(p1, "expected") == NULL);
	cJSON_Delete(o);
	free(text);
	job_list_release(&l);
}

TEST(output_paths)
{
	const char *good[] = {"a", "exports/sources.jsonl", "a/b/c.d", "x.part", "a.b/c", "a/.b/c"};
	const char *bad[] = {"",   "/etc/passwd", "../x",           "a/../../b", "a//b",
	                     "a/", ".hidden",     "a\\b",           "a/./b",     ".",
	                     "..", "a\nb",        "exports/.x.part"};
	const char *why = "unset";
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		CHECK_INT(job_check_output_path(good[i], &why), 0);
		CHECK(why == NULL);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		why = NULL;
		CHECK_INT(job_check_output_path(bad[i], &why), -1);
		CHECK(why != NULL);
	}
	/* the file name is written as ".NAME.part" first: 249 bytes is the longest that
	 * fits NAME_MAX; a directory name may use all 255 */
	char longc[600];
	memset(longc, 'c', sizeof(longc));
	longc[249] = '\0';
	CHECK_INT(job_check_output_path(longc, &why), 0);
	longc[249] = 'c';
	longc[250] = '\0';
	CHECK_INT(job_check_output_path(longc, &why), -1);
	CHECK(why && strstr(why, "249"));
	memset(longc, 'c', sizeof(longc));
	longc[255] = '/';
	longc[257] = '\0';
	CHECK_INT(job_check_output_path(longc, &why), 0);
	longc[255] = 'c';
	longc[256] = '/';
	CHECK_INT(job_check_output_path(longc, &why), -1);
	CHECK(why && strstr(why, "directory name"));
	/* the whole path: 1024 bytes at most */
	char whole[1100];
	for (size_t i = 0; i < sizeof(whole) - 1; i++)
		whole[i] = (i % 100 == 99) ? '/' : 'p';
	whole[1024] = '\0';
	CHECK_INT(job_check_output_path(whole, &why), 0);
	whole[1024] = 'p';
	whole[1025] = '\0';
	CHECK_INT(job_check_output_path(whole, &why), -1);
}

/* mutates_of - job_mutates of a job of operation op with params given as JSON. */
static int mutates_of(const char *op, const char *params)
{
	struct job j = {0};
	j.op = catalog_find(op);
	j.params = cJSON_Parse(params);
	int m = j.op && j.params ? job_mutates(&j) : -1;
	cJSON_Delete(j.params);
	return m;
}

TEST(mutates_by_method)
{
	CHECK_INT(mutates_of("getSource", "{\"sourceId\": \"s1\"}"), 0);
	CHECK_INT(mutates_of("listSources", "{}"), 0);
	CHECK_INT(mutates_of("createSource", "{}"), 1);
	CHECK_INT(mutates_of("deleteSource", "{\"sourceId\": \"s1\"}"), 1);
	CHECK_INT(mutates_of("updateSource", "{}"), 1); /* PATCH */
	/* a raw job's own method decides, not the catalog's "ANY" */
	CHECK_INT(mutates_of("raw", "{\"method\": \"GET\", \"path\": \"/sources\"}"), 0);
	CHECK_INT(mutates_of("raw", "{\"method\": \"POST\", \"path\": \"/sources\"}"), 1);
	CHECK_INT(mutates_of("raw", "{\"method\": \"DELETE\", \"path\": \"/sources/s\"}"), 1);
	CHECK_INT(mutates_of("raw", "{\"path\": \"/sources\"}"), 1); /* no method: the safe side */
	/* and as parsed from a document */
	struct job_list l;
	CHECK_INT(
	    parse_str("[{\"op\": \"raw\", \"params\": {\"method\": \"GET\", \"path\": \"/x\"}},"
	              " {\"op\": \"listSources\"}, {\"op\": \"raw\", \"params\":"
	              " {\"method\": \"PUT\", \"path\": \"/x\"}}]",
	              JOB_FORMAT_JSON, &l),
	    0);
	CHECK(l.njobs == 3 && !job_mutates(&l.jobs[0]) && !job_mutates(&l.jobs[1]) &&
	      job_mutates(&l.jobs[2]));
	job_list_release(&l);
}

TEST(format_for_name)
{
	CHECK_INT(job_format_for_name("a.jsonl"), JOB_FORMAT_JSONL);
	CHECK_INT(job_format_for_name("A.JSONL"), JOB_FORMAT_JSONL);
	CHECK_INT(job_format_for_name("a.json"), JOB_FORMAT_JSON);
	CHECK_INT(job_format_for_name("jsonl"), JOB_FORMAT_JSON);
}

/* read_expect - the sidecar: line 1 the substring, then optional where= and line=. */
static void read_expect(const char *text, struct strbuf *expect, struct strbuf *where,
                        int *has_where, int *line)
{
	const char *nl = strchr(text, '\n');
	sb_reset(expect);
	sb_add(expect, text, nl ? (size_t)(nl - text) : strlen(text));
	*has_where = 0;
	*line = -1;
	while (nl && nl[1]) {
		const char *s = nl + 1;
		nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);
		if (!strncmp(s, "where=", 6)) {
			sb_reset(where);
			sb_add(where, s + 6, n - 6);
			*has_where = 1;
		} else if (!strncmp(s, "line=", 5)) {
			*line = atoi(s + 5);
		}
	}
}

/* check_bad_file - one file of tests/data/bad against its NAME.expect. */
static void check_bad_file(int dirfd, const char *name)
{
	struct strbuf body = STRBUF_INIT, exp_text = STRBUF_INIT, why = STRBUF_INIT;
	struct strbuf expect = STRBUF_INIT, where = STRBUF_INIT, exp_name = STRBUF_INIT;
	struct job_list l;
	int has_where, line;

	sb_addf(&exp_name, "%s.expect", name);
	if (read_file_at(dirfd, name, 1 << 20, &body, &why) ||
	    read_file_at(dirfd, exp_name.buf, 4096, &exp_text, &why)) {
		fprintf(stderr, "  %s: %s\n", name, why.buf);
		CHECK(0 /* the bad file and its .expect are readable */);
		goto out;
	}
	read_expect(exp_text.buf, &expect, &where, &has_where, &line);
	int ok = rejected_with(body.buf, body.len, job_format_for_name(name), expect.buf, &l);
	if (ok && has_where && strcmp(l.problems[0].where, where.buf)) {
		fprintf(stderr, "  where \"%s\", expected \"%s\"\n", l.problems[0].where,
		        where.buf);
		ok = 0;
	}
	if (ok && line >= 0 && l.problems[0].line != line) {
		fprintf(stderr, "  line %d, expected %d\n", l.problems[0].line, line);
		ok = 0;
	}
	if (!ok)
		fprintf(stderr, "  in %s\n", name);
	CHECK(ok);
	CHECK_INT(l.njobs == 0 || l.nproblems > 0, 1);
	job_list_release(&l);
out:
	sb_release(&body);
	sb_release(&exp_text);
	sb_release(&why);
	sb_release(&expect);
	sb_release(&where);
	sb_release(&exp_name);
}

/* open_data_subdir - tests/data/SUB as a directory fd and stream. */
static DIR *open_data_subdir(const char *sub)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", data_dir(), sub);
	DIR *d = opendir(path);
	if (!d)
		fprintf(stderr, "  cannot open %s\n", path);
	return d;
}

/* is_job_file - .json and .jsonl, not the sidecars. */
static int is_job_file(const char *name)
{
	size_t n = strlen(name);
	return (n > 5 && !strcmp(name + n - 5, ".json")) ||
	       (n > 6 && !strcmp(name + n - 6, ".jsonl"));
}

TEST(bad_corpus)
{
	DIR *d = open_data_subdir("bad");
	struct dirent *e;
	int files = 0;

	CHECK(d != NULL);
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!is_job_file(e->d_name))
			continue;
		check_bad_file(dirfd(d), e->d_name);
		files++;
	}
	closedir(d);
	CHECK(files >= 100);
	fprintf(stderr, "  %d bad files\n", files);
}

TEST(good_corpus)
{
	DIR *d = open_data_subdir("good");
	struct dirent *e;
	size_t files = 0, jobs = 0;

	CHECK(d != NULL);
	if (!d)
		return;
	while ((e = readdir(d))) {
		struct strbuf body = STRBUF_INIT, why = STRBUF_INIT;
		struct job_list l;
		if (!is_job_file(e->d_name))
			continue;
		files++;
		CHECK_INT(read_file_at(dirfd(d), e->d_name, 1 << 20, &body, &why), 0);
		int rc = job_parse_buffer(body.buf, body.len, job_format_for_name(e->d_name), &l);
		if (rc)
			fprintf(stderr, "  %s: %s\n", e->d_name,
			        l.nproblems ? l.problems[0].what : "?");
		CHECK_INT(rc, 0);
		CHECK(l.njobs > 0);
		for (size_t i = 0; i < l.njobs; i++)
			CHECK(round_trips(&l.jobs[i]));
		if (!strcmp(e->d_name, "array.json"))
			CHECK_INT(l.njobs, 6);
		if (!strcmp(e->d_name, "lines.jsonl"))
			CHECK_INT(l.njobs, 4);
		jobs += l.njobs;
		job_list_release(&l);
		sb_release(&body);
		sb_release(&why);
	}
	closedir(d);
	CHECK(files >= 5);
	CHECK(jobs >= 13);
}

/* the cases too large or too binary to keep as files */
/* at_limit - a document with %s replaced by a string of n 'a's, or by the number n. */
static void at_limit(struct strbuf *sb, const char *fmt, long long n, int as_string)
{
	struct strbuf v = STRBUF_INIT;
	if (as_string)
		for (long long i = 0; i < n; i++)
			sb_addch(&v, 'a');
	else
		sb_addf(&v, "%lld", n);
	const char *at = strstr(fmt, "%s");
	sb_reset(sb);
	sb_add(sb, fmt, (size_t)(at - fmt));
	sb_adds(sb, v.buf);
	sb_adds(sb, at + 2);
	sb_release(&v);
}

/* edge - fmt with the limit is accepted; with one more, rejected, its first problem
 * mentioning expect (which names the limit). */
static int edge(const char *fmt, long long limit, int as_string, const char *expect)
{
	struct strbuf sb = STRBUF_INIT;
	struct job_list l;
	at_limit(&sb, fmt, limit, as_string);
	int ok = job_parse_buffer(sb.buf, sb.len, JOB_FORMAT_JSON, &l) == 0;
	if (!ok)
		fprintf(stderr, "  at the limit %lld, rejected: %s\n", limit,
		        l.nproblems ? l.problems[0].what : "");
	job_list_release(&l);
	at_limit(&sb, fmt, limit + 1, as_string);
	ok = rejected_with(sb.buf, sb.len, JOB_FORMAT_JSON, expect, &l) && ok;
	job_list_release(&l);
	sb_release(&sb);
	return ok;
}

/* the limit a message states is the limit enforced: each is the value just accepted */
TEST(limit_messages_follow_the_limits)
{
	CHECK(edge("{\"op\": \"listSources\", \"key\": \"%s\"}", 200, 1,
	           "a string of 1 to 200 bytes"));
	CHECK(edge("{\"op\": \"listSources\", \"workspace\": \"%s\"}", 64, 1, "1 to 64 letters"));
	CHECK(edge("{\"op\": \"listSources\", \"output\": \"%s.json\"}", OUTPUT_NAME_MAX - 5, 1,
	           "longer than " STR(OUTPUT_NAME_MAX) " bytes"));
	CHECK(edge("{\"op\": \"listSources\", \"paginate\": {\"max_pages\": %s}}", 1000000, 0,
	           "an integer from 1 to 1000000"));
	CHECK(edge("{\"op\": \"listSources\", \"paginate\": {\"max_pages\": 1, \"count\": %s}}",
	           1000, 0, "an integer from 1 to 1000"));
	CHECK(edge("{\"op\": \"listSources\", \"retry\": {\"max_attempts\": %s}}",
	           RETRY_MAX_ATTEMPTS, 0, "an integer from 1 to " STR(RETRY_MAX_ATTEMPTS)));
	CHECK(edge("{\"op\": \"listSources\", \"retry\": {\"max_age\": \"%sd\"}}",
	           RETRY_MAX_AGE_DAYS, 0, "at most " STR(RETRY_MAX_AGE_DAYS) "d"));

	struct strbuf sb = STRBUF_INIT;
	struct job_list l;
	sb_adds(&sb, "[");
	for (int i = 0; i <= JOB_MAX_JOBS; i++)
		sb_adds(&sb, i ? ",{\"op\":\"listSources\"}" : "{\"op\":\"listSources\"}");
	sb_adds(&sb, "]");
	CHECK(rejected_with(sb.buf, sb.len, JOB_FORMAT_JSON,
	                    "at most " STR(JOB_MAX_JOBS) " jobs a file", &l));
	job_list_release(&l);
	sb_reset(&sb);
	for (int i = 0; i <= JOB_MAX_DEPTH; i++)
		sb_addch(&sb, '[');
	for (int i = 0; i <= JOB_MAX_DEPTH; i++)
		sb_addch(&sb, ']');
	CHECK(rejected_with(sb.buf, sb.len, JOB_FORMAT_JSONL,
	                    "nested at most " STR(JOB_MAX_DEPTH) " deep", &l));
	job_list_release(&l);
	sb_release(&sb);
	const char *why = NULL;
	sb_reset(&sb);
	for (int i = 0; i < 1025; i++)
		sb_addch(&sb, i % 100 == 99 ? '/' : 'a');
	CHECK_INT(job_check_output_path(sb.buf, &why), -1);
	CHECK(why && strstr(why, "longer than 1024 bytes"));
	sb_setlen(&sb, 1024);
	CHECK_INT(job_check_output_path(sb.buf, &why), 0);
	sb_release(&sb);
}

TEST(generated_bad_documents)
{
	struct job_list l;
	struct strbuf sb = STRBUF_INIT;
	char *big;

	/* 10 MB: rejected by size before anything looks inside */
	big = xmalloc(10u << 20);
	memset(big, ' ', 10u << 20);
	memcpy(big, "{\"op\":\"listSources\"}", 20);
	CHECK(rejected_with(big, 10u << 20, JOB_FORMAT_JSON, "larger than 8388608 bytes", &l));
	job_list_release(&l);
	/* exactly the limit is fine */
	CHECK_INT(job_parse_buffer(big, JOB_MAX_FILE_BYTES, JOB_FORMAT_JSON, &l), 0);
	job_list_release(&l);
	free(big);

	static const char nul_doc[] = "{\"op\": \"list\0Sources\"}";
	CHECK(rejected_with(nul_doc, sizeof(nul_doc) - 1, JOB_FORMAT_JSON, "nul byte at offset 12",
	                    &l));
	job_list_release(&l);
	CHECK(rejected_with(nul_doc, sizeof(nul_doc) - 1, JOB_FORMAT_JSONL, "nul byte", &l));
	job_list_release(&l);
	CHECK(rejected_with("\0", 1, JOB_FORMAT_JSON, "nul byte at offset 0", &l));
	job_list_release(&l);

	/* 10,000-deep nesting, arrays and objects, in both formats */
	for (int i = 0; i < 10000; i++)
		sb_addch(&sb, '[');
	for (int i = 0; i < 10000; i++)
		sb_addch(&sb, ']');
	CHECK(rejected_with(sb.buf, sb.len, JOB_FORMAT_JSON,
	                    "nesting deeper than 64 levels at offset 64", &l));
	job_list_release(&l);
	CHECK(rejected_with(sb.buf, sb.len, JOB_FORMAT_JSONL, "nesting deeper than 64", &l));
	CHECK(l.nproblems && l.problems[0].line == 1);
	job_list_release(&l);
	sb_reset(&sb);
	sb_adds(
	    &sb,
	    "{\"op\": \"raw\", \"params\": {\"method\": \"POST\", \"path\": \"/x\", \"body\": ");
	for (int i = 0; i < 10000; i++)
		sb_adds(&sb, "{\"a\":");
	sb_adds(&sb, "1");
	for (int i = 0; i < 10000; i++)
		sb_addch(&sb, '}');
	sb_adds(&sb, "}}");
	CHECK(rejected_with(sb.buf, sb.len, JOB_FORMAT_JSON, "nesting deeper than 64", &l));
	job_list_release(&l);
	/* brackets inside strings do not count */
	sb_reset(&sb);
	sb_adds(&sb, "{\"op\": \"listSources\", \"comment\": \"");
	for (int i = 0; i < 200; i++)
		sb_adds(&sb, "[{\\\"");
	sb_adds(&sb, "\"}");
	CHECK_INT(job_parse_buffer(sb.buf, sb.len, JOB_FORMAT_JSON, &l), 0);
	job_list_release(&l);
	/* exactly JOB_MAX_DEPTH levels is fine */
	sb_reset(&sb);
	sb_adds(
	    &sb,
	    "{\"op\": \"raw\", \"params\": {\"method\": \"POST\", \"path\": \"/x\", \"body\": ");
	for (int i = 0; i < JOB_MAX_DEPTH - 2; i++)
		sb_addch(&sb, '[');
	for (int i = 0; i < JOB_MAX_DEPTH - 2; i++)
		sb_addch(&sb, ']');
	sb_adds(&sb, "}}");
	CHECK_INT(job_parse_buffer(sb.buf, sb.len, JOB_FORMAT_JSON, &l), 0);
	job_list_release(&l);

	/* invalid UTF-8: stray continuation, overlongs, surrogates, out of range, cut short */
	struct {
		const char *bytes;
		const char *expect;
	} utf8[] = {
	    {"{\"op\": \"a\x80\"}", "invalid utf-8 at offset 9"},
	    {"{\"op\": \"\xC0\xAF\"}", "invalid utf-8 at offset 8"},
	    {"{\"op\": \"\xC1\xBF\"}", "invalid utf-8 at offset 8"},
	    {"{\"op\": \"\xE0\x80\xAF\"}", "invalid utf-8 at offset 8"},
	    {"{\"op\": \"\xF0\x80\x80\xAF\"}", "invalid utf-8 at offset 8"},
	    {"{\"op\": \"\xED\xA0\x80\"}", "invalid utf-8 at offset 8"},
	    {"{\"op\": \"\xED\xBF\xBF\"}", "invalid utf-8 at offset 8"},
	    {"{\"op\": \"\xF4\x90\x80\x80\"}", "invalid utf-8 at offset 8"},
	    {"{\"op\": \"\xF5\x80\x80\x80\"}", "invalid utf-8 at offset 8"},
	    {"{\"op\": \"\xFF\"}", "invalid utf-8 at offset 8"},
	    {"{\"op\": \"\xE2\x82\"}", "invalid utf-8 at offset 8"},
	    {"{\"op\":\n\"x\"} \xE2\x82", "invalid utf-8 at offset 12 (line 2, column 6)"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(utf8); i++) {
		CHECK(rejected_with(utf8[i].bytes, strlen(utf8[i].bytes), JOB_FORMAT_JSON,
		                    utf8[i].expect, &l));
		job_list_release(&l);
	}
	/* well-formed multibyte text passes the check */
	CHECK_INT(parse_str("{\"op\": \"listSources\", \"comment\": \"\xC3\xA9\xE2\x82\xAC"
	                    "\xF0\x9F\x98\x80\xEF\xBF\xBF\xF4\x8F\xBF\xBF\"}",
	                    JOB_FORMAT_JSON, &l),
	          0);
	job_list_release(&l);

	/* a byte order mark only counts at the start of the file (found by fuzzing) */
	CHECK(rejected_with("\n\xEF\xBB\xBF\t", 5, JOB_FORMAT_JSONL, "invalid json", &l));
	CHECK(l.nproblems && l.problems[0].line == 2);
	job_list_release(&l);

	/* 5,000 good lines and one bad one at line 4321: the problem names that line */
	sb_reset(&sb);
	for (int i = 1; i <= 5000; i++) {
		if (i == 4321)
			sb_adds(&sb, "{\"op\": \"listSources\", \"paginate\": \"sometimes\"}\n");
		else
			sb_addf(&sb, "{\"op\": \"listSources\", \"key\": \"k%d\"}\n", i);
	}
	CHECK(rejected_with(sb.buf, sb.len, JOB_FORMAT_JSONL, "invalid paginate", &l));
	CHECK_INT(l.nproblems, 1);
	CHECK_INT(l.njobs, 4999);
	CHECK(l.nproblems && l.problems[0].line == 4321 &&
	      !strcmp(l.problems[0].where, "/paginate"));
	job_list_release(&l);
	/* and a syntax error there names it too */
	sb_reset(&sb);
	for (int i = 1; i <= 5000; i++)
		sb_adds(&sb,
		        i == 4321 ? "{\"op\": \"listSources\",}\n" : "{\"op\": \"listSources\"}\n");
	CHECK(rejected_with(sb.buf, sb.len, JOB_FORMAT_JSONL, "invalid json", &l));
	CHECK(l.nproblems == 1 && l.problems[0].line == 4321);
	job_list_release(&l);

	/* a JSON Lines line over 1 MB */
	sb_reset(&sb);
	sb_adds(&sb, "{\"op\": \"listSources\"}\n{\"op\": \"listSources\", \"comment\": \"");
	for (size_t i = 0; i < JOB_MAX_LINE_BYTES; i++)
		sb_addch(&sb, 'x');
	sb_adds(&sb, "\"}\n");
	CHECK(rejected_with(sb.buf, sb.len, JOB_FORMAT_JSONL, "line is longer than 1048576 bytes",
	                    &l));
	CHECK(l.nproblems && l.problems[0].line == 2);
	job_list_release(&l);

	/* more than JOB_MAX_JOBS jobs, as an array and as lines */
	sb_reset(&sb);
	sb_addch(&sb, '[');
	for (int i = 0; i <= JOB_MAX_JOBS; i++)
		sb_adds(&sb, i ? ",{}" : "{}");
	sb_addch(&sb, ']');
	CHECK(rejected_with(sb.buf, sb.len, JOB_FORMAT_JSON, "too many jobs: 100001", &l));
	CHECK_INT(l.nproblems, 1);
	job_list_release(&l);
	sb_reset(&sb);
	for (int i = 0; i <= JOB_MAX_JOBS; i++)
		sb_adds(&sb, "{\"op\":\"listUsers\"}\n");
	CHECK(rejected_with(sb.buf, sb.len, JOB_FORMAT_JSONL, "too many jobs", &l));
	CHECK(l.nproblems == 1 && l.problems[0].line == JOB_MAX_JOBS + 1);
	job_list_release(&l);

	/* thousands of bad jobs: the report stops at a readable size */
	sb_reset(&sb);
	sb_addch(&sb, '[');
	for (int i = 0; i < 5000; i++)
		sb_adds(&sb, i ? ",{}" : "{}");
	sb_addch(&sb, ']');
	CHECK(rejected_with(sb.buf, sb.len, JOB_FORMAT_JSON, "missing field op", &l));
	CHECK_INT(l.nproblems, 1001);
	CHECK(l.nproblems && strstr(l.problems[l.nproblems - 1].what, "too many problems"));
	job_list_release(&l);

	/* duplicate keys far apart, found without comparing every pair */
	sb_reset(&sb);
	for (int i = 0; i < 20000; i++)
		sb_addf(&sb, "{\"op\": \"listUsers\", \"key\": \"k%d\"}\n", i == 19999 ? 7 : i);
	CHECK(rejected_with(sb.buf, sb.len, JOB_FORMAT_JSONL, "first used on line 8", &l));
	CHECK(l.nproblems == 1 && l.problems[0].line == 20000);
	job_list_release(&l);
	sb_release(&sb);
}

/* --- after and $ref ------------------------------------------------------------------- */

#define SRC_JOB(key)                                                                               \
	"{\"op\": \"createSource\", \"key\": \"" key "\", \"params\": {\"slug\": \"s\", "          \
	"\"enabled\": true, \"metadataId\": \"m\"}}"

TEST(after_and_refs_are_parsed)
{
	const char *doc = "[" SRC_JOB("src") ", " SRC_JOB(
	    "wh") ","
	          "{\"op\": \"createDestination\", \"key\": \"dst\", \"after\": [\"wh\"],"
	          " \"params\": {\"sourceId\": {\"$ref\": \"src#/source/id\"}, \"metadataId\": "
	          "\"m\","
	          " \"settings\": {\"a\": [1, {\"$ref\": \"wh#\"}], \"b~/c\": {\"$ref\": "
	          "\"src#/source/settings/x~1y\"}}}},"
	          "{\"op\": \"addConnectionFromSourceToWarehouse\", \"params\": {\"warehouseId\": "
	          "\"w\","
	          " \"sourceId\": {\"$ref\": \"src#/source/id\"}}},"
	          "{\"op\": \"listSources\", \"params\": {\"x\": 1}, \"after\": []}]";
	struct job_list l;

	/* the last job is bad for its parameter, not its empty after */
	CHECK_INT(parse_str(doc, JOB_FORMAT_JSON, &l), 1);
	CHECK_INT(l.nproblems, 1);
	CHECK(l.nproblems && !strcmp(l.problems[0].where, "/4/params/x"));
	job_list_release(&l);

	const char *ok_doc = "[" SRC_JOB("src") ", " SRC_JOB(
	    "wh") ","
	          "{\"op\": \"createDestination\", \"key\": \"dst\", \"after\": [\"wh\"],"
	          " \"params\": {\"sourceId\": {\"$ref\": \"src#/source/id\"}, \"metadataId\": "
	          "\"m\","
	          " \"settings\": {\"a\": [1, {\"$ref\": \"wh#\"}], \"b~/c\": {\"$ref\": "
	          "\"src#/source/settings/x~1y\"}}}},"
	          "{\"op\": \"addConnectionFromSourceToWarehouse\", \"params\": {\"warehouseId\": "
	          "\"w\","
	          " \"sourceId\": {\"$ref\": \"src#/source/id\"}}}]";
	CHECK_INT(parse_str(ok_doc, JOB_FORMAT_JSON, &l), 0);
	CHECK_INT(l.njobs, 4);
	if (l.njobs == 4) {
		const struct job *d = &l.jobs[2], *c = &l.jobs[3];
		CHECK_INT(l.jobs[0].nafter, 0);
		CHECK_INT(l.jobs[0].index, 0);
		CHECK_INT(d->index, 2);
		CHECK_INT(d->nafter_given, 1);
		CHECK_INT(d->nafter, 2); /* wh given, src from the references, once */
		CHECK_STR(d->after[0], "wh");
		CHECK_STR(d->after[1], "src");
		CHECK_INT(d->nrefs, 3);
		CHECK_STR(d->refs[0].param_pointer, "/sourceId");
		CHECK_STR(d->refs[0].key, "src");
		CHECK_STR(d->refs[0].pointer, "/source/id");
		CHECK_STR(d->refs[1].param_pointer, "/settings/a/1");
		CHECK_STR(d->refs[1].key, "wh");
		CHECK_STR(d->refs[1].pointer, "");
		CHECK_STR(d->refs[2].param_pointer, "/settings/b~0~1c");
		CHECK_STR(d->refs[2].pointer, "/source/settings/x~1y");
		CHECK_INT(c->nafter, 1);
		CHECK_INT(c->nafter_given, 0);
		CHECK_STR(c->after[0], "src");
		CHECK(round_trips(d));
		CHECK(round_trips(c));
		char *text = job_to_json(d);
		CHECK(strstr(text, "\"after\":[\"wh\"]") !=
		      NULL); /* src is found again in params */
		free(text);
		text = job_to_json(c);
		CHECK(strstr(text, "\"after\"") == NULL);
		free(text);
		CHECK_INT(job_list_check_refs(&l, NULL, NULL), 0);
		int layer[4];
		CHECK_INT(job_list_layers(&l, layer), 2);
		CHECK(layer[0] == 0 && layer[1] == 0 && layer[2] == 1 && layer[3] == 1);
	}
	job_list_release(&l);

	/* an object with more than $ref is a value; in a string array a reference passes */
	CHECK_INT(
	    parse_str("{\"op\": \"createDestination\", \"params\": {\"sourceId\": "
	              "{\"$ref\": \"a#\", \"b\": 1}, \"metadataId\": \"m\", \"settings\": {}}}",
	              JOB_FORMAT_JSON, &l),
	    1);
	CHECK(l.nproblems && !strcmp(l.problems[0].where, "/params/sourceId"));
	job_list_release(&l);
	CHECK_INT(parse_str("{\"op\": \"listSources\", \"after\": [\"a\"]}", JOB_FORMAT_JSON, &l),
	          0);
	CHECK(l.njobs == 1 && l.jobs[0].index == -1 && l.jobs[0].nafter == 1);
	job_list_release(&l);
}

TEST(bad_after_and_refs)
{
	static const struct {
		const char *doc, *where, *what;
	} cases[] = {
	    {"{\"op\": \"listSources\", \"after\": \"a\"}", "/after", "wrong type for after"},
	    {"{\"op\": \"listSources\", \"after\": [1]}", "/after/0",
	     "wrong type for after element"},
	    {"{\"op\": \"listSources\", \"after\": [\"\"]}", "/after/0", "invalid key"},
	    {"{\"op\": \"listSources\", \"after\": [\"a\\u0001\"]}", "/after/0", "invalid key"},
	    {"{\"op\": \"listSources\", \"after\": [\"a\", \"b\", \"a\"]}", "/after/2",
	     "duplicate key \"a\" in after"},
	    {"{\"op\": \"listSources\", \"key\": \"me\", \"after\": [\"me\"]}", "/after/0",
	     "job waits for itself"},
	    {"{\"op\": \"getSource\", \"params\": {\"sourceId\": {\"$ref\": 3}}}",
	     "/params/sourceId", "wrong type for $ref"},
	    {"{\"op\": \"getSource\", \"params\": {\"sourceId\": {\"$ref\": \"a/source\"}}}",
	     "/params/sourceId", "no '#'"},
	    {"{\"op\": \"getSource\", \"params\": {\"sourceId\": {\"$ref\": \"#/source\"}}}",
	     "/params/sourceId", "the key must be"},
	    {"{\"op\": \"getSource\", \"params\": {\"sourceId\": {\"$ref\": \"a#source\"}}}",
	     "/params/sourceId", "must be empty or start with '/'"},
	    {"{\"op\": \"getSource\", \"params\": {\"sourceId\": {\"$ref\": \"a#/x~2\"}}}",
	     "/params/sourceId", "'~' in a pointer"},
	    {"{\"op\": \"getSource\", \"key\": \"a\", \"params\": {\"sourceId\": {\"$ref\": "
	     "\"a#/source/id\"}}}",
	     "/params/sourceId", "the job's own key"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct job_list l;
		CHECK(rejected_with(cases[i].doc, strlen(cases[i].doc), JOB_FORMAT_JSON,
		                    cases[i].what, &l));
		CHECK(l.nproblems && !strcmp(l.problems[0].where, cases[i].where));
		if (l.nproblems && strcmp(l.problems[0].where, cases[i].where))
			fprintf(stderr, "  case %zu: where %s\n", i, l.problems[0].where);
		job_list_release(&l);
	}
}

/* known_keys - the store stand-in for job_list_check_refs: keys starting "old-". */
static int known_keys(const char *key, void *arg)
{
	(*(int *)arg)++;
	return !strncmp(key, "old-", 4);
}

TEST(file_refs_unknown_keys_and_cycles)
{
	struct job_list l;
	int calls = 0;

	/* unknown keys: in after, in a reference; a stored key passes through the callback */
	const char *doc = "[{\"op\": \"listSources\", \"key\": \"a\"},"
	                  "{\"op\": \"listSources\", \"after\": [\"a\", \"old-1\", \"nope\"]},"
	                  "{\"op\": \"getSource\", \"params\": {\"sourceId\": {\"$ref\": "
	                  "\"gone#/source/id\"}}}]";
	CHECK_INT(parse_str(doc, JOB_FORMAT_JSON, &l), 0);
	CHECK_INT(job_list_check_refs(&l, known_keys, &calls), 2);
	CHECK_INT(calls, 3); /* keys of the file are not asked for */
	CHECK_INT(l.nproblems, 2);
	if (l.nproblems == 2) {
		CHECK_STR(l.problems[0].where, "/1/after/2");
		CHECK(strstr(l.problems[0].what, "unknown key \"nope\"") != NULL);
		CHECK_STR(l.problems[1].where, "/2/params/sourceId");
		CHECK(strstr(l.problems[1].what, "\"gone\"") != NULL);
		CHECK(l.problems[1].expected && strstr(l.problems[1].expected, "in the store"));
	}
	job_list_release(&l);
	/* no store: the stored key is unknown too */
	CHECK_INT(parse_str(doc, JOB_FORMAT_JSON, &l), 0);
	CHECK_INT(job_list_check_refs(&l, NULL, NULL), 3);
	CHECK(l.nproblems == 3 && !strcmp(l.problems[0].where, "/1/after/1"));
	job_list_release(&l);

	/* JSON Lines: where is within the line, and the line is given */
	CHECK_INT(parse_str("{\"op\": \"listSources\"}\n\n{\"op\": \"listSources\", \"after\": "
	                    "[\"x\"]}\n",
	                    JOB_FORMAT_JSONL, &l),
	          0);
	CHECK_INT(job_list_check_refs(&l, NULL, NULL), 1);
	CHECK(l.nproblems == 1 && !strcmp(l.problems[0].where, "/after/0") &&
	      l.problems[0].line == 3);
	job_list_release(&l);

	/* a cycle of three behind a job outside it, and one of two: each named once, from its
	 * first job in the file, where that job names the next */
	const char *cyc =
	    "{\"op\": \"listSources\", \"key\": \"d\", \"after\": [\"c\"]}\n"
	    "{\"op\": \"listSources\", \"key\": \"c\", \"after\": [\"b\"]}\n"
	    "{\"op\": \"listSources\", \"key\": \"a\", \"after\": [\"c\"]}\n"
	    "{\"op\": \"getSource\", \"key\": \"b\", \"params\": {\"sourceId\": {\"$ref\": "
	    "\"a#/source/id\"}}}\n"
	    "{\"op\": \"listSources\", \"key\": \"x\", \"after\": [\"y\"]}\n"
	    "{\"op\": \"listSources\", \"key\": \"y\", \"after\": [\"x\"]}\n"
	    "{\"op\": \"listSources\", \"key\": \"free\"}\n";
	CHECK_INT(parse_str(cyc, JOB_FORMAT_JSONL, &l), 0);
	int layer[7];
	CHECK_INT(job_list_layers(&l, layer), -1);
	CHECK(layer[0] == -1 && layer[1] == -1 && layer[4] == -1 && layer[6] == 0);
	CHECK_INT(job_list_check_refs(&l, NULL, NULL), 2);
	if (l.nproblems == 2) {
		CHECK_STR(l.problems[0].what, "jobs wait for each other in a cycle: \"c\" waits "
		                              "for \"b\" waits for \"a\" waits for \"c\"");
		CHECK_STR(l.problems[0].where, "/after/0");
		CHECK_INT(l.problems[0].line, 2);
		CHECK_STR(
		    l.problems[1].what,
		    "jobs wait for each other in a cycle: \"x\" waits for \"y\" waits for \"x\"");
		CHECK_INT(l.problems[1].line, 5);
	}
	job_list_release(&l);
}

TEST(layers_of_a_long_chain_and_a_wide_fan_in)
{
	enum { N = 20000 };
	struct strbuf sb = STRBUF_INIT;
	struct job_list l;
	int *layer = xmalloc(N * sizeof(int));

	/* a chain, written last job first: N layers */
	for (int i = N - 1; i >= 0; i--) {
		sb_addf(&sb, "{\"op\": \"listSources\", \"key\": \"k%d\"", i);
		if (i)
			sb_addf(&sb, ", \"after\": [\"k%d\"]", i - 1);
		sb_adds(&sb, "}\n");
	}
	CHECK_INT(job_parse_buffer(sb.buf, sb.len, JOB_FORMAT_JSONL, &l), 0);
	CHECK_INT(job_list_check_refs(&l, NULL, NULL), 0);
	CHECK_INT(job_list_layers(&l, layer), N);
	CHECK(layer[0] == N - 1 && layer[N - 1] == 0);
	job_list_release(&l);

	/* one job waiting for N - 1 others */
	sb_reset(&sb);
	sb_adds(&sb, "[{\"op\": \"listSources\", \"after\": [");
	for (int i = 1; i < N; i++)
		sb_addf(&sb, "%s\"k%d\"", i > 1 ? "," : "", i);
	sb_adds(&sb, "]}");
	for (int i = 1; i < N; i++)
		sb_addf(&sb, ",{\"op\": \"listSources\", \"key\": \"k%d\"}", i);
	sb_addch(&sb, ']');
	CHECK_INT(job_parse_buffer(sb.buf, sb.len, JOB_FORMAT_JSON, &l), 0);
	CHECK_INT(job_list_check_refs(&l, NULL, NULL), 0);
	CHECK_INT(job_list_layers(&l, layer), 2);
	CHECK(layer[0] == 1 && layer[1] == 0 && layer[N - 1] == 0);
	job_list_release(&l);
	free(layer);
	sb_release(&sb);
}

TEST(refs_put_in_at_claim)
{
	const char *doc = "{\"op\": \"createDestination\", \"params\": {\"sourceId\": {\"$ref\": "
	                  "\"s#/source/id\"}, \"metadataId\": \"m\", \"settings\": {\"l\": [0, "
	                  "{\"$ref\": \"s#/source/labels/1\"}], \"a/b\": {\"$ref\": \"s#\"}}}}";
	struct job_list l;
	struct strbuf why = STRBUF_INIT;
	cJSON *result = cJSON_Parse("{\"source\": {\"id\": \"src_1\", \"labels\": [\"x\", "
	                            "{\"k\": 2}], \"a~b\": true}}");

	CHECK_INT(parse_str(doc, JOB_FORMAT_JSON, &l), 0);
	CHECK_INT(l.njobs, 1);
	if (l.njobs == 1 && l.jobs[0].nrefs == 3) {
		struct job *j = &l.jobs[0];
		/* a job is checked again once its references are in: the refs pass first */
		CHECK_INT(job_params_problem(j, &why), 0);
		for (size_t i = 0; i < j->nrefs; i++) {
			const cJSON *v = job_pointer_get(result, j->refs[i].pointer, NULL);
			CHECK(v != NULL);
			if (v)
				CHECK_INT(job_ref_put(j, &j->refs[i], v), 0);
		}
		char *text = cJSON_PrintUnformatted(j->params);
		CHECK_STR(text,
		          "{\"sourceId\":\"src_1\",\"metadataId\":\"m\",\"settings\":{\"l\":[0,"
		          "{\"k\":2}],\"a/b\":{\"source\":{\"id\":\"src_1\",\"labels\":[\"x\","
		          "{\"k\":2}],\"a~b\":true}}}}");
		free(text);
		CHECK_INT(job_ref_put(j, &j->refs[0], result), -1); /* no reference there now */
		CHECK_INT(job_params_problem(j, &why), 0);
		/* a value of the wrong type for its parameter is found then */
		cJSON_ReplaceItemInObjectCaseSensitive(j->params, "sourceId",
		                                       cJSON_CreateNumber(3));
		CHECK_INT(job_params_problem(j, &why), -1);
		CHECK(strstr(why.buf, "wrong type for sourceId: got a number") != NULL);
	}
	job_list_release(&l);

	/* pointers: escapes, arrays, and what is said when one does not resolve */
	CHECK(cJSON_IsTrue(job_pointer_get(result, "/source/a~0b", NULL)));
	CHECK(job_pointer_get(result, "", NULL) == result);
	sb_reset(&why);
	CHECK(job_pointer_get(result, "/source/name", &why) == NULL);
	CHECK_STR(why.buf, "no member \"name\" at /source");
	sb_reset(&why);
	CHECK(job_pointer_get(result, "/source/labels/2", &why) == NULL);
	CHECK_STR(why.buf, "no element \"2\" in an array of 2 at /source/labels");
	sb_reset(&why);
	CHECK(job_pointer_get(result, "/source/labels/01", &why) == NULL);
	sb_reset(&why);
	CHECK(job_pointer_get(result, "/source/id/x", &why) == NULL);
	CHECK_STR(why.buf, "a string has no member \"x\" at /source/id");
	sb_reset(&why);
	CHECK(job_pointer_get(result, "/nope", &why) == NULL);
	CHECK_STR(why.buf, "no member \"nope\" at the top");
	cJSON_Delete(result);
	sb_release(&why);
}

/* shape_problems - the problems job_list_check_refs finds in a file of a createSource
 * "src" and the job j after it; their "what" joined by " | " into sb. */
static size_t shape_problems(const char *j, struct strbuf *sb)
{
	struct strbuf doc = STRBUF_INIT;
	struct job_list l;
	sb_reset(sb);
	sb_addf(&doc, "[" SRC_JOB("src") ", %s]", j);
	size_t n = SIZE_MAX;
	if (job_parse_buffer(doc.buf, doc.len, JOB_FORMAT_JSON, &l) == 0) {
		n = (size_t)job_list_check_refs(&l, NULL, NULL);
		for (size_t i = 0; i < l.nproblems; i++)
			sb_addf(sb, "%s%s: %s", i ? " | " : "", l.problems[i].where,
			        l.problems[i].what);
	}
	job_list_release(&l);
	sb_release(&doc);
	return n;
}

TEST(refs_against_result_shapes)
{
	struct strbuf sb = STRBUF_INIT;
#define GET_SOURCE(ptr)                                                                            \
	"{\"op\": \"getSource\", \"params\": {\"sourceId\": {\"$ref\": \"src#" ptr "\"}}}"
	/* what the table knows a createSource result holds */
	CHECK_INT(shape_problems(GET_SOURCE("/source/id"), &sb), 0);
	CHECK_INT(shape_problems(GET_SOURCE("/source/metadata/slug"), &sb), 0);
	CHECK_INT(shape_problems(GET_SOURCE("/source/writeKeys/0"), &sb), 0); /* an element */
	CHECK_INT(shape_problems(GET_SOURCE("/source/settings/anything"), &sb), 0);
	/* a first member the result cannot have, a member its object does not have */
	CHECK_INT(shape_problems(GET_SOURCE("/destination/id"), &sb), 1);
	CHECK_STR(sb.buf, "/1/params/sourceId: reference \"src#/destination/id\": a result of "
	                  "createSource cannot hold /destination");
	CHECK_INT(shape_problems(GET_SOURCE("/source/nope"), &sb), 1);
	CHECK(strstr(sb.buf, "cannot hold /source/nope") != NULL);
	/* below a string */
	CHECK_INT(shape_problems(GET_SOURCE("/source/id/x"), &sb), 1);
	CHECK(strstr(sb.buf, "cannot hold /source/id/x") != NULL);
	/* a value of a type the parameter cannot take */
	CHECK_INT(shape_problems(GET_SOURCE("/source/enabled"), &sb), 1);
	CHECK_STR(sb.buf, "/1/params/sourceId: reference \"src#/source/enabled\" is true or "
	                  "false in a result of createSource, which sourceId cannot take");
	CHECK_INT(shape_problems(GET_SOURCE("/source"), &sb), 1);
	CHECK(strstr(sb.buf, "is an object") != NULL);
	CHECK_INT(shape_problems(GET_SOURCE(""), &sb), 1); /* the data object itself */
	CHECK_INT(shape_problems("{\"op\": \"updateSource\", \"params\": {\"sourceId\": \"s\", "
	                         "\"enabled\": {\"$ref\": \"src#/source/enabled\"}}}",
	                         &sb),
	          0);
	CHECK_INT(shape_problems("{\"op\": \"updateSource\", \"params\": {\"sourceId\": \"s\", "
	                         "\"enabled\": {\"$ref\": \"src#/source/name\"}}}",
	                         &sb),
	          1);
	/* inside an object parameter: the member's type is not the table's to say */
	CHECK_INT(shape_problems("{\"op\": \"updateSource\", \"params\": {\"sourceId\": \"s\", "
	                         "\"settings\": {\"x\": {\"$ref\": \"src#/source/enabled\"}}}}",
	                         &sb),
	          0);
#undef GET_SOURCE
	sb_release(&sb);
}

/* stored_op_of - job_list_check_stored_refs's stand-in store: "old-src" is a createSource. */
static const struct op_def *stored_op_of(const char *key, void *arg)
{
	(*(int *)arg)++;
	return !strcmp(key, "old-src") ? catalog_find("createSource") : NULL;
}

TEST(stored_refs_against_result_shapes)
{
	const char *doc =
	    "[" SRC_JOB("src") ","
	                       "{\"op\": \"getSource\", \"params\": {\"sourceId\": {\"$ref\": "
	                       "\"old-src#/source/enabled\"}}},"
	                       "{\"op\": \"getSource\", \"params\": {\"sourceId\": {\"$ref\": "
	                       "\"old-src#/source/id\"}}},"
	                       "{\"op\": \"getSource\", \"params\": {\"sourceId\": {\"$ref\": "
	                       "\"other#/anything\"}}},"
	                       "{\"op\": \"getSource\", \"params\": {\"sourceId\": {\"$ref\": "
	                       "\"src#/destination\"}}}]";
	struct job_list l;
	int calls = 0;
	CHECK_INT(parse_str(doc, JOB_FORMAT_JSON, &l), 0);
	/* only the stored ones are asked for and checked; the file's are check_refs's */
	CHECK_INT(job_list_check_stored_refs(&l, stored_op_of, &calls), 1);
	CHECK_INT(calls, 3);
	CHECK(l.nproblems == 1 && !strcmp(l.problems[0].where, "/1/params/sourceId") &&
	      strstr(l.problems[0].what, "is true or false in a result of createSource"));
	job_list_release(&l);
}

int main(void)
{
	RUN(single_job_with_every_field);
	RUN(defaults_when_fields_are_absent);
	RUN(op_by_display_name);
	RUN(array_of_jobs);
	RUN(jsonl_with_blank_lines_crlf_and_bom);
	RUN(paginate_forms);
	RUN(retry_overrides);
	RUN(split_windows);
	RUN(raw_request);
	RUN(every_problem_is_collected);
	RUN(pointer_escaping);
	RUN(long_names_are_shortened_in_messages);
	RUN(canonical_form);
	RUN(from_json_rejects_what_is_not_canonical);
	RUN(problems_json_shape);
	RUN(output_paths);
	RUN(format_for_name);
	RUN(mutates_by_method);
	RUN(bad_corpus);
	RUN(good_corpus);
	RUN(generated_bad_documents);
	RUN(limit_messages_follow_the_limits);
	RUN(after_and_refs_are_parsed);
	RUN(bad_after_and_refs);
	RUN(file_refs_unknown_keys_and_cycles);
	RUN(layers_of_a_long_chain_and_a_wide_fan_in);
	RUN(refs_put_in_at_claim);
	RUN(refs_against_result_shapes);
	RUN(stored_refs_against_result_shapes);
	fprintf(stderr, "%d bad documents checked\n", bad_cases);
	return tl_finish();
}
