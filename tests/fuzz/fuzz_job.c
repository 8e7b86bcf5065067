/* fuzz_job - the libFuzzer target: any bytes through job_parse_buffer in both formats,
 * every accepted job through the canonical form and back, the problems through their
 * JSON report. Crashes, leaks (ASan) and broken invariants (abort) are the findings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check_round_trip - job_from_json(job_to_json(j)) must print the same text again. */
static void check_round_trip(const struct job *j)
{
	char *text = job_to_json(j), *again;
	struct job back;

	if (job_from_json(text, &back))
		abort();
	again = job_to_json(&back);
	if (strcmp(text, again))
		abort();
	free(again);
	free(text);
	job_release(&back);
}

/* check_document - one format: a result that agrees with itself, then everything freed. */
static void check_document(const char *buf, size_t size, enum job_format fmt)
{
	struct job_list list;
	int rc = job_parse_buffer(buf, size, fmt, &list);

	/* problems and the return value agree; an accepted document has jobs */
	if (rc != (list.nproblems ? 1 : 0) || (rc == 0 && list.njobs == 0))
		abort();
	for (size_t i = 0; i < list.njobs; i++) {
		/* region may be NULL: the workspace's, at send */
		if (!list.jobs[i].op || !list.jobs[i].params || !list.jobs[i].workspace ||
		    (list.jobs[i].region && strcmp(list.jobs[i].region, "api") &&
		     strcmp(list.jobs[i].region, "eu1")))
			abort();
		check_round_trip(&list.jobs[i]);
	}
	for (size_t i = 0; i < list.nproblems; i++)
		if (!list.problems[i].where || !list.problems[i].what || !*list.problems[i].what)
			abort();
	free(job_problems_json(&list, "fuzz.json"));
	job_list_release(&list);
}

/* LLVMFuzzerTestOneInput - the entry point libFuzzer (or replay_main) calls. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	char *text = xstrndup(buf, size);
	struct job job;
	const char *why;

	check_document(buf, size, JOB_FORMAT_JSON);
	check_document(buf, size, JOB_FORMAT_JSONL);
	/* the store's text and the output path come from elsewhere: garbage must be refused */
	if (!job_from_json(text, &job)) {
		check_round_trip(&job);
		job_release(&job);
	}
	if (job_check_output_path(text, &why) ? !why : why != NULL)
		abort();
	free(text);
	return 0;
}
