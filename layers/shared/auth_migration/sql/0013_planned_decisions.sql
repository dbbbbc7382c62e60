-- What planning already decided for a batch of a re-run (state in the source's database only): planning
-- reads every user once and finds, per range, the few users a batch still has to decide (not migrated,
-- or migrated but not plainly valid). decide_only holds those ids: the batch reads them by id instead of
-- re-reading its whole range (ids are random uuids, so a range's 10,000 users sit on ~9,000 heap pages),
-- and counts the range's other `counted` users as already migrated, as a settled batch is counted at
-- planning. NULL (every first run, and a range with many such users): the batch reads its whole range.
ALTER TABLE migration_batches ADD COLUMN IF NOT EXISTS decide_only text[];
ALTER TABLE migration_batches ADD COLUMN IF NOT EXISTS counted integer;
