-- 003_running_index.sql - jobs_state indexed every job in every state: five index writes
-- in a job's life (queued in, running in and out, succeeded in and out), for queries that
-- run at start-up or from the command line. What must stay cheap while the queue is large
-- is finding the running jobs (recovery after a crash), so only they are indexed;
-- queued and waiting jobs are in jobs_due already. Counting and listing jobs by a
-- finished state reads the table.
DROP INDEX IF EXISTS jobs_state;
CREATE INDEX IF NOT EXISTS jobs_running ON jobs(id) WHERE state = 1;
