/* http.c - libcurl's multi interface driven by a libev loop, after curl's evhiperfifo
 * example: curl tells us which sockets to watch (one ev_io each) and when to call it back
 * (one ev_timer); we hand socket events back with curl_multi_socket_action and then drain
 * curl_multi_info_read for finished transfers.
 *
 * The body and headers of an answer as they arrive are read in http_response.c, and a
 * request's method, header values and URL are judged in http_rules.c: neither includes
 * curl.h (the structs they share are in http_int.h).
 *
 * Lifetimes: struct http for the engine, struct http_xfer per request (recycled through a
 * free list so easy handles are reused), struct http_sock per socket curl watches.
 *
 * Re-entrancy: completion callbacks run from our drain loop, never from inside a libcurl
 * callback, so they may call http_submit and http_cancel. Each finished transfer is
 * delivered as soon as it is read from curl's queue; nothing read before a callback is
 * trusted after it (a cancel inside a callback removes that transfer's pending message
 * from curl's queue). Calling http_free from a callback is not supported.
 */
#include "http.h"

#include <curl/curl.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"
#include "segspool_version.h"
#include "util.h"

/* the one encoding offered (Accept-Encoding) and decoded (CURLOPT_ACCEPT_ENCODING) */
#define ACCEPT_ENCODING "gzip"
#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_TIMEOUT_MS 60000L
#define DEFAULT_MAX_IN_FLIGHT 16
#define DEFAULT_MAX_RESPONSE_BYTES ((int64_t)64 * 1024 * 1024)
/* A recycled transfer keeps its body buffer unless it grew beyond this. */
#define KEEP_BODY_ALLOC (1024 * 1024)

/* http_int.h sizes the transfer's error buffer without curl.h */
_Static_assert(HTTP_ERRBUF_SIZE == CURL_ERROR_SIZE, "HTTP_ERRBUF_SIZE is not CURL_ERROR_SIZE");

struct http_sock {
	struct http *h;
	curl_socket_t fd;
	ev_io io;
	struct http_sock *prev, *next;
};

static void drain_completions(struct http *h);

/* ---- sockets and the timer: what curl asks the loop to watch ---------------------- */

/* sock_free - stops watching a socket curl no longer needs. */
static void sock_free(struct http *h, struct http_sock *s)
{
	ev_io_stop(h->loop, &s->io);
	if (s->prev)
		s->prev->next = s->next;
	else
		h->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s);
}

/* on_io - a watched socket is ready: tell curl which way, then collect what finished. */
static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_sock *s = w->data;
	struct http *h = s->h;
	int action =
	    (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int running;
	(void)loop;

	/* s may be freed by the socket callback during socket_action: use h only. */
	CURLMcode rc = curl_multi_socket_action(h->multi, s->fd, action, &running);
	if (rc != CURLM_OK)
		error("curl_multi_socket_action failed: %s", curl_multi_strerror(rc));
	drain_completions(h);
}

/* on_curl_socket - CURLMOPT_SOCKETFUNCTION: add, change or drop the ev_io of a socket. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http *h = userp;
	struct http_sock *s = socketp;
	(void)easy;

	if (what == CURL_POLL_REMOVE) {
		if (s)
			sock_free(h, s);
		return 0;
	}
	if (!s) {
		s = xcalloc(1, sizeof(*s));
		s->h = h;
		s->fd = fd;
		ev_init(&s->io, on_io);
		s->io.data = s;
		s->next = h->socks;
		if (h->socks)
			h->socks->prev = s;
		h->socks = s;
		curl_multi_assign(h->multi, fd, s);
	}
	int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
	ev_io_stop(h->loop, &s->io);
	ev_io_set(&s->io, fd, events);
	if (events)
		ev_io_start(h->loop, &s->io);
	return 0;
}

/* on_timer - curl's timeout expired: let it run its timers, then collect what finished. */
static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http *h = w->data;
	int running;
	(void)loop;
	(void)revents;

	CURLMcode rc = curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	if (rc != CURLM_OK)
		error("curl_multi_socket_action failed: %s", curl_multi_strerror(rc));
	drain_completions(h);
}

/* on_curl_timer - CURLMOPT_TIMERFUNCTION: one timer, re-armed in fractional seconds.
 * A 0 ms timeout becomes a 0 s timer rather than a direct call: curl forbids calling
 * socket_action from inside its own callback. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct http *h = userp;
	(void)multi;

	ev_timer_stop(h->loop, &h->timer);
	if (timeout_ms >= 0) {
		ev_timer_set(&h->timer, (double)timeout_ms / 1000.0, 0.);
		ev_timer_start(h->loop, &h->timer);
	}
	return 0;
}

/* ---- response collection ---------------------------------------------------------- */

/* map_error - a curl result in the module's terms. */
static enum http_error map_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return HTTP_OK;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return HTTP_ERR_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return HTTP_ERR_TIMEOUT;
	case CURLE_SEND_ERROR:
		return HTTP_ERR_SEND;
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
		return HTTP_ERR_RECV;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
		return HTTP_ERR_TLS;
	default:
		return HTTP_ERR_OTHER;
	}
}

/* request_was_sent - whether any request bytes left us, so the server may have acted.
 * A failed connect or resolve never sent anything, whatever the counters say. */
static int request_was_sent(CURL *easy, enum http_error err)
{
	long request_size = 0;
	curl_off_t uploaded = 0;

	if (err == HTTP_ERR_CONNECT)
		return 0;
	if (curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_size) != CURLE_OK)
		request_size = 0;
	if (curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &uploaded) != CURLE_OK)
		uploaded = 0;
	return request_size > 0 || uploaded > 0;
}

/* is_size_limit - a libcurl result that its own size limits give (in 7.88 "out of
 * memory" when a header line passes CURL_MAX_HTTP_HEADER; CURLE_TOO_LARGE from 8.6). */
static int is_size_limit(CURLcode rc)
{
#if LIBCURL_VERSION_NUM >= 0x080600
	if (rc == CURLE_TOO_LARGE)
		return 1;
#endif
	return rc == CURLE_OUT_OF_MEMORY;
}

/* set_errmsg - resp's transport error text: libcurl's error buffer when it wrote one,
 * else a sentence of ours where libcurl's own would mislead ("Out of memory" for a
 * giant header line), else curl_easy_strerror. */
static void set_errmsg(struct http_xfer *x, CURLcode rc)
{
	struct http_response *resp = &x->resp;
	if (x->too_large && x->declared_len >= 0)
		snprintf(resp->errmsg, sizeof(resp->errmsg),
		         "response body of %lld bytes (Content-Length) is larger than the limit of "
		         "%zu bytes (http.max_response_bytes); not read",
		         (long long)x->declared_len, x->h->max_body);
	else if (x->too_large)
		snprintf(resp->errmsg, sizeof(resp->errmsg),
		         "response body larger than the limit of %zu bytes "
		         "(http.max_response_bytes); transfer aborted",
		         x->h->max_body);
	else if (x->errbuf[0])
		copy_redacted(resp->errmsg, sizeof(resp->errmsg), x->errbuf, strlen(x->errbuf),
		              x->token, x->token_len);
	else if (is_size_limit(rc) && !x->headers_done)
		snprintf(resp->errmsg, sizeof(resp->errmsg),
		         "a response header line is larger than libcurl's limit of %d KiB",
		         CURL_MAX_HTTP_HEADER / 1024);
	else if (rc == CURLE_OUT_OF_MEMORY)
		snprintf(resp->errmsg, sizeof(resp->errmsg),
		         "libcurl ran out of memory while receiving the response");
	else
		snprintf(resp->errmsg, sizeof(resp->errmsg), "%s", curl_easy_strerror(rc));
}

/* fill_response - status, error, timing and "was it sent" once curl is done with x. */
static void fill_response(struct http_xfer *x, CURLcode rc)
{
	struct http_response *resp = &x->resp;
	long status = 0;

	if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
		status = 0;
	resp->status = (int)status;
	if (status < 300 || status > 399)
		resp->location[0] = '\0'; /* kept for redirects only */
	resp->error = x->too_large ? HTTP_ERR_TOO_LARGE : map_error(rc);
	if (rc != CURLE_OK || x->too_large)
		set_errmsg(x, rc);
	resp->request_sent = request_was_sent(x->easy, resp->error);
	if (x->resend_blocked) {
		/* the first send went out on a reused connection that then died */
		resp->error = HTTP_ERR_RECV;
		resp->request_sent = 1;
		snprintf(resp->errmsg, sizeof(resp->errmsg),
		         "the connection closed before any answer; the request may have been "
		         "applied, so it was not sent again");
	}
	resp->duration_ms = clock_mono_ms() - x->started_ms;
}

/* ---- transfers: allocation, recycling, delivery ----------------------------------- */

/* wipe_headers - zeroes the header strings (one holds the token), then frees them. */
static void wipe_headers(struct curl_slist *list)
{
	for (struct curl_slist *p = list; p; p = p->next)
		explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(list);
}

/* running_link - x joins the list of transfers in the multi handle. */
static void running_link(struct http *h, struct http_xfer *x)
{
	x->prev = NULL;
	x->next = h->running;
	if (h->running)
		h->running->prev = x;
	h->running = x;
}

/* running_unlink - x leaves the list of transfers in the multi handle. */
static void running_unlink(struct http *h, struct http_xfer *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		h->running = x->next;
	if (x->next)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
}

/* xfer_get - a transfer from the free list, or a new one with a fresh easy handle. */
static struct http_xfer *xfer_get(struct http *h)
{
	struct http_xfer *x = h->idle;
	if (x) {
		h->idle = x->next;
		x->next = NULL;
		return x;
	}
	CURL *easy = curl_easy_init();
	if (!easy) {
		error("cannot create curl easy handle");
		return NULL;
	}
	x = xcalloc(1, sizeof(*x));
	x->h = h;
	x->easy = easy;
	sb_init(&x->resp.body, 0);
	return x;
}

/* xfer_recycle - back to the free list. curl_easy_reset drops options but connections
 * live in the multi's pool, so the next transfer to the same host reuses them. */
static void xfer_recycle(struct http *h, struct http_xfer *x)
{
	curl_easy_reset(x->easy);
	wipe_headers(x->headers);
	x->headers = NULL;
	if (x->resp.body.alloc > KEEP_BODY_ALLOC)
		sb_release(&x->resp.body);
	else
		sb_reset(&x->resp.body);
	x->done = NULL;
	x->arg = NULL;
	x->state = XFER_IDLE;
	x->prev = NULL;
	x->next = h->idle;
	h->idle = x;
}

/* xfer_destroy - frees a transfer that is in no list and not in the multi handle. */
static void xfer_destroy(struct http_xfer *x)
{
	wipe_headers(x->headers);
	curl_easy_cleanup(x->easy);
	sb_release(&x->resp.body);
	free(x);
}

/* xfer_deliver - out of the running set first (so the callback may submit into the freed
 * slot), then the callback, then back to the free list. */
static void xfer_deliver(struct http *h, struct http_xfer *x)
{
	running_unlink(h, x);
	h->in_flight--;
	x->state = XFER_DONE;
	redact_response(x);
	x->done(&x->resp, x->arg);
	xfer_recycle(h, x);
}

/* drain_completions - delivers every finished transfer curl has queued. Each message's
 * fields are copied before the callback: the callback may add or remove handles. */
static void drain_completions(struct http *h)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(h->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURL *easy = msg->easy_handle;
		CURLcode rc = msg->data.result;
		char *priv = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		struct http_xfer *x = (struct http_xfer *)(void *)priv;
		if (!x || x->state != XFER_RUNNING) {
			curl_multi_remove_handle(h->multi, easy);
			continue;
		}
		fill_response(x, rc);
		curl_multi_remove_handle(h->multi, easy);
		xfer_deliver(h, x);
	}
}

/* ---- building a request ----------------------------------------------------------- */

/* append_header - curl_slist_append, keeping the list on allocation failure. */
static int append_header(struct curl_slist **list, const char *line)
{
	struct curl_slist *l = curl_slist_append(*list, line);
	if (!l)
		return -1;
	*list = l;
	return 0;
}

/* append_bearer - Authorization header; the formatting buffer is sized up front (no
 * realloc leaves a stray copy) and wiped once curl_slist_append holds its own copy. */
static int append_bearer(struct curl_slist **list, const char *token)
{
	static const char prefix[] = "Authorization: Bearer ";
	struct strbuf line = STRBUF_INIT;
	int ret;

	sb_grow(&line, sizeof(prefix) + strlen(token));
	sb_adds(&line, prefix);
	sb_adds(&line, token);
	ret = append_header(list, line.buf);
	explicit_bzero(line.buf, line.len);
	sb_release(&line);
	return ret;
}

/* build_headers - User-Agent, Accept-Encoding, Accept, Content-Type (with a body, or an
 * empty one that removes libcurl's for a POST without), Authorization (last: see
 * bearer_of); no Expect. The user agent and the encoding are lines of ours rather than
 * libcurl's own, which it formats twice, a byte at a time, for every request. */
static int build_headers(const struct http *h, const struct http_request *req,
                         struct curl_slist **out)
{
	struct curl_slist *list = NULL;
	struct strbuf line = STRBUF_INIT;
	/* without a media type a body would go out as a form; JSON is what the API takes */
	const char *media = req->media_type ? req->media_type : "application/json";
	int ret = append_header(&list, "Expect:");

	if (!ret)
		ret = append_header(&list, h->user_agent_line);
	if (!ret)
		ret = append_header(&list, "Accept-Encoding: " ACCEPT_ENCODING);

	if (!ret && req->media_type) {
		sb_addf(&line, "Accept: %s", req->media_type);
		ret = append_header(&list, line.buf);
	}
	if (!ret && req->body) {
		sb_reset(&line);
		sb_addf(&line, "Content-Type: %s", media);
		ret = append_header(&list, line.buf);
	} else if (!ret && !strcmp(req->method, "POST")) {
		/* a POST without a body would go out as an empty form: no Content-Type at all */
		ret = append_header(&list, "Content-Type:");
	}
	if (!ret && req->bearer_token)
		ret = append_bearer(&list, req->bearer_token);
	sb_release(&line);
	if (ret) {
		wipe_headers(list);
		return error("cannot build request headers: out of memory");
	}
	*out = list;
	return 0;
}

/* on_prereq - CURLOPT_PREREQFUNCTION: a connection is ready and the request goes next.
 * libcurl silently sends a request again, on a new or another pooled connection, when
 * the reused connection it went out on died before any answer. The server may already
 * have applied a mutation, so a second send is refused: the transfer ends as a lost
 * answer, which the scheduler records and handles by the job's policy. */
static int on_prereq(void *clientp, char *conn_primary_ip, char *conn_local_ip,
                     int conn_primary_port, int conn_local_port)
{
	struct http_xfer *x = clientp;
	(void)conn_primary_ip;
	(void)conn_local_ip;
	(void)conn_primary_port;
	(void)conn_local_port;
	if (x->mutating && x->request_begun) {
		x->resend_blocked = 1;
		return CURL_PREREQFUNC_ABORT;
	}
	x->request_begun = 1;
	return CURL_PREREQFUNC_OK;
}

/* bearer_of - the token inside the Authorization line, the last of the list build_headers
 * made when the request has a token (the list lives until the transfer is recycled). */
static void bearer_of(struct http_xfer *x, const struct http_request *req)
{
	static const char prefix[] = "Authorization: Bearer ";
	struct curl_slist *last = x->headers;
	x->token = NULL;
	x->token_len = 0;
	if (!req->bearer_token || !*req->bearer_token)
		return;
	while (last->next)
		last = last->next;
	x->token = last->data + sizeof(prefix) - 1;
	x->token_len = strlen(x->token);
}

/* set_method - the method and body; bodies are copied so the caller's may go away. */
static CURLcode set_method(CURL *e, const struct http_request *req)
{
	CURLcode rc;

	if (req->body) {
		rc = curl_easy_setopt(e, CURLOPT_POST, 1L);
		if (!rc)
			rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
			                      (curl_off_t)req->body_len);
		if (!rc)
			rc = curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body);
		if (!rc && strcmp(req->method, "POST"))
			rc = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
		return rc;
	}
	if (!strcmp(req->method, "GET"))
		return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	if (!strcmp(req->method, "HEAD"))
		return curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	if (!strcmp(req->method, "POST")) {
		/* an empty body, sent with Content-Length: 0 */
		rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
		if (!rc)
			rc = curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, "");
		return rc;
	}
	return curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
}

/* set_transport - timeouts, protocols, TLS, pooling-friendly options: the same for all. */
static CURLcode set_transport(struct http *h, struct http_xfer *x)
{
	CURL *e = x->easy;
	CURLcode rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");

	/* a redirect could carry the token to another host: never follow one */
	if (!rc)
		rc = curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	if (!rc)
		rc = curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	if (!rc)
		rc = curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
	if (!rc)
		rc = curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->timeout_ms);
	if (!rc)
		rc = curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	/* gzip alone, what every server offers, and decoded by libcurl; the header itself
	 * is one of our lines (build_headers), which libcurl then does not add again */
	if (!rc)
		rc = curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ACCEPT_ENCODING);
	if (!rc && h->ca_file)
		rc = curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
	if (!rc)
		rc = curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	if (!rc)
		rc = curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)x);
	if (!rc)
		rc = curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	if (!rc)
		rc = curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)x);
	if (!rc)
		rc = curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	if (!rc)
		rc = curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)x);
	if (!rc)
		rc = curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
	if (!rc)
		rc = curl_easy_setopt(e, CURLOPT_PREREQDATA, (void *)x);
	return rc;
}

/* xfer_setup - configures x's easy handle for req. */
static int xfer_setup(struct http *h, struct http_xfer *x, const struct http_request *req)
{
	CURLcode rc;

	x->errbuf[0] = '\0';
	x->mutating = http_method_mutates(req->method);
	x->request_begun = 0;
	x->resend_blocked = 0;
	x->head = !strcmp(req->method, "HEAD");
	x->headers_done = 0;
	x->too_large = 0;
	x->declared_len = -1;
	x->token = NULL;
	x->token_len = 0;
	reset_response(&x->resp);
	if (build_headers(h, req, &x->headers) < 0)
		return -1;
	bearer_of(x, req);
	rc = set_transport(h, x);
	if (!rc)
		rc = curl_easy_setopt(x->easy, CURLOPT_URL, req->url);
	if (!rc)
		rc = curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
	if (!rc)
		rc = set_method(x->easy, req);
	if (rc)
		return error("cannot set up %s request: %s", req->method, curl_easy_strerror(rc));
	return 0;
}

/* ---- public interface ------------------------------------------------------------- */

/* http_submit - see http.h; admission is checked before anything touches curl. */
int http_submit(struct http *h, const struct http_request *req, http_done_fn done, void *arg,
                struct http_xfer **out)
{
	struct http_xfer *x;
	CURLMcode mrc;

	if (h->in_flight >= h->max_in_flight)
		return -1;
	if (!done || request_ok(h, req) < 0)
		return -1;
	x = xfer_get(h);
	if (!x)
		return -1;
	if (xfer_setup(h, x, req) < 0) {
		xfer_recycle(h, x);
		return -1;
	}
	x->done = done;
	x->arg = arg;
	x->started_ms = clock_mono_ms();
	x->state = XFER_RUNNING;
	running_link(h, x);
	h->in_flight++;
	mrc = curl_multi_add_handle(h->multi, x->easy);
	if (mrc != CURLM_OK) {
		error("cannot start request: %s", curl_multi_strerror(mrc));
		running_unlink(h, x);
		h->in_flight--;
		xfer_recycle(h, x);
		return -1;
	}
	if (out)
		*out = x;
	return 0;
}

/* http_cancel - removes the transfer from curl and runs its callback synchronously, before
 * returning, with HTTP_ERR_CANCELLED. A transfer already delivered is left alone. */
void http_cancel(struct http *h, struct http_xfer *x)
{
	if (!x || x->h != h || x->state != XFER_RUNNING)
		return;
	curl_multi_remove_handle(h->multi, x->easy);
	x->resp.error = HTTP_ERR_CANCELLED;
	snprintf(x->resp.errmsg, sizeof(x->resp.errmsg), "cancelled");
	x->resp.request_sent = request_was_sent(x->easy, HTTP_ERR_CANCELLED);
	x->resp.duration_ms = clock_mono_ms() - x->started_ms;
	xfer_deliver(h, x);
}

/* http_in_flight - requests submitted whose callback has not run. */
int http_in_flight(const struct http *h)
{
	return h->in_flight;
}

/* http_capacity - how many more http_submit calls would be admitted now. */
int http_capacity(const struct http *h)
{
	return h->max_in_flight - h->in_flight;
}

/* http_new - an engine on loop; zero or negative options take their defaults. */
struct http *http_new(struct ev_loop *loop, const struct http_opts *opts)
{
	static const struct http_opts defaults;
	struct http *h;
	long host_conns;

	if (!opts)
		opts = &defaults;
	h = xcalloc(1, sizeof(*h));
	h->loop = loop;
	h->connect_timeout_ms =
	    opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
	h->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
	h->max_in_flight = opts->max_in_flight > 0 ? opts->max_in_flight : DEFAULT_MAX_IN_FLIGHT;
	int64_t max_body =
	    opts->max_response_bytes > 0 ? opts->max_response_bytes : DEFAULT_MAX_RESPONSE_BYTES;
	/* a bound for the doubling in body_reserve; far past any memory */
	h->max_body = (uint64_t)max_body < SIZE_MAX / 4 ? (size_t)max_body : SIZE_MAX / 4;
	host_conns = opts->max_host_connections > 0 ? opts->max_host_connections : h->max_in_flight;
	h->ca_file = opts->ca_file ? xstrdup(opts->ca_file) : NULL;
	struct strbuf ua = STRBUF_INIT;
	sb_addf(&ua, "User-Agent: %s", opts->user_agent ? opts->user_agent : SEGSPOOL_USER_AGENT);
	h->user_agent_line = sb_detach(&ua, NULL);
	ev_init(&h->timer, on_timer);
	h->timer.data = h;

	h->multi = curl_multi_init();
	if (!h->multi) {
		error("cannot create curl multi handle");
		http_free(h);
		return NULL;
	}
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, (void *)h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, (void *)h);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, host_conns);
	/* the pool keeps every connection the cap allows, plus a few for other hosts */
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS,
	                  (host_conns > h->max_in_flight ? host_conns : (long)h->max_in_flight) +
	                      4L);
	return h;
}

/* http_free - drops in-flight transfers without callbacks, then curl, then watchers. */
void http_free(struct http *h)
{
	if (!h)
		return;
	while (h->running) {
		struct http_xfer *x = h->running;
		curl_multi_remove_handle(h->multi, x->easy);
		running_unlink(h, x);
		xfer_destroy(x);
	}
	h->in_flight = 0;
	while (h->idle) {
		struct http_xfer *x = h->idle;
		h->idle = x->next;
		xfer_destroy(x);
	}
	/* closing pooled connections may still call on_curl_socket / on_curl_timer */
	if (h->multi)
		curl_multi_cleanup(h->multi);
	while (h->socks)
		sock_free(h, h->socks);
	ev_timer_stop(h->loop, &h->timer);
	free(h->ca_file);
	free(h->user_agent_line);
	free(h);
}

/* check_url - the policy on a parsed URL; why may be NULL. */
static int check_url(CURLU *u, struct strbuf *why)
{
	char *scheme = NULL, *host = NULL;
	int ret = -1;

	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		if (why)
			sb_adds(why, "url has no scheme or host");
	} else if (!strcasecmp(scheme, "https")) {
		ret = 0;
	} else if (strcasecmp(scheme, "http")) {
		if (why)
			sb_addf(why, "unsupported url scheme %s; use https", scheme);
	} else if (host_is_loopback(host)) {
		ret = 0;
	} else if (why) {
		sb_addf(why,
		        "plain http is allowed only to loopback (127.0.0.1, ::1, localhost); "
		        "use https for %s",
		        host);
	}
	curl_free(scheme);
	curl_free(host);
	return ret;
}

/* http_url_allowed - parsed with curl's own URL parser, so the host judged here is the
 * host curl would connect to (userinfo, brackets, ports and odd IPv4 forms included). */
int http_url_allowed(const char *url, struct strbuf *why)
{
	CURLU *u = curl_url();
	CURLUcode rc;
	int ret = -1;

	if (!u) {
		if (why)
			sb_adds(why, "cannot parse url: out of memory");
		return -1;
	}
	/* NON_SUPPORT_SCHEME: parse ftp:// and friends too, so the refusal names them */
	rc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
	if (rc != CURLUE_OK) {
		if (why)
			sb_addf(why, "malformed url: %s", curl_url_strerror(rc));
	} else {
		ret = check_url(u, why);
	}
	curl_url_cleanup(u);
	return ret;
}

/* http_global_init - libcurl's process-wide setup; needs curl 7.85 (PROTOCOLS_STR). */
int http_global_init(void)
{
	CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (rc != CURLE_OK)
		return error("cannot initialise libcurl: %s", curl_easy_strerror(rc));
	curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
	if (info->version_num < 0x075500) {
		curl_global_cleanup();
		return error("libcurl %s is too old: 7.85 or later is needed", info->version);
	}
	return 0;
}

/* http_global_cleanup - undoes http_global_init. */
void http_global_cleanup(void)
{
	curl_global_cleanup();
}
