/* test_catalog - the generated table against data/operations.json, lookups, routing and
 * the exact requests catalog_build produces. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "catalog.h"
#include "json_print.h"
#include "strbuf.h"
#include "testlib.h"
#include "util.h"

#define BASE "https://api.segmentapis.com"

static cJSON *operations;

/* load_operations - data/operations.json, found from this file's location. */
static cJSON *load_operations(void)
{
	struct strbuf path = STRBUF_INIT, text = STRBUF_INIT, why = STRBUF_INIT;
	const char *slash = strrchr(__FILE__, '/');
	cJSON *json = NULL;

	if (slash)
		sb_add(&path, __FILE__, (size_t)(slash - __FILE__));
	else
		sb_adds(&path, ".");
	sb_adds(&path, "/../../data/operations.json");
	if (read_file_at(AT_FDCWD, path.buf, 1 << 20, &text, &why) == 0)
		json = cJSON_Parse(text.buf);
	else
		fprintf(stderr, "cannot read %s: %s\n", path.buf, why.buf);
	sb_release(&path);
	sb_release(&text);
	sb_release(&why);
	return json;
}

/* json_str - a string member of obj, or NULL. */
static const char *json_str(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* named_operations - the entries of data/operations.json with an operation_id. */
static int named_operations(void)
{
	const cJSON *entry;
	int n = 0;
	cJSON_ArrayForEach(entry, operations)
	{
		n += json_str(entry, "operation_id") != NULL;
	}
	return n;
}

/* build - catalog_build of a JSON params text; returns its result. */
static int build(const char *opid, const char *params_json, const char *cursor, int page_count,
                 struct built_request *req, struct strbuf *err)
{
	cJSON *params = params_json ? cJSON_Parse(params_json) : NULL;
	const struct op_def *op = catalog_find(opid);
	int rc;

	if (params_json && !params)
		fprintf(stderr, "bad test JSON: %s\n", params_json);
	sb_reset(err);
	rc = catalog_build(op, params, BASE, cursor, page_count, req, err);
	cJSON_Delete(params);
	return rc;
}

TEST(table_matches_operations_json)
{
	const cJSON *entry;
	int seen = 0;

	CHECK(operations != NULL);
	/* one entry per operation of the JSON, raw (the entry without an id) included */
	size_t entries = (size_t)cJSON_GetArraySize(operations);
	CHECK(entries > 1);
	CHECK_INT(catalog_count(), entries);
	CHECK(catalog_at(entries) == NULL);
	for (size_t i = 1; i < catalog_count(); i++)
		CHECK(strcmp(catalog_at(i - 1)->operation_id, catalog_at(i)->operation_id) < 0);
	cJSON_ArrayForEach(entry, operations)
	{
		const char *id = json_str(entry, "operation_id");
		const struct op_def *op;
		if (!id)
			continue;
		seen++;
		op = catalog_find(id);
		CHECK(op != NULL);
		if (!op)
			continue;
		CHECK_STR(op->operation_id, id);
		CHECK(catalog_find(json_str(entry, "name")) == op);
		CHECK_STR(op->method, json_str(entry, "method"));
		CHECK_STR(op->path, json_str(entry, "path"));
		CHECK_STR(op->version, json_str(entry, "media_type_version"));
		CHECK_INT(op->success_status,
		          cJSON_GetObjectItemCaseSensitive(entry, "success_status")->valueint);
		CHECK_INT(op->paginated,
		          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(entry, "paginated")));
		CHECK_INT(op->mutates, strcmp(op->method, "GET") != 0);
		CHECK(!op->is_raw);
		if (op->paginated)
			CHECK_STR(op->items_key, json_str(entry, "items_key"));
		else
			CHECK(op->items_key == NULL);
	}
	CHECK_INT(seen, named_operations());
	CHECK_INT(seen, entries - 1);
}

TEST(find_by_id_and_name)
{
	const struct op_def *op = catalog_find("createSource");

	CHECK(op != NULL);
	CHECK(catalog_find("Create Source") == op);
	CHECK(catalog_find("create source") == op);
	CHECK(catalog_find("CREATESOURCE") == op);
	CHECK(catalog_find("createSources") == NULL);
	CHECK(catalog_find("") == NULL);
	CHECK(catalog_find(NULL) == NULL);
	CHECK_STR(op->name, "Create Source");
	CHECK_INT(op->success_status, 201);
	CHECK_STR(op->result_keys[0], "source");
	CHECK(op->result_keys[1] == NULL);
	CHECK_STR(catalog_find("getSource")->result_keys[1], "trackingPlanId");

	op = catalog_find("raw");
	CHECK(op != NULL && op->is_raw);
	CHECK(catalog_find("Raw Request") == op);
	CHECK_STR(op->method, "ANY");
	CHECK_INT(op->nparams, 5);
	CHECK_INT(catalog_param(op, "method")->type, PT_ENUM);
	CHECK_INT(catalog_param(op, "method")->required, 1);
	CHECK_INT(catalog_param(op, "body")->type, PT_ANY);
	CHECK_INT(catalog_param(op, "query")->type, PT_OBJECT);
	CHECK_STR(catalog_param(op, "version")->enum_values[2], "v1alpha");
	CHECK(catalog_param(op, "version")->enum_values[3] == NULL);
}

TEST(params_and_types)
{
	const struct op_def *op = catalog_find("getEventsVolumeFromWorkspace");
	const struct op_param *p;

	p = catalog_param(op, "granularity");
	CHECK(p && p->in == PARAM_QUERY && p->type == PT_ENUM && p->required);
	CHECK_STR(p->enum_values[0], "DAY");
	CHECK_STR(p->enum_values[2], "MINUTE");
	CHECK(p->enum_values[3] == NULL);
	p = catalog_param(op, "startTime");
	CHECK(p && p->type == PT_DATETIME && p->required);
	p = catalog_param(op, "groupBy");
	CHECK(p && p->type == PT_STRING_ARRAY && !p->required && p->enum_values);
	CHECK_STR(p->enum_values[2], "source");
	p = catalog_param(op, "sourceId");
	CHECK(p && p->type == PT_STRING_ARRAY && p->enum_values == NULL);
	CHECK_INT(catalog_param(op, "pagination")->type, PT_PAGINATION);
	CHECK(catalog_param(op, "Granularity") == NULL);
	CHECK(catalog_param(op, "nope") == NULL);

	op = catalog_find("getSource");
	p = catalog_param(op, "sourceId");
	CHECK(p && p->in == PARAM_PATH && p->type == PT_STRING && p->required);
	CHECK_INT(catalog_param(catalog_find("createInvites"), "invites")->type, PT_ARRAY);
	CHECK_INT(catalog_param(catalog_find("createTransformation"), "allowProperties")->type,
	          PT_STRING_ARRAY);
	CHECK_INT(catalog_param(catalog_find("updateSubscriptionForDestination"), "input")->type,
	          PT_OBJECT);
	CHECK_INT(catalog_param(catalog_find("createSource"), "enabled")->type, PT_BOOLEAN);
	CHECK_INT(catalog_param(catalog_find("deleteUsers"), "userIds")->in, PARAM_QUERY);
	CHECK_INT(catalog_param(catalog_find("listFunctions"), "resourceType")->type, PT_ENUM);
}

TEST(rates_and_versions)
{
	CHECK_INT(catalog_find("createDestinationSubscription")->rate_per_min, 5);
	CHECK_INT(catalog_find("deleteUsers")->rate_per_min, 60);
	CHECK_INT(catalog_find("getEventsVolumeFromWorkspace")->rate_per_min, 60);
	CHECK_INT(catalog_find("listSources")->rate_per_min, 0);
	CHECK_STR(catalog_rate_group(catalog_find("createInvites")), "createInvites");
	CHECK_STR(catalog_rate_group(catalog_find("listSources")), "default");
	CHECK_STR(catalog_rate_group(catalog_find("raw")), "default");
	CHECK_STR(catalog_find("listSubscriptionsFromDestination")->version, "v1alpha");
	CHECK_STR(catalog_find("listSources")->version, "v1");
	CHECK_INT(catalog_find("deleteSource")->mutates, 1);
	CHECK_INT(catalog_find("getSource")->mutates, 0);
}

TEST(suggestions)
{
	static const char *const words[] = {"alpha", "beta", "gamma"};

	CHECK_STR(catalog_suggest("listSource"), "listSources");
	CHECK_STR(catalog_suggest("creatSource"), "createSource");
	CHECK_STR(catalog_suggest("LISTSOURCE"), "listSources");
	CHECK_STR(catalog_suggest("Create Sorce"), "createSource");
	CHECK_STR(catalog_suggest("getEventVolumeFromWorkspace"), "getEventsVolumeFromWorkspace");
	CHECK(catalog_suggest("frobnicate") == NULL);
	CHECK(catalog_suggest("") == NULL);

	CHECK_STR(suggest_close("alpah", words, 3), "alpha");
	CHECK_STR(suggest_close("BETA", words, 3), "beta");
	CHECK_STR(suggest_close("gam", words, 3), "gamma");
	CHECK(suggest_close("gxxxa", words, 3) == NULL);
	CHECK(suggest_close("zzz", words, 3) == NULL);
	CHECK(suggest_close("alpha", words, 0) == NULL);
}

/* concrete_path - template with each {name} replaced by "v-name". */
static void concrete_path(struct strbuf *sb, const char *tmpl)
{
	for (const char *p = tmpl; *p; p++) {
		if (*p == '{') {
			const char *close = strchr(p, '}');
			sb_adds(sb, "v-");
			sb_add(sb, p + 1, (size_t)(close - p - 1));
			p = close;
		} else {
			sb_addch(sb, *p);
		}
	}
}

TEST(match_every_operation)
{
	struct strbuf path = STRBUF_INIT;
	int matched = 0;

	for (size_t i = 0; i < catalog_count(); i++) {
		const struct op_def *op = catalog_at(i);
		const char *other = strcmp(op->method, "GET") ? "GET" : "PUT";
		const struct op_def *got;
		if (op->is_raw)
			continue;
		sb_reset(&path);
		concrete_path(&path, op->path);
		got = catalog_match(op->method, path.buf);
		CHECK(got == op);
		if (got != op)
			fprintf(stderr, "  %s %s -> %s\n", op->method, path.buf,
			        got ? got->operation_id : "(none)");
		else
			matched++;
		got = catalog_match(other, path.buf);
		CHECK(got == NULL || got != op);
		CHECK(catalog_match("PUT", path.buf) == NULL);
		sb_adds(&path, "?pagination%5Bcount%5D=2");
		CHECK(catalog_match(op->method, path.buf) == op);
	}
	CHECK_INT(matched, named_operations());
	sb_release(&path);
}

TEST(match_edges)
{
	CHECK_STR(catalog_match("GET", "/sources")->operation_id, "listSources");
	CHECK_STR(catalog_match("GET", "/sources/abc")->operation_id, "getSource");
	CHECK_STR(catalog_match("POST", "/sources")->operation_id, "createSource");
	CHECK_STR(catalog_match("GET", "/catalog/sources/x")->operation_id, "getSourceMetadata");
	CHECK_STR(catalog_match("GET", "/destinations/d/subscriptions/s")->operation_id,
	          "getSubscriptionFromDestination");
	CHECK(catalog_match("GET", "/sources/abc/x") == NULL);
	CHECK(catalog_match("GET", "/sources/") == NULL);
	CHECK(catalog_match("GET", "/sources//") == NULL);
	CHECK(catalog_match("GET", "sources") == NULL);
	CHECK(catalog_match("GET", "") == NULL);
	CHECK(catalog_match("get", "/sources") == NULL);
	CHECK(catalog_match("ANY", "") == NULL);
	CHECK(catalog_match("POST", "/sources/abc") == NULL);
	CHECK(catalog_match(NULL, "/sources") == NULL);
}

TEST(build_create_source)
{
	struct built_request req;
	struct strbuf err = STRBUF_INIT;

	built_request_init(&req);
	CHECK_INT(build("createSource",
	                "{\"slug\":\"my-src\",\"enabled\":true,\"metadataId\":\"m1\","
	                "\"settings\":{\"a\":[1,2]},\"disconnectAllWarehouses\":true}",
	                NULL, 0, &req, &err),
	          0);
	CHECK_STR(req.method, "POST");
	CHECK_STR(req.url.buf, BASE "/sources");
	CHECK_INT(req.has_body, 1);
	CHECK_STR(req.body.buf, "{\"slug\":\"my-src\",\"enabled\":true,\"metadataId\":\"m1\","
	                        "\"settings\":{\"a\":[1,2]},\"disconnectAllWarehouses\":true}");
	CHECK_STR(req.media_type, "application/vnd.segment.v1+json");

	/* catalog order, whatever the order of the job's params */
	CHECK_INT(
	    build("createSource", "{\"metadataId\":\"m1\",\"slug\":\"s\"}", NULL, 0, &req, &err),
	    0);
	CHECK_STR(req.body.buf, "{\"slug\":\"s\",\"metadataId\":\"m1\"}");

	CHECK_INT(build("updateSource", "{\"sourceId\":\"s1\"}", NULL, 0, &req, &err), 0);
	CHECK_STR(req.method, "PATCH");
	CHECK_STR(req.url.buf, BASE "/sources/s1");
	CHECK_INT(req.has_body, 1);
	CHECK_STR(req.body.buf, "{}");

	CHECK_INT(build("updateDestination", "{\"destinationId\":\"d\",\"name\":null}", NULL, 0,
	                &req, &err),
	          0);
	CHECK_STR(req.body.buf, "{\"name\":null}");
	built_request_release(&req);
	sb_release(&err);
}

TEST(build_path_params)
{
	struct built_request req;
	struct strbuf err = STRBUF_INIT;

	built_request_init(&req);
	CHECK_INT(build("getSource", "{\"sourceId\":\"a b/c\"}", NULL, 0, &req, &err), 0);
	CHECK_STR(req.method, "GET");
	CHECK_STR(req.url.buf, BASE "/sources/a%20b%2Fc");
	CHECK_INT(req.has_body, 0);
	CHECK_STR(req.body.buf, "");

	CHECK_INT(build("getUser", "{\"userId\":12345}", NULL, 0, &req, &err), 0);
	CHECK_STR(req.url.buf, BASE "/users/12345");

	CHECK_INT(build("addConnectionFromSourceToWarehouse",
	                "{\"sourceId\":\"s1\",\"warehouseId\":\"w1\"}", NULL, 0, &req, &err),
	          0);
	CHECK_STR(req.method, "POST");
	CHECK_STR(req.url.buf, BASE "/warehouses/w1/connected-sources/s1");
	CHECK_INT(req.has_body, 0);
	CHECK_STR(req.body.buf, "");

	CHECK_INT(build("deleteSource", "{\"sourceId\":\"s1\"}", NULL, 0, &req, &err), 0);
	CHECK_STR(req.method, "DELETE");
	CHECK_INT(req.has_body, 0);

	CHECK_INT(build("createDestinationSubscription",
	                "{\"destinationId\":\"d1\",\"name\":\"n\",\"actionId\":\"a\","
	                "\"trigger\":\"type = \\\"track\\\"\",\"enabled\":false}",
	                NULL, 0, &req, &err),
	          0);
	CHECK_STR(req.url.buf, BASE "/destinations/d1/subscriptions");
	CHECK_STR(req.body.buf, "{\"name\":\"n\",\"actionId\":\"a\","
	                        "\"trigger\":\"type = \\\"track\\\"\",\"enabled\":false}");
	CHECK_STR(req.media_type, "application/vnd.segment.v1alpha+json");
	built_request_release(&req);
	sb_release(&err);
}

TEST(build_pagination)
{
	struct built_request req;
	struct strbuf err = STRBUF_INIT;
	const char *pag = "{\"pagination\":{\"count\":10,\"cursor\":\"c 1\"}}";

	built_request_init(&req);
	CHECK_INT(build("listSources", pag, NULL, 0, &req, &err), 0);
	CHECK_STR(req.url.buf,
	          BASE "/sources?pagination%5Bcount%5D=10&pagination%5Bcursor%5D=c%201");
	CHECK_INT(build("listSources", pag, "next/2", 0, &req, &err), 0);
	CHECK_STR(req.url.buf,
	          BASE "/sources?pagination%5Bcount%5D=10&pagination%5Bcursor%5D=next%2F2");
	CHECK_INT(build("listSources", pag, "n3", 50, &req, &err), 0);
	CHECK_STR(req.url.buf, BASE "/sources?pagination%5Bcount%5D=50&pagination%5Bcursor%5D=n3");
	CHECK_INT(build("listSources", "{\"pagination\":{\"count\":5}}", NULL, 0, &req, &err), 0);
	CHECK_STR(req.url.buf, BASE "/sources?pagination%5Bcount%5D=5");
	CHECK_INT(build("listSources", "{}", NULL, 25, &req, &err), 0);
	CHECK_STR(req.url.buf, BASE "/sources?pagination%5Bcount%5D=25");
	CHECK_INT(build("listSources", NULL, NULL, 0, &req, &err), 0);
	CHECK_STR(req.url.buf, BASE "/sources");
	CHECK_INT(build("listSources", "{}", "c9", 0, &req, &err), 0);
	CHECK_STR(req.url.buf, BASE "/sources?pagination%5Bcount%5D=200&pagination%5Bcursor%5D=c9");
	CHECK_INT(build("listSources", "{\"pagination\":{\"count\":1.5}}", NULL, 0, &req, &err),
	          -1);
	CHECK(strstr(err.buf, "pagination.count") != NULL);
	CHECK_INT(build("listSources", "{\"pagination\":3}", NULL, 0, &req, &err), -1);

	CHECK_INT(build("listSubscriptionsFromDestination",
	                "{\"destinationId\":\"d\",\"pagination\":{\"count\":2}}", "x", 0, &req,
	                &err),
	          0);
	CHECK_STR(req.url.buf, BASE "/destinations/d/subscriptions"
	                            "?pagination%5Bcount%5D=2&pagination%5Bcursor%5D=x");
	CHECK_STR(req.media_type, "application/vnd.segment.v1alpha+json");
	CHECK_INT(build("listFunctions", "{\"resourceType\":\"SOURCE\"}", NULL, 0, &req, &err), 0);
	CHECK_STR(req.url.buf, BASE "/functions?resourceType=SOURCE");
	built_request_release(&req);
	sb_release(&err);
}

TEST(build_events_volume)
{
	struct built_request req;
	struct strbuf err = STRBUF_INIT;

	built_request_init(&req);
	CHECK_INT(build("getEventsVolumeFromWorkspace",
	                "{\"sourceId\":[\"s1\",\"s 2\"],"
	                "\"startTime\":\"2024-01-01T00:00:00+01:00\","
	                "\"endTime\":\"2024-01-02T00:00:00Z\",\"granularity\":\"HOUR\","
	                "\"groupBy\":[\"eventName\",\"source\"],\"pagination\":{\"count\":100}}",
	                NULL, 0, &req, &err),
	          0);
	CHECK_STR(req.method, "GET");
	CHECK_STR(req.url.buf, BASE "/events/volume?granularity=HOUR"
	                            "&startTime=2024-01-01T00%3A00%3A00%2B01%3A00"
	                            "&endTime=2024-01-02T00%3A00%3A00Z"
	                            "&groupBy.0=eventName&groupBy.1=source"
	                            "&sourceId.0=s1&sourceId.1=s%202"
	                            "&pagination%5Bcount%5D=100");
	CHECK_INT(req.has_body, 0);

	CHECK_INT(build("getEventsVolumeFromWorkspace",
	                "{\"granularity\":\"WEEK\",\"startTime\":\"a\",\"endTime\":\"b\"}", NULL, 0,
	                &req, &err),
	          -1);
	CHECK(strstr(err.buf, "granularity") != NULL);
	CHECK_INT(build("getEventsVolumeFromWorkspace",
	                "{\"granularity\":\"DAY\",\"groupBy\":[\"userId\"]}", NULL, 0, &req, &err),
	          -1);
	CHECK(strstr(err.buf, "groupBy") != NULL);
	CHECK_INT(
	    build("getEventsVolumeFromWorkspace", "{\"sourceId\":\"s1\"}", NULL, 0, &req, &err),
	    -1);

	CHECK_INT(
	    build("deleteUsers", "{\"userIds\":[\"u1\",\"u&2\",\"u3\"]}", NULL, 0, &req, &err), 0);
	CHECK_STR(req.method, "DELETE");
	CHECK_STR(req.url.buf, BASE "/users?userIds.0=u1&userIds.1=u%262&userIds.2=u3");
	CHECK_INT(req.has_body, 0);
	built_request_release(&req);
	sb_release(&err);
}

TEST(build_raw)
{
	struct built_request req;
	struct strbuf err = STRBUF_INIT;

	built_request_init(&req);
	CHECK_INT(build("raw",
	                "{\"method\":\"GET\",\"path\":\"/sources\",\"query\":{\"a\":\"x y\","
	                "\"n\":3,\"b\":false,\"ids\":[\"p\",\"q\"],"
	                "\"pagination\":{\"count\":2,\"cursor\":\"z\"},\"skip\":null}}",
	                NULL, 0, &req, &err),
	          0);
	CHECK_STR(req.method, "GET");
	CHECK_STR(req.url.buf, BASE "/sources?a=x%20y&n=3&b=false&ids.0=p&ids.1=q"
	                            "&pagination%5Bcount%5D=2&pagination%5Bcursor%5D=z");
	CHECK_INT(req.has_body, 0);
	CHECK_STR(req.media_type, "application/vnd.segment.v1+json");

	CHECK_INT(build("raw",
	                "{\"method\":\"post\",\"path\":\"/transformations\",\"version\":\"v1beta\","
	                "\"body\":[1,{\"k\":\"v\"}]}",
	                NULL, 0, &req, &err),
	          0);
	CHECK_STR(req.method, "POST");
	CHECK_STR(req.url.buf, BASE "/transformations");
	CHECK_INT(req.has_body, 1);
	CHECK_STR(req.body.buf, "[1,{\"k\":\"v\"}]");
	CHECK_STR(req.media_type, "application/vnd.segment.v1beta+json");

	CHECK_INT(build("raw", "{\"method\":\"GET\",\"path\":\"/x\",\"query\":{\"z\":2}}", NULL, 0,
	                &req, &err),
	          0);
	CHECK_STR(req.url.buf, BASE "/x?z=2");
	built_request_release(&req);
	sb_release(&err);
}

/* build_fails - catalog_build refuses params and says why (err contains want). */
static void build_fails(const char *opid, const char *params, const char *want)
{
	struct built_request req;
	struct strbuf err = STRBUF_INIT;

	built_request_init(&req);
	CHECK_INT(build(opid, params, NULL, 0, &req, &err), -1);
	CHECK(strstr(err.buf, want) != NULL);
	if (!strstr(err.buf, want))
		fprintf(stderr, "  %s %s: \"%s\", wanted \"%s\"\n", opid, params, err.buf, want);
	CHECK_STR(req.url.buf, "");
	CHECK_INT(req.has_body, 0);
	built_request_release(&req);
	sb_release(&err);
}

TEST(build_errors)
{
	build_fails("getSource", "{}", "missing path parameter sourceId");
	build_fails("getSource", "{\"sourceId\":\"\"}", "path parameter sourceId");
	build_fails("getSource", "{\"sourceId\":[1]}", "path parameter sourceId");
	build_fails("addConnectionFromSourceToWarehouse", "{\"warehouseId\":\"w\"}",
	            "missing path parameter sourceId");
	build_fails("createSource", "{\"slug\":\"s\",\"slugg\":1}",
	            "unknown parameter slugg for createSource");
	build_fails("getSource", "[1]", "must be an object");
	build_fails("raw", "{\"method\":\"GET\",\"path\":\"https://evil.example/x\"}",
	            "start with /");
	build_fails("raw", "{\"method\":\"GET\",\"path\":\"/x?u=http://evil\"}", "://");
	build_fails("raw", "{\"method\":\"GET\",\"path\":\"/sources/../admin\"}", "..");
	build_fails("raw", "{\"method\":\"GET\",\"path\":\"/sources/%2E%2e/admin\"}", "..");
	build_fails("raw", "{\"method\":\"GET\",\"path\":\"/a\\r\\nX-Evil: 1\"}", "forbidden");
	build_fails("raw", "{\"method\":\"GET\",\"path\":\"/a b\"}", "forbidden");
	/* the rule validation applies: a query in the path is refused there, so here too */
	build_fails("raw", "{\"method\":\"GET\",\"path\":\"/x?y=1\"}", "params.query");
	build_fails("raw", "{\"method\":\"GET\",\"path\":\"//evil.example/x\"}", "//");
	build_fails("raw", "{\"method\":\"TRACE\",\"path\":\"/a\"}", "raw method");
	build_fails("raw", "{\"path\":\"/a\"}", "raw method");
	build_fails("raw", "{\"method\":\"GET\"}", "raw path");
	build_fails("raw", "{\"method\":\"GET\",\"path\":\"/a\",\"version\":\"v2\"}", "version");
	build_fails("raw", "{\"method\":\"GET\",\"path\":\"/a\",\"query\":[1]}", "query");
	build_fails("raw", "{\"method\":\"GET\",\"path\":\"/a\",\"query\":{\"a\":[[1]]}}", "nests");
	build_fails("raw", "{\"method\":\"GET\",\"path\":\"/a\",\"headers\":{}}",
	            "unknown parameter headers for raw");
}

/* printed - text parsed by cJSON, then printed by sb_add_json_value. */
static char *printed(const char *text)
{
	cJSON *v = cJSON_Parse(text);
	struct strbuf sb = STRBUF_INIT;
	sb_add_json_value(&sb, v);
	cJSON_Delete(v);
	return sb_detach(&sb, NULL);
}

TEST(json_value_printing)
{
	static const char *const cases[][2] = {
	    {"{}", "{}"},
	    {"[]", "[]"},
	    {" { \"a\" : [ 1 , 2.5 , -3 , true , false , null ] } ",
	     "{\"a\":[1,2.5,-3,true,false,null]}"},
	    {"0.1", "0.1"},
	    {"-0", "0"},
	    {"1e3", "1000"},
	    {"9007199254740991", "9007199254740991"},
	    {"1e300", "1e+300"},
	    {"1.5e-7", "1.5e-07"},
	    {"0.30000000000000004", "0.30000000000000004"},
	    {"\"q\\\"\\\\/\\u00e9\\n\\u0001\"", "\"q\\\"\\\\/\xc3\xa9\\n\\u0001\""},
	    {"{\"k\\u0000x\":1}", "{\"k\":1}"},
	    {"{\"a\":{\"b\":{\"c\":[[],{}]}}}", "{\"a\":{\"b\":{\"c\":[[],{}]}}}"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *got = printed(cases[i][0]);
		CHECK_STR(got, cases[i][1]);
		free(got);
	}
	/* whatever the text, what is printed reads back as the same value */
	static const char *const docs[] = {
	    "{\"slug\":\"s-1\",\"enabled\":true,\"n\":[1,-2,3.25,1e-300,-1.7976931348623157e308],"
	    "\"o\":{\"x\":null,\"y\":\"\\t\\\"\\\\\",\"z\":[{\"deep\":[\"\\ud83d\\ude00\"]}]}}",
	    "[0.1,0.2,0.7,123456789.123456789,4503599627370497.5,18446744073709551616]",
	};
	for (size_t i = 0; i < ARRAY_SIZE(docs); i++) {
		cJSON *a = cJSON_Parse(docs[i]);
		char *text = printed(docs[i]);
		cJSON *b = cJSON_Parse(text);
		CHECK(a && b && cJSON_Compare(a, b, 1));
		if (!(a && b && cJSON_Compare(a, b, 1)))
			fprintf(stderr, "  printed %s\n", text);
		cJSON_Delete(a);
		cJSON_Delete(b);
		free(text);
	}
}

int main(void)
{
	operations = load_operations();
	RUN(table_matches_operations_json);
	RUN(json_value_printing);
	RUN(find_by_id_and_name);
	RUN(params_and_types);
	RUN(rates_and_versions);
	RUN(suggestions);
	RUN(match_every_operation);
	RUN(match_edges);
	RUN(build_create_source);
	RUN(build_path_params);
	RUN(build_pagination);
	RUN(build_events_volume);
	RUN(build_raw);
	RUN(build_errors);
	cJSON_Delete(operations);
	return tl_finish();
}
