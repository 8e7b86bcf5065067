-- 010_results.sql - one results file per batch (issue 13): a file of more than one job
-- gets out/results/NAME.results.jsonl once every job of it has ended.
-- files.remaining: the file's jobs not yet ended (succeeded, failed, dead, cancelled), NULL
-- for a file that gets no results file (one job, or ingested before this migration). The
-- trigger below keeps it in the same transaction as each job's state change, so "every
-- job has ended" is one row to read, not a count over the jobs.
-- files.results: the results file's path under the output directory, chosen (and its name
-- so taken) in the transaction that saw remaining reach 0; results_done: the file is in
-- place. The daemon writes it after that commit and sets results_done, and a start finds
-- a chosen name not yet done: the file is written then, or found whole (renamed into place
-- in one step) and kept. From then on the results file is never rewritten: a job retried
-- later changes neither remaining nor the file.
-- files.first_job, last_job: the ids of the file's jobs, inserted one after another in
-- the file's order, so its jobs are a range of the jobs' rowids (no index needed).
ALTER TABLE files ADD COLUMN remaining INTEGER;
ALTER TABLE files ADD COLUMN results TEXT;
ALTER TABLE files ADD COLUMN results_done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE files ADD COLUMN first_job INTEGER;
ALTER TABLE files ADD COLUMN last_job INTEGER;
-- the job's file, and its line there (JSON Lines) or its position counting from 1 (a JSON
-- array or a single object)
ALTER TABLE jobs ADD COLUMN file_id INTEGER;
ALTER TABLE jobs ADD COLUMN line INTEGER;

-- a line of a file whose key was already recorded: not inserted again, but listed in the
-- results file with the job that holds the key
CREATE TABLE file_dups (
	file_id INTEGER NOT NULL REFERENCES files(id),
	line INTEGER NOT NULL,
	job_id INTEGER NOT NULL REFERENCES jobs(id),
	PRIMARY KEY (file_id, line)
) WITHOUT ROWID;

-- files whose results file is due (every job ended, no name chosen yet) and those whose
-- chosen file is not yet in place: both looked up at every commit, so both are indexed
-- by what makes them so (few rows: only files waiting for their results)
CREATE INDEX files_results_due ON files(id) WHERE remaining = 0 AND results IS NULL;
CREATE INDEX files_results_pending ON files(id) WHERE results IS NOT NULL AND results_done = 0;
CREATE INDEX files_results ON files(results) WHERE results IS NOT NULL;

-- a job of a file with a results file ending (or, retried, coming back) before that file
-- is written: states 3..6 are the ended ones (succeeded, failed, dead, cancelled)
CREATE TRIGGER jobs_file_remaining AFTER UPDATE OF state ON jobs
WHEN NEW.file_id IS NOT NULL AND (OLD.state >= 3) != (NEW.state >= 3)
BEGIN
	UPDATE files SET remaining = remaining + (CASE WHEN NEW.state >= 3 THEN -1 ELSE 1 END)
	WHERE id = NEW.file_id AND remaining IS NOT NULL AND results IS NULL;
END;
