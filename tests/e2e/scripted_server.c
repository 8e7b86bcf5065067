/* scripted_server.c - a hostile API server for the e2e tests: answers from a script,
 * records every request.
 *
 *   scripted_server --script FILE --log FILE [--port N] [--port-file F]
 *
 * The script is a JSON list of rules (or {"rules": [...]}), tried in order; the first
 * whose method ("*" or absent: any) and path prefix match the request answers it:
 *
 *   {"method": "GET", "path": "/sources", "response": R}     or "sequence": [R, R, ...]
 *   R = {"status": 200, "headers": [["Name", "value"], ...] (or [{"name","value"}]),
 *        "body": "text" | "body_repeat": {"text": "x", "times": N},
 *        "gzip": true, "echo_auth": true, "delay_ms": N}
 *
 * A sequence answers successive matching requests with its responses in turn, the last
 * repeating. echo_auth puts the request's Authorization value where the body says
 * {{auth}}. gzip bodies are compressed once at start (a bomb of hundreds of MB costs a
 * second of CPU and a few hundred KB); plain body_repeat bodies are generated as they
 * are sent, so a 50 MB body costs the server nothing. Unmatched requests get a 404.
 *
 * The log has one JSON object a line, flushed before the answer goes out: t (epoch ms),
 * method, uri (path and query as sent, before any unescaping), headers ([name, value]
 * pairs in the order received), body_len, rule (index, -1: none) and status.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <zlib.h>

#include "strbuf.h"
#include "util.h"

struct response {
	int status;
	size_t nheaders;
	char **names, **values;
	struct strbuf body; /* the literal body, or the gzipped bytes */
	char *repeat;       /* body_repeat without gzip: generated while sending */
	size_t repeat_len;
	uint64_t repeat_total;
	int gzip, echo_auth;
	long delay_ms;
};

struct rule {
	char *method, *path;
	struct response *seq;
	size_t nseq, hits;
};

/* One request, from its URI (MHD's URI log callback) to its completion. */
struct request {
	char *uri;
	uint64_t body_len;
	int started;
};

static struct rule *rules;
static size_t nrules;
static FILE *log_file;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* gzip_into - text repeated times times, gzip-encoded into out; 0 or -1. */
static int gzip_into(struct strbuf *out, const char *text, size_t len, uint64_t times)
{
	z_stream z;
	unsigned char buf[1 << 16];
	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return error("cannot start zlib");
	/* feed a chunk of whole repetitions at a time: fewer calls for a tiny text */
	struct strbuf chunk = STRBUF_INIT;
	uint64_t per = len ? (1 << 16) / len + 1 : 1;
	for (uint64_t i = 0; i < per && i < times; i++)
		sb_add(&chunk, text, len);
	uint64_t left = times;
	int flush;
	do {
		uint64_t n = left < per ? left : per;
		left -= n;
		z.next_in = (unsigned char *)chunk.buf;
		z.avail_in = (uInt)(n * len);
		flush = left ? Z_NO_FLUSH : Z_FINISH;
		do {
			z.next_out = buf;
			z.avail_out = sizeof(buf);
			deflate(&z, flush);
			sb_add(out, buf, sizeof(buf) - z.avail_out);
		} while (z.avail_out == 0);
	} while (flush != Z_FINISH);
	deflateEnd(&z);
	sb_release(&chunk);
	return 0;
}

/* load_header - one ["name", "value"] or {"name", "value"} of a response. */
static int load_header(struct response *r, const cJSON *h)
{
	const cJSON *n = cJSON_IsArray(h) ? cJSON_GetArrayItem(h, 0)
	                                  : cJSON_GetObjectItemCaseSensitive(h, "name");
	const cJSON *v = cJSON_IsArray(h) ? cJSON_GetArrayItem(h, 1)
	                                  : cJSON_GetObjectItemCaseSensitive(h, "value");
	if (!cJSON_IsString(n) || !cJSON_IsString(v))
		return error("a header is not [name, value] or {\"name\", \"value\"}");
	r->names[r->nheaders] = xstrdup(n->valuestring);
	r->values[r->nheaders++] = xstrdup(v->valuestring);
	return 0;
}

/* load_response - one response object of the script. */
static int load_response(struct response *r, const cJSON *j)
{
	const cJSON *v;
	if (!cJSON_IsObject(j))
		return error("a response is not an object");
	v = cJSON_GetObjectItemCaseSensitive(j, "status");
	r->status = cJSON_IsNumber(v) ? v->valueint : 200;
	r->gzip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "gzip"));
	r->echo_auth = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "echo_auth"));
	v = cJSON_GetObjectItemCaseSensitive(j, "delay_ms");
	r->delay_ms = cJSON_IsNumber(v) ? (long)v->valuedouble : 0;
	const cJSON *hs = cJSON_GetObjectItemCaseSensitive(j, "headers");
	size_t n = (size_t)cJSON_GetArraySize(hs);
	r->names = xcalloc(n + 1, sizeof(char *));
	r->values = xcalloc(n + 1, sizeof(char *));
	const cJSON *h;
	cJSON_ArrayForEach(h, hs)
	{
		if (load_header(r, h))
			return -1;
	}
	sb_init(&r->body, 0);
	const cJSON *rep = cJSON_GetObjectItemCaseSensitive(j, "body_repeat");
	if (rep) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(rep, "text");
		const cJSON *k = cJSON_GetObjectItemCaseSensitive(rep, "times");
		if (!cJSON_IsString(t) || !t->valuestring[0] || !cJSON_IsNumber(k) ||
		    k->valuedouble < 0)
			return error("body_repeat needs a non-empty text and times >= 0");
		uint64_t times = (uint64_t)k->valuedouble;
		size_t len = strlen(t->valuestring);
		if (r->gzip)
			return gzip_into(&r->body, t->valuestring, len, times);
		r->repeat = xstrdup(t->valuestring);
		r->repeat_len = len;
		r->repeat_total = times * len;
		return 0;
	}
	v = cJSON_GetObjectItemCaseSensitive(j, "body");
	if (v && !cJSON_IsString(v))
		return error("a body is not a string");
	const char *text = v ? v->valuestring : "";
	if (r->gzip && !r->echo_auth) /* even an empty body is a gzip stream then */
		return gzip_into(&r->body, text, strlen(text), 1);
	sb_adds(&r->body, text);
	return 0;
}

/* load_rule - {"method", "path", "response" | "sequence"}. */
static int load_rule(struct rule *r, const cJSON *j)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "method");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "path");
	const cJSON *one = cJSON_GetObjectItemCaseSensitive(j, "response");
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "sequence");
	if (!cJSON_IsObject(j))
		return error("a rule is not an object");
	r->method = xstrdup(cJSON_IsString(m) ? m->valuestring : "*");
	r->path = xstrdup(cJSON_IsString(p) ? p->valuestring : "");
	if (cJSON_IsArray(seq) && cJSON_GetArraySize(seq) > 0) {
		r->seq = xcalloc((size_t)cJSON_GetArraySize(seq), sizeof(*r->seq));
		const cJSON *it;
		cJSON_ArrayForEach(it, seq)
		{
			if (load_response(&r->seq[r->nseq++], it))
				return -1;
		}
		return 0;
	}
	if (!one)
		return error("a rule has neither a response nor a non-empty sequence");
	r->seq = xcalloc(1, sizeof(*r->seq));
	r->nseq = 1;
	return load_response(&r->seq[0], one);
}

/* load_script - the rules of FILE. */
static int load_script(const char *path)
{
	struct strbuf text = STRBUF_INIT, why = STRBUF_INIT;
	if (read_file_at(AT_FDCWD, path, (size_t)1 << 30, &text, &why)) {
		error("cannot read script %s: %s", path, why.buf);
		sb_release(&why);
		return -1;
	}
	cJSON *root = cJSON_ParseWithLength(text.buf, text.len);
	sb_release(&text);
	const cJSON *list =
	    cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "rules") : root;
	int ret = 0;
	if (!cJSON_IsArray(list)) {
		ret = error("script %s is not a JSON list of rules", path);
	} else {
		rules = xcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*rules));
		const cJSON *it;
		cJSON_ArrayForEach(it, list)
		{
			if (load_rule(&rules[nrules++], it)) {
				ret = error("script %s: rule %zu is wrong", path, nrules - 1);
				break;
			}
		}
	}
	cJSON_Delete(root);
	return ret;
}

/* pick - the matching rule's response for this request, counting the hit. */
static const struct response *pick(const char *method, const char *path, int *rule_no)
{
	const struct response *r = NULL;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < nrules; i++) {
		struct rule *ru = &rules[i];
		if ((strcmp(ru->method, "*") && strcasecmp(ru->method, method)) ||
		    strncmp(path, ru->path, strlen(ru->path)))
			continue;
		r = &ru->seq[ru->hits < ru->nseq ? ru->hits : ru->nseq - 1];
		ru->hits++;
		*rule_no = (int)i;
		break;
	}
	pthread_mutex_unlock(&lock);
	return r;
}

/* add_header_pair - MHD's header iterator: [name, value] onto the array. */
static enum MHD_Result add_header_pair(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
	cJSON *pair = cJSON_CreateArray();
	(void)kind;
	cJSON_AddItemToArray(pair, cJSON_CreateString(key));
	cJSON_AddItemToArray(pair, cJSON_CreateString(value ? value : ""));
	cJSON_AddItemToArray(cls, pair);
	return MHD_YES;
}

/* log_request - one line, flushed: the tests read it while the daemon runs. */
static void log_request(struct MHD_Connection *conn, const char *method, const struct request *q,
                        int rule_no, int status)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "t", (double)clock_wall_ms());
	cJSON_AddStringToObject(o, "method", method);
	cJSON_AddStringToObject(o, "uri", q->uri);
	cJSON *hs = cJSON_AddArrayToObject(o, "headers");
	MHD_get_connection_values(conn, MHD_HEADER_KIND, add_header_pair, hs);
	cJSON_AddNumberToObject(o, "body_len", (double)q->body_len);
	cJSON_AddNumberToObject(o, "rule", rule_no);
	cJSON_AddNumberToObject(o, "status", status);
	char *line = cJSON_PrintUnformatted(o);
	pthread_mutex_lock(&lock);
	fprintf(log_file, "%s\n", line);
	fflush(log_file);
	pthread_mutex_unlock(&lock);
	free(line);
	cJSON_Delete(o);
}

/* repeat_reader - a body_repeat body, made as MHD asks for it. */
static ssize_t repeat_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	const struct response *r = cls;
	if (pos >= r->repeat_total)
		return MHD_CONTENT_READER_END_OF_STREAM;
	uint64_t left = r->repeat_total - pos;
	size_t n = left < max ? (size_t)left : max;
	for (size_t i = 0; i < n; i++)
		buf[i] = r->repeat[(pos + i) % r->repeat_len];
	return (ssize_t)n;
}

/* echo_body - the body with every {{auth}} replaced by auth, gzipped if asked. */
static void echo_body(struct strbuf *out, const struct response *r, const char *auth)
{
	struct strbuf plain = STRBUF_INIT;
	const char *p = r->body.buf, *hit;
	while ((hit = strstr(p, "{{auth}}"))) {
		sb_add(&plain, p, (size_t)(hit - p));
		sb_adds(&plain, auth ? auth : "");
		p = hit + 8;
	}
	sb_adds(&plain, p);
	if (r->gzip)
		gzip_into(out, plain.buf, plain.len, 1);
	else
		sb_add(out, plain.buf, plain.len);
	sb_release(&plain);
}

/* answer - the picked response (or a 404), after its delay. */
static enum MHD_Result answer(struct MHD_Connection *conn, const char *method, const char *path,
                              struct request *q)
{
	int rule_no = -1;
	const struct response *r = pick(method, path, &rule_no);
	static const char missing[] = "{\"errors\":[{\"type\":\"not-found\",\"message\":"
	                              "\"no rule of the script matches\"}]}";
	struct MHD_Response *resp;
	int has_type = 0;
	log_request(conn, method, q, rule_no, r ? r->status : 404);
	if (!r) {
		resp = MHD_create_response_from_buffer(strlen(missing), (void *)missing,
		                                       MHD_RESPMEM_PERSISTENT);
		MHD_add_response_header(resp, "Content-Type", "application/json");
		enum MHD_Result ret = MHD_queue_response(conn, 404, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	if (r->delay_ms > 0) {
		struct timespec ts = {r->delay_ms / 1000, (r->delay_ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	if (r->repeat) {
		resp = MHD_create_response_from_callback(r->repeat_total, 1 << 16, repeat_reader,
		                                         (void *)r, NULL);
	} else if (r->echo_auth) {
		struct strbuf b = STRBUF_INIT;
		echo_body(&b, r,
		          MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"));
		size_t len;
		char *data = sb_detach(&b, &len);
		resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	} else {
		resp = MHD_create_response_from_buffer(r->body.len, r->body.buf,
		                                       MHD_RESPMEM_PERSISTENT);
	}
	if (!resp)
		return MHD_NO;
	for (size_t i = 0; i < r->nheaders; i++) {
		has_type |= !strcasecmp(r->names[i], "Content-Type");
		MHD_add_response_header(resp, r->names[i], r->values[i]);
	}
	if (!has_type)
		MHD_add_response_header(resp, "Content-Type", "application/json");
	if (r->gzip)
		MHD_add_response_header(resp, "Content-Encoding", "gzip");
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* on_uri - MHD's URI log callback: the request as sent, before MHD unescapes it. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct request *q = xcalloc(1, sizeof(*q));
	(void)cls;
	(void)conn;
	q->uri = xstrdup(uri);
	return q;
}

/* on_request - headers first, then body chunks (counted), then the answer. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
	struct request *q = *con_cls;
	(void)cls;
	(void)version;
	(void)upload;
	if (!q->started) {
		q->started = 1;
		return MHD_YES;
	}
	if (*upload_size) {
		q->body_len += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	return answer(conn, method, url, q);
}

/* on_completed - frees the request. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
	struct request *q = *con_cls;
	(void)cls;
	(void)conn;
	(void)code;
	if (q) {
		free(q->uri);
		free(q);
		*con_cls = NULL;
	}
}

/* write_port_file - the port, atomically, for the test waiting on the file. */
static int write_port_file(const char *path, unsigned port)
{
	char text[16], *dir = xstrdup(path), *slash = strrchr(dir, '/');
	const char *base = slash ? path + (slash - dir) + 1 : path;
	if (slash)
		slash == dir ? (void)(slash[1] = '\0') : (void)(*slash = '\0');
	int dirfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (dirfd < 0)
		return error_errno("cannot open the directory of %s", path);
	int n = snprintf(text, sizeof(text), "%u\n", port);
	int ret = write_file_atomic_at(dirfd, base, text, (size_t)n, 0644);
	close(dirfd);
	return ret ? error("cannot write port file %s", path) : 0;
}

/* main - options, script, listen, announce, wait for SIGTERM/SIGINT. */
int main(int argc, char **argv)
{
	const char *script = NULL, *log_path = NULL, *port_file = NULL;
	long port = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--script"))
			script = argv[i + 1];
		else if (!strcmp(argv[i], "--log"))
			log_path = argv[i + 1];
		else if (!strcmp(argv[i], "--port-file"))
			port_file = argv[i + 1];
		else if (!strcmp(argv[i], "--port"))
			port = strtol(argv[i + 1], NULL, 10);
		else
			die("unknown option %s", argv[i]);
	}
	if (!script || !log_path || port < 0 || port > 65535 || argc % 2 == 0)
		die("usage: scripted_server --script FILE --log FILE [--port N] [--port-file F]");
	if (load_script(script))
		return 2;
	if (!(log_file = fopen(log_path, "a")))
		die("cannot open log %s: %s", log_path, strerror(errno));

	sigset_t stop;
	int sig;
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);

	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* 1 MiB a connection: room for the 200 KB header lines some scripts send */
	struct MHD_Daemon *d = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
	        MHD_USE_ERROR_LOG,
	    (uint16_t)port, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
	    (struct sockaddr *)&sa, MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)1 << 20, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_END);
	if (!d)
		die("cannot listen on 127.0.0.1:%ld", port);
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	unsigned bound = info ? info->port : (unsigned)port;
	printf("scripted_server listening on http://127.0.0.1:%u\n", bound);
	fflush(stdout);
	if (port_file && write_port_file(port_file, bound)) {
		MHD_stop_daemon(d);
		return 1;
	}
	while (sigwait(&stop, &sig) != 0)
		;
	MHD_stop_daemon(d);
	if (port_file)
		unlink(port_file);
	fclose(log_file);
	return 0;
}
