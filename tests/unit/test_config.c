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

/* the node's name and lease (a shared store): defaults, the file's, the heartbeat's
 * period (which also sweeps), and the lease's bounds */
TEST(test_node_lease)
{
	struct config cfg;
	struct strbuf err = STRBUF_INIT;
	config_init(&cfg);
	config_finish(&cfg, &err);
	CHECK(cfg.lease_ms == 20000);
	CHECK(config_heartbeat_ms(&cfg) == 3333);
	const char *colon = strchr(cfg.node, ':');
	CHECK(colon && colon > cfg.node && colon[1] == '/'); /* HOSTNAME:/abs/spool */
	size_t n = strlen(cfg.node);
	CHECK(n > 6 && strcmp(cfg.node + n - 6, "/spool") == 0);
	config_release(&cfg);
	cfg = loaded("{\"node\": \"eu-1\", \"lease_s\": 12, \"spool\": \"/var/s\"}");
	config_finish(&cfg, &err);
	CHECK_STR(cfg.node, "eu-1");
	CHECK(config_heartbeat_ms(&cfg) == 2000);
	CHECK(cfg.pipeline == 1); /* the default */
	config_release(&cfg);
	cfg = loaded("{\"pipeline\": false}");
	CHECK(cfg.pipeline == 0);
	config_release(&cfg);
	cfg = loaded("{\"spool\": \"/var/s\"}");
	config_finish(&cfg, &err);
	CHECK(strstr(cfg.node, ":/var/s") && strcmp(strstr(cfg.node, ":/var/s"), ":/var/s") == 0);
	config_release(&cfg);
	const char *refused[] = {"{\"lease_s\": 1}", "{\"lease_s\": 3601}", "{\"lease_s\": \"30\"}",
	                         "{\"node\": \"\"}", "{\"pipeline\": 1}"};
	for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
		char path[] = "/tmp/test_config.XXXXXX";
		int fd = mkstemp(path);
		CHECK(fd >= 0 && write(fd, refused[i], strlen(refused[i])) > 0);
		close(fd);
		config_init(&cfg);
		sb_reset(&err);
		CHECK(config_load(&cfg, path, &err) < 0);
		CHECK(strstr(err.buf, strstr(refused[i], "lease")  ? "/lease_s"
		                      : strstr(refused[i], "pipe") ? "/pipeline"
		                                                   : "/node") != NULL);
		config_release(&cfg);
		unlink(path);
	}
	sb_release(&err);
}

/* a database's password never reaches a message */
TEST(test_db_redacted)
{
	static const char *const cases[][2] = {
	    {"spool/segspool.db", "spool/segspool.db"},
	    {"postgresql://seg:s3cret@db.example:5432/segspool",
	     "postgresql://seg:***@db.example:5432/segspool"},
	    {"postgres://seg@127.0.0.1/x?password=s3cret&sslmode=require",
	     "postgres://seg@127.0.0.1/x?password=***&sslmode=require"},
	    {"postgresql://seg:p%40ss@h/d", "postgresql://seg:***@h/d"},
	    {"host=127.0.0.1 password='a \\' b' dbname=x", "host=127.0.0.1 password=*** dbname=x"},
	    {"dbname=x password=s3cret", "dbname=x password=***"},
	    {"host=h mypassword=1", "host=h mypassword=1"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char *r = config_db_redacted(cases[i][0]);
		CHECK_STR(r, cases[i][1]);
		free(r);
	}
}

int main(void)
{
	RUN(test_db_redacted);
	RUN(test_job_region);
	RUN(test_node_lease);
	return tl_finish();
}
