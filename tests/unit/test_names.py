"""One naming rule: a user gets the same Better-Auth name whichever path (bulk, lazy, dual-write,
Reconcile) writes them, so Reconcile never reports a name mismatch that only the rules made."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from auth_migration.models import SourceUser
from auth_migration.names import display_name, name_from_metadata
from auth_migration.transforms import build_target

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("metadata", "name"),
    [
        ({"full_name": "  Ada Lovelace "}, "Ada Lovelace"),
        ({"name": "Ada"}, "Ada"),
        ({"first_name": "Ada", "last_name": "Lovelace"}, "Ada Lovelace"),
        ({"user_name": "ada_l"}, "ada_l"),
        ({"full_name": "   ", "preferred_username": "ada"}, "ada"),
        ({}, "ada.l"),
        (["not", "an", "object"], "ada.l"),
    ],
)
def test_bulk_and_dual_write_name_a_user_alike(metadata: object, name: str) -> None:
    bulk = build_target(SourceUser(id="u1", email="Ada.L@example.com", user_metadata=metadata), now=AT)
    assert bulk.name == display_name("ada.l@example.com", metadata) == name


def test_no_name_in_the_metadata_is_none() -> None:
    assert name_from_metadata({"avatar_url": "https://example.com/a.png"}) is None
    assert name_from_metadata(None) is None
