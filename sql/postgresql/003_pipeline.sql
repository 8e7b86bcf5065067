-- 003_pipeline.sql - the checks a pipelined write carries in its own statement: the
-- daemon sends it without waiting for its answer (store_async_start), so a check that
-- fails must be an error the server raises, which fails the transaction (and the node,
-- which starts again) instead of a row count nobody reads.

-- segspool_expect - n must be 1 (the rows a write changed): else an error saying msg.
CREATE FUNCTION segspool_expect(n BIGINT, msg TEXT) RETURNS INTEGER
LANGUAGE plpgsql AS $$
BEGIN
	IF n IS DISTINCT FROM 1 THEN
		RAISE EXCEPTION '%', msg;
	END IF;
	RETURN 1;
END $$;

-- segspool_fence - a state change of job, which node (NULL: none) runs, changed n rows:
-- 1 is fine; else the error says why, as the store says it when it reads the job itself
-- (pg_change_state): no such job, taken back by a rescue, claimed by another daemon, or
-- not in the state the change needs.
CREATE FUNCTION segspool_fence(n BIGINT, job BIGINT, node BIGINT, verb TEXT) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
	j_state INTEGER;
	j_owner BIGINT;
BEGIN
	IF n = 1 THEN
		RETURN 1;
	END IF;
	SELECT state, owner INTO j_state, j_owner FROM jobs WHERE id = job;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'cannot % job %: no such job', verb, job;
	END IF;
	IF node IS NOT NULL AND j_state = 0 THEN
		RAISE EXCEPTION 'lease lost: job % was taken back from this daemon', job;
	END IF;
	IF node IS NOT NULL AND j_state = 1 AND j_owner IS DISTINCT FROM node THEN
		RAISE EXCEPTION 'lease lost: job % is claimed by another daemon', job;
	END IF;
	RAISE EXCEPTION 'cannot % job %: it is %, not running', verb, job,
		(ARRAY['queued', 'running', 'waiting', 'succeeded', 'failed', 'dead',
		       'cancelled'])[j_state + 1];
END $$;

-- the open attempts of a node, which a sweep closes once the node is dead: the sweep's
-- second statement finds them by it (pg_nodes.c, piped_close_sql)
CREATE INDEX attempts_open ON attempts(node_id) WHERE outcome IS NULL;
