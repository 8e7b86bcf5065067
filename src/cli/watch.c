/* watch.c - segspool watch [ID]: a job's progress (or the queue's) read from the store
 * about once a second: redrawn in place on a terminal, one JSON line per change when
 * standard output is not one (a pipe, a file, a script).
 *
 * A job's watch ends with the job: exit 0 when it succeeded, 1 when it failed, died or
 * was cancelled, 130 when SIGINT or SIGTERM came first. The queue's runs until a signal
 * (exit 0) or, with --until-idle, until no job is queued, running or waiting.
 *
 * It only reads: the store is opened read-only, so watching never holds up the daemon
 * (WAL lets readers run while it writes) and works the same with or without one. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "cli.h"
#include "config.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

enum { WATCH_OK = 0, WATCH_FAILED = 1, WATCH_USAGE = 2, WATCH_INTERRUPTED = 130 };

/* how many looks the rates are measured over (at the default interval, 10 s) */
#define WATCH_SAMPLES 10
/* reads in a row that may fail (the store busy in a checkpoint, say) before watch gives up */
#define WATCH_MAX_ERRORS 5

static volatile sig_atomic_t stop_signal;

/* on_signal - SIGINT or SIGTERM: the loop ends after its sleep is cut short. */
static void on_signal(int sig)
{
	stop_signal = sig;
}

/* cli_open_store_ro - see cli.h. */
struct store *cli_open_store_ro(const struct config *cfg)
{
	struct store *st = NULL;
	char *err = NULL;
	if (store_open(cfg->db_path, STORE_READONLY, &st, &err) < 0) {
		fprintf(stderr, "segspool: %s\n", err ? err : "cannot open the store");
		free(err);
		return NULL;
	}
	return st;
}

/* rate_window - the last WATCH_SAMPLES values of a count and when they were read. */
struct rate_window {
	int64_t at_ms[WATCH_SAMPLES], value[WATCH_SAMPLES];
	int n, next;
};

/* rate_note - one more reading; a count that went down (a retry started the job's pages
 * over, jobs moved back into the queue) starts the window again. */
static void rate_note(struct rate_window *w, int64_t now_ms, int64_t value)
{
	int last = (w->next + WATCH_SAMPLES - 1) % WATCH_SAMPLES;
	if (w->n && value < w->value[last])
		w->n = 0;
	w->at_ms[w->next] = now_ms;
	w->value[w->next] = value;
	w->next = (w->next + 1) % WATCH_SAMPLES;
	if (w->n < WATCH_SAMPLES)
		w->n++;
}

/* rate_per_s - the count's growth per second across the window, from the last reading
 * before it began to grow (a job that waited before its first page did not go slower
 * for it); 0 before two readings or when it has not grown. */
static double rate_per_s(const struct rate_window *w)
{
	if (w->n < 2)
		return 0;
	int last = (w->next + WATCH_SAMPLES - 1) % WATCH_SAMPLES;
	int first = (w->next + WATCH_SAMPLES - w->n) % WATCH_SAMPLES;
	for (int k = w->n - 2; k > 0; k--) {
		int next = (first + 1) % WATCH_SAMPLES;
		if (w->value[next] != w->value[first])
			break;
		first = next;
	}
	int64_t dt = w->at_ms[last] - w->at_ms[first];
	int64_t dv = w->value[last] - w->value[first];
	return dt > 0 && dv > 0 ? (double)dv * 1000.0 / (double)dt : 0;
}

/* limit_rate - requests per second this config lets the job's operation go out at: its
 * workspace's rate and, when endpoint_limits is on, the operation's documented limit
 * (both buckets must admit a request, as dispatch.c's send_or_hold asks them); the lower
 * of the two, 0 when neither limits it. */
static double limit_rate(const struct config *cfg, const char *workspace, const struct op_def *op)
{
	double rate, burst;
	config_workspace_rate(cfg, workspace, &rate, &burst);
	if (rate <= 0)
		rate = 0;
	if (cfg->endpoint_limits && op && op->rate_per_min > 0) {
		double ep = op->rate_per_min / 60.0;
		if (!rate || ep < rate)
			rate = ep;
	}
	return rate;
}

/* what one look at a job found */
struct job_look {
	enum job_state state;
	int attempts, tries;
	int64_t pages, items, total; /* total: -1 unknown */
	int64_t children;            /* a fan-out parent's; 0 for other jobs */
	struct child_counts kids;
};

/* job_progress - what the view derives from the looks: how far the job is (percent, -1
 * unknown), when it should end at the rate seen (eta_s, -1), and how long the pages left
 * need at the rate limits (limit_s, -1); limit_rate the limit itself. */
struct job_progress {
	double percent, eta_s, limit_s, rate, limit_rate;
	int64_t pages_left;
};

struct watch {
	const struct config *cfg;
	struct store *st;
	int tty;
	int64_t id;
	char *op_id, *workspace;
	const struct op_def *op;
	struct rate_window done; /* items, or ended children, or ended jobs */
	struct strbuf last;      /* the last JSON line's compared part */
	struct strbuf frame;
	int64_t prev_ended, prev_at_ms;
	int frames;
};

/* look_job - the job's row and its children's counts: 0, 1 no such job, -1 error. */
static int look_job(struct watch *w, struct job_look *out)
{
	struct job_row row;
	memset(&row, 0, sizeof(row));
	int rc = store_get(w->st, w->id, &row);
	if (rc != 0)
		return rc;
	memset(out, 0, sizeof(*out));
	out->state = row.state;
	out->attempts = row.attempts;
	out->tries = row.tries;
	out->pages = row.pages_done;
	out->items = row.items_done;
	out->total = row.total_entries;
	if (!w->op_id) {
		w->op_id = xstrdup(row.op_id ? row.op_id : "?");
		w->workspace = xstrdup(row.workspace ? row.workspace : "default");
		w->op = catalog_find(w->op_id);
	}
	job_row_release(&row);
	int64_t kids_pages = 0, kids_items = 0;
	if (store_children_progress(w->st, w->id, &out->children, &kids_pages, &kids_items) < 0)
		return -1;
	if (out->children) {
		if (store_children_counts(w->st, w->id, &out->kids) < 0)
			return -1;
		/* the parent records pages of its own only when it merges its children's */
		if (!out->pages) {
			out->pages = kids_pages;
			out->items = kids_items;
		}
	}
	return 0;
}

/* job_estimate - percent, ETA and the rate limits' time for what look found. */
static void job_estimate(struct watch *w, const struct job_look *l, int64_t now_ms,
                         struct job_progress *p)
{
	memset(p, 0, sizeof(*p));
	p->percent = p->eta_s = p->limit_s = -1;
	int64_t done, goal;
	if (l->children) { /* a fan-out: its children ending */
		done = l->kids.total - l->kids.active;
		goal = l->kids.total;
	} else {
		done = l->items;
		goal = l->total;
	}
	rate_note(&w->done, now_ms, done);
	p->rate = rate_per_s(&w->done);
	if (l->state == JS_SUCCEEDED) {
		p->percent = 100;
		p->eta_s = 0;
	} else if (goal > 0) {
		p->percent = done >= goal ? 100.0 : 100.0 * (double)done / (double)goal;
		if (p->rate > 0)
			p->eta_s = ceil((double)(goal > done ? goal - done : 0) / p->rate);
	}
	if (l->children || l->total < 0 || l->pages <= 0 || job_state_terminal(l->state))
		return;
	/* the pages left at the size of those seen so far, each one request */
	double per_page = (double)l->items / (double)l->pages;
	int64_t left = l->total > l->items ? l->total - l->items : 0;
	p->pages_left = per_page > 0 ? (int64_t)ceil((double)left / per_page) : 0;
	p->limit_rate = limit_rate(w->cfg, w->workspace, w->op);
	if (p->limit_rate > 0)
		p->limit_s = ceil((double)p->pages_left / p->limit_rate);
}

/* add_seconds - a duration as a person reads it: "45 s", "12 min 5 s", "3 h 20 min". */
static void add_seconds(struct strbuf *sb, double s)
{
	long long n = (long long)s;
	if (n < 60)
		sb_addf(sb, "%lld s", n);
	else if (n < 3600)
		sb_addf(sb, "%lld min %lld s", n / 60, n % 60);
	else
		sb_addf(sb, "%lld h %lld min", n / 3600, n % 3600 / 60);
}

/* frame_begin - the top of a frame: home, the title and the time. */
static void frame_begin(struct watch *w, const char *title, int64_t now_ms)
{
	sb_reset(&w->frame);
	/* the first frame clears the screen; the next ones overwrite it line by line
	 * (each line's rest cleared), so the view does not flicker */
	sb_adds(&w->frame, w->frames++ ? "\033[H" : "\033[?25l\033[H\033[2J"); /* no cursor */
	char at[48];
	format_iso8601(now_ms, at);
	sb_addf(&w->frame, "segspool watch: %s    %s\033[K\n\033[K\n", title, at);
}

/* frame_line - one line of the frame, its rest cleared. */
static void frame_line(struct watch *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void frame_line(struct watch *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sb_vaddf(&w->frame, fmt, ap);
	va_end(ap);
	sb_adds(&w->frame, "\033[K\n");
}

/* frame_end - what is left of the old frame below cleared, and the frame written at once. */
static void frame_end(struct watch *w)
{
	sb_adds(&w->frame, "\033[J");
	fwrite(w->frame.buf, 1, w->frame.len, stdout);
	fflush(stdout);
}

/* draw_job - the terminal view of one job. */
static void draw_job(struct watch *w, const struct job_look *l, const struct job_progress *p,
                     int64_t now_ms)
{
	struct strbuf title = STRBUF_INIT, line = STRBUF_INIT;
	sb_addf(&title, "job %lld (%s)", (long long)w->id, w->op_id);
	frame_begin(w, title.buf, now_ms);
	frame_line(w, "state     %s", job_state_name(l->state));
	/* attempts counts against max_attempts, and starts again at each page */
	frame_line(w, "attempts  %d made, %d counted against max_attempts", l->tries, l->attempts);
	if (l->pages || l->total >= 0 || l->children) {
		frame_line(w, "pages     %lld", (long long)l->pages);
		if (l->total >= 0)
			frame_line(w, "items     %lld of %lld", (long long)l->items,
			           (long long)l->total);
		else
			frame_line(w, "items     %lld (total not known yet)", (long long)l->items);
	}
	if (l->children)
		frame_line(
		    w, "children  %d: %d succeeded, %d failed, %d dead, %d cancelled, %d active",
		    l->kids.total, l->kids.succeeded, l->kids.failed, l->kids.dead,
		    l->kids.cancelled, l->kids.active);
	if (p->percent >= 0) {
		sb_reset(&line);
		sb_addf(&line, "progress  %.1f%%", p->percent);
		if (p->eta_s > 0) {
			sb_addf(&line, ", about ");
			add_seconds(&line, p->eta_s);
			sb_addf(&line, " left at %.1f %s/s", p->rate,
			        l->children ? "children" : "items");
		}
		frame_line(w, "%s", line.buf);
	}
	if (p->limit_s >= 0) {
		sb_reset(&line);
		sb_addf(&line, "limit     %.2f requests/s: the %lld page(s) left need ",
		        p->limit_rate, (long long)p->pages_left);
		add_seconds(&line, p->limit_s);
		sb_adds(&line, " at that rate");
		frame_line(w, "%s", line.buf);
	}
	frame_end(w);
	sb_release(&title);
	sb_release(&line);
}

/* add_number - a JSON number member, null when negative (not known). */
static void add_number(cJSON *o, const char *name, double v)
{
	if (v < 0)
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddNumberToObject(o, name, v);
}

/* print_line - the JSON line, when its compared part (doc without "at" and the estimates,
 * which move every second) differs from the last line's. */
static void print_line(struct watch *w, cJSON *doc, cJSON *estimates, int64_t now_ms)
{
	char *key = cJSON_PrintUnformatted(doc);
	if (strcmp(key, w->last.buf) == 0 && w->frames) {
		free(key);
		return;
	}
	sb_reset(&w->last);
	sb_adds(&w->last, key);
	free(key);
	char at[48];
	format_iso8601(now_ms, at);
	cJSON *line = cJSON_CreateObject();
	cJSON_AddStringToObject(line, "at", at);
	for (cJSON *m = doc->child; m; m = m->next)
		cJSON_AddItemToObject(line, m->string, cJSON_Duplicate(m, 1));
	for (cJSON *m = estimates ? estimates->child : NULL; m; m = m->next)
		cJSON_AddItemToObject(line, m->string, cJSON_Duplicate(m, 1));
	char *text = cJSON_PrintUnformatted(line);
	printf("%s\n", text);
	fflush(stdout);
	free(text);
	cJSON_Delete(line);
	w->frames++;
}

/* emit_job - one job's line when something about it changed. */
static void emit_job(struct watch *w, const struct job_look *l, const struct job_progress *p,
                     int64_t now_ms)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddNumberToObject(doc, "id", (double)w->id);
	cJSON_AddStringToObject(doc, "op", w->op_id);
	cJSON_AddStringToObject(doc, "state", job_state_name(l->state));
	cJSON_AddNumberToObject(doc, "attempts", l->attempts);
	cJSON_AddNumberToObject(doc, "tries", l->tries);
	cJSON_AddNumberToObject(doc, "pages", (double)l->pages);
	cJSON_AddNumberToObject(doc, "items", (double)l->items);
	add_number(doc, "total", (double)l->total);
	if (l->children) {
		cJSON *k = cJSON_AddObjectToObject(doc, "children");
		cJSON_AddNumberToObject(k, "total", l->kids.total);
		cJSON_AddNumberToObject(k, "succeeded", l->kids.succeeded);
		cJSON_AddNumberToObject(k, "failed", l->kids.failed);
		cJSON_AddNumberToObject(k, "dead", l->kids.dead);
		cJSON_AddNumberToObject(k, "cancelled", l->kids.cancelled);
		cJSON_AddNumberToObject(k, "active", l->kids.active);
	}
	cJSON *est = cJSON_CreateObject();
	add_number(est, "percent", p->percent >= 0 ? round(p->percent * 10) / 10 : -1);
	add_number(est, "eta_s", p->eta_s);
	add_number(est, "limit_s", p->limit_s);
	print_line(w, doc, est, now_ms);
	cJSON_Delete(est);
	cJSON_Delete(doc);
}

/* watch_sleep - the pause between looks; 1 when a signal asked to stop. */
static int watch_sleep(int64_t interval_ms)
{
	struct timespec ts = {(time_t)(interval_ms / 1000), (long)(interval_ms % 1000) * 1000000L};
	if (!stop_signal)
		nanosleep(&ts, NULL);
	return stop_signal != 0;
}

/* watch_job - one job until it ends: 0 succeeded, 1 failed, dead or cancelled, 130
 * interrupted. */
static int watch_job(struct watch *w, int64_t interval_ms)
{
	int errors = 0;
	for (;;) {
		struct job_look l;
		int rc = look_job(w, &l);
		if (rc == 1) {
			fprintf(stderr, "segspool: no job %lld in %s\n", (long long)w->id,
			        w->cfg->db_name);
			return WATCH_FAILED;
		}
		if (rc < 0 && ++errors >= WATCH_MAX_ERRORS) {
			fprintf(stderr, "segspool: cannot read job %lld from %s: %s\n",
			        (long long)w->id, w->cfg->db_name, store_errmsg(w->st));
			return WATCH_FAILED;
		}
		if (rc == 0) {
			errors = 0;
			int64_t now = clock_wall_ms();
			struct job_progress p;
			job_estimate(w, &l, now, &p);
			if (w->tty)
				draw_job(w, &l, &p, now);
			else
				emit_job(w, &l, &p, now);
			if (job_state_terminal(l.state))
				return l.state == JS_SUCCEEDED ? WATCH_OK : WATCH_FAILED;
		}
		if (watch_sleep(interval_ms))
			return WATCH_INTERRUPTED;
	}
}

/* watch_queue - the jobs by state and the rate they end at, until a signal or, with
 * until_idle, until no job is active: 0, or 1 when the store cannot be read. */
static int watch_queue(struct watch *w, int64_t interval_ms, int until_idle)
{
	int errors = 0;
	for (;;) {
		int64_t counts[JS_COUNT];
		if (store_counts(w->st, counts) < 0) {
			if (++errors >= WATCH_MAX_ERRORS) {
				fprintf(stderr, "segspool: cannot count the jobs of %s: %s\n",
				        w->cfg->db_name, store_errmsg(w->st));
				return WATCH_FAILED;
			}
		} else {
			errors = 0;
			int64_t now = clock_wall_ms(), ended = 0, active = 0;
			for (int i = 0; i < JS_COUNT; i++) {
				if (job_state_terminal((enum job_state)i))
					ended += counts[i];
				else
					active += counts[i];
			}
			/* jobs ended per second since the last look (a retry takes some back) */
			double rate = 0, dt = (double)(now - w->prev_at_ms) / 1000.0;
			if (w->prev_at_ms && dt > 0 && ended > w->prev_ended)
				rate = (double)(ended - w->prev_ended) / dt;
			if (w->tty) {
				struct strbuf title = STRBUF_INIT;
				sb_addf(&title, "spool %s", w->cfg->spool_dir);
				frame_begin(w, title.buf, now);
				sb_release(&title);
				for (int i = 0; i < JS_COUNT; i++)
					frame_line(w, "%-10s %10lld",
					           job_state_name((enum job_state)i),
					           (long long)counts[i]);
				frame_line(w, "%s", "");
				frame_line(
				    w,
				    "%lld active, %lld ended; %.1f jobs/s ended in the last %.1f s",
				    (long long)active, (long long)ended, rate,
				    w->prev_at_ms ? dt : 0.0);
				frame_end(w);
			} else {
				cJSON *doc = cJSON_CreateObject(), *est = cJSON_CreateObject();
				cJSON *jobs = cJSON_AddObjectToObject(doc, "jobs");
				for (int i = 0; i < JS_COUNT; i++)
					cJSON_AddNumberToObject(jobs,
					                        job_state_name((enum job_state)i),
					                        (double)counts[i]);
				cJSON_AddNumberToObject(doc, "active", (double)active);
				cJSON_AddNumberToObject(est, "rate", round(rate * 100) / 100);
				print_line(w, doc, est, now);
				cJSON_Delete(est);
				cJSON_Delete(doc);
			}
			w->prev_ended = ended;
			w->prev_at_ms = now;
			if (until_idle && active == 0)
				return WATCH_OK;
		}
		if (watch_sleep(interval_ms))
			return WATCH_OK; /* the way a watch of the queue ends */
	}
}

/* parse_interval - --interval's seconds (0.1 to 3600, fractions allowed) in ms. */
static int parse_interval(const char *text, int64_t *ms)
{
	char *end;
	errno = 0;
	double s = strtod(text, &end);
	if (end == text || *end || errno || !(s >= 0.1 && s <= 3600))
		return -1;
	*ms = (int64_t)(s * 1000);
	return 0;
}

#define WATCH_USAGE_TEXT "usage: segspool watch [ID|--until-idle] [--interval SECONDS]"

int cmd_watch(struct config *cfg, int argc, char **argv)
{
	int64_t id = 0, interval_ms = 1000;
	int until_idle = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--until-idle") == 0) {
			until_idle = 1;
		} else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
			if (parse_interval(argv[++i], &interval_ms) < 0) {
				fprintf(stderr,
				        "segspool: watch: --interval wants seconds from 0.1 to "
				        "3600, not %s\n",
				        argv[i]);
				return WATCH_USAGE;
			}
		} else if (!id && argv[i][0] != '-') {
			char *end;
			errno = 0;
			long long n = strtoll(argv[i], &end, 10);
			if (*end || n <= 0 || errno) {
				fprintf(stderr,
				        "segspool: " WATCH_USAGE_TEXT " (ID is a job number)\n");
				return WATCH_USAGE;
			}
			id = n;
		} else {
			fprintf(stderr, "segspool: " WATCH_USAGE_TEXT "\n");
			return WATCH_USAGE;
		}
	}
	if (id && until_idle) {
		fprintf(stderr, "segspool: watch: --until-idle is for the whole queue; a job's "
		                "watch ends when the job does\n");
		return WATCH_USAGE;
	}
	struct watch w;
	memset(&w, 0, sizeof(w));
	w.cfg = cfg;
	w.id = id;
	w.tty = isatty(STDOUT_FILENO);
	sb_init(&w.last, 0);
	sb_init(&w.frame, 0);
	if (!(w.st = cli_open_store_ro(cfg)))
		return WATCH_FAILED;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: the sleep ends at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	int rc = id ? watch_job(&w, interval_ms) : watch_queue(&w, interval_ms, until_idle);
	if (w.tty && w.frames) {
		fputs("\033[?25h", stdout);
		fflush(stdout);
	}
	store_close(w.st);
	sb_release(&w.last);
	sb_release(&w.frame);
	free(w.op_id);
	free(w.workspace);
	return rc;
}
