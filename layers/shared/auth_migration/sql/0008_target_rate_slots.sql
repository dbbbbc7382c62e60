-- The supabase target's one request cap per migration, shared by every MigrateBatch container
-- (targets/rate_limit.py): next_at is the end of the last block of request slots handed out. A row
-- per migration, advanced by one UPDATE per block (a few dozen a second at the highest cap).
CREATE TABLE IF NOT EXISTS target_rate_slots (
    key     text PRIMARY KEY,
    next_at timestamptz NOT NULL
);

-- Counts of the flags (needs_password_reset, no_credentials...) of each batch's migrated users, so a
-- dry run reports them too (a real run also lists them from migrated_users.flags).
ALTER TABLE migration_batches ADD COLUMN IF NOT EXISTS flag_counts jsonb;
