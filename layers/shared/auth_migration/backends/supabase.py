"""Supabase Auth (GoTrue) over its REST API: signup, password grant, admin create/look-up with the service key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import httpx

from auth_migration.backends.base import SUPABASE, AuthResult, BackendUser, Session, SystemName
from auth_migration.backends.errors import (
    BackendError,
    BadRequest,
    EmailNotConfirmed,
    InvalidCredentials,
    Misconfigured,
    RateLimited,
    Unavailable,
    UserExists,
    UserNotFound,
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
from auth_migration.exceptions import ConfigError
from auth_migration.names import name_from_metadata

if TYPE_CHECKING:
    from auth_migration.settings import Settings

__all__ = ["GOTRUE_ERRORS", "SupabaseAuthBackend", "gotrue_error"]

# Ask for GoTrue's 2024-01-01 error shape ({"code": "<error_code>", "message"}), as supabase-js does;
# older servers ignore the header and answer {"code": <status>, "error_code", "msg"}: both are parsed.
_API_VERSION: Final = {"X-Supabase-Api-Version": "2024-01-01"}
_PAGE_SIZE: Final = 100
_MAX_PAGES: Final = 20

#: GoTrue error_code -> our vocabulary (supabase/auth internal/api/apierrors/errorcode.go).
GOTRUE_ERRORS: Final[Mapping[str, type[BackendError]]] = {
    "user_already_exists": UserExists,
    "email_exists": UserExists,
    "phone_exists": UserExists,
    "identity_already_exists": UserExists,
    "invalid_credentials": InvalidCredentials,
    # GoTrue before error codes (2023 builds): password-grant failures were OAuth `invalid_grant`.
    "invalid_grant": InvalidCredentials,
    "user_banned": InvalidCredentials,
    "email_not_confirmed": EmailNotConfirmed,
    "weak_password": WeakPassword,
    "user_not_found": UserNotFound,
    "no_authorization": Misconfigured,
    "bad_jwt": Misconfigured,
    "not_admin": Misconfigured,
    "over_request_rate_limit": RateLimited,
    "over_email_send_rate_limit": RateLimited,
}


def _error_code(body: Mapping[str, Any]) -> str | None:
    # 2024-01-01 shape: "code" is the error code; older: "code" is the status and "error_code" the code;
    # OAuth errors (token endpoint on old servers): "error".
    for key in ("error_code", "code", "error"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def gotrue_error(response: httpx.Response) -> BackendError:
    """The error a non-2xx GoTrue reply means: by status first, then by GoTrue's error code."""
    status = response.status_code
    code = _error_code(error_body(response))
    if status == httpx.codes.TOO_MANY_REQUESTS:
        return RateLimited(
            SUPABASE, status=status, code=code, retry_after=retry_after_seconds(response.headers.get("Retry-After"))
        )
    if status >= httpx.codes.INTERNAL_SERVER_ERROR or status < httpx.codes.BAD_REQUEST:
        return Unavailable(SUPABASE, status=status, code=code)
    kind = GOTRUE_ERRORS.get(code or "")
    if kind is RateLimited:
        return RateLimited(SUPABASE, status=status, code=code)
    if kind is not None:
        return kind(SUPABASE, status=status, code=code)
    if status in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
        return Misconfigured(SUPABASE, status=status, code=code)
    return BadRequest(SUPABASE, status=status, code=code)


def _user(body: Mapping[str, Any]) -> BackendUser:
    user_id, email = body.get("id"), body.get("email")
    if not isinstance(user_id, str) or not user_id:
        raise Unavailable(SUPABASE, detail="reply has no user id")
    metadata = body.get("user_metadata")
    return BackendUser(
        id=user_id,
        email=email if isinstance(email, str) else "",
        email_verified=bool(body.get("email_confirmed_at")),
        metadata=metadata if isinstance(metadata, dict) else {},
        name=name_from_metadata(metadata),
    )


def _session(body: Mapping[str, Any]) -> Session | None:
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        return None
    expires_at = body.get("expires_at")
    refresh = body.get("refresh_token")
    return Session(
        access_token=token,
        refresh_token=refresh if isinstance(refresh, str) else None,
        expires_at=int(expires_at) if isinstance(expires_at, int | float) else None,
        token_type=str(body.get("token_type") or "bearer"),
    )


class SupabaseAuthBackend:
    """GoTrue's REST API. Create once per container (module scope in the handler) and reuse.

    Parameters:
        auth_url: GoTrue's base URL: `https://<project>.supabase.co/auth/v1`, or a bare GoTrue.
        service_key: the service_role JWT, for admin calls (create with id / hash, look-ups).
        anon_key: sent as `apikey` on public calls (Supabase's gateway requires one); the service key
            is used when None.
        timeout, connect_timeout: default seconds per phase; each call may pass `timeout`.
        transport: an httpx transport for tests of the error mapping.
    """

    system: SystemName = SUPABASE

    def __init__(
        self,
        auth_url: str,
        *,
        service_key: str | None = None,
        anon_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._service_key = service_key
        apikey = anon_key or service_key
        headers = {**_API_VERSION, **({"apikey": apikey} if apikey else {})}
        self._http = HttpClient(
            SUPABASE, auth_url, timeout=timeout, connect_timeout=connect_timeout, headers=headers, transport=transport
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = DEFAULT_TIMEOUT_S) -> SupabaseAuthBackend:
        """From SUPABASE_URL (the project URL; GoTrue is under /auth/v1) and SUPABASE_SERVICE_KEY."""
        key = settings.supabase_service_key
        return cls(
            f"{settings.supabase_url}/auth/v1",
            service_key=key.get_secret_value() if key is not None else None,
            timeout=timeout,
        )

    def __repr__(self) -> str:
        return f"SupabaseAuthBackend({self._http.base_url!r})"  # never the keys

    # --- the AuthBackend interface ---

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
        """POST /signup, or, with `user_id`, an admin create carrying that id (email confirmed, no session).

        Raises:
            UserExists, WeakPassword, BadRequest, RateLimited, Unavailable/Timeout, Misconfigured.
        """
        if user_id is not None:
            user = self.create_user(
                email, user_id=user_id, password=password, user_metadata=metadata, email_confirm=True, timeout=timeout
            )
            return AuthResult(system=SUPABASE, user=user, session=None)
        body = {"email": email, "password": password, "data": dict(metadata or {})}
        reply = self._call("POST", "/signup", json=body, client_ip=client_ip, timeout=timeout)
        # With email confirmation on GoTrue answers the bare user; with autoconfirm a session holding it.
        nested = reply.get("user")
        user_body: dict[str, Any] = nested if isinstance(nested, dict) else reply
        return AuthResult(system=SUPABASE, user=_user(user_body), session=_session(reply))

    def sign_in(
        self, email: str, password: str, *, client_ip: str | None = None, timeout: float | None = None
    ) -> AuthResult:
        """POST /token?grant_type=password.

        Raises:
            InvalidCredentials (unknown user and wrong password alike), EmailNotConfirmed, RateLimited,
            Unavailable/Timeout.
        """
        reply = self._call(
            "POST",
            "/token",
            params={"grant_type": "password"},
            json={"email": email, "password": password},
            client_ip=client_ip,
            timeout=timeout,
        )
        session = _session(reply)
        user_body = reply.get("user")
        if session is None or not isinstance(user_body, dict):
            raise Unavailable(SUPABASE, status=200, detail="token reply without a session")
        return AuthResult(system=SUPABASE, user=_user(user_body), session=session)

    def find_user_by_email(self, email: str, *, timeout: float | None = None) -> BackendUser | None:
        """GET /admin/users?filter=<email>, paged; the user whose email equals `email` ignoring case."""
        wanted = email.strip().lower()
        for page in range(1, _MAX_PAGES + 1):
            reply = self._call(
                "GET",
                "/admin/users",
                params={"filter": wanted, "page": page, "per_page": _PAGE_SIZE},
                admin=True,
                timeout=timeout,
            )
            users = reply.get("users")
            if not isinstance(users, list):
                raise Unavailable(SUPABASE, status=200, detail="admin list reply without users")
            for item in users:
                # The filter is a substring match (LIKE '%x%', '_' a wildcard): keep only the exact address.
                if isinstance(item, dict) and str(item.get("email") or "").lower() == wanted:
                    return _user(item)
            if len(users) < _PAGE_SIZE:
                return None
        raise Unavailable(SUPABASE, detail=f"more than {_MAX_PAGES * _PAGE_SIZE} users match the email filter")

    def close(self) -> None:
        self._http.close()

    # --- admin API ---

    def create_user(
        self,
        email: str,
        *,
        user_id: str | None = None,
        password: str | None = None,
        password_hash: str | None = None,
        email_confirm: bool = True,
        user_metadata: Mapping[str, Any] | None = None,
        app_metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> BackendUser:
        """POST /admin/users with the service key: a chosen `user_id`, and a `password` or a bcrypt `password_hash`.

        Raises:
            UserExists (email or id taken), BadRequest (both password and hash, bad id), WeakPassword,
            Misconfigured (no or wrong service key), RateLimited, Unavailable/Timeout.
        """
        body: dict[str, Any] = {"email": email, "email_confirm": email_confirm}
        if user_id is not None:
            body["id"] = user_id
        if password is not None:
            body["password"] = password
        if password_hash is not None:
            body["password_hash"] = password_hash
        if user_metadata:
            body["user_metadata"] = dict(user_metadata)
        if app_metadata:
            body["app_metadata"] = dict(app_metadata)
        try:
            return _user(self._call("POST", "/admin/users", json=body, admin=True, timeout=timeout))
        except Unavailable as exc:
            # GoTrue answers a taken id with a plain 500 ("Database error creating new user": tx.Create fails
            # inside adminUserCreate), the same status as an outage. The id says which it was.
            if user_id is None or exc.status != httpx.codes.INTERNAL_SERVER_ERROR:
                raise
            holder = self.get_user(user_id, timeout=timeout)
            if holder is None:
                raise
            raise UserExists(SUPABASE, detail="the chosen id is taken") from exc

    def update_user(
        self,
        user_id: str,
        *,
        email_confirm: bool | None = None,
        user_metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> BackendUser:
        """PUT /admin/users/{id}: confirm the email and/or merge user_metadata keys (Reconcile's repairs)."""
        body: dict[str, Any] = {}
        if email_confirm is not None:
            body["email_confirm"] = email_confirm
        if user_metadata:
            body["user_metadata"] = dict(user_metadata)
        return _user(self._call("PUT", f"/admin/users/{user_id}", json=body, admin=True, timeout=timeout))

    def get_user(self, user_id: str, *, timeout: float | None = None) -> BackendUser | None:
        """GET /admin/users/{id}; None when GoTrue has no such user."""
        try:
            return _user(self._call("GET", f"/admin/users/{user_id}", admin=True, timeout=timeout))
        except UserNotFound:
            return None

    # --- plumbing ---

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        admin: bool = False,
        client_ip: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        headers: dict[str, str] = {}
        if admin:
            if not self._service_key:
                raise ConfigError("SUPABASE_SERVICE_KEY is not set: GoTrue's admin API needs the service_role key")
            headers["Authorization"] = f"Bearer {self._service_key}"
        if client_ip:
            headers["X-Forwarded-For"] = client_ip
        response = self._http.request(method, path, json=json, params=params, headers=headers, timeout=timeout)
        if not response.is_success:
            raise gotrue_error(response)
        return json_object(SUPABASE, response)
