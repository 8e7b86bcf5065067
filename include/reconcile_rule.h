/* reconcile_rule.h - exactly-once mutations after a lost answer: the operation table's
 * "reconcile" rules read, and what a lookup's page says. Pure: no I/O, no clock.
 *
 * A rule (data/operations.json, member "reconcile"; the generated table carries it as
 * JSON text in op_def.reconcile):
 *   {"lookup": "listSources", "params": {}, "match": {"slug": "$params.slug"},
 *    "done_when": "found", "result": {"source": "$item"}}
 * "lookup" is a paginated list operation sent with "params" ("$params.NAME": the job's
 * parameter NAME); an item matches when each member of "match" equals its value;
 * "done_when" "found" (a matching item means the lost request was applied) or "absent"
 * (no match on any page means it was). When done the job succeeds with "result" as its
 * data ("$item": the matching item). "gone_is_done": true (DELETEs) makes a 404 to a
 * resend after a lost answer a success; a rule may have only that and a result.
 */
#ifndef SEGSPOOL_RECONCILE_RULE_H
#define SEGSPOOL_RECONCILE_RULE_H

#include <stdint.h>

struct cJSON;

/* the outcomes recorded for a lookup's attempt (and a 404 taken as done) */
#define RECONCILE_RECONCILED "reconciled" /* the lost request was applied: the job is done */
#define RECONCILE_ABSENT "absent"         /* it was not: the mutation is sent */
#define RECONCILE_LOOKUP "lookup"         /* a page without the answer: the next is read */
#define RECONCILE_CONFLICT "conflict"     /* a 409 to a resend after a lost answer: look again */

struct reconcile_rule {
	struct cJSON *root; /* the parsed rule; the members below point into it */
	const char *lookup; /* operationId of the lookup, or NULL for none */
	const struct cJSON *params, *match, *result;
	int done_when_absent; /* 0: done when a match is found; 1: done when none is */
	int gone_is_done;
};

/* reconcile_rule_parse - text (op_def.reconcile) into out; -1 when it is not a rule (the
 * generator checks them, so only a hand-edited table can fail). */
int reconcile_rule_parse(const char *text, struct reconcile_rule *out);
void reconcile_rule_release(struct reconcile_rule *r);

/* reconcile_track - whether a job's next request must be a lookup, from its attempts in
 * the order they were made (reconcile_track_note each): an "unknown" mutation sets it (the
 * request may have been applied); any other mutation attempt, or a lookup that decided
 * ("absent", "reconciled"), clears it; a lookup that did not decide (failed, cut off,
 * "lookup" for a page) leaves it, so the lookup starts again. A lookup is a GET attempt:
 * the mutations that have rules are never GETs. */
struct reconcile_track {
	int pending;
};
void reconcile_track_note(struct reconcile_track *t, const char *request, const char *outcome);

/* reconcile_lookup_params - the lookup's parameters: the rule's params, "$params.NAME"
 * replaced by a copy of the job's (left out when the job has none). Caller deletes. */
struct cJSON *reconcile_lookup_params(const struct reconcile_rule *r,
                                      const struct cJSON *job_params);

/* reconcile_match - whether item has every member of the rule's match, each equal (as
 * JSON) to its value with "$params.NAME" resolved; a missing job parameter never matches. */
int reconcile_match(const struct reconcile_rule *r, const struct cJSON *item,
                    const struct cJSON *job_params);

enum reconcile_verdict {
	RECONCILE_DONE, /* the lost request was applied: succeed with reconcile_result */
	RECONCILE_SEND, /* it was not: send the mutation */
	RECONCILE_NEXT, /* undecided: read the page of next */
};

/* reconcile_page - what one page of the lookup says: items (its array of items), next
 * (its next cursor, NULL at the end). *item is set to the match when there is one. */
enum reconcile_verdict reconcile_page(const struct reconcile_rule *r, const struct cJSON *items,
                                      const char *next, const struct cJSON *job_params,
                                      const struct cJSON **item);
/* reconcile_verdict_outcome - the outcome an attempt with that verdict is recorded with. */
const char *reconcile_verdict_outcome(enum reconcile_verdict v);

/* reconcile_result - the job's data when done: a copy of the rule's result with "$item"
 * replaced by a copy of item (null when item is NULL). Caller deletes. */
struct cJSON *reconcile_result(const struct reconcile_rule *r, const struct cJSON *item);

/* reconcile_gone - a 404 on a rule with gone_is_done, to a job with tries >= 2 attempts of
 * which lost_answers were lost: the lost request deleted what the resend did not find. */
int reconcile_gone(const struct reconcile_rule *r, int status, int tries, int64_t lost_answers);

/* reconcile_conflict - a 409 on a rule done when found (a key the API keeps unique), to a
 * job with tries >= 2 attempts of which lost_answers were lost: the lost request may have
 * been applied after a lookup said it was not (the server still working on it), so look
 * again before failing. */
int reconcile_conflict(const struct reconcile_rule *r, int status, int tries, int64_t lost_answers);

#endif
