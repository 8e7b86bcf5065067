-- 006_attempt_body.sql - an attempt the API answered with a non-2xx status keeps the first
-- few KiB of the answer's body (redacted by the http module, marked when cut): a proxy's
-- violation list or a gateway's message says why, where the status alone does not. NULL
-- for 2xx answers, which keep their result elsewhere.
ALTER TABLE attempts ADD COLUMN body TEXT;
-- The top failure reasons (stats, the daemon's exit summary) read the jobs table, like the
-- counts by state beside them: an index of failed and dead jobs would be kept up on every
-- state change of every job (1% of the daemon's instructions per job, measured), to save
-- a scan made once per stats call or exit.
