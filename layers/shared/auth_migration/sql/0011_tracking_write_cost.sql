-- The GoTrue-id index of 0007 only has to find tracking rows whose GoTrue id differs from the source id
-- (derived from a non-UUID id): every other row is found by its primary key, original_id, as well.
-- The full index cost every bulk write one more B-tree insert per user (Better-Auth rows always have
-- new_auth_id = original_id); the partial one holds only the differing rows. Its one reader,
-- rollback_supabase's "does any tracking row name this GoTrue id?", probes the primary key for
-- original_id = id and this index for the rest (engine/supabase_batch.py).
DROP INDEX IF EXISTS migrated_users_new_auth_id_idx;
CREATE INDEX IF NOT EXISTS migrated_users_new_auth_id_idx ON migrated_users (new_auth_id)
    WHERE new_auth_id <> original_id;
