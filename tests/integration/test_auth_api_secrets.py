"""No secret leaves the auth API through a log line or a reply: every path run through the API layer over the
REAL service (dual-write signups with each primary, logins, wrong password, unknown user, fallbacks, a gap and
its Reconcile drain, lazy migration, refusals and outages), with every log output captured.

Captured: the process's stdout/stderr at the file-descriptor level (Powertools' Logger prints JSON there),
pytest's caplog at DEBUG, and a handler of our own on the root logger and on the service's Powertools logger
that renders each record twice, through Powertools' JSON formatter and as every attribute the record holds
(so a secret passed in `extra` is caught whatever a formatter would drop). Secrets: every password used,
every bcrypt hash the databases hold (GoTrue's and Better-Auth's, and the gaps' before Reconcile erases
them), every access/refresh/session token any reply or the session table holds, GoTrue's service and anon
keys, its JWT secret, and the Better-Auth server's secret.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, cast

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from auth_migration.backends.base import BETTER_AUTH, SUPABASE, AuthResult
from auth_migration.dual_write.api import build_resolver, handle_api_event
from auth_migration.dual_write.service import AuthOutcome, AuthService
from auth_migration.flags import Flags, MigrationMode
from auth_migration.observability import logger as service_logger
from auth_migration_ops.local.invoke import LocalLambdaContext
from tests.integration.plugins.dual_write import DualWriteStack

SIGNUP, LOGIN = "/auth/signup", "/auth/login"
BETTER_AUTH_TEST_SECRET: Final = "auth-migration-test-secret-not-for-production-0123456789"  # server.mjs's
SOURCE_IP: Final = "192.0.2.55"


# The runtime context the local invoke builds, with a countdown far beyond any test.
CONTEXT = cast(
    LambdaContext, LocalLambdaContext(function_name="auth-api-secrets", timeout_s=3600, memory_limit_in_mb=256)
)


@dataclass(frozen=True)
class Reply:
    label: str
    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def render(record: logging.LogRecord) -> list[str]:
    """A record as text, every way a handler could show it: message, all attributes, the exception."""
    lines = [record.getMessage(), repr(sorted(record.__dict__.items(), key=lambda item: item[0]))]
    if record.exc_info:
        lines.append(logging.Formatter().formatException(record.exc_info))
    return lines


class RecordingHandler(logging.Handler):
    """Every record, rendered as text, by Powertools' JSON formatter too."""

    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__(level=logging.DEBUG)
        self.powertools_formatter = formatter
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += render(record)
        if self.powertools_formatter is not None:
            self.lines.append(self.powertools_formatter.format(record))


@dataclass
class Run:
    """What the scenario produced: replies, and the secrets it used or created."""

    replies: list[Reply] = field(default_factory=list)
    passwords: set[str] = field(default_factory=set)
    gap_hashes: set[str] = field(default_factory=set)
    outcomes: list[AuthOutcome] = field(default_factory=list)


def event(path: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "X-Forwarded-For": SOURCE_IP}
    return {
        "resource": path,
        "path": path,
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": "POST",
            "path": f"/dev{path}",
            "stage": "dev",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": SOURCE_IP},
            "accountId": "123456789012",
            "apiId": "abcdefghij",
        },
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def app_for(service: AuthService, *, better_auth_primary: bool) -> APIGatewayRestResolver:
    flags = Flags(migration_mode=MigrationMode.DUAL_WRITE, use_better_auth=better_auth_primary)
    return build_resolver(lambda: service, lambda: flags)


def _email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


@contextmanager
def powertools_to_current_stdout() -> Iterator[None]:
    """Point Powertools' own stdout handler at the current sys.stdout (what `capfd` captures in the test's
    call phase): it keeps the sys.stdout of import time, which is pytest's global capture."""
    handler = cast(logging.StreamHandler[Any], service_logger.registered_handler)
    previous = handler.setStream(sys.stdout)
    try:
        yield
    finally:
        handler.flush()
        if previous is not None:
            handler.setStream(previous)


@pytest.fixture
def recorder() -> Iterator[RecordingHandler]:
    """A handler on the root logger (and on the service's logger if it does not propagate) at DEBUG."""
    handler = RecordingHandler(service_logger.registered_handler.formatter)
    root = logging.getLogger()
    ours = logging.getLogger(service_logger.name)
    previous = (root.level, ours.level)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    if not ours.propagate:
        ours.addHandler(handler)
    service_logger.setLevel("DEBUG")
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        ours.removeHandler(handler)
        root.setLevel(previous[0])
        ours.setLevel(previous[1])


def _scenario(stack: DualWriteStack, run: Run) -> None:
    """Every path the brief names, through the API layer with the real service."""

    def call(app: APIGatewayRestResolver, label: str, path: str, body: dict[str, Any]) -> Reply:
        if "password" in body:
            run.passwords.add(body["password"])
        raw = handle_api_event(event(path, body), CONTEXT, app)
        reply = Reply(label, int(raw["statusCode"]), str(raw["body"]))
        run.replies.append(reply)
        return reply

    healthy = stack.service()
    apps = {
        SUPABASE: app_for(healthy, better_auth_primary=False),
        BETTER_AUTH: app_for(healthy, better_auth_primary=True),
    }

    # Dual-write signups (both primaries), logins, wrong password, unknown user, already registered.
    registered = registered_password = ""
    for primary, app in apps.items():
        email, password = _email(f"dw-{primary}"), f"Dual write {primary} pw 1"
        assert call(app, f"signup {primary}", SIGNUP, {"email": email, "password": password}).status == 200
        registered, registered_password = email, password
        assert call(app, f"login {primary}", LOGIN, {"email": email, "password": password}).status == 200
        wrong = call(app, f"wrong password {primary}", LOGIN, {"email": email, "password": f"{password} WRONG"})
        assert wrong.status == 401
        unknown = call(app, f"unknown user {primary}", LOGIN, {"email": _email("nobody"), "password": password})
        assert unknown.status == 401
        assert unknown.text == wrong.text
        again = call(app, f"already registered {primary}", SIGNUP, {"email": email, "password": f"{password} 2"})
        assert again.status == 409
        metadata = {"full_name": "Meta Data", "plan": "pro"}
        body = {"email": _email("meta"), "password": f"Meta pw {primary}", "metadata": metadata}
        assert call(app, f"signup with metadata {primary}", SIGNUP, body).status == 200

    # Fallback: the primary's server refuses connections; the other system serves; a gap when needed.
    supabase_down = stack.service(supabase_down=True)
    email, password = _email("fallback-sb"), "Fallback password sb 1"
    reply = call(
        app_for(supabase_down, better_auth_primary=False),
        "fallback signup",
        SIGNUP,
        {"email": email, "password": password},
    )
    assert reply.status == 200
    assert reply.json()["system"] == BETTER_AUTH
    login = call(
        app_for(supabase_down, better_auth_primary=False),
        "fallback login",
        LOGIN,
        {"email": email, "password": password},
    )
    assert login.status == 200
    better_auth_down = stack.service(better_auth_down=True)
    email, password = _email("fallback-ba"), "Fallback password ba 1"
    reply = call(
        app_for(better_auth_down, better_auth_primary=True),
        "fallback signup ba",
        SIGNUP,
        {"email": email, "password": password},
    )
    assert reply.status == 200
    assert reply.json()["system"] == SUPABASE

    # Both servers down: a 503 for a new signup (with an 'uncertain' gap carrying its hash) and for a
    # registered user's login.
    both_down = app_for(stack.service(supabase_down=True, better_auth_down=True), better_auth_primary=False)
    reply = call(both_down, "both down signup", SIGNUP, {"email": _email("down"), "password": "Both down pw 1"})
    assert reply.status == 503
    reply = call(both_down, "both down login", LOGIN, {"email": registered, "password": registered_password})
    assert reply.status == 503

    # A gap: Better-Auth's database refuses the secondary write (test_dual_write.py's trick).
    stack.query('ALTER TABLE "user" ADD CONSTRAINT outage CHECK (false) NOT VALID')
    try:
        email, password = _email("gap"), "Gap password 1"
        reply = call(apps[SUPABASE], "gap signup", SIGNUP, {"email": email, "password": password})
        assert reply.status == 200
    finally:
        stack.query('ALTER TABLE "user" DROP CONSTRAINT outage')
    run.gap_hashes |= {row[0] for row in stack.query("SELECT password_hash FROM dual_write_gaps") if row[0]}
    assert run.gap_hashes, "the gaps should carry the signups' bcrypt hashes until Reconcile closes them"
    assert all(isinstance(message.get("gap_id"), int) for message in stack.queue.messages)
    assert not any(h in json.dumps(stack.queue.messages) for h in run.gap_hashes)

    # Reconcile drains every queued gap (creates the missing halves with the carried hashes).
    outcomes = stack.drain()
    assert "created_better_auth" in outcomes
    assert "created_supabase" in outcomes
    assert (
        call(apps[BETTER_AUTH], "gap login after repair", LOGIN, {"email": email, "password": password}).status == 200
    )

    # Lazy migration: a Supabase-only user signs in through the API and is carried into Better-Auth.
    legacy_email, legacy_password = _email("legacy"), "Legacy password 1"
    run.passwords.add(legacy_password)
    gotrue = stack.supabase_backend()
    try:
        legacy = gotrue.sign_up(legacy_email, legacy_password, {"full_name": "Old Timer"})
    finally:
        gotrue.close()
    reply = call(apps[SUPABASE], "lazy login", LOGIN, {"email": legacy_email, "password": legacy_password})
    assert reply.status == 200
    assert stack.holders(legacy_email) == (legacy.user.id, legacy.user.id)
    assert stack.query("SELECT source FROM migrated_users WHERE original_id = %s", legacy.user.id) == [("lazy_login",)]

    # Outcomes straight from the service, for their repr()/str().
    for primary in (SUPABASE, BETTER_AUTH):
        flags = Flags(migration_mode=MigrationMode.DUAL_WRITE, use_better_auth=primary == BETTER_AUTH)
        password = f"Direct service pw {primary}"
        run.passwords.add(password)
        direct = _email(f"direct-{primary}")
        run.outcomes.append(healthy.signup(flags, direct, password, {"full_name": "Direct"}))
        run.outcomes.append(healthy.login(flags, direct, password))
    run.outcomes.append(healthy.login(Flags(migration_mode=MigrationMode.DUAL_WRITE), legacy_email, legacy_password))


def _line_with(text: str, secret: str) -> str:
    """The (shortened) log line holding `secret`, for the failure message."""
    line = next(line for line in text.splitlines() if secret in line)
    return line[:300]


def test_no_secret_in_any_log_line_or_reply(
    dual_write_stack: DualWriteStack,
    recorder: RecordingHandler,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    stack = dual_write_stack
    caplog.set_level(logging.DEBUG)
    run = Run()
    with powertools_to_current_stdout():
        _scenario(stack, run)
    captured = capfd.readouterr()

    # --- the secrets ---
    db_hashes = {row[0] for row in stack.query("SELECT encrypted_password FROM auth.users") if row[0]}
    db_hashes |= {row[0] for row in stack.query("SELECT password FROM account") if row[0]}
    # GoTrue and our SQL writes hold bcrypt; the Better-Auth server's own sign-ups its scrypt "salt:key".
    assert sum(h.startswith(("$2a$", "$2b$")) for h in db_hashes) >= 8
    hashes = db_hashes | run.gap_hashes
    successes = [r for r in run.replies if r.status == 200]
    errors = [r for r in run.replies if r.status >= 400]
    reply_tokens = {
        token
        for r in successes
        for token in (r.json()["session"]["access_token"], r.json()["session"]["refresh_token"])
        if token
    }
    outcome_tokens = {
        token
        for outcome in run.outcomes
        if outcome.result.session is not None
        for token in (
            outcome.result.session.access_token,
            outcome.result.session.refresh_token,
            outcome.result.session.cookie,
        )
        if token
    }
    session_tokens = {row[0] for row in stack.query("SELECT token FROM session")}
    tokens = reply_tokens | outcome_tokens | session_tokens
    keys = {
        "GoTrue service key": stack.gotrue.service_key,
        "GoTrue anon key": stack.gotrue.anon_key,
        "GoTrue JWT secret": stack.gotrue.jwt_secret,
        "Better-Auth secret": stack.better_auth_server.secret or BETTER_AUTH_TEST_SECRET,
    }
    secrets: dict[str, str] = {
        **{f"password {p!r}": p for p in run.passwords},
        **{f"password hash {h[:12]}...": h for h in hashes},
        **{f"token {t[:8]}...": t for t in tokens},
        **keys,
    }
    assert len(run.passwords) >= 10
    assert len(db_hashes) >= 8
    assert len(tokens) >= 10
    assert len(run.replies) >= 20
    assert {r.status for r in run.replies} >= {200, 401, 409, 503}

    # --- every log output ---
    outputs = {
        "stdout (fd)": captured.out,
        "stderr (fd)": captured.err,
        "caplog": "\n".join(line for r in caplog.records for line in render(r)),
        "recording handler": "\n".join(recorder.lines),
    }
    assert recorder.lines, "the recording handler saw no log record"
    assert '"message":"signup"' in captured.out or '"message": "signup"' in captured.out, "Powertools' JSON not seen"
    leaks = [
        f"{what} in {where}: {_line_with(text, secret)}"
        for where, text in outputs.items()
        for what, secret in secrets.items()
        if secret in text
    ]
    # Any bcrypt-looking text at all, even one we did not collect.
    leaks += [
        f"a bcrypt prefix in {where}: {_line_with(text, prefix)}"
        for where, text in outputs.items()
        for prefix in ("$2a$", "$2b$")
        if prefix in text
    ]
    assert leaks == [], "\n".join(leaks)

    # --- replies ---
    for reply in errors:
        found = [what for what, secret in secrets.items() if secret in reply.text]
        assert found == [], f"{reply.label}: {found}"
        assert set(reply.json()) <= {"error", "message", "details"}
    for reply in successes:
        body = reply.json()
        assert body["session"]["access_token"], reply.label
        if body["system"] == BETTER_AUTH:
            assert body["session"]["access_token"] in session_tokens, reply.label
        assert "$2a$" not in reply.text
        assert "$2b$" not in reply.text
        for what, secret in {**keys, **{f"hash {h[:12]}": h for h in hashes}}.items():
            assert secret not in reply.text, f"{reply.label}: {what}"
        for password in run.passwords:
            assert password not in reply.text, reply.label

    # --- repr() / str() of what the service returns ---
    for outcome in run.outcomes:
        result: AuthResult = outcome.result
        assert result.session is not None
        texts = [repr(outcome), str(outcome), repr(result), str(result), repr(result.session), f"{outcome}"]
        for text in texts:
            for what, secret in secrets.items():
                assert secret not in text, f"{what} in repr/str of {type(outcome).__name__}"
            assert "$2" not in text


# --- DEBUG records that once held secrets (the validated body's repr, httpcore's header trace) ---------------


def _debug_texts(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(line for record in caplog.records for line in render(record))


def test_debug_log_of_the_validated_body_hides_the_password(
    dual_write_stack: DualWriteStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = app_for(dual_write_stack.service(), better_auth_primary=False)
    email, password = _email("debug-body"), "Debug body password 1"
    for path in (SIGNUP, LOGIN):
        assert handle_api_event(event(path, {"email": email, "password": password}), CONTEXT, app)["statusCode"] == 200
    assert "Calling API Route Handler" in caplog.text
    assert password not in _debug_texts(caplog)


def test_debug_http_trace_hides_session_tokens(
    dual_write_stack: DualWriteStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = app_for(dual_write_stack.service(), better_auth_primary=True)
    body = {"email": _email("debug-cookie"), "password": "Debug cookie password 1"}
    raw = handle_api_event(event(SIGNUP, body), CONTEXT, app)
    assert raw["statusCode"] == 200
    token = json.loads(raw["body"])["session"]["access_token"]
    assert token
    assert token not in _debug_texts(caplog)
