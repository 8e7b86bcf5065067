/* pg_nodes_self.c - a daemon's own earlier nodes: after a restart or a reconnect, the
 * jobs its previous node of the same name held are taken back at once (the spool's lock
 * says that node's process is gone, or the daemon itself dropped every request of it);
 * and the nodes as status and the rescue's log show them. */
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

static const char sql_nodes[] =
    "SELECT id, name, host, pid, started_ms, lease_until_ms - " PG_NOW_MS
    " FROM nodes WHERE dead = 0 ORDER BY id";

/* store_nodes_foreach - see store.h. */
int store_nodes_foreach(struct store *st, store_node_fn fn, void *arg)
{
	PGresult *r = pg_query(st, sql_nodes, NULL, "list the nodes");
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		struct node_rec n = {
		    .id = pg_get_i64(r, i, 0, 0),
		    .name = pg_get_text(r, i, 1),
		    .host = pg_get_text(r, i, 2),
		    .pid = pg_get_i64(r, i, 3, 0),
		    .started_ms = pg_get_i64(r, i, 4, 0),
		    .lease_left_ms = pg_get_i64(r, i, 5, 0),
		};
		if (!n.name)
			n.name = "";
		if (fn(&n, arg))
			break;
	}
	PQclear(r);
	return 0;
}
