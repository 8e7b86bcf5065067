-- 013_key_index.sql - the jobs' idempotency keys in a partial unique index, jobs(key)
-- WHERE key IS NOT NULL, in place of the column's UNIQUE: the same constraint (NULLs were
-- distinct, jobs without a key never clashed), but a job without a key, most of a large
-- batch, no longer puts an entry in it (4,000 instructions a job at ingest, and the pages
-- it dirtied). SQLite cannot drop a constraint, hence the new table, as in
-- 005_file_identity.sql; the migrations run with foreign keys off (sqlite.c), so dropping
-- the old table deletes none of the rows that refer to it.
CREATE TABLE jobs_v13 (
	id INTEGER PRIMARY KEY,
	parent_id INTEGER REFERENCES jobs(id),
	state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 6),
	op_id TEXT NOT NULL,
	spec_json TEXT NOT NULL,
	key TEXT, -- unique among the jobs that have one (jobs_key)
	workspace TEXT,
	output_path TEXT,
	source_file TEXT,
	priority INTEGER NOT NULL DEFAULT 0,
	not_before_ms INTEGER NOT NULL DEFAULT 0,
	next_run_ms INTEGER NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	max_attempts INTEGER NOT NULL DEFAULT 0,
	created_ms INTEGER NOT NULL,
	updated_ms INTEGER NOT NULL,
	finished_ms INTEGER,
	cursor TEXT, -- the cursor of the next page to fetch (the resume point)
	pages_done INTEGER NOT NULL DEFAULT 0,
	items_done INTEGER NOT NULL DEFAULT 0,
	total_entries INTEGER,
	result_json TEXT,
	error_json TEXT,
	cancel_requested INTEGER NOT NULL DEFAULT 0,
	paginated INTEGER NOT NULL DEFAULT 0,
	mutates INTEGER,
	waiting_for INTEGER NOT NULL DEFAULT 0,
	file_id INTEGER,
	line INTEGER,
	deps_left INTEGER NOT NULL DEFAULT 0,
	dep_failed INTEGER NOT NULL DEFAULT 0
);
INSERT INTO jobs_v13 (id, parent_id, state, op_id, spec_json, key, workspace, output_path,
	source_file, priority, not_before_ms, next_run_ms, attempts, max_attempts, created_ms,
	updated_ms, finished_ms, cursor, pages_done, items_done, total_entries, result_json,
	error_json, cancel_requested, paginated, mutates, waiting_for, file_id, line, deps_left,
	dep_failed)
	SELECT id, parent_id, state, op_id, spec_json, key, workspace, output_path, source_file,
	priority, not_before_ms, next_run_ms, attempts, max_attempts, created_ms, updated_ms,
	finished_ms, cursor, pages_done, items_done, total_entries, result_json, error_json,
	cancel_requested, paginated, mutates, waiting_for, file_id, line, deps_left, dep_failed
	FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v13 RENAME TO jobs;
CREATE UNIQUE INDEX jobs_key ON jobs(key) WHERE key IS NOT NULL;
-- the indexes of the jobs table, as the migrations before made them
CREATE INDEX jobs_due ON jobs(priority DESC, next_run_ms, id) WHERE state IN (0, 2);
CREATE INDEX jobs_parent ON jobs(parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_running ON jobs(id) WHERE state = 1;
CREATE INDEX jobs_output ON jobs(output_path) WHERE output_path IS NOT NULL;
