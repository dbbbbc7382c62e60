"""The reference document's "Migration Phases with Feature Flags": the flag set of each phase."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

#: Phase -> the flags it sets (SSM names and stored strings). The canary is left as it is.
PHASES: Final[Mapping[int, Mapping[str, str]]] = {
    # HASH_UPGRADE is on once Better-Auth answers first: the hash a sign-in there re-writes is Better-Auth's
    # own, and Supabase keeps its bcrypt (a rollback to phase 1-2 still signs everyone in).
    1: {
        "MIGRATION_MODE": "supabase_only",
        "USE_BETTER_AUTH": "false",
        "MIGRATION_VALIDATION": "false",
        "HASH_UPGRADE": "false",
    },
    2: {
        "MIGRATION_MODE": "dual_write",
        "USE_BETTER_AUTH": "false",
        "MIGRATION_VALIDATION": "true",
        "HASH_UPGRADE": "false",
    },
    3: {
        "MIGRATION_MODE": "dual_write",
        "USE_BETTER_AUTH": "true",
        "MIGRATION_VALIDATION": "true",
        "HASH_UPGRADE": "true",
    },
    4: {
        "MIGRATION_MODE": "better_auth_only",
        "USE_BETTER_AUTH": "true",
        "MIGRATION_VALIDATION": "false",
        "HASH_UPGRADE": "true",
    },
}
PHASE_NAMES: Final[Mapping[int, str]] = {
    1: "preparation: Supabase only",
    2: "dual-write testing: Supabase primary, Better-Auth written too",
    3: "Better-Auth primary: dual-write, Better-Auth answers first",
    4: "Better-Auth only",
}


def phase_of(stored: Mapping[str, str]) -> int | None:
    """The phase whose mode and primary the stored flags hold (validation aside), or None."""
    for number, wanted in PHASES.items():
        if all(stored.get(k) == wanted[k] for k in ("MIGRATION_MODE", "USE_BETTER_AUTH")):
            return number
    return None
