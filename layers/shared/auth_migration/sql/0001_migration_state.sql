-- Migration state: the seed's tables (names and meaning kept) plus the batch plan that makes
-- SQS-driven runs resumable and idempotent. Applied once by `auth-migrate db upgrade`.

CREATE TABLE IF NOT EXISTS migration_states (
    id                text PRIMARY KEY,
    status            text NOT NULL CHECK (status IN (
                          'planning', 'running', 'completed', 'completed_with_errors',
                          'failed', 'rolling_back', 'rolled_back')),
    source            text NOT NULL,
    target            text NOT NULL,
    dry_run           boolean NOT NULL DEFAULT false,
    batch_size        integer NOT NULL CHECK (batch_size BETWEEN 1 AND 10000),
    processed_count   bigint NOT NULL DEFAULT 0,
    error_count       bigint NOT NULL DEFAULT 0,
    -- Highest source id of a finished batch. Batches finish out of order under concurrency: the
    -- authoritative checkpoint is migration_batches (resume re-sends every batch not done).
    last_processed_id text,
    -- Planning checkpoint: batches cover (NULL, planned_through_id]; resume plans past it.
    planned_through_id text,
    batches_total     integer NOT NULL DEFAULT 0,
    batches_done      integer NOT NULL DEFAULT 0,
    batches_failed    integer NOT NULL DEFAULT 0,
    options           jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz
);
CREATE INDEX IF NOT EXISTS migration_states_created_idx ON migration_states (created_at DESC);

-- One row per planned batch: a keyset range (after_id, upto_id] of source ids. The row lock taken
-- while a batch runs serialises duplicate deliveries of the same SQS message.
CREATE TABLE IF NOT EXISTS migration_batches (
    migration_id   text NOT NULL REFERENCES migration_states (id) ON DELETE CASCADE,
    batch_no       integer NOT NULL,
    after_id       text,
    upto_id        text NOT NULL,
    status         text NOT NULL DEFAULT 'planned'
                   CHECK (status IN ('planned', 'queued', 'done', 'failed')),
    attempts       integer NOT NULL DEFAULT 0,
    user_count     integer,
    outcomes       jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Two-database mode only: ids this batch is about to create in the target, recorded before the
    -- target write so that a retry after a crash knows those rows are its own (see targets docs).
    pending_create text[],
    completed_at   timestamptz,
    PRIMARY KEY (migration_id, batch_no)
);

-- Lower-cased emails shared by several live source users, found once at planning time: every
-- user in such a group is reported as a conflict instead of letting batch order pick a winner.
CREATE TABLE IF NOT EXISTS migration_email_conflicts (
    migration_id text NOT NULL REFERENCES migration_states (id) ON DELETE CASCADE,
    email_lower  text NOT NULL,
    user_ids     text[] NOT NULL,
    PRIMARY KEY (migration_id, email_lower)
);

-- The seed's idempotency table. original_id is the claim: whoever inserts it creates the user.
CREATE TABLE IF NOT EXISTS migrated_users (
    original_id    text PRIMARY KEY,
    new_auth_id    text NOT NULL,
    email          text NOT NULL,
    migration_id   text REFERENCES migration_states (id),
    source         text NOT NULL,
    -- false when the target user already existed with this id and was adopted, not created:
    -- rollback then leaves the target user alone.
    created_target boolean NOT NULL DEFAULT true,
    flags          text[] NOT NULL DEFAULT '{}',
    metadata       jsonb,
    migrated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS migrated_users_migration_idx ON migrated_users (migration_id, original_id);

-- Every user a migration did not migrate, and why. kind: skipped (a defined non-migration, e.g.
-- soft-deleted), invalid (validation), conflict (needs a person), failed (retries exhausted).
CREATE TABLE IF NOT EXISTS migration_errors (
    id            bigserial PRIMARY KEY,
    migration_id  text NOT NULL REFERENCES migration_states (id) ON DELETE CASCADE,
    user_id       text,
    batch_no      integer,
    error_kind    text NOT NULL CHECK (error_kind IN ('skipped', 'invalid', 'conflict', 'failed')),
    error_code    text NOT NULL,
    error_message text NOT NULL,
    error_details jsonb,
    attempt       integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- "Once": a redelivered batch must not record the same user's error twice.
CREATE UNIQUE INDEX IF NOT EXISTS migration_errors_once
    ON migration_errors (migration_id, user_id, error_code) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS migration_errors_by_migration ON migration_errors (migration_id, error_kind, error_code);

-- One record per user says where that user stands, whichever path (bulk, lazy, dual-write) moved it.
CREATE TABLE IF NOT EXISTS user_migration_status (
    user_id                text PRIMARY KEY,
    email                  text,
    state                  text NOT NULL DEFAULT 'pending' CHECK (state IN (
                               'pending', 'migrated_bulk', 'migrated_lazy', 'dual_write', 'rolled_back')),
    supabase_migrated      boolean NOT NULL DEFAULT false,
    better_auth_migrated   boolean NOT NULL DEFAULT false,
    data_validated         boolean NOT NULL DEFAULT false,
    migration_id           text,
    migration_started_at   timestamptz NOT NULL DEFAULT now(),
    migration_completed_at timestamptz,
    migration_errors       text[] NOT NULL DEFAULT '{}',
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS user_migration_status_state_idx ON user_migration_status (state);

-- Every signup/login outcome: the canary health source (written by the API functions).
CREATE TABLE IF NOT EXISTS auth_events (
    id          bigserial PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    operation   text NOT NULL CHECK (operation IN ('signup', 'login')),
    system      text NOT NULL,
    mode        text NOT NULL,
    canary      boolean NOT NULL DEFAULT false,
    success     boolean NOT NULL,
    error_kind  text,
    latency_ms  integer NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_events_recent_idx ON auth_events (occurred_at DESC);

-- Audit of every rollout change: who, why, old and new value.
CREATE TABLE IF NOT EXISTS flag_changes (
    id         bigserial PRIMARY KEY,
    changed_at timestamptz NOT NULL DEFAULT now(),
    flag       text NOT NULL,
    old_value  text,
    new_value  text NOT NULL,
    actor      text NOT NULL,
    reason     text NOT NULL
);
