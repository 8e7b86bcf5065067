/* catalog_table.h - the generated operation table, private to the catalog module.
 *
 * catalog_ops is sorted by operation_id in strcmp order (tools/gen_catalog.py does it),
 * which catalog_find relies on for its binary search.
 */
#ifndef SEGSPOOL_CATALOG_TABLE_H
#define SEGSPOOL_CATALOG_TABLE_H

#include <stddef.h>

#include "catalog.h"

extern const struct op_def catalog_ops[];
extern const size_t catalog_ops_count;

#endif
