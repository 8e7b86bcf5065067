-- 012_remaining_counted.sql - files.remaining (010_results.sql) is kept by the store's
-- code rather than by a trigger: a transaction counts the jobs of each file that end (or,
-- retried, come back) and writes one UPDATE per file before anything reads the count and
-- at its commit, so the count is still committed with the state changes, in the same
-- transaction. The trigger cost an UPDATE of the files row at every job's end, a twentieth
-- of a job's cost in a file of 20,000 jobs. The rule is the trigger's: a job counts when
-- its state crosses between not ended (< 3) and ended (>= 3), for a file whose remaining
-- IS NOT NULL AND results IS NULL (src/store/sqlite_results.c).
DROP TRIGGER IF EXISTS jobs_file_remaining;
