-- 004_page_cursor.sql - a paginated job stops when the API hands back a cursor it has
-- already used (a `next` equal to the current cursor, or a cycle c0 -> c1 -> c0), which
-- would otherwise export forever. That check runs once per page and must not read every
-- page of a long export: this index answers it with one seek, and gives the first page
-- fetched with the cursor (page_no is in the index) for the job's reason.
CREATE INDEX IF NOT EXISTS pages_cursor ON pages(job_id, cursor, page_no);
