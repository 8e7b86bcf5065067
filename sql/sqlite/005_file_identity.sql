-- 005_file_identity.sql - which file an ingest read, and the outputs of unfinished jobs.
-- A file in incoming/ whose name and content hash were recorded used to be taken for one
-- committed just before a crash and never moved, and archived unrun; but a cron job that
-- drops nightly.json with the same jobs every night makes such a file too.
-- Each ingest now records which file it read: device, inode, ctime (ns) and size, which a
-- file still lying where it was read keeps and a new file renamed into incoming/ does not.
-- The same name and content may then be ingested many times, so (name, hash) is no longer
-- unique: SQLite cannot drop a constraint, hence the new table. Rows from before have no
-- identity (NULL) and are matched by name and hash as before.
CREATE TABLE files_v4 (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL,
	hash TEXT NOT NULL,
	ingested_ms INTEGER NOT NULL,
	njobs INTEGER NOT NULL DEFAULT 0,
	nduplicates INTEGER NOT NULL DEFAULT 0,
	dev INTEGER,
	ino INTEGER,
	ctime_ns INTEGER,
	size INTEGER
);
INSERT INTO files_v4 (id, name, hash, ingested_ms, njobs, nduplicates)
	SELECT id, name, hash, ingested_ms, njobs, nduplicates FROM files;
DROP TABLE files;
ALTER TABLE files_v4 RENAME TO files;
CREATE INDEX IF NOT EXISTS files_name_hash ON files(name, hash);

-- An explicit output path must not be taken by, nor be a directory of, nor lie inside the
-- output of a job that has not finished: ingest looks that up once per job with an output,
-- through this index of jobs' outputs (jobs without one, the bulk of a large queue, are not
-- in it). Its condition names output_path alone: a partial index whose condition reads
-- state would be maintained on every state change of every job (measured: half again the
-- instructions per job), while the few rows one path has are filtered by state cheaply.
CREATE INDEX IF NOT EXISTS jobs_output ON jobs(output_path) WHERE output_path IS NOT NULL;
