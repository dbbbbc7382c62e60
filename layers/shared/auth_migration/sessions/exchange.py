"""POST /auth/session/exchange: a valid Supabase session in, a Better-Auth session for the same user out.

The client sends its Supabase access token or its refresh token. Rules, in order (each refusal writes no
session, no user and no claim; every attempt past the flag is an auth_events row):
1. The SESSION_EXCHANGE flag is on (the operator turns it off after the cutover window).
2. The client IP is under its per-minute limit (counted before any token work: guessing costs a request).
3. The token is Supabase's: an access token verifies (supabase_tokens.py); a refresh token is one GoTrue
   holds, not revoked (or the parent of its session's active token, as GoTrue allows). Then the user is
   under their per-minute limit.
4. GoTrue's own records agree the session is live: the user exists, is not deleted or banned, and the
   session's auth.sessions row still exists (a signed-out session's token is refused, as GoTrue refuses it)
   and is not past `not_after`.
   Once Supabase's database is unreachable, the copy `auth-migrate sessions copy` made (session_copy.py)
   answers instead, for both token kinds; a user it finds must then be in Better-Auth already.
5. A refresh token is spent: exchanged at most once. A second use, or the use of a token GoTrue had rotated,
   is refused, logged as a possible theft, and ends that Supabase session's family: its tokens are refused
   from then on and the Better-Auth sessions they bought are deleted (either holder may be the thief).
6. A user Better-Auth does not hold yet is migrated lazily, on the same per-user claim as login, with the
   bcrypt hash GoTrue holds (their password keeps working).
7. A Better-Auth `session` row is written and its signed cookie returned (better_auth_sessions.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, NoReturn, TypeVar

import psycopg
from aws_lambda_powertools.shared.cookies import Cookie
from psycopg import errors as pg_errors

from auth_migration.clock import Clock, system_clock
from auth_migration.connections import Connections
from auth_migration.dual_write.directory import NewUser
from auth_migration.dual_write.lazy import migrate_lazily
from auth_migration.dual_write.records import AuthEvent, record_event
from auth_migration.dual_write.routing import route_for
from auth_migration.exceptions import DatabaseUnavailable
from auth_migration.flags import Flags
from auth_migration.sessions.better_auth_sessions import CookieSettings, NewSession, create_session, session_cookie
from auth_migration.sessions.rate_limits import Limit, count_hits
from auth_migration.sessions.refresh_tokens import (
    claim_token,
    copied_session,
    copied_token,
    end_family,
    live_token,
    release_token,
    token_hash,
    token_spent_on,
)
from auth_migration.sessions.supabase_tokens import AccessClaims, AccessTokenVerifier, KeysUnavailable, TokenRefused

__all__ = ["ExchangeRefused", "ExchangeUnavailable", "Exchanged", "SessionExchanger", "SessionUser"]

#: The auth_events error kind of every token refusal (a user's error, USER_ERROR_KINDS): the precise
#: reason goes to the log and metrics only, so the figures read one kind.
INVALID_TOKEN = "invalid_token"  # noqa: S105 - an error kind, not a secret
#: The auth_events error kind of a refusal, where it is not the reply's error code: a 429 here is our own limit
#: on the client (USER_ERROR_KINDS), unlike an auth system's rate_limited, which is that system's trouble.
_EVENT_KINDS: Final = {"rate_limited": "exchange_rate_limited"}
#: After Supabase's database fails to answer, how long the exchange reads the copy without trying it again
#: (each try can cost the 5 s connect timeout).
SOURCE_RETRY_AFTER: Final = timedelta(seconds=30)
T = TypeVar("T")


class _SourceGone(Exception):
    """Supabase's database did not answer: the copy speaks for it."""


class ExchangeRefused(Exception):
    """The exchange is refused: `status` and `error` are the reply; `reason` is for logs and metrics."""

    def __init__(
        self, status: int, error: str, reason: str, *, retry_after_s: int | None = None, user_id: str | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason
        self.retry_after_s = retry_after_s
        #: Set where the refusal names a known user (a reused refresh token: the incident's subject).
        self.user_id = user_id


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
    """The session's user. From the copy only the id is known: Better-Auth must hold them already."""

    id: str
    email: str | None
    email_verified: bool = False
    metadata: Mapping[str, Any] | None = None
    password_hash: str | None = None


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
        self._source_down_until: datetime | None = None

    def exchange(
        self,
        flags: Flags,
        *,
        access_token: str | None = None,
        refresh_token: str | None = None,
        client_ip: str | None,
        user_agent: str | None,
    ) -> Exchanged:
        """A Better-Auth session for the user of a live Supabase session, given exactly one of its tokens.

        Raises:
            ExchangeRefused: 401 invalid_token, 403 exchange_disabled, 409 account_conflict, 429 rate_limited.
            ExchangeUnavailable: a database could not be reached (503).
        """
        if (access_token is None) == (refresh_token is None):
            raise ValueError("exactly one of access_token and refresh_token")  # the API model guarantees it
        if not flags.session_exchange:
            raise ExchangeRefused(403, "exchange_disabled", "flag_off")
        started = time.monotonic()
        email: str | None = None
        try:
            now = self.clock()
            self._limit(Limit(f"session_exchange:ip:{client_ip}", self.limit_per_ip) if client_ip else None, now)
            if access_token is not None:
                try:
                    claims = self.verifier.verify(access_token, now=now)
                except TokenRefused as exc:
                    raise _invalid(exc.kind) from None
                except KeysUnavailable as exc:
                    raise ExchangeUnavailable("JWKS unreadable") from exc
                self._limit(Limit(f"session_exchange:user:{claims.user_id}", self.limit_per_user), now)
                user = self._session_user(claims, now)
                email = user.email
                result = self._exchange(user, now, client_ip, user_agent)
            else:
                assert refresh_token is not None
                result = self._exchange_refresh(refresh_token, now, client_ip, user_agent)
            email = result.user.email
        except ExchangeRefused as exc:
            self._event(flags, email, started, success=False, error_kind=_EVENT_KINDS.get(exc.error, exc.error))
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
        except (psycopg.Error, DatabaseUnavailable) as exc:
            raise ExchangeUnavailable(f"rate limit unreadable ({type(exc).__name__})") from exc
        if overrun is not None:
            kind = overrun.bucket.split(":")[1]
            raise ExchangeRefused(429, "rate_limited", f"{kind}_limit", retry_after_s=overrun.retry_after_s)

    # --- Supabase, live or copied ------------------------------------------------------------------

    def _from_source(self, fn: Callable[[psycopg.Connection], T], now: datetime) -> T:
        """`fn` on Supabase's database; _SourceGone when it does not answer (then, for SOURCE_RETRY_AFTER, at
        once). Any other database error is a 503: only an unreachable database hands over to the copy."""
        if self._source_down_until is not None and now < self._source_down_until:
            raise _SourceGone
        try:
            result = self.conns.transact("source", fn)
        except (DatabaseUnavailable, psycopg.OperationalError) as exc:
            if self._source_down_until is None:
                self._warn(
                    "Supabase unreachable: the session exchange reads the session copy", {"error": type(exc).__name__}
                )
            self._source_down_until = now + SOURCE_RETRY_AFTER
            raise _SourceGone from None
        except psycopg.Error as exc:
            raise ExchangeUnavailable(f"Supabase unreadable ({type(exc).__name__})") from exc
        self._source_down_until = None
        return result

    def _from_state(self, fn: Callable[[psycopg.Connection], T]) -> T:
        try:
            return self.conns.transact("state", fn)
        except (psycopg.Error, DatabaseUnavailable) as exc:
            raise ExchangeUnavailable(f"state unreachable ({type(exc).__name__})") from exc

    def _session_user(self, claims: AccessClaims, now: datetime) -> _SupabaseUser:
        if claims.session_id is None:
            raise _invalid("no_session")  # every GoTrue token since 2022 names its session
        try:
            return self._live_supabase_user(claims.user_id, claims.session_id, now)
        except _SourceGone:
            pass
        copied = self._from_state(lambda conn: copied_session(conn, claims.session_id or ""))
        if copied is None or copied.user_id != claims.user_id:
            raise _invalid("session_not_copied")
        return self._copied_user(copied.user_id, copied.ended, copied.not_after, copied.banned_until, now)

    @staticmethod
    def _copied_user(
        user_id: str, ended: bool, not_after: datetime | None, banned_until: datetime | None, now: datetime
    ) -> _SupabaseUser:
        if ended:
            raise _invalid("session_revoked")
        if not_after is not None and not_after <= now:
            raise _invalid("session_expired")
        if banned_until is not None and banned_until > now:
            raise _invalid("banned_user")
        return _SupabaseUser(id=user_id, email=None)

    def _live_supabase_user(self, user_id: str, session_id: str, now: datetime) -> _SupabaseUser:
        row = self._from_source(
            lambda conn: conn.execute(
                """SELECT u.email, u.email_confirmed_at IS NOT NULL, u.raw_user_meta_data, u.encrypted_password,
                              u.banned_until, s.id IS NOT NULL, s.not_after
                       FROM auth.users u
                       LEFT JOIN auth.sessions s ON s.id = %(session)s::uuid AND s.user_id = u.id
                       WHERE u.id = %(user)s::uuid AND u.deleted_at IS NULL""",
                {"user": user_id, "session": session_id},
            ).fetchone(),
            now,
        )
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
            id=user_id,
            email=email.strip().lower(),
            email_verified=bool(verified),
            metadata=metadata if isinstance(metadata, dict) else {},
            password_hash=password_hash or None,
        )

    def _exchange(self, user: _SupabaseUser, now: datetime, client_ip: str | None, user_agent: str | None) -> Exchanged:
        try:
            held = self.conns.transact("target", lambda conn: _better_auth_user(conn, user.id))
            lazy = False
            if held is None and user.email is None:
                # Known from the copy only: Supabase is gone and the bulk migration never wrote this user.
                raise _invalid("not_migrated")
            if held is None:
                assert user.email is not None
                new = NewUser(user.id, user.email, user.password_hash, user.email_verified, user.metadata or {}, now)
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
        except (psycopg.Error, DatabaseUnavailable) as exc:
            raise ExchangeUnavailable(f"Better-Auth unwritable ({type(exc).__name__})") from exc
        return Exchanged(session, held, session_cookie(session.token, self.cookies), lazy)

    # --- refresh tokens ------------------------------------------------------------------------------

    def _exchange_refresh(self, token: str, now: datetime, client_ip: str | None, user_agent: str | None) -> Exchanged:
        digest = token_hash(token)
        try:
            live = self._from_source(lambda conn: live_token(conn, token), now)
        except _SourceGone:
            copied = self._from_state(lambda conn: copied_token(conn, digest))
            if copied is None:
                raise _invalid("refresh_token_not_found") from None
            session = copied.session
            if copied.revoked or copied.spent:
                self._reused(session.user_id, session.session_id, now, "spent" if copied.spent else "rotated")
            self._limit(Limit(f"session_exchange:user:{session.user_id}", self.limit_per_user), now)
            user = self._copied_user(session.user_id, session.ended, session.not_after, session.banned_until, now)
            session_id = session.session_id
        else:
            if live is None:
                raise _invalid("refresh_token_not_found")  # never issued, or its session was signed out
            if live.revoked and not live.parent_of_active:
                self._reused(live.user_id, live.session_id, now, "rotated")
            self._limit(Limit(f"session_exchange:user:{live.user_id}", self.limit_per_user), now)
            user = self._live_supabase_user(live.user_id, live.session_id, now)
            session_id = live.session_id
        claimed = self._from_state(
            lambda conn: claim_token(conn, digest, user_id=user.id, session_id=session_id, now=now)
        )
        if not claimed:
            self._reused(user.id, session_id, now, "spent")
        try:
            result = self._exchange(user, now, client_ip, user_agent)
        except (ExchangeRefused, ExchangeUnavailable):
            try:
                self._from_state(lambda conn: release_token(conn, digest, claimed_at=now))
            except ExchangeUnavailable:
                self._warn("session exchange: a spent refresh token could not be given back", {"user_id": user.id})
            raise
        try:
            self._from_state(lambda conn: token_spent_on(conn, digest, result.session.id))
        except ExchangeUnavailable:
            # The token stays spent; only the theft response (deleting this session) cannot find it.
            self._warn("session exchange: the session a refresh token bought was not recorded", {"user_id": user.id})
        return result

    def _reused(self, user_id: str, session_id: str, now: datetime, how: str) -> NoReturn:
        """A refresh token used again (`spent`: exchanged before; `rotated`: GoTrue had replaced it): a possible
        theft. Ends the Supabase session's family and deletes the Better-Auth sessions it bought; raises 401."""
        self._warn(
            "refresh token reused: possible theft; the session is ended",
            {"user_id": user_id, "supabase_session_id": session_id, "reuse": how},
        )
        try:
            bought = self._from_state(lambda conn: end_family(conn, user_id=user_id, session_id=session_id, now=now))
            if bought:
                self.conns.transact(
                    "target", lambda conn: conn.execute("DELETE FROM session WHERE id = ANY(%s)", (bought,))
                )
        except (ExchangeUnavailable, psycopg.Error, DatabaseUnavailable) as exc:
            self._warn("refresh token reused: the session family could not be ended", {"error": type(exc).__name__})
        raise ExchangeRefused(401, INVALID_TOKEN, "refresh_token_reused", user_id=user_id)

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
        except (psycopg.Error, DatabaseUnavailable) as exc:
            # The reply stands (a 503 when the state is down): only its figure is lost, and said so.
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
