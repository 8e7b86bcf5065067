/* config.h - the daemon's settings: defaults, a JSON config file, command-line overrides,
 * and API tokens (from SEGMENT_TOKEN or a per-workspace token file, never from a job).
 *
 * {
 *   "spool": "/var/spool/segspool", "db": "/var/lib/segspool/segspool.db",
 *   "output_dir": "/var/spool/segspool/out", "api_base": "https://api.segmentapis.com",
 *   "workspaces": {"default": {"token_file": "default.token", "region": "api",
 *                              "rate": "10/s", "burst": 10}},
 *   "rate": "10/s", "burst": 10, "endpoint_limits": true,
 *   "http": {"max_in_flight": 16, "connect_timeout_ms": 10000, "timeout_ms": 60000,
 *            "ca_file": null, "max_response_bytes": 67108864},
 *   "max_server_wait": "1h", "max_pages": 100000,
 *   "retry": {"max_attempts": 8, "initial_ms": 1000, "max_ms": 300000, "max_age": "1d"},
 *   "grace_ms": 10000, "archive": "keep", "rescan_ms": 5000, "log_level": "info",
 *   "metrics_file": "/var/lib/prometheus/node-exporter/segspool.prom",
 *   "node": "HOSTNAME:SPOOL", "lease_s": 20
 * }
 */
#ifndef SEGSPOOL_CONFIG_H
#define SEGSPOOL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "retry.h"
#include "util.h"

struct strbuf;

struct workspace_cfg {
	char *name;
	char *token_file;       /* absolute, or relative to the config file's directory */
	char *token_credential; /* a systemd credential: $CREDENTIALS_DIRECTORY/NAME */
	char *region;           /* "api" or "eu1" */
	double rate_per_sec;    /* 0 = the global default */
	double burst;
};

struct config {
	char *config_path; /* NULL when none was read */
	char *spool_dir;
	char *db_path;    /* NULL = SPOOL/segspool.db */
	char *db_name;    /* db_path for messages (config_db_redacted), by config_finish */
	char *output_dir; /* NULL = SPOOL/out */
	char *api_base;   /* NULL = by region */
	char *ca_file;
	char *metrics_file; /* NULL = none; Prometheus text, rewritten every 5 s */
	struct workspace_cfg *workspaces;
	size_t nworkspaces;
	double rate_per_sec; /* per workspace token; <= 0 unlimited */
	double burst;
	int endpoint_limits; /* apply Segment's documented per-endpoint limits */
	int max_in_flight;
	long connect_timeout_ms;
	long timeout_ms;
	int64_t max_response_bytes; /* a decoded body past this is aborted */
	int64_t max_server_wait_ms; /* cap on Retry-After, X-RateLimit-Reset, msBeforeNext */
	int max_pages;              /* pages per paginated job when the job sets no max_pages */
	struct retry_policy retry;
	int64_t grace_ms;
	int keep_archive;
	int64_t rescan_ms;
	int claim_batch; /* files or jobs handled per loop iteration */
	enum log_level log_level;
	/* several daemons on one shared (PostgreSQL) store: this daemon's node name (NULL =
	 * HOSTNAME:SPOOL, set by config_finish) and its lease, renewed by its heartbeat */
	char *node;
	int64_t lease_ms;
	int pipeline; /* PostgreSQL: the daemon's writes pipelined, its commits answered later */
};

void config_init(struct config *cfg);
void config_release(struct config *cfg);
/* config_load - reads a JSON config file over the current values; every problem names
 * the field ("config FILE: /http/max_in_flight: expected a number from 1 to 1024"). */
int config_load(struct config *cfg, const char *path, struct strbuf *err);
/* config_finish - fills derived defaults (db and output paths). The daemon checks
 * api_base with http_url_allowed (https, or http to loopback only). */
int config_finish(struct config *cfg, struct strbuf *err);

/* config_heartbeat_ms - with a shared store, how often the node renews its lease, looks
 * for cancels and sweeps for expired leases: a sixth of the lease. */
int64_t config_heartbeat_ms(const struct config *cfg);

/* config_db_redacted - db as messages may show it: a PostgreSQL URI's or conninfo's
 * password replaced by "***" (a file path is itself). Malloc'd. */
char *config_db_redacted(const char *db);

const struct workspace_cfg *config_workspace(const struct config *cfg, const char *name);
/* config_base_url - api_base if set, else https://api.segmentapis.com or
 * https://eu1.api.segmentapis.com for region "eu1". */
const char *config_base_url(const struct config *cfg, const char *region);
/* config_workspace_rate - the rate (per second, <= 0 unlimited) and burst of a workspace's
 * bucket: its own when it sets them, else the config's. */
void config_workspace_rate(const struct config *cfg, const char *workspace, double *rate,
                           double *burst);
/* config_job_region - where a job's requests go: its own region when it names one, else
 * its workspace's, else "api". */
const char *config_job_region(const struct config *cfg, const char *job_region,
                              const char *workspace);
/* config_token - the workspace's token: its token_file (refused when group or world can
 * read it, or when it is not a regular file), its token_credential (systemd's
 * LoadCredential=, read from $CREDENTIALS_DIRECTORY) or else $SEGMENT_TOKEN. The token is put
 * in out; err never holds it. */
int config_token(const struct config *cfg, const char *workspace, struct strbuf *out,
                 struct strbuf *err);

#endif
