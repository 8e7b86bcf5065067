/* pg_nodes_list.c - the nodes of the store as status and the rescue's log show them. */
#include "pg_int.h"

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
