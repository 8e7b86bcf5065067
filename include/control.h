/* control.h - retry and cancel: one implementation over the store for the CLI (no
 * daemon running) and for the daemon (a control file from the CLI).
 *
 * Both follow fan-out: cancelling a parent cancels its children that have not ended,
 * retrying a failed, dead or cancelled parent brings back its failed, dead or cancelled
 * children (the succeeded ones keep their pages), so the parent can merge again.
 *
 * Changes join the caller's transaction when one is open (the daemon's group commit);
 * the CLI opens one for the whole request, so 20,000 jobs cost one commit.
 */
#ifndef SEGSPOOL_CONTROL_H
#define SEGSPOOL_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct strbuf;

enum control_action { CONTROL_RETRY, CONTROL_CANCEL };

/* control_request - what the CLI asks for: ids, or every job in a state. */
struct control_request {
	enum control_action action;
	int64_t *ids;
	size_t nids;
	int by_state;
	enum job_state state;
};

enum control_outcome {
	CONTROL_DONE,    /* queued again, or cancelled */
	CONTROL_ABORTED, /* cancel of a running job: handed to the running hook */
	CONTROL_REFUSED, /* not in a state that allows it (why says which) */
	CONTROL_ERROR,   /* no such job, or the store failed (why says so) */
};

struct control_hooks {
	/* running - a job being cancelled is running: the daemon aborts its request and
	 * ends it cancelled. NULL: no process runs it (a crash left it running): it is
	 * ended cancelled in the store at once. */
	void (*running)(int64_t id, void *arg);
	/* report - the outcome for each requested id, with how many child jobs it took
	 * along; may be NULL. */
	void (*report)(int64_t id, enum control_outcome outcome, size_t nchildren, const char *why,
	               void *arg);
	void *arg;
};

const char *control_action_name(enum control_action a); /* "retry", "cancel" */
int control_action_parse(const char *name, enum control_action *out);

void control_request_release(struct control_request *req);
/* control_request_to_json - the control file's text: {"action":..,"ids":[..]} or
 * {"action":..,"state":".."}; malloc'd. */
char *control_request_to_json(const struct control_request *req);
/* control_request_parse - a control file's text; 0, or -1 with the reason in why. */
int control_request_parse(const char *text, struct control_request *out, struct strbuf *why);

/* control_apply - carries out req: each id (every job in req->state when by_state, as
 * it is when called) and the children of fan-out parents. Returns how many ids were
 * refused or failed, or -1 when the store failed (the caller rolls back). */
int control_apply(struct store *st, const struct control_request *req, int64_t now_ms,
                  const struct control_hooks *hooks);

#endif
