/* http_int.h - what the HTTP module's files share (private to src/lib/): the engine and its
 * transfers, and the calls between http.c (libcurl's multi interface on the libev loop,
 * the only file that includes curl.h), http_response.c (an answer as it arrives: body,
 * headers, redaction) and http_rules.c (what a request may be). The structs name curl's
 * handles as void pointers, which is what curl.h makes them, so this header needs no
 * curl.h; http.c checks HTTP_ERRBUF_SIZE against CURL_ERROR_SIZE.
 */
#ifndef SEGSPOOL_HTTP_INT_H
#define SEGSPOOL_HTTP_INT_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "strbuf.h"

#define HTTP_ERRBUF_SIZE 256 /* CURL_ERROR_SIZE */

struct curl_slist;
struct http_sock;

enum xfer_state {
	XFER_IDLE,    /* on the free list */
	XFER_RUNNING, /* in the multi handle, counted in in_flight */
	XFER_DONE,    /* out of the multi, its callback running */
};

struct http_xfer {
	struct http *h;
	void *easy; /* a CURL * (curl.h's CURL is void) */
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
	char errbuf[HTTP_ERRBUF_SIZE];
	struct http_xfer *prev, *next; /* running list; free list uses next only */
};

struct http {
	struct ev_loop *loop;
	void *multi; /* a CURLM * (likewise) */
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

/* http_response.c */

/* on_body - CURLOPT_WRITEFUNCTION: the decoded body, up to max_body. */
size_t on_body(char *data, size_t size, size_t nmemb, void *userp);
/* copy_redacted - val (len bytes) into dst, cut to fit, each token written as [redacted]. */
void copy_redacted(char *dst, size_t dstsize, const char *val, size_t len, const char *tok,
                   size_t toklen);
/* on_header - CURLOPT_HEADERFUNCTION: the rate-limit headers, Location, Content-Length. */
size_t on_header(char *line, size_t size, size_t nitems, void *userp);
/* reset_response - a blank response for a new request. */
void reset_response(struct http_response *resp);
/* redact_response - the token out of what the callback sees. */
void redact_response(struct http_xfer *x);

/* http_rules.c */

/* request_ok - the request's fields are usable; refusals are logged without the token. */
int request_ok(struct http *h, const struct http_request *req);
/* host_is_loopback - localhost, a 127.0.0.0/8 dotted quad, or [::1]. */
int host_is_loopback(const char *host);

#endif
