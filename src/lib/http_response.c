/* http_response.c - an answer as it arrives, without libcurl (curl.h stays in http.c):
 * the body kept within the limit, the headers read from it (Retry-After, the rate-limit
 * headers, Location, a Content-Length past the limit), and the bearer token redacted
 * from all of it before the callback sees it. */
#include "http_int.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "strbuf.h"
#include "util.h"

/* what the bearer token reads as in anything a response hands back */
#define REDACTED "[redacted]"

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
size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
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
void copy_redacted(char *dst, size_t dstsize, const char *val, size_t len, const char *tok,
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
size_t on_header(char *line, size_t size, size_t nitems, void *userp)
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

/* reset_response - a blank response for a new request. */
void reset_response(struct http_response *resp)
{
	resp->error = HTTP_OK;
	resp->errmsg[0] = '\0';
	resp->status = 0;
	sb_reset(&resp->body);
	resp->duration_ms = 0;
	resp->request_sent = 0;
	reset_rate_headers(resp);
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
void redact_response(struct http_xfer *x)
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
