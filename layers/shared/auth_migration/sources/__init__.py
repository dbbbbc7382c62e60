"""User sources: where a migration reads users from, each by keyset pagination in id order."""

from __future__ import annotations

from auth_migration.exceptions import InvalidRequest
from auth_migration.sources.base import UserSource
from auth_migration.sources.profiles import ProfilesSource
from auth_migration.sources.supabase import SupabaseSource

__all__ = ["SOURCES", "ProfilesSource", "SupabaseSource", "UserSource", "get_source"]

SOURCES: dict[str, type[UserSource]] = {"supabase": SupabaseSource, "profiles": ProfilesSource}


def get_source(name: str) -> UserSource:
    try:
        return SOURCES[name]()
    except KeyError:
        raise InvalidRequest(f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}") from None
