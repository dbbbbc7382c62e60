"""The one rule for a user's display name from their metadata: the bulk migration, lazy migration,
dual-write and Reconcile all name a user the same way, so no path sees a "name mismatch" another made."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["display_name", "name_from_metadata"]


def name_from_metadata(meta: Any) -> str | None:
    """full_name, name, "first last", then a username; stripped; None when the metadata holds none."""
    if not isinstance(meta, Mapping):
        return None
    for key in ("full_name", "name"):
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    parts = [meta.get(k) for k in ("first_name", "last_name")]
    joined = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    if joined:
        return joined
    for key in ("user_name", "username", "preferred_username"):
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def display_name(email: str, metadata: Any) -> str:
    """Better-Auth requires a name: the metadata's, else the email's local part."""
    return name_from_metadata(metadata) or email.partition("@")[0] or email
