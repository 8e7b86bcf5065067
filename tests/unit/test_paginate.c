/* test_paginate - page extraction from response bodies, the page loop's stop, window fan-out. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "catalog.h"
#include "paginate.h"
#include "strbuf.h"
#include "testlib.h"

#define DAY_MS (24LL * 60 * 60 * 1000)
#define HOUR_MS (60LL * 60 * 1000)
/* 2026-11-01T00:00:00Z */
#define NOV1 1793491200000LL

static const struct op_def list_things = {
    .operation_id = "listThings",
    .method = "GET",
    .path = "/things",
    .items_key = "things",
    .paginated = 1,
};

static const struct op_def get_thing = {
    .operation_id = "getThing",
    .method = "GET",
    .path = "/things/{thingId}",
    .items_key = NULL,
};

/* extract - parses text and extracts with op; returns paginate_extract's result and keeps
 * the parsed body in *body for the caller to free. */
static int extract(const struct op_def *op, const char *text, cJSON **body,
                   struct page_result *page, const char **why)
{
	*body = cJSON_Parse(text);
	*why = NULL;
	return paginate_extract(op, *body, page, why);
}

TEST(extract_list_sources)
{
	const struct op_def *op = catalog_find("listSources");
	CHECK(op != NULL);
	if (!op)
		return;
	const char *text =
	    "{\"data\":{\"sources\":[{\"id\":\"a\",\"slug\":\"web\"},{\"id\":\"b\"},{\"id\":\"c\"}]"
	    ","
	    "\"pagination\":{\"current\":\"MA==\",\"next\":\"Mw==\",\"totalEntries\":7}}}";
	cJSON *body;
	struct page_result page;
	const char *why;
	CHECK_INT(extract(op, text, &body, &page, &why), 0);
	CHECK(page.items == cJSON_GetObjectItem(cJSON_GetObjectItem(body, "data"), "sources"));
	CHECK_INT(cJSON_GetArraySize(page.items), 3);
	CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(page.items, 0), "id")->valuestring, "a");
	CHECK_STR(page.next, "Mw==");
	CHECK_INT(page.total, 7);
	CHECK(why == NULL);
	CHECK(paginate_more(page.next, 1, 0));
	cJSON_Delete(body);
}

TEST(extract_last_page)
{
	static const char *const last[] = {
	    "{\"data\":{\"things\":[1],\"pagination\":{\"current\":\"Mw==\"}}}",
	    "{\"data\":{\"things\":[1],\"pagination\":{\"current\":\"Mw==\",\"next\":null}}}",
	    "{\"data\":{\"things\":[1],\"pagination\":{\"current\":\"Mw==\",\"next\":\"\"}}}",
	    /* events volume may leave pagination out altogether */
	    "{\"data\":{\"things\":[1]}}",
	    "{\"data\":{\"things\":[1],\"pagination\":null}}",
	};
	for (size_t i = 0; i < sizeof(last) / sizeof(last[0]); i++) {
		cJSON *body;
		struct page_result page;
		const char *why;
		CHECK_INT(extract(&list_things, last[i], &body, &page, &why), 0);
		CHECK(page.next == NULL);
		CHECK_INT(page.total, -1);
		CHECK_INT(cJSON_GetArraySize(page.items), 1);
		CHECK(!paginate_more(page.next, 1, 0));
		cJSON_Delete(body);
	}
}

TEST(extract_empty_page)
{
	cJSON *body;
	struct page_result page;
	const char *why;
	CHECK_INT(extract(&list_things,
	                  "{\"data\":{\"things\":[],\"pagination\":{\"totalEntries\":0}}}", &body,
	                  &page, &why),
	          0);
	CHECK_INT(cJSON_GetArraySize(page.items), 0);
	CHECK_INT(page.total, 0);
	cJSON_Delete(body);
}

TEST(extract_total_entries)
{
	static const char *const odd[] = {
	    "{\"data\":{\"things\":[],\"pagination\":{\"next\":\"x\"}}}",
	    "{\"data\":{\"things\":[],\"pagination\":{\"next\":\"x\",\"totalEntries\":\"7\"}}}",
	    "{\"data\":{\"things\":[],\"pagination\":{\"next\":\"x\",\"totalEntries\":-1}}}",
	    "{\"data\":{\"things\":[],\"pagination\":{\"next\":\"x\",\"totalEntries\":1e300}}}",
	};
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		cJSON *body;
		struct page_result page;
		const char *why;
		CHECK_INT(extract(&list_things, odd[i], &body, &page, &why), 0);
		CHECK_INT(page.total, -1);
		CHECK_STR(page.next, "x");
		cJSON_Delete(body);
	}
}

TEST(extract_errors)
{
	static const struct {
		const char *text;
		const char *why;
	} bad[] = {
	    {"{\"errors\":[{\"type\":\"NotFound\"}]}", "response has no data object"},
	    {"{\"data\":null}", "response has no data object"},
	    {"{\"data\":[1,2]}", "response has no data object"},
	    {"[{\"data\":{}}]", "response has no data object"},
	    {"\"data\"", "response has no data object"},
	    {"{\"data\":{\"things\":{\"a\":1}}}", "response has no items array"},
	    {"{\"data\":{\"things\":null}}", "response has no items array"},
	    {"{\"data\":{\"Things\":[]}}", "response has no items array"},
	    {"{\"data\":{\"things\":[],\"pagination\":{\"next\":5}}}",
	     "pagination.next is not a string"},
	    {"{\"data\":{\"things\":[],\"pagination\":{\"next\":[\"a\"]}}}",
	     "pagination.next is not a string"},
	    {"{\"data\":{\"things\":[],\"pagination\":\"MA==\"}}",
	     "response pagination is not an object"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cJSON *body;
		struct page_result page;
		const char *why;
		CHECK_INT(extract(&list_things, bad[i].text, &body, &page, &why), -1);
		CHECK_STR(why, bad[i].why);
		CHECK(page.items == NULL);
		CHECK(page.next == NULL);
		cJSON_Delete(body);
	}
	/* no parsed body at all (the caller's parse failed) */
	struct page_result page;
	const char *why = NULL;
	CHECK_INT(paginate_extract(&list_things, NULL, &page, &why), -1);
	CHECK_STR(why, "response has no data object");
	/* an operation that is not paginated */
	cJSON *body;
	CHECK_INT(extract(&get_thing, "{\"data\":{\"thing\":{}}}", &body, &page, &why), -1);
	CHECK(why != NULL);
	cJSON_Delete(body);
}

TEST(more)
{
	CHECK(paginate_more("Mw==", 1, 0));
	CHECK(paginate_more("Mw==", 1000000, 0));
	CHECK(paginate_more("Mw==", 2, 3));
	CHECK(!paginate_more("Mw==", 3, 3));
	CHECK(!paginate_more("Mw==", 4, 3));
	CHECK(!paginate_more(NULL, 1, 0));
	CHECK(!paginate_more("", 1, 0));
}

TEST(step)
{
	/* the end: no next cursor, whatever else */
	CHECK_INT(paginate_step(NULL, 3, 0, 100000, 0), PAGE_DONE);
	CHECK_INT(paginate_step("", 3, 0, 100000, 0), PAGE_DONE);
	CHECK_INT(paginate_step(NULL, 100001, 0, 100000, 2), PAGE_DONE);
	/* a new cursor: on */
	CHECK_INT(paginate_step("Mw==", 1, 0, 100000, 0), PAGE_NEXT);
	CHECK_INT(paginate_step("Mw==", 99999, 0, 100000, 0), PAGE_NEXT);
	/* the config's cap, with no paginate.max_pages: more than it fails */
	CHECK_INT(paginate_step("Mw==", 100000, 0, 100000, 0), PAGE_TOO_MANY);
	CHECK_INT(paginate_step("Mw==", 2, 0, 2, 0), PAGE_TOO_MANY);
	/* the job's own max_pages keeps its meaning: stop there, a success, past the cap too */
	CHECK_INT(paginate_step("Mw==", 3, 3, 100000, 0), PAGE_DONE);
	CHECK_INT(paginate_step("Mw==", 2, 3, 100000, 0), PAGE_NEXT);
	CHECK_INT(paginate_step("Mw==", 5, 1000000, 2, 0), PAGE_NEXT);
	/* a cursor used before (the current page's, or an earlier one's) never ends */
	CHECK_INT(paginate_step("c0", 3, 0, 100000, 1), PAGE_REPEAT);
	CHECK_INT(paginate_step("c0", 3, 0, 100000, 3), PAGE_REPEAT);
	CHECK_INT(paginate_step("c0", 2, 10, 100000, 1), PAGE_REPEAT);
	/* the repeat is the reason, ahead of the cap it would otherwise reach */
	CHECK_INT(paginate_step("c0", 100000, 0, 100000, 1), PAGE_REPEAT);
	/* a job that stops at its max_pages does not fetch the repeat, so is done */
	CHECK_INT(paginate_step("c0", 10, 10, 100000, 1), PAGE_DONE);
	/* no cap configured (0): on */
	CHECK_INT(paginate_step("Mw==", 1000000, 0, 0, 0), PAGE_NEXT);
}

/* step_reason - paginate_step_reason as a malloc'd string. */
static char *step_reason(enum page_step step, const char *next, int pages, int max, int seen)
{
	struct strbuf sb = STRBUF_INIT;
	paginate_step_reason(step, next, pages, max, seen, &sb);
	return sb_detach(&sb, NULL);
}

TEST(step_reasons)
{
	char *s = step_reason(PAGE_REPEAT, "c0", 3, 100000, 1);
	CHECK_STR(s, "the API returned cursor \"c0\" again after page 3 (first used for page "
	             "1): stopping an endless export");
	free(s);
	s = step_reason(PAGE_TOO_MANY, "Mw==", 100000, 100000, 0);
	CHECK_STR(s, "more than 100000 pages: raise max_pages in the config or set "
	             "paginate.max_pages");
	free(s);
	/* the server's text is quoted as JSON: no raw quote or control character gets in */
	s = step_reason(PAGE_REPEAT, "a\"b\n", 2, 100000, 2);
	CHECK_STR(s, "the API returned cursor \"a\\\"b\\n\" again after page 2 (first used "
	             "for page 2): stopping an endless export");
	free(s);
	/* a long cursor is cut, and not inside a UTF-8 character */
	char longc[200];
	memset(longc, 'x', sizeof(longc) - 1);
	longc[sizeof(longc) - 1] = '\0';
	memcpy(longc + 63, "\xc3\xa9", 2); /* e-acute across the 64th byte */
	s = step_reason(PAGE_REPEAT, longc, 9, 100000, 4);
	CHECK(strlen(s) < 200);
	CHECK(strstr(s, "(cut) again after page 9 (first used for page 4)") != NULL);
	CHECK(strstr(s, "\xc3") == NULL);
	free(s);
	/* the other steps need no reason */
	s = step_reason(PAGE_NEXT, "Mw==", 1, 100000, 0);
	CHECK_STR(s, "");
	free(s);
	s = step_reason(PAGE_DONE, NULL, 1, 100000, 0);
	CHECK_STR(s, "");
	free(s);
}

TEST(split_days)
{
	struct time_window w[64];
	/* November: 30 days, by one day */
	CHECK_INT(paginate_split(NOV1, NOV1 + 30 * DAY_MS, DAY_MS, w, 64), 30);
	CHECK_INT(w[0].start_ms, NOV1);
	CHECK_INT(w[0].end_ms, NOV1 + DAY_MS);
	CHECK_INT(w[29].start_ms, NOV1 + 29 * DAY_MS);
	CHECK_INT(w[29].end_ms, NOV1 + 30 * DAY_MS);
	int contiguous = 1;
	for (int i = 1; i < 30; i++)
		contiguous &=
		    w[i].start_ms == w[i - 1].end_ms && w[i].end_ms - w[i].start_ms == DAY_MS;
	CHECK(contiguous);
	/* exactly max windows fit; one fewer does not */
	CHECK_INT(paginate_split(NOV1, NOV1 + 30 * DAY_MS, DAY_MS, w, 30), 30);
	CHECK_INT(paginate_split(NOV1, NOV1 + 30 * DAY_MS, DAY_MS, w, 29), -1);
	/* out NULL only counts */
	CHECK_INT(paginate_split(NOV1, NOV1 + 30 * DAY_MS, DAY_MS, NULL, 30), 30);
}

TEST(split_uneven)
{
	struct time_window w[8];
	memset(w, 0, sizeof(w));
	/* 25 hours by 6 hours: four whole windows and a last one of 1 hour */
	CHECK_INT(paginate_split(NOV1, NOV1 + 25 * HOUR_MS, 6 * HOUR_MS, w, 8), 5);
	for (int i = 0; i < 4; i++) {
		CHECK_INT(w[i].start_ms, NOV1 + i * 6 * HOUR_MS);
		CHECK_INT(w[i].end_ms, NOV1 + (i + 1) * 6 * HOUR_MS);
	}
	CHECK_INT(w[4].start_ms, NOV1 + 24 * HOUR_MS);
	CHECK_INT(w[4].end_ms, NOV1 + 25 * HOUR_MS);
	/* nothing written past the count */
	CHECK_INT(w[5].start_ms, 0);
	/* a step longer than the range: one window, the whole range */
	CHECK_INT(paginate_split(NOV1, NOV1 + HOUR_MS, DAY_MS, w, 8), 1);
	CHECK_INT(w[0].start_ms, NOV1);
	CHECK_INT(w[0].end_ms, NOV1 + HOUR_MS);
}

TEST(split_bad_args)
{
	struct time_window w[4];
	CHECK_INT(paginate_split(NOV1, NOV1, DAY_MS, w, 4), -1);
	CHECK_INT(paginate_split(NOV1, NOV1 - 1, DAY_MS, w, 4), -1);
	CHECK_INT(paginate_split(NOV1, NOV1 + DAY_MS, 0, w, 4), -1);
	CHECK_INT(paginate_split(NOV1, NOV1 + DAY_MS, -HOUR_MS, w, 4), -1);
	CHECK_INT(paginate_split(NOV1, NOV1 + DAY_MS, HOUR_MS, w, 4), -1);
	CHECK_INT(paginate_split(NOV1, NOV1 + DAY_MS, HOUR_MS, w, 0), -1);
	CHECK_INT(paginate_split(NOV1, NOV1 + DAY_MS, HOUR_MS, w, -1), -1);
	/* the whole int64 range by 1 ms: counted without overflow, and far too many */
	CHECK_INT(paginate_split(INT64_MIN, INT64_MAX, 1, w, 4), -1);
	CHECK_INT(paginate_split(INT64_MIN, INT64_MAX, INT64_MAX, w, 4), 3);
	CHECK(w[0].start_ms == INT64_MIN);
	CHECK(w[2].end_ms == INT64_MAX);
}

TEST(summary)
{
	char *s = paginate_result_summary(3, 512, 512, "exports/sources.jsonl");
	CHECK_STR(s, "{\"pages\":3,\"items\":512,\"totalEntries\":512,"
	             "\"output\":\"exports/sources.jsonl\"}");
	free(s);
	s = paginate_result_summary(1, 0, -1, NULL);
	CHECK_STR(s, "{\"pages\":1,\"items\":0,\"totalEntries\":null,\"output\":null}");
	free(s);
	/* the output path is escaped, and the result is JSON a parser accepts */
	s = paginate_result_summary(2, 10, -1, "out/we\"ird\\name.jsonl");
	cJSON *j = cJSON_Parse(s);
	CHECK(j != NULL);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "output")),
	          "out/we\"ird\\name.jsonl");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "totalEntries")));
	CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "items")), 10);
	cJSON_Delete(j);
	free(s);
}

/* multi_page - only a paginated operation goes page by page, and then when the job asks
 * or is a fan-out child (whose parent asked). */
TEST(multi_page)
{
	CHECK(paginate_multi_page(1, 1, 0));
	CHECK(paginate_multi_page(1, 0, 1));
	CHECK(paginate_multi_page(1, 1, 1));
	CHECK(!paginate_multi_page(1, 0, 0));
	CHECK(!paginate_multi_page(0, 1, 0));
	CHECK(!paginate_multi_page(0, 0, 1));
}

int main(void)
{
	RUN(extract_list_sources);
	RUN(extract_last_page);
	RUN(extract_empty_page);
	RUN(extract_total_entries);
	RUN(extract_errors);
	RUN(more);
	RUN(step);
	RUN(step_reasons);
	RUN(split_days);
	RUN(split_uneven);
	RUN(split_bad_args);
	RUN(summary);
	RUN(multi_page);
	return tl_finish();
}
