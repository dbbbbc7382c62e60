"""The interface both auth systems sit behind, and the normalised shapes they answer with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, runtime_checkable

__all__ = [
    "BETTER_AUTH",
    "SUPABASE",
    "AuthBackend",
    "AuthResult",
    "BackendUser",
    "Session",
    "SystemName",
]

SystemName = Literal["supabase", "better_auth"]
SUPABASE: Final[SystemName] = "supabase"
BETTER_AUTH: Final[SystemName] = "better_auth"


@dataclass(frozen=True, slots=True)
class BackendUser:
    """A user as either system holds it (only what both have)."""

    id: str
    email: str
    email_verified: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in session; the tokens stay out of repr() so a logged result leaks nothing.

    Attributes:
        access_token: GoTrue's access JWT, or Better-Auth's session token.
        refresh_token: GoTrue's refresh token; None for Better-Auth (its session token is renewed in place).
        expires_at: epoch seconds, when the system said.
        token_type: "bearer" (GoTrue) or "session" (Better-Auth: a bearer only with its bearer plugin).
        cookie: Better-Auth's signed `better-auth.session_token` cookie value, what browsers send.
    """

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: int | None = None
    token_type: str = "bearer"  # noqa: S105 - a token kind, not a secret
    cookie: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class AuthResult:
    """What a sign-up or sign-in produced, whichever system answered.

    `session` is None when the system created the user without signing them in (GoTrue with email
    confirmation on, or an admin create).
    """

    system: SystemName
    user: BackendUser
    session: Session | None


@runtime_checkable
class AuthBackend(Protocol):
    """One auth system reached over HTTP. Every method raises only `backends.errors.BackendError` kinds.

    `client_ip` is the end user's address (API Gateway's sourceIp), forwarded as X-Forwarded-For so
    the system rate-limits per user rather than per Lambda NAT address. `timeout` overrides the
    client's default for this call (seconds per connect/read/write phase).
    """

    system: SystemName

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
        """Create a user with a password (with `user_id` as its id when given) and sign them in if the system does."""
        ...

    def sign_in(
        self, email: str, password: str, *, client_ip: str | None = None, timeout: float | None = None
    ) -> AuthResult:
        """Sign in with email and password."""
        ...

    def find_user_by_email(self, email: str, *, timeout: float | None = None) -> BackendUser | None:
        """The user whose email equals `email` ignoring case, or None."""
        ...

    def close(self) -> None:
        """Release the HTTP connections."""
        ...
