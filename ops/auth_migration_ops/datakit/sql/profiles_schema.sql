-- The legacy public.profiles table of the reference document (its getUsersToMigrate() reads
-- id, email, username, first_name, last_name, avatar_url, created_at, updated_at).
--
-- Legacy data is loose on purpose: email may be NULL or malformed, nothing is unique but the id.
-- password_hash (a bcrypt hash, when the legacy system kept passwords) is optional: the profiles
-- generator adds it with `ALTER TABLE ... ADD COLUMN IF NOT EXISTS` only when asked.
-- Idempotent: applying it twice is harmless.

CREATE TABLE IF NOT EXISTS public.profiles (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    email text NULL,
    username text NULL,
    first_name text NULL,
    last_name text NULL,
    avatar_url text NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT profiles_pkey PRIMARY KEY (id)
);
