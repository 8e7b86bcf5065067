-- 001_init.sql - the first schema: files, jobs and their history, pages, rate-limit buckets.
-- Job states are the integers of enum job_state (job_state.h): 0 queued, 1 running,
-- 2 waiting, 3 succeeded, 4 failed, 5 dead, 6 cancelled. Times are epoch milliseconds.
-- Applied inside a transaction by store.c, which then sets PRAGMA user_version = 1.

PRAGMA application_id = 1397183312; -- 0x53475350, "SGSP": tells a segspool database from others

-- spool files already ingested, so a file seen again (same name, same content) is skipped
CREATE TABLE files (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL,
	hash TEXT NOT NULL,
	ingested_ms INTEGER NOT NULL,
	njobs INTEGER NOT NULL DEFAULT 0,
	nduplicates INTEGER NOT NULL DEFAULT 0,
	UNIQUE (name, hash)
);

CREATE TABLE jobs (
	id INTEGER PRIMARY KEY,
	parent_id INTEGER REFERENCES jobs(id),
	state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 6),
	op_id TEXT NOT NULL,
	spec_json TEXT NOT NULL,
	key TEXT UNIQUE, -- NULLs are distinct in SQLite: jobs without a key never clash
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
	cursor TEXT,      -- the cursor of the next page to fetch (the resume point)
	pages_done INTEGER NOT NULL DEFAULT 0,
	items_done INTEGER NOT NULL DEFAULT 0,
	total_entries INTEGER,
	result_json TEXT,
	error_json TEXT,
	cancel_requested INTEGER NOT NULL DEFAULT 0,
	paginated INTEGER NOT NULL DEFAULT 0
);

-- the claim query walks this in order and stops after LIMIT rows: queued and waiting only,
-- so finished jobs (the bulk of an old database) cost nothing
CREATE INDEX jobs_due ON jobs(priority DESC, next_run_ms, id) WHERE state IN (0, 2);
CREATE INDEX jobs_parent ON jobs(parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_state ON jobs(state, id);

CREATE TABLE transitions (
	id INTEGER PRIMARY KEY,
	job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	from_state INTEGER, -- NULL when the job was created
	to_state INTEGER NOT NULL,
	at_ms INTEGER NOT NULL,
	reason TEXT
);
CREATE INDEX transitions_job ON transitions(job_id);

CREATE TABLE attempts (
	id INTEGER PRIMARY KEY,
	job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	attempt_no INTEGER NOT NULL,
	started_ms INTEGER NOT NULL,
	duration_ms INTEGER,
	http_status INTEGER,
	outcome TEXT,     -- NULL while the request is in flight
	error TEXT,
	retry_after_ms INTEGER,
	rl_remaining INTEGER,
	rl_reset TEXT,
	request TEXT
);
CREATE INDEX attempts_job ON attempts(job_id);
-- attempts a crash left open: found at recovery without scanning the whole history
CREATE INDEX attempts_open ON attempts(id) WHERE outcome IS NULL;

CREATE TABLE pages (
	job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	page_no INTEGER NOT NULL,
	cursor TEXT,
	next_cursor TEXT,
	items_json TEXT NOT NULL,
	nitems INTEGER NOT NULL,
	total_entries INTEGER,
	at_ms INTEGER NOT NULL,
	PRIMARY KEY (job_id, page_no)
);

CREATE TABLE buckets (
	key TEXT PRIMARY KEY,
	tokens REAL NOT NULL,
	updated_ms INTEGER NOT NULL,
	hold_until_ms INTEGER NOT NULL DEFAULT 0
);
