/* paginate.c - the items and next cursor of a page, and time-window fan-out. Pure. */
#include "paginate.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "catalog.h"
#include "strbuf.h"
#include "util.h"

/* largest double below 2^63: a totalEntries above it is not a count we can hold */
#define TOTAL_MAX 9.2233720368547748e18

/* next_cursor - data.pagination.next: a non-empty string, NULL at the end, or -1. */
static int next_cursor(const cJSON *pagination, const char **next, const char **why)
{
	*next = NULL;
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(pagination, "next");
	if (!n || cJSON_IsNull(n))
		return 0;
	if (!cJSON_IsString(n)) {
		*why = "pagination.next is not a string";
		return -1;
	}
	if (n->valuestring[0])
		*next = n->valuestring;
	return 0;
}

/* total_entries - data.pagination.totalEntries as a count, or -1 when absent or odd. */
static int64_t total_entries(const cJSON *pagination)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(pagination, "totalEntries");
	if (!cJSON_IsNumber(t) || !(t->valuedouble >= 0) || t->valuedouble > TOTAL_MAX)
		return -1;
	return (int64_t)t->valuedouble;
}

/* paginate_extract - the page's items, next cursor and total from {"data": {...}}. */
int paginate_extract(const struct op_def *op, const struct cJSON *body, struct page_result *out,
                     const char **why)
{
	out->items = NULL;
	out->next = NULL;
	out->total = -1;
	if (!op || !op->items_key) {
		*why = "operation has no items to page through";
		return -1;
	}
	const cJSON *data =
	    cJSON_IsObject(body) ? cJSON_GetObjectItemCaseSensitive(body, "data") : NULL;
	if (!cJSON_IsObject(data)) {
		*why = "response has no data object";
		return -1;
	}
	cJSON *items = cJSON_GetObjectItemCaseSensitive(data, op->items_key);
	if (!cJSON_IsArray(items)) {
		*why = "response has no items array";
		return -1;
	}
	/* pagination is optional (events volume): without it, this page is the last */
	const cJSON *pagination = cJSON_GetObjectItemCaseSensitive(data, "pagination");
	if (pagination && !cJSON_IsNull(pagination) && !cJSON_IsObject(pagination)) {
		*why = "response pagination is not an object";
		return -1;
	}
	if (cJSON_IsObject(pagination)) {
		if (next_cursor(pagination, &out->next, why))
			return -1;
		out->total = total_entries(pagination);
	}
	out->items = items;
	return 0;
}

/* paginate_multi_page - page by page: a paginated operation a job or its parent asked
 * to page through; see paginate.h. */
int paginate_multi_page(int op_paginated, int job_paginates, int fanout_child)
{
	return op_paginated && (job_paginates || fanout_child);
}

/* paginate_more - a next cursor, and pages left under max_pages (0 or less: no limit). */
int paginate_more(const char *next, int pages_done, int max_pages)
{
	if (!next || !*next)
		return 0;
	return max_pages <= 0 || pages_done < max_pages;
}

/* paginate_step - fetch the next page, finish, or fail on a repeated cursor or too many
 * pages. The repeat comes first: it is the reason the pages would never end. */
enum page_step paginate_step(const char *next, int pages_done, int job_max_pages,
                             int default_max_pages, int seen_page)
{
	if (!next || !*next)
		return PAGE_DONE;
	if (job_max_pages > 0)
		return pages_done < job_max_pages ? (seen_page > 0 ? PAGE_REPEAT : PAGE_NEXT)
		                                  : PAGE_DONE;
	if (seen_page > 0)
		return PAGE_REPEAT;
	if (default_max_pages > 0 && pages_done >= default_max_pages)
		return PAGE_TOO_MANY;
	return PAGE_NEXT;
}

/* paginate_step_reason - why the job fails, for PAGE_REPEAT and PAGE_TOO_MANY. */
void paginate_step_reason(enum page_step step, const char *next, int pages_done,
                          int default_max_pages, int seen_page, struct strbuf *out)
{
	if (step == PAGE_REPEAT) {
		sb_adds(out, "the API returned cursor ");
		/* a cursor is the server's text: quoted and escaped, and a long one cut short */
		size_t len = strlen(next);
		if (len > 64) {
			len = 64;
			/* not inside a UTF-8 sequence */
			while (len > 0 && ((unsigned char)next[len] & 0xC0) == 0x80)
				len--;
			char *cut = xstrndup(next, len);
			sb_add_json_string(out, cut);
			free(cut);
			sb_adds(out, " (cut)");
		} else {
			sb_add_json_string(out, next);
		}
		sb_addf(out,
		        " again after page %d (first used for page %d): stopping an endless "
		        "export",
		        pages_done, seen_page);
	} else if (step == PAGE_TOO_MANY) {
		sb_addf(out,
		        "more than %d pages: raise max_pages in the config or set "
		        "paginate.max_pages",
		        default_max_pages);
	}
}

/*
 * paginate_split - [start, end) in windows of step_ms aligned to start. out may be NULL
 * to count the windows only.
 */
int paginate_split(int64_t start_ms, int64_t end_ms, int64_t step_ms, struct time_window *out,
                   int max)
{
	if (end_ms <= start_ms || step_ms <= 0)
		return -1;
	/* end > start, so the difference fits in 64 unsigned bits whatever the signs */
	uint64_t span = (uint64_t)end_ms - (uint64_t)start_ms;
	uint64_t step = (uint64_t)step_ms;
	uint64_t n = span / step + (span % step != 0);
	if (max < 0 || n > (uint64_t)max)
		return -1;
	if (!out)
		return (int)n;
	int64_t t = start_ms;
	for (uint64_t i = 0; i < n; i++) {
		out[i].start_ms = t;
		/* the last window stops at end; earlier ones are a whole step, below end */
		out[i].end_ms = i + 1 == n ? end_ms : t + step_ms;
		t = out[i].end_ms;
	}
	return (int)n;
}

/* paginate_result_summary - {"pages":N,"items":M,"totalEntries":T|null,"output":P|null}. */
char *paginate_result_summary(int pages, int64_t items, int64_t total, const char *output)
{
	struct strbuf sb = STRBUF_INIT;
	sb_addf(&sb, "{\"pages\":%d,\"items\":%lld,\"totalEntries\":", pages, (long long)items);
	if (total >= 0)
		sb_addf(&sb, "%lld", (long long)total);
	else
		sb_adds(&sb, "null");
	sb_adds(&sb, ",\"output\":");
	if (output)
		sb_add_json_string(&sb, output);
	else
		sb_adds(&sb, "null");
	sb_addch(&sb, '}');
	return sb_detach(&sb, NULL);
}
