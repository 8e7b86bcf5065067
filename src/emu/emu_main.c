/* emu_main.c - segspool-emu: command line, start, and a clean stop on SIGTERM/SIGINT. */
#include "emu.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "segspool_version.h"
#include "util.h"

static const char usage_text[] =
    "usage: segspool-emu [options]\n"
    "An offline emulator of the Segment Public API (api.segmentapis.com), on 127.0.0.1.\n"
    "\n"
    "  --port N              port to listen on; 0 (default) picks a free one\n"
    "  --port-file F         write the port to F (atomically) once listening\n"
    "  --token T             accept only \"Authorization: Bearer T\" (default: any token)\n"
    "  --rate N/PERIOD       token bucket per token: N per s|min|h (e.g. 100/s, 600/min)\n"
    "  --endpoint-limits     also enforce the documented per-endpoint limits\n"
    "  --fail-rate P         answer --fail-status (default 503) with probability P\n"
    "  --fail-status S       status of --fail-rate answers\n"
    "  --reset-before-rate P drop the connection before reading the request\n"
    "  --reset-rate P        apply the request, then drop the connection unanswered\n"
    "  --delay-ms N          delay every answer by N ms\n"
    "  --hang-rate P         sleep --hang-ms (default 30000) before answering\n"
    "  --hang-ms N\n"
    "  --trickle-rate P      apply, then send the body a few bytes every 100 ms\n"
    "  --truncate-rate P     apply, then send half of the declared Content-Length\n"
    "  --nonjson-rate P      answer 502 with an HTML body, nothing applied\n"
    "  --seed N              seed for ids, catalogs, event volumes and faults (default 1)\n"
    "  --catalog-size N      sources and destinations catalog entries (default 150, max 5000);\n"
    "                        entries Segment publishes keep their real ids (the Javascript\n"
    "                        source is IqDTy1TpoU; see data/emu_seeds.json)\n"
    "  --users N             seeded users user_1..user_N (default 25)\n"
    "  --log                 one line per request on stderr\n"
    "  --help                this text\n"
    "  --version             segspool VERSION\n"
    "\n"
    "Admin (no auth): GET /__emu/stats, GET /__emu/state, GET|POST /__emu/config,\n"
    "POST /__emu/reset.\n";

struct cli {
	long port;
	const char *port_file;
	const char *token;
	uint64_t seed;
	long catalog_size, users;
	struct emu_settings set;
};

static _Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* usage_error - message, hint, exit 2. */
static _Noreturn void usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "segspool-emu: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\ntry 'segspool-emu --help'\n");
	exit(2);
}

/* number_arg - a whole number in [lo, hi] for option opt. */
static long number_arg(const char *opt, const char *v, long lo, long hi)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < lo || n > hi)
		usage_error("%s needs a whole number in range", opt);
	return n;
}

/* is_flag - options that take no value. */
static int is_flag(const char *name)
{
	return !strcmp(name, "endpoint-limits") || !strcmp(name, "log") || !strcmp(name, "help") ||
	       !strcmp(name, "version");
}

/* is_option - a name the command line knows. */
static int is_option(const char *name)
{
	static const char *const own[] = {"help",  "version", "port",         "port-file",
	                                  "token", "seed",    "catalog-size", "users"};
	for (size_t i = 0; i < ARRAY_SIZE(own); i++)
		if (!strcmp(name, own[i]))
			return 1;
	return settings_known(name);
}

/* cli_option - one --name value pair. */
static void cli_option(struct cli *cli, const char *name, const char *value)
{
	struct strbuf err = STRBUF_INIT;
	if (!strcmp(name, "help")) {
		fputs(usage_text, stdout);
		exit(0);
	} else if (!strcmp(name, "version")) {
		puts("segspool " SEGSPOOL_VERSION);
		exit(0);
	} else if (!strcmp(name, "port")) {
		cli->port = number_arg("--port", value, 0, 65535);
	} else if (!strcmp(name, "port-file")) {
		cli->port_file = value;
	} else if (!strcmp(name, "token")) {
		cli->token = value;
	} else if (!strcmp(name, "seed")) {
		cli->seed = (uint64_t)number_arg("--seed", value, 0, 0x7fffffffL);
	} else if (!strcmp(name, "catalog-size")) {
		cli->catalog_size = number_arg("--catalog-size", value, 1, 5000);
	} else if (!strcmp(name, "users")) {
		cli->users = number_arg("--users", value, 0, 100000);
	} else if (settings_set(&cli->set, name, value, &err)) {
		usage_error("%s", err.buf);
	}
	sb_release(&err);
}

/* parse_cli - --name value, --name=value and bare flags. */
static void parse_cli(struct cli *cli, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strncmp(arg, "--", 2) != 0)
			usage_error("unexpected argument %s", arg);
		char *name = xstrdup(arg + 2);
		char *eq = strchr(name, '=');
		const char *value;
		if (eq)
			*eq = '\0';
		if (!is_option(name)) {
			free(name);
			usage_error("unknown option %s", arg);
		}
		if (eq) {
			value = eq + 1;
		} else if (is_flag(name)) {
			value = "true";
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			free(name);
			usage_error("%s needs a value", arg);
		}
		cli_option(cli, name, value);
		free(name);
	}
}

/* write_port_file - the port, atomically, for tests that wait on the file. */
static int write_port_file(const char *path, unsigned port)
{
	char text[16];
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	const char *base = path;
	int dirfd, ret;
	if (slash) {
		base = path + (slash - dir) + 1;
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	dirfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (dirfd < 0)
		return error_errno("cannot open the directory of %s", path);
	int n = snprintf(text, sizeof(text), "%u\n", port);
	ret = write_file_atomic_at(dirfd, base, text, (size_t)n, 0644);
	close(dirfd);
	return ret ? error("cannot write port file %s", path) : 0;
}

/* wait_for_stop - blocks until SIGTERM or SIGINT (blocked in every thread). */
static void wait_for_stop(const sigset_t *set)
{
	int sig;
	while (sigwait(set, &sig) != 0)
		;
}

/* main - parse, seed, listen, announce, wait, stop, free. */
int main(int argc, char **argv)
{
	struct cli cli = {.port = 0, .seed = 1, .catalog_size = 150, .users = 25};
	static struct emu emu;
	sigset_t stop_set;
	uint16_t port;

	settings_defaults(&cli.set);
	parse_cli(&cli, argc, argv);
	if (ops_check())
		return 1;
	emu_init(&emu, cli.seed, (size_t)cli.catalog_size, (size_t)cli.users);
	emu.set = cli.set;
	emu.token = cli.token ? xstrdup(cli.token) : NULL;

	/* block before MHD starts its threads, so that they inherit the mask and only
	 * sigwait here sees the signal */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGTERM);
	sigaddset(&stop_set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_set, NULL);

	struct MHD_Daemon *d = server_start(&emu, (uint16_t)cli.port, &port);
	if (!d) {
		error("cannot listen on 127.0.0.1:%ld", cli.port);
		emu_release(&emu);
		return 1;
	}
	printf("segspool-emu listening on http://127.0.0.1:%u\n", (unsigned)port);
	fflush(stdout);
	if (cli.port_file && write_port_file(cli.port_file, port)) {
		atomic_store(&emu.stopping, 1);
		server_stop(d);
		emu_release(&emu);
		return 1;
	}
	wait_for_stop(&stop_set);
	atomic_store(&emu.stopping, 1);
	server_stop(d);
	if (cli.port_file)
		unlink(cli.port_file);
	emu_release(&emu);
	return 0;
}
