/* json_print.c - see json_print.h. */
#include "json_print.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "util.h"

/* add_number - a number as JSON; see sb_add_json_value. */
static void add_number(struct strbuf *sb, double d)
{
	char buf[40];
	double back;

	if (!isfinite(d)) {
		sb_adds(sb, "null");
		return;
	}
	if (d == floor(d) && fabs(d) < JSON_EXACT_INT_LIMIT) {
		sb_add_int(sb, (int64_t)d);
		return;
	}
	snprintf(buf, sizeof(buf), "%1.15g", d);
	if (sscanf(buf, "%lg", &back) != 1 || back != d)
		snprintf(buf, sizeof(buf), "%1.17g", d);
	sb_adds(sb, buf);
}

/* sb_add_json_value - see json_print.h. */
void sb_add_json_value(struct strbuf *sb, const cJSON *v)
{
	const cJSON *child;
	int first = 1;

	if (cJSON_IsString(v)) {
		sb_add_json_string(sb, v->valuestring);
	} else if (cJSON_IsNumber(v)) {
		add_number(sb, v->valuedouble);
	} else if (cJSON_IsTrue(v)) {
		sb_adds(sb, "true");
	} else if (cJSON_IsFalse(v)) {
		sb_adds(sb, "false");
	} else if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
		int object = cJSON_IsObject(v);
		sb_addch(sb, object ? '{' : '[');
		cJSON_ArrayForEach(child, v)
		{
			if (!first)
				sb_addch(sb, ',');
			first = 0;
			if (object) {
				sb_add_json_string(sb, child->string ? child->string : "");
				sb_addch(sb, ':');
			}
			sb_add_json_value(sb, child);
		}
		sb_addch(sb, object ? '}' : ']');
	} else {
		sb_adds(sb, "null"); /* null, and a raw or invalid item */
	}
}
