/* test_plan - the estimates of `segspool plan`: requests a job takes (pages from a known
 * total, capped by max_pages, windows of a split), its request line with references
 * left unresolved, and the time under the workspace's and the endpoints' limits. */
#include <math.h>
#include <string.h>

#include "job.h"
#include "plan.h"
#include "strbuf.h"
#include "testlib.h"

/* one_job - the single job of a document, parsed (the test fails loudly if it is not). */
static struct job_list one_job(const char *doc)
{
	struct job_list l = {0};
	int rc = job_parse_buffer(doc, strlen(doc), JOB_FORMAT_JSON, &l);
	CHECK_INT(rc, 0);
	CHECK_INT(l.njobs, 1);
	if (rc || l.njobs != 1) {
		fprintf(stderr, "cannot parse %s\n", doc);
		exit(1);
	}
	return l;
}

TEST(test_requests)
{
	struct job_list l = one_job("{\"op\": \"createSource\", \"params\": {\"slug\": \"a\", "
	                            "\"enabled\": true, \"metadataId\": \"m\"}}");
	struct plan_requests r = plan_job_requests(&l.jobs[0], 12345);
	CHECK_INT(r.n, 1); /* not paginated: a total means nothing */
	CHECK_INT(r.at_least, 0);
	job_list_release(&l);

	l = one_job(
	    "{\"op\": \"listSources\", \"paginate\": {\"max_pages\": 1000, \"count\": 50}}");
	r = plan_job_requests(&l.jobs[0], 120);
	CHECK_INT(r.n, 3); /* 120 items at 50 a page */
	CHECK_INT(r.at_least, 0);
	r = plan_job_requests(&l.jobs[0], -1);
	CHECK_INT(r.n, 1); /* nobody knows yet */
	CHECK_INT(r.at_least, 1);
	r = plan_job_requests(&l.jobs[0], 0);
	CHECK_INT(r.n, 1); /* an empty list is still one request */
	job_list_release(&l);

	l = one_job("{\"op\": \"listSources\", \"paginate\": {\"max_pages\": 2, \"count\": 10}}");
	r = plan_job_requests(&l.jobs[0], 1000);
	CHECK_INT(r.n, 2); /* max_pages caps it */
	r = plan_job_requests(&l.jobs[0], -1);
	CHECK_INT(r.n, 1);
	CHECK_INT(r.at_least, 1);
	job_list_release(&l);

	l = one_job("{\"op\": \"getEventsVolumeFromWorkspace\", \"params\": {\"granularity\": "
	            "\"DAY\", \"startTime\": \"2026-11-01T00:00:00Z\", \"endTime\": "
	            "\"2026-12-01T00:00:00Z\"}, \"split\": \"1d\"}");
	r = plan_job_requests(&l.jobs[0], -1);
	CHECK_INT(r.n, 30); /* a window a day, a page each at least */
	CHECK_INT(r.at_least, 1);
	job_list_release(&l);
}

TEST(test_request_line)
{
	struct strbuf sb = STRBUF_INIT;
	struct job_list l = one_job("{\"op\": \"getSource\", \"params\": {\"sourceId\": \"s1\"}}");
	plan_request_line(&l.jobs[0], &sb);
	CHECK_STR(sb.buf, "GET /sources/s1");
	job_list_release(&l);
	sb_reset(&sb);
	l = one_job("{\"op\": \"raw\", \"params\": {\"method\": \"DELETE\", \"path\": \"/x/y\"}}");
	plan_request_line(&l.jobs[0], &sb);
	CHECK_STR(sb.buf, "DELETE /x/y");
	job_list_release(&l);
	sb_release(&sb);
}

TEST(test_seconds)
{
	CHECK(plan_group_seconds(10, 1.0, 10) == 0);             /* within the burst */
	CHECK(fabs(plan_group_seconds(31, 1.0, 6) - 25) < 1e-9); /* 60/min, burst 6 */
	CHECK(plan_group_seconds(1000, 0, 1) == 0);              /* unlimited */

	struct plan_tally t[4];
	size_t n = 0;
	struct job_list vol = one_job("{\"op\": \"getEventsVolumeFromWorkspace\", \"params\": "
	                              "{\"granularity\": \"DAY\", \"startTime\": "
	                              "\"2026-11-01T00:00:00Z\", \"endTime\": "
	                              "\"2026-11-02T00:00:00Z\"}}");
	struct job_list src = one_job("{\"op\": \"listSources\"}");
	CHECK_INT(plan_add(t, &n, 4, &vol.jobs[0], 31), 0);
	CHECK_INT(plan_add(t, &n, 4, &src.jobs[0], 100), 0);
	CHECK_INT(plan_add(t, &n, 4, &src.jobs[0], 100), 0);
	CHECK_INT(n, 2);
	CHECK_INT(t[1].requests, 200);
	CHECK_INT(plan_add(t, &n, 1, &vol.jobs[0], 1),
	          0); /* a group already there: no room needed */

	struct plan_limits lim = {10.0, 10.0, 1};
	/* the workspace: 232 requests at 10/s after 10 = 22.2 s; the volume endpoint: 32 at
	 * 60/min after 6 = 26 s, the slower */
	CHECK(fabs(plan_layer_seconds(&lim, t, n) - 26) < 1e-9);
	lim.endpoint_limits = 0;
	CHECK(fabs(plan_layer_seconds(&lim, t, n) - 22.2) < 1e-9);
	job_list_release(&vol);
	job_list_release(&src);
}

int main(void)
{
	RUN(test_requests);
	RUN(test_request_line);
	RUN(test_seconds);
	return tl_finish();
}
