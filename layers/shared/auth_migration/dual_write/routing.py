"""Which system answers a request: mode, primary switch and canary, decided once from the flag snapshot."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from auth_migration.backends.base import BETTER_AUTH, SUPABASE, SystemName
from auth_migration.flags import CanarySelection, Flags, MigrationMode

__all__ = ["Route", "canary_bucket", "in_canary", "route_for"]

_BUCKETS = 10_000


def canary_bucket(key: str) -> int:
    """A stable bucket in [0, 10000) for a user key: the same on every container and every deploy.

    sha256, not hash(): Python salts str hashes per process, which would move users between buckets.
    """
    digest = hashlib.sha256(key.strip().lower().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % _BUCKETS


def in_canary(flags: Flags, email: str) -> bool:
    """Whether this user is in the canary. Keyed by email: a login knows no id before it succeeds.

    Percentage-based selections (user_id_hash and random) both use the stable bucket, so raising the
    percentage only adds users (bucket < threshold grows), never swaps one out.
    """
    if not flags.canary_enabled:
        return False
    address = email.strip().lower()
    selection = flags.canary_user_selection
    if selection is CanarySelection.WHITELIST:
        return address in flags.canary_whitelist
    if selection is CanarySelection.EMAIL_DOMAIN:
        return address.rpartition("@")[2] in flags.canary_email_domains
    return canary_bucket(address) < round(flags.canary_percentage * _BUCKETS / 100)


@dataclass(frozen=True, slots=True)
class Route:
    """The systems a request may touch, primary first, and whether the canary chose the primary."""

    mode: MigrationMode
    primary: SystemName
    canary: bool

    @property
    def secondary(self) -> SystemName | None:
        """The other system in dual_write; None in the single-system modes (they never touch the other)."""
        if self.mode is not MigrationMode.DUAL_WRITE:
            return None
        return SUPABASE if self.primary == BETTER_AUTH else BETTER_AUTH


def route_for(flags: Flags, email: str) -> Route:
    """supabase_only and better_auth_only use their one system; dual_write's primary is Better-Auth when
    USE_BETTER_AUTH is on or the user is in the canary, else Supabase."""
    mode = flags.migration_mode
    if mode is MigrationMode.SUPABASE_ONLY:
        return Route(mode, SUPABASE, canary=False)
    if mode is MigrationMode.BETTER_AUTH_ONLY:
        return Route(mode, BETTER_AUTH, canary=False)
    canary = not flags.use_better_auth and in_canary(flags, email)
    primary: SystemName = BETTER_AUTH if flags.use_better_auth or canary else SUPABASE
    return Route(mode, primary, canary=canary)
