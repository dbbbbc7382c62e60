"""A set of flag changes, validated and put in an order where no state in between is less safe than
both ends: Better-Auth's exposure is narrowed before anything widens, and widened last."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from auth_migration.flags import MigrationMode, canonical_value

__all__ = ["FlagChange", "emergency_rollback", "exposure_delta", "plan_changes"]

# How much traffic a mode puts on Better-Auth, to tell a narrowing change from a widening one.
_MODE_EXPOSURE: Final = {MigrationMode.SUPABASE_ONLY: 0, MigrationMode.DUAL_WRITE: 1, MigrationMode.BETTER_AUTH_ONLY: 2}
# Narrowing steps first, in this order (the primary off before the canary closes, the mode last);
# widening steps in the reverse order (the mode first, the primary switch last of all).
_NARROW_ORDER: Final = (
    "USE_BETTER_AUTH",
    "CANARY_ENABLED",
    "CANARY_PERCENTAGE",
    "CANARY_WHITELIST",
    "CANARY_EMAIL_DOMAINS",
    "CANARY_USER_SELECTION",
    "MIGRATION_MODE",
)


@dataclass(frozen=True, slots=True)
class FlagChange:
    name: str
    old: str | None
    new: str


def exposure_delta(change: FlagChange) -> int:
    """-1 when the change moves traffic off Better-Auth, +1 when onto it, 0 when neither."""
    name, old, new = change.name, change.old, change.new
    if name == "MIGRATION_MODE":
        was = _MODE_EXPOSURE[MigrationMode(old)] if old in set(MigrationMode) else 0
        return _sign(_MODE_EXPOSURE[MigrationMode(new)] - was)
    if name in ("USE_BETTER_AUTH", "CANARY_ENABLED"):
        return _sign((new == "true") - (old == "true"))
    if name == "CANARY_PERCENTAGE":
        return _sign(float(new) - _float_or_zero(old))
    if name in ("CANARY_WHITELIST", "CANARY_EMAIL_DOMAINS"):
        kept, wanted = _items(old), _items(new)
        return 1 if wanted - kept else (-1 if kept - wanted else 0)
    return 0  # thresholds, timeouts, validation, selection method: no traffic moves by themselves


def plan_changes(current: Mapping[str, str], desired: Mapping[str, str]) -> list[FlagChange]:
    """The changes that take `current` (stored strings) to `desired`, validated and safely ordered;
    values already in place are left out.

    Raises:
        InvalidRequest: an unknown flag or a value it cannot take (nothing is to be written then).
    """
    wanted = dict(canonical_value(name, value) for name, value in desired.items())
    changes = [FlagChange(n, current.get(n), v) for n, v in wanted.items() if current.get(n) != v]

    def key(change: FlagChange) -> tuple[int, int]:
        delta = exposure_delta(change)
        rank = _NARROW_ORDER.index(change.name) if change.name in _NARROW_ORDER else len(_NARROW_ORDER)
        if delta < 0:
            return (0, rank)
        if delta == 0:
            return (1, rank)
        return (2, -rank)

    return sorted(changes, key=key)


def emergency_rollback(current: Mapping[str, str]) -> dict[str, str]:
    """The flags of an emergency rollback: canary off, Better-Auth not primary, Supabase only.

    From Better-Auth only it stops at dual-write with Supabase primary instead: users who signed up
    in phase 4 exist in Better-Auth alone, and Supabase only would lock every one of them out, while
    dual-write's login still finds them where they are.
    """
    mode = "dual_write" if current.get("MIGRATION_MODE") == MigrationMode.BETTER_AUTH_ONLY else "supabase_only"
    return {"CANARY_ENABLED": "false", "USE_BETTER_AUTH": "false", "MIGRATION_MODE": mode}


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _float_or_zero(text: str | None) -> float:
    try:
        return float(text) if text is not None else 0.0
    except ValueError:
        return 0.0


def _items(text: str | None) -> set[str]:
    return {i.strip().lower() for i in (text or "").split(",") if i.strip() not in ("", "-")}
