-- Supabase sessions and refresh tokens copied into our state (sessions/session_copy.py), so the session
-- exchange keeps working after Supabase is gone, and its ledger of exchanged refresh tokens (each is
-- exchanged at most once; a second use is refused and ends the session's family, as GoTrue's reuse
-- detection does).

-- One row per GoTrue auth.sessions row of a live user, as the last `auth-migrate sessions copy` saw it.
-- banned_until is the user's at that copy; copy_run the run that last saw it. ended_at: the session was gone from Supabase at a later full
-- copy (signed out, expired, user deleted), or a refresh token of it was reused (possible theft).
CREATE TABLE IF NOT EXISTS copied_supabase_sessions (
    session_id   uuid PRIMARY KEY,
    user_id      uuid NOT NULL,
    created_at   timestamptz,
    not_after    timestamptz,
    banned_until timestamptz,
    copied_at    timestamptz NOT NULL,
    copy_run     uuid NOT NULL,
    ended_at     timestamptz,
    ended_reason text CHECK (ended_reason IN ('gone_from_supabase', 'refresh_token_reused'))
);
CREATE INDEX IF NOT EXISTS copied_supabase_sessions_user_idx ON copied_supabase_sessions (user_id);

-- Refresh tokens by SHA-256 of the token (computed in the source database: the plain token never leaves
-- Supabase). A plain SHA-256 and not a password hash: GoTrue's tokens are 12 random alphanumerics (71 bits),
-- out of reach of a dictionary, and the exchange must find a token by an index probe.
-- copied_at NULL: first seen by an exchange while Supabase was live (issued after the last copy).
-- exchanged_at / better_auth_session_id: the one exchange this token was spent on.
CREATE TABLE IF NOT EXISTS copied_refresh_tokens (
    token_hash             bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    session_id             uuid NOT NULL,
    user_id                uuid NOT NULL,
    revoked                boolean NOT NULL,
    copied_at              timestamptz,
    exchanged_at           timestamptz,
    better_auth_session_id text
);
CREATE INDEX IF NOT EXISTS copied_refresh_tokens_session_idx ON copied_refresh_tokens (session_id);
