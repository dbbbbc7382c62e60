"""Supabase Auth (GoTrue) as a migration target: users go in through the admin API (`POST /admin/users`).

Unlike Better-Auth, GoTrue's tables are written only through its API here: its admin create keeps a
chosen id and a legacy password hash, and GoTrue itself owns identities, audit and metadata shapes.
An HTTP call cannot share a transaction with the tracking row, so exactly-once rests on three things
(engine/supabase_batch.py): the batch's intent (pending_create) committed before any call, the
deterministic id (a retry knows which GoTrue user is its own), and the migration's id written into
the user's app_metadata (`migration_id`), which tells "created by this migration" from "already
there with our id" whatever moment a crash picked.
"""

from __future__ import annotations

import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import httpx

from auth_migration.backends.transport import error_body, retry_after_seconds
from auth_migration.exceptions import ConfigError
from auth_migration.models import SourceUser, TargetUser
from auth_migration.retry import backoff_delay
from auth_migration.targets.better_auth import TargetCapabilities
from auth_migration.targets.rate_limit import Limiter, RateLimiter
from auth_migration.transforms import BCRYPT_RE, account_id_for

if TYPE_CHECKING:
    from auth_migration.settings import Settings

__all__ = [
    "DEFAULT_MAX_REQUESTS_PER_S",
    "HASH_REFUSED_MESSAGE",
    "GoTrueAdmin",
    "GoTrueRejected",
    "GoTrueUncertain",
    "RateLimiter",
    "SupabaseTarget",
    "ban_duration",
    "gotrue_id_for",
    "gotrue_payload",
    "usable_password_hash",
]

#: The client-side cap when a migration names none: well under what a hosted project's admin API takes.
DEFAULT_MAX_REQUESTS_PER_S: Final = 50
MAX_REQUESTS_PER_S: Final = 5000
#: The provider namespace of derived GoTrue ids: uuid5 under transforms.ACCOUNT_ID_NAMESPACE, the
#: Better-Auth target's scheme, so a derived id is the same on every run and every retry.
GOTRUE_ID_PROVIDER: Final = "gotrue-user"
#: The flag (migrated_users.flags) of a user created without a password: reset or magic link needed.
NEEDS_PASSWORD_RESET: Final = "needs_password_reset"  # noqa: S105 - a flag name, not a secret
#: app_metadata key naming the migration that created the user: the proof a retry and a rollback read.
MIGRATION_MARKER: Final = "migration_id"
_API_VERSION: Final = {"X-Supabase-Api-Version": "2024-01-01"}
_ARGON2_RE: Final = re.compile(r"^\$argon2(id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$")
_FIREBASE_SCRYPT_PREFIX: Final = "$fbscrypt$"
_MAX_ATTEMPTS: Final = 8
#: 290 years in seconds: under Go's time.Duration maximum (2**63 ns, about 292 years).
_MAX_GO_DURATION_S: Final = 290 * 365 * 24 * 3600


def gotrue_id_for(source_id: str) -> str:
    """GoTrue requires a UUID id: a source UUID is kept (canonical form), anything else is derived."""
    try:
        return str(uuid.UUID(source_id))
    except ValueError:
        return account_id_for(GOTRUE_ID_PROVIDER, source_id)


def usable_password_hash(password_hash: str | None) -> str | None:
    """The hash GoTrue's admin create accepts (bcrypt, argon2, Firebase scrypt), else None.

    Sending another format is worse than sending none: GoTrue answers it 500 "Error creating user"
    (models.NewUserWithPasswordHash fails), which looks transient and would be retried forever."""
    if not password_hash:
        return None
    if BCRYPT_RE.match(password_hash) or _ARGON2_RE.match(password_hash):
        return password_hash
    if password_hash.startswith(_FIREBASE_SCRYPT_PREFIX):
        return password_hash
    return None


def _capitalise(value: Any) -> Any:
    """The seed's capitalizeFirst, only on all-lowercase names (as transforms.capitalize_names): "van der
    Berg" and "McDonald" survive, "john" becomes "John"."""
    if not isinstance(value, str) or value != value.lower():
        return value
    return " ".join(word[:1].upper() + word[1:] for word in value.split(" "))


def gotrue_payload(draft: TargetUser, source: SourceUser, *, migration_id: str, as_of: datetime) -> dict[str, Any]:
    """The admin-create body of one user: the seed's transformUserData, with our id and marker.

    `as_of`: the migration's fixed instant (migration_date), never a read of the clock, so a retry
    days later sends the same body. No `password` ever: GoTrue refuses it together with a hash, and
    without a hash GoTrue stores an unguessable one (the user resets or uses a magic link)."""
    meta = source.user_metadata if isinstance(source.user_metadata, dict) else {}
    username = meta.get("username")
    body: dict[str, Any] = {
        "id": gotrue_id_for(source.id),
        "email": draft.email,
        "email_confirm": draft.email_verified,
        "user_metadata": {
            "username": username.lower() if isinstance(username, str) else None,
            "first_name": _capitalise(meta.get("first_name")),
            "last_name": _capitalise(meta.get("last_name")),
            # validate_avatar_url already kept only absolute http(s) URLs in draft.image.
            "avatar_url": draft.image,
            "migrated_from": source.origin,
            "original_id": source.id,
        },
        "app_metadata": {
            "provider": "migration",
            "migrated": True,
            "migration_date": as_of.isoformat(),
            "original_created_at": source.created_at.isoformat() if source.created_at else None,
            MIGRATION_MARKER: migration_id,
        },
    }
    hashed = usable_password_hash(source.password_hash)
    if hashed is not None:
        body["password_hash"] = hashed
    if (ban := ban_duration(source.banned_until, as_of)) is not None:
        body["ban_duration"] = ban
    return body


def ban_duration(banned_until: datetime | None, as_of: datetime) -> str | None:
    """A ban still running at the migration's `as_of`, as the admin create's `ban_duration` (a Go
    duration; GoTrue bans until its own now + that). Whole seconds, rounded up, so a ban never ends
    early; a retry sends the same body. None: not banned (an expired ban is not carried)."""
    if banned_until is None or banned_until <= as_of:
        return None
    seconds = math.ceil((banned_until - as_of).total_seconds())
    # Go's time.Duration holds about 292 years; a longer ban (or 'infinity') is capped there.
    return f"{min(seconds, _MAX_GO_DURATION_S)}s"


class GoTrueRejected(Exception):
    """A permanent (4xx) answer of GoTrue, with its own error code and message kept for the report."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(status, error_code, message)
        self.status, self.error_code, self.message = status, error_code, message

    def __str__(self) -> str:
        return f"GoTrue {self.status} {self.error_code}: {self.message}"


class GoTrueUncertain(Exception):
    """No certain answer: 5xx or no reply to a create (it may have been served), or 429 / 5xx through
    every retry. A create is then settled by a look-up by id; otherwise the batch goes back to SQS.
    `message`: GoTrue's own message of the last 5xx, if any (it tells a refused hash from an outage)."""

    def __init__(self, text: str, *, status: int | None = None, message: str = "") -> None:
        super().__init__(text)
        self.status, self.message = status, message


#: GoTrue's 500 when models.NewUserWithPasswordHash refuses the hash (adminUserCreate): not transient.
HASH_REFUSED_MESSAGE: Final = "Error creating user"


def _code_and_message(response: httpx.Response) -> tuple[str, str]:
    body = error_body(response)
    # 2024-01-01 shape: "code" is the error code; older: "code" is the status and "error_code" the code.
    codes = [v for k in ("error_code", "code", "error") if isinstance(v := body.get(k), str) and v]
    messages = [v for k in ("message", "msg", "error_description") if isinstance(v := body.get(k), str)]
    return (codes[0] if codes else f"http_{response.status_code}"), (messages[0] if messages else "")


class GoTrueAdmin:
    """GoTrue's admin API for bulk migration: one httpx client per container, thread-safe, rate-capped.

    Every request (retries included) takes a slot from the `pace` it is given (the migration's
    shared limiter, targets/rate_limit.py), so the cap holds for all the concurrent calls of every
    container. 429 and 5xx (and no reply) are retried
    with full-jitter backoff, never sooner than Retry-After; other 4xx raise GoTrueRejected; 401/403
    raise ConfigError (a wrong service key fails the batch, not every user in it).
    """

    def __init__(
        self,
        auth_url: str,
        service_key: str,
        *,
        timeout: float = 10.0,
        max_connections: int = 256,
        retry_base_s: float = 0.2,
        retry_cap_s: float = 5.0,
        max_attempts: int = _MAX_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not service_key:
            raise ConfigError("SUPABASE_SERVICE_KEY is not set: the supabase target needs the service_role key")
        headers = {**_API_VERSION, "apikey": service_key, "Authorization": f"Bearer {service_key}"}
        self.base_url = auth_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(2.0, timeout)),
            # Enough kept-alive connections for the concurrent calls of a batch at the highest cap.
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
        )
        self._lock = threading.Lock()
        self.retry_base_s, self.retry_cap_s = retry_base_s, retry_cap_s
        self._max_attempts = max_attempts
        self.sleep = sleep
        #: Requests sent and retries made (429/5xx/no reply) since the container started.
        self.requests_sent = 0
        self.retries = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> GoTrueAdmin | None:
        """From SUPABASE_URL (GoTrue under /auth/v1) and SUPABASE_SERVICE_KEY; None without a key."""
        key = settings.supabase_service_key
        if key is None or not key.get_secret_value():
            return None
        return cls(f"{settings.supabase_url}/auth/v1", key.get_secret_value())

    def __repr__(self) -> str:
        return f"GoTrueAdmin({self.base_url!r})"  # never the key

    def close(self) -> None:
        self._http.close()

    # --- calls ---

    def check(self, pace: Limiter) -> None:
        """One admin call proving URL and key: GET /admin/users?per_page=1."""
        self._request("GET", "/admin/users", pace, params={"page": 1, "per_page": 1})

    def get_user(self, user_id: str, pace: Limiter) -> dict[str, Any] | None:
        try:
            return self._request("GET", f"/admin/users/{user_id}", pace)
        except GoTrueRejected as exc:
            if exc.status == httpx.codes.NOT_FOUND:
                return None
            raise

    def create_user(self, body: Mapping[str, Any], pace: Limiter) -> dict[str, Any]:
        """POST /admin/users. Retries 429 only (surely not served); 5xx or no reply raise GoTrueUncertain,
        for the caller to look the id up before posting again."""
        return self._request("POST", "/admin/users", pace, json=dict(body), retry_uncertain=False)

    def delete_user(self, user_id: str, pace: Limiter) -> bool:
        """DELETE /admin/users/{id}; False when GoTrue has no such user (404: already done)."""
        try:
            self._request("DELETE", f"/admin/users/{user_id}", pace)
        except GoTrueRejected as exc:
            if exc.status == httpx.codes.NOT_FOUND:
                return False
            raise
        return True

    def find_by_email(self, email: str, pace: Limiter) -> dict[str, Any] | None:
        """The user holding exactly this email (the list filter is a substring match), first page only:
        a conflict's details or a dry run's prediction, never a decision to write."""
        reply = self._request("GET", "/admin/users", pace, params={"filter": email, "page": 1, "per_page": 100})
        for user in reply.get("users") or []:
            if isinstance(user, dict) and str(user.get("email") or "").lower() == email:
                return user
        return None

    def _request(
        self,
        method: str,
        path: str,
        pace: Limiter,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        retry_uncertain: bool = True,
    ) -> dict[str, Any]:
        attempt = 0
        while True:
            attempt += 1
            pace.acquire()
            with self._lock:
                self.requests_sent += 1
            wait: float | None = None
            try:
                response = self._http.request(method, path, json=json, params=params)
            except httpx.TransportError:
                response = None  # no answer: it may or may not have been served; the retry's GET settles it
            if response is not None:
                status = response.status_code
                if response.is_success:
                    body = response.json()
                    return body if isinstance(body, dict) else {}
                if status in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
                    code, message = _code_and_message(response)
                    raise ConfigError(f"GoTrue refused the service key ({status} {code}): {message}")
                if status != httpx.codes.TOO_MANY_REQUESTS and status < httpx.codes.INTERNAL_SERVER_ERROR:
                    raise GoTrueRejected(status, *_code_and_message(response))
                wait = retry_after_seconds(response.headers.get("Retry-After"))
            rate_limited = response is not None and response.status_code == httpx.codes.TOO_MANY_REQUESTS
            if not rate_limited and not retry_uncertain:
                status_text = response.status_code if response is not None else "no reply"
                message = _code_and_message(response)[1] if response is not None else ""
                raise GoTrueUncertain(
                    f"{method} {path}: {status_text}",
                    status=response.status_code if response is not None else None,
                    message=message,
                )
            if attempt >= self._max_attempts:
                raise GoTrueUncertain(f"{method} {path}: no success after {attempt} attempts")
            with self._lock:
                self.retries += 1
            delay = backoff_delay(attempt, base_s=self.retry_base_s, cap_s=self.retry_cap_s)
            self.sleep(max(delay, wait or 0.0))


class SupabaseTarget:
    """The target's name and schema check; the writes are engine/supabase_batch.py's (over HTTP)."""

    name = "supabase"

    def check(self, conn: object) -> TargetCapabilities:
        # GoTrue stores bans itself (banned_until): a ban still running is carried as `ban_duration`.
        return TargetCapabilities(supports_bans=True)
