"""The backends' one error vocabulary: what either auth system said, told apart by status and error code.

Each class subclasses the package's TransientError or PermanentError, so callers can decide "retry or
fall back" by type. Messages name the system, the status and the system's error code, never the
request's email, password, hash, token or key.
"""

from __future__ import annotations

from typing import ClassVar

from auth_migration.exceptions import AuthMigrationError, PermanentError, TransientError

__all__ = [
    "BackendError",
    "BadRequest",
    "EmailNotConfirmed",
    "InputRefused",
    "InvalidCredentials",
    "Misconfigured",
    "RateLimited",
    "Timeout",
    "Unavailable",
    "Unsupported",
    "UserExists",
    "UserNotFound",
    "WeakPassword",
]


class BackendError(AuthMigrationError):
    """An auth system refused or failed a call.

    Attributes:
        system: "supabase" or "better_auth".
        status: the HTTP status, or None when no reply arrived (timeout, refused connection).
        code: the system's own error code (`user_already_exists`, `INVALID_EMAIL_OR_PASSWORD`, ...) or None.
        kind: a stable short name of the class for events and metrics.
    """

    kind: ClassVar[str] = "error"

    def __init__(self, system: str, *, status: int | None = None, code: str | None = None, detail: str = "") -> None:
        self.system = system
        self.status = status
        self.code = code
        self.detail = detail
        parts = [system, self.kind]
        if status is not None:
            parts.append(f"HTTP {status}")
        if code:
            parts.append(code)
        if detail:
            parts.append(detail)
        super().__init__(": ".join(parts[:2]) + (f" ({', '.join(parts[2:])})" if len(parts) > 2 else ""))


class UserExists(BackendError, PermanentError):
    """The email (or chosen id) already belongs to a user in that system."""

    kind = "user_exists"


class InvalidCredentials(BackendError, PermanentError):
    """Wrong password or unknown user: the systems answer both alike, and so do we."""

    kind = "invalid_credentials"


class EmailNotConfirmed(InvalidCredentials):
    """The password matched but the system refuses sign-in until the email is confirmed."""

    kind = "email_not_confirmed"


class WeakPassword(BackendError, PermanentError):
    """The password breaks the system's policy (too short, too long)."""

    kind = "weak_password"


class BadRequest(BackendError, PermanentError):
    """The system rejected the request as malformed (bad email, bad body): the caller's input."""

    kind = "bad_request"


class InputRefused(BadRequest):
    """A sign-in refused by the system's own input rules (the email's syntax, the password's length)
    before it looked at the credentials: no verdict on who the user is or whether the password is right.

    Its `kind` stays "bad_request": health figures count it as the caller's input, like any refusal.
    """


class UserNotFound(BackendError, PermanentError):
    """An admin look-up by id found nobody."""

    kind = "user_not_found"


class Misconfigured(BackendError, PermanentError):
    """Our credentials or origin for the system are wrong (401/403 on an admin key, untrusted Origin)."""

    kind = "misconfigured"


class Unsupported(BackendError, PermanentError):
    """The system cannot do this over its HTTP API (e.g. choose a Better-Auth user id on sign-up)."""

    kind = "unsupported"


class RateLimited(BackendError, TransientError):
    """The system answered 429; `retry_after` is its hint in seconds when it gave one."""

    kind = "rate_limited"

    def __init__(
        self,
        system: str,
        *,
        status: int | None = 429,
        code: str | None = None,
        detail: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(system, status=status, code=code, detail=detail)
        self.retry_after = retry_after


class Unavailable(BackendError, TransientError):
    """No usable answer: refused or dropped connection, 5xx, or a reply that is not what the API sends."""

    kind = "unavailable"


class Timeout(Unavailable):
    """No answer within the client's timeout."""

    kind = "timeout"
