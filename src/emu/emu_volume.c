/* emu_volume.c - getEventsVolumeFromWorkspace: a synthetic but deterministic series.
 *
 * The workspace's traffic is a fixed grid of base combinations (source x eventName x
 * eventType x appVersion); a base combination's count in a bucket is a hash of (bucket
 * start, combination, seed) % 1000. A group (one per groupBy combination) sums the base
 * combinations that fall in it and pass the filters. So the same bucket has the same
 * count whatever window asked for it, and grouped totals add up to the ungrouped one:
 * a split export can be checked against an unsplit one.
 */
#include "emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MAX_BUCKETS 20000

struct volume_source {
	const char *id, *name, *slug;
};

static const struct volume_source vol_sources[] = {
    {"src_evt_1", "Web App", "web-app"},
    {"src_evt_2", "iOS App", "ios-app"},
    {"src_evt_3", "Backend", "backend"},
};
static const char *const vol_events[] = {"Order Completed", "Page Viewed", "Signed Up",
                                         "Product Added"};
static const char *const vol_types[] = {"track", "page", "identify"};
static const char *const vol_versions[] = {"1.0.0", "1.1.0", "2.0.0"};

#define NS ARRAY_SIZE(vol_sources)
#define NE ARRAY_SIZE(vol_events)
#define NT ARRAY_SIZE(vol_types)
#define NV ARRAY_SIZE(vol_versions)

struct volume_query {
	int64_t start, end, step;
	int by_source, by_event, by_type;
	/* which values of each dimension pass the filters */
	int src_ok[NS], event_ok[NE], type_ok[NT], version_ok[NV];
	uint64_t combo_hash[NS][NE][NT][NV];
	uint64_t seed;
};

/* group key: one index per dimension, -1 when the dimension is not grouped on */
struct volume_group {
	int s, e, t;
};

/* allowed - marks which of values pass the filter array (all when there is none). */
static void allowed(const cJSON *filter, const char *const *values, size_t n, int *ok)
{
	for (size_t i = 0; i < n; i++) {
		const cJSON *f;
		ok[i] = filter == NULL;
		cJSON_ArrayForEach(f, filter)
		{
			if (strcmp(f->valuestring, values[i]) == 0)
				ok[i] = 1;
		}
	}
}

/* has_group - groupBy names the dimension. */
static int has_group(const cJSON *group_by, const char *dim)
{
	const cJSON *g;
	cJSON_ArrayForEach(g, group_by)
	{
		if (strcmp(g->valuestring, dim) == 0)
			return 1;
	}
	return 0;
}

/* granularity_ms - a bucket's length. */
static int64_t granularity_ms(const char *g)
{
	if (strcmp(g, "DAY") == 0)
		return 86400000;
	if (strcmp(g, "HOUR") == 0)
		return 3600000;
	return 60000;
}

/* first_bucket - the first bucket start at or after t: windows split at any instant
 * then cover each bucket exactly once. */
static int64_t first_bucket(int64_t t, int64_t step)
{
	int64_t q = t / step;
	if (q * step < t)
		q++;
	return q * step;
}

/* read_volume_query - the validated inputs, and the hashes of the base combinations. */
static int read_volume_query(struct emu_call *c, struct volume_query *vq)
{
	const char *src_ids[NS];
	memset(vq, 0, sizeof(*vq));
	parse_iso8601(json_str(c->in, "startTime"), &vq->start);
	parse_iso8601(json_str(c->in, "endTime"), &vq->end);
	vq->step = granularity_ms(json_str(c->in, "granularity"));
	if (vq->start >= vq->end) {
		call_fail(c, 422, "startTime", "startTime must be before endTime");
		return -1;
	}
	int64_t buckets = (vq->end - first_bucket(vq->start, vq->step) + vq->step - 1) / vq->step;
	if (buckets > MAX_BUCKETS) {
		call_fail(c, 422, "startTime",
		          "the time range holds %lld %s buckets; at most %d are allowed",
		          (long long)buckets, json_str(c->in, "granularity"), MAX_BUCKETS);
		return -1;
	}
	const cJSON *group_by = cJSON_GetObjectItemCaseSensitive(c->in, "groupBy");
	vq->by_source = has_group(group_by, "source");
	vq->by_event = has_group(group_by, "eventName");
	vq->by_type = has_group(group_by, "eventType");
	for (size_t s = 0; s < NS; s++)
		src_ids[s] = vol_sources[s].id;
	allowed(cJSON_GetObjectItemCaseSensitive(c->in, "sourceId"), src_ids, NS, vq->src_ok);
	allowed(cJSON_GetObjectItemCaseSensitive(c->in, "eventName"), vol_events, NE, vq->event_ok);
	allowed(cJSON_GetObjectItemCaseSensitive(c->in, "eventType"), vol_types, NT, vq->type_ok);
	allowed(cJSON_GetObjectItemCaseSensitive(c->in, "appVersion"), vol_versions, NV,
	        vq->version_ok);
	vq->seed = c->emu->state.seed;
	for (size_t s = 0; s < NS; s++)
		for (size_t e = 0; e < NE; e++)
			for (size_t t = 0; t < NT; t++)
				for (size_t v = 0; v < NV; v++) {
					uint64_t h = FNV1A64_INIT;
					h = fnv1a64(vol_sources[s].id, h);
					h = fnv1a64(vol_events[e], h);
					h = fnv1a64(vol_types[t], h);
					vq->combo_hash[s][e][t][v] = fnv1a64(vol_versions[v], h);
				}
	return 0;
}

/* in_group - the base combination passes the filters and belongs to group g. */
static int in_group(const struct volume_query *vq, const struct volume_group *g, size_t s, size_t e,
                    size_t t, size_t v)
{
	if (!vq->src_ok[s] || !vq->event_ok[e] || !vq->type_ok[t] || !vq->version_ok[v])
		return 0;
	return (g->s < 0 || (size_t)g->s == s) && (g->e < 0 || (size_t)g->e == e) &&
	       (g->t < 0 || (size_t)g->t == t);
}

/* group_nonempty - some base combination passes the filters into g. */
static int group_nonempty(const struct volume_query *vq, const struct volume_group *g)
{
	for (size_t s = 0; s < NS; s++)
		for (size_t e = 0; e < NE; e++)
			for (size_t t = 0; t < NT; t++)
				for (size_t v = 0; v < NV; v++)
					if (in_group(vq, g, s, e, t, v))
						return 1;
	return 0;
}

/* bucket_count - the group's count in the bucket starting at when. */
static long bucket_count(const struct volume_query *vq, const struct volume_group *g, int64_t when)
{
	uint64_t base = mix64((uint64_t)when ^ mix64(vq->seed));
	long sum = 0;
	for (size_t s = 0; s < NS; s++)
		for (size_t e = 0; e < NE; e++)
			for (size_t t = 0; t < NT; t++)
				for (size_t v = 0; v < NV; v++)
					if (in_group(vq, g, s, e, t, v))
						sum += (long)(mix64(base ^
						                    vq->combo_hash[s][e][t][v]) %
						              1000);
	return sum;
}

/* list_groups - every non-empty group, in source, eventName, eventType order. */
static size_t list_groups(const struct volume_query *vq, struct volume_group *out)
{
	size_t n = 0;
	int ns = vq->by_source ? (int)NS : 1, ne = vq->by_event ? (int)NE : 1;
	int nt = vq->by_type ? (int)NT : 1;
	for (int s = 0; s < ns; s++)
		for (int e = 0; e < ne; e++)
			for (int t = 0; t < nt; t++) {
				struct volume_group g = {vq->by_source ? s : -1,
				                         vq->by_event ? e : -1,
				                         vq->by_type ? t : -1};
				if (group_nonempty(vq, &g))
					out[n++] = g;
			}
	return n;
}

/* group_result - {source?, eventName?, eventType?, total, series[{time, count}]}. */
static cJSON *group_result(const struct volume_query *vq, const struct volume_group *g)
{
	cJSON *r = cJSON_CreateObject();
	char when[48];
	if (g->s >= 0) {
		const struct volume_source *src = &vol_sources[g->s];
		cJSON *so = cJSON_AddObjectToObject(r, "source");
		cJSON_AddStringToObject(so, "id", src->id);
		cJSON_AddStringToObject(so, "name", src->name);
		cJSON_AddStringToObject(so, "slug", src->slug);
	}
	if (g->e >= 0)
		cJSON_AddStringToObject(r, "eventName", vol_events[g->e]);
	if (g->t >= 0)
		cJSON_AddStringToObject(r, "eventType", vol_types[g->t]);
	cJSON *total = cJSON_AddNumberToObject(r, "total", 0);
	cJSON *series = cJSON_AddArrayToObject(r, "series");
	long sum = 0;
	for (int64_t t = first_bucket(vq->start, vq->step); t < vq->end; t += vq->step) {
		long n = bucket_count(vq, g, t);
		cJSON *point = cJSON_CreateObject();
		format_iso8601(t, when);
		cJSON_AddStringToObject(point, "time", when);
		cJSON_AddNumberToObject(point, "count", (double)n);
		cJSON_AddItemToArray(series, point);
		sum += n;
	}
	cJSON_SetNumberValue(total, (double)sum);
	return r;
}

/* op_events_volume - data {path, query, result[], pagination}, paged over groups. */
void op_events_volume(struct emu_call *c)
{
	struct volume_query vq;
	struct volume_group groups[NS * NE * NT];
	if (read_volume_query(c, &vq))
		return;
	size_t n = list_groups(&vq, groups);
	cJSON *data = call_data(c);
	cJSON_AddStringToObject(data, "path", "/events/volume");
	cJSON *query = cJSON_Duplicate(c->in, 1);
	cJSON_AddStringToObject(query, "workspaceId", EMU_WORKSPACE_ID);
	cJSON_AddItemToObject(data, "query", query);
	cJSON *result = cJSON_AddArrayToObject(data, "result");
	for (size_t i = c->page.offset; i < n && i < c->page.offset + c->page.count; i++)
		cJSON_AddItemToArray(result, group_result(&vq, &groups[i]));
	page_add(data, &c->page, n);
}
