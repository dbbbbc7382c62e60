-- Rollout control: where a change came from, whether a safety check was overridden, and the figures
-- behind an automatic rollback; which system answered first for each auth event (the health of
-- Better-Auth-primary traffic is read from it).
ALTER TABLE flag_changes ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'cli'
    CHECK (source IN ('cli', 'admin-api', 'auto-rollback'));
ALTER TABLE flag_changes ADD COLUMN IF NOT EXISTS forced boolean NOT NULL DEFAULT false;
ALTER TABLE flag_changes ADD COLUMN IF NOT EXISTS details jsonb;
CREATE INDEX IF NOT EXISTS flag_changes_by_flag ON flag_changes (flag, changed_at DESC);
ALTER TABLE auth_events ADD COLUMN IF NOT EXISTS primary_system text;
