-- 007_job_mutates.sql - whether a job's request may change state on the server, decided
-- once at insert from its operation's method (a raw job's own method) by the rule the http
-- module applies to the request in flight. Recovery reads it to record an attempt a crash
-- left open as "unknown" (a mutation the server may have applied) or "interrupted" (a read,
-- safe to repeat), instead of guessing from the operation's name. Rows from before have
-- NULL, and recovery keeps the old guess for them.
ALTER TABLE jobs ADD COLUMN mutates INTEGER;
