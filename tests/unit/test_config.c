/* test_config - where a job's requests go (its region, else its workspace's), and the
 * base URL of a region. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "strbuf.h"
#include "testlib.h"

/* loaded - a config from JSON text (the test fails loudly if it does not load). */
static struct config loaded(const char *json)
{
	char path[] = "/tmp/test_config.XXXXXX";
	int fd = mkstemp(path);
	struct config cfg;
	struct strbuf err = STRBUF_INIT;
	config_init(&cfg);
	if (fd < 0 || write(fd, json, strlen(json)) != (ssize_t)strlen(json) ||
	    config_load(&cfg, path, &err) < 0) {
		fprintf(stderr, "cannot load %s: %s\n", json, err.buf);
		exit(1);
	}
	close(fd);
	unlink(path);
	sb_release(&err);
	return cfg;
}

TEST(test_job_region)
{
	struct config cfg = loaded("{\"workspaces\": {\"eu\": {\"region\": \"eu1\"}, "
	                           "\"us\": {\"rate\": \"5/s\"}}}");
	CHECK_STR(config_job_region(&cfg, NULL, "eu"), "eu1");      /* the workspace's */
	CHECK_STR(config_job_region(&cfg, "api", "eu"), "api");     /* the job's own wins */
	CHECK_STR(config_job_region(&cfg, NULL, "us"), "api");      /* a workspace without */
	CHECK_STR(config_job_region(&cfg, NULL, "default"), "api"); /* none configured */
	CHECK_STR(config_base_url(&cfg, config_job_region(&cfg, NULL, "eu")),
	          "https://eu1.api.segmentapis.com");
	CHECK_STR(config_base_url(&cfg, "api"), "https://api.segmentapis.com");
	config_release(&cfg);
	cfg = loaded("{\"api_base\": \"http://127.0.0.1:9\", "
	             "\"workspaces\": {\"eu\": {\"region\": \"eu1\"}}}");
	CHECK_STR(config_base_url(&cfg, config_job_region(&cfg, NULL, "eu")), "http://127.0.0.1:9");
	config_release(&cfg);
}

int main(void)
{
	RUN(test_job_region);
	return tl_finish();
}
