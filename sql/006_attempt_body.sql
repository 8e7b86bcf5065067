-- 006_attempt_body.sql - an attempt the API answered with a non-2xx status keeps the first
-- few KiB of the answer's body (redacted by the http module, marked when cut): a proxy's
-- violation list or a gateway's message says why, where the status alone does not. NULL
-- for 2xx answers, which keep their result elsewhere.
ALTER TABLE attempts ADD COLUMN body TEXT;
-- the top failure reasons (stats, the daemon's exit summary) read failed and dead jobs
-- only: indexed apart, so the count does not read every job of a large store. Only a
-- job that ends failed or dead writes an entry; the others never enter it.
CREATE INDEX IF NOT EXISTS jobs_failed ON jobs(id) WHERE state IN (4, 5);
