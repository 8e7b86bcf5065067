/* http.h - HTTP requests on the libev loop: libcurl's multi interface driven by ev_io and
 * ev_timer watchers (the pattern of curl's evhiperfifo example). http.c is the only file
 * that includes curl.h. A request goes in; a completion callback comes out, once, on the
 * loop. The module knows nothing of jobs or SQLite.
 */
#ifndef SEGSPOOL_HTTP_H
#define SEGSPOOL_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

struct ev_loop;
struct http;
struct http_xfer;

struct http_opts {
	long connect_timeout_ms; /* default 10000 */
	long timeout_ms;         /* whole request; default 60000 */
	int max_in_flight; /* admission cap, checked before curl_multi_add_handle; default 16 */
	int max_host_connections; /* default = max_in_flight */
	const char *ca_file;      /* extra CA bundle (tests); verification is never turned off */
	const char *user_agent;
	int64_t max_response_bytes; /* decoded body limit; default 64 MiB */
};

struct http_request {
	const char *method;
	const char *url;
	const char *body; /* NULL: no body */
	size_t body_len;
	const char *media_type;   /* Accept, and Content-Type when there is a body */
	const char *bearer_token; /* sent as Authorization: Bearer; never logged or kept, and
	                           * replaced by "[redacted]" in what the response holds */
};

enum http_error {
	HTTP_OK = 0,      /* a response arrived (any status) */
	HTTP_ERR_CONNECT, /* could not connect or resolve: the request was not sent */
	HTTP_ERR_TIMEOUT,
	HTTP_ERR_SEND,      /* failed while sending */
	HTTP_ERR_RECV,      /* reset or truncated while receiving */
	HTTP_ERR_TLS,       /* certificate or handshake failure */
	HTTP_ERR_CANCELLED, /* http_cancel */
	HTTP_ERR_TOO_LARGE, /* the decoded body passed max_response_bytes: aborted */
	HTTP_ERR_OTHER,
};

/* The response as the callback sees it: every occurrence of the request's bearer token in
 * body, errmsg, retry_after, rl_reset and location reads "[redacted]". */
struct http_response {
	enum http_error error;
	char errmsg[256];   /* transport error text, "" when none */
	int status;         /* HTTP status, 0 when no response */
	struct strbuf body; /* never more than max_response_bytes */
	int64_t duration_ms;
	int request_sent; /* the request (headers, and body if any) may have reached the server */
	char retry_after[64]; /* Retry-After header as sent, "" if absent */
	int64_t rl_remaining; /* X-RateLimit-Remaining, -1 if absent */
	char rl_reset[64];    /* X-RateLimit-Reset as sent, "" if absent */
	char location[512];   /* Location of a 3xx (never followed), cut to fit; "" if none */
};

/* Called once per request, on the loop. resp is valid only during the call. */
typedef void (*http_done_fn)(struct http_response *resp, void *arg);

struct http *http_new(struct ev_loop *loop, const struct http_opts *opts);
void http_free(struct http *h); /* cancels what is in flight, without callbacks */

/* http_submit - starts a request. Returns -1 (and calls nothing) when max_in_flight
 * requests are already in flight or the URL is refused; else 0, with *xfer (if non-NULL)
 * set to a handle valid until the callback runs. */
int http_submit(struct http *h, const struct http_request *req, http_done_fn done, void *arg,
                struct http_xfer **xfer);
/* http_cancel - aborts a request; its callback runs at once with HTTP_ERR_CANCELLED. */
void http_cancel(struct http *h, struct http_xfer *xfer);
int http_in_flight(const struct http *h);
int http_capacity(const struct http *h); /* max_in_flight - in flight */

/* http_method_mutates (util.h) says which requests may change state: a pure rule the
 * job module applies at insert too, which must not link this one. */

/* http_url_allowed - https anywhere; plain http only to loopback (127.0.0.0/8, ::1,
 * localhost). 0, or -1 with the reason appended to why. */
int http_url_allowed(const char *url, struct strbuf *why);

/* http_redact_body - the token's occurrences in b become "[redacted]"; with cut (the body
 * was stopped at max bytes), a first part of the token at its very end goes too. Applied
 * to every response before its callback; public for its tests. */
void http_redact_body(struct strbuf *b, const char *tok, size_t toklen, size_t max, int cut);
/* http_global_init / cleanup - once per process. */
int http_global_init(void);
void http_global_cleanup(void);

#endif
