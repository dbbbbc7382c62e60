"""The two HTTP backends against the GoTrue stand-in and the real Better-Auth server: results, errors, faults."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import bcrypt
import pytest

from auth_migration.backends import (
    BetterAuthBackend,
    InvalidCredentials,
    Misconfigured,
    RateLimited,
    SupabaseAuthBackend,
    Timeout,
    Unavailable,
    Unsupported,
    UserExists,
    WeakPassword,
)
from auth_migration.backends.errors import BadRequest
from auth_migration_ops.standins.better_auth import BetterAuthServer, free_port
from auth_migration_ops.standins.gotrue import GoTrueStandIn, sign_jwt

PASSWORD = "correct horse 1"
# Slack for thread scheduling and the TCP teardown on a 2-core machine.
TIMEOUT_MARGIN_S = 0.5


@pytest.fixture
def supabase(gotrue: GoTrueStandIn) -> Iterator[SupabaseAuthBackend]:
    backend = SupabaseAuthBackend(gotrue.url, service_key=gotrue.service_key, anon_key=gotrue.anon_key, timeout=5)
    yield backend
    backend.close()


@pytest.fixture
def better_auth_server(database: str, start_better_auth: Callable[..., BetterAuthServer]) -> BetterAuthServer:
    return start_better_auth(database)


@pytest.fixture
def better_auth(better_auth_server: BetterAuthServer) -> Iterator[BetterAuthBackend]:
    backend = BetterAuthBackend(better_auth_server.base_url, timeout=10)
    yield backend
    backend.close()


# --- Supabase (GoTrue stand-in) ---


def test_supabase_sign_up_and_sign_in_give_one_normalised_shape(supabase: SupabaseAuthBackend) -> None:
    signed_up = supabase.sign_up("Mixed.Case@Example.com", PASSWORD, {"full_name": "Mixed Case"})
    signed_in = supabase.sign_in("mixed.case@example.com", PASSWORD, client_ip="203.0.113.7")

    assert signed_up.system == signed_in.system == "supabase"
    assert signed_up.user.id == signed_in.user.id
    assert signed_in.user.email == "mixed.case@example.com"
    assert signed_in.user.name == "Mixed Case"
    assert signed_in.user.email_verified
    assert signed_in.session is not None
    assert signed_in.session.refresh_token
    assert signed_in.session.expires_at is not None
    assert signed_in.session.expires_at > time.time()
    assert signed_in.session.access_token not in repr(signed_in)


def test_supabase_duplicate_weak_and_malformed_sign_ups(supabase: SupabaseAuthBackend) -> None:
    supabase.sign_up("dup@example.com", PASSWORD, {})

    with pytest.raises(UserExists):
        supabase.sign_up("DUP@example.com", PASSWORD, {})
    with pytest.raises(WeakPassword):
        supabase.sign_up("weak@example.com", "12345", {})
    with pytest.raises(BadRequest):
        supabase.sign_up("not-an-email", PASSWORD, {})


def test_supabase_unknown_user_and_wrong_password_are_the_same_error(supabase: SupabaseAuthBackend) -> None:
    supabase.sign_up("known@example.com", PASSWORD, {})

    with pytest.raises(InvalidCredentials) as wrong:
        supabase.sign_in("known@example.com", "not the password")
    with pytest.raises(InvalidCredentials) as unknown:
        supabase.sign_in("nobody@example.com", PASSWORD)

    assert str(wrong.value) == str(unknown.value)
    assert (wrong.value.status, wrong.value.code) == (unknown.value.status, unknown.value.code)


def test_supabase_sign_up_with_a_chosen_id_carries_it(supabase: SupabaseAuthBackend) -> None:
    user_id = str(uuid.uuid4())

    created = supabase.sign_up("carried@example.com", PASSWORD, {"name": "Carried"}, user_id=user_id)

    assert created.user.id == user_id
    assert created.session is None  # an admin create signs nobody in
    assert supabase.sign_in("carried@example.com", PASSWORD).user.id == user_id
    with pytest.raises(UserExists):
        supabase.sign_up("other@example.com", PASSWORD, {}, user_id=user_id)


def test_supabase_admin_create_with_a_bcrypt_hash_keeps_the_password(supabase: SupabaseAuthBackend) -> None:
    user_id = str(uuid.uuid4())
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()

    user = supabase.create_user("hashed@example.com", user_id=user_id, password_hash=hashed)

    assert user.id == user_id
    assert supabase.sign_in("hashed@example.com", PASSWORD).user.id == user_id
    with pytest.raises(BadRequest):
        supabase.create_user("both@example.com", password=PASSWORD, password_hash=hashed)


def test_supabase_find_user_by_email_is_exact_and_ignores_case(supabase: SupabaseAuthBackend) -> None:
    wanted = supabase.sign_up("a_b@example.com", PASSWORD, {}).user
    supabase.sign_up("axb@example.com", PASSWORD, {})

    found = supabase.find_user_by_email("A_B@Example.com")

    assert found is not None
    assert found.id == wanted.id
    assert supabase.find_user_by_email("nobody@example.com") is None
    assert supabase.get_user(wanted.id) == found
    assert supabase.get_user(str(uuid.uuid4())) is None


def test_supabase_admin_with_a_foreign_key_is_misconfigured(gotrue: GoTrueStandIn) -> None:
    forged = sign_jwt({"role": "service_role"}, "a different secret, thirty-two chars long")
    backend = SupabaseAuthBackend(gotrue.url, service_key=forged)

    with pytest.raises(Misconfigured):
        backend.find_user_by_email("any@example.com")
    backend.close()


def test_supabase_slower_than_the_timeout_is_unavailable_within_the_timeout(
    gotrue: GoTrueStandIn, supabase: SupabaseAuthBackend
) -> None:
    gotrue.faults.delay_s = 5

    started = time.monotonic()
    with pytest.raises(Timeout):
        supabase.sign_in("slow@example.com", PASSWORD, timeout=0.3)
    elapsed = time.monotonic() - started

    assert elapsed < 0.3 + TIMEOUT_MARGIN_S


def test_supabase_rate_limit_and_server_errors(gotrue: GoTrueStandIn, supabase: SupabaseAuthBackend) -> None:
    gotrue.faults.rate_limited = True
    with pytest.raises(RateLimited) as limited:
        supabase.sign_in("any@example.com", PASSWORD)
    assert limited.value.retry_after == 1.0

    gotrue.faults.reset()
    for status in (500, 503):
        gotrue.faults.fail_rate, gotrue.faults.fail_status = 1.0, status
        with pytest.raises(Unavailable) as failed:
            supabase.sign_up("any@example.com", PASSWORD, {})
        assert failed.value.status == status

    gotrue.faults.reset()
    gotrue.faults.down = True
    with pytest.raises(Unavailable) as dropped:
        supabase.sign_in("any@example.com", PASSWORD)
    assert dropped.value.status is None


def test_supabase_not_listening_is_unavailable_quickly() -> None:
    backend = SupabaseAuthBackend(f"http://127.0.0.1:{free_port()}", timeout=1)

    started = time.monotonic()
    with pytest.raises(Unavailable):
        backend.sign_in("any@example.com", PASSWORD)

    assert time.monotonic() - started < 1 + TIMEOUT_MARGIN_S
    backend.close()


def test_supabase_client_reuses_its_connection(gotrue: GoTrueStandIn, supabase: SupabaseAuthBackend) -> None:
    supabase.sign_up("reuse@example.com", PASSWORD, {})
    before = gotrue.connections_accepted

    for _ in range(5):
        supabase.sign_in("reuse@example.com", PASSWORD)

    assert gotrue.connections_accepted == before


# --- Better-Auth (the real server) ---


def test_better_auth_sign_up_and_sign_in_give_one_normalised_shape(better_auth: BetterAuthBackend) -> None:
    signed_up = better_auth.sign_up("Grace@Example.com", PASSWORD, {"full_name": "Grace Hopper"})
    signed_in = better_auth.sign_in("grace@example.com", PASSWORD, client_ip="203.0.113.7")

    assert signed_up.system == signed_in.system == "better_auth"
    assert signed_up.user.id == signed_in.user.id
    assert signed_in.user.email == "grace@example.com"
    assert signed_in.user.name == "Grace Hopper"
    assert signed_in.session is not None
    assert signed_in.session.access_token
    assert signed_in.session.cookie is not None
    assert signed_in.session.cookie.startswith(signed_in.session.access_token)
    assert signed_in.session.expires_at is not None
    assert signed_in.session.expires_at > time.time()


def test_better_auth_errors_map_to_the_vocabulary(better_auth: BetterAuthBackend) -> None:
    better_auth.sign_up("taken@example.com", PASSWORD, {})

    with pytest.raises(UserExists):
        better_auth.sign_up("TAKEN@example.com", PASSWORD, {})
    with pytest.raises(WeakPassword):
        better_auth.sign_up("short@example.com", "1234567", {})
    with pytest.raises(BadRequest):
        better_auth.sign_up("not-an-email", PASSWORD, {})
    with pytest.raises(InvalidCredentials) as wrong:
        better_auth.sign_in("taken@example.com", "not the password")
    with pytest.raises(InvalidCredentials) as unknown:
        better_auth.sign_in("nobody@example.com", PASSWORD)
    assert str(wrong.value) == str(unknown.value)
    with pytest.raises(Unsupported):
        better_auth.sign_up("chosen@example.com", PASSWORD, {}, user_id=str(uuid.uuid4()))
    with pytest.raises(Unsupported):
        better_auth.find_user_by_email("taken@example.com")


def test_better_auth_untrusted_origin_is_misconfigured(better_auth_server: BetterAuthServer) -> None:
    backend = BetterAuthBackend(better_auth_server.base_url, origin="https://evil.example")

    with pytest.raises(Misconfigured) as raised:
        backend.sign_in("any@example.com", PASSWORD)

    assert raised.value.status == 403
    backend.close()


def test_better_auth_rate_limit_is_per_forwarded_client_ip(
    database: str, start_better_auth: Callable[..., BetterAuthServer]
) -> None:
    server = start_better_auth(database, rate_limit=True)
    backend = BetterAuthBackend(server.base_url)
    backend.sign_up("limited@example.com", PASSWORD, {}, client_ip="198.51.100.1")

    for _ in range(3):
        backend.sign_in("limited@example.com", PASSWORD, client_ip="198.51.100.2")
    with pytest.raises(RateLimited) as limited:
        backend.sign_in("limited@example.com", PASSWORD, client_ip="198.51.100.2")

    assert limited.value.retry_after is not None
    assert backend.sign_in("limited@example.com", PASSWORD, client_ip="198.51.100.3").user.email
    backend.close()


def test_better_auth_stopped_is_unavailable(
    better_auth_server: BetterAuthServer, better_auth: BetterAuthBackend
) -> None:
    better_auth_server.stop()

    with pytest.raises(Unavailable):
        better_auth.sign_in("any@example.com", PASSWORD)
