-- Dual-write: the repair queue of record. Every signup or login that left the two auth systems
-- disagreeing (a one-sided write, a field mismatch, an outcome we could not observe) gets a row here
-- BEFORE the Reconcile queue is told about it, so a lost SQS message loses nothing: a sweep re-sends
-- every open gap. Applied by `auth-migrate db upgrade`.

CREATE TABLE IF NOT EXISTS dual_write_gaps (
    id             bigserial PRIMARY KEY,
    -- NULL when the outcome is unknown (both systems failed or timed out before answering with an id).
    user_id        text,
    email          text NOT NULL,
    -- The system whose record wins when the two disagree (the one that answered the user).
    source_system  text NOT NULL CHECK (source_system IN ('supabase', 'better_auth')),
    reason         text NOT NULL CHECK (reason IN (
                       'secondary_failed', 'fallback_signup', 'mismatch', 'uncertain', 'lazy_failed')),
    -- A bcrypt hash of the password the user chose, so the missing system can be given the same
    -- password without ever storing or queueing the plain text. Cleared as soon as the gap closes.
    password_hash  text,
    user_metadata  jsonb NOT NULL DEFAULT '{}'::jsonb,
    email_verified boolean,
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'repaired', 'conflict')),
    outcome        text,
    attempts       integer NOT NULL DEFAULT 0,
    last_error     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    closed_at      timestamptz,
    -- A repaired gap keeps no secret.
    CHECK (status = 'open' OR password_hash IS NULL)
);
-- One open gap per email: a retried signup refreshes the gap instead of queueing a second repair.
CREATE UNIQUE INDEX IF NOT EXISTS dual_write_gaps_open_email ON dual_write_gaps (email) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS dual_write_gaps_status_idx ON dual_write_gaps (status, updated_at);

-- The canary health check reads recent events split by canary flag.
CREATE INDEX IF NOT EXISTS auth_events_health_idx ON auth_events (occurred_at DESC, canary);
