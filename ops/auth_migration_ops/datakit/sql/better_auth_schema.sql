-- Better-Auth 1.7.25's own tables (user, account, session, verification) on PostgreSQL, exactly as its
-- migration creates them with the default options and the email-and-password plugin set.
--
-- Captured by running `getMigrations(auth.options).runMigrations()` (better-auth/db/migration, via
-- `node ops/better_auth_server/server.mjs --migrate-only`) on a fresh database and reading it back
-- with `pg_dump --schema-only`; the constraint names are the ones Postgres gave it. Rewritten to be
-- idempotent so the local demo can create the target without Node.
-- tests/integration/test_better_auth_server.py proves this file and Better-Auth's migration agree.
--
-- Production does NOT run this file: there Better-Auth creates and evolves its own tables
-- (`npx @better-auth/cli migrate` or `getMigrations`), as the product's config decides.

CREATE TABLE IF NOT EXISTS "user" (
    id text NOT NULL,
    name text NOT NULL,
    email text NOT NULL,
    "emailVerified" boolean NOT NULL,
    image text,
    "createdAt" timestamp with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "updatedAt" timestamp with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    CONSTRAINT user_pkey PRIMARY KEY (id),
    CONSTRAINT user_email_key UNIQUE (email)
);

CREATE TABLE IF NOT EXISTS session (
    id text NOT NULL,
    "expiresAt" timestamp with time zone NOT NULL,
    token text NOT NULL,
    "createdAt" timestamp with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "updatedAt" timestamp with time zone NOT NULL,
    "ipAddress" text,
    "userAgent" text,
    "userId" text NOT NULL,
    CONSTRAINT session_pkey PRIMARY KEY (id),
    CONSTRAINT session_token_key UNIQUE (token),
    CONSTRAINT "session_userId_fkey" FOREIGN KEY ("userId") REFERENCES "user" (id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS account (
    id text NOT NULL,
    "accountId" text NOT NULL,
    "providerId" text NOT NULL,
    "userId" text NOT NULL,
    "accessToken" text,
    "refreshToken" text,
    "idToken" text,
    "accessTokenExpiresAt" timestamp with time zone,
    "refreshTokenExpiresAt" timestamp with time zone,
    scope text,
    password text,
    "createdAt" timestamp with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "updatedAt" timestamp with time zone NOT NULL,
    CONSTRAINT account_pkey PRIMARY KEY (id),
    CONSTRAINT "account_userId_fkey" FOREIGN KEY ("userId") REFERENCES "user" (id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS verification (
    id text NOT NULL,
    identifier text NOT NULL,
    value text NOT NULL,
    "expiresAt" timestamp with time zone NOT NULL,
    "createdAt" timestamp with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "updatedAt" timestamp with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    CONSTRAINT verification_pkey PRIMARY KEY (id)
);

CREATE INDEX IF NOT EXISTS "session_userId_idx" ON session USING btree ("userId");
CREATE INDEX IF NOT EXISTS "account_userId_idx" ON account USING btree ("userId");
CREATE INDEX IF NOT EXISTS verification_identifier_idx ON verification USING btree (identifier);
