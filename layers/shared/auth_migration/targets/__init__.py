"""Targets: where a migration writes users. Better-Auth, written directly in its own tables; Supabase Auth
(GoTrue), through its admin API (targets/supabase.py, engine/supabase_batch.py)."""

from __future__ import annotations

from auth_migration.exceptions import InvalidRequest
from auth_migration.targets.better_auth import BetterAuthTarget, TargetCapabilities
from auth_migration.targets.supabase import SupabaseTarget

__all__ = ["TARGETS", "TARGET_NAMES", "BetterAuthTarget", "SupabaseTarget", "TargetCapabilities", "get_target"]

TARGETS = {"better-auth": BetterAuthTarget}
#: Every target `start` accepts; the SQL ones are in TARGETS, the HTTP one has its own batch path.
TARGET_NAMES = frozenset({*TARGETS, SupabaseTarget.name})


def get_target(name: str) -> BetterAuthTarget:
    try:
        return TARGETS[name]()
    except KeyError:
        raise InvalidRequest(f"unknown target {name!r}; known: {', '.join(sorted(TARGETS))}") from None
