-- The supabase (GoTrue) target: a GoTrue id may differ from the source id (derived from a non-UUID
-- id), and its open intents (migration_batches.pending_create) hold GoTrue ids. Rollback asks "does
-- any tracking row name this GoTrue id?" per id of an open intent: one index probe each.
CREATE INDEX IF NOT EXISTS migrated_users_new_auth_id_idx ON migrated_users (new_auth_id);
