/* pg_node_fixture.h - what the tests of several nodes on one PostgreSQL store share: a
 * second store on the same database, and a store joined as a node. After testlib.h and
 * store_fixture.h. */
#ifndef SEGSPOOL_PG_NODE_FIXTURE_H
#define SEGSPOOL_PG_NODE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

/* second - another store on the location of the last fresh store, or the test exits. */
static inline struct store *second(void)
{
	struct store *st = NULL;
	char *err = NULL;
	if (store_reopen_test(0, &st, &err) < 0) {
		fprintf(stderr, "cannot open a second store: %s\n", err);
		free(err);
		exit(1);
	}
	return st;
}

/* node - st joined as node name, with lease_ms. */
static inline struct store *node(struct store *st, const char *name, int64_t lease_ms)
{
	int rc = store_node_start(st, name, lease_ms, 0);
	CHECK_INT(rc, 0);
	if (rc)
		fprintf(stderr, "node %s: %s\n", name, store_errmsg(st));
	return st;
}

#endif
