-- 011_deps.sql - jobs that wait for other jobs (a job's "after" keys and the jobs its
-- {"$ref"} values name), kept as rows of deps: dep_id is waited for by job_id. They are
-- written at ingest, in the transaction that inserts the file's jobs.
-- A job waiting for its dependencies is in state waiting (2) with waiting_for 5 (JW_DEPS
-- in include/job_state.h; 0 a retry's backoff, 1 our own rate limit, 2 the API's 429, 3 a
-- workspace without a usable token, 4 a fan-out parent's children) and next_run_ms far in
-- the future (STORE_DEPS_PARKED_MS): it stays in jobs_due, but beyond every claim's
-- next_run_ms <= now, so 100,000 waiting jobs cost the claim's walk nothing. deps_left
-- counts its dependencies not yet succeeded: each success decrements those of its
-- dependants (one seek in deps), and the last makes the job due then. A dependency that
-- ends failed, dead or cancelled ends its waiting dependants failed, dep_failed = 1,
-- which a retry of the dependency undoes.
CREATE TABLE deps (
	dep_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	PRIMARY KEY (dep_id, job_id)
) WITHOUT ROWID;
-- a job's own dependencies: which of them failed (retry, and the revival of dependants)
CREATE INDEX deps_job ON deps(job_id, dep_id);
ALTER TABLE jobs ADD COLUMN deps_left INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN dep_failed INTEGER NOT NULL DEFAULT 0;
-- what an attempt's references were resolved to ({"/sourceId": "src_1"}), for show
ALTER TABLE attempts ADD COLUMN resolved TEXT;
