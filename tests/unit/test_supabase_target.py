"""The supabase target's pure parts: ids, hashes, the admin-create body, the limiter, the commands."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from auth_migration.control import parse_command
from auth_migration.engine.plan import StartRequest
from auth_migration.exceptions import InvalidRequest
from auth_migration.models import SourceUser
from auth_migration.targets.supabase import RateLimiter, gotrue_id_for, gotrue_payload, usable_password_hash
from auth_migration.transforms import ACCOUNT_ID_NAMESPACE, resolve_pipeline, transform
from tests.reference_time import REFERENCE_TIME

BCRYPT = "$2a$10$" + "a" * 53


def test_a_source_uuid_is_kept_and_anything_else_derived_with_the_better_auth_scheme() -> None:
    kept = "6F1C1E3A-1D7E-4B7E-9A51-6D2F0B7A4C11"
    assert gotrue_id_for(kept) == kept.lower()
    assert gotrue_id_for("legacy-42") == str(uuid.uuid5(ACCOUNT_ID_NAMESPACE, "gotrue-user:legacy-42"))
    assert gotrue_id_for("legacy-42") == gotrue_id_for("legacy-42")


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (BCRYPT, True),
        ("$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", True),
        ("$fbscrypt$v=1,n=14,r=8,p=1,ss=Bw==,sk=a2V5$c2FsdA==$aGFzaA==", True),
        ("md5$abc", False),
        ("", False),
        (None, False),
    ],
)
def test_only_hashes_gotrue_takes_are_sent(value: str | None, kept: bool) -> None:
    assert usable_password_hash(value) == (value if kept else None)


def _source(**extra: object) -> SourceUser:
    values: dict[str, object] = {
        "id": "6f1c1e3a-1d7e-4b7e-9a51-6d2f0b7a4c11",
        "email": "Ada.Byron@Example.COM",
        "email_confirmed_at": REFERENCE_TIME,
        "user_metadata": {"username": "AdaB", "first_name": "ada", "last_name": "van der Berg", "avatar_url": "x"},
        "created_at": datetime(2024, 1, 2, tzinfo=UTC),
        "origin": "legacy_profiles",
        **extra,
    }
    return SourceUser(**values)  # type: ignore[arg-type]


def test_the_admin_create_body_follows_the_seeds_transformation_with_our_id_and_as_of() -> None:
    source = _source(password_hash=BCRYPT)
    draft = transform(source, resolve_pipeline(None), now=REFERENCE_TIME)
    body = gotrue_payload(draft, source, migration_id="mig_1", as_of=REFERENCE_TIME)

    assert body["id"] == source.id and body["email"] == "ada.byron@example.com" and body["email_confirm"] is True
    assert body["password_hash"] == BCRYPT and "password" not in body
    assert body["user_metadata"] == {
        "username": "adab",
        "first_name": "Ada",
        "last_name": "van der Berg",
        "avatar_url": None,  # not an absolute http(s) URL
        "migrated_from": "legacy_profiles",
        "original_id": source.id,
    }
    assert body["app_metadata"] == {
        "provider": "migration",
        "migrated": True,
        "migration_date": REFERENCE_TIME.isoformat(),
        "original_created_at": "2024-01-02T00:00:00+00:00",
        "migration_id": "mig_1",
    }


def test_a_user_without_a_usable_hash_gets_no_password_at_all() -> None:
    source = _source(password_hash="md5$abc")
    body = gotrue_payload(transform(source, [], now=REFERENCE_TIME), source, migration_id="m", as_of=REFERENCE_TIME)
    assert "password_hash" not in body and "password" not in body


def test_the_limiter_spaces_requests_of_all_threads_at_the_rate() -> None:
    limiter = RateLimiter(200)
    stamps: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(10):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=take) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stamps.sort()
    assert time.monotonic() - started >= 39 / 200 - 0.01  # 40 slots, 5 ms apart
    assert sum(1 for t in stamps if t < stamps[0] + 0.1) <= 21  # no burst: 100 ms hold at most 20 slots (+1)


def test_start_takes_the_supabase_target_and_its_rate_cap() -> None:
    command = parse_command({"action": "start", "source": "profiles", "target": "supabase", "max_requests_per_s": 200})
    assert command.target == "supabase" and command.max_requests_per_s == 200  # type: ignore[union-attr]
    with pytest.raises(InvalidRequest):
        parse_command({"action": "start", "target": "supabase", "max_requests_per_s": 0})
    StartRequest(source="profiles", target="supabase", max_requests_per_s=500).validate()
    with pytest.raises(InvalidRequest, match="supabase target only"):
        StartRequest(target="better-auth", max_requests_per_s=10).validate()
