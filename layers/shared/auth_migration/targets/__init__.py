"""Targets: where a migration writes users. Better-Auth, written directly in its own tables."""

from __future__ import annotations

from auth_migration.exceptions import InvalidRequest
from auth_migration.targets.better_auth import BetterAuthTarget, TargetCapabilities

__all__ = ["TARGETS", "BetterAuthTarget", "TargetCapabilities", "get_target"]

TARGETS = {"better-auth": BetterAuthTarget}


def get_target(name: str) -> BetterAuthTarget:
    try:
        return TARGETS[name]()
    except KeyError:
        raise InvalidRequest(f"unknown target {name!r}; known: {', '.join(sorted(TARGETS))}") from None
