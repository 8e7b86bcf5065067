/* send.c - sending: the request built from the operation table, its attempt recorded,
 * then handed to the HTTP client (it leaves after the commit). */
#include "daemon_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
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

/* end_unsent - the attempt of a request that never went, closed as outcome says. */
static void end_unsent(struct run *r, const char *outcome, const char *why)
{
	struct attempt_end ae = {.outcome = outcome,
	                         .error = why,
	                         .retry_after_ms = -1,
	                         .rl_remaining = -1,
	                         .request = r->request.buf};
	txn(r->d); /* a gated request goes after its commit, outside any transaction */
	if (store_attempt_end(r->d->st, r->attempt_id, &ae) < 0)
		write_failed(r->d, r->row.id, "record an attempt");
}

/* submit - the request to the HTTP client; one it refuses waits a second, its attempt
 * closed "retry". */
static void submit(struct run *r, const struct built_request *req, const struct token *tok)
{
	struct daemon *d = r->d;
	struct http_request hr = {
	    .method = req->method,
	    .url = req->url.buf,
	    .body = req->has_body ? req->body.buf : NULL,
	    .body_len = req->has_body ? req->body.len : 0,
	    .media_type = req->media_type,
	    .bearer_token = tok->value.buf,
	};
	if (http_submit(d->http, &hr, on_response, r, &r->xfer) < 0) {
		end_unsent(r, "retry", "request refused locally");
		metrics_attempt(d->metrics, "retry", 0, 0, 1);
		log_job(LOG_WARN, r->row.id, r->row.op_id, job_state_name(JS_WAITING),
		        "job %lld: the request could not be started; trying again in 1 s",
		        (long long)r->row.id);
		wait_job(r, clock_wall_ms() + 1000, 0, JW_BACKOFF,
		         "the request could not be started");
		return;
	}
	d->ninflight++;
}

/* send_room - see daemon_int.h. */
int send_room(const struct daemon *d)
{
	return http_capacity(d->http) - d->ngated;
}

/* send_gated - see daemon_int.h: cancelled meanwhile, it is answered so without going. */
void send_gated(struct run *r)
{
	struct daemon *d = r->d;
	struct built_request *req = r->gated_req;
	r->gated_req = NULL;
	r->gated = 0;
	d->ngated--;
	d->ninflight--; /* counted again by submit, or by the answer below */
	if (r->gated_cancel && r->interrupt) {
		/* the stop's grace ran out before it went: it was never sent */
		end_unsent(r, "interrupted", "daemon stopped before the request went");
		if (store_job_requeue(d->st, r->row.id,
		                      "daemon stopped before the request went; will be sent",
		                      clock_wall_ms()) < 0)
			write_failed(d, r->row.id, "requeue");
		run_free(r);
	} else if (r->gated_cancel) {
		struct http_response resp = {.error = HTTP_ERR_CANCELLED, .rl_remaining = -1};
		snprintf(resp.errmsg, sizeof(resp.errmsg), "cancelled before it was sent");
		sb_init(&resp.body, 0);
		d->ninflight++;
		on_response(&resp, r);
		sb_release(&resp.body);
	} else {
		/* read again after a SIGHUP meanwhile; one no longer usable is admission's to
		 * wait for */
		struct token *tok = token_for(d, r->job.workspace);
		if (tok->ok) {
			submit(r, req, tok);
		} else {
			end_unsent(r, "retry", "the token was read again before the request went");
			r->hold_until_ms = clock_wall_ms();
		}
	}
	built_request_release(req);
	free(req);
}

/* send_now - builds the request, records the attempt, submits it (with an asynchronous
 * store, once the commit that records the attempt is answered). */
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
	if (d->async) {
		/* the attempt is not recorded before its commit is answered: kept till then */
		r->gated_req = xmalloc(sizeof(*r->gated_req));
		*r->gated_req = req;
		r->gated = 1;
		r->gated_cancel = 0;
		d->ngated++;
		d->ninflight++;
		sb_release(&err);
		return;
	}
	submit(r, &req, tok);
out:
	built_request_release(&req);
	sb_release(&err);
}
