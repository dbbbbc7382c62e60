"""The auth API layer (dual_write/api.py): request validation, error mapping and reply hygiene.

The AuthService is a collaborator here: a small double returns a chosen AuthOutcome or raises a chosen
backends.errors kind. What is under test is what the layer lets through, how it maps each error kind to
a status and an error code, and that no refusal ever echoes the request (above all the password).
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from auth_migration.backends.base import BETTER_AUTH, SUPABASE, AuthResult, BackendUser, Session
from auth_migration.backends.errors import (
    BackendError,
    BadRequest,
    EmailNotConfirmed,
    InvalidCredentials,
    Misconfigured,
    RateLimited,
    Timeout,
    Unavailable,
    UserExists,
    WeakPassword,
)
from auth_migration.dual_write.api import MAX_BODY_BYTES, build_resolver, handle_api_event
from auth_migration.dual_write.routing import Route
from auth_migration.dual_write.service import AuthOutcome, AuthService, BothUnavailable
from auth_migration.exceptions import ConfigError
from auth_migration.flags import Flags, MigrationMode
from auth_migration_ops.local.invoke import LocalLambdaContext

SIGNUP, LOGIN = "/auth/signup", "/auth/login"
ROUTES = [SIGNUP, LOGIN]
EMAIL = "ada.lovelace@example.com"
PASSWORD = "correct horse battery 1"
SOURCE_IP = "203.0.113.7"
ACCESS_TOKEN = "access.jwt.token-AAAA"
REFRESH_TOKEN = "refresh-token-BBBB"
USER_ID = "6a1c9a8e-4d0b-4a49-9a77-0d7f3e2b1c11"
# Markers planted in refused requests: none may come back in a reply.
SECRET = "Sup3r-S3cret-canary-value"
CANARY = "canary-7f3a9c"


# --- the collaborator -------------------------------------------------------------------------------------


@dataclass
class FakeService:
    """Stands in for AuthService: records each call; answers `outcome` or raises `error`."""

    error: Exception | None = None
    system: str = SUPABASE
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def _answer(self, email: str) -> AuthOutcome:
        if self.error is not None:
            raise self.error
        system = SUPABASE if self.system == SUPABASE else BETTER_AUTH
        session = Session(ACCESS_TOKEN, REFRESH_TOKEN, 1_900_000_000, "bearer")
        result = AuthResult(system, BackendUser(USER_ID, email, email_verified=True), session)
        return AuthOutcome(result, Route(MigrationMode.DUAL_WRITE, system, canary=False))

    def signup(
        self,
        flags: Flags,
        email: str,
        password: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        client_ip: str | None = None,
    ) -> AuthOutcome:
        assert isinstance(flags, Flags)
        self.calls.append(
            ("signup", {"email": email, "password": password, "metadata": metadata, "client_ip": client_ip})
        )
        return self._answer(email)

    def login(self, flags: Flags, email: str, password: str, *, client_ip: str | None = None) -> AuthOutcome:
        assert isinstance(flags, Flags)
        self.calls.append(("login", {"email": email, "password": password, "client_ip": client_ip}))
        return self._answer(email)


# The runtime context the local invoke builds, with a countdown far beyond any test.
CONTEXT = cast(LambdaContext, LocalLambdaContext(function_name="auth-api-unit", timeout_s=3600, memory_limit_in_mb=256))


def make_app(fake: FakeService) -> APIGatewayRestResolver:
    return build_resolver(lambda: cast(AuthService, fake), lambda: Flags(migration_mode=MigrationMode.DUAL_WRITE))


# --- events and replies -----------------------------------------------------------------------------------


def api_event(
    body: str | None,
    *,
    path: str = SIGNUP,
    method: str = "POST",
    content_type: str | None = "application/json",
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """A REST API (v1) Lambda proxy event, as API Gateway sends one (the shape local_api builds)."""
    headers = {"Host": "api.example.com", "User-Agent": "unit-test", "X-Forwarded-For": SOURCE_IP}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "abc123",
            "resourcePath": path,
            "httpMethod": method,
            "requestTime": "14/Nov/2023:22:13:20 +0000",
            "path": f"/dev{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "dev",
            "domainPrefix": "api",
            "requestTimeEpoch": 1_700_000_000_123,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": SOURCE_IP, "userAgent": "unit-test"},
            "domainName": "api.example.com",
            "apiId": "abcdefghij",
        },
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def invoke(app: APIGatewayRestResolver, event: Mapping[str, Any]) -> Reply:
    raw = handle_api_event(event, CONTEXT, app)
    headers: dict[str, str] = {str(k).lower(): str(v) for k, v in (raw.get("headers") or {}).items()}
    for key, values in (raw.get("multiValueHeaders") or {}).items():
        headers[str(key).lower()] = str(values[-1])
    assert raw.get("isBase64Encoded") in (False, None)
    return Reply(int(raw["statusCode"]), headers, str(raw.get("body") or ""))


def send(fake: FakeService, body: Any, *, path: str = SIGNUP, raw: bool = False, **kwargs: Any) -> Reply:
    text = body if raw else json.dumps(body)
    return invoke(make_app(fake), api_event(text, path=path, **kwargs))


def signup_body(**overrides: Any) -> dict[str, Any]:
    return {"email": EMAIL, "password": PASSWORD, **overrides}


def assert_refusal(reply: Reply, status: int, *, planted: tuple[str, ...] = ()) -> dict[str, Any]:
    """A 4xx with {error, message} JSON, no-store, and none of `planted` (nor the password) echoed."""
    assert reply.status == status, reply
    assert reply.headers.get("content-type", "").startswith("application/json")
    assert reply.headers.get("cache-control") == "no-store"
    body = reply.json()
    assert isinstance(body, dict)
    assert isinstance(body.get("error"), str)
    assert body["error"]
    assert isinstance(body.get("message"), str)
    assert body["message"]
    for value in (PASSWORD, SECRET, CANARY, *planted):
        assert value not in reply.text, f"{value!r} echoed in {reply.text}"
    return body


# --- valid requests reach the service unchanged -------------------------------------------------------------


def test_signup_passes_the_validated_request_on_and_replies_with_the_session() -> None:
    fake = FakeService()
    reply = send(fake, signup_body(metadata={"full_name": "Ada Lovelace"}))
    assert reply.status == 200
    assert reply.headers["cache-control"] == "no-store"
    assert reply.json() == {
        "user": {"id": USER_ID, "email": EMAIL},
        "session": {
            "access_token": ACCESS_TOKEN,
            "refresh_token": REFRESH_TOKEN,
            "expires_at": 1_900_000_000,
            "token_type": "bearer",
        },
        "system": SUPABASE,
    }
    assert fake.calls == [
        (
            "signup",
            {"email": EMAIL, "password": PASSWORD, "metadata": {"full_name": "Ada Lovelace"}, "client_ip": SOURCE_IP},
        )
    ]
    assert PASSWORD not in reply.text


def test_login_passes_the_validated_request_on() -> None:
    fake = FakeService(system=BETTER_AUTH)
    reply = send(fake, {"email": EMAIL, "password": "x"}, path=LOGIN)  # login has no password policy
    assert reply.status == 200
    assert reply.json()["system"] == BETTER_AUTH
    assert fake.calls == [("login", {"email": EMAIL, "password": "x", "client_ip": SOURCE_IP})]


@pytest.mark.parametrize(
    ("password", "metadata"),
    [
        ("pässwörd-✓-密码", {"full_name": "Zoë Ωmega 山田"}),
        ("😀" * 18, None),  # 72 UTF-8 bytes: exactly bcrypt's limit
        ("a" * 72, {}),
        ("'; DROP TABLE auth.users; --", {"name": "Robert'); DROP TABLE students;--"}),
        ("1' OR '1'='1' --", {"bio": '"; SELECT pg_sleep(10); --', "nested": {"list": [1, None, True, "x"]}}),
        ("  spaced  out  ", {"a": {"b": {"c": {"d": 1}}}}),  # 4 levels: the deepest allowed
    ],
    ids=["unicode", "72-byte-emoji", "72-ascii", "sql", "sql-2", "spaces-and-max-depth"],
)
def test_unusual_but_valid_signups_reach_the_service_verbatim(password: str, metadata: dict[str, Any] | None) -> None:
    fake = FakeService()
    reply = send(fake, {"email": EMAIL, "password": password, "metadata": metadata})
    assert reply.status == 200, reply
    assert fake.calls[0][1]["password"] == password
    assert fake.calls[0][1]["metadata"] == metadata


def test_unicode_email_is_accepted() -> None:
    fake = FakeService()
    assert send(fake, {"email": "zoë@exämple.com", "password": PASSWORD}).status == 200
    assert len(fake.calls) == 1


def test_content_type_parameters_are_accepted() -> None:
    fake = FakeService()
    assert send(fake, signup_body(), content_type="application/json; charset=utf-8").status == 200


# --- each error kind -> status and error code ----------------------------------------------------------------

LEAKY_DETAIL = f"{EMAIL} {PASSWORD} {SECRET} $2a$10$abcdefghijklmnopqrstuv"

ERROR_CASES: list[tuple[Exception, int, str]] = [
    (UserExists(SUPABASE, status=422, code="user_already_exists", detail=LEAKY_DETAIL), 409, "user_exists"),
    (WeakPassword(BETTER_AUTH, status=400, code="PASSWORD_TOO_SHORT", detail=LEAKY_DETAIL), 422, "weak_password"),
    (InvalidCredentials(SUPABASE, status=400, code="invalid_credentials"), 401, "invalid_credentials"),
    (EmailNotConfirmed(SUPABASE, status=400, code="email_not_confirmed"), 403, "email_not_confirmed"),
    (RateLimited(BETTER_AUTH, detail=LEAKY_DETAIL), 429, "rate_limited"),
    (Unavailable(SUPABASE, status=502, detail=LEAKY_DETAIL), 503, "unavailable"),
    (Timeout(BETTER_AUTH, detail="ReadTimeout"), 503, "unavailable"),
    (BothUnavailable("supabase+better_auth", detail=LEAKY_DETAIL), 503, "unavailable"),
    (BadRequest(SUPABASE, status=400, code="validation_failed", detail=LEAKY_DETAIL), 400, "invalid_request"),
    (Misconfigured(SUPABASE, status=401, code="no_authorization", detail=LEAKY_DETAIL), 503, "unavailable"),
    (ConfigError(f"SUPABASE_SERVICE_KEY is wrong: {SECRET}"), 503, "unavailable"),
]


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    ("error", "status", "code"), ERROR_CASES, ids=[type(e).__name__ + f"-{s}" for e, s, _ in ERROR_CASES]
)
def test_each_error_kind_maps_to_its_status_and_code(path: str, error: Exception, status: int, code: str) -> None:
    fake = FakeService(error=error)
    reply = send(fake, signup_body(), path=path)
    body = assert_refusal(reply, status, planted=(EMAIL, "$2a$10$"))
    assert body["error"] == code
    assert set(body) == {"error", "message"}
    assert len(fake.calls) == 1
    if status in (429, 503) and isinstance(error, BackendError):
        assert reply.headers["retry-after"] == "1"


@pytest.mark.parametrize(("hint", "header"), [(2.5, "3"), (30, "30"), (0.01, "1"), (None, "1"), (-5, "1")])
def test_rate_limited_retry_after_is_whole_seconds_rounded_up(hint: float | None, header: str) -> None:
    reply = send(FakeService(error=RateLimited(SUPABASE, retry_after=hint)), signup_body(), path=LOGIN)
    assert_refusal(reply, 429)
    assert reply.headers["retry-after"] == header


def test_unknown_user_and_wrong_password_get_byte_identical_replies() -> None:
    wrong_password = send(
        FakeService(error=InvalidCredentials(SUPABASE, status=400, code="invalid_credentials", detail="bad password")),
        {"email": EMAIL, "password": "wrong password"},
        path=LOGIN,
    )
    unknown_user = send(
        FakeService(error=InvalidCredentials(BETTER_AUTH, status=401, code="INVALID_EMAIL_OR_PASSWORD")),
        {"email": "nobody@example.com", "password": PASSWORD},
        path=LOGIN,
    )
    assert_refusal(wrong_password, 401)
    assert (unknown_user.status, unknown_user.headers, unknown_user.text) == (
        wrong_password.status,
        wrong_password.headers,
        wrong_password.text,
    )


# --- refused before the service: the body ---------------------------------------------------------------------

EMOJI_30 = "😀" * 30  # 30 characters, 120 UTF-8 bytes

INVALID_SIGNUPS: list[tuple[str, Any]] = [
    ("not-json", "{bad json"),
    ("truncated-json", '{"email": "a@b.co", "password": "' + SECRET),
    ("trailing-garbage", json.dumps(signup_body(password=SECRET)) + " }"),
    ("json-array", json.dumps([EMAIL, SECRET])),
    ("json-string", json.dumps(SECRET)),
    ("json-number", "42"),
    ("json-true", "true"),
    ("json-null", "null"),
    ("empty-object", "{}"),
    ("whitespace-only", "   \n\t "),
    ("missing-email", json.dumps({"password": SECRET})),
    ("missing-password", json.dumps({"email": EMAIL})),
    ("extra-field", json.dumps(signup_body(password=SECRET, role="admin"))),
    ("extra-field-id", json.dumps(signup_body(password=SECRET, id="00000000-0000-0000-0000-000000000000"))),
    ("email-number", json.dumps({"email": 12345, "password": SECRET})),
    ("email-list", json.dumps({"email": [EMAIL], "password": SECRET})),
    ("email-null", json.dumps({"email": None, "password": SECRET})),
    ("password-number", json.dumps({"email": EMAIL, "password": 12345678})),
    ("password-object", json.dumps({"email": EMAIL, "password": {"value": SECRET}})),
    ("password-bool", json.dumps({"email": EMAIL, "password": True})),
    ("password-null", json.dumps({"email": EMAIL, "password": None})),
    ("password-empty", json.dumps({"email": EMAIL, "password": ""})),
    ("password-too-short", json.dumps({"email": EMAIL, "password": "Sh0rt!!"})),
    ("password-blank", json.dumps({"email": EMAIL, "password": " " * 12})),
    ("password-blank-tabs", json.dumps({"email": EMAIL, "password": "\t\n\r \u2003\u3000  "})),
    ("password-73-ascii", json.dumps({"email": EMAIL, "password": "A" * 73})),
    ("password-30-emoji", json.dumps({"email": EMAIL, "password": EMOJI_30})),
    ("password-19-emoji-76-bytes", json.dumps({"email": EMAIL, "password": "😀" * 19})),
    ("password-73-chars", json.dumps({"email": EMAIL, "password": SECRET + "x" * (73 - len(SECRET))})),
    ("password-lone-surrogate", '{"email": "' + EMAIL + '", "password": "abc\\ud800defghij"}'),
    ("email-no-at", json.dumps({"email": "not-an-email", "password": SECRET})),
    ("email-empty", json.dumps({"email": "", "password": SECRET})),
    ("email-spaces", json.dumps({"email": "  ", "password": SECRET})),
    ("email-two-ats", json.dumps({"email": "a@b@example.com", "password": SECRET})),
    ("email-no-domain", json.dumps({"email": "ada@", "password": SECRET})),
    ("email-no-local", json.dumps({"email": "@example.com", "password": SECRET})),
    ("email-no-tld", json.dumps({"email": "ada@localhost", "password": SECRET})),
    ("email-sql", json.dumps({"email": 'x\'; DROP TABLE "user"; --@example.com', "password": SECRET})),
    ("email-sql-or", json.dumps({"email": "' OR 1=1 --", "password": SECRET})),
    ("email-nul", json.dumps({"email": "ada\u0000@example.com", "password": SECRET})),
    ("email-newline-header-injection", json.dumps({"email": "ada@example.com\r\nBcc: x@evil.com", "password": SECRET})),
    ("email-html", json.dumps({"email": "<script>alert(1)</script>@example.com", "password": SECRET})),
    ("email-ip-literal", json.dumps({"email": "ada@[127.0.0.1]", "password": SECRET})),
    ("email-over-254", json.dumps({"email": ("a" * 60 + ".") * 4 + "@" + "b" * 60 + ".com", "password": SECRET})),
    ("email-huge", json.dumps({"email": "a" * 5000 + "@example.com", "password": SECRET})),
    ("email-reserved-domain", json.dumps({"email": "ada@example.invalid", "password": SECRET})),
    ("metadata-list", json.dumps(signup_body(password=SECRET, metadata=[CANARY]))),
    ("metadata-string", json.dumps(signup_body(password=SECRET, metadata=CANARY))),
    ("metadata-number", json.dumps(signup_body(password=SECRET, metadata=7))),
    ("metadata-too-big", json.dumps(signup_body(password=SECRET, metadata={"bio": CANARY * 600}))),
    ("metadata-too-big-unicode", json.dumps(signup_body(password=SECRET, metadata={"bio": "😀" * 1100}))),
    ("metadata-too-deep", json.dumps(signup_body(password=SECRET, metadata={"a": {"b": {"c": {"d": {"e": 1}}}}}))),
    ("metadata-too-deep-lists", json.dumps(signup_body(password=SECRET, metadata={"a": [[[[CANARY]]]]}))),
    ("metadata-very-deep", json.dumps(signup_body(password=SECRET, metadata={"a": [[[[[[[[[[CANARY]]]]]]]]]]}))),
    (
        "metadata-lone-surrogate",
        '{"email": "' + EMAIL + '", "password": "' + SECRET + '", "metadata": {"n": "\\udc00"}}',
    ),
]


def _strings(body: str) -> list[str]:
    """Every string value of 6+ characters in a JSON body: what a refusal must not echo (keys are field
    names, which a refusal may name)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return []
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str) and len(value) >= 6:
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(parsed)
    return found


@pytest.mark.parametrize(("name", "body"), INVALID_SIGNUPS, ids=[name for name, _ in INVALID_SIGNUPS])
def test_invalid_signup_is_a_400_that_never_reaches_the_service(name: str, body: str) -> None:
    fake = FakeService()
    reply = send(fake, body, raw=True)
    refusal = assert_refusal(reply, 400, planted=tuple(_strings(body)))
    assert refusal["error"] == "invalid_request"
    for problem in refusal.get("details", []):
        assert set(problem) == {"field", "problem"}
    assert fake.calls == []


INVALID_LOGINS: list[tuple[str, Any]] = [
    ("not-json", "{"),
    ("json-array", json.dumps([EMAIL, SECRET])),
    ("missing-password", json.dumps({"email": EMAIL})),
    ("missing-email", json.dumps({"password": SECRET})),
    ("password-empty", json.dumps({"email": EMAIL, "password": ""})),
    ("password-over-1024", json.dumps({"email": EMAIL, "password": SECRET * 50})),
    ("password-number", json.dumps({"email": EMAIL, "password": 1234})),
    ("metadata-on-login", json.dumps({"email": EMAIL, "password": SECRET, "metadata": {}})),
    ("extra-field", json.dumps({"email": EMAIL, "password": SECRET, "remember": True})),
    ("bad-email", json.dumps({"email": "ada.example.com", "password": SECRET})),
    ("sql-email", json.dumps({"email": "admin'--", "password": SECRET})),
    ("over-254-email", json.dumps({"email": ("a" * 60 + ".") * 4 + "@example.com", "password": SECRET})),
]


@pytest.mark.parametrize(("name", "body"), INVALID_LOGINS, ids=[name for name, _ in INVALID_LOGINS])
def test_invalid_login_is_a_400_that_never_reaches_the_service(name: str, body: str) -> None:
    fake = FakeService()
    reply = send(fake, body, path=LOGIN, raw=True)
    assert assert_refusal(reply, 400)["error"] == "invalid_request"
    assert fake.calls == []


def test_missing_fields_are_named_without_values() -> None:
    fake = FakeService()
    body = send(fake, {"metadata": {"note": CANARY}}, raw=False).json()
    fields = {problem["field"] for problem in body["details"]}
    assert fields == {"email", "password"}
    assert CANARY not in json.dumps(body)


@pytest.mark.parametrize("body", [None, ""], ids=["no-body", "empty-body"])
@pytest.mark.parametrize("path", ROUTES)
def test_empty_body_is_a_400(path: str, body: str | None) -> None:
    fake = FakeService()
    reply = invoke(make_app(fake), api_event(body, path=path))
    assert assert_refusal(reply, 400)["error"] == "invalid_request"
    assert fake.calls == []


# --- refused before parsing: route, content type, size -----------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/json"],
    ids=["absent", "empty", "text", "form", "multipart", "text-json"],
)
@pytest.mark.parametrize("path", ROUTES)
def test_non_json_content_type_is_a_415(path: str, content_type: str | None) -> None:
    fake = FakeService()
    reply = invoke(
        make_app(fake), api_event(json.dumps(signup_body(password=SECRET)), path=path, content_type=content_type)
    )
    assert assert_refusal(reply, 415)["error"] == "unsupported_media_type"
    assert fake.calls == []


@pytest.mark.parametrize("path", ROUTES)
def test_body_over_16_kib_is_a_413(path: str) -> None:
    fake = FakeService()
    body = json.dumps(signup_body(password=SECRET, metadata={"bio": CANARY * (MAX_BODY_BYTES // len(CANARY))}))
    assert len(body.encode()) > MAX_BODY_BYTES
    reply = invoke(make_app(fake), api_event(body, path=path))
    assert assert_refusal(reply, 413)["error"] == "payload_too_large"
    assert fake.calls == []


def test_a_body_of_exactly_16_kib_is_parsed() -> None:
    body = json.dumps(signup_body())
    body += " " * (MAX_BODY_BYTES - len(body))
    fake = FakeService()
    assert invoke(make_app(fake), api_event(body)).status == 200


def test_body_over_16_kib_of_utf8_bytes_is_a_413() -> None:
    fake = FakeService()
    body = json.dumps(signup_body(metadata={"bio": "😀" * 5000}), ensure_ascii=False)
    assert len(body) < MAX_BODY_BYTES < len(body.encode())
    assert invoke(make_app(fake), api_event(body)).status == 413


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/auth/logout"),
        ("POST", "/"),
        ("POST", "/AUTH/SIGNUP"),
        ("POST", "/auth/signup/extra"),
        ("POST", "/auth/../admin"),
        ("GET", SIGNUP),
        ("PUT", LOGIN),
        ("DELETE", LOGIN),
        ("GET", "/auth/users"),
    ],
)
def test_unknown_route_is_a_404(method: str, path: str) -> None:
    fake = FakeService()
    reply = invoke(make_app(fake), api_event(json.dumps(signup_body(password=SECRET)), path=path, method=method))
    assert assert_refusal(reply, 404)["error"] == "not_found"
    assert fake.calls == []


def test_base64_encoded_json_body_is_decoded() -> None:
    fake = FakeService()
    encoded = base64.b64encode(json.dumps(signup_body()).encode()).decode()
    assert invoke(make_app(fake), api_event(encoded, base64_encoded=True)).status == 200
    assert fake.calls[0][1]["password"] == PASSWORD


# --- hostile bodies that once crashed the layer (fixed; kept as regressions) ---------------------------------

_BUG_5XX = (
    "api.py handle_api_event: {what} escapes Powertools' body parsing unhandled (a Lambda error, API Gateway 502)"
)


@pytest.mark.parametrize("path", ROUTES)
def test_deeply_nested_json_is_a_400(path: str) -> None:
    fake = FakeService()
    reply = invoke(make_app(fake), api_event("[" * 2000 + "]" * 2000, path=path))
    assert_refusal(reply, 400)
    assert fake.calls == []


def test_deeply_nested_metadata_is_a_400() -> None:
    fake = FakeService()
    body = '{"email":"' + EMAIL + '","password":"' + PASSWORD + '","metadata":{"a":' + "[" * 600 + "]" * 600 + "}}"
    reply = invoke(make_app(fake), api_event(body))
    assert_refusal(reply, 400)
    assert fake.calls == []


@pytest.mark.parametrize("where", ["top", "metadata"])
def test_huge_integer_literal_is_a_400(where: str) -> None:
    fake = FakeService()
    digits = "9" * 5000
    body = digits if where == "top" else json.dumps(signup_body())[:-1] + ',"metadata":{"n":' + digits + "}}"
    reply = invoke(make_app(fake), api_event(body))
    assert_refusal(reply, 400)
    assert fake.calls == []


@pytest.mark.parametrize("encoded", ["//79", "not base64!", "e30"], ids=["not-utf8", "not-base64", "bad-padding"])
def test_undecodable_base64_body_is_a_400(encoded: str) -> None:
    fake = FakeService()
    reply = invoke(make_app(fake), api_event(encoded, base64_encoded=True))
    assert_refusal(reply, 400)
    assert fake.calls == []


@pytest.mark.parametrize("content_type", ["APPLICATION/JSON", "Application/Json; charset=utf-8"])
def test_json_media_type_in_any_case_is_json(content_type: str) -> None:
    fake = FakeService()
    reply = invoke(make_app(fake), api_event(json.dumps(signup_body()), content_type=content_type))
    assert reply.status == 200, reply


@pytest.mark.parametrize("path", ROUTES)
def test_array_wrapped_body_is_a_400(path: str) -> None:
    fake = FakeService()
    reply = send(fake, [signup_body(), "ignored"], path=path)
    assert_refusal(reply, 400)
    assert fake.calls == []


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_in_metadata_are_a_400(literal: str) -> None:
    fake = FakeService()
    body = json.dumps(signup_body())[:-1] + ',"metadata":{"score":' + literal + "}}"
    reply = invoke(make_app(fake), api_event(body))
    assert_refusal(reply, 400)
    assert fake.calls == []


# --- property: no input makes the layer fail ---------------------------------------------------------------

_NASTY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\u0000",
        "\x1b[31m",
        "'; DROP TABLE auth.users; --",
        "' OR '1'='1",
        "admin'--",
        "<script>alert(1)</script>",
        "${jndi:ldap://x}",
        "%s%s%n",
        "\ufeff",
        "\u202e",
        "😀" * 40,
        "a" * 300,
        EMAIL,
        EMAIL.upper(),
        " " + EMAIL + " ",
        PASSWORD,
    ]
)
_TEXT = st.one_of(st.text(max_size=80), _NASTY_TEXT, st.emails().map(str))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=12,
)
# Passwords that carry a marker: whatever else happens, a marked password never comes back.
_MARKED_PASSWORD = st.text(max_size=40).map(lambda s: f"{s}{SECRET}")
_FIELD_VALUES = {
    "email": st.one_of(_JSON, st.emails().map(str)),
    "password": st.one_of(_JSON, _MARKED_PASSWORD),
    "metadata": _JSON,
}
_OBJECTS = st.one_of(
    st.fixed_dictionaries({}, optional=_FIELD_VALUES),
    st.dictionaries(st.one_of(st.sampled_from(["email", "password", "metadata"]), _TEXT), _JSON, max_size=5),
    st.builds(
        lambda base, key, value: {**base, key: value},
        st.fixed_dictionaries({"email": st.emails().map(str), "password": _MARKED_PASSWORD}),
        st.sampled_from(["email", "password", "metadata", "id", "role"]),
        _JSON,
    ),
)
_BODIES = st.one_of(
    _OBJECTS.map(json.dumps),
    _JSON.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda raw: raw.decode("latin-1")),
    st.builds(lambda text, cut: text[:cut], _OBJECTS.map(json.dumps), st.integers(0, 200)),
    st.none(),
)
_CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json;charset=latin-1",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=----x",
            "application/xml",
            "",
        ]
    ),
    st.none(),
    st.text(alphabet=string.printable, max_size=40),
)


@settings(
    max_examples=1500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
@given(body=_BODIES, content_type=_CONTENT_TYPES, path=st.sampled_from(ROUTES))
def test_no_request_body_or_content_type_makes_the_layer_fail(
    body: str | None, content_type: str | None, path: str
) -> None:
    fake = FakeService()
    reply = invoke(make_app(fake), api_event(body, path=path, content_type=content_type))
    assert reply.status < 500, reply
    assert reply.headers.get("cache-control") == "no-store"
    parsed = reply.json()
    if reply.status >= 400:
        assert isinstance(parsed, dict)
        assert isinstance(parsed.get("error"), str)
        assert isinstance(parsed.get("message"), str)
        assert SECRET not in reply.text
        assert fake.calls == []
    else:
        assert reply.status == 200
        assert len(fake.calls) == 1


@settings(max_examples=200, deadline=None, database=None)
@given(
    error=st.sampled_from([error for error, _, _ in ERROR_CASES]),
    password=_MARKED_PASSWORD,
    path=st.sampled_from(ROUTES),
)
def test_no_service_error_leaks_the_request(error: Exception, password: str, path: str) -> None:
    assume(len(password.encode()) <= 72 and password.strip())
    reply = send(FakeService(error=error), {"email": EMAIL, "password": password}, path=path)
    assert 400 <= reply.status < 600
    assert reply.status in {401, 403, 409, 422, 429, 400, 503}
    body = reply.json()
    assert set(body) == {"error", "message"}
    assert SECRET not in reply.text
    assert EMAIL not in reply.text


def test_an_exchange_function_without_better_auths_secret_starts_and_answers_503() -> None:
    import json as _json

    from auth_migration.dual_write.runtime import exchange_app
    from auth_migration.settings import load_settings

    app = exchange_app(load_settings({}))  # no BETTER_AUTH_SECRET: init must not crash (a bare 502)
    event = {
        "resource": "/auth/session/exchange",
        "path": "/auth/session/exchange",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "requestContext": {"resourcePath": "/auth/session/exchange", "httpMethod": "POST", "identity": {}},
        "body": _json.dumps({"access_token": "a.b.c"}),
        "isBase64Encoded": False,
    }
    reply = app.resolve(event, CONTEXT)
    assert reply["statusCode"] == 503 and _json.loads(reply["body"])["error"] == "unavailable"
