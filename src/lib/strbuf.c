/* strbuf.c - growable byte buffers (see strbuf.h for the invariants). */
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

char strbuf_slopbuf[1];

/* sb_init - an empty buffer with room for hint bytes. */
void sb_init(struct strbuf *sb, size_t hint)
{
	sb->alloc = sb->len = 0;
	sb->buf = strbuf_slopbuf;
	if (hint)
		sb_grow(sb, hint);
}

/* sb_release - frees the buffer; sb is empty and reusable. */
void sb_release(struct strbuf *sb)
{
	if (sb->alloc)
		free(sb->buf);
	sb_init(sb, 0);
}

/* sb_reset - length zero, memory kept. */
void sb_reset(struct strbuf *sb)
{
	sb_setlen(sb, 0);
}

/* sb_grow - room for extra more bytes and the terminating NUL. */
void sb_grow(struct strbuf *sb, size_t extra)
{
	int fresh = sb->alloc == 0;
	if (extra >= (size_t)-1 / 2 - sb->len)
		die("strbuf: length overflow");
	if (sb->len + extra + 1 <= sb->alloc)
		return;
	size_t want = sb->len + extra + 1;
	size_t next = sb->alloc ? sb->alloc : 64;
	while (next < want)
		next *= 2;
	sb->buf = xrealloc(fresh ? NULL : sb->buf, next);
	sb->alloc = next;
	if (fresh)
		sb->buf[0] = '\0';
}

/* sb_setlen - truncates (or, within alloc, extends) and re-terminates. */
void sb_setlen(struct strbuf *sb, size_t len)
{
	if (len > (sb->alloc ? sb->alloc - 1 : 0))
		die("strbuf: setlen %zu beyond allocation", len);
	sb->len = len;
	if (sb->alloc)
		sb->buf[len] = '\0';
}

/* sb_add - appends len bytes. */
void sb_add(struct strbuf *sb, const void *data, size_t len)
{
	if (!len)
		return;
	sb_grow(sb, len);
	memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
}

/* sb_adds - appends a C string. */
void sb_adds(struct strbuf *sb, const char *s)
{
	sb_add(sb, s, strlen(s));
}

/* sb_vaddf - appends printf-formatted text. */
void sb_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		die("strbuf: bad format");
	sb_grow(sb, (size_t)n);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
}

/* sb_addf - appends printf-formatted text. */
void sb_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sb_vaddf(sb, fmt, ap);
	va_end(ap);
}

/* sb_add_urlencoded - RFC 3986 percent-encoding of all but unreserved characters. */
void sb_add_urlencoded(struct strbuf *sb, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			sb_addch(sb, (char)c);
		} else {
			sb_addch(sb, '%');
			sb_addch(sb, hex[c >> 4]);
			sb_addch(sb, hex[c & 15]);
		}
	}
}

/* sb_add_int - v in decimal, without the cost of a printf. */
void sb_add_int(struct strbuf *sb, int64_t v)
{
	char digits[24];
	size_t i = sizeof(digits);
	/* in unsigned arithmetic, so INT64_MIN negates without overflow */
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do {
		digits[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		digits[--i] = '-';
	sb_add(sb, digits + i, sizeof(digits) - i);
}

/* sb_add_json_string - s as a JSON string literal; runs that need no escape are copied
 * whole. */
void sb_add_json_string(struct strbuf *sb, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	sb_addch(sb, '"');
	while (*p) {
		const unsigned char *run = p;
		while (*p >= 0x20 && *p != '"' && *p != '\\')
			p++;
		if (p > run)
			sb_add(sb, run, (size_t)(p - run));
		if (!*p)
			break;
		unsigned char c = *p++;
		switch (c) {
		case '"':
			sb_adds(sb, "\\\"");
			break;
		case '\\':
			sb_adds(sb, "\\\\");
			break;
		case '\n':
			sb_adds(sb, "\\n");
			break;
		case '\r':
			sb_adds(sb, "\\r");
			break;
		case '\t':
			sb_adds(sb, "\\t");
			break;
		default:
			sb_adds(sb, "\\u00");
			sb_addch(sb, hex[c >> 4]);
			sb_addch(sb, hex[c & 15]);
		}
	}
	sb_addch(sb, '"');
}

/* sb_detach - the malloc'd buffer, to the caller. */
char *sb_detach(struct strbuf *sb, size_t *len)
{
	if (!sb->alloc)
		sb_grow(sb, 0);
	char *res = sb->buf;
	if (len)
		*len = sb->len;
	sb_init(sb, 0);
	return res;
}
