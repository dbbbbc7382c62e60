"""A GoTrue stand-in for tests and the local run: GoTrue's documented endpoints, status codes and error
codes, over the real `auth.users` / `auth.identities` schema in Postgres, with run-time fault injection.

No GoTrue binary installs here, so this speaks the subset of supabase/auth's REST API the Signup and
Login functions use. Replies follow supabase/auth (internal/api: signup, token, user, admin, errors,
apierrors/errorcode): errors are `{"code": <status>, "error_code", "msg"}`, or `{"code", "message"}`
when the caller sends `X-Supabase-Api-Version: 2024-01-01` (as supabase-js does).

Sessions are GoTrue's (internal/tokens/service.go, internal/models/sessions.go, refresh_token.go): every
session handed out (password grant, signup with autoconfirm) is an `auth.sessions` row with a legacy
12-character refresh token in `auth.refresh_tokens`; `grant_type=refresh_token` rotates it; `/logout`
deletes sessions; access tokens are HS256 with the JWT secret, or ES256 with a `kid` when a signing key
is given (then `/.well-known/jwks.json` publishes it).

Not covered: phone, OTP, PKCE / id_token / web3 grants, v2 (session-signed) refresh tokens, the session
timebox / inactivity timeout / single-session-per-user settings, MFA (no `mfa_amr_claims`: a token's
`amr` is its session's password sign-in), SSO, OAuth-server sessions, e-mail sending, captcha, the audit
log, `Sb-Forwarded-For`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import json
import random
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, cast
from urllib.parse import parse_qs, urlsplit

import bcrypt
import jwt
import psycopg
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from psycopg import errors as pg_errors
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from auth_migration.clock import Clock, system_clock
from auth_migration_ops.datakit.supabase_data import create_supabase_schema
from auth_migration_ops.standins.quiet_server import QuietThreadingHTTPServer

__all__ = [
    "DEFAULT_JWT_SECRET",
    "DEFAULT_SIGNING_KID",
    "Faults",
    "GoTrueStandIn",
    "LoggedRequest",
    "decode_jwt",
    "sign_jwt",
]

#: The well-known local-development JWT secret of the Supabase CLI: a test value, never a real one.
DEFAULT_JWT_SECRET: Final = "super-secret-jwt-token-with-at-least-32-characters-long"  # noqa: S105
#: The `kid` of the ES256 signing key when the caller names none (GoTrue takes it from GOTRUE_JWT_KEYS).
DEFAULT_SIGNING_KID: Final = "gotrue-standin-es256"

_AUD: Final = "authenticated"
_INSTANCE_ID: Final = "00000000-0000-0000-0000-000000000000"
_ADMIN_ROLES: Final = frozenset({"service_role", "supabase_admin"})
_API_VERSION_HEADER: Final = "X-Supabase-Api-Version"
_API_VERSION_2024: Final = "2024-01-01"
_MAX_BODY: Final = 1 << 20
_BCRYPT_MAX_BYTES: Final = 72
_EMAIL_MAX: Final = 255
# GoTrue's own check is a permissive regexp on the whole address (internal/api/mail.go validateEmail).
_EMAIL_RE: Final = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)
_BCRYPT_HASH_RE: Final = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")
_ADMIN_USER_PATH_RE: Final = re.compile(r"^/admin/users/([^/]+)$")
_JWKS_PATH: Final = "/.well-known/jwks.json"
_NIL_UUID: Final = "00000000-0000-0000-0000-000000000000"
# models.createRefreshToken: crypto.SecureAlphanumeric(12), lowercase base32 (a-z, 2-7); the grant accepts
# a 12-character token only if it matches RefreshTokenGrantParams' legacyRefreshTokenPattern.
_REFRESH_TOKEN_LENGTH: Final = 12
_LEGACY_REFRESH_TOKEN_RE: Final = re.compile(r"^[a-z0-9]{12}$")
_LOGOUT_SCOPES: Final = frozenset({"global", "local", "others"})
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

_USER_COLUMNS: Final = (
    "id, aud, role, email, email_confirmed_at, phone, phone_confirmed_at, confirmed_at, last_sign_in_at,"
    " raw_app_meta_data, raw_user_meta_data, created_at, updated_at, banned_until, is_anonymous"
)


# --- JWT (HS256 with GOTRUE_JWT_SECRET; ES256 with a signing key from GOTRUE_JWT_KEYS) -------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_jwt(claims: Mapping[str, Any], secret: str) -> str:
    """An HS256 JWT of `claims` signed with `secret`."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


def decode_jwt(token: str, secret: str, *, now: float | None = None) -> dict[str, Any] | None:
    """The claims of an HS256 `token` signed with `secret` and not expired; None when it is not valid."""
    claims = _hs256_claims(token, secret)
    if claims is None:
        return None
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp < (time.time() if now is None else now):
        return None
    return claims


def _hs256_claims(token: str, secret: str) -> dict[str, Any] | None:
    """The claims of an HS256 `token` whose signature `secret` verifies (expiry not judged), else None."""
    try:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = json.loads(_b64url_decode(header_b64))
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            return None
        expected = hmac.new(secret.encode(), f"{header_b64}.{payload_b64}".encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _b64url_decode(signature_b64)):
            return None
        claims = json.loads(_b64url_decode(payload_b64))
    except (ValueError, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _secure_alphanumeric(length: int) -> str:
    """GoTrue's crypto.SecureAlphanumeric: random bytes in lowercase unpadded base32, cut to `length`."""
    data = secrets.token_bytes((length * 5 + 7) // 8)
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()[:length]


@dataclass(frozen=True, slots=True)
class _Client:
    """What GoTrue records of the caller on a session (models.GrantParams.FillGrantParams)."""

    user_agent: str
    ip: str

    @classmethod
    def of(cls, headers: Any, remote_host: str) -> _Client:
        return cls(user_agent=headers.get("User-Agent") or "", ip=_client_ip(headers, remote_host))


def _client_ip(headers: Any, remote_host: str) -> str:
    """utilities.GetIPAddress without Sb-Forwarded-For (off by default): the first entry of
    X-Forwarded-For that parses as an IP, else the connection's address."""
    for entry in (headers.get("X-Forwarded-For") or "").split(","):
        try:
            parsed = ipaddress.ip_address(entry.strip())
        except ValueError:
            continue
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.scope_id is not None:
            continue  # Go's net.ParseIP refuses a zoned address (and inet cannot hold one)
        # Go's net.IP.String() writes an IPv4-mapped IPv6 address as plain IPv4.
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(parsed)
    return remote_host


# --- faults --------------------------------------------------------------------------------------------


@dataclass
class Faults:
    """What the stand-in does wrong, settable while it runs (each request reads the current values).

    Attributes:
        fail_rate: share of requests (0..1) answered `fail_status` instead of being served.
        fail_status: the status a failed request gets (500 or 503).
        delay_s: seconds to sleep before answering anything (a slow or hung GoTrue).
        rate_limited: answer every request 429 `over_request_rate_limit`.
        down: close every connection without answering (a crashed GoTrue behind a proxy).
        paths: only requests whose path is listed get faults; None means every path.
        rate_limit_share: share of requests (0..1) answered 429 `over_request_rate_limit`, as GoTrue's
            limiter does under load (the draw is seeded like fail_rate's).
        retry_after: the Retry-After header of every 429, in seconds (GoTrue's limiter sends one).
    """

    fail_rate: float = 0.0
    fail_status: int = 500
    delay_s: float = 0.0
    rate_limited: bool = False
    down: bool = False
    paths: frozenset[str] | None = None
    rate_limit_share: float = 0.0
    retry_after: str = "1"

    def reset(self) -> None:
        """Back to a healthy server."""
        self.fail_rate, self.fail_status, self.delay_s = 0.0, 500, 0.0
        self.rate_limited = self.down = False
        self.paths = None
        self.rate_limit_share, self.retry_after = 0.0, "1"

    def applies_to(self, path: str) -> bool:
        return self.paths is None or path in self.paths


# --- errors as GoTrue writes them ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request the stand-in answered: when it arrived (time.monotonic()), what, and the status
    (0 = connection dropped). Tests prove from these what was or was not called, and how fast."""

    at: float
    method: str
    path: str
    status: int
    #: The `id` of an admin-create body, else None.
    user_id: str | None = None


class _ApiError(Exception):
    """An HTTPError of GoTrue: a status, an error_code and a message (never echoing a secret)."""

    def __init__(self, status: int, error_code: str, message: str, *, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.extra = dict(extra or {})


class _OAuthError(Exception):
    """GoTrue's OAuthError: always 400 `{"error", "error_description"}` (grant-type problems)."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(error)
        self.error = error
        self.description = description


class _DropConnection(Exception):
    """Close the connection without writing a reply."""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _user_json(row: Mapping[str, Any], identities: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A user as GoTrue's models.User marshals it (the fields clients read)."""
    return {
        "id": str(row["id"]),
        "aud": row["aud"] or "",
        "role": row["role"] or "",
        "email": row["email"] or "",
        "email_confirmed_at": _iso(row["email_confirmed_at"]),
        "phone": row["phone"] or "",
        "phone_confirmed_at": _iso(row["phone_confirmed_at"]),
        "confirmed_at": _iso(row["confirmed_at"]),
        "last_sign_in_at": _iso(row["last_sign_in_at"]),
        "app_metadata": row["raw_app_meta_data"] or {},
        "user_metadata": row["raw_user_meta_data"] or {},
        "identities": [
            {
                "identity_id": str(identity["id"]),
                "id": identity["provider_id"],
                "user_id": str(identity["user_id"]),
                "identity_data": identity["identity_data"],
                "provider": identity["provider"],
                "last_sign_in_at": _iso(identity["last_sign_in_at"]),
                "created_at": _iso(identity["created_at"]),
                "updated_at": _iso(identity["updated_at"]),
                "email": identity["email"],
            }
            for identity in identities
        ],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "is_anonymous": bool(row["is_anonymous"]),
        # models.User: `banned_until,omitempty`.
        **({"banned_until": _iso(row["banned_until"])} if row["banned_until"] is not None else {}),
    }


def _validate_email(value: Any) -> str:
    """GoTrue's validateEmail: required, at most 255 chars, a plausible address; returned lowercased."""
    if not isinstance(value, str) or not value.strip():
        raise _ApiError(400, "validation_failed", "An email address is required")
    email = value.strip()
    if len(email) > _EMAIL_MAX:
        raise _ApiError(400, "validation_failed", "An email address is too long")
    if not _EMAIL_RE.match(email):
        raise _ApiError(400, "validation_failed", "Unable to validate email address: invalid format")
    return email.lower()


# --- the server ----------------------------------------------------------------------------------------


class GoTrueStandIn:
    """A GoTrue-compatible HTTP server on 127.0.0.1 over a real `auth` schema; a context manager.

    Parameters:
        database_url: the Postgres database holding (or to hold) `auth.users` / `auth.identities`.
        jwt_secret: GOTRUE_JWT_SECRET: signs the anon / service_role keys, and access tokens unless
            `signing_key` is given; bearer tokens signed with it are always accepted (a project moved to
            asymmetric keys keeps its legacy secret as a verification key).
        signing_key: an ES256 (P-256) private key, as GOTRUE_JWT_KEYS holds one: access tokens are then
            ES256 with `kid` = `signing_kid` in the header, and `/.well-known/jwks.json` publishes its
            public half. None (the default): HS256 with `jwt_secret` and an empty JWKS, as GoTrue does.
        signing_kid: the signing key's `kid`.
        refresh_token_reuse_interval: GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL, in seconds (GoTrue's
            default 0): how long after its rotation a revoked refresh token still refreshes.
        service_key: the service_role key to hand out; one is signed with `jwt_secret` when None.
        autoconfirm: GOTRUE_MAILER_AUTOCONFIRM: signup confirms the email and returns a session
            (as a local Supabase does); when False signup returns the bare user and password sign-in
            answers `email_not_confirmed` until an admin confirms the email.
        password_min_length: GOTRUE_PASSWORD_MIN_LENGTH (GoTrue's default is 6).
        jwt_exp: GOTRUE_JWT_EXP, access-token lifetime in seconds.
        create_schema: create `auth.users` / `auth.identities` on start (idempotent).
        seed: seeds the random draw behind `faults.fail_rate`, so a fault test is reproducible.
        clock: what the server takes for "now" (token iat/exp, bans, sign-in and confirmation stamps,
            session and refresh-token times, the reuse interval); the wall clock, as GoTrue's, unless a
            test pins it.
    """

    def __init__(
        self,
        database_url: str,
        *,
        jwt_secret: str = DEFAULT_JWT_SECRET,
        service_key: str | None = None,
        autoconfirm: bool = True,
        password_min_length: int = 6,
        jwt_exp: int = 3600,
        create_schema: bool = True,
        seed: int | None = None,
        clock: Clock = system_clock,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
        signing_kid: str = DEFAULT_SIGNING_KID,
        refresh_token_reuse_interval: int = 0,
    ) -> None:
        if signing_key is not None and not (
            isinstance(signing_key, ec.EllipticCurvePrivateKey) and isinstance(signing_key.curve, ec.SECP256R1)
        ):
            raise ValueError("signing_key must be an EC private key on P-256 (ES256)")
        if not signing_kid:
            raise ValueError("signing_kid must not be empty")
        self.clock = clock
        self.signing_key = signing_key
        self.signing_kid = signing_kid
        self.refresh_token_reuse_interval = refresh_token_reuse_interval
        self.database_url = database_url
        self.jwt_secret = jwt_secret
        self.autoconfirm = autoconfirm
        self.password_min_length = password_min_length
        self.jwt_exp = jwt_exp
        self.create_schema = create_schema
        self.faults = Faults()
        #: (method, path, status) of every request answered, in order; status 0 = connection dropped.
        self.calls: list[tuple[str, str, int]] = []
        #: Every request answered, with its arrival time: the request log tests read.
        self.request_log: list[LoggedRequest] = []
        #: TCP connections accepted so far (tests of client connection reuse read it).
        self.connections_accepted = 0
        #: Requests received, faulty or not: tests check which system a route never asked.
        self.requests_received = 0
        issued = int(self.clock().timestamp())
        far = issued + 10 * 365 * 24 * 3600
        self.anon_key = sign_jwt({"iss": "supabase-demo", "role": "anon", "iat": issued, "exp": far}, jwt_secret)
        self.service_key = service_key or sign_jwt(
            {"iss": "supabase-demo", "role": "service_role", "iat": issued, "exp": far}, jwt_secret
        )
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._pool: ConnectionPool[Any] | None = None

    # --- lifecycle ---

    @property
    def url(self) -> str:
        """Base URL (what SUPABASE_URL points at, minus Kong's `/auth/v1` prefix)."""
        if self._server is None:
            raise RuntimeError("the GoTrue stand-in has no address until start()")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the GoTrue stand-in has no port until start()")
        return int(self._server.server_address[1])

    def start(self) -> GoTrueStandIn:
        """Create the schema (unless told not to), bind a free port on 127.0.0.1 and serve in a thread."""
        if self._server is not None:
            raise RuntimeError("this GoTrue stand-in is already started")
        if self.create_schema:
            create_supabase_schema(self.database_url)
        self._stopping.clear()
        self._pool = ConnectionPool(
            self.database_url,
            kwargs={"row_factory": dict_row},
            min_size=1,
            max_size=32,
            name="gotrue-standin",
            open=True,
        )
        server = QuietThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        # Request threads may be sleeping in an injected delay: they must not keep the process alive.
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="gotrue-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (requests sleeping in a delay are woken and dropped)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=5)

    def __enter__(self) -> GoTrueStandIn:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- tokens ---

    def access_token(self, user: Mapping[str, Any], *, session_id: str | None = None) -> tuple[str, int]:
        """An access token for `user` (a user JSON) and its expiry (epoch seconds), signed as the server signs.

        `session_id` goes into the `session_id` claim: pass a session's id (from a sign-in or an
        `auth.sessions` row) for a token GoTrue would issue. Without one the claim is left out (GoTrue's
        `omitempty`): /user and the admin routes then skip the session check, and /logout with it signs the
        user out everywhere, as GoTrue does for a token whose session_id claim is empty.
        """
        return self._access_token(user, session_id=session_id, signed_in_at=None)

    def _access_token(
        self, user: Mapping[str, Any], *, session_id: str | None, signed_in_at: datetime | None
    ) -> tuple[str, int]:
        issued = int(self.clock().timestamp())
        expires_at = issued + self.jwt_exp
        # The amr entry is the session's password claim (mfa_amr_claims): its time is the sign-in's, so a
        # refreshed token keeps the original instant.
        amr_at = issued if signed_in_at is None else int(signed_in_at.timestamp())
        claims: dict[str, Any] = {
            "aud": _AUD,
            "exp": expires_at,
            "iat": issued,
            "iss": f"{self.url}/auth/v1",
            "sub": user["id"],
            "email": user["email"],
            "phone": user["phone"],
            "app_metadata": user["app_metadata"],
            "user_metadata": user["user_metadata"],
            "role": _AUD,
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": amr_at}],
            **({"session_id": session_id} if session_id else {}),
            "is_anonymous": False,
        }
        return self._sign(claims), expires_at

    def _sign(self, claims: Mapping[str, Any]) -> str:
        """tokens.SignJWT: the signing JWK's algorithm, its kid in the header (the HS256 secret has none)."""
        if self.signing_key is None:
            return sign_jwt(claims, self.jwt_secret)
        return jwt.encode(dict(claims), self.signing_key, algorithm="ES256", headers={"kid": self.signing_kid})

    def jwks(self) -> dict[str, Any]:
        """The JWKS document `/.well-known/jwks.json` serves: the ES256 public key, or no key at all when only
        the symmetric secret exists (jwks.go never exposes an oct key)."""
        if self.signing_key is None:
            return {"keys": []}
        public = ECAlgorithm.to_jwk(self.signing_key.public_key(), as_dict=True)
        # conf.JwtKeysDecoder: every public key gets use "sig" and key_ops ["verify"].
        key = {**public, "kid": self.signing_kid, "alg": "ES256", "use": "sig", "key_ops": ["verify"]}
        return {"keys": [dict(sorted(key.items()))]}

    def revoke_session(self, session_id: str) -> None:
        """End a session as an admin sign-out does: delete its `auth.sessions` row (its refresh tokens go by
        cascade). Its access tokens then answer 403 `session_not_found`; its refresh tokens
        `refresh_token_not_found`."""
        if not _is_uuid(session_id):
            raise ValueError(f"not a session id: {session_id!r}")
        with self._connect() as conn:
            conn.execute("DELETE FROM auth.sessions WHERE id = %s", (session_id,))

    def _token_reply(
        self, user: dict[str, Any], *, session_id: str, refresh_token: str, signed_in_at: datetime
    ) -> dict[str, Any]:
        """tokens.AccessTokenResponse (password, signup and refresh grants alike)."""
        token, expires_at = self._access_token(user, session_id=session_id, signed_in_at=signed_in_at)
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.jwt_exp,
            "expires_at": expires_at,
            "refresh_token": refresh_token,
            "user": user,
        }

    def _grant_session(
        self, conn: psycopg.Connection[dict[str, Any]], user_id: str, client: _Client
    ) -> tuple[str, str, datetime]:
        """models.GrantAuthenticatedUser with the default legacy refresh tokens: a new `auth.sessions` row
        (aal1, the caller's user agent and address), its first refresh token (no parent) and the sign-in
        stamps, in one transaction. Returns (session id, refresh token, the sign-in instant)."""
        now = self.clock()
        session_id = str(uuid.uuid4())
        refresh_token = _secure_alphanumeric(_REFRESH_TOKEN_LENGTH)
        with conn.transaction():
            conn.execute(
                "INSERT INTO auth.sessions (id, user_id, created_at, updated_at, factor_id, aal, user_agent, ip)"
                " VALUES (%s, %s, %s, %s, NULL, 'aal1', %s, %s::inet)",
                (session_id, user_id, now, now, client.user_agent or None, client.ip or None),
            )
            conn.execute(
                "INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at,"
                " parent, session_id) VALUES (%s, %s, %s, false, %s, %s, NULL, %s)",
                (_INSTANCE_ID, refresh_token, user_id, now, now, session_id),
            )
            self._touch_sign_in(conn, user_id)
        return session_id, refresh_token, now

    # --- faults ---

    def _draw_failure(self, fail_rate: float) -> bool:
        with self._lock:
            return self._rng.random() < fail_rate

    def _apply_faults(self, path: str) -> None:
        faults = self.faults
        if not faults.applies_to(path):
            return
        if faults.delay_s > 0:
            self._stopping.wait(faults.delay_s)
        if faults.down or self._stopping.is_set():
            raise _DropConnection
        if faults.rate_limited or (faults.rate_limit_share > 0 and self._draw_failure(faults.rate_limit_share)):
            raise _ApiError(429, "over_request_rate_limit", "Request rate limit reached")
        if faults.fail_rate > 0 and self._draw_failure(faults.fail_rate):
            if faults.fail_status == HTTPStatus.SERVICE_UNAVAILABLE:
                raise _ApiError(503, "unexpected_failure", "Service Unavailable")
            raise _ApiError(
                faults.fail_status,
                "unexpected_failure",
                "Unexpected failure, please check server logs for more information",
            )

    # --- data access ---

    @contextlib.contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A connection from the pool while serving (one transaction, committed on success), else a
        connection of its own."""
        pool = self._pool
        if pool is None:
            with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
                yield conn
            return
        with pool.connection() as conn:
            yield cast("psycopg.Connection[dict[str, Any]]", conn)

    def _load_user(self, conn: psycopg.Connection[dict[str, Any]], where: str, value: Any) -> dict[str, Any] | None:
        row = conn.execute(
            f"SELECT {_USER_COLUMNS}, encrypted_password FROM auth.users WHERE {where} LIMIT 1",  # trusted fragments
            (value,),
        ).fetchone()
        if row is None:
            return None
        identities = conn.execute(
            "SELECT id, provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at, email"
            " FROM auth.identities WHERE user_id = %s ORDER BY created_at",
            (row["id"],),
        ).fetchall()
        user = _user_json(row, identities)
        user["_encrypted_password"] = row["encrypted_password"] or ""
        user["_banned_until"] = row["banned_until"]
        return user

    def _user_by_email(self, conn: psycopg.Connection[dict[str, Any]], email: str) -> dict[str, Any] | None:
        # GoTrue's FindUserByEmailAndAudience: case-insensitive, SSO users excluded.
        return self._load_user(
            conn, "lower(email) = lower(%s) AND is_sso_user = false AND aud = 'authenticated'", email
        )

    def _user_by_id(self, conn: psycopg.Connection[dict[str, Any]], user_id: str) -> dict[str, Any] | None:
        return self._load_user(conn, "id = %s", user_id)

    def _check_password(self, password: Any) -> str:
        if not isinstance(password, str) or password == "":
            raise _ApiError(422, "validation_failed", "Signup requires a valid password")
        if len(password) < self.password_min_length:
            raise _ApiError(
                422,
                "weak_password",
                f"Password should be at least {self.password_min_length} characters.",
                extra={"weak_password": {"reasons": ["length"]}},
            )
        if len(password.encode()) > _BCRYPT_MAX_BYTES:
            raise _ApiError(400, "validation_failed", "bcrypt: password length exceeds 72 bytes")
        return password

    def _insert_user(
        self,
        conn: psycopg.Connection[dict[str, Any]],
        *,
        user_id: str,
        email: str,
        encrypted_password: str,
        confirmed: bool,
        user_metadata: Mapping[str, Any],
        app_metadata: Mapping[str, Any],
        duplicate_code: str,
        duplicate_message: str,
        duplicate_status: int = 422,
        banned_until: datetime | None = None,
    ) -> dict[str, Any]:
        """Insert the user and its `email` identity in one transaction; a taken email or id is answered
        `duplicate_status` (admin create: GoTrue's 500, its tx.Create failing inside the transaction)."""
        now = self.clock()
        # GoTrue sets provider/providers first, then merges the admin's app_metadata over them
        # (adminUserCreate: user.UpdateAppMetaData), so a migration's "provider" wins.
        app_meta = {"provider": "email", "providers": ["email"], **app_metadata}
        identity_data = {"sub": user_id, "email": email, "email_verified": confirmed, "phone_verified": False}
        try:
            with conn.transaction():
                conn.execute(
                    "INSERT INTO auth.users (instance_id, id, aud, role, email, encrypted_password,"
                    " email_confirmed_at, raw_app_meta_data, raw_user_meta_data, is_super_admin, created_at,"
                    " updated_at, confirmation_token, recovery_token, email_change_token_new, email_change,"
                    " email_change_token_current, reauthentication_token, phone_change, phone_change_token,"
                    " banned_until)"
                    " VALUES (%s, %s, 'authenticated', 'authenticated', %s, %s, %s, %s, %s, false, %s, %s,"
                    " '', '', '', '', '', '', '', '', %s)",
                    (
                        _INSTANCE_ID,
                        user_id,
                        email,
                        encrypted_password,
                        now if confirmed else None,
                        Jsonb(app_meta),
                        Jsonb(dict(user_metadata)),
                        now,
                        now,
                        banned_until,
                    ),
                )
                conn.execute(
                    "INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, created_at,"
                    " updated_at) VALUES (%s, %s, %s, 'email', %s, %s)",
                    (user_id, user_id, Jsonb(identity_data), now, now),
                )
        except pg_errors.UniqueViolation as exc:
            # A concurrent signup with the same email (or a reused id) loses the race on the index.
            raise _ApiError(duplicate_status, duplicate_code, duplicate_message) from exc
        user = self._user_by_id(conn, user_id)
        if user is None:  # pragma: no cover - just inserted in this connection
            raise _ApiError(500, "unexpected_failure", "Database error saving new user")
        return user

    # --- endpoints ---

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        headers: Any,
        body: bytes,
        client_address: str = "",
    ) -> tuple[int, Any]:
        """Serve one request: (status, JSON body; None for a 204). `client_address` is the peer's IP (what a
        session records when X-Forwarded-For names none). Raises _ApiError / _OAuthError / _DropConnection."""
        with self._lock:
            self.requests_received += 1
        self._apply_faults(path)
        client = _Client.of(headers, client_address)
        route: Callable[[], tuple[int, Any]] | None = None
        if method == "GET" and path == "/health":
            route = self._health
        elif method == "GET" and path == _JWKS_PATH:
            route = lambda: (200, self.jwks())  # noqa: E731
        elif method == "POST" and path == "/signup":
            route = lambda: self._signup(_json_body(body), client)  # noqa: E731
        elif method == "POST" and path == "/token":
            route = lambda: self._token(query, _json_body(body), client)  # noqa: E731
        elif method == "POST" and path == "/logout":
            route = lambda: self._logout(headers, query)  # noqa: E731
        elif method == "GET" and path == "/user":
            route = lambda: self._get_user(headers)  # noqa: E731
        elif path == "/admin/users" and method == "POST":
            route = lambda: self._admin_create(headers, _json_body(body))  # noqa: E731
        elif path == "/admin/users" and method == "GET":
            route = lambda: self._admin_list(headers, query)  # noqa: E731
        elif (match := _ADMIN_USER_PATH_RE.match(path)) and method in ("GET", "DELETE", "PUT"):
            user_id = match.group(1)
            route = lambda: self._admin_user(headers, method, user_id, body)  # noqa: E731
        if route is None:
            raise _ApiError(404, "not_found", "Not Found")
        return route()

    def _health(self) -> tuple[int, Any]:
        return 200, {
            "version": "stand-in",
            "name": "GoTrue",
            "description": "GoTrue is a user registration and authentication API",
        }

    def _signup(self, params: Mapping[str, Any], client: _Client) -> tuple[int, Any]:
        email = _validate_email(params.get("email"))
        password = self._check_password(params.get("password"))
        data = params.get("data") or {}
        if not isinstance(data, dict):
            raise _ApiError(400, "bad_json", "Could not parse request body as JSON: data must be an object")
        encrypted = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10, prefix=b"2a")).decode()
        with self._connect() as conn:
            if self._user_by_email(conn, email) is not None:
                raise _ApiError(422, "user_already_exists", "User already registered")
            user = self._insert_user(
                conn,
                user_id=str(uuid.uuid4()),
                email=email,
                encrypted_password=encrypted,
                confirmed=self.autoconfirm,
                user_metadata=data,
                app_metadata={},
                duplicate_code="user_already_exists",
                duplicate_message="User already registered",
            )
            if not self.autoconfirm:
                return 200, _public(user)
            # signup.go issues the session in the transaction that created the user (one request, one
            # transaction here too: the pool's connection commits when the request succeeds).
            session_id, refresh_token, signed_in_at = self._grant_session(conn, user["id"], client)
            user = self._user_by_id(conn, user["id"]) or user
        return 200, self._token_reply(
            _public(user), session_id=session_id, refresh_token=refresh_token, signed_in_at=signed_in_at
        )

    def _token(self, query: Mapping[str, list[str]], params: Mapping[str, Any], client: _Client) -> tuple[int, Any]:
        grant_type = (query.get("grant_type") or [""])[0]
        if grant_type == "refresh_token":
            return self._refresh_grant(params, client)
        if grant_type != "password":
            raise _OAuthError("unsupported_grant_type")
        raw_email = params.get("email")
        if not isinstance(raw_email, str) or not raw_email:
            raise _ApiError(400, "validation_failed", "missing email or phone")
        password = params.get("password")
        with self._connect() as conn:
            user = self._user_by_email(conn, raw_email.strip())
            # Unknown user, no password and wrong password all answer the same, as GoTrue does.
            if user is None or not user["_encrypted_password"]:
                raise _ApiError(400, "invalid_credentials", "Invalid login credentials")
            banned = user["_banned_until"]
            if banned is not None and banned > self.clock():
                raise _ApiError(400, "user_banned", "User is banned")
            if not _password_matches(password, user["_encrypted_password"]):
                raise _ApiError(400, "invalid_credentials", "Invalid login credentials")
            if user["email_confirmed_at"] is None:
                raise _ApiError(400, "email_not_confirmed", "Email not confirmed")
            session_id, refresh_token, signed_in_at = self._grant_session(conn, user["id"], client)
            user = self._user_by_id(conn, user["id"]) or user
        return 200, self._token_reply(
            _public(user), session_id=session_id, refresh_token=refresh_token, signed_in_at=signed_in_at
        )

    def _refresh_grant(self, params: Mapping[str, Any], client: _Client) -> tuple[int, Any]:
        """RefreshTokenGrant (tokens.Service) for legacy refresh tokens, with GoTrue's defaults: rotation on
        (GOTRUE_SECURITY_REFRESH_TOKEN_ROTATION_ENABLED), reuse interval `refresh_token_reuse_interval`
        (default 0 s), no timebox / inactivity timeout / single session per user.

        A revoked token that is the parent of the session's active token (the client lost the last reply)
        gets that active token back; any other revoked token refreshes only within the reuse interval after
        its revocation. Past it, every refresh token of the session is revoked (models.RevokeTokenFamily;
        GoTrue deletes the session itself only for v2 tokens, so the session row and its access tokens
        stay) and the reply is 400 `refresh_token_already_used`, committed with the revocation.
        """
        raw = params.get("refresh_token")
        if raw is not None and not isinstance(raw, str):
            raise _ApiError(400, "bad_json", "Could not parse request body as JSON: refresh_token must be a string")
        presented = raw or ""
        # RefreshTokenGrantParams.Validate: shorter than 12 (missing included), 12 outside [a-z0-9], or longer
        # and not a v2 token (this stand-in issues none, so no longer token can parse).
        if len(presented) != _REFRESH_TOKEN_LENGTH or not _LEGACY_REFRESH_TOKEN_RE.match(presented):
            raise _ApiError(400, "validation_failed", "Refresh token is not valid")
        now = self.clock()
        with self._connect() as conn:
            # GoTrue locks with FOR UPDATE SKIP LOCKED and retries for up to 5 s (then 409); waiting on the
            # lock gives a concurrent refresh the same outcome: it finds the token revoked and its child active.
            token = conn.execute(
                "SELECT id, token, user_id, revoked, updated_at, parent, session_id FROM auth.refresh_tokens"
                " WHERE token = %s LIMIT 1 FOR UPDATE",
                (presented,),
            ).fetchone()
            user = None
            if token is not None and _is_uuid(token["user_id"] or ""):
                user = self._user_by_id(conn, token["user_id"])
            # A deleted user's tokens are gone with its sessions; FindUserByID failing is the same 400.
            if token is None or user is None:
                raise _ApiError(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
            banned = user["_banned_until"]
            if banned is not None and banned > now:
                raise _ApiError(400, "user_banned", "Invalid Refresh Token: User Banned")
            session = None
            if token["session_id"] is not None and str(token["session_id"]) != _NIL_UUID:
                session = conn.execute(
                    "SELECT id, created_at, not_after FROM auth.sessions WHERE id = %s FOR UPDATE",
                    (token["session_id"],),
                ).fetchone()
            if session is None:
                # A token from before the sessions table: GoTrue deletes it, then refuses.
                conn.execute("DELETE FROM auth.refresh_tokens WHERE id = %s", (token["id"],))
                conn.commit()
                raise _ApiError(400, "session_not_found", "Invalid Refresh Token: No Valid Session Found")
            if session["not_after"] is not None and now > session["not_after"]:
                raise _ApiError(400, "session_expired", "Invalid Refresh Token: Session Expired")
            issued: str | None = None
            if token["revoked"]:
                active = conn.execute(
                    "SELECT token, parent FROM auth.refresh_tokens WHERE session_id = %s AND revoked IS false"
                    " ORDER BY id DESC LIMIT 1",
                    (session["id"],),
                ).fetchone()
                if active is not None and active["parent"] == token["token"]:
                    issued = active["token"]
                elif now > (token["updated_at"] or _EPOCH) + timedelta(seconds=self.refresh_token_reuse_interval):
                    conn.execute(
                        "UPDATE auth.refresh_tokens SET revoked = true, updated_at = %s"
                        " WHERE session_id = %s AND revoked = false",
                        (now, session["id"]),
                    )
                    conn.commit()  # storage.NewCommitWithError: the revocation stands, the request fails
                    raise _ApiError(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used")
            if issued is None:
                # models.GrantRefreshTokenSwap: revoke the presented token, issue its child in the same session.
                issued = _secure_alphanumeric(_REFRESH_TOKEN_LENGTH)
                conn.execute(
                    "UPDATE auth.refresh_tokens SET revoked = true, updated_at = %s WHERE id = %s", (now, token["id"])
                )
                conn.execute(
                    "INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at,"
                    " parent, session_id) VALUES (%s, %s, %s, false, %s, %s, %s, %s)",
                    (_INSTANCE_ID, issued, user["id"], now, now, token["token"], session["id"]),
                )
                # createRefreshToken stamps the sign-in on every swap.
                conn.execute("UPDATE auth.users SET last_sign_in_at = %s WHERE id = %s", (now, user["id"]))
            # Session.UpdateOnlyRefreshInfo: refreshed_at is a timestamp without time zone, written in UTC.
            conn.execute(
                "UPDATE auth.sessions SET refreshed_at = %s, user_agent = %s, ip = %s::inet, updated_at = %s"
                " WHERE id = %s",
                (
                    now.astimezone(UTC).replace(tzinfo=None),
                    client.user_agent or None,
                    client.ip or None,
                    now,
                    session["id"],
                ),
            )
            user = self._user_by_id(conn, user["id"]) or user
        return 200, self._token_reply(
            _public(user), session_id=str(session["id"]), refresh_token=issued, signed_in_at=session["created_at"]
        )

    def _logout(self, headers: Any, query: Mapping[str, list[str]]) -> tuple[int, Any]:
        """POST /logout (requireAuthentication, then Logout): scope global (GoTrue's default), local or
        others; a token without a session_id claim signs the user out everywhere. 204 without a body."""
        _, user, session = self._authenticate(headers)
        scope = (query.get("scope") or [""])[0] or "global"
        if scope not in _LOGOUT_SCOPES:
            raise _ApiError(400, "validation_failed", f"Unsupported logout scope {json.dumps(scope)}")
        with self._connect() as conn:
            if session is not None and scope == "local":
                conn.execute("DELETE FROM auth.sessions WHERE id = %s", (session["id"],))
            elif session is not None and scope == "others":
                conn.execute("DELETE FROM auth.sessions WHERE id != %s AND user_id = %s", (session["id"], user["id"]))
            else:
                conn.execute("DELETE FROM auth.sessions WHERE user_id = %s", (user["id"],))
        return 204, None

    def _touch_sign_in(self, conn: psycopg.Connection[dict[str, Any]], user_id: str) -> None:
        with conn.transaction():
            now = self.clock()
            conn.execute("UPDATE auth.users SET last_sign_in_at = %s WHERE id = %s", (now, user_id))
            conn.execute(
                "UPDATE auth.identities SET last_sign_in_at = %s WHERE user_id = %s AND provider = 'email'",
                (now, user_id),
            )

    def _claims(self, headers: Any) -> dict[str, Any]:
        authorization = headers.get("Authorization") or ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _ApiError(401, "no_authorization", "This endpoint requires a valid Bearer token")
        return self._verify(token.strip())

    def _verify(self, token: str) -> dict[str, Any]:
        """parseJWTClaims: a `kid` naming the signing key selects its public key (ES256), otherwise an HS256
        token is checked with the JWT secret; anything else is refused. Expired means now >= exp (jwt-go)."""

        def refused(reason: str) -> _ApiError:
            return _ApiError(403, "bad_jwt", f"invalid JWT: unable to parse or verify signature, {reason}")

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise refused("token is malformed: could not JSON decode header") from exc
        kid, alg = header.get("kid"), header.get("alg")
        claims: dict[str, Any] | None
        if self.signing_key is not None and kid == self.signing_kid:
            try:
                claims = jwt.decode(
                    token,
                    self.signing_key.public_key(),
                    algorithms=["ES256"],
                    # Expiry is judged below against the server's clock; GoTrue checks no audience.
                    options={"verify_exp": False, "verify_aud": False, "verify_iat": False, "verify_nbf": False},
                )
            except jwt.PyJWTError as exc:
                raise refused("token signature is invalid: crypto/ecdsa: verification error") from exc
        elif alg == "HS256":
            claims = _hs256_claims(token, self.jwt_secret)
            if claims is None:
                raise refused("token signature is invalid: signature is invalid")
        else:
            shown_kid = "<nil>" if kid is None else kid
            raise refused(
                f"token is unverifiable: error while executing keyfunc: unrecognized JWT kid {shown_kid}"
                f" for algorithm {alg}"
            )
        exp = claims.get("exp")
        if isinstance(exp, int | float) and self.clock().timestamp() >= exp:
            raise refused("token has invalid claims: token is expired")
        return claims

    def _load_user_and_session(self, claims: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """maybeLoadUserOrSession: the sub claim's user, and the session_id claim's session when it names one."""
        subject = claims.get("sub")
        if not subject:
            raise _ApiError(403, "bad_jwt", "invalid claim: missing sub claim")
        if not isinstance(subject, str) or not _is_uuid(subject):
            raise _ApiError(400, "bad_jwt", "invalid claim: sub claim must be a UUID")
        session_id = claims.get("session_id")
        with self._connect() as conn:
            user = self._user_by_id(conn, subject)
            if user is None:
                raise _ApiError(403, "user_not_found", "User from sub claim in JWT does not exist")
            if not session_id or session_id == _NIL_UUID:
                return user, None
            if not isinstance(session_id, str) or not _is_uuid(session_id):
                raise _ApiError(403, "bad_jwt", "invalid claim: session_id claim must be a UUID")
            session = conn.execute(
                "SELECT id, user_id, created_at, not_after FROM auth.sessions WHERE id = %s", (session_id,)
            ).fetchone()
        if session is None:
            raise _ApiError(403, "session_not_found", "Session from session_id claim in JWT does not exist")
        return user, session

    def _authenticate(self, headers: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
        """requireAuthentication (/user, /logout): a verified token, its user and session, the user not banned."""
        claims = self._claims(headers)
        user, session = self._load_user_and_session(claims)
        banned = user["_banned_until"]
        if banned is not None and banned > self.clock():
            raise _ApiError(403, "user_banned", "User is banned")
        return claims, user, session

    def _require_admin(self, headers: Any) -> None:
        """requireAdminCredentials: a token naming a session must name a live, valid one; then the role."""
        claims = self._claims(headers)
        session_id = claims.get("session_id")
        if session_id and session_id != _NIL_UUID:
            _, session = self._load_user_and_session(claims)
            if session is not None and session["not_after"] is not None and self.clock() > session["not_after"]:
                raise _ApiError(403, "session_expired", "Session is no longer valid")
        if claims.get("role") not in _ADMIN_ROLES:
            raise _ApiError(403, "not_admin", "User not allowed")

    def _get_user(self, headers: Any) -> tuple[int, Any]:
        _, user, _ = self._authenticate(headers)
        return 200, _public(user)

    def _admin_create(self, headers: Any, params: Mapping[str, Any]) -> tuple[int, Any]:
        self._require_admin(headers)
        if not params.get("email") and not params.get("phone"):
            raise _ApiError(400, "validation_failed", "Cannot create a user without either an email or phone")
        if params.get("phone"):
            raise _ApiError(400, "phone_provider_disabled", "Phone logins are disabled")
        email = _validate_email(params.get("email"))
        password = params.get("password")
        password_hash = params.get("password_hash") or ""
        with self._connect() as conn:
            if self._user_by_email(conn, email) is not None:
                raise _ApiError(422, "email_exists", "A user with this email address has already been registered")
            if password is not None and password_hash:
                raise _ApiError(400, "validation_failed", "Only a password or a password hash should be provided")
            if password_hash:
                if not isinstance(password_hash, str) or not _hash_parses(password_hash):
                    # models.NewUserWithPasswordHash failed: adminUserCreate answers a plain 500.
                    raise _ApiError(500, "unexpected_failure", "Error creating user")
                encrypted = password_hash
            else:
                if password is None or password == "":
                    password = secrets.token_urlsafe(48)  # GoTrue stores an unguessable 64-char password
                encrypted = bcrypt.hashpw(
                    self._check_password(password).encode(), bcrypt.gensalt(rounds=10, prefix=b"2a")
                ).decode()
            user_id = _admin_user_id(params.get("id"))
            user_metadata = params.get("user_metadata") or {}
            app_metadata = params.get("app_metadata") or {}
            if not isinstance(user_metadata, dict) or not isinstance(app_metadata, dict):
                raise _ApiError(400, "bad_json", "Could not parse request body as JSON: metadata must be objects")
            banned_until = self._ban_until(params.get("ban_duration"))
            user = self._insert_user(
                conn,
                user_id=user_id,
                email=email,
                encrypted_password=encrypted,
                confirmed=bool(params.get("email_confirm")),
                user_metadata=user_metadata,
                app_metadata=app_metadata,
                # A taken id (or an email taken in between) fails tx.Create: GoTrue's 500.
                duplicate_code="unexpected_failure",
                duplicate_message="Database error creating new user",
                duplicate_status=500,
                banned_until=banned_until,
            )
        return 200, _public(user)

    def _ban_until(self, value: Any) -> datetime | None:
        """adminUserCreate's ban_duration: a Go duration from now, or "none" (no ban)."""
        if value is None or value in {"", "none"}:
            return None
        seconds = _go_duration_s(value)
        if seconds is None:
            raise _ApiError(400, "validation_failed", f"invalid format for ban duration: {value!r}")
        return self.clock() + timedelta(seconds=seconds) if seconds > 0 else None

    def _admin_list(self, headers: Any, query: Mapping[str, list[str]]) -> tuple[int, Any]:
        self._require_admin(headers)
        page = _positive_int((query.get("page") or ["1"])[0], 1)
        per_page = min(_positive_int((query.get("per_page") or ["50"])[0], 50), 1000)
        filter_text = (query.get("filter") or [""])[0]
        with self._connect() as conn:
            if filter_text:
                # GoTrue filters with LIKE '%filter%' on email (or full_name), unescaped.
                rows = conn.execute(
                    "SELECT id FROM auth.users WHERE aud = 'authenticated' AND (email ILIKE %s"
                    " OR raw_user_meta_data->>'full_name' ILIKE %s) ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
                    (f"%{filter_text}%", f"%{filter_text}%", per_page, (page - 1) * per_page),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT id FROM auth.users WHERE aud = 'authenticated' ORDER BY created_at DESC, id"
                    " LIMIT %s OFFSET %s",
                    (per_page, (page - 1) * per_page),
                ).fetchall()
            users = [_public(u) for row in rows if (u := self._user_by_id(conn, str(row["id"]))) is not None]
        return 200, {"users": users, "aud": _AUD}

    def _admin_user(self, headers: Any, method: str, user_id: str, body: bytes = b"") -> tuple[int, Any]:
        self._require_admin(headers)
        if not _is_uuid(user_id):
            raise _ApiError(404, "user_not_found", "User not found")
        with self._connect() as conn:
            user = self._user_by_id(conn, user_id)
            if user is None:
                raise _ApiError(404, "user_not_found", "User not found")
            if method == "DELETE":
                conn.execute("DELETE FROM auth.users WHERE id = %s", (user_id,))
                return 200, {}
            if method == "PUT":
                return 200, _public(self._admin_update(conn, user_id, _json_body(body)))
        return 200, _public(user)

    def _admin_update(
        self, conn: psycopg.Connection[dict[str, Any]], user_id: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PUT /admin/users/{id}: the subset Reconcile uses: email_confirm, and user_metadata (merged, as GoTrue
        merges top-level keys)."""
        user_metadata = params.get("user_metadata")
        if user_metadata is not None and not isinstance(user_metadata, dict):
            raise _ApiError(400, "bad_json", "Could not parse request body as JSON: metadata must be objects")
        if params.get("email_confirm") is True:
            conn.execute(
                "UPDATE auth.users SET email_confirmed_at = COALESCE(email_confirmed_at, %s), updated_at = %s"
                " WHERE id = %s",
                (self.clock(), self.clock(), user_id),
            )
        if user_metadata:
            conn.execute(
                "UPDATE auth.users SET raw_user_meta_data = COALESCE(raw_user_meta_data, '{}'::jsonb) || %s::jsonb,"
                " updated_at = %s WHERE id = %s",
                (json.dumps(user_metadata), self.clock(), user_id),
            )
        user = self._user_by_id(conn, user_id)
        assert user is not None  # the caller found it in this transaction
        return user


def _public(user: Mapping[str, Any]) -> dict[str, Any]:
    """The user without the stand-in's private keys (the hash never leaves the server)."""
    return {key: value for key, value in user.items() if not key.startswith("_")}


def _password_matches(password: Any, encrypted: str) -> bool:
    if not isinstance(password, str):
        return False
    candidate = password.encode()
    if len(candidate) > _BCRYPT_MAX_BYTES:
        return False
    try:
        return bcrypt.checkpw(candidate, encrypted.encode())
    except ValueError:  # a stored value that is not a bcrypt hash never matches
        return False


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


_GO_DURATION_RE: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS_S: Final = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_ARGON2_RE: Final = re.compile(r"^\$argon2(id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$")
_FBSCRYPT_RE: Final = re.compile(
    r"^\$fbscrypt\$v=1,n=\d+,r=\d+,p=\d+(,ss=[A-Za-z0-9+/=]+)?(,sk=[A-Za-z0-9+/=]+)?\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$"
)


def _go_duration_s(value: Any) -> float | None:
    """Go's time.ParseDuration (unsigned): "1h30m", "3600s", "1.5h"; None where Go would refuse it."""
    if not isinstance(value, str) or not value:
        return None
    if value == "0":
        return 0.0
    parts = _GO_DURATION_RE.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(n) * _GO_UNITS_S[u] for n, u in parts)


def _hash_parses(value: str) -> bool:
    """What models.NewUserWithPasswordHash accepts: argon2 and Firebase scrypt by their prefix and shape,
    anything else as bcrypt (bcrypt.Cost)."""
    if value.startswith("$argon2"):
        return bool(_ARGON2_RE.match(value))
    if value.startswith("$fbscrypt$"):
        return bool(_FBSCRYPT_RE.match(value))
    return bool(_BCRYPT_HASH_RE.match(value))


def _admin_user_id(value: Any) -> str:
    if value is None or value == "":
        return str(uuid.uuid4())
    if not isinstance(value, str) or not _is_uuid(value):
        raise _ApiError(400, "validation_failed", "ID must conform to the uuid v4 format")
    if uuid.UUID(value).int == 0:
        raise _ApiError(400, "validation_failed", "ID cannot be a nil uuid")
    return str(uuid.UUID(value))


def _positive_int(text: str, default: int) -> int:
    try:
        value = int(text)
    except ValueError:
        return default
    return value if value > 0 else default


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise _ApiError(400, "bad_json", "Could not parse request body as JSON") from exc
    if not isinstance(parsed, dict):
        raise _ApiError(400, "bad_json", "Could not parse request body as JSON")
    return parsed


def _created_id(method: str, path: str, body: bytes) -> str | None:
    """The `id` an admin create asked for (the request log keeps it: "created exactly once" is provable)."""
    if method != "POST" or path != "/admin/users":
        return None
    try:
        parsed = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    value = parsed.get("id") if isinstance(parsed, dict) else None
    return value if isinstance(value, str) else None


def _handler_for(standin: GoTrueStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "gotrue-standin"
        protocol_version = "HTTP/1.1"  # keep-alive, as GoTrue behind Kong: clients reuse connections
        # Headers and body go out in two writes: with Nagle on, a kept-alive connection waits ~40 ms
        # for the client's delayed ACK on every reply.
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            with standin._lock:
                standin.connections_accepted += 1

        def log_message(self, format: str, *args: Any) -> None:
            # The default writes every request line to stderr; test output stays clean.
            return

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            path = parts.path.rstrip("/") or "/"
            # Kong's prefix in front of GoTrue: SUPABASE_URL/auth/v1/... reaches the same handlers.
            if path.startswith("/auth/v1/"):
                path = path[len("/auth/v1") :]
            modern = self.headers.get(_API_VERSION_HEADER, "") >= _API_VERSION_2024
            arrived = time.monotonic()
            body = b""
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length > _MAX_BODY:
                    raise _ApiError(413, "request_too_large", "Request body too large")
                body = self.rfile.read(length) if length > 0 else b""
                status, payload = standin.handle(
                    method, path, parse_qs(parts.query), self.headers, body, str(self.client_address[0])
                )
            except _DropConnection:
                standin.calls.append((method, path, 0))
                standin.request_log.append(LoggedRequest(arrived, method, path, 0, _created_id(method, path, body)))
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            except _ApiError as exc:
                status = exc.status
                if modern:
                    payload = {"code": exc.error_code, "message": exc.message, **exc.extra}
                else:
                    payload = {"code": exc.status, "error_code": exc.error_code, "msg": exc.message, **exc.extra}
            except _OAuthError as exc:
                status, payload = 400, {"error": exc.error, "error_description": exc.description}
            except (psycopg.OperationalError, ValueError):
                status = 500
                payload = {"code": 500, "error_code": "unexpected_failure", "msg": "Database error querying schema"}
            standin.calls.append((method, path, status))
            standin.request_log.append(LoggedRequest(arrived, method, path, status, _created_id(method, path, body)))
            if status == HTTPStatus.NO_CONTENT:
                # /logout: a 204 carries neither a body nor a Content-Length (RFC 9110 8.6).
                self.send_response(status)
                if modern:
                    self.send_header(_API_VERSION_HEADER, _API_VERSION_2024)
                self.end_headers()
                return
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if path == _JWKS_PATH and status == HTTPStatus.OK:
                self.send_header("Cache-Control", "public, max-age=600")  # WellKnownJwks sets it
            if status == HTTPStatus.TOO_MANY_REQUESTS:
                self.send_header("Retry-After", standin.faults.retry_after)
            if modern:
                self.send_header(_API_VERSION_HEADER, _API_VERSION_2024)
            self.end_headers()
            self.wfile.write(data)

    return Handler
