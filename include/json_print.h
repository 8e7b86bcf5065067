/* json_print.h - a cJSON value printed compactly into a strbuf, without the tree copies
 * and intermediate buffers cJSON_PrintUnformatted makes: for the text segspool writes for
 * every job (its canonical form, its request body). */
#ifndef SEGSPOOL_JSON_PRINT_H
#define SEGSPOOL_JSON_PRINT_H

#include "strbuf.h"

struct cJSON;

/* sb_add_json_value - v as compact JSON: strings escaped as sb_add_json_string does,
 * integral numbers below 2^53 exactly, other numbers in the shortest of %.15g and %.17g
 * that reads back the same, non-finite numbers as null (as cJSON prints them). */
void sb_add_json_value(struct strbuf *sb, const struct cJSON *v);

#endif
