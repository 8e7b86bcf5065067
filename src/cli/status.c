/* status.c - segspool status [--json]: whether a daemon runs on this spool (who holds the
 * store's writer lock and the spool's lock, since when), and what its queue holds: jobs
 * by state, the job due first, the rate-limit holds. Exit 0 when a daemon runs, 3 when
 * none does (as systemctl status and LSB init scripts say "not running"), 1 when the
 * store cannot be read.
 *
 * The locks are looked at, never taken: taking one, even shared and for a moment, would
 * make a daemon starting at that moment find it held and refuse to start. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>

#include "cli.h"
#include "config.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

enum { STATUS_RUNNING = 0, STATUS_FAILED = 1, STATUS_USAGE = 2, STATUS_NOT_RUNNING = 3 };

/* one lock: whether it is held and by whom, and what its holder wrote beside it */
struct lock_view {
	int held;         /* 1 held, 0 free, -1 the kernel's lock list cannot be read */
	long pid;         /* the holder per the kernel (0: it does not say), else the line's */
	char role[32];    /* the line's role when it names that pid, else "" */
	int64_t since_ms; /* the line's mtime when it names that pid, else 0 */
	long line_pid;    /* who the line names (the last holder, when the lock is free) */
	int line_alive;   /* that process exists */
};

/* pid_alive - a process of that pid exists (EPERM: it does, another user's). */
static int pid_alive(long pid)
{
	return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* flock_holder - who holds an flock(2) on path, from /proc/locks ("1: FLOCK ADVISORY
 * WRITE PID MAJ:MIN:INODE 0 EOF", device numbers in hex): 1 held with *pid (0 when the
 * kernel does not say, e.g. a holder in another pid namespace), 0 free, -1 cannot tell.
 * A lock of line_pid's on the same inode number but another device counts too: on
 * overlayfs (a container's root) stat gives the underlying file's device, the lock list
 * the overlay's. */
static int flock_holder(const char *path, long line_pid, long *pid)
{
	struct stat sb;
	*pid = 0;
	if (stat(path, &sb) < 0)
		return 0; /* no file, no lock on it */
	FILE *f = fopen("/proc/locks", "re");
	if (!f)
		return -1;
	char line[256];
	int held = 0;
	while (!held && fgets(line, sizeof(line), f)) {
		char type[16], mode[16], access[16];
		long who;
		unsigned int maj, min;
		unsigned long long ino;
		/* "N: -> ..." lines are waiters, not holders: their type field is "->" */
		if (sscanf(line, "%*d: %15s %15s %15s %ld %x:%x:%llu", type, mode, access, &who,
		           &maj, &min, &ino) != 7 ||
		    strcmp(type, "FLOCK") != 0)
			continue;
		if ((ino_t)ino == sb.st_ino &&
		    (makedev(maj, min) == sb.st_dev || (line_pid > 0 && who == line_pid))) {
			held = 1;
			*pid = who > 0 ? who : 0;
		}
	}
	fclose(f);
	return held;
}

/* view_lock - a lock's state from the kernel and its owner line (pid, role, when). */
static void view_lock(const char *locked_path, long line_pid, const char *role, int64_t since_ms,
                      struct lock_view *v)
{
	memset(v, 0, sizeof(*v));
	v->line_pid = line_pid;
	v->line_alive = pid_alive(line_pid);
	v->held = flock_holder(locked_path, line_pid, &v->pid);
	if (v->held == -1) /* no lock list: the line, if its process lives, is the best guess */
		v->pid = v->line_alive ? line_pid : 0;
	else if (v->held == 1 && !v->pid)
		v->pid = line_pid;
	if (v->pid && v->pid == line_pid) {
		snprintf(v->role, sizeof(v->role), "%s", role);
		v->since_ms = since_ms;
	}
}

/* lock_is_daemon - the lock is held by a daemon: a holder whose line says so, or one of
 * unknown role (its line not written yet: only a daemon holds a lock for long). */
static int lock_is_daemon(const struct lock_view *v)
{
	int held = v->held == 1 || (v->held == -1 && v->pid);
	return held && strncmp(v->role, "cli:", 4) != 0;
}

/* spool_owner - SPOOL/.lock's line and mtime (spool.c writes it as it takes the lock). */
static void spool_owner(const char *lock_path, struct lock_owner *who, int64_t *since_ms)
{
	struct strbuf text = STRBUF_INIT, why = STRBUF_INIT;
	struct stat sb;
	memset(who, 0, sizeof(*who));
	*since_ms = 0;
	if (read_file_at(AT_FDCWD, lock_path, 4096, &text, &why) == 0 &&
	    lock_owner_parse(text.buf, text.len, who) == 0 && stat(lock_path, &sb) == 0)
		*since_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
	sb_release(&text);
	sb_release(&why);
}

/* add_time - an ISO-8601 time member, null for 0 (not known). */
static void add_time(cJSON *o, const char *name, int64_t ms)
{
	char at[48];
	if (!ms) {
		cJSON_AddNullToObject(o, name);
		return;
	}
	format_iso8601(ms, at);
	cJSON_AddStringToObject(o, name, at);
}

/* lock_json - {"held", "pid", "role", "since", "last_pid", "last_alive"}. */
static cJSON *lock_json(const struct lock_view *v)
{
	cJSON *o = cJSON_CreateObject();
	if (v->held < 0)
		cJSON_AddNullToObject(o, "held");
	else
		cJSON_AddBoolToObject(o, "held", v->held);
	if (v->pid)
		cJSON_AddNumberToObject(o, "pid", (double)v->pid);
	else
		cJSON_AddNullToObject(o, "pid");
	if (v->role[0])
		cJSON_AddStringToObject(o, "role", v->role);
	else
		cJSON_AddNullToObject(o, "role");
	add_time(o, "since", v->since_ms);
	if (v->line_pid)
		cJSON_AddNumberToObject(o, "last_pid", (double)v->line_pid);
	else
		cJSON_AddNullToObject(o, "last_pid");
	cJSON_AddBoolToObject(o, "last_alive", v->line_alive);
	return o;
}

/* add_holds - the buckets holding requests back now (hold_until_ms still to come). */
struct holds {
	cJSON *arr;
	int64_t now_ms;
};

static void add_hold(const char *key, double tokens, int64_t updated_ms, int64_t hold_until_ms,
                     void *arg)
{
	struct holds *h = arg;
	(void)tokens;
	(void)updated_ms;
	if (hold_until_ms <= h->now_ms)
		return;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "bucket", key);
	add_time(o, "until", hold_until_ms);
	cJSON_AddNumberToObject(o, "in_s", (double)(hold_until_ms - h->now_ms) / 1000.0);
	cJSON_AddItemToArray(h->arr, o);
}

/* add_node - a node of a shared store: who, since when, how much of its lease is left
 * (0 or less: it ran out; the next rescue takes its jobs back). */
static int add_node(const struct node_rec *n, void *arg)
{
	struct holds *h = arg;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)n->id);
	cJSON_AddStringToObject(o, "name", n->name);
	if (n->host)
		cJSON_AddStringToObject(o, "host", n->host);
	else
		cJSON_AddNullToObject(o, "host");
	cJSON_AddNumberToObject(o, "pid", (double)n->pid);
	add_time(o, "since", n->started_ms);
	cJSON_AddNumberToObject(o, "lease_left_s", (double)n->lease_left_ms / 1000.0);
	cJSON_AddBoolToObject(o, "live", n->lease_left_ms > 0);
	cJSON_AddItemToArray(h->arr, o);
	return 0;
}

/* queue_json - jobs by state, the job due first and the holds into doc: 0, 1 when there
 * is no store yet, -1 when it cannot be read (said on stderr). */
static int queue_json(const struct config *cfg, cJSON *doc, int64_t now_ms)
{
	struct stat sb;
	if (!store_is_postgresql(cfg->db_path) && stat(cfg->db_path, &sb) < 0 && errno == ENOENT) {
		cJSON_AddNullToObject(doc, "jobs");
		cJSON_AddNullToObject(doc, "oldest_due");
		cJSON_AddItemToObject(doc, "holds", cJSON_CreateArray());
		return 1;
	}
	struct store *st = cli_open_store_ro(cfg);
	if (!st)
		return -1;
	int64_t counts[JS_COUNT], id = 0, due = 0, active = 0;
	struct holds h = {cJSON_CreateArray(), now_ms};
	/* several daemons work a shared store: which, and whether their leases hold */
	struct holds nodes = {store_shared(st) == 1 ? cJSON_CreateArray() : NULL, now_ms};
	int found;
	if (store_counts(st, counts) < 0 || (found = store_oldest_due(st, &id, &due)) < 0 ||
	    store_bucket_foreach(st, add_hold, &h) < 0 ||
	    (nodes.arr && store_nodes_foreach(st, add_node, &nodes) < 0)) {
		fprintf(stderr, "segspool: cannot read the queue of %s: %s\n", cfg->db_name,
		        store_errmsg(st));
		cJSON_Delete(h.arr);
		cJSON_Delete(nodes.arr);
		store_close(st);
		return -1;
	}
	store_close(st);
	if (nodes.arr)
		cJSON_AddItemToObject(doc, "nodes", nodes.arr);
	cJSON *jobs = cJSON_AddObjectToObject(doc, "jobs");
	for (int i = 0; i < JS_COUNT; i++) {
		cJSON_AddNumberToObject(jobs, job_state_name((enum job_state)i), (double)counts[i]);
		if (!job_state_terminal((enum job_state)i))
			active += counts[i];
	}
	cJSON_AddNumberToObject(doc, "active", (double)active);
	if (found) {
		cJSON *o = cJSON_AddObjectToObject(doc, "oldest_due");
		cJSON_AddNumberToObject(o, "id", (double)id);
		add_time(o, "due", due);
		/* negative: due in the future */
		cJSON_AddNumberToObject(o, "overdue_s", (double)(now_ms - due) / 1000.0);
	} else {
		cJSON_AddNullToObject(doc, "oldest_due");
	}
	cJSON_AddItemToObject(doc, "holds", h.arr);
	return 0;
}

/* num - a number member, or def. */
static double num(const cJSON *o, const char *name, double def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static const char *str(const cJSON *o, const char *name)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
	return s ? s : "?";
}

/* add_ago - " (N s ago)" for a time in ms. */
static void add_ago(struct strbuf *sb, double seconds)
{
	long long n = (long long)seconds;
	if (n < 120)
		sb_addf(sb, "%lld s", n);
	else if (n < 7200)
		sb_addf(sb, "%lld min", n / 60);
	else if (n < 172800)
		sb_addf(sb, "%lld h", n / 3600);
	else
		sb_addf(sb, "%lld days", n / 86400);
}

/* print_text - the readable form of status's document. */
static void print_text(const cJSON *doc, int64_t now_ms)
{
	struct strbuf sb = STRBUF_INIT;
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(doc, "daemon");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "running"))) {
		sb_addf(&sb, "daemon: running, pid %.0f", num(d, "pid", 0));
		const char *since =
		    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "since"));
		int64_t at;
		if (since && parse_iso8601(since, &at) == 0) {
			sb_addf(&sb, ", since %s (", since);
			add_ago(&sb, (double)(now_ms - at) / 1000.0);
			sb_adds(&sb, ")");
		}
		const char *on = str(d, "spool");
		if (strcmp(on, str(doc, "spool")) != 0)
			sb_addf(&sb, ", on spool %s", on);
	} else {
		sb_adds(&sb, "daemon: not running");
		const cJSON *holder = cJSON_GetObjectItemCaseSensitive(doc, "store_lock");
		const char *role = str(holder, "role");
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(holder, "held")))
			sb_addf(&sb, " (the store is held by segspool %s, pid %.0f)",
			        strncmp(role, "cli:", 4) == 0 ? role + 4 : role,
			        num(holder, "pid", 0));
		else if (num(holder, "last_pid", 0) > 0)
			sb_addf(&sb, " (the last writer was pid %.0f, %s)",
			        num(holder, "last_pid", 0),
			        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(holder, "last_alive"))
			            ? "still alive but not holding the store"
			            : "since exited");
	}
	printf("%s\n  spool: %s\n  store: %s\n", sb.buf, str(doc, "spool"), str(doc, "db"));
	const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(doc, "nodes");
	for (const cJSON *n = nodes ? nodes->child : NULL; n; n = n->next) {
		double left = num(n, "lease_left_s", 0);
		sb_reset(&sb);
		sb_addf(&sb, "  node: %s (pid %.0f", str(n, "name"), num(n, "pid", 0));
		if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(n, "host")))
			sb_addf(&sb, " on %s", str(n, "host"));
		if (left > 0) {
			sb_addf(&sb, "), lease %.1f s left", left);
		} else {
			sb_adds(&sb, "), its lease ran out ");
			add_ago(&sb, -left);
			sb_adds(&sb, " ago: its jobs go back at the next rescue");
		}
		printf("%s\n", sb.buf);
	}
	const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(doc, "jobs");
	if (cJSON_IsNull(jobs)) {
		printf("  jobs: none (no store yet)\n");
	} else if (!jobs) {
		printf("  jobs: unknown (the store cannot be read)\n"); /* queue_json said why */
	} else {
		sb_reset(&sb);
		for (const cJSON *j = jobs->child; j; j = j->next)
			sb_addf(&sb, "%s%.0f %s", j == jobs->child ? "" : ", ", j->valuedouble,
			        j->string);
		printf("  jobs: %s\n", sb.buf);
	}
	const cJSON *due = cJSON_GetObjectItemCaseSensitive(doc, "oldest_due");
	if (cJSON_IsObject(due)) {
		double over = num(due, "overdue_s", 0);
		sb_reset(&sb);
		sb_addf(&sb, "  next due: job %.0f at %s (", num(due, "id", 0), str(due, "due"));
		add_ago(&sb, over < 0 ? -over : over);
		sb_adds(&sb, over < 0 ? " from now)" : " overdue)");
		printf("%s\n", sb.buf);
	}
	const cJSON *holds = cJSON_GetObjectItemCaseSensitive(doc, "holds");
	for (const cJSON *h = holds ? holds->child : NULL; h; h = h->next)
		printf("  hold: %s until %s (%.1f s)\n", str(h, "bucket"), str(h, "until"),
		       num(h, "in_s", 0));
	sb_release(&sb);
}

int cmd_status(struct config *cfg, int argc, char **argv)
{
	int json = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else {
			fprintf(stderr, "segspool: usage: segspool status [--json]\n");
			return STATUS_USAGE;
		}
	}
	int64_t now = clock_wall_ms();
	struct store_owner so;
	if (store_owner(cfg->db_path, &so) != 0)
		memset(&so, 0, sizeof(so));
	struct lock_view store_lock, spool_lock;
	view_lock(cfg->db_path, so.pid, so.role, so.since_ms, &store_lock);
	struct strbuf spool_path = STRBUF_INIT;
	sb_addf(&spool_path, "%s/.lock", cfg->spool_dir);
	struct lock_owner sw;
	int64_t spool_since;
	spool_owner(spool_path.buf, &sw, &spool_since);
	view_lock(spool_path.buf, sw.pid, sw.role, spool_since, &spool_lock);
	sb_release(&spool_path);

	/* the store's lock says it: a daemon holds it from its start to its exit, whatever
	 * happens to the spool's lock file; the spool's says it while a daemon starts */
	const struct lock_view *d = lock_is_daemon(&store_lock)   ? &store_lock
	                            : lock_is_daemon(&spool_lock) ? &spool_lock
	                                                          : NULL;
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddBoolToObject(doc, "running", d != NULL);
	cJSON *dj = cJSON_AddObjectToObject(doc, "daemon");
	if (d) {
		cJSON_AddNumberToObject(dj, "pid", (double)d->pid);
		/* a line that names another pid (not written yet): when the other lock's does */
		int64_t since = d->since_ms;
		if (!since && spool_lock.pid == d->pid)
			since = spool_lock.since_ms;
		add_time(dj, "since", since);
		/* the spool the daemon runs on: its line's, which may not be this config's when
		 * two configs name one database */
		const char *on =
		    d == &store_lock && so.pid == d->pid && so.spool[0] ? so.spool : cfg->spool_dir;
		cJSON_AddStringToObject(dj, "spool", on);
		if (since)
			cJSON_AddNumberToObject(dj, "up_s", (double)(now - since) / 1000.0);
		else
			cJSON_AddNullToObject(dj, "up_s");
	} else {
		cJSON_AddNullToObject(dj, "pid");
		cJSON_AddNullToObject(dj, "since");
		cJSON_AddNullToObject(dj, "up_s");
		cJSON_AddNullToObject(dj, "spool");
	}
	cJSON_AddStringToObject(doc, "spool", cfg->spool_dir);
	cJSON_AddStringToObject(doc, "db", cfg->db_name);
	cJSON_AddItemToObject(doc, "store_lock", lock_json(&store_lock));
	cJSON_AddItemToObject(doc, "spool_lock", lock_json(&spool_lock));
	int q = queue_json(cfg, doc, now);
	if (json) {
		char *text = cJSON_PrintUnformatted(doc);
		printf("%s\n", text);
		free(text);
	} else {
		print_text(doc, now);
	}
	cJSON_Delete(doc);
	if (q < 0)
		return STATUS_FAILED;
	return d ? STATUS_RUNNING : STATUS_NOT_RUNNING;
}
