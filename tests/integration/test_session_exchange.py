"""POST /auth/session/exchange end to end: GoTrue stand-in tokens in (HS256 and an ES256 JWKS), a Better-Auth
session out that the REAL Better-Auth server accepts (GET /api/auth/get-session), hostile tokens refused with
401 and nothing written, the flag, the rate limits, and lazy migration on the per-user claim."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final, cast

import httpx
import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext
from cryptography.hazmat.primitives.asymmetric import ec

from auth_migration.connections import Connections
from auth_migration.dual_write.api import build_resolver, handle_api_event
from auth_migration.flags import Flags, MigrationMode
from auth_migration.sessions.better_auth_sessions import CookieSettings
from auth_migration.sessions.exchange import SessionExchanger
from auth_migration.sessions.rate_limits import Limit, count_hits, purge_old_windows
from auth_migration.sessions.supabase_tokens import AccessTokenVerifier, JwksKeys
from auth_migration_ops.local.invoke import LocalLambdaContext
from auth_migration_ops.standins.gotrue import GoTrueStandIn, sign_jwt
from tests.integration.plugins.dual_write import DualWriteStack

PATH: Final = "/auth/session/exchange"
PASSWORD: Final = "correct horse 1"
#: server.mjs's fixed test secret (BetterAuthServer without `secret`): the cookie must be signed with it.
BETTER_AUTH_SECRET: Final = "auth-migration-test-secret-not-for-production-0123456789"
CLIENT_IP: Final = "203.0.113.7"
CONTEXT = cast(
    LambdaContext, LocalLambdaContext(function_name="session-exchange", timeout_s=3600, memory_limit_in_mb=256)
)
WRITTEN: Final = ("session", '"user"', "account", "migrated_users", "user_migration_status")


class PinnedClock:
    """The instant every part of the test agrees on: the Better-Auth server's own clock (its Date header) at
    the start, so the session's expiry is judged by the server that reads it, never by the test's wall clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(dual_write_stack: DualWriteStack) -> PinnedClock:
    reply = httpx.get(f"{dual_write_stack.better_auth_server.base_url}/api/auth/ok", timeout=10)
    pinned = PinnedClock(parsedate_to_datetime(reply.headers["date"]))
    dual_write_stack.gotrue.clock = pinned
    return pinned


@pytest.fixture
def exchangers(dual_write_stack: DualWriteStack, clock: PinnedClock) -> Iterator[Callable[..., SessionExchanger]]:
    made: list[SessionExchanger] = []

    def make(gotrue: GoTrueStandIn | None = None, *, hs256: bool = True, per_ip: int = 1000) -> SessionExchanger:
        standin = gotrue or dual_write_stack.gotrue
        url = dual_write_stack.database_url
        exchanger = SessionExchanger(
            verifier=AccessTokenVerifier(
                issuer=f"{standin.url}/auth/v1",
                secret=standin.jwt_secret if hs256 else None,
                jwks=JwksKeys(f"{standin.url}/auth/v1/.well-known/jwks.json", httpx.Client()),
            ),
            connections=Connections(url, url, url),
            cookies=CookieSettings(secret=BETTER_AUTH_SECRET),
            limit_per_ip=per_ip,
            limit_per_user=1000,
            clock=clock,
        )
        made.append(exchanger)
        return exchanger

    yield make
    for exchanger in made:
        exchanger.conns.close()


def app_for(stack: DualWriteStack, exchanger: SessionExchanger, flags: Flags | None = None) -> APIGatewayRestResolver:
    service = stack.service()
    snapshot = flags or Flags(migration_mode=MigrationMode.DUAL_WRITE, use_better_auth=True)
    return build_resolver(lambda: service, lambda: snapshot, exchanger=lambda: exchanger)


def exchange(app: APIGatewayRestResolver, body: Any) -> tuple[int, dict[str, Any], dict[str, list[str]]]:
    headers = {"Content-Type": "application/json", "User-Agent": "exchange-test/1.0", "Host": "api.example.com"}
    event = {
        "resource": PATH,
        "path": PATH,
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": PATH,
            "httpMethod": "POST",
            "path": f"/dev{PATH}",
            "stage": "dev",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": CLIENT_IP},
        },
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }
    raw = handle_api_event(event, CONTEXT, app)
    multi = {str(k).lower(): [str(v) for v in vs] for k, vs in (raw.get("multiValueHeaders") or {}).items()}
    for key, value in (raw.get("headers") or {}).items():
        multi.setdefault(str(key).lower(), [str(value)])
    return int(raw["statusCode"]), json.loads(raw["body"]), multi


def supabase_session(gotrue: GoTrueStandIn, email: str) -> dict[str, Any]:
    """Sign up through the stand-in (autoconfirm) and sign in: GoTrue's session, with its access token."""
    with httpx.Client(base_url=gotrue.url, headers={"apikey": gotrue.anon_key}, timeout=10) as client:
        client.post("/auth/v1/signup", json={"email": email, "password": PASSWORD}).raise_for_status()
        reply = client.post("/auth/v1/token?grant_type=password", json={"email": email, "password": PASSWORD})
        reply.raise_for_status()
        session: dict[str, Any] = reply.json()
        return session


def cookie_pair(set_cookie: str) -> tuple[str, str]:
    name, _, rest = set_cookie.partition("=")
    return name, rest.split(";", 1)[0]


def get_session(stack: DualWriteStack, *, cookie: tuple[str, str] | None = None) -> Any:
    headers = {"Cookie": f"{cookie[0]}={cookie[1]}"} if cookie else {}
    reply = httpx.get(f"{stack.better_auth_server.base_url}/api/auth/get-session", headers=headers, timeout=10)
    reply.raise_for_status()
    return reply.json()


def counts(stack: DualWriteStack) -> dict[str, int]:
    return {table: int(stack.query(f"SELECT count(*) FROM {table}")[0][0]) for table in WRITTEN}


def _email() -> str:
    return f"x-{uuid.uuid4().hex[:10]}@example.com"


# --- the exchange --------------------------------------------------------------------------------------


def test_a_signed_in_supabase_user_gets_a_session_the_real_better_auth_server_accepts(
    dual_write_stack: DualWriteStack, exchangers: Callable[..., SessionExchanger]
) -> None:
    stack = dual_write_stack
    email = _email()
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
    supabase = supabase_session(stack.gotrue, _email())
    first = exchange(app, {"access_token": supabase["access_token"]})
    second = exchange(app, {"access_token": supabase["access_token"]})

    assert first[0] == second[0] == 200 and first[1]["token"] != second[1]["token"]
    assert stack.query("SELECT count(*) FROM migrated_users")[0][0] == 1
    assert stack.query('SELECT count(*) FROM session WHERE "userId" = %s', supabase["user"]["id"])[0][0] == 2


def test_an_es256_token_verifies_through_the_projects_jwks(
    dual_write_stack: DualWriteStack,
    exchangers: Callable[..., SessionExchanger],
    start_gotrue: Callable[..., GoTrueStandIn],
    clock: PinnedClock,
) -> None:
    stack = dual_write_stack
    asymmetric = start_gotrue(stack.database_url, signing_key=ec.generate_private_key(ec.SECP256R1()), clock=clock)
    supabase = supabase_session(asymmetric, _email())
    assert json.loads(httpx.get(f"{asymmetric.url}/auth/v1/.well-known/jwks.json").text)["keys"]

    status, body, headers = exchange(
        app_for(stack, exchangers(asymmetric, hs256=False)), {"access_token": supabase["access_token"]}
    )

    assert status == 200, body
    assert get_session(stack, cookie=cookie_pair(headers["set-cookie"][0]))["user"]["id"] == supabase["user"]["id"]


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
    supabase = supabase_session(stack.gotrue, _email())
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
    supabase = supabase_session(stack.gotrue, _email())
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
