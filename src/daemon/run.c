/* run.c - a claimed job's lifetime: linked in at the claim, freed at its next state; what
 * the steps ask of it (its retry policy, whether it has pages); the API's error envelope. */
#include "daemon_int.h"

#include <stdlib.h>

#include "catalog.h"
#include "config.h"
#include "job.h"
#include "retry.h"
#include "strbuf.h"
#include "util.h"

void run_link(struct daemon *d, struct run *r)
{
	r->next = d->runs;
	r->prev = NULL;
	if (d->runs)
		d->runs->prev = r;
	d->runs = r;
	d->nruns++;
}

/* run_free - unlinks and frees a run whose job has reached its next state. */
void run_free(struct run *r)
{
	struct daemon *d = r->d;
	if (r->prev)
		r->prev->next = r->next;
	else
		d->runs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	d->nruns--;
	if (r->held) {
		logmsg(LOG_ERROR, "job %lld: an answer held for the locked store is dropped at exit; "
		       "its attempt is recovered as interrupted at the next start", (long long)r->row.id);
		sb_release(&r->held->body);
		free(r->held);
	}
	if (r->job_parsed)
		job_release(&r->job);
	job_row_release(&r->row);
	sb_release(&r->request);
	free(r);
}

struct run *run_find(struct daemon *d, int64_t id)
{
	for (struct run *r = d->runs; r; r = r->next)
		if (r->row.id == id)
			return r;
	return NULL;
}

/* policy_of - the job's retry settings over the config's defaults. */
struct retry_policy policy_of(const struct daemon *d, const struct job *j)
{
	struct retry_policy own = {.max_attempts = j->max_attempts, .initial_ms = j->initial_ms,
				   .max_ms = j->max_ms, .max_age_ms = j->max_age_ms};
	return retry_policy_merge(&d->cfg->retry, &own);
}

int multi_page(const struct run *r)
{
	return r->job.op->paginated &&
	       (r->job.paginate != PAGINATE_NONE || r->row.parent_id != 0);
}

/* error_json - {"errors":[{"type":...,"message":...}]}, the API's own envelope shape. */
char *error_json(const char *type, const char *message, int status)
{
	struct strbuf sb = STRBUF_INIT;
	sb_adds(&sb, "{\"errors\":[{\"type\":");
	sb_add_json_string(&sb, type);
	sb_adds(&sb, ",\"message\":");
	sb_add_json_string(&sb, message);
	if (status)
		sb_addf(&sb, ",\"status\":%d", status);
	sb_adds(&sb, "}]}");
	return sb_detach(&sb, NULL);
}
