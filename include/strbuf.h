/* strbuf.h - growable byte buffers, after git's strbuf.
 *
 * Invariants:
 *  - buf is never NULL: an empty, unallocated strbuf points at strbuf_slopbuf;
 *  - buf[len] == '\0' always, so buf can be passed where a C string is wanted;
 *  - alloc == 0 means buf is not owned (the slop buffer); otherwise len < alloc.
 * Allocation failure aborts the process (die): there is no partial state to undo.
 */
#ifndef SEGSPOOL_STRBUF_H
#define SEGSPOOL_STRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

extern char strbuf_slopbuf[1];

struct strbuf {
	size_t alloc;
	size_t len;
	char *buf;
};

#define STRBUF_INIT                                                                                \
	{                                                                                          \
		0, 0, strbuf_slopbuf                                                               \
	}

void sb_init(struct strbuf *sb, size_t hint);
void sb_release(struct strbuf *sb);
void sb_reset(struct strbuf *sb);
void sb_grow(struct strbuf *sb, size_t extra);
void sb_setlen(struct strbuf *sb, size_t len);
void sb_add(struct strbuf *sb, const void *data, size_t len);
void sb_adds(struct strbuf *sb, const char *s);
/* sb_addch - appends one byte; inline, as serializers call it for every delimiter. */
static inline void sb_addch(struct strbuf *sb, char c)
{
	if (sb->len + 1 >= sb->alloc)
		sb_grow(sb, 1);
	sb->buf[sb->len++] = c;
	sb->buf[sb->len] = '\0';
}
void sb_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vaddf(struct strbuf *sb, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Percent-encodes everything but RFC 3986 unreserved characters. */
void sb_add_urlencoded(struct strbuf *sb, const char *s);
/* Appends s as a JSON string literal, quotes included. */
void sb_add_json_string(struct strbuf *sb, const char *s);
void sb_add_int(struct strbuf *sb, int64_t v); /* decimal, as %" PRId64 " prints it */
/* Hands the buffer to the caller (malloc'd, NUL-terminated); sb is left empty. */
char *sb_detach(struct strbuf *sb, size_t *len);

#endif
