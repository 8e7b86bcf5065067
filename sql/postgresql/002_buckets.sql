-- 002_buckets.sql - one token from a shared rate-limit bucket, decided by the database
-- alone (GCRA on its clock, which every node shares): emission interval 1000/rate ms,
-- tolerance (burst - 1) intervals; a hold (hold_until_ms, set by any node on a 429)
-- in the future means wait. Returns 0 when the token was taken (tat_ms moved on by one
-- interval), else the wait in ms (nothing taken). The row is locked for the call only:
-- callers run it in autocommit (the side connection). A rate <= 0 is no limit but holds.
CREATE FUNCTION segspool_bucket_take(k TEXT, rate DOUBLE PRECISION, burst DOUBLE PRECISION)
RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
	step DOUBLE PRECISION := CASE WHEN rate > 0 THEN 1000.0 / rate ELSE 0 END;
	tolerance DOUBLE PRECISION := (greatest(burst, 1) - 1) * step;
	b_tat DOUBLE PRECISION;
	b_hold BIGINT;
	now_ms DOUBLE PRECISION;
BEGIN
	SELECT tat_ms, hold_until_ms INTO b_tat, b_hold FROM buckets WHERE key = k FOR UPDATE;
	IF NOT FOUND THEN
		INSERT INTO buckets (key) VALUES (k) ON CONFLICT (key) DO NOTHING;
		SELECT tat_ms, hold_until_ms INTO b_tat, b_hold FROM buckets WHERE key = k FOR UPDATE;
	END IF;
	-- after the lock: a call that waited for another's sees the time it goes on at
	now_ms := extract(epoch from clock_timestamp()) * 1000;
	IF b_hold > now_ms THEN
		RETURN greatest(ceil(b_hold - now_ms), 1)::bigint;
	END IF;
	IF b_tat - tolerance > now_ms THEN
		RETURN greatest(ceil(b_tat - tolerance - now_ms), 1)::bigint;
	END IF;
	UPDATE buckets SET tat_ms = greatest(b_tat, now_ms) + step WHERE key = k;
	RETURN 0;
END $$;
