-- A batch that finds in the target a user an earlier migration's interrupted batch created (its
-- pending_create names the id, its tracking row was never written) records that user as created by
-- the earlier migration, so rolling that one back removes it, and lists it here as 'recovered'.
ALTER TABLE migration_errors DROP CONSTRAINT IF EXISTS migration_errors_error_kind_check;
ALTER TABLE migration_errors ADD CONSTRAINT migration_errors_error_kind_check
    CHECK (error_kind IN ('skipped', 'invalid', 'conflict', 'failed', 'recovered'));
