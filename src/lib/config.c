/* config.c - defaults, the JSON config file, and tokens. */
#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ratelimit.h"
#include "strbuf.h"

/* config_init - the built-in defaults. */
void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->spool_dir = xstrdup("spool");
	cfg->rate_per_sec = 10;
	cfg->burst = 10;
	cfg->endpoint_limits = 1;
	cfg->pipeline = 1;
	cfg->max_in_flight = 16;
	cfg->connect_timeout_ms = 10000;
	cfg->timeout_ms = 60000;
	cfg->max_response_bytes = 64 * 1024 * 1024;
	cfg->max_server_wait_ms = 3600 * 1000;
	cfg->max_pages = 100000;
	cfg->retry.max_attempts = 8;
	cfg->retry.initial_ms = 1000;
	cfg->retry.max_ms = 300000;
	cfg->retry.max_age_ms = 86400000;
	cfg->grace_ms = 10000;
	cfg->keep_archive = 1;
	cfg->rescan_ms = 5000;
	cfg->claim_batch = 1000;
	cfg->log_level = LOG_INFO;
	cfg->lease_ms = 20000;
}

static void workspaces_release(struct config *cfg)
{
	for (size_t i = 0; i < cfg->nworkspaces; i++) {
		free(cfg->workspaces[i].name);
		free(cfg->workspaces[i].token_file);
		free(cfg->workspaces[i].token_credential);
		free(cfg->workspaces[i].region);
	}
	free(cfg->workspaces);
	cfg->workspaces = NULL;
	cfg->nworkspaces = 0;
}

/* config_release - frees every string. */
void config_release(struct config *cfg)
{
	free(cfg->config_path);
	free(cfg->spool_dir);
	free(cfg->db_path);
	free(cfg->db_name);
	free(cfg->output_dir);
	free(cfg->api_base);
	free(cfg->ca_file);
	free(cfg->metrics_file);
	free(cfg->node);
	workspaces_release(cfg);
	memset(cfg, 0, sizeof(*cfg));
}

static void set_str(char **dst, const char *src)
{
	free(*dst);
	*dst = src ? xstrdup(src) : NULL;
}

static int bad(struct strbuf *err, const char *path, const char *where, const char *expected)
{
	sb_addf(err, "config %s: %s: expected %s", path, where, expected);
	return -1;
}

static int get_string(const cJSON *obj, const char *name, char **dst, const char *path,
                      struct strbuf *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v) || !v->valuestring[0]) {
		struct strbuf w = STRBUF_INIT;
		sb_addf(&w, "/%s", name);
		bad(err, path, w.buf, "a non-empty string");
		sb_release(&w);
		return -1;
	}
	set_str(dst, v->valuestring);
	return 0;
}

static int get_number(const cJSON *obj, const char *name, double lo, double hi, double *dst,
                      const char *where, const char *path, struct strbuf *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi) {
		struct strbuf w = STRBUF_INIT, e = STRBUF_INIT;
		sb_addf(&w, "%s/%s", where, name);
		sb_addf(&e, "a number from %g to %g", lo, hi);
		bad(err, path, w.buf, e.buf);
		sb_release(&w);
		sb_release(&e);
		return -1;
	}
	*dst = v->valuedouble;
	return 0;
}

static int get_rate(const cJSON *obj, const char *where, double *dst, const char *path,
                    struct strbuf *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "rate");
	if (!v)
		return 0;
	if (cJSON_IsNumber(v) && v->valuedouble >= 0) {
		*dst = v->valuedouble;
		return 0;
	}
	if (cJSON_IsString(v) && strcmp(v->valuestring, "off") == 0) {
		*dst = 0;
		return 0;
	}
	if (cJSON_IsString(v) && rl_parse_rate(v->valuestring, dst) == 0)
		return 0;
	struct strbuf w = STRBUF_INIT;
	sb_addf(&w, "%s/rate", where);
	bad(err, path, w.buf, "a rate such as \"10/s\", \"600/min\" or \"off\"");
	sb_release(&w);
	return -1;
}

static const char *const top_fields[] = {
    "spool",      "db",          "output_dir",   "api_base",
    "workspaces", "rate",        "burst",        "endpoint_limits",
    "http",       "retry",       "grace_ms",     "archive",
    "rescan_ms",  "claim_batch", "log_level",    "max_server_wait",
    "max_pages",  "comment",     "metrics_file", "node",
    "lease_s",    "pipeline"};

static int check_fields(const cJSON *obj, const char *const *names, size_t n, const char *where,
                        const char *path, struct strbuf *err)
{
	for (const cJSON *it = obj->child; it; it = it->next) {
		size_t i;
		for (i = 0; i < n; i++)
			if (strcmp(it->string, names[i]) == 0)
				break;
		if (i == n) {
			sb_addf(err, "config %s: %s/%s: unknown setting", path, where, it->string);
			return -1;
		}
	}
	return 0;
}

static int load_workspaces(struct config *cfg, const cJSON *ws, const char *path,
                           struct strbuf *err)
{
	static const char *const fields[] = {"token_file", "token_credential", "region", "rate",
	                                     "burst",      "comment"};
	if (!cJSON_IsObject(ws))
		return bad(err, path, "/workspaces", "an object of workspace name to settings");
	workspaces_release(cfg);
	size_t n = (size_t)cJSON_GetArraySize(ws);
	cfg->workspaces = xcalloc(n, sizeof(*cfg->workspaces));
	for (const cJSON *it = ws->child; it; it = it->next) {
		struct workspace_cfg *w = &cfg->workspaces[cfg->nworkspaces++];
		w->name = xstrdup(it->string);
		struct strbuf where = STRBUF_INIT;
		sb_addf(&where, "/workspaces/%s", it->string);
		int rc = -1;
		if (!cJSON_IsObject(it))
			bad(err, path, where.buf, "an object");
		else if (check_fields(it, fields, ARRAY_SIZE(fields), where.buf, path, err) == 0 &&
		         get_string(it, "token_file", &w->token_file, path, err) == 0 &&
		         get_string(it, "token_credential", &w->token_credential, path, err) == 0 &&
		         get_string(it, "region", &w->region, path, err) == 0 &&
		         get_rate(it, where.buf, &w->rate_per_sec, path, err) == 0 &&
		         get_number(it, "burst", 1, 1e6, &w->burst, where.buf, path, err) == 0)
			rc = 0;
		if (rc == 0 && w->region && strcmp(w->region, "api") && strcmp(w->region, "eu1")) {
			struct strbuf r = STRBUF_INIT;
			sb_addf(&r, "%s/region", where.buf);
			rc = bad(err, path, r.buf, "\"api\" or \"eu1\"");
			sb_release(&r);
		}
		if (rc == 0 && w->token_file && w->token_credential) {
			sb_addf(err,
			        "config %s: %s: both token_file and token_credential; keep one",
			        path, where.buf);
			rc = -1;
		}
		/* a systemd credential name: one file name in $CREDENTIALS_DIRECTORY */
		if (rc == 0 && w->token_credential &&
		    (strchr(w->token_credential, '/') || !strcmp(w->token_credential, ".") ||
		     !strcmp(w->token_credential, ".."))) {
			struct strbuf r = STRBUF_INIT;
			sb_addf(&r, "%s/token_credential", where.buf);
			rc = bad(err, path, r.buf,
			         "a credential name (LoadCredential=NAME:...), no '/'");
			sb_release(&r);
		}
		if (rc == 0 && w->token_file && w->token_file[0] != '/' && cfg->config_path) {
			char *copy = xstrdup(cfg->config_path);
			struct strbuf abs = STRBUF_INIT;
			sb_addf(&abs, "%s/%s", dirname(copy), w->token_file);
			free(w->token_file);
			w->token_file = sb_detach(&abs, NULL);
			free(copy);
		}
		sb_release(&where);
		if (rc)
			return -1;
	}
	return 0;
}

static int load_http(struct config *cfg, const cJSON *h, const char *path, struct strbuf *err)
{
	static const char *const fields[] = {"max_in_flight", "connect_timeout_ms", "timeout_ms",
	                                     "ca_file", "max_response_bytes"};
	double inflight = cfg->max_in_flight, cto = (double)cfg->connect_timeout_ms,
	       to = (double)cfg->timeout_ms, maxbody = (double)cfg->max_response_bytes;
	if (!cJSON_IsObject(h))
		return bad(err, path, "/http", "an object");
	if (check_fields(h, fields, ARRAY_SIZE(fields), "/http", path, err) ||
	    get_number(h, "max_in_flight", 1, 1024, &inflight, "/http", path, err) ||
	    get_number(h, "connect_timeout_ms", 100, 600000, &cto, "/http", path, err) ||
	    get_number(h, "timeout_ms", 100, 3600000, &to, "/http", path, err) ||
	    get_number(h, "max_response_bytes", 4096, 4294967296.0, &maxbody, "/http", path, err) ||
	    get_string(h, "ca_file", &cfg->ca_file, path, err))
		return -1;
	cfg->max_in_flight = (int)inflight;
	cfg->connect_timeout_ms = (long)cto;
	cfg->timeout_ms = (long)to;
	cfg->max_response_bytes = (int64_t)maxbody;
	return 0;
}

static int load_retry(struct config *cfg, const cJSON *r, const char *path, struct strbuf *err)
{
	static const char *const fields[] = {"max_attempts", "initial_ms", "max_ms", "max_age"};
	double attempts = cfg->retry.max_attempts, initial = (double)cfg->retry.initial_ms,
	       max = (double)cfg->retry.max_ms;
	if (!cJSON_IsObject(r))
		return bad(err, path, "/retry", "an object");
	if (check_fields(r, fields, ARRAY_SIZE(fields), "/retry", path, err) ||
	    get_number(r, "max_attempts", 1, RETRY_MAX_ATTEMPTS, &attempts, "/retry", path, err) ||
	    get_number(r, "initial_ms", 1, (double)RETRY_MAX_INITIAL_MS, &initial, "/retry", path,
	               err) ||
	    get_number(r, "max_ms", 1, (double)RETRY_MAX_BACKOFF_MS, &max, "/retry", path, err))
		return -1;
	const cJSON *age = cJSON_GetObjectItemCaseSensitive(r, "max_age");
	if (age && !(cJSON_IsString(age) &&
	             parse_duration_ms(age->valuestring, &cfg->retry.max_age_ms) == 0))
		return bad(err, path, "/retry/max_age", "a duration such as \"1d\" or \"6h\"");
	cfg->retry.max_attempts = (int)attempts;
	cfg->retry.initial_ms = (int64_t)initial;
	cfg->retry.max_ms = (int64_t)max;
	if (cfg->retry.max_ms < cfg->retry.initial_ms)
		return bad(err, path, "/retry/max_ms", "a value not below initial_ms");
	return 0;
}

static int load_root(struct config *cfg, const cJSON *root, const char *path, struct strbuf *err)
{
	double grace = (double)cfg->grace_ms, rescan = (double)cfg->rescan_ms,
	       batch = cfg->claim_batch, pages = cfg->max_pages,
	       lease = (double)cfg->lease_ms / 1000.0;
	const cJSON *v;
	if (!cJSON_IsObject(root))
		return bad(err, path, "the document", "a JSON object");
	if (check_fields(root, top_fields, ARRAY_SIZE(top_fields), "", path, err) ||
	    get_string(root, "spool", &cfg->spool_dir, path, err) ||
	    get_string(root, "db", &cfg->db_path, path, err) ||
	    get_string(root, "output_dir", &cfg->output_dir, path, err) ||
	    get_string(root, "api_base", &cfg->api_base, path, err) ||
	    get_string(root, "metrics_file", &cfg->metrics_file, path, err) ||
	    get_string(root, "node", &cfg->node, path, err) ||
	    get_rate(root, "", &cfg->rate_per_sec, path, err) ||
	    get_number(root, "burst", 1, 1e6, &cfg->burst, "", path, err) ||
	    get_number(root, "grace_ms", 0, 3600000, &grace, "", path, err) ||
	    get_number(root, "rescan_ms", 100, 3600000, &rescan, "", path, err) ||
	    get_number(root, "claim_batch", 1, 100000, &batch, "", path, err) ||
	    get_number(root, "max_pages", 1, 100000000, &pages, "", path, err) ||
	    get_number(root, "lease_s", 2, 3600, &lease, "", path, err))
		return -1;
	cfg->lease_ms = (int64_t)(lease * 1000.0);
	cfg->max_pages = (int)pages;
	if ((v = cJSON_GetObjectItemCaseSensitive(root, "max_server_wait")) &&
	    !(cJSON_IsString(v) &&
	      parse_duration_ms(v->valuestring, &cfg->max_server_wait_ms) == 0 &&
	      cfg->max_server_wait_ms >= 1000))
		return bad(err, path, "/max_server_wait",
		           "a duration of at least 1s, such as \"1h\"");
	cfg->grace_ms = (int64_t)grace;
	cfg->rescan_ms = (int64_t)rescan;
	cfg->claim_batch = (int)batch;
	if ((v = cJSON_GetObjectItemCaseSensitive(root, "endpoint_limits"))) {
		if (!cJSON_IsBool(v))
			return bad(err, path, "/endpoint_limits", "true or false");
		cfg->endpoint_limits = cJSON_IsTrue(v);
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(root, "pipeline"))) {
		if (!cJSON_IsBool(v))
			return bad(err, path, "/pipeline", "true or false");
		cfg->pipeline = cJSON_IsTrue(v);
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(root, "archive"))) {
		if (!cJSON_IsString(v) ||
		    (strcmp(v->valuestring, "keep") && strcmp(v->valuestring, "delete")))
			return bad(err, path, "/archive", "\"keep\" or \"delete\"");
		cfg->keep_archive = strcmp(v->valuestring, "keep") == 0;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(root, "log_level"))) {
		if (!cJSON_IsString(v) || log_parse_level(v->valuestring, &cfg->log_level))
			return bad(err, path, "/log_level",
			           "\"debug\", \"info\", \"warn\" or \"error\"");
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(root, "workspaces")) &&
	    load_workspaces(cfg, v, path, err))
		return -1;
	if ((v = cJSON_GetObjectItemCaseSensitive(root, "http")) && load_http(cfg, v, path, err))
		return -1;
	if ((v = cJSON_GetObjectItemCaseSensitive(root, "retry")) && load_retry(cfg, v, path, err))
		return -1;
	return 0;
}

/* config_load - reads PATH over the current settings. */
int config_load(struct config *cfg, const char *path, struct strbuf *err)
{
	struct strbuf text = STRBUF_INIT, why = STRBUF_INIT;
	int rc = -1;
	if (read_file_at(AT_FDCWD, path, 1024 * 1024, &text, &why) < 0) {
		sb_addf(err, "config %s: %s", path, why.buf);
		goto out;
	}
	set_str(&cfg->config_path, path);
	cJSON *root = cJSON_ParseWithLength(text.buf, text.len);
	if (!root) {
		const char *at = cJSON_GetErrorPtr();
		long off =
		    at && at >= text.buf && at <= text.buf + text.len ? (long)(at - text.buf) : -1;
		sb_addf(err, "config %s: not valid JSON (near byte %ld)", path, off);
		goto out;
	}
	rc = load_root(cfg, root, path, err);
	cJSON_Delete(root);
out:
	sb_release(&text);
	sb_release(&why);
	return rc;
}

/* config_finish - derived paths. */
int config_finish(struct config *cfg, struct strbuf *err)
{
	(void)err;
	/* request paths start with '/': "https://host/" + "/sources" would put "//" on the wire */
	size_t n = cfg->api_base ? strlen(cfg->api_base) : 0;
	while (n > 1 && cfg->api_base[n - 1] == '/')
		cfg->api_base[--n] = '\0';
	if (!cfg->db_path) {
		struct strbuf p = STRBUF_INIT;
		sb_addf(&p, "%s/segspool.db", cfg->spool_dir);
		cfg->db_path = sb_detach(&p, NULL);
	}
	free(cfg->db_name);
	cfg->db_name = config_db_redacted(cfg->db_path);
	if (!cfg->output_dir) {
		struct strbuf p = STRBUF_INIT;
		sb_addf(&p, "%s/out", cfg->spool_dir);
		cfg->output_dir = sb_detach(&p, NULL);
	}
	if (!cfg->node) {
		/* stable across restarts, and one per spool on a host (its lock) */
		char host[256] = "localhost";
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		/* the spool as an absolute path, whether or not it exists yet */
		char cwd[4096];
		struct strbuf p = STRBUF_INIT;
		sb_addf(&p, "%s:", host);
		if (cfg->spool_dir[0] != '/' && getcwd(cwd, sizeof(cwd)))
			sb_addf(&p, "%s/", cwd);
		sb_adds(&p, cfg->spool_dir);
		cfg->node = sb_detach(&p, NULL);
	}
	return 0;
}

/* config_heartbeat_ms - see config.h: a heartbeat may be missed four times before the
 * lease runs out, and each heartbeat also sweeps for expired leases, so a dead node's jobs
 * are back within a lease and a sixth: 23.3 s with the default of 20 s (issue 15: 30). */
int64_t config_heartbeat_ms(const struct config *cfg)
{
	return cfg->lease_ms / 6;
}

/* config_db_redacted - see config.h: "postgresql://u:SECRET@h/db" -> "postgresql://u:***@h/db",
 * "host=h password='a b'" and "...?password=x&..." -> password=***. */
char *config_db_redacted(const char *db)
{
	struct strbuf out = STRBUF_INIT;
	const char *p = db, *scheme = strstr(db, "://");
	if (scheme && !strchr(db, ' ')) {
		const char *auth = scheme + 3;
		size_t alen = strcspn(auth, "/?#");
		const char *at = NULL;
		for (const char *q = auth; q < auth + alen; q++)
			if (*q == '@')
				at = q;
		const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon) {
			sb_add(&out, db, (size_t)(colon + 1 - db));
			sb_adds(&out, "***");
			p = at;
		}
	}
	while (*p) {
		const char *hit = strstr(p, "password=");
		int starts = hit && (hit == db || strchr(" ?&\t", hit[-1]));
		if (!hit) {
			sb_adds(&out, p);
			break;
		}
		hit += strlen("password=");
		sb_add(&out, p, (size_t)(hit - p));
		if (!starts) {
			p = hit;
			continue;
		}
		sb_adds(&out, "***");
		if (*hit == '\'') { /* a quoted conninfo value, \' inside it */
			for (hit++; *hit && *hit != '\''; hit++)
				if (*hit == '\\' && hit[1])
					hit++;
			if (*hit)
				hit++;
		} else {
			hit += strcspn(hit, " \t&#");
		}
		p = hit;
	}
	return sb_detach(&out, NULL);
}

/* config_workspace - settings of a named workspace, or NULL. */
const struct workspace_cfg *config_workspace(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nworkspaces; i++)
		if (strcmp(cfg->workspaces[i].name, name) == 0)
			return &cfg->workspaces[i];
	return NULL;
}

/* config_workspace_rate - the workspace's rate and burst, else the config's. */
void config_workspace_rate(const struct config *cfg, const char *workspace, double *rate,
                           double *burst)
{
	const struct workspace_cfg *w = config_workspace(cfg, workspace);
	*rate = w && w->rate_per_sec > 0 ? w->rate_per_sec : cfg->rate_per_sec;
	*burst = w && w->burst > 0 ? w->burst : cfg->burst;
}

/* config_job_region - the job's region, else its workspace's, else the US API. */
const char *config_job_region(const struct config *cfg, const char *job_region,
                              const char *workspace)
{
	const struct workspace_cfg *w = config_workspace(cfg, workspace);
	return job_region ? job_region : w && w->region ? w->region : "api";
}

/* config_base_url - where requests of a region go. */
const char *config_base_url(const struct config *cfg, const char *region)
{
	if (cfg->api_base)
		return cfg->api_base;
	if (region && strcmp(region, "eu1") == 0)
		return "https://eu1.api.segmentapis.com";
	return "https://api.segmentapis.com";
}

/* trim_token - drops trailing white space; -1 when what is left is not one token (a
 * second line, a space, a control character), which no Authorization header can carry. */
static int trim_token(struct strbuf *t)
{
	while (t->len && (t->buf[t->len - 1] == '\n' || t->buf[t->len - 1] == '\r' ||
	                  t->buf[t->len - 1] == ' ' || t->buf[t->len - 1] == '\t'))
		sb_setlen(t, t->len - 1);
	for (size_t i = 0; i < t->len; i++)
		if ((unsigned char)t->buf[i] <= ' ' || t->buf[i] == 0x7f)
			return -1;
	return 0;
}

/* read_token - the token in the file path, `what` (e.g. "token file X") saying in errors
 * which one; with private_only, refused unless only its owner can read it. */
static int read_token(const char *path, const char *what, const char *workspace, int private_only,
                      struct strbuf *out, struct strbuf *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0) {
		sb_addf(err, "cannot open %s of workspace %s: %s", what, workspace,
		        strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		sb_addf(err, "%s of workspace %s is not a regular file", what, workspace);
		close(fd);
		return -1;
	}
	if (private_only && (st.st_mode & 077)) {
		sb_addf(err,
		        "%s of workspace %s can be read by group or others (mode %04o); refusing "
		        "it: run chmod 600 %s",
		        what, workspace, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -1;
	}
	close(fd);
	struct strbuf why = STRBUF_INIT;
	if (read_file_at(AT_FDCWD, path, 64 * 1024, out, &why) < 0) {
		sb_addf(err, "%s: %s", what, why.buf);
		sb_release(&why);
		return -1;
	}
	sb_release(&why);
	if (trim_token(out) < 0) {
		sb_addf(err,
		        "%s of workspace %s holds more than one line or a space or control "
		        "character; it must hold the token alone",
		        what, workspace);
		return -1;
	}
	if (!out->len) {
		sb_addf(err, "%s of workspace %s is empty", what, workspace);
		return -1;
	}
	return 0;
}

/* config_token - the token of a workspace, from its file, its systemd credential or the
 * environment. */
int config_token(const struct config *cfg, const char *workspace, struct strbuf *out,
                 struct strbuf *err)
{
	const struct workspace_cfg *w = config_workspace(cfg, workspace);
	struct strbuf what = STRBUF_INIT, path = STRBUF_INIT;
	int rc;
	if (w && w->token_file) {
		sb_addf(&what, "token file %s", w->token_file);
		rc = read_token(w->token_file, what.buf, workspace, 1, out, err);
		sb_release(&what);
		return rc;
	}
	if (w && w->token_credential) {
		const char *dir = getenv("CREDENTIALS_DIRECTORY");
		if (!dir || !*dir) {
			sb_addf(err,
			        "workspace %s takes its token from credential %s, but "
			        "CREDENTIALS_DIRECTORY is not set (systemd sets it for a unit with "
			        "LoadCredential=%s:FILE)",
			        workspace, w->token_credential, w->token_credential);
			return -1;
		}
		sb_addf(&path, "%s/%s", dir, w->token_credential);
		sb_addf(&what, "credential %s (%s)", w->token_credential, path.buf);
		/* no mode check: systemd's credential directory is the service's alone, and the
		 * ACL that lets the service user read a file shows as group bits (0440) */
		rc = read_token(path.buf, what.buf, workspace, 0, out, err);
		sb_release(&what);
		sb_release(&path);
		return rc;
	}
	const char *env = getenv("SEGMENT_TOKEN");
	if (!env || !*env) {
		sb_addf(err,
		        "no token for workspace %s: set SEGMENT_TOKEN or give the workspace a "
		        "token_file or token_credential in the config",
		        workspace);
		return -1;
	}
	sb_adds(out, env);
	if (trim_token(out) < 0) {
		sb_addf(err, "SEGMENT_TOKEN holds more than one line or a space or control "
		             "character; it must hold the token alone");
		return -1;
	}
	return 0;
}
