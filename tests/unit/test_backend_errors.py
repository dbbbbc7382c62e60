"""Each backend's translation of replies and transport failures into the one error vocabulary.

httpx.MockTransport stands in for the network: what is under test is the adapters' own mapping.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from auth_migration.backends import (
    AuthBackend,
    BackendError,
    BadRequest,
    BetterAuthBackend,
    EmailNotConfirmed,
    InputRefused,
    InvalidCredentials,
    Misconfigured,
    RateLimited,
    Session,
    SupabaseAuthBackend,
    Timeout,
    Unavailable,
    Unsupported,
    UserExists,
    WeakPassword,
)
from auth_migration.exceptions import ConfigError, PermanentError, TransientError

EMAIL = "someone@example.com"
PASSWORD = "s3cret-Passw0rd"
SERVICE_KEY = "service.role.key"
Handler = Callable[[httpx.Request], httpx.Response]


def _reply(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Handler:
    def handler(_request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, headers=headers)
        content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers=headers)

    return handler


def _raise(exc: Exception) -> Handler:
    def handler(_request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


def _supabase(handler: Handler) -> SupabaseAuthBackend:
    return SupabaseAuthBackend("https://gotrue.test", service_key=SERVICE_KEY, transport=httpx.MockTransport(handler))


def _better_auth(handler: Handler) -> BetterAuthBackend:
    return BetterAuthBackend("https://app.test", transport=httpx.MockTransport(handler))


GOTRUE_CASES = [
    # 2024-01-01 shape
    (422, {"code": "user_already_exists", "message": "User already registered"}, UserExists),
    (
        422,
        {"code": "email_exists", "message": "A user with this email address has already been registered"},
        UserExists,
    ),
    (400, {"code": "invalid_credentials", "message": "Invalid login credentials"}, InvalidCredentials),
    (400, {"code": "email_not_confirmed", "message": "Email not confirmed"}, EmailNotConfirmed),
    (422, {"code": "weak_password", "message": "Password should be at least 6 characters."}, WeakPassword),
    (400, {"code": "validation_failed", "message": "Unable to validate email address: invalid format"}, BadRequest),
    (403, {"code": "not_admin", "message": "User not allowed"}, Misconfigured),
    (401, {"code": "no_authorization", "message": "This endpoint requires a valid Bearer token"}, Misconfigured),
    # initial shape: code is the status, error_code the code
    (422, {"code": 422, "error_code": "user_already_exists", "msg": "User already registered"}, UserExists),
    (400, {"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"}, InvalidCredentials),
    (422, {"code": 422, "error_code": "weak_password", "msg": "short", "weak_password": {"reasons": []}}, WeakPassword),
    # 2023 builds: OAuth error on the password grant
    (400, {"error": "invalid_grant", "error_description": "Invalid login credentials"}, InvalidCredentials),
    # whatever the body says, the status decides these
    (429, {"code": "over_request_rate_limit", "message": "Request rate limit reached"}, RateLimited),
    (429, None, RateLimited),
    (500, {"code": 500, "error_code": "unexpected_failure", "msg": "Unexpected failure"}, Unavailable),
    (502, "<html>Bad Gateway</html>", Unavailable),
    (503, None, Unavailable),
    (418, {"message": "unknown"}, BadRequest),
    (401, "not json", Misconfigured),
    # a 2xx that is not the API's JSON is a broken server, not our input
    (200, "<html>captive portal</html>", Unavailable),
    (200, [1, 2], Unavailable),
    (200, {"access_token": "x"}, Unavailable),
]


@pytest.mark.parametrize(("status", "body", "expected"), GOTRUE_CASES)
def test_gotrue_replies_map_to_the_vocabulary(status: int, body: Any, expected: type[BackendError]) -> None:
    backend = _supabase(_reply(status, body))

    with pytest.raises(expected) as raised:
        backend.sign_in(EMAIL, PASSWORD)

    assert type(raised.value) is expected
    assert raised.value.system == "supabase"


BETTER_AUTH_CASES = [
    (422, {"code": "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL", "message": "User already exists."}, UserExists),
    (401, {"code": "INVALID_EMAIL_OR_PASSWORD", "message": "Invalid email or password"}, InvalidCredentials),
    (403, {"code": "EMAIL_NOT_VERIFIED", "message": "Email not verified"}, EmailNotConfirmed),
    (400, {"code": "PASSWORD_TOO_SHORT", "message": "Password too short"}, WeakPassword),
    # At sign-in these refuse the input itself, not the credentials: no verdict (issue 12, special emails).
    (400, {"code": "PASSWORD_TOO_LONG", "message": "Password too long"}, InputRefused),
    (400, {"code": "VALIDATION_ERROR", "message": "[body.email] Invalid email address"}, InputRefused),
    (400, {"code": "INVALID_EMAIL", "message": "Invalid email"}, InputRefused),
    (403, {"code": "INVALID_ORIGIN", "message": "Invalid origin"}, Misconfigured),
    (403, {"code": "MISSING_OR_NULL_ORIGIN", "message": "Missing or null Origin"}, Misconfigured),
    (429, {"message": "Too many requests. Please try again later."}, RateLimited),
    (500, None, Unavailable),
    (504, "gateway timeout", Unavailable),
    (200, {"token": "t"}, Unavailable),
    (200, "not json", Unavailable),
]


@pytest.mark.parametrize(("status", "body", "expected"), BETTER_AUTH_CASES)
def test_better_auth_replies_map_to_the_vocabulary(status: int, body: Any, expected: type[BackendError]) -> None:
    backend = _better_auth(_reply(status, body))

    with pytest.raises(expected) as raised:
        backend.sign_in(EMAIL, PASSWORD)

    assert type(raised.value) is expected
    assert raised.value.system == "better_auth"


@pytest.mark.parametrize("make", [_supabase, _better_auth])
@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.ConnectTimeout("connect timed out"), Timeout),
        (httpx.ReadTimeout("read timed out"), Timeout),
        (httpx.ConnectError("connection refused"), Unavailable),
        (httpx.RemoteProtocolError("server disconnected"), Unavailable),
        (httpx.ReadError("connection reset"), Unavailable),
    ],
)
def test_transport_failures_are_unavailable(
    make: Callable[[Handler], AuthBackend], failure: Exception, expected: type[BackendError]
) -> None:
    backend = make(_raise(failure))

    with pytest.raises(expected) as raised:
        backend.sign_up(EMAIL, PASSWORD, {})

    assert raised.value.status is None
    assert isinstance(raised.value, TransientError)


def test_transient_and_permanent_kinds_are_told_apart_by_type() -> None:
    for transient in (RateLimited, Unavailable, Timeout):
        assert issubclass(transient, TransientError)
    for permanent in (UserExists, InvalidCredentials, WeakPassword, BadRequest, Misconfigured, Unsupported):
        assert issubclass(permanent, PermanentError)
    assert issubclass(EmailNotConfirmed, InvalidCredentials)


@pytest.mark.parametrize(
    ("make", "headers", "expected"),
    [
        (_supabase, {"Retry-After": "7"}, 7.0),
        (_better_auth, {"X-Retry-After": "9"}, 9.0),
        (_better_auth, {}, None),
        (_supabase, {"Retry-After": "soon"}, None),
    ],
)
def test_rate_limited_carries_the_retry_hint(
    make: Callable[[Handler], AuthBackend], headers: dict[str, str], expected: float | None
) -> None:
    backend = make(_reply(429, {}, headers))

    with pytest.raises(RateLimited) as raised:
        backend.sign_in(EMAIL, PASSWORD)

    assert raised.value.retry_after == expected


@pytest.mark.parametrize("make", [_supabase, _better_auth])
@pytest.mark.parametrize(("status", "body"), [case[:2] for case in GOTRUE_CASES + BETTER_AUTH_CASES])
def test_error_messages_never_carry_the_credentials(
    make: Callable[[Handler], AuthBackend], status: int, body: Any
) -> None:
    backend = make(_reply(status, body))

    with pytest.raises(BackendError) as raised:
        backend.sign_in(EMAIL, PASSWORD)

    text = f"{raised.value} {raised.value!r}"
    for secret in (PASSWORD, EMAIL, SERVICE_KEY):
        assert secret not in text


def test_gotrue_requests_carry_apikey_version_and_client_ip_but_admin_auth_only_on_admin_calls() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/admin/users" and request.method == "GET":
            return httpx.Response(200, json={"users": [], "aud": "authenticated"})
        user = {"id": "u1", "email": EMAIL, "email_confirmed_at": "2026-01-01T00:00:00Z", "user_metadata": {}}
        return httpx.Response(200, json={"access_token": "a", "refresh_token": "r", "expires_at": 5, "user": user})

    backend = _supabase(handler)
    backend.sign_in(EMAIL, PASSWORD, client_ip="203.0.113.9")
    backend.find_user_by_email(EMAIL)

    token_call, admin_call = seen
    assert token_call.url.path == "/token"
    assert token_call.url.params["grant_type"] == "password"
    assert token_call.headers["apikey"] == SERVICE_KEY
    assert token_call.headers["X-Supabase-Api-Version"] == "2024-01-01"
    assert token_call.headers["X-Forwarded-For"] == "203.0.113.9"
    assert "Authorization" not in token_call.headers
    assert admin_call.headers["Authorization"] == f"Bearer {SERVICE_KEY}"
    assert admin_call.url.params["filter"] == EMAIL


def test_gotrue_admin_calls_without_a_service_key_are_a_config_error() -> None:
    backend = SupabaseAuthBackend("https://gotrue.test", transport=httpx.MockTransport(_reply(200, {})))

    with pytest.raises(ConfigError):
        backend.find_user_by_email(EMAIL)


def test_better_auth_requests_carry_origin_and_client_ip_and_a_name() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={"token": "tok", "user": {"id": "u1", "email": EMAIL, "name": "Some One", "emailVerified": False}},
            headers={"Set-Cookie": "better-auth.session_token=tok.sig; Max-Age=604800; Path=/; HttpOnly"},
        )

    result = _better_auth(handler).sign_up(EMAIL, PASSWORD, {"full_name": "Some One"}, client_ip="198.51.100.4")

    (request,) = seen
    assert request.url.path == "/api/auth/sign-up/email"
    assert request.headers["Origin"] == "https://app.test"
    assert request.headers["X-Forwarded-For"] == "198.51.100.4"
    assert json.loads(request.content) == {"email": EMAIL, "password": PASSWORD, "name": "Some One"}
    assert result.session is not None
    assert result.session.cookie == "tok.sig"
    assert result.session.expires_at is not None


def test_better_auth_cannot_choose_the_user_id_over_http() -> None:
    backend = _better_auth(_reply(200, {}))

    with pytest.raises(Unsupported):
        backend.sign_up(EMAIL, PASSWORD, {}, user_id="00000000-0000-4000-8000-000000000001")


def test_session_repr_hides_the_tokens() -> None:
    session = Session(access_token="access-xyz", refresh_token="refresh-xyz", expires_at=1, cookie="cookie-xyz")

    assert "xyz" not in repr(session)


def test_backends_satisfy_the_interface() -> None:
    assert isinstance(_supabase(_reply(200, {})), AuthBackend)
    assert isinstance(_better_auth(_reply(200, {})), AuthBackend)


def test_an_http_date_retry_after_is_measured_from_the_given_instant() -> None:
    from auth_migration.backends.transport import retry_after_seconds

    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC).timestamp()
    assert retry_after_seconds("Sun, 01 Nov 2026 12:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Sun, 01 Nov 2026 11:59:00 GMT", now=now) == 0.0  # already past
    assert retry_after_seconds("12", now=now) == 12.0
    assert retry_after_seconds("soon", now=now) is None


def test_a_session_cookie_max_age_counts_from_the_given_instant() -> None:
    from auth_migration.backends.better_auth import _session_cookie

    reply = httpx.Response(200, headers=[("set-cookie", "better-auth.session_token=abc.sig; Max-Age=604800; Path=/")])
    assert _session_cookie(reply, now=1_800_000_000) == ("abc.sig", 1_800_604_800)
