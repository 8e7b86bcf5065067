-- 002_lean_attempts.sql - every attempt entered and left attempts_open: two index writes per
-- request, to serve one query at start-up. An attempt without an outcome belongs to a
-- running job (the outcome is recorded before the job leaves running), so recovery finds
-- them through jobs_state and attempts_job instead.
DROP INDEX attempts_open;
