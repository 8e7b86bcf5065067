/* run.c - a claimed job's lifetime: linked in at the claim, freed at its next state; what
 * the steps ask of it (its retry policy, whether it has pages); the API's error envelope. */
#include "daemon_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "config.h"
#include "job.h"
#include "paginate.h"
#include "retry.h"
#include "strbuf.h"
#include "util.h"

void run_link(struct daemon *d, struct run *r)
{
	r->next = d->runs;
	r->prev = NULL;
	if (d->runs)
		d->runs->prev = r;
	d->runs = r;
	d->nruns++;
}

/* run_free - unlinks and frees a run whose job has reached its next state. */
void run_free(struct run *r)
{
	struct daemon *d = r->d;
	if (r->prev)
		r->prev->next = r->next;
	else
		d->runs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	d->nruns--;
	free(r->resolved);
	if (r->gated_req) { /* dropped at a reset before its commit was answered */
		built_request_release(r->gated_req);
		free(r->gated_req);
	}
	if (r->held) {
		struct run **p = &d->held_head, *prev = NULL;
		while (*p && *p != r)
			prev = *p, p = &(*p)->held_next;
		if (*p) {
			*p = r->held_next;
			if (d->held_tail == r)
				d->held_tail = prev;
			d->nheld--;
		}
		log_job(LOG_ERROR, r->row.id, r->row.op_id, NULL,
		        "job %lld: an answer held for the locked store is dropped at exit; "
		        "its attempt is recovered at the next start (interrupted, or unknown for a "
		        "mutation)",
		        (long long)r->row.id);
		sb_release(&r->held->body);
		free(r->held);
	}
	reconcile_free(r);
	if (r->job_parsed)
		job_release(&r->job);
	job_row_release(&r->row);
	sb_release(&r->request);
	free(r);
}

struct run *run_find(struct daemon *d, int64_t id)
{
	for (struct run *r = d->runs; r; r = r->next)
		if (r->row.id == id)
			return r;
	return NULL;
}

/* policy_of - the job's retry settings over the config's defaults. */
struct retry_policy policy_of(const struct daemon *d, const struct job *j)
{
	struct retry_policy own = {.max_attempts = j->max_attempts,
	                           .initial_ms = j->initial_ms,
	                           .max_ms = j->max_ms,
	                           .max_age_ms = j->max_age_ms};
	return retry_policy_merge(&d->cfg->retry, &own);
}

/* multi_page - whether the job is read page by page (paginate_multi_page). */
int multi_page(const struct run *r)
{
	return paginate_multi_page(r->job.op->paginated, r->job.paginate != PAGINATE_NONE,
	                           r->row.parent_id != 0);
}

/* error_json - {"errors":[{"type":...,"message":...}]}, the API's own envelope shape. */
char *error_json(const char *type, const char *message, int status)
{
	struct strbuf sb = STRBUF_INIT;
	sb_adds(&sb, "{\"errors\":[{\"type\":");
	sb_add_json_string(&sb, type);
	sb_adds(&sb, ",\"message\":");
	sb_add_json_string(&sb, message);
	if (status)
		sb_addf(&sb, ",\"status\":%d", status);
	sb_adds(&sb, "}]}");
	return sb_detach(&sb, NULL);
}

/* add_capped - s escaped to one line (log_escape), cut to max bytes with "...". */
static void add_capped(struct strbuf *out, const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n <= max) {
		log_escape(out, s, n);
		return;
	}
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--; /* not inside a UTF-8 sequence */
	log_escape(out, s, max);
	sb_adds(out, "...");
}

/* api_answer - what the API said, in one line for logs and reasons: "HTTP 404 NotFound:
 * source metadata X not found (field metadataId)", from err_json (body_error's: the
 * API's envelope, or one made for a transport error or a body that is not one). The
 * body is redacted already (http.c); control characters are escaped, long texts cut. */
void api_answer(struct strbuf *out, int status, const char *err_json)
{
	char prefix[32] = "";
	if (status > 0)
		snprintf(prefix, sizeof(prefix), "HTTP %d", status);
	cJSON *j = err_json ? cJSON_Parse(err_json) : NULL;
	const cJSON *errors = cJSON_GetObjectItemCaseSensitive(j, "errors");
	const cJSON *e = cJSON_IsArray(errors) ? cJSON_GetArrayItem(errors, 0) : j;
	const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "type"));
	const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "message"));
	const char *field = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "field"));
	if (!msg)
		msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "error"));
	size_t start = out->len;
	if (msg && prefix[0] && strncmp(msg, prefix, strlen(prefix)) == 0) {
		add_capped(out, msg, 400); /* our own text, which names the status already */
	} else {
		sb_adds(out, prefix);
		/* HttpError is the type body_error gives what is not the API's envelope */
		if (type && *type && strcmp(type, "HttpError") != 0) {
			if (out->len > start)
				sb_addch(out, ' ');
			add_capped(out, type, 64);
		}
		if (msg && *msg) {
			if (out->len > start)
				sb_adds(out, ": ");
			add_capped(out, msg, 400);
		}
	}
	if (field && *field) {
		sb_adds(out, " (field ");
		add_capped(out, field, 64);
		sb_addch(out, ')');
	}
	int more = cJSON_IsArray(errors) ? cJSON_GetArraySize(errors) - 1 : 0;
	if (more > 0)
		sb_addf(out, " (and %d more error%s)", more, more > 1 ? "s" : "");
	if (out->len == start)
		sb_adds(out, "no answer");
	cJSON_Delete(j);
}

/* add_last_answer - "; the last answer: HTTP 429 TooManyRequests: ..." for a job that
 * ends without an answer in hand (held by a rate limit until its max age passed), from
 * its last recorded attempt; nothing when it has none. */
void add_last_answer(struct run *r, struct strbuf *out)
{
	int status;
	char *error, *body;
	if (r->row.tries == 0 || store_last_attempt(r->d->st, r->row.id, &status, &error, &body))
		return;
	cJSON *j = body ? cJSON_Parse(body) : NULL;
	char *ej = cJSON_IsObject(j) ? NULL : error_json("HttpError", error ? error : "", status);
	if (status || error) {
		sb_adds(out, "; the last answer: ");
		api_answer(out, status, ej ? ej : body);
	}
	cJSON_Delete(j);
	free(ej);
	free(error);
	free(body);
}
