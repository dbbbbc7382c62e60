-- The instant a migration judges time-dependent rules against (a ban is in force when banned_until >
-- as_of). Set once by `start` from the engine's clock, so every batch, redelivery and resume of one
-- migration reaches the same outcome for the same user whatever day it runs. Migrations started
-- before this column existed are judged as of their created_at.
ALTER TABLE migration_states ADD COLUMN IF NOT EXISTS as_of timestamptz;
UPDATE migration_states SET as_of = created_at WHERE as_of IS NULL;
