"""The transforms' fast paths give exactly what the plain code gave (no I/O)."""

from __future__ import annotations

import random
import unicodedata
import uuid
from datetime import UTC, datetime

from auth_migration.models import SourceUser, TargetUser
from auth_migration.transforms import ACCOUNT_ID_NAMESPACE, account_id_for, clean_name, mark_source_metadata

_ALPHABET = "abcXYZ019 -_.@:/\t\n\x00\x1f\x7f\u00e9\u00df\u200b\u200e\u2028\u2029\u00a0\u3000\ufeff\U0001f600\u212a"


def test_account_ids_are_uuid5_of_provider_and_account() -> None:
    rng = random.Random(5)
    for _ in range(5000):
        provider = rng.choice(["credential", "google", "github", "é", ""])
        account = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 40)))
        assert account_id_for(provider, account) == str(uuid.uuid5(ACCOUNT_ID_NAMESPACE, f"{provider}:{account}"))


def _draft(name: str) -> TargetUser:
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # fixed: nothing here is judged against today
    return TargetUser(
        id="u", email="ana@example.com", name=name, email_verified=True, image=None, created_at=now, updated_at=now
    )


def test_clean_name_fast_path_matches_the_character_filter() -> None:
    rng = random.Random(6)
    source = SourceUser(id="u", email="ana@example.com")
    for _ in range(5000):
        name = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 30)))
        expected = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip() or "ana"
        draft = _draft(name)
        clean_name(draft, source)
        assert draft.name == expected, repr(name)


def test_empty_metadata_gets_the_markers_without_serialising() -> None:
    created = datetime(2024, 1, 2, tzinfo=UTC)
    source = SourceUser(id="u", email="ana@example.com", created_at=created)
    draft = _draft("Ana")
    mark_source_metadata(draft, source)
    assert draft.metadata == {
        "migrated_from": "supabase",
        "original_id": "u",
        "original_created_at": created.isoformat(),
    }
    assert draft.flags == []
