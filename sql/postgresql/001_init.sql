-- 001_init.sql - the PostgreSQL store's schema: the SQLite store's tables in their latest
-- shape (sql/sqlite/001..011), plus what several daemons on one queue need: nodes and
-- their leases (jobs.owner), shared rate-limit buckets (buckets.tat_ms, GCRA), and the
-- node that ingested a file (files.node_name), which writes its results file.
-- Numbers and flags stay integers, states the numbers of job_state.h (0 queued,
-- 1 running, 2 waiting, 3 succeeded, 4 failed, 5 dead, 6 cancelled), so both backends'
-- rows read alike.

CREATE TABLE nodes (
	id BIGSERIAL PRIMARY KEY,
	name TEXT NOT NULL,        -- stable across restarts: hostname:spool
	host TEXT,
	pid BIGINT,
	started_ms BIGINT NOT NULL,
	lease_until_ms BIGINT NOT NULL, -- the database's clock
	lease_ms BIGINT NOT NULL,
	dead INTEGER NOT NULL DEFAULT 0 -- rescued: its jobs were taken back
);
CREATE INDEX nodes_live ON nodes(lease_until_ms) WHERE dead = 0;

CREATE TABLE files (
	id BIGSERIAL PRIMARY KEY,
	name TEXT NOT NULL,
	hash TEXT NOT NULL,
	ingested_ms BIGINT NOT NULL,
	njobs INTEGER NOT NULL DEFAULT 0,
	nduplicates INTEGER NOT NULL DEFAULT 0,
	dev BIGINT,
	ino BIGINT,
	ctime_ns BIGINT,
	size BIGINT,
	remaining INTEGER,
	results TEXT,
	results_done INTEGER NOT NULL DEFAULT 0,
	first_job BIGINT,
	last_job BIGINT,
	node_name TEXT -- the node that ingested it (NULL: the CLI's or a single daemon's)
);
CREATE INDEX files_name_hash ON files(name, hash);
CREATE INDEX files_results_due ON files(id) WHERE remaining = 0 AND results IS NULL;
CREATE INDEX files_results_pending ON files(id) WHERE results IS NOT NULL AND results_done = 0;
CREATE INDEX files_results ON files(results) WHERE results IS NOT NULL;

CREATE TABLE jobs (
	id BIGSERIAL PRIMARY KEY,
	parent_id BIGINT REFERENCES jobs(id),
	state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 6),
	op_id TEXT NOT NULL,
	spec_json TEXT NOT NULL,
	key TEXT UNIQUE, -- unique across every node: NULLs are distinct
	workspace TEXT,
	output_path TEXT,
	source_file TEXT,
	priority INTEGER NOT NULL DEFAULT 0,
	not_before_ms BIGINT NOT NULL DEFAULT 0,
	next_run_ms BIGINT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	max_attempts INTEGER NOT NULL DEFAULT 0,
	created_ms BIGINT NOT NULL,
	updated_ms BIGINT NOT NULL,
	finished_ms BIGINT,
	cursor TEXT,
	pages_done INTEGER NOT NULL DEFAULT 0,
	items_done BIGINT NOT NULL DEFAULT 0,
	total_entries BIGINT,
	result_json TEXT,
	error_json TEXT,
	cancel_requested INTEGER NOT NULL DEFAULT 0,
	paginated INTEGER NOT NULL DEFAULT 0,
	mutates INTEGER,
	waiting_for INTEGER NOT NULL DEFAULT 0,
	file_id BIGINT REFERENCES files(id),
	line INTEGER,
	deps_left INTEGER NOT NULL DEFAULT 0,
	dep_failed INTEGER NOT NULL DEFAULT 0,
	owner BIGINT REFERENCES nodes(id) -- the node running it (state 1), else NULL
);
CREATE INDEX jobs_due ON jobs(priority DESC, next_run_ms, id) WHERE state IN (0, 2);
CREATE INDEX jobs_parent ON jobs(parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_running ON jobs(owner, id) WHERE state = 1;
-- in byte order (COLLATE "C"), as store_output_conflict asks for the paths below one
CREATE INDEX jobs_output ON jobs(output_path COLLATE "C") WHERE output_path IS NOT NULL;
CREATE INDEX jobs_file ON jobs(file_id, line) WHERE file_id IS NOT NULL;

CREATE TABLE transitions (
	id BIGSERIAL PRIMARY KEY,
	job_id BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	from_state INTEGER, -- NULL when the job was created
	to_state INTEGER NOT NULL,
	at_ms BIGINT NOT NULL,
	reason TEXT
);
CREATE INDEX transitions_job ON transitions(job_id);

CREATE TABLE attempts (
	id BIGSERIAL PRIMARY KEY,
	job_id BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	attempt_no INTEGER NOT NULL,
	started_ms BIGINT NOT NULL,
	duration_ms BIGINT,
	http_status INTEGER,
	outcome TEXT, -- NULL while the request is in flight
	error TEXT,
	retry_after_ms BIGINT,
	rl_remaining BIGINT,
	rl_reset TEXT,
	request TEXT,
	body TEXT,
	resolved TEXT,
	node_id BIGINT REFERENCES nodes(id), -- who sent it
	UNIQUE (job_id, attempt_no) -- never two nodes sending the same attempt
);

CREATE TABLE pages (
	job_id BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	page_no INTEGER NOT NULL,
	cursor TEXT,
	next_cursor TEXT,
	items_json TEXT NOT NULL,
	nitems BIGINT NOT NULL,
	total_entries BIGINT,
	at_ms BIGINT NOT NULL,
	PRIMARY KEY (job_id, page_no)
);
CREATE INDEX pages_cursor ON pages(job_id, cursor, page_no);

-- rate-limit buckets, shared by every node: GCRA's theoretical arrival time (tat_ms, the
-- database's clock) and a hold (a 429 or X-RateLimit-Remaining: 0 seen by any node);
-- tokens/updated_ms are the SQLite store's saved form, kept for store_bucket_save/foreach
CREATE TABLE buckets (
	key TEXT PRIMARY KEY,
	tokens DOUBLE PRECISION NOT NULL DEFAULT 0,
	updated_ms BIGINT NOT NULL DEFAULT 0,
	hold_until_ms BIGINT NOT NULL DEFAULT 0,
	tat_ms DOUBLE PRECISION NOT NULL DEFAULT 0
);

CREATE TABLE file_dups (
	file_id BIGINT NOT NULL REFERENCES files(id),
	line INTEGER NOT NULL,
	job_id BIGINT NOT NULL REFERENCES jobs(id),
	PRIMARY KEY (file_id, line)
);

CREATE TABLE deps (
	dep_id BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	job_id BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	PRIMARY KEY (dep_id, job_id)
);
CREATE INDEX deps_job ON deps(job_id, dep_id);

-- a job of a file with a results file ending (or, retried, coming back) before that file
-- is written, in the transaction of the change, at its commit: several nodes end the jobs
-- of one file, and each change takes the file's row lock, which an immediate trigger would
-- hold from the job's change to the end of the node's group commit (its ingest and claims
-- too), making every other node that ends a job of that file wait or time out; deferred,
-- it is held for the commit alone. So a file's last job ending is seen by the next
-- transaction (the next commit names its results file), not by its own. The WHEN is the
-- server's: the function runs for those rows only, not for every state change.
CREATE FUNCTION jobs_file_remaining() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE files SET remaining = remaining + (CASE WHEN NEW.state >= 3 THEN -1 ELSE 1 END)
	WHERE id = NEW.file_id AND remaining IS NOT NULL AND results IS NULL;
	RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER jobs_file_remaining AFTER UPDATE OF state ON jobs
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW WHEN (NEW.file_id IS NOT NULL AND (OLD.state >= 3) <> (NEW.state >= 3))
EXECUTE FUNCTION jobs_file_remaining();
