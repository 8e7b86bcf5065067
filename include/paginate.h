/* paginate.h - the next page of a paginated job, and time-window fan-out. Pure. */
#ifndef SEGSPOOL_PAGINATE_H
#define SEGSPOOL_PAGINATE_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct op_def;
struct strbuf;

#define PAGINATE_DEFAULT_COUNT 200

struct page_result {
	struct cJSON *items; /* borrowed from the response: data[items_key] (array) */
	const char *next;    /* data.pagination.next, NULL when absent, null or "" */
	int64_t total;       /* data.pagination.totalEntries, -1 if absent */
};

/* paginate_extract - finds the items and the next cursor in a parsed response body
 * ({"data": {...}}). Returns 0, or -1 with a static reason in why. */
int paginate_extract(const struct op_def *op, const struct cJSON *body, struct page_result *out,
                     const char **why);

/* paginate_multi_page - whether a job is read page by page (its items into a JSON Lines
 * output, its pages recorded): its operation paginates (op_paginated) and the job asks to
 * (job_paginates) or is a fan-out child (one time window of its parent's, whose pages are
 * merged into the parent's output). Else its one answer is its result. */
int paginate_multi_page(int op_paginated, int job_paginates, int fanout_child);

/* paginate_more - whether to fetch another page: a next cursor, and under max_pages
 * (0 = no limit) after pages_done pages. */
int paginate_more(const char *next, int pages_done, int max_pages);

enum page_step {
	PAGE_NEXT,     /* fetch the page of the next cursor */
	PAGE_DONE,     /* no next cursor, or the job's own paginate.max_pages reached: success */
	PAGE_REPEAT,   /* the next cursor was used before: the pages would never end */
	PAGE_TOO_MANY, /* past the config's max_pages with no paginate.max_pages: failed */
};

/* paginate_step - after pages_done pages, the last with next: what to do. job_max_pages
 * is the job's paginate.max_pages (0: none, then default_max_pages, the config's, caps
 * the pages); seen_page the page first fetched with next, 0 if none was. */
enum page_step paginate_step(const char *next, int pages_done, int job_max_pages,
                             int default_max_pages, int seen_page);
/* paginate_step_reason - the reason a PAGE_REPEAT or PAGE_TOO_MANY job fails with:
 * "the API returned cursor \"c0\" again after page 3 (first used for page 1): stopping an
 * endless export", "more than 100000 pages: raise max_pages in the config or set
 * paginate.max_pages". Adds nothing for the other steps. */
void paginate_step_reason(enum page_step step, const char *next, int pages_done,
                          int default_max_pages, int seen_page, struct strbuf *out);

struct time_window {
	int64_t start_ms;
	int64_t end_ms;
};

/* paginate_split - [start, end) cut into windows of step_ms (the last may be shorter).
 * Returns the number of windows (at most max), or -1 if end <= start, step <= 0 or
 * more than max windows would be needed. */
int paginate_split(int64_t start_ms, int64_t end_ms, int64_t step_ms, struct time_window *out,
                   int max);

/* paginate_result_summary - the stored result of a paginated job:
 * {"pages":N,"items":M,"totalEntries":T|null,"output":"path"}; caller frees. */
char *paginate_result_summary(int pages, int64_t items, int64_t total, const char *output);

#endif
