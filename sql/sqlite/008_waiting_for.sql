-- 008_waiting_for.sql - why a waiting job waits, as a number (enum job_wait in
-- include/job_state.h: 0 a retry's backoff, 1 our own rate limit, 2 the API's 429, 3 a
-- workspace without a usable token, 4 a fan-out parent's children), so the jobs a change
-- concerns (a raised limit, a token after SIGHUP) are woken by it rather than by matching
-- the text of their last transition's reason. Jobs waiting at the upgrade get theirs from
-- that text, the rule that woke them before.
ALTER TABLE jobs ADD COLUMN waiting_for INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET waiting_for = coalesce((SELECT CASE
		WHEN t.reason GLOB 'waiting for the rate limit*' THEN 1
		WHEN t.reason GLOB 'rate limited by the API*' THEN 2
		WHEN t.reason GLOB 'waiting for a usable API token*' THEN 3
		WHEN t.reason GLOB 'waiting for its child jobs*' THEN 4
		ELSE 0 END
	FROM transitions t WHERE t.job_id = jobs.id ORDER BY t.id DESC LIMIT 1), 0)
WHERE state = 2;
