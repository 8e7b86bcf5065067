/* test_reconcile_rule - reconcile rules: parsing, the lookup's params, matching, a page's
 * verdict, the result, the 404 rule and the attempt tracker. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "reconcile_rule.h"
#include "testlib.h"

#define CREATE_SOURCE                                                                              \
	"{\"done_when\":\"found\",\"lookup\":\"listSources\",\"match\":{\"slug\":"                 \
	"\"$params.slug\"},\"params\":{},\"result\":{\"source\":\"$item\"}}"
#define REMOVE_CONNECTION                                                                          \
	"{\"done_when\":\"absent\",\"gone_is_done\":true,\"lookup\":"                              \
	"\"listConnectedSourcesFromWarehouse\",\"match\":{\"id\":\"$params.sourceId\"},"           \
	"\"params\":{\"warehouseId\":\"$params.warehouseId\",\"fixed\":\"x\"},"                    \
	"\"result\":{\"status\":\"SUCCESS\"}}"
#define DELETE "{\"gone_is_done\":true,\"result\":{\"status\":\"SUCCESS\"}}"

/* printed - v printed without spaces, freed by the caller. */
static char *printed(const cJSON *v)
{
	return cJSON_PrintUnformatted(v);
}

TEST(parse_rules)
{
	struct reconcile_rule r;
	CHECK_INT(reconcile_rule_parse(CREATE_SOURCE, &r), 0);
	CHECK_STR(r.lookup, "listSources");
	CHECK_INT(r.done_when_absent, 0);
	CHECK_INT(r.gone_is_done, 0);
	reconcile_rule_release(&r);
	CHECK_INT(reconcile_rule_parse(REMOVE_CONNECTION, &r), 0);
	CHECK_INT(r.done_when_absent, 1);
	CHECK_INT(r.gone_is_done, 1);
	reconcile_rule_release(&r);
	CHECK_INT(reconcile_rule_parse(DELETE, &r), 0);
	CHECK(r.lookup == NULL);
	reconcile_rule_release(&r);
	/* not rules: no result, a lookup without a match, neither lookup nor gone_is_done */
	CHECK_INT(reconcile_rule_parse(NULL, &r), -1);
	CHECK_INT(reconcile_rule_parse("[]", &r), -1);
	CHECK_INT(reconcile_rule_parse("{\"gone_is_done\":true}", &r), -1);
	CHECK_INT(reconcile_rule_parse("{\"lookup\":\"listSources\",\"result\":{}}", &r), -1);
	CHECK_INT(reconcile_rule_parse("{\"lookup\":7,\"match\":{\"a\":\"b\"},\"result\":{}}", &r),
	          -1);
	CHECK_INT(reconcile_rule_parse("{\"result\":{}}", &r), -1);
	CHECK(r.root == NULL);
}

TEST(lookup_params)
{
	struct reconcile_rule r;
	CHECK_INT(reconcile_rule_parse(REMOVE_CONNECTION, &r), 0);
	cJSON *job = cJSON_Parse("{\"warehouseId\":\"wh_1\",\"sourceId\":\"src_1\"}");
	cJSON *p = reconcile_lookup_params(&r, job);
	char *s = printed(p);
	CHECK_STR(s, "{\"warehouseId\":\"wh_1\",\"fixed\":\"x\"}");
	free(s);
	cJSON_Delete(p);
	/* a job without the parameter: left out, not sent as "$params.warehouseId" */
	cJSON *none = cJSON_Parse("{}");
	p = reconcile_lookup_params(&r, none);
	s = printed(p);
	CHECK_STR(s, "{\"fixed\":\"x\"}");
	free(s);
	cJSON_Delete(p);
	cJSON_Delete(none);
	cJSON_Delete(job);
	reconcile_rule_release(&r);
}

TEST(matching)
{
	struct reconcile_rule r;
	CHECK_INT(reconcile_rule_parse(CREATE_SOURCE, &r), 0);
	cJSON *job = cJSON_Parse("{\"slug\":\"web-eu\",\"enabled\":true}");
	cJSON *same = cJSON_Parse("{\"id\":\"src_1\",\"slug\":\"web-eu\"}");
	cJSON *other = cJSON_Parse("{\"id\":\"src_2\",\"slug\":\"web-eu2\"}");
	cJSON *no_slug = cJSON_Parse("{\"id\":\"src_3\"}");
	cJSON *number = cJSON_Parse("{\"slug\":7}");
	CHECK_INT(reconcile_match(&r, same, job), 1);
	CHECK_INT(reconcile_match(&r, other, job), 0);
	CHECK_INT(reconcile_match(&r, no_slug, job), 0);
	CHECK_INT(reconcile_match(&r, number, job), 0);
	CHECK_INT(reconcile_match(&r, NULL, job), 0);
	/* a job without a slug matches nothing, not an item without one */
	cJSON *empty = cJSON_Parse("{}");
	CHECK_INT(reconcile_match(&r, same, empty), 0);
	CHECK_INT(reconcile_match(&r, no_slug, empty), 0);
	cJSON_Delete(empty);
	cJSON_Delete(number);
	cJSON_Delete(no_slug);
	cJSON_Delete(other);
	cJSON_Delete(same);
	cJSON_Delete(job);
	reconcile_rule_release(&r);
	/* a literal value in match is compared as it is */
	CHECK_INT(
	    reconcile_rule_parse("{\"lookup\":\"l\",\"match\":{\"kind\":\"a\"},\"result\":{}}", &r),
	    0);
	cJSON *a = cJSON_Parse("{\"kind\":\"a\"}");
	CHECK_INT(reconcile_match(&r, a, NULL), 1);
	cJSON_Delete(a);
	reconcile_rule_release(&r);
}

TEST(page_verdicts)
{
	struct reconcile_rule found, absent;
	CHECK_INT(reconcile_rule_parse(CREATE_SOURCE, &found), 0);
	CHECK_INT(reconcile_rule_parse(REMOVE_CONNECTION, &absent), 0);
	cJSON *job = cJSON_Parse("{\"slug\":\"b\",\"sourceId\":\"src_b\"}");
	cJSON *with =
	    cJSON_Parse("[{\"id\":\"src_a\",\"slug\":\"a\"},{\"id\":\"src_b\",\"slug\":\"b\"}]");
	cJSON *without = cJSON_Parse("[{\"id\":\"src_a\",\"slug\":\"a\"}]");
	const cJSON *item;
	CHECK_INT(reconcile_page(&found, with, "c1", job, &item), RECONCILE_DONE);
	CHECK(item == cJSON_GetArrayItem(with, 1));
	CHECK_INT(reconcile_page(&found, without, "c1", job, &item), RECONCILE_NEXT);
	CHECK(item == NULL);
	CHECK_INT(reconcile_page(&found, without, NULL, job, &item), RECONCILE_SEND);
	CHECK_INT(reconcile_page(&found, without, "", job, &item), RECONCILE_SEND);
	CHECK_INT(reconcile_page(&found, NULL, NULL, job, &item), RECONCILE_SEND);
	/* done when absent: a match on any page means send; none on the last, done */
	CHECK_INT(reconcile_page(&absent, with, "c1", job, &item), RECONCILE_SEND);
	CHECK_INT(reconcile_page(&absent, without, "c1", job, &item), RECONCILE_NEXT);
	CHECK_INT(reconcile_page(&absent, without, NULL, job, &item), RECONCILE_DONE);
	CHECK_STR(reconcile_verdict_outcome(RECONCILE_DONE), "reconciled");
	CHECK_STR(reconcile_verdict_outcome(RECONCILE_SEND), "absent");
	CHECK_STR(reconcile_verdict_outcome(RECONCILE_NEXT), "lookup");
	cJSON_Delete(without);
	cJSON_Delete(with);
	cJSON_Delete(job);
	reconcile_rule_release(&absent);
	reconcile_rule_release(&found);
}

TEST(results)
{
	struct reconcile_rule r;
	CHECK_INT(reconcile_rule_parse(CREATE_SOURCE, &r), 0);
	cJSON *item = cJSON_Parse("{\"id\":\"src_1\",\"slug\":\"web\"}");
	cJSON *res = reconcile_result(&r, item);
	char *s = printed(res);
	/* the shape createSource answers with: data.source */
	CHECK_STR(s, "{\"source\":{\"id\":\"src_1\",\"slug\":\"web\"}}");
	free(s);
	cJSON_Delete(res);
	res = reconcile_result(&r, NULL);
	s = printed(res);
	CHECK_STR(s, "{\"source\":null}");
	free(s);
	cJSON_Delete(res);
	cJSON_Delete(item);
	reconcile_rule_release(&r);
	CHECK_INT(reconcile_rule_parse("{\"gone_is_done\":true,\"result\":{\"a\":[1,\"$item\"],"
	                               "\"b\":{\"c\":\"SUCCESS\"}}}",
	                               &r),
	          0);
	res = reconcile_result(&r, NULL);
	s = printed(res);
	CHECK_STR(s, "{\"a\":[1,null],\"b\":{\"c\":\"SUCCESS\"}}");
	free(s);
	cJSON_Delete(res);
	reconcile_rule_release(&r);
}

TEST(gone)
{
	struct reconcile_rule del, create;
	CHECK_INT(reconcile_rule_parse(DELETE, &del), 0);
	CHECK_INT(reconcile_rule_parse(CREATE_SOURCE, &create), 0);
	CHECK_INT(reconcile_gone(&del, 404, 2, 1), 1);
	CHECK_INT(reconcile_gone(&del, 404, 2, 0), 0); /* no lost answer: a real 404 */
	CHECK_INT(reconcile_gone(&del, 404, 1, 1), 0);
	CHECK_INT(reconcile_gone(&del, 409, 3, 1), 0);
	CHECK_INT(reconcile_gone(&create, 404, 3, 1), 0);
	reconcile_rule_release(&create);
	reconcile_rule_release(&del);
}

TEST(conflict)
{
	struct reconcile_rule del, create, absent;
	CHECK_INT(reconcile_rule_parse(DELETE, &del), 0);
	CHECK_INT(reconcile_rule_parse(CREATE_SOURCE, &create), 0);
	CHECK_INT(reconcile_rule_parse(REMOVE_CONNECTION, &absent), 0);
	CHECK_INT(reconcile_conflict(&create, 409, 3, 1), 1);
	CHECK_INT(reconcile_conflict(&create, 409, 3, 0), 0); /* a slug taken by another */
	CHECK_INT(reconcile_conflict(&create, 409, 1, 1), 0);
	CHECK_INT(reconcile_conflict(&create, 404, 3, 1), 0);
	CHECK_INT(reconcile_conflict(&del, 409, 3, 1), 0);    /* no lookup */
	CHECK_INT(reconcile_conflict(&absent, 409, 3, 1), 0); /* a 409 is no sign of removal */
	reconcile_rule_release(&absent);
	reconcile_rule_release(&create);
	reconcile_rule_release(&del);
}

TEST(tracker)
{
	struct reconcile_track t = {0};
	reconcile_track_note(&t, "POST /sources", "ok");
	CHECK_INT(t.pending, 0);
	reconcile_track_note(&t, "POST /sources", "unknown");
	CHECK_INT(t.pending, 1);
	/* lookups that did not decide leave it: the lookup starts over */
	reconcile_track_note(&t, "GET /sources?pagination[count]=200", "retry");
	reconcile_track_note(&t, "GET /sources?pagination[count]=200", "unknown");
	reconcile_track_note(&t, "GET /sources?pagination[count]=200", "lookup");
	reconcile_track_note(&t, "GET /sources?pagination[count]=200", NULL);
	CHECK_INT(t.pending, 1);
	reconcile_track_note(&t, "GET /sources?pagination[count]=200", "absent");
	CHECK_INT(t.pending, 0);
	reconcile_track_note(&t, "POST /sources", "unknown");
	CHECK_INT(t.pending, 1);
	reconcile_track_note(&t, "GET /sources", "reconciled");
	CHECK_INT(t.pending, 0);
	/* a mutation answered clears it; one lost again sets it again */
	reconcile_track_note(&t, "DELETE /sources/src_1", "unknown");
	reconcile_track_note(&t, "DELETE /sources/src_1", "retry");
	CHECK_INT(t.pending, 0);
	reconcile_track_note(&t, NULL, "unknown");
	CHECK_INT(t.pending, 1);
}

int main(void)
{
	RUN(parse_rules);
	RUN(lookup_params);
	RUN(matching);
	RUN(page_verdicts);
	RUN(results);
	RUN(gone);
	RUN(conflict);
	RUN(tracker);
	return tl_finish();
}
