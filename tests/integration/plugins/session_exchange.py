"""The session exchange's test fixtures and helpers (registered in the root conftest.py): a clock pinned to the
Better-Auth server's, exchangers over the dual-write stack (with Supabase's database present or gone), and the
API event round trip."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, cast

import httpx
import psycopg
import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from auth_migration.connections import Connections
from auth_migration.dual_write.api import build_resolver, handle_api_event
from auth_migration.flags import Flags, MigrationMode
from auth_migration.sessions.better_auth_sessions import CookieSettings
from auth_migration.sessions.exchange import SessionExchanger
from auth_migration.sessions.supabase_tokens import AccessTokenVerifier, JwksKeys
from auth_migration_ops.local.invoke import LocalLambdaContext
from auth_migration_ops.standins.gotrue import GoTrueStandIn
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

    def make(
        gotrue: GoTrueStandIn | None = None,
        *,
        hs256: bool = True,
        per_ip: int = 1000,
        supabase_gone: bool = False,
        warnings: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> SessionExchanger:
        """`supabase_gone`: Supabase's database no longer exists for the exchanger (a name nobody holds)."""
        standin = gotrue or dual_write_stack.gotrue
        url = dual_write_stack.database_url
        source = gone_database_url(url) if supabase_gone else url
        exchanger = SessionExchanger(
            verifier=AccessTokenVerifier(
                issuer=f"{standin.url}/auth/v1",
                secret=standin.jwt_secret if hs256 else None,
                jwks=JwksKeys(f"{standin.url}/auth/v1/.well-known/jwks.json", httpx.Client()),
            ),
            connections=Connections(url, source, url),
            cookies=CookieSettings(secret=BETTER_AUTH_SECRET),
            limit_per_ip=per_ip,
            limit_per_user=1000,
            clock=clock,
            on_warning=None if warnings is None else lambda message, extra: warnings.append((message, extra)),
        )
        made.append(exchanger)
        return exchanger

    yield make
    for exchanger in made:
        exchanger.conns.close()


def gone_database_url(url: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    return psycopg.conninfo.make_conninfo("", **{**info, "dbname": f"gone_{uuid.uuid4().hex[:12]}"})


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


def new_email() -> str:
    return f"x-{uuid.uuid4().hex[:10]}@example.com"
