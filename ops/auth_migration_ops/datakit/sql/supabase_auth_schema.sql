-- Supabase Auth (GoTrue) tables auth.users and auth.identities, for tests and local runs.
--
-- A copy of the two tables as supabase/auth's migrations leave them (up to and including
-- 20240214120130_add_is_anonymous_column; the columns and indexes below follow
-- 00_init_auth_schema, 20210710035447_alter_users, 20210722035447_adds_confirmed_at,
-- 20210730183235_add_email_change_confirmed, 20220114185340_add_banned_until,
-- 20220323170000_add_user_reauthentication, 20221130112646_add_deleted_at,
-- 20221215195500_modify_users_email_unique_index, 20221215195800_add_identities_email_column,
-- 20231117164230_add_id_pkey_identities). Only what a migration reads is copied, plus the
-- sessions and refresh tokens the GoTrue stand-in hands out (below): no MFA, SSO or audit tables,
-- no roles or grants. The GoTrue stand-in used by the integration tests reuses this file, so keep
-- it faithful to GoTrue rather than convenient for us.
--
-- Differences from GoTrue, on purpose:
--   * the token columns (and email_change / phone_change) default to '' instead of NULL:
--     GoTrue answers 500 on rows whose token columns are NULL, and rows here are written by SQL;
--   * no extensions: gen_random_uuid() is core since PostgreSQL 13, so this runs on PostgreSQL 15
--     and on the embedded PostgreSQL 18 (which ships without pgcrypto).
-- Idempotent: every statement is IF NOT EXISTS (the enum type: a DO block ignoring duplicate_object),
-- so applying it twice, or over a database made by an older copy of this file, is harmless.

CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE IF NOT EXISTS auth.users (
    instance_id uuid NULL,
    id uuid NOT NULL,
    aud varchar(255) NULL,
    "role" varchar(255) NULL,
    email varchar(255) NULL,
    encrypted_password varchar(255) NULL,
    email_confirmed_at timestamptz NULL,
    invited_at timestamptz NULL,
    confirmation_token varchar(255) NULL DEFAULT '',
    confirmation_sent_at timestamptz NULL,
    recovery_token varchar(255) NULL DEFAULT '',
    recovery_sent_at timestamptz NULL,
    email_change_token_new varchar(255) NULL DEFAULT '',
    email_change varchar(255) NULL DEFAULT '',
    email_change_sent_at timestamptz NULL,
    last_sign_in_at timestamptz NULL,
    raw_app_meta_data jsonb NULL,
    raw_user_meta_data jsonb NULL,
    is_super_admin bool NULL,
    created_at timestamptz NULL,
    updated_at timestamptz NULL,
    phone text NULL DEFAULT NULL,
    phone_confirmed_at timestamptz NULL,
    phone_change text NULL DEFAULT '',
    phone_change_token varchar(255) NULL DEFAULT '',
    phone_change_sent_at timestamptz NULL,
    confirmed_at timestamptz GENERATED ALWAYS AS (LEAST(email_confirmed_at, phone_confirmed_at)) STORED,
    email_change_token_current varchar(255) NULL DEFAULT '',
    email_change_confirm_status smallint NULL DEFAULT 0,
    banned_until timestamptz NULL,
    reauthentication_token varchar(255) NULL DEFAULT '',
    reauthentication_sent_at timestamptz NULL,
    is_sso_user boolean NOT NULL DEFAULT false,
    deleted_at timestamptz NULL,
    is_anonymous boolean NOT NULL DEFAULT false,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_phone_key UNIQUE (phone),
    CONSTRAINT users_email_change_confirm_status_check
        CHECK (email_change_confirm_status >= 0 AND email_change_confirm_status <= 2)
);

COMMENT ON TABLE auth.users IS 'Auth: Stores user login data within a secure schema.';
COMMENT ON COLUMN auth.users.is_sso_user IS
    'Auth: Set this column to true when the account comes from SSO. These accounts can have duplicate emails.';

CREATE INDEX IF NOT EXISTS users_instance_id_idx ON auth.users USING btree (instance_id);
CREATE INDEX IF NOT EXISTS users_instance_id_email_idx ON auth.users USING btree (instance_id, lower((email)::text));
CREATE INDEX IF NOT EXISTS users_is_anonymous_idx ON auth.users USING btree (is_anonymous);

-- Case-sensitive, as in GoTrue: 'Jane.Doe@x.com' and 'jane.doe@x.com' are two users here, which is
-- exactly what breaks a target whose email index is unique on the lowercased address.
CREATE UNIQUE INDEX IF NOT EXISTS users_email_partial_key ON auth.users (email) WHERE (is_sso_user = false);
COMMENT ON INDEX auth.users_email_partial_key IS
    'Auth: A partial unique index that applies only when is_sso_user is false';

-- Token lookups; all-digit or empty tokens (the '' default) stay out of the unique indexes.
CREATE UNIQUE INDEX IF NOT EXISTS confirmation_token_idx ON auth.users USING btree (confirmation_token)
    WHERE ((confirmation_token)::text !~ '^[0-9 ]*$'::text);
CREATE UNIQUE INDEX IF NOT EXISTS recovery_token_idx ON auth.users USING btree (recovery_token)
    WHERE ((recovery_token)::text !~ '^[0-9 ]*$'::text);
CREATE UNIQUE INDEX IF NOT EXISTS email_change_token_current_idx ON auth.users USING btree (email_change_token_current)
    WHERE ((email_change_token_current)::text !~ '^[0-9 ]*$'::text);
CREATE UNIQUE INDEX IF NOT EXISTS email_change_token_new_idx ON auth.users USING btree (email_change_token_new)
    WHERE ((email_change_token_new)::text !~ '^[0-9 ]*$'::text);
CREATE UNIQUE INDEX IF NOT EXISTS reauthentication_token_idx ON auth.users USING btree (reauthentication_token)
    WHERE ((reauthentication_token)::text !~ '^[0-9 ]*$'::text);

CREATE TABLE IF NOT EXISTS auth.identities (
    provider_id text NOT NULL,
    user_id uuid NOT NULL,
    identity_data jsonb NOT NULL,
    provider text NOT NULL,
    last_sign_in_at timestamptz NULL,
    created_at timestamptz NULL,
    updated_at timestamptz NULL,
    email text GENERATED ALWAYS AS (lower((identity_data ->> 'email'::text))) STORED,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    CONSTRAINT identities_pkey PRIMARY KEY (id),
    CONSTRAINT identities_provider_id_provider_unique UNIQUE (provider_id, provider),
    CONSTRAINT identities_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users (id) ON DELETE CASCADE
);

COMMENT ON TABLE auth.identities IS 'Auth: Stores identities associated to a user.';
COMMENT ON COLUMN auth.identities.email IS
    'Auth: Email is a generated column that references the optional email property in the identity_data';

CREATE INDEX IF NOT EXISTS identities_user_id_idx ON auth.identities USING btree (user_id);
CREATE INDEX IF NOT EXISTS identities_email_idx ON auth.identities USING btree (email text_pattern_ops);

-- Sessions and refresh tokens, as supabase/auth's migrations leave them up to and including
-- 20231114161723_add_sessions_tag (00_init_auth_schema, 20210927181326_add_refresh_token_parent,
-- 20220811173540_add_sessions_table, 20221003041349_add_mfa_schema (the aal_level type only),
-- 20221003041400_add_aal_and_factor_id_to_sessions, 20221011041400_add_mfa_indexes,
-- 20221020193600_add_sessions_user_id_index, 20221021073300_add_refresh_tokens_session_id_revoked_index,
-- 20221114143122_add_session_not_after_column, 20221114143410_remove_parent_foreign_key_refresh_tokens,
-- 20230411005111_remove_duplicate_idx, 20230508135423_add_cleanup_indexes,
-- 20231027141322_add_session_refresh_columns). Not copied: the later OAuth-server and v2 refresh-token
-- columns (oauth_client_id, refresh_token_hmac_key, refresh_token_counter, scopes), which GoTrue leaves
-- NULL for a password sign-in with its default legacy (12-character) refresh tokens.
-- Faithful quirks kept: refresh_tokens.user_id is varchar(255) with no foreign key (a user's tokens go
-- with its sessions, by cascade), parent has no foreign key, and sessions.refreshed_at is a timestamp
-- WITHOUT time zone (GoTrue writes it in UTC).

DO $$
BEGIN
    CREATE TYPE auth.aal_level AS ENUM ('aal1', 'aal2', 'aal3');
EXCEPTION
    WHEN duplicate_object THEN NULL;
END $$;

CREATE TABLE IF NOT EXISTS auth.sessions (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    created_at timestamptz NULL,
    updated_at timestamptz NULL,
    factor_id uuid NULL,
    aal auth.aal_level NULL,
    not_after timestamptz NULL,
    refreshed_at timestamp without time zone NULL,
    user_agent text NULL,
    ip inet NULL,
    tag text NULL,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users (id) ON DELETE CASCADE
);

COMMENT ON TABLE auth.sessions IS 'Auth: Stores session data associated to a user.';
COMMENT ON COLUMN auth.sessions.not_after IS
    'Auth: Not after is a nullable column that contains a timestamp after which the session should be regarded as expired.';

CREATE INDEX IF NOT EXISTS user_id_created_at_idx ON auth.sessions USING btree (user_id, created_at);
CREATE INDEX IF NOT EXISTS sessions_user_id_idx ON auth.sessions USING btree (user_id);
CREATE INDEX IF NOT EXISTS sessions_not_after_idx ON auth.sessions USING btree (not_after DESC);

CREATE TABLE IF NOT EXISTS auth.refresh_tokens (
    instance_id uuid NULL,
    id bigserial NOT NULL,
    "token" varchar(255) NULL,
    user_id varchar(255) NULL,
    revoked bool NULL,
    created_at timestamptz NULL,
    updated_at timestamptz NULL,
    parent varchar(255) NULL,
    session_id uuid NULL,
    CONSTRAINT refresh_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT refresh_tokens_token_unique UNIQUE ("token"),
    CONSTRAINT refresh_tokens_session_id_fkey FOREIGN KEY (session_id) REFERENCES auth.sessions (id) ON DELETE CASCADE
);

COMMENT ON TABLE auth.refresh_tokens IS 'Auth: Store of tokens used to refresh JWT tokens once they expire.';

CREATE INDEX IF NOT EXISTS refresh_tokens_instance_id_idx ON auth.refresh_tokens USING btree (instance_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_instance_id_user_id_idx ON auth.refresh_tokens USING btree (instance_id, user_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_parent_idx ON auth.refresh_tokens USING btree (parent);
CREATE INDEX IF NOT EXISTS refresh_tokens_session_id_revoked_idx ON auth.refresh_tokens USING btree (session_id, revoked);
CREATE INDEX IF NOT EXISTS refresh_tokens_updated_at_idx ON auth.refresh_tokens USING btree (updated_at DESC);
