/* http_rules.c - what a request may be, without libcurl: an upper-case method, no line
 * break in a header value, a URL of an allowed origin (https, or plain http to loopback
 * only), the last allowed origin remembered so a batch parses its URL once. */
#include "http_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "strbuf.h"
#include "util.h"

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
int request_ok(struct http *h, const struct http_request *req)
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

/* host_is_loopback - localhost, a 127.0.0.0/8 dotted quad, or [::1]. */
int host_is_loopback(const char *host)
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
