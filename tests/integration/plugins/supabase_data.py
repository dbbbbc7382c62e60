"""Source-side fixtures: fresh databases holding Supabase's auth schema or the legacy profiles table."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from auth_migration_ops.datakit.supabase_data import create_profiles_schema, create_supabase_schema


@pytest.fixture
def supabase_db(make_database: Callable[[], str]) -> str:
    """URL of a fresh database with empty `auth.users` / `auth.identities` (dropped after the test)."""
    url = make_database()
    create_supabase_schema(url)
    return url


@pytest.fixture
def profiles_db(make_database: Callable[[], str]) -> str:
    """URL of a fresh database with an empty legacy `public.profiles` as the reference document has it.

    Tests of the password-keeping variant add the column: `create_profiles_schema(url, with_password_hash=True)`.
    """
    url = make_database()
    create_profiles_schema(url)
    return url
