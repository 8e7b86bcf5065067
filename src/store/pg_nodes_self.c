/* pg_nodes_self.c - a daemon's own earlier nodes: after a restart or a reconnect, the
 * jobs its previous node of the same name held are taken back at once (the spool's lock
 * says that node's process is gone, or the daemon itself dropped every request of it). */
#include "pg_int.h"

/* the lease of every other live node of this name runs out now; store_rescue (any node's)
 * then queues their jobs again and marks them dead */
static const char sql_retire[] = "UPDATE nodes SET lease_until_ms = 0 WHERE name = $1 AND "
                                 "id <> $2 AND dead = 0 AND lease_until_ms > 0";

/* store_node_retire - see store.h. */
int64_t store_node_retire(struct store *st, const char *name)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, name);
	pg_param_i64(&p, st->node_id);
	return pg_run(st, sql_retire, &p, "retire the earlier nodes of this name");
}
