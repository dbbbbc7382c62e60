"""POST /auth/session/exchange: a valid Supabase session in, a Better-Auth session for the same user out.

Rules, in order (each refusal writes no session, no user and no claim; every attempt past the flag is an
auth_events row):
1. The SESSION_EXCHANGE flag is on (the operator turns it off after the cutover window).
2. The client IP is under its per-minute limit (counted before any token work: guessing costs a request).
3. The access token verifies (supabase_tokens.py), then the user is under their per-minute limit.
4. GoTrue's own records agree the session is live: the user exists, is not deleted or banned, and the
   token's auth.sessions row still exists (a signed-out session's token is refused, as GoTrue refuses it)
   and is not past `not_after`.
5. A user Better-Auth does not hold yet is migrated lazily, on the same per-user claim as login, with the
   bcrypt hash GoTrue holds (their password keeps working).
6. A Better-Auth `session` row is written and its signed cookie returned (better_auth_sessions.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from aws_lambda_powertools.shared.cookies import Cookie
from psycopg import errors as pg_errors

from auth_migration.clock import Clock, system_clock
from auth_migration.connections import Connections
from auth_migration.dual_write.directory import NewUser
from auth_migration.dual_write.lazy import migrate_lazily
from auth_migration.dual_write.records import AuthEvent, record_event
from auth_migration.dual_write.routing import route_for
from auth_migration.flags import Flags
from auth_migration.sessions.better_auth_sessions import CookieSettings, NewSession, create_session, session_cookie
from auth_migration.sessions.rate_limits import Limit, count_hits
from auth_migration.sessions.supabase_tokens import AccessClaims, AccessTokenVerifier, TokenRefused

__all__ = ["ExchangeRefused", "ExchangeUnavailable", "Exchanged", "SessionExchanger", "SessionUser"]

#: The auth_events error kind of every token refusal (a user's error, USER_ERROR_KINDS): the precise
#: reason goes to the log and metrics only, so the figures read one kind.
INVALID_TOKEN = "invalid_token"  # noqa: S105 - an error kind, not a secret


class ExchangeRefused(Exception):
    """The exchange is refused: `status` and `error` are the reply; `reason` is for logs and metrics."""

    def __init__(self, status: int, error: str, reason: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason
        self.retry_after_s = retry_after_s


class ExchangeUnavailable(Exception):
    """A database the exchange needs could not be read or written: 503, try again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SessionUser:
    """The Better-Auth user as its sign-in reply shows it."""

    id: str
    email: str
    name: str
    image: str | None
    email_verified: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Exchanged:
    session: NewSession
    user: SessionUser
    cookie: Cookie
    lazy_migrated: bool


@dataclass(frozen=True, slots=True)
class _SupabaseUser:
    id: str
    email: str
    email_verified: bool
    metadata: Mapping[str, Any]
    password_hash: str | None


def _invalid(reason: str) -> ExchangeRefused:
    return ExchangeRefused(401, INVALID_TOKEN, reason)


class SessionExchanger:
    """Built once per container; `exchange` takes the request's one flag snapshot."""

    def __init__(
        self,
        *,
        verifier: AccessTokenVerifier,
        connections: Connections,
        cookies: CookieSettings,
        limit_per_ip: int,
        limit_per_user: int,
        clock: Clock = system_clock,
        on_warning: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.verifier = verifier
        self.conns = connections
        self.cookies = cookies
        self.limit_per_ip = limit_per_ip
        self.limit_per_user = limit_per_user
        self.clock = clock
        self._warn = on_warning or (lambda _msg, _extra: None)

    def exchange(self, flags: Flags, access_token: str, *, client_ip: str | None, user_agent: str | None) -> Exchanged:
        """A Better-Auth session for the user of a live Supabase session.

        Raises:
            ExchangeRefused: 401 invalid_token, 403 exchange_disabled, 409 account_conflict, 429 rate_limited.
            ExchangeUnavailable: a database could not be reached (503).
        """
        if not flags.session_exchange:
            raise ExchangeRefused(403, "exchange_disabled", "flag_off")
        started = time.monotonic()
        email: str | None = None
        try:
            now = self.clock()
            self._limit(Limit(f"session_exchange:ip:{client_ip}", self.limit_per_ip) if client_ip else None, now)
            try:
                claims = self.verifier.verify(access_token, now=now)
            except TokenRefused as exc:
                raise _invalid(exc.kind) from None
            self._limit(Limit(f"session_exchange:user:{claims.user_id}", self.limit_per_user), now)
            user = self._live_supabase_user(claims, now)
            email = user.email
            result = self._exchange(user, now, client_ip, user_agent)
        except ExchangeRefused as exc:
            self._event(flags, email, started, success=False, error_kind=exc.error)
            raise
        except ExchangeUnavailable:
            self._event(flags, email, started, success=False, error_kind="unavailable")
            raise
        self._event(flags, email, started, success=True, error_kind=None)
        return result

    # --- the steps --------------------------------------------------------------------------------

    def _limit(self, limit: Limit | None, now: datetime) -> None:
        if limit is None:
            return
        try:
            overrun = self.conns.transact("state", lambda conn: count_hits(conn, [limit], now=now))
        except psycopg.Error as exc:
            raise ExchangeUnavailable(f"rate limit unreadable ({type(exc).__name__})") from exc
        if overrun is not None:
            kind = overrun.bucket.split(":")[1]
            raise ExchangeRefused(429, "rate_limited", f"{kind}_limit", retry_after_s=overrun.retry_after_s)

    def _live_supabase_user(self, claims: AccessClaims, now: datetime) -> _SupabaseUser:
        if claims.session_id is None:
            raise _invalid("no_session")  # every GoTrue token since 2022 names its session
        try:
            row = self.conns.transact(
                "source",
                lambda conn: conn.execute(
                    """SELECT u.email, u.email_confirmed_at IS NOT NULL, u.raw_user_meta_data, u.encrypted_password,
                              u.banned_until, s.id IS NOT NULL, s.not_after
                       FROM auth.users u
                       LEFT JOIN auth.sessions s ON s.id = %(session)s::uuid AND s.user_id = u.id
                       WHERE u.id = %(user)s::uuid AND u.deleted_at IS NULL""",
                    {"user": claims.user_id, "session": claims.session_id},
                ).fetchone(),
            )
        except psycopg.Error as exc:
            raise ExchangeUnavailable(f"Supabase users unreadable ({type(exc).__name__})") from exc
        if row is None:
            raise _invalid("unknown_user")
        email, verified, metadata, password_hash, banned_until, has_session, not_after = row
        if banned_until is not None and banned_until > now:
            raise _invalid("banned_user")
        if not has_session:
            raise _invalid("session_revoked")
        if not_after is not None and not_after <= now:
            raise _invalid("session_expired")
        if not email:
            raise _invalid("no_email")  # a phone-only user: Better-Auth's email sign-in cannot hold them
        return _SupabaseUser(
            id=claims.user_id,
            email=email.strip().lower(),
            email_verified=bool(verified),
            metadata=metadata if isinstance(metadata, dict) else {},
            password_hash=password_hash or None,
        )

    def _exchange(self, user: _SupabaseUser, now: datetime, client_ip: str | None, user_agent: str | None) -> Exchanged:
        try:
            held = self.conns.transact("target", lambda conn: _better_auth_user(conn, user.id))
            lazy = False
            if held is None:
                new = NewUser(user.id, user.email, user.password_hash, user.email_verified, user.metadata, now)
                try:
                    lazy = migrate_lazily(self.conns, new, "lazy_exchange")
                except pg_errors.UniqueViolation:
                    self._warn("session exchange: Better-Auth holds this email under another id", {"user_id": user.id})
                    raise ExchangeRefused(409, "account_conflict", "email_held_by_another_id") from None
                held = self.conns.transact("target", lambda conn: _better_auth_user(conn, user.id))
            if held is None:
                # Claimed by another path that did not create them (adopted, then deleted): not ours to make.
                raise _invalid("unknown_user")
            session = self.conns.transact(
                "target",
                lambda conn: create_session(
                    conn,
                    user.id,
                    now=now,
                    expires_in_s=self.cookies.max_age_s,
                    ip_address=client_ip,
                    user_agent=user_agent,
                ),
            )
        except psycopg.Error as exc:
            raise ExchangeUnavailable(f"Better-Auth unwritable ({type(exc).__name__})") from exc
        return Exchanged(session, held, session_cookie(session.token, self.cookies), lazy)

    def _event(self, flags: Flags, email: str | None, started: float, *, success: bool, error_kind: str | None) -> None:
        event = AuthEvent(
            operation="session_exchange",
            system="better_auth",
            mode=flags.migration_mode.value,
            canary=route_for(flags, email).canary if email else False,
            success=success,
            error_kind=error_kind,
            latency_ms=int((time.monotonic() - started) * 1000),
            primary_system="better_auth",
        )
        try:
            self.conns.transact("state", lambda conn: record_event(conn, event))
        except psycopg.Error as exc:
            self._warn("auth event not recorded", {"error": type(exc).__name__})


def _better_auth_user(conn: psycopg.Connection, user_id: str) -> SessionUser | None:
    row = conn.execute(
        'SELECT id, email, name, image, "emailVerified", "createdAt", "updatedAt" FROM "user" WHERE id = %s',
        (user_id,),
    ).fetchone()
    if row is None:
        return None
    return SessionUser(
        id=row[0],
        email=row[1],
        name=row[2],
        image=row[3],
        email_verified=bool(row[4]),
        created_at=row[5],
        updated_at=row[6],
    )
