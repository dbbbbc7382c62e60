"""Better-Auth over its HTTP API: email sign-up and sign-in on the product's Better-Auth server."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import httpx

from auth_migration.backends.base import BETTER_AUTH, AuthResult, BackendUser, Session, SystemName
from auth_migration.backends.errors import (
    BackendError,
    BadRequest,
    EmailNotConfirmed,
    InputRefused,
    InvalidCredentials,
    Misconfigured,
    RateLimited,
    Unavailable,
    Unsupported,
    UserExists,
    WeakPassword,
)
from auth_migration.backends.transport import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    HttpClient,
    error_body,
    json_object,
    retry_after_seconds,
)
from auth_migration.names import display_name

if TYPE_CHECKING:
    from auth_migration.settings import Settings

__all__ = ["BETTER_AUTH_ERRORS", "BetterAuthBackend", "better_auth_error"]

#: Better-Auth error code -> our vocabulary (better-auth's BASE_ERROR_CODES, as 1.7.25 answers them).
BETTER_AUTH_ERRORS: Final[Mapping[str, type[BackendError]]] = {
    "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL": UserExists,
    "USER_ALREADY_EXISTS": UserExists,
    "INVALID_EMAIL_OR_PASSWORD": InvalidCredentials,
    "EMAIL_NOT_VERIFIED": EmailNotConfirmed,
    "PASSWORD_TOO_SHORT": WeakPassword,
    "PASSWORD_TOO_LONG": WeakPassword,
    "INVALID_ORIGIN": Misconfigured,
    "MISSING_OR_NULL_ORIGIN": Misconfigured,
}
#: Sign-in refusals of the request's own fields, answered before any credential check: INVALID_EMAIL (the
#: handler's z.email() check), VALIDATION_ERROR (the body schema: the only field it can fault in the body we
#: send is the email), PASSWORD_TOO_LONG (maxPasswordLength, 128 by default).
_SIGN_IN_INPUT_CODES: Final = frozenset({"INVALID_EMAIL", "VALIDATION_ERROR", "PASSWORD_TOO_LONG"})
# Both names the session cookie has: plain on http, `__Secure-` prefixed on https.
_SESSION_COOKIES: Final = ("better-auth.session_token", "__Secure-better-auth.session_token")

UserLookup = Callable[[str], BackendUser | None]


def better_auth_error(response: httpx.Response) -> BackendError:
    """The error a non-2xx Better-Auth reply means: by status first, then by Better-Auth's `code`."""
    status = response.status_code
    raw = error_body(response).get("code")
    code = raw if isinstance(raw, str) and raw else None
    if status == httpx.codes.TOO_MANY_REQUESTS:
        # Better-Auth's 429 has no code; its hint is the non-standard X-Retry-After header.
        hint = response.headers.get("X-Retry-After") or response.headers.get("Retry-After")
        return RateLimited(BETTER_AUTH, status=status, code=code, retry_after=retry_after_seconds(hint))
    if status >= httpx.codes.INTERNAL_SERVER_ERROR or status < httpx.codes.BAD_REQUEST:
        return Unavailable(BETTER_AUTH, status=status, code=code)
    kind = BETTER_AUTH_ERRORS.get(code or "")
    if kind is not None:
        return kind(BETTER_AUTH, status=status, code=code)
    if status in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
        return Misconfigured(BETTER_AUTH, status=status, code=code)
    return BadRequest(BETTER_AUTH, status=status, code=code)


def _user(body: Mapping[str, Any]) -> BackendUser:
    user_id, email = body.get("id"), body.get("email")
    if not isinstance(user_id, str) or not user_id:
        raise Unavailable(BETTER_AUTH, status=200, detail="reply has no user id")
    name = body.get("name")
    return BackendUser(
        id=user_id,
        email=email if isinstance(email, str) else "",
        email_verified=bool(body.get("emailVerified")),
        name=name if isinstance(name, str) else None,
    )


def _session_cookie(response: httpx.Response, *, now: float | None = None) -> tuple[str | None, int | None]:
    """The signed session cookie's value and expiry (epoch seconds) from Set-Cookie, when present.

    now: epoch seconds a Max-Age counts from (tests pin it); default the wall clock at receipt.
    """
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(header)
        except CookieError:
            continue
        for name in _SESSION_COOKIES:
            morsel = cookie.get(name)
            if morsel is None or not morsel.value:
                continue
            expires_at: int | None = None
            if morsel["max-age"]:
                expires_at = int(time.time() if now is None else now) + int(morsel["max-age"])
            elif morsel["expires"]:
                try:
                    expires_at = int(parsedate_to_datetime(morsel["expires"]).timestamp())
                except (TypeError, ValueError):
                    expires_at = None
            return morsel.value, expires_at
    return None, None


def _result(response: httpx.Response) -> AuthResult:
    body = json_object(BETTER_AUTH, response)
    user_body = body.get("user")
    if not isinstance(user_body, dict):
        raise Unavailable(BETTER_AUTH, status=response.status_code, detail="reply without a user")
    token = body.get("token")
    session = None
    if isinstance(token, str) and token:
        cookie, expires_at = _session_cookie(response)
        session = Session(access_token=token, expires_at=expires_at, token_type="session", cookie=cookie)  # noqa: S106 - a kind
    return AuthResult(system=BETTER_AUTH, user=_user(user_body), session=session)


class BetterAuthBackend:
    """The product's Better-Auth server. Create once per container (module scope in the handler) and reuse.

    Parameters:
        base_url: the server's base URL (its API is under /api/auth).
        origin: the Origin header sent; Better-Auth refuses (403) an untrusted one. Defaults to
            base_url's origin, which Better-Auth always trusts.
        user_lookup: answers `find_user_by_email` (Better-Auth has no lookup endpoint without its admin
            plugin; a SQL lookup on its `user` table is the expected implementation).
        timeout, connect_timeout: default seconds per phase; each call may pass `timeout`.
        transport: an httpx transport for tests of the error mapping.
    """

    system: SystemName = BETTER_AUTH

    def __init__(
        self,
        base_url: str,
        *,
        origin: str | None = None,
        user_lookup: UserLookup | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        self.origin = origin or f"{parts.scheme}://{parts.netloc}"
        self._user_lookup = user_lookup
        self._http = HttpClient(
            BETTER_AUTH,
            f"{base_url.rstrip('/')}/api/auth",
            timeout=timeout,
            connect_timeout=connect_timeout,
            headers={"Origin": self.origin},
            transport=transport,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, timeout: float = DEFAULT_TIMEOUT_S, user_lookup: UserLookup | None = None
    ) -> BetterAuthBackend:
        """From BETTER_AUTH_URL."""
        return cls(settings.better_auth_url, timeout=timeout, user_lookup=user_lookup)

    def __repr__(self) -> str:
        return f"BetterAuthBackend({self._http.base_url!r})"

    def sign_up(
        self,
        email: str,
        password: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
        client_ip: str | None = None,
        timeout: float | None = None,
    ) -> AuthResult:
        """POST /api/auth/sign-up/email {email, password, name}.

        Raises:
            Unsupported: `user_id` was given: Better-Auth's sign-up ignores an id in the body, so a chosen
                id can only be written into its tables (the Better-Auth target), never over HTTP.
            UserExists, WeakPassword, BadRequest, RateLimited, Unavailable/Timeout, Misconfigured.
        """
        if user_id is not None:
            raise Unsupported(BETTER_AUTH, detail="sign-up cannot choose the user id; write the user by SQL")
        body = {"email": email, "password": password, "name": display_name(email, metadata or {})}
        return _result(self._post("/sign-up/email", body, client_ip, timeout))

    def sign_in(
        self, email: str, password: str, *, client_ip: str | None = None, timeout: float | None = None
    ) -> AuthResult:
        """POST /api/auth/sign-in/email.

        Raises:
            InvalidCredentials (unknown user and wrong password alike), EmailNotConfirmed, RateLimited,
            InputRefused (Better-Auth's rules refuse the address or the password's length: it said nothing
            about the credentials), Unavailable/Timeout (also Better-Auth's empty 500 for a hash it cannot
            verify), Misconfigured.
        """
        try:
            response = self._post("/sign-in/email", {"email": email, "password": password}, client_ip, timeout)
        except (BadRequest, WeakPassword) as exc:
            if exc.status == httpx.codes.BAD_REQUEST and exc.code in _SIGN_IN_INPUT_CODES:
                raise InputRefused(BETTER_AUTH, status=exc.status, code=exc.code) from exc
            raise
        return _result(response)

    def find_user_by_email(self, email: str, *, timeout: float | None = None) -> BackendUser | None:
        """The user with this email, through `user_lookup`.

        Raises:
            Unsupported: no `user_lookup` was given.
        """
        if self._user_lookup is None:
            raise Unsupported(BETTER_AUTH, detail="no user lookup configured (Better-Auth has no lookup endpoint)")
        return self._user_lookup(email.strip().lower())

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: Mapping[str, Any], client_ip: str | None, timeout: float | None) -> httpx.Response:
        # Better-Auth rate-limits per client IP, read from X-Forwarded-For: without it every Lambda
        # call shares the NAT address's bucket (docs/BETTER_AUTH.md section 5).
        headers = {"X-Forwarded-For": client_ip} if client_ip else None
        response = self._http.request("POST", path, json=dict(body), headers=headers, timeout=timeout)
        if not response.is_success:
            raise better_auth_error(response)
        return response
