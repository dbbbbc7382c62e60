-- Session exchange (auth_migration/sessions) and the hash upgrade on login (dual_write/service.py): each is
-- an auth event like a sign-in, so the health and canary figures count it.
ALTER TABLE auth_events DROP CONSTRAINT IF EXISTS auth_events_operation_check;
ALTER TABLE auth_events ADD CONSTRAINT auth_events_operation_check
    CHECK (operation IN ('signup', 'login', 'session_exchange', 'hash_upgrade'));

-- Fixed-window request counters of the API's own rate limits (sessions/rate_limits.py), shared by every
-- container: one row per bucket ("session_exchange:ip:<address>", "...:user:<id>") and window, counted
-- by one upsert. AutoRollback deletes windows older than an hour.
CREATE TABLE IF NOT EXISTS api_rate_hits (
    bucket       text NOT NULL,
    window_start timestamptz NOT NULL,
    hits         integer NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX IF NOT EXISTS api_rate_hits_window_idx ON api_rate_hits (window_start);
