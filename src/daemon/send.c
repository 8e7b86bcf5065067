/* send.c - sending: the request built from the operation table, its attempt recorded,
 * then handed to the HTTP client (it leaves after the commit). */
#include "daemon_int.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "config.h"
#include "http.h"
#include "job.h"
#include "paginate.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

/* request_line - "METHOD /path?query" for the attempt row: no host, no token. */
static void request_line(struct strbuf *out, const char *method, const char *url, const char *base)
{
	size_t blen = strlen(base);
	sb_reset(out);
	sb_adds(out, method);
	sb_addch(out, ' ');
	sb_adds(out, strncmp(url, base, blen) == 0 ? url + blen : url);
}

/* send_now - builds the request, records the attempt, submits it. */
void send_now(struct run *r, const struct token *tok)
{
	struct daemon *d = r->d;
	const char *base =
	    config_base_url(d->cfg, config_job_region(d->cfg, r->job.region, r->job.workspace));
	struct built_request req;
	struct strbuf err = STRBUF_INIT;
	built_request_init(&req);
	int count = r->job.page_count;
	if (reconcile_build(r, base, multi_page(r) ? r->row.cursor : NULL,
	                    multi_page(r) && count == 0 &&
	                            !cJSON_GetObjectItemCaseSensitive(r->job.params, "pagination")
	                        ? PAGINATE_DEFAULT_COUNT
	                        : count,
	                    &req, &err) < 0) {
		char *ej = error_json("BuildError", err.buf, 0);
		end_job(r, JS_FAILED, ej, "cannot build the request");
		free(ej);
		goto out;
	}
	request_line(&r->request, req.method, req.url.buf, base);
	r->method = req.method;
	txn(d);
	if (store_attempt_begin(d->st, r->row.id, ++r->row.tries, clock_wall_ms(), r->request.buf,
	                        &r->attempt_id) < 0) {
		write_failed(d, r->row.id, "record an attempt");
		run_free(r); /* nothing is sent: the commit refuses, the job runs after a restart */
		goto out;
	}
	if (r->resolved && store_attempt_resolved(d->st, r->attempt_id, r->resolved) < 0)
		write_failed(d, r->row.id, "record an attempt's references");
	struct http_request hr = {
	    .method = req.method,
	    .url = req.url.buf,
	    .body = req.has_body ? req.body.buf : NULL,
	    .body_len = req.has_body ? req.body.len : 0,
	    .media_type = req.media_type,
	    .bearer_token = tok->value.buf,
	};
	if (http_submit(d->http, &hr, on_response, r, &r->xfer) < 0) {
		struct attempt_end ae = {.outcome = "retry",
		                         .error = "request refused locally",
		                         .retry_after_ms = -1,
		                         .rl_remaining = -1,
		                         .request = r->request.buf};
		if (store_attempt_end(d->st, r->attempt_id, &ae) < 0)
			write_failed(d, r->row.id, "record an attempt");
		metrics_attempt(d->metrics, ae.outcome, 0, 0, 1);
		log_job(LOG_WARN, r->row.id, r->row.op_id, job_state_name(JS_WAITING),
		        "job %lld: the request could not be started; trying again in 1 s",
		        (long long)r->row.id);
		wait_job(r, clock_wall_ms() + 1000, 0, JW_BACKOFF,
		         "the request could not be started");
		goto out;
	}
	d->ninflight++;
out:
	built_request_release(&req);
	sb_release(&err);
}
