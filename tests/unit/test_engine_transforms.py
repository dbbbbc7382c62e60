"""The transforms' fast paths give exactly what the plain code gave (no I/O)."""

from __future__ import annotations

import json
import random
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Any

from auth_migration.models import SourceIdentity, SourceUser, TargetUser
from auth_migration.transforms import (
    ACCOUNT_ID_NAMESPACE,
    MAX_METADATA_BYTES,
    Transform,
    account_id_for,
    clean_name,
    mark_source_metadata,
    resolve_pipeline,
    transform,
)

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


_AS_OF = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

#: user_metadata of every shape the sources hand over: empty, absent, not an object, nested, non-ASCII,
#: values json cannot encode (default=str), keys that are not strings, the markers' own keys, too big.
_METADATA_SHAPES: list[Any] = [
    None,
    {},
    [],
    "just a string",
    42,
    {"full_name": "ana lópez", "avatar_url": "https://cdn.example.com/a.png"},
    {"nested": {"list": [1, 2.5, None, True], "emoji": "\U0001f600", "quote": '"\\'}},
    {"seen_at": datetime(2025, 3, 4, 5, 6, tzinfo=UTC), "id": uuid.UUID(int=7)},
    {1: "int key", None: "null key", 2.5: "float key"},
    {"original_id": "spoofed", "name": "x"},
    {"a": 1, "migrated_from": "elsewhere", "original_created_at": "then"},
    {"blob": "x" * (MAX_METADATA_BYTES + 10)},
    {"blob": "x" * (MAX_METADATA_BYTES - 12)},  # just at the limit: kept, not truncated
]


def _source(k: int, meta: Any, *, created: bool = True) -> SourceUser:
    return SourceUser(
        id=f"00000000-0000-4000-8000-{k:012d}",
        email=f"User{k}@Example.com",
        password_hash=None,
        user_metadata=meta,
        created_at=datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC) if created else None,
        identities=(SourceIdentity("google", f"g{k}"),),
        origin="profiles" if k % 2 else "supabase",
    )


def test_cached_metadata_text_is_the_fresh_serialization_after_the_full_chain() -> None:
    pipeline = resolve_pipeline(None)
    for k, meta in enumerate(_METADATA_SHAPES):
        for created in (True, False):
            draft = transform(_source(k, meta, created=created), pipeline, now=_AS_OF)
            assert draft.metadata_json is not None, repr(meta)[:80]
            assert draft.metadata_text() == json.dumps(draft.metadata, default=str), repr(meta)[:80]


def test_metadata_text_serializes_when_nothing_cached() -> None:
    draft = _draft("Ana")
    draft.metadata = {"plan": "pro", "since": datetime(2025, 1, 1, tzinfo=UTC)}
    assert draft.metadata_json is None
    assert draft.metadata_text() == json.dumps(draft.metadata, default=str)


def test_a_transform_changing_metadata_after_the_cache_was_set_leaves_no_stale_text() -> None:
    def add_tenant(draft: TargetUser, _source: SourceUser) -> None:
        draft.metadata["tenant"] = "acme"  # changes the dict in place: the cache cannot see it

    pipeline: list[Transform] = [mark_source_metadata, add_tenant]
    draft = transform(_source(1, {"full_name": "Ana"}), pipeline, now=_AS_OF)
    assert draft.metadata["tenant"] == "acme"
    assert json.loads(draft.metadata_text()) == draft.metadata
    assert draft.metadata_text() == json.dumps(draft.metadata, default=str)


def test_the_cache_is_neither_compared_nor_shown() -> None:
    cached, fresh = _draft("Ana"), _draft("Ana")
    cached.metadata_json = '{"stale": true}'
    assert cached == fresh
    assert "stale" not in repr(cached)
