"""POST /auth/session/exchange end to end: GoTrue stand-in tokens in (HS256 and an ES256 JWKS), a Better-Auth
session out that the REAL Better-Auth server accepts (GET /api/auth/get-session), hostile tokens refused with
401 and nothing written, the flag, the rate limits, and lazy migration on the per-user claim."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from auth_migration.connections import Connections
from auth_migration.flags import Flags, MigrationMode
from auth_migration.rollout.checks import SYSTEM_FAILURE_SQL, USER_ERROR_SQL, user_error_params
from auth_migration.sessions.exchange import SessionExchanger
from auth_migration.sessions.rate_limits import Limit, count_hits, purge_old_windows
from auth_migration_ops.standins.gotrue import GoTrueStandIn, sign_jwt
from tests.integration.plugins.dual_write import DualWriteStack
from tests.integration.plugins.session_exchange import (
    CLIENT_IP,
    PASSWORD,
    PinnedClock,
    app_for,
    cookie_pair,
    counts,
    exchange,
    get_session,
    new_email,
    supabase_session,
)

# --- the exchange --------------------------------------------------------------------------------------


def test_a_signed_in_supabase_user_gets_a_session_the_real_better_auth_server_accepts(
    dual_write_stack: DualWriteStack, exchangers: Callable[..., SessionExchanger]
) -> None:
    stack = dual_write_stack
    email = new_email()
    supabase = supabase_session(stack.gotrue, email)
    user_id = supabase["user"]["id"]

    status, body, headers = exchange(app_for(stack, exchangers()), {"access_token": supabase["access_token"]})

    assert status == 200, body
    assert body["redirect"] is False and body["user"]["id"] == user_id and body["user"]["email"] == email
    assert set(body["user"]) == {"id", "email", "name", "image", "emailVerified", "createdAt", "updatedAt"}
    (set_cookie,) = headers["set-cookie"]
    assert set_cookie.startswith("better-auth.session_token=") and "HttpOnly" in set_cookie
    held = get_session(stack, cookie=cookie_pair(set_cookie))
    assert held["user"]["id"] == user_id and held["session"]["token"] == body["token"]
    assert held["session"]["userAgent"] == "exchange-test/1.0" and held["session"]["ipAddress"] == CLIENT_IP
    # The user was not in Better-Auth yet: migrated lazily on the shared claim, with GoTrue's bcrypt hash,
    # so their password signs in through the real server too.
    assert stack.query("SELECT source, created_target FROM migrated_users WHERE original_id = %s", user_id) == [
        ("lazy_exchange", True)
    ]
    assert stack.better_auth_backend().sign_in(email, PASSWORD).user.id == user_id
    assert stack.query(
        "SELECT operation, system, success, error_kind FROM auth_events WHERE operation = 'session_exchange'"
    ) == [("session_exchange", "better_auth", True, None)]


def test_a_user_already_in_better_auth_gets_a_session_and_no_second_claim(
    dual_write_stack: DualWriteStack, exchangers: Callable[..., SessionExchanger]
) -> None:
    stack = dual_write_stack
    app = app_for(stack, exchangers())
    supabase = supabase_session(stack.gotrue, new_email())
    first = exchange(app, {"access_token": supabase["access_token"]})
    second = exchange(app, {"access_token": supabase["access_token"]})

    assert first[0] == second[0] == 200 and first[1]["token"] != second[1]["token"]
    assert stack.query("SELECT count(*) FROM migrated_users")[0][0] == 1
    assert stack.query('SELECT count(*) FROM session WHERE "userId" = %s', supabase["user"]["id"])[0][0] == 2


@pytest.fixture
def es256_project(
    dual_write_stack: DualWriteStack, start_gotrue: Callable[..., GoTrueStandIn], clock: PinnedClock
) -> tuple[GoTrueStandIn, dict[str, Any]]:
    """A GoTrue stand-in that signs with an ES256 key (a newer Supabase project), and a session it issued."""
    asymmetric = start_gotrue(
        dual_write_stack.database_url, signing_key=ec.generate_private_key(ec.SECP256R1()), clock=clock
    )
    return asymmetric, supabase_session(asymmetric, new_email())


def test_an_es256_token_verifies_through_the_projects_jwks(
    dual_write_stack: DualWriteStack,
    exchangers: Callable[..., SessionExchanger],
    es256_project: tuple[GoTrueStandIn, dict[str, Any]],
) -> None:
    stack = dual_write_stack
    asymmetric, supabase = es256_project
    assert json.loads(httpx.get(f"{asymmetric.url}/auth/v1/.well-known/jwks.json").text)["keys"]

    status, body, headers = exchange(
        app_for(stack, exchangers(asymmetric, hs256=False)), {"access_token": supabase["access_token"]}
    )

    assert status == 200, body
    assert get_session(stack, cookie=cookie_pair(headers["set-cookie"][0]))["user"]["id"] == supabase["user"]["id"]


def test_a_jwks_out_of_reach_is_a_503_and_a_system_failure_never_a_401(
    dual_write_stack: DualWriteStack,
    exchangers: Callable[..., SessionExchanger],
    es256_project: tuple[GoTrueStandIn, dict[str, Any]],
) -> None:
    stack = dual_write_stack
    asymmetric, supabase = es256_project
    app = app_for(stack, exchangers(asymmetric, hs256=False))
    asymmetric.stop()  # the JWKS endpoint goes with it; nothing was fetched yet
    before = counts(stack)

    replies = [exchange(app, {"access_token": supabase["access_token"]}) for _ in range(2)]

    # Both 503: the second, inside the refetch throttle, must not turn into "unknown key" (a 401 that would
    # make the app drop a good Supabase session).
    assert [(r[0], r[1]["error"]) for r in replies] == [(503, "unavailable")] * 2
    assert replies[0][2]["retry-after"] == ["1"]
    assert counts(stack) == before
    assert stack.query("SELECT success, error_kind FROM auth_events WHERE operation = 'session_exchange'") == [
        (False, "unavailable"),
        (False, "unavailable"),
    ]


# --- hostile tokens: 401, nothing written but the failed auth event ------------------------------------


def _hostile_cases() -> list[str]:
    return [
        "bad_signature",
        "alg_none",
        "expired",
        "wrong_audience",
        "unknown_user",
        "deleted_user",
        "banned_user",
        "revoked_session",
        "service_role_key",
    ]


def _hostile_token(stack: DualWriteStack, case: str, clock: PinnedClock) -> str:
    supabase = supabase_session(stack.gotrue, new_email())
    token: str = supabase["access_token"]
    user_id = supabase["user"]["id"]
    claims = json.loads(_b64(token.split(".")[1]))
    secret = stack.gotrue.jwt_secret
    if case == "bad_signature":
        return sign_jwt(claims, "z" * 48)
    if case == "alg_none":
        header = _b64e(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        return f"{header}.{token.split('.')[1]}."
    if case == "expired":
        return sign_jwt({**claims, "exp": int(clock().timestamp()) - 3600}, secret)
    if case == "wrong_audience":
        return sign_jwt({**claims, "aud": "anon"}, secret)
    if case == "unknown_user":
        return sign_jwt({**claims, "sub": str(uuid.uuid4())}, secret)
    if case == "deleted_user":
        stack.query("UPDATE auth.users SET deleted_at = %s WHERE id = %s", clock(), user_id)
    elif case == "banned_user":
        stack.query("UPDATE auth.users SET banned_until = %s WHERE id = %s", clock() + timedelta(days=1), user_id)
    elif case == "revoked_session":
        stack.gotrue.revoke_session(claims["session_id"])
    elif case == "service_role_key":
        return stack.gotrue.service_key
    return token


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("case", _hostile_cases())
def test_a_hostile_token_is_refused_with_401_and_writes_nothing(
    dual_write_stack: DualWriteStack, exchangers: Callable[..., SessionExchanger], clock: PinnedClock, case: str
) -> None:
    stack = dual_write_stack
    token = _hostile_token(stack, case, clock)
    before = counts(stack)

    status, body, headers = exchange(app_for(stack, exchangers()), {"access_token": token})

    assert (status, body["error"]) == (401, "invalid_token")
    assert "set-cookie" not in headers and token not in json.dumps(body)
    assert counts(stack) == before
    assert stack.query("SELECT success, error_kind FROM auth_events WHERE operation = 'session_exchange'") == [
        (False, "invalid_token")
    ]


# --- the flag and the limits ---------------------------------------------------------------------------


def test_the_flag_off_refuses_every_exchange_before_reading_the_token(
    dual_write_stack: DualWriteStack, exchangers: Callable[..., SessionExchanger]
) -> None:
    stack = dual_write_stack
    supabase = supabase_session(stack.gotrue, new_email())
    before = counts(stack)
    app = app_for(stack, exchangers(), Flags(migration_mode=MigrationMode.BETTER_AUTH_ONLY, session_exchange=False))

    status, body, _ = exchange(app, {"access_token": supabase["access_token"]})

    assert (status, body["error"]) == (403, "exchange_disabled")
    assert counts(stack) == before


def test_an_ip_over_its_limit_gets_429_with_retry_after(
    dual_write_stack: DualWriteStack, exchangers: Callable[..., SessionExchanger]
) -> None:
    stack = dual_write_stack
    app = app_for(stack, exchangers(per_ip=2))
    replies = [exchange(app, {"access_token": "garbage"}) for _ in range(3)]

    assert [r[0] for r in replies] == [401, 401, 429]
    assert replies[2][1]["error"] == "rate_limited" and 1 <= int(replies[2][2]["retry-after"][0]) <= 60
    # Bad tokens and our own limit are the client's doing: Better-Auth's health (AutoRollback's input) is clean.
    assert stack.query("SELECT error_kind FROM auth_events ORDER BY id") == [
        ("invalid_token",),
        ("invalid_token",),
        ("exchange_rate_limited",),
    ]
    with psycopg.connect(stack.database_url) as conn:
        health = conn.execute(
            f"""SELECT count(*) FILTER (WHERE {USER_ERROR_SQL}), count(*) FILTER (WHERE {SYSTEM_FAILURE_SQL})
                FROM auth_events WHERE primary_system = 'better_auth'""",
            user_error_params(),
        ).fetchone()
    assert health == (3, 0)


def test_rate_windows_count_per_bucket_and_old_ones_are_purged(
    dual_write_stack: DualWriteStack, clock: PinnedClock
) -> None:
    stack = dual_write_stack
    now = clock()
    conns = Connections(stack.database_url, stack.database_url, stack.database_url)
    try:
        limits = [Limit("t:ip:a", 2), Limit("t:user:b", 5)]
        results = [conns.transact("state", lambda c: count_hits(c, limits, now=now)) for _ in range(3)]
        assert [r.bucket if r else None for r in results] == [None, None, "t:ip:a"]
        later = now + timedelta(minutes=1)
        assert conns.transact("state", lambda c: count_hits(c, limits, now=later)) is None
        assert conns.transact("state", lambda c: purge_old_windows(c, now=now + timedelta(hours=2))) == 4
    finally:
        conns.close()
