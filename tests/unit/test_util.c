/* test_util - strbuf and util: buffers, time formats, durations, atomic files. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strbuf.h"
#include "testlib.h"
#include "util.h"

TEST(strbuf_basics)
{
	struct strbuf sb = STRBUF_INIT;
	CHECK_INT(sb.len, 0);
	CHECK_STR(sb.buf, "");
	sb_addf(&sb, "%d-%s", 42, "x");
	CHECK_STR(sb.buf, "42-x");
	sb_add_urlencoded(&sb, "a b/é");
	CHECK_STR(sb.buf, "42-xa%20b%2F%C3%A9");
	sb_reset(&sb);
	sb_add_json_string(&sb, "q\"\\\n\x01");
	CHECK_STR(sb.buf, "\"q\\\"\\\\\\n\\u0001\"");
	/* runs between escapes, escapes at either end, bytes >= 0x7f as they are */
	sb_reset(&sb);
	sb_add_json_string(&sb, "\tab\x1f\"cd\\\xc3\xa9\x7f\r");
	CHECK_STR(sb.buf, "\"\\tab\\u001f\\\"cd\\\\\xc3\xa9\x7f\\r\"");
	sb_reset(&sb);
	sb_add_json_string(&sb, "");
	CHECK_STR(sb.buf, "\"\"");
	const int64_t ints[] = {0, 7, -7, 10, 1764547200000, INT64_MAX, INT64_MIN};
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		char want[32];
		snprintf(want, sizeof(want), "%" PRId64, ints[i]);
		sb_reset(&sb);
		sb_add_int(&sb, ints[i]);
		CHECK_STR(sb.buf, want);
	}
	sb_reset(&sb);
	sb_adds(&sb, "fifteen chars..");
	for (int i = 0; i < 10000; i++)
		sb_addch(&sb, 'x');
	CHECK_INT(sb.buf[sb.len], 0);
	size_t len;
	char *s = sb_detach(&sb, &len);
	CHECK_INT(len, 10000 + 15);
	CHECK_INT(sb.len, 0);
	free(s);
	sb_release(&sb);
}

/* span_of - the text json_member_span finds for key, or "(none)". */
static const char *span_of(const char *text, const char *key)
{
	static char out[256];
	size_t off, len;
	if (json_member_span(text, strlen(text), key, &off, &len) < 0)
		return "(none)";
	snprintf(out, sizeof(out), "%.*s", (int)len, text + off);
	return out;
}

TEST(json_member_spans)
{
	CHECK_STR(span_of("{\"data\":{\"a\":1},\"x\":2}", "data"), "{\"a\":1}");
	/* nested members of the same name, brackets in strings, escaped quotes, whitespace */
	CHECK_STR(span_of("{ \"errors\" : [ \"}\" , {\"data\":1} ] ,\n \"data\" : "
	                  "{\"s\":\"a\\\"}b\"} }",
	                  "data"),
	          "{\"s\":\"a\\\"}b\"}");
	CHECK_STR(span_of("{\"data\":1,\"data\":2}", "data"), "1"); /* the first, as cJSON */
	CHECK_STR(span_of("{\"data\":null}", "data"), "null");
	CHECK_STR(span_of("{\"x\":[1,[2,{}]],\"data\":\"str\"}", "data"), "\"str\"");
	CHECK_STR(span_of("{\"data\":-1.5e3 ,\"y\":1}", "data"), "-1.5e3");
	CHECK_STR(span_of("{\"dat\":1,\"datax\":2}", "data"), "(none)");
	CHECK_STR(span_of("{\"d\\u0061ta\":1}", "data"), "(none)"); /* escaped name: printed */
	CHECK_STR(span_of("[{\"data\":1}]", "data"), "(none)");
	CHECK_STR(span_of("{}", "data"), "(none)");
	CHECK_STR(span_of("{\"data\":{\"a\":[1,2}", "data"), "(none)"); /* cut short */
}

/* valid_n - json_object_check over a string that may hold NUL bytes (n given). */
static int valid_n(const char *text, size_t n)
{
	return json_object_check(text, n, NULL, NULL, NULL);
}

static int valid(const char *text)
{
	return valid_n(text, strlen(text));
}

/* checked_span_of - the span json_object_check reports for key while validating text:
 * "(none)" when it has none, "(invalid)" when text is not an object. */
static const char *checked_span_of(const char *text, const char *key)
{
	static char out[256];
	size_t off = 7, len = 7;
	if (!json_object_check(text, strlen(text), key, &off, &len))
		return "(invalid)";
	if (len == 0)
		return "(none)";
	snprintf(out, sizeof(out), "%.*s", (int)len, text + off);
	return out;
}

TEST(json_object_check_finds_a_member)
{
	/* what json_member_span finds, found while validating */
	static const char *const texts[] = {
	    "{\"data\":{\"a\":1},\"x\":2}",
	    "{ \"errors\" : [ \"}\" , {\"data\":1} ] ,\n \"data\" : {\"s\":\"a\\\"}b\"} }",
	    "{\"data\":1,\"data\":2}",
	    "{\"data\":null}",
	    "{\"x\":[1,[2,{}]],\"data\":\"str\"}",
	    "{\"data\":-1.5e3 ,\"y\":1}",
	    "{\"dat\":1,\"datax\":2}",
	    "{\"d\\u0061ta\":1}",
	    "{}",
	    "{\"data\":{}}",
	    "{\"data\":[]}",
	    "{\"x\":{\"data\":1}}",
	    "{\"data\":{\"id\":\"s1\",\"n\":{\"m\":[1,{\"k\":\"v\"}]}},\"z\":0}",
	    "{\"a\\n\":0,\"data\":5}", /* an escaped name first: cJSON must be asked */
	    "{\"data\":5,\"a\\n\":0}",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		char want[256];
		snprintf(want, sizeof(want), "%s", span_of(texts[i], "data"));
		const char *got = checked_span_of(texts[i], "data");
		if (strcmp(want, got))
			fprintf(stderr, "  %s: want %s, got %s\n", texts[i], want, got);
		CHECK_STR(got, want);
	}
	CHECK_STR(checked_span_of("{\"data\":{\"a\":[1,2}", "data"), "(invalid)");
	CHECK_STR(checked_span_of("{\"data\": 1 }", "data"), "1");
	CHECK_STR(checked_span_of("{\"data\":{\"a\":1} }", "data"), "{\"a\":1}");
}

/* nested - {"a":[[...]]} with arrays levels deep, so 1 + levels deep in all. */
static void nested(struct strbuf *sb, int levels)
{
	sb_reset(sb);
	sb_adds(sb, "{\"a\":");
	for (int k = 0; k < levels; k++)
		sb_addch(sb, '[');
	for (int k = 0; k < levels; k++)
		sb_addch(sb, ']');
	sb_addch(sb, '}');
}

TEST(json_object_validity)
{
	static const char *const good[] = {
	    "{}",
	    " {\n} ",
	    "{\"a\":1}",
	    "{\"a\":[]}",
	    "{\"a\":{}}",
	    "{\"a\":[1,2,3]}",
	    "{\"a\":-0,\"b\":0.5,\"c\":1e9,\"d\":-1.25E-3,\"e\":2e+2}",
	    "{\"a\":true,\"b\":false,\"c\":null}",
	    "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"}",
	    "{\"a\":[{\"b\":[[],{}]},\"x\"]}",
	    "{\"\":\"\"}",
	    "{\"a\":1,\"a\":2}",
	    "{\"utf8\":\"\xc3\xa9\"}",
	    "\t{ \"a\" : [ 1 , 2 ] }\r\n",
	};
	static const char *const bad[] = {
	    "",
	    " ",
	    "[]",
	    "1",
	    "\"s\"",
	    "null",
	    "{",
	    "}",
	    "{\"a\"}",
	    "{\"a\":}",
	    "{\"a\" 1}",
	    "{\"a\":1,}",
	    "{,}",
	    "{\"a\":1 \"b\":2}",
	    "{\"a\":[1,]}",
	    "{\"a\":[,1]}",
	    "{\"a\":[1 2]}",
	    "{\"a\":01}",
	    "{\"a\":1.}",
	    "{\"a\":.5}",
	    "{\"a\":1e}",
	    "{\"a\":+1}",
	    "{\"a\":-}",
	    "{\"a\":tru}",
	    "{\"a\":truex}",
	    "{\"a\":nul}",
	    "{\"a\":\"\\x\"}",
	    "{\"a\":\"\\u12\"}",
	    "{\"a\":\"\\u12g4\"}",
	    "{\"a\":\"\n\"}",
	    "{\"a\":\"open}",
	    "{a:1}",
	    "{'a':1}",
	    "{\"a\":1}}",
	    "{\"a\":1}{}",
	    "{\"a\":1} x",
	    "{\"a\":[}",
	    "{\"a\":{]}",
	    "{\"a\":[1}]",
	    "{\"a\":NaN}",
	    "{1:2}",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!valid(good[i]))
			fprintf(stderr, "  should be valid: %s\n", good[i]);
		CHECK_INT(valid(good[i]), 1);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (valid(bad[i]))
			fprintf(stderr, "  should be invalid: %s\n", bad[i]);
		CHECK_INT(valid(bad[i]), 0);
	}
	/* a NUL inside, even in a string, and every proper prefix of a valid object */
	CHECK_INT(valid_n("{\"a\":\"\0\"}", 8), 0);
	CHECK_INT(valid_n("{}\0", 3), 0);
	const char *whole = "{\"data\":{\"source\":{\"id\":\"x\",\"n\":[1,-2.5e3,true,null],"
	                    "\"e\":{}}},\"s\":\"a\\u0041\\\"\"}";
	CHECK_INT(valid(whole), 1);
	int prefixes_rejected = 1;
	for (size_t k = 0; k < strlen(whole); k++)
		if (valid_n(whole, k))
			prefixes_rejected = 0;
	CHECK_INT(prefixes_rejected, 1);
	/* nesting up to JSON_MAX_DEPTH, not beyond */
	struct strbuf deep = STRBUF_INIT;
	nested(&deep, JSON_MAX_DEPTH - 1);
	CHECK_INT(valid(deep.buf), 1);
	nested(&deep, JSON_MAX_DEPTH);
	CHECK_INT(valid(deep.buf), 0);
	sb_release(&deep);
}

TEST(time_formats)
{
	int64_t ms;
	CHECK_INT(parse_iso8601("1970-01-01T00:00:00Z", &ms), 0);
	CHECK_INT(ms, 0);
	CHECK_INT(parse_iso8601("2026-11-26T03:00:00Z", &ms), 0);
	CHECK_INT(ms, 1795662000000LL);
	char out[48];
	format_iso8601(ms, out);
	CHECK_STR(out, "2026-11-26T03:00:00Z");
	CHECK_INT(parse_iso8601("2026-11-26T04:00:00.250+01:00", &ms), 0);
	CHECK_INT(ms, 1795662000250LL);
	format_iso8601(ms, out);
	CHECK_STR(out, "2026-11-26T03:00:00.250Z");
	CHECK_INT(parse_iso8601("2026-02-30T00:00:00Z", &ms), -1);
	CHECK_INT(parse_iso8601("2026-11-26", &ms), -1);
	CHECK_INT(parse_iso8601("2026-11-26T03:00:00", &ms), -1);
	CHECK_INT(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", &ms), 0);
	CHECK_INT(ms, 784111777000LL);
	CHECK_INT(parse_http_date("yesterday", &ms), -1);
	CHECK_INT(parse_duration_ms("1d", &ms), 0);
	CHECK_INT(ms, 86400000);
	CHECK_INT(parse_duration_ms("6h", &ms), 0);
	CHECK_INT(ms, 21600000);
	CHECK_INT(parse_duration_ms("250ms", &ms), 0);
	CHECK_INT(ms, 250);
	CHECK_INT(parse_duration_ms("0s", &ms), -1);
	CHECK_INT(parse_duration_ms("3 days", &ms), -1);
}

TEST(atomic_files)
{
	char dir[] = "/tmp/segspool-test-util-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	CHECK(dfd >= 0);
	CHECK_INT(write_file_atomic_at(dfd, "a.json", "{}", 2, 0600), 0);
	struct strbuf data = STRBUF_INIT, why = STRBUF_INIT;
	CHECK_INT(read_file_at(dfd, "a.json", 100, &data, &why), 0);
	CHECK_STR(data.buf, "{}");
	CHECK(faccessat(dfd, ".a.json.part", F_OK, 0) != 0);
	sb_reset(&data);
	CHECK_INT(read_file_at(dfd, "a.json", 1, &data, &why), -1);
	CHECK(strstr(why.buf, "larger than") != NULL);
	sb_reset(&why);
	CHECK_INT(symlinkat("a.json", dfd, "l.json"), 0);
	CHECK_INT(read_file_at(dfd, "l.json", 100, &data, &why), -1);
	CHECK(strstr(why.buf, "symbolic link") != NULL);
	sb_reset(&why);
	CHECK_INT(mkdirat(dfd, "d.json", 0700), 0);
	CHECK_INT(read_file_at(dfd, "d.json", 100, &data, &why), -1);
	CHECK(strstr(why.buf, "directory") != NULL);
	char h1[17], h2[17];
	hash_hex("abc", 3, h1);
	hash_hex("abd", 3, h2);
	CHECK(strcmp(h1, h2) != 0);
	CHECK_INT(strlen(h1), 16);
	unlinkat(dfd, "a.json", 0);
	unlinkat(dfd, "l.json", 0);
	unlinkat(dfd, "d.json", AT_REMOVEDIR);
	close(dfd);
	rmdir(dir);
	sb_release(&data);
	sb_release(&why);
}

/* capture_log - what logmsg writes to stderr for one message with arg as its %s. */
static void capture_log(const char *arg, struct strbuf *out)
{
	char path[] = "/tmp/test_util_log.XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	unlink(path);
	int saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	logmsg(LOG_WARN, "cannot read %s", arg);
	dup2(saved, STDERR_FILENO);
	close(saved);
	char buf[512];
	ssize_t n = pread(fd, buf, sizeof(buf), 0);
	if (n > 0)
		sb_add(out, buf, (size_t)n);
	close(fd);
}

TEST(log_escapes_control_characters)
{
	struct strbuf sb = STRBUF_INIT;
	static const char in[] = "a\nb\rc\td\x01"
	                         "e\x7f\x1b[0m\xc3\xa9\\";
	log_escape(&sb, in, sizeof(in) - 1);
	CHECK_STR(sb.buf, "a\\nb\\rc\\td\\x01e\\x7f\\x1b[0m\xc3\xa9\\");
	sb_reset(&sb);
	log_escape(&sb, "x\0y", 3); /* a NUL inside the span is a control byte too */
	CHECK_STR(sb.buf, "x\\x00y");
	sb_reset(&sb);
	/* a file name with a newline cannot forge a second log line */
	capture_log("evil.json\n2026-12-01T00:00:00Z segspool[1] info: forged", &sb);
	CHECK(strstr(sb.buf, " warn: cannot read evil.json\\n2026-12-01T00:00:00Z") != NULL);
	CHECK(strchr(sb.buf, '\n') == sb.buf + sb.len - 1);
	sb_release(&sb);
}

TEST(lock_owner_lines)
{
	struct strbuf sb = STRBUF_INIT;
	struct lock_owner o;
	lock_owner_line(&sb, 4242, "cli:retry", "spool", "/var/spool/a b\nx");
	CHECK_STR(sb.buf, "pid=4242 role=cli:retry spool=/var/spool/a b\\nx\n");
	CHECK_INT(lock_owner_parse(sb.buf, sb.len, &o), 0);
	CHECK_INT(o.pid, 4242);
	CHECK_STR(o.role, "cli:retry");
	CHECK_STR(lock_owner_command(&o), "retry");
	CHECK_INT(lock_owner_parse("977\n", 4, &o), 0); /* before roles: a daemon */
	CHECK_INT(o.pid, 977);
	CHECK_STR(o.role, "daemon");
	CHECK(lock_owner_command(&o) == NULL);
	const char *bad[] = {"",
	                     "\n",
	                     "pid=",
	                     "pid=0 role=daemon",
	                     "pid=12",
	                     "pid=12 role=",
	                     "x12",
	                     "12 role=daemon",
	                     "pid=-3 role=daemon"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK_INT(lock_owner_parse(bad[i], strlen(bad[i]), &o), -1);
	sb_release(&sb);
}

/* the published FNV-1a 64 test vectors; a hash continued over pieces is the hash of the
 * whole, and the string and memory forms agree */
TEST(fnv1a64_vectors)
{
	CHECK(fnv1a64("", FNV1A64_INIT) == 0xcbf29ce484222325ULL);
	CHECK(fnv1a64("a", FNV1A64_INIT) == 0xaf63dc4c8601ec8cULL);
	CHECK(fnv1a64("foobar", FNV1A64_INIT) == 0x85944171f73967e8ULL);
	CHECK(fnv1a64("bar", fnv1a64("foo", FNV1A64_INIT)) == 0x85944171f73967e8ULL);
	CHECK(fnv1a64_mem("foo\0bar", 7, FNV1A64_INIT) != fnv1a64("foo", FNV1A64_INIT));
	CHECK(fnv1a64_mem("foobar", 6, FNV1A64_INIT) == 0x85944171f73967e8ULL);
	char h[17];
	hash_hex("foobar", 6, h);
	CHECK_STR(h, "85944171f73967e8");
}

int main(void)
{
	RUN(strbuf_basics);
	RUN(json_member_spans);
	RUN(json_object_validity);
	RUN(json_object_check_finds_a_member);
	RUN(time_formats);
	RUN(atomic_files);
	RUN(log_escapes_control_characters);
	RUN(lock_owner_lines);
	RUN(fnv1a64_vectors);
	return tl_finish();
}
