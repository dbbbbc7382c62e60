"""Pure rules of signup/login: routing (mode, primary, canary), record comparison, uncertain failures,
password limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auth_migration.backends import BETTER_AUTH, SUPABASE, BackendUser
from auth_migration.backends.errors import BadRequest, Timeout, Unavailable
from auth_migration.dual_write.passwords import hash_password, is_bcrypt_hash, password_fits_bcrypt
from auth_migration.dual_write.routing import canary_bucket, in_canary, route_for
from auth_migration.dual_write.service import may_have_written, records_differ
from auth_migration.flags import CanarySelection, Flags, MigrationMode

EMAILS = st.emails()


def test_single_modes_route_to_their_system_only() -> None:
    sb = route_for(Flags(migration_mode=MigrationMode.SUPABASE_ONLY, use_better_auth=True), "a@example.com")
    ba = route_for(Flags(migration_mode=MigrationMode.BETTER_AUTH_ONLY), "a@example.com")
    assert (sb.primary, sb.secondary) == (SUPABASE, None)
    assert (ba.primary, ba.secondary) == (BETTER_AUTH, None)


def test_dual_write_primary_follows_use_better_auth() -> None:
    off = route_for(Flags(migration_mode=MigrationMode.DUAL_WRITE), "a@example.com")
    on = route_for(Flags(migration_mode=MigrationMode.DUAL_WRITE, use_better_auth=True), "a@example.com")
    assert (off.primary, off.secondary, off.canary) == (SUPABASE, BETTER_AUTH, False)
    assert (on.primary, on.secondary, on.canary) == (BETTER_AUTH, SUPABASE, False)


def _canary(selection: CanarySelection, **extra: object) -> Flags:
    return Flags(
        migration_mode=MigrationMode.DUAL_WRITE,
        canary_enabled=True,
        canary_user_selection=selection,
        **extra,  # type: ignore[arg-type]
    )


def test_canary_whitelist_and_domain_choose_better_auth_as_primary() -> None:
    listed = _canary(CanarySelection.WHITELIST, canary_whitelist=frozenset({"vip@example.com"}))
    domain = _canary(CanarySelection.EMAIL_DOMAIN, canary_email_domains=frozenset({"beta.example.com"}))
    assert route_for(listed, "VIP@example.com").primary == BETTER_AUTH
    assert route_for(listed, "VIP@example.com").canary
    assert route_for(listed, "other@example.com").primary == SUPABASE
    assert in_canary(domain, "x@Beta.Example.com")
    assert not in_canary(domain, "x@example.com")
    assert not in_canary(Flags(canary_enabled=False, canary_percentage=100.0), "x@example.com")


@settings(max_examples=300)
@given(EMAILS, st.floats(0, 100), st.floats(0, 100))
def test_raising_the_percentage_only_adds_users(email: str, low: float, high: float) -> None:
    low, high = sorted((low, high))
    flags_low = _canary(CanarySelection.USER_ID_HASH, canary_percentage=low)
    flags_high = _canary(CanarySelection.USER_ID_HASH, canary_percentage=high)
    assert not in_canary(flags_low, email) or in_canary(flags_high, email)


def test_buckets_are_stable_and_spread() -> None:
    assert canary_bucket("Ada@Example.com") == canary_bucket(" ada@example.com")
    share = sum(canary_bucket(f"user{i}@example.com") < 2500 for i in range(20_000)) / 20_000
    assert 0.23 < share < 0.27  # 25 % of users at 25 %


def _user(**fields: object) -> BackendUser:
    base: dict[str, object] = {"id": "u1", "email": "a@example.com", "email_verified": True, "name": "Ada"}
    base.update(fields)
    return BackendUser(**base)  # type: ignore[arg-type]


def test_records_differ_names_each_disagreeing_field() -> None:
    supabase = _user(metadata={"full_name": "Ada"})
    assert records_differ(SUPABASE, supabase, _user()) == []
    assert records_differ(SUPABASE, supabase, _user(id="u2")) == ["id"]
    assert records_differ(SUPABASE, supabase, _user(email="A@EXAMPLE.COM")) == []
    assert records_differ(SUPABASE, supabase, _user(email="b@example.com")) == ["email"]
    assert records_differ(SUPABASE, supabase, _user(email_verified=False)) == ["email_verified"]
    assert records_differ(SUPABASE, supabase, _user(name="Someone")) == ["name"]
    # Better-Auth as the source: an unverified Better-Auth user may be confirmed in GoTrue (no such state
    # there), but a verified one must be confirmed.
    assert records_differ(BETTER_AUTH, _user(), _user(email_verified=False)) == []
    assert records_differ(BETTER_AUTH, _user(email_verified=False), _user()) == ["email_verified"]


@pytest.mark.parametrize(
    ("error", "uncertain"),
    [
        (Timeout("supabase", detail="ReadTimeout"), True),
        (Timeout("supabase", detail="ConnectTimeout"), False),
        (Unavailable("supabase", detail="ConnectError"), False),
        (Unavailable("supabase", detail="RemoteProtocolError"), True),
        (Unavailable("supabase", status=503), False),
        (BadRequest("supabase", status=400), False),
    ],
)
def test_only_a_sent_and_unanswered_call_may_have_written(error: Unavailable, uncertain: bool) -> None:
    assert may_have_written(error) is uncertain


def test_bcrypt_limits_and_format() -> None:
    assert password_fits_bcrypt("x" * 72)
    assert not password_fits_bcrypt("é" * 37)  # 74 bytes in UTF-8
    hashed = hash_password("correct horse 1")
    assert hashed.startswith("$2a$10$")
    assert is_bcrypt_hash(hashed)
    assert not is_bcrypt_hash("salt:key")


def test_better_auths_hash_is_salt_hex_colon_scrypt_key_hex_over_the_nfkc_password() -> None:
    from auth_migration.dual_write.passwords import better_auth_hash

    salt = "0123456789abcdef0123456789abcdef"
    hashed = better_auth_hash("pa\u0073\u0301word", salt=salt)  # "s" + combining acute: NFKC composes it
    assert hashed.startswith(salt + ":") and len(hashed.split(":")[1]) == 128
    assert hashed == better_auth_hash("pa\u015bword", salt=salt)
    assert better_auth_hash("pa\u015bword") != better_auth_hash("pa\u015bword")  # a fresh salt each time
