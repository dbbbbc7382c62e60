"""Better-Auth sessions made the way Better-Auth makes them, so its own server accepts them.

Checked against better-auth 1.7.25 (dist/db/internal-adapter.mjs `createSession`, dist/cookies, and
better-call's crypto.mjs): a `session` row with a 32-character alphanumeric token, `expiresAt` =
now + session.expiresIn, the client's IP and user agent; the `<prefix>.session_token` cookie holds
`token.signature` URL-encoded, the signature being the standard-base64 HMAC-SHA256 of the token under
BETTER_AUTH_SECRET, with HttpOnly, SameSite=Lax, Path=/ and Max-Age = expiresIn (`__Secure-` prefix and
Secure when Better-Auth uses secure cookies).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import quote

import psycopg
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

__all__ = ["CookieSettings", "NewSession", "create_session", "session_cookie", "signed_value"]

_TOKEN_ALPHABET: Final = string.ascii_letters + string.digits
_TOKEN_LENGTH: Final = 32  # better-auth: generateId(32)
_SECURE_PREFIX: Final = "__Secure-"
# encodeURIComponent leaves these unescaped; quote() must do the same for the cookie to read back equal.
_URI_COMPONENT_SAFE: Final = "-_.!~*'()"
#: Better-Auth stores the whole header; bounded here so a hostile User-Agent cannot bloat the row.
_MAX_USER_AGENT: Final = 512


@dataclass(frozen=True, slots=True)
class NewSession:
    id: str
    token: str
    user_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CookieSettings:
    """How the app's Better-Auth names and scopes its session cookie (its `advanced` options)."""

    secret: str
    prefix: str = "better-auth"
    secure: bool = False
    domain: str | None = None
    max_age_s: int = 7 * 24 * 3600

    @property
    def name(self) -> str:
        return f"{_SECURE_PREFIX if self.secure else ''}{self.prefix}.session_token"


def create_session(
    conn: psycopg.Connection,
    user_id: str,
    *,
    now: datetime,
    expires_in_s: int,
    ip_address: str | None,
    user_agent: str | None,
) -> NewSession:
    """Insert a Better-Auth `session` row for `user_id` (Better-Auth's database) and return it."""
    session = NewSession(
        # The id is the app's generateId (UUIDs in the reference config); only the token is ever looked up.
        id=str(uuid.uuid4()),
        token="".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(_TOKEN_LENGTH)),
        user_id=user_id,
        expires_at=now + timedelta(seconds=expires_in_s),
    )
    conn.execute(
        """INSERT INTO session (id, "expiresAt", token, "createdAt", "updatedAt", "ipAddress", "userAgent", "userId")
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            session.id,
            session.expires_at,
            session.token,
            now,
            now,
            ip_address or "",
            (user_agent or "")[:_MAX_USER_AGENT],
            user_id,
        ),
    )
    return session


def signed_value(token: str, secret: str) -> str:
    """The cookie value better-call's signCookieValue makes: encodeURIComponent(token + "." + base64(HMAC))."""
    signature = base64.b64encode(hmac.new(secret.encode(), token.encode(), hashlib.sha256).digest()).decode()
    return quote(f"{token}.{signature}", safe=_URI_COMPONENT_SAFE)


def session_cookie(token: str, settings: CookieSettings) -> Cookie:
    """The Set-Cookie Better-Auth's sign-in sends for this session."""
    return Cookie(
        name=settings.name,
        value=signed_value(token, settings.secret),
        path="/",
        domain=settings.domain or "",
        secure=settings.secure,
        http_only=True,
        max_age=settings.max_age_s,
        same_site=SameSite.LAX_MODE,
    )
