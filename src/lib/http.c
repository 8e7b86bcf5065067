/* http.c - libcurl's multi interface driven by a libev loop, after curl's evhiperfifo
 * example: curl tells us which sockets to watch (one ev_io each) and when to call it back
 * (one ev_timer); we hand socket events back with curl_multi_socket_action and then drain
 * curl_multi_info_read for finished transfers.
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

#include <arpa/inet.h>
#include <curl/curl.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "segspool_version.h"
#include "util.h"

/* the one encoding offered (Accept-Encoding) and decoded (CURLOPT_ACCEPT_ENCODING) */
#define ACCEPT_ENCODING "gzip"
#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_TIMEOUT_MS 60000L
#define DEFAULT_MAX_IN_FLIGHT 16
#define DEFAULT_MAX_RESPONSE_BYTES ((int64_t)64 * 1024 * 1024)
/* what the bearer token reads as in anything a response hands back */
#define REDACTED "[redacted]"
/* A recycled transfer keeps its body buffer unless it grew beyond this. */
#define KEEP_BODY_ALLOC (1024 * 1024)

enum xfer_state {
	XFER_IDLE,    /* on the free list */
	XFER_RUNNING, /* in the multi handle, counted in in_flight */
	XFER_DONE,    /* out of the multi, its callback running */
};

struct http_sock {
	struct http *h;
	curl_socket_t fd;
	ev_io io;
	struct http_sock *prev, *next;
};

struct http_xfer {
	struct http *h;
	CURL *easy;
	enum xfer_state state;
	struct curl_slist *headers;
	struct http_response resp;
	http_done_fn done;
	void *arg;
	int64_t started_ms;
	int mutating;         /* not GET or HEAD: the server may act on it */
	int request_begun;    /* libcurl is about to send, or has sent, the request */
	int resend_blocked;   /* libcurl wanted to send it a second time: refused */
	int head;             /* HEAD: a Content-Length announces no body */
	int headers_done;     /* the blank line after a response's headers has arrived */
	int too_large;        /* the body passed max_body (or Content-Length said it would) */
	int64_t declared_len; /* the Content-Length that was refused, or -1 */
	const char *token;    /* the bearer token inside headers' Authorization line, or NULL */
	size_t token_len;
	char errbuf[CURL_ERROR_SIZE];
	struct http_xfer *prev, *next; /* running list; free list uses next only */
};

struct http {
	struct ev_loop *loop;
	CURLM *multi;
	ev_timer timer;
	long connect_timeout_ms;
	long timeout_ms;
	size_t max_body; /* decoded response bytes kept at most */
	int max_in_flight;
	int in_flight;
	char *ca_file;
	char *user_agent_line;    /* "User-Agent: ..." */
	char allowed_origin[256]; /* "scheme://authority/" of the last URL allowed, or "" */
	struct http_xfer *running;
	struct http_xfer *idle;
	struct http_sock *socks;
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

/* body_reserve - room for extra more bytes in b, whose length is to stay within max:
 * sb_grow's doubling, except that a step past max stops at max (and its NUL), so the
 * buffer never holds more than the limit allows. */
static void body_reserve(struct strbuf *b, size_t extra, size_t max)
{
	size_t want = b->len + extra + 1, next = b->alloc ? b->alloc : 64;
	if (want <= b->alloc)
		return;
	while (next < want)
		next *= 2;
	if (next <= max + 1) {
		sb_grow(b, extra);
		return;
	}
	char *buf = xrealloc(b->alloc ? b->buf : NULL, max + 1);
	if (!b->alloc)
		buf[0] = '\0';
	b->buf = buf;
	b->alloc = max + 1;
}

/* on_body - CURLOPT_WRITEFUNCTION: the decoded body accumulates in resp.body, up to
 * max_body; past it, what fits is kept and returning short makes libcurl abort the
 * transfer (and stop decoding: a small gzip body may expand without bound). */
static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_xfer *x = userp;
	struct strbuf *b = &x->resp.body;
	size_t len = size * nmemb, room = x->h->max_body - b->len;
	if (len > room) {
		x->too_large = 1;
		body_reserve(b, room, x->h->max_body);
		sb_add(b, data, room);
		return 0;
	}
	body_reserve(b, len, x->h->max_body);
	sb_add(b, data, len);
	return len;
}

/* copy_redacted - val (len bytes) into dst as a NUL-terminated string cut to fit, with
 * each occurrence of the token (tok, toklen; none when toklen is 0) written as
 * [redacted]: the whole value is searched before it is cut, so a cut never leaves part
 * of a token behind. */
static void copy_redacted(char *dst, size_t dstsize, const char *val, size_t len, const char *tok,
                          size_t toklen)
{
	size_t o = 0, room;
	while (len) {
		const char *hit = toklen ? memmem(val, len, tok, toklen) : NULL;
		size_t plain = hit ? (size_t)(hit - val) : len;
		room = dstsize - 1 - o;
		memcpy(dst + o, val, plain < room ? plain : room);
		o += plain < room ? plain : room;
		if (!hit || plain >= room)
			break;
		room = dstsize - 1 - o;
		memcpy(dst + o, REDACTED,
		       sizeof(REDACTED) - 1 < room ? sizeof(REDACTED) - 1 : room);
		o += sizeof(REDACTED) - 1 < room ? sizeof(REDACTED) - 1 : room;
		val = hit + toklen;
		len -= plain + toklen;
	}
	dst[o] = '\0';
}

/* copy_header_value - a bounded, NUL-terminated copy, the token redacted; longer values
 * are cut. */
static void copy_header_value(const struct http_xfer *x, char *dst, size_t dstsize, const char *val,
                              size_t len)
{
	copy_redacted(dst, dstsize, val, len, x->token, x->token_len);
}

/* parse_length - a non-negative decimal header value (Content-Length,
 * X-RateLimit-Remaining), -1 when garbled. */
static int64_t parse_length(const char *val, size_t len)
{
	int64_t n = 0;
	if (!len || len > 18)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (val[i] < '0' || val[i] > '9')
			return -1;
		n = n * 10 + (val[i] - '0');
	}
	return n;
}

/* reset_rate_headers - forgets headers seen so far: only the final response's count. */
static void reset_rate_headers(struct http_response *resp)
{
	resp->retry_after[0] = '\0';
	resp->rl_remaining = -1;
	resp->rl_reset[0] = '\0';
	resp->location[0] = '\0';
}

/* on_header - CURLOPT_HEADERFUNCTION: picks the rate-limit headers and Location,
 * case-insensitively, and refuses a body whose Content-Length is past the limit. */
static size_t on_header(char *line, size_t size, size_t nitems, void *userp)
{
	struct http_xfer *x = userp;
	size_t len = size * nitems;

	if (len >= 5 && !memcmp(line, "HTTP/", 5)) {
		/* a new status line: an interim or earlier response's headers no longer apply */
		reset_rate_headers(&x->resp);
		x->headers_done = 0;
		return len;
	}
	const char *colon = memchr(line, ':', len);
	if (!colon) {
		if (len <= 2)
			x->headers_done = 1; /* the blank line */
		return len;
	}
	size_t namelen = (size_t)(colon - line);
	const char *val = colon + 1;
	const char *end = line + len;
	while (val < end && (*val == ' ' || *val == '\t'))
		val++;
	while (end > val &&
	       (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	size_t vlen = (size_t)(end - val);

	if (namelen == 11 && !strncasecmp(line, "Retry-After", namelen))
		copy_header_value(x, x->resp.retry_after, sizeof(x->resp.retry_after), val, vlen);
	else if (namelen == 21 && !strncasecmp(line, "X-RateLimit-Remaining", namelen))
		x->resp.rl_remaining = parse_length(val, vlen);
	else if (namelen == 17 && !strncasecmp(line, "X-RateLimit-Reset", namelen))
		copy_header_value(x, x->resp.rl_reset, sizeof(x->resp.rl_reset), val, vlen);
	else if (namelen == 8 && !strncasecmp(line, "Location", namelen))
		copy_header_value(x, x->resp.location, sizeof(x->resp.location), val, vlen);
	else if (namelen == 14 && !strncasecmp(line, "Content-Length", namelen) && !x->head) {
		int64_t n = parse_length(val, vlen);
		if (n > 0 && (uint64_t)n > x->h->max_body) {
			/* refused before any of it is read; returning short aborts the transfer */
			x->too_large = 1;
			x->declared_len = n;
			return 0;
		}
	}
	return len;
}

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

/* token_prefix_tail - the length of the longest proper prefix of the token that ends
 * body (a body cut at the limit may end inside a token). */
static size_t token_prefix_tail(const struct strbuf *b, const char *tok, size_t toklen)
{
	for (size_t k = toklen - 1 < b->len ? toklen - 1 : b->len; k > 0; k--)
		if (!memcmp(b->buf + b->len - k, tok, k))
			return k;
	return 0;
}

/* http_redact_body - every occurrence of the token in the body becomes [redacted], and a cut
 * body loses a token's first bytes at its very end: one memmem when there is none (the
 * usual case); a new buffer only when there is one. Whole tokens are found first, then
 * a partial one only in what follows the last (a token whose start equals its end could
 * otherwise be counted twice). The result stays within max (a token shorter than the mark
 * could lengthen the body). */
void http_redact_body(struct strbuf *b, const char *tok, size_t toklen, size_t max, int cut)
{
	const char *hit = memmem(b->buf, b->len, tok, toklen);
	const char *p = b->buf, *end = b->buf + b->len;
	struct strbuf out = STRBUF_INIT;
	if (hit)
		sb_grow(&out, b->len);
	for (; hit; hit = memmem(p, (size_t)(end - p), tok, toklen)) {
		sb_add(&out, p, (size_t)(hit - p));
		sb_adds(&out, REDACTED);
		p = hit + toklen;
	}
	size_t tail = 0;
	if (cut) {
		struct strbuf rest = {0, (size_t)(end - p), (char *)p}; /* a view: not released */
		tail = token_prefix_tail(&rest, tok, toklen);
	}
	if (p == b->buf && !tail)
		return; /* no token, whole or cut */
	sb_add(&out, p, (size_t)(end - p) - tail);
	if (out.len > max)
		sb_setlen(&out, max);
	explicit_bzero(b->buf, b->len);
	sb_release(b);
	*b = out;
}

/* redact_response - the token out of what the callback sees. The header values were
 * redacted as they were copied (copy_header_value). */
static void redact_response(struct http_xfer *x)
{
	struct http_response *resp = &x->resp;
	if (!x->token_len)
		return;
	if (resp->body.len)
		http_redact_body(&resp->body, x->token, x->token_len, x->h->max_body, x->too_large);
	if (resp->errmsg[0] && strstr(resp->errmsg, x->token)) {
		char msg[sizeof(resp->errmsg)];
		copy_redacted(msg, sizeof(msg), resp->errmsg, strlen(resp->errmsg), x->token,
		              x->token_len);
		memcpy(resp->errmsg, msg, sizeof(msg));
	}
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

/* header_value_ok - no CR or LF, so a value cannot smuggle in another header. */
static int header_value_ok(const char *s)
{
	return !strpbrk(s, "\r\n");
}

/* method_ok - an upper-case token: CUSTOMREQUEST goes verbatim onto the request line. */
static int method_ok(const char *m)
{
	size_t n = strlen(m);
	if (!n || n > 16)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (m[i] < 'A' || m[i] > 'Z')
			return 0;
	return 1;
}

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

/* reset_response - a blank response for a new request. */
static void reset_response(struct http_response *resp)
{
	resp->error = HTTP_OK;
	resp->errmsg[0] = '\0';
	resp->status = 0;
	sb_reset(&resp->body);
	resp->duration_ms = 0;
	resp->request_sent = 0;
	reset_rate_headers(resp);
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

/* same_origin - url begins with the "scheme://authority/" of the last URL allowed: the
 * same scheme and host:port, so the same verdict. */
static int same_origin(const struct http *h, const char *url)
{
	size_t n = strlen(h->allowed_origin);
	return n && !strncmp(url, h->allowed_origin, n);
}

/* remember_origin - url was allowed: keep its "scheme://authority/" for same_origin. */
static void remember_origin(struct http *h, const char *url)
{
	const char *sep = strstr(url, "://");
	const char *slash = sep ? strchr(sep + 3, '/') : NULL;
	size_t n = slash ? (size_t)(slash - url) + 1 : 0;
	if (n && n < sizeof(h->allowed_origin)) {
		memcpy(h->allowed_origin, url, n);
		h->allowed_origin[n] = '\0';
	}
}

/* request_ok - the request's fields are usable: a known shape of method, no header
 * injection, an allowed URL (parsed once per origin). Refusals are logged without the
 * token. */
static int request_ok(struct http *h, const struct http_request *req)
{
	struct strbuf why = STRBUF_INIT;
	int ret = 0;

	if (!req->method || !req->url || !method_ok(req->method))
		ret = error("cannot send request: bad method or no url");
	else if ((req->media_type && !header_value_ok(req->media_type)) ||
	         (req->bearer_token && !header_value_ok(req->bearer_token)))
		ret = error("cannot send request: line break in media type or token");
	else if (same_origin(h, req->url))
		;
	else if (http_url_allowed(req->url, &why) < 0)
		ret = error("refusing url: %s", why.buf);
	else
		remember_origin(h, req->url);
	sb_release(&why);
	return ret;
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

/* host_is_loopback - localhost, a 127.0.0.0/8 dotted quad, or [::1]. */
static int host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	char inner[64];
	size_t len = strlen(host);

	if (!strcasecmp(host, "localhost"))
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (len < 3 || host[0] != '[' || host[len - 1] != ']' || len - 2 >= sizeof(inner))
		return 0;
	memcpy(inner, host + 1, len - 2);
	inner[len - 2] = '\0';
	return inet_pton(AF_INET6, inner, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
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
