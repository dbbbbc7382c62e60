"""Signup and login across both auth systems: modes, primary, fallback, lazy migration, gap recording.

Rules (ARCHITECTURE.md, "Signup and login"):
- supabase_only / better_auth_only touch their one system only (mode isolation).
- dual_write: the primary answers; the secondary gets the SAME user id. Better-Auth's HTTP sign-up
  cannot take an id, so ids always come from the primary's sign-up and are carried into the other
  system where a chosen id is accepted: Better-Auth by SQL (its `user` + credential `account` rows),
  GoTrue by its admin API (`id` + `password_hash`). The bcrypt hash for that is computed in a worker
  thread while the primary's HTTP call is in flight, so the signup costs about the slower of the two,
  plus one cheap write.
- An email any system already holds is "already registered" before anything is created: nobody can
  sign up first with a not-yet-migrated user's email and take the account over.
- Every one-sided or disagreeing write is recorded in dual_write_gaps, then queued to Reconcile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg import errors as pg_errors

from auth_migration.backends.base import BETTER_AUTH, SUPABASE, AuthResult, BackendUser, SystemName
from auth_migration.backends.better_auth import BetterAuthBackend
from auth_migration.backends.errors import (
    BackendError,
    EmailNotConfirmed,
    InputRefused,
    InvalidCredentials,
    Misconfigured,
    Unavailable,
    UserExists,
)
from auth_migration.backends.supabase import SupabaseAuthBackend
from auth_migration.clock import Clock, system_clock
from auth_migration.connections import Connections
from auth_migration.dual_write.deadline import Runner
from auth_migration.dual_write.directory import (
    NewUser,
    credential_hash,
    find_better_auth_user,
    find_supabase_user,
    insert_better_auth_user,
    replace_credential_hash,
    supabase_hash,
)
from auth_migration.dual_write.lazy import migrate_lazily
from auth_migration.dual_write.passwords import better_auth_hash, hash_password, is_bcrypt_hash, password_fits_bcrypt
from auth_migration.dual_write.records import (
    AuthEvent,
    Gap,
    GapReason,
    claim_user,
    is_tracked,
    mark_status,
    record_event,
    record_gap,
)
from auth_migration.dual_write.routing import Route, route_for
from auth_migration.flags import Flags, MigrationMode
from auth_migration.names import display_name

__all__ = ["AuthOutcome", "AuthService", "BothUnavailable", "RepairQueue", "records_differ"]

T = TypeVar("T")

# Errors after which the other system is tried: no usable answer from this one.
_FALLBACK_ERRORS = (Unavailable, Misconfigured)


def may_have_written(exc: BackendError) -> bool:
    """Whether a failed call may still have changed the system: it was sent and no answer came back.

    A refused connection or an answered 5xx (GoTrue and Better-Auth roll a failed signup back) did not
    write; a timeout or a connection dropped mid-request may have.
    """
    if not isinstance(exc, Unavailable) or exc.status is not None:
        return False
    # httpx's names for "the request never left": the connection was refused or never established.
    return exc.detail not in ("ConnectError", "ConnectTimeout")


class BothUnavailable(Unavailable):
    """Neither system could serve the request."""

    kind = "both_unavailable"


class RepairQueue(Protocol):
    """Where gap ids go for Reconcile (SQS in AWS). Carries ids only, never a secret."""

    def send(self, message: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    """A successful signup or login and what it caused besides."""

    result: AuthResult
    route: Route
    lazy_migrated: bool = False
    gaps: tuple[int, ...] = field(default_factory=tuple)
    #: The kind of error the primary failed with when the other system gave the answer (a fallback), else None.
    primary_failure: str | None = None
    #: Why each dual-write gap of this request was recorded: "reason:detail" (an error kind or field names,
    #: never a value); for a signup also when the gap row could not be written and went to the queue whole.
    gap_reasons: tuple[str, ...] = field(default_factory=tuple)
    #: A login replaced the user's Supabase bcrypt hash with Better-Auth's scrypt (HASH_UPGRADE).
    hash_upgraded: bool = False

    @property
    def fallback(self) -> bool:
        """The answer came from the secondary system after the primary failed or timed out."""
        return self.primary_failure is not None


def records_differ(source: SystemName, supabase: BackendUser, better_auth: BackendUser) -> list[str]:
    """The fields where the two records of one user disagree (empty when consistent).

    Verified email is compared one way only when Better-Auth is the source: GoTrue has no "unverified
    but may sign in" state, so a Better-Auth user who was signed in unverified is confirmed in GoTrue.
    """
    problems = []
    if supabase.id != better_auth.id:
        problems.append("id")
    if supabase.email.strip().lower() != better_auth.email.strip().lower():
        problems.append("email")
    if better_auth.email_verified and not supabase.email_verified:
        problems.append("email_verified")
    if source == SUPABASE and supabase.email_verified and not better_auth.email_verified:
        problems.append("email_verified")
    if (
        source == SUPABASE
        and better_auth.name is not None
        and display_name(supabase.email, supabase.metadata) != better_auth.name
    ):
        problems.append("name")
    return problems


class AuthService:
    """Built once per container; `signup` / `login` take one flag snapshot per request."""

    def __init__(
        self,
        *,
        supabase: SupabaseAuthBackend,
        better_auth: BetterAuthBackend,
        connections: Connections,
        runner: Runner | None = None,
        repairs: RepairQueue | None = None,
        on_warning: Callable[[str, dict[str, Any]], None] | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.supabase = supabase
        self.better_auth = better_auth
        self.conns = connections
        self.runner = runner or Runner()
        self.repairs = repairs
        self._warn = on_warning or (lambda _msg, _extra: None)
        self.clock = clock

    # --- public -----------------------------------------------------------------------------------

    def signup(
        self,
        flags: Flags,
        email: str,
        password: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        client_ip: str | None = None,
    ) -> AuthOutcome:
        """Create the user per mode. Raises the backends' error kinds (UserExists, WeakPassword, ...)."""
        route = route_for(flags, email)
        started = time.monotonic()
        try:
            outcome = self._signup(route, flags, email.strip().lower(), password, dict(metadata or {}), client_ip)
        except BackendError as exc:
            self._event("signup", route, exc.system, False, exc.kind, started)
            raise
        self._event("signup", route, outcome.result.system, True, None, started)
        return outcome

    def login(self, flags: Flags, email: str, password: str, *, client_ip: str | None = None) -> AuthOutcome:
        """Sign in per mode. An unknown user and a wrong password raise the same InvalidCredentials."""
        route = route_for(flags, email)
        started = time.monotonic()
        try:
            outcome = self._login(route, flags, email.strip().lower(), password, client_ip)
        except BackendError as exc:
            self._event("login", route, exc.system, False, exc.kind, started)
            raise
        # Traffic is judged by the system asked first (AutoRollback, the canary figures). A primary that does
        # not hold the user (or cannot take its input) was not asked: the other system's success is no
        # fallback and must not read as the primary failing; a real fallback (primary_failure) still does.
        asked_first = route.primary
        if outcome.result.system != route.primary and outcome.primary_failure is None:
            asked_first = outcome.result.system
        self._event("login", route, outcome.result.system, True, None, started, asked_first=asked_first)
        return outcome

    def close(self) -> None:
        self.runner.close()

    # --- signup -----------------------------------------------------------------------------------

    def _signup(
        self,
        route: Route,
        flags: Flags,
        email: str,
        password: str,
        metadata: dict[str, Any],
        client_ip: str | None,
    ) -> AuthOutcome:
        seconds = flags.fallback_timeout_ms / 1000
        if route.mode is MigrationMode.SUPABASE_ONLY:
            result = self._sign_up(SUPABASE, email, password, metadata, client_ip, seconds)
            return AuthOutcome(result, route)
        if route.mode is MigrationMode.BETTER_AUTH_ONLY:
            # A Supabase user not yet migrated owns this email (checked in Supabase's own table).
            self._refuse_taken_email(email, systems=(SUPABASE,))
            result = self._sign_up(BETTER_AUTH, email, password, metadata, client_ip, seconds)
            return AuthOutcome(result, route)

        secondary = route.secondary
        assert secondary is not None
        hashed = self.runner.submit(lambda: hash_password(password))
        self._refuse_taken_email(email, systems=(SUPABASE, BETTER_AUTH))
        try:
            result = self._sign_up(route.primary, email, password, metadata, client_ip, seconds)
        except _FALLBACK_ERRORS as exc:
            return self._signup_fallback(route, flags, email, password, metadata, client_ip, hashed, exc)
        gaps, reasons = self._write_other(
            secondary, result, email, hashed.result(), metadata, flags, signed_in=result.session is not None
        )
        return AuthOutcome(result, route, gaps=gaps, gap_reasons=reasons)

    def _signup_fallback(
        self,
        route: Route,
        flags: Flags,
        email: str,
        password: str,
        metadata: dict[str, Any],
        client_ip: str | None,
        hashed: Future[str],
        primary_error: BackendError,
    ) -> AuthOutcome:
        primary, secondary = route.primary, route.secondary
        assert secondary is not None
        seconds = flags.fallback_timeout_ms / 1000

        def uncertain(error: BackendError) -> Gap:
            # No id is known; Reconcile looks the email up in both systems.
            return Gap(email, primary, "uncertain", password_hash=hashed.result(), metadata=metadata, detail=error.kind)

        if may_have_written(primary_error):
            # The primary may still commit this user after we stopped waiting, under an id of its own
            # choosing: creating them in the secondary now could make two people of one. Answer 503 and let
            # Reconcile look later (a retried signup then finds the user and says "already registered").
            self._report_gaps([uncertain(primary_error)])
            raise primary_error
        self._warn("signup primary failed; falling back", {"system": primary, "error": primary_error.kind})
        try:
            result = self._sign_up(secondary, email, password, metadata, client_ip, seconds)
        except _FALLBACK_ERRORS as exc:
            # Neither answered. A timed-out call may still have created the user: Reconcile finds out.
            self._report_gaps([uncertain(exc)])
            raise BothUnavailable(f"{primary}+{secondary}", detail="signup failed on both systems") from exc
        # The fallback system holds the user; carry them into the primary with the same id.
        gaps, reasons = self._write_other(
            primary,
            result,
            email,
            hashed.result(),
            metadata,
            flags,
            signed_in=result.session is not None,
            reason="fallback_signup",
        )
        return AuthOutcome(result, route, gaps=gaps, primary_failure=primary_error.kind, gap_reasons=reasons)

    def _write_other(
        self,
        system: SystemName,
        created: AuthResult,
        email: str,
        password_hash: str,
        metadata: dict[str, Any],
        flags: Flags,
        *,
        signed_in: bool,
        reason: GapReason = "secondary_failed",
    ) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """Carry the user just created in `created.system` into `system` with the same id; record any gap.

        Returns the gaps' ids and their "reason:detail"."""
        user = created.user
        seconds = flags.fallback_timeout_ms / 1000
        verified = user.email_verified or (signed_in and created.system == BETTER_AUTH)
        gap = Gap(
            email,
            created.system,
            reason,
            user_id=user.id,
            password_hash=password_hash,
            metadata=metadata,
            email_verified=verified,
        )
        new = NewUser(user.id, email, password_hash, verified, metadata, self.clock())

        def differences(other: BackendUser) -> list[str]:
            if not flags.migration_validation:
                return []
            supabase_user, better_auth_user = (other, user) if system == SUPABASE else (user, other)
            return records_differ(created.system, supabase_user, better_auth_user)

        def track(conn: psycopg.Connection, problems: list[str]) -> None:
            validated = flags.migration_validation and not problems
            claim_user(conn, user.id, email, "dual_write_signup", created_target=True)
            mark_status(conn, user.id, email, "dual_write", supabase=True, better_auth=True, validated=validated)

        def write_and_track(conn: psycopg.Connection) -> list[str]:
            # One database: the Better-Auth rows and their tracking rows commit together (or not at all).
            problems = differences(_write_better_auth(conn, new))
            track(conn, problems)
            return problems

        tracked = False
        try:
            if system == BETTER_AUTH and self.conns.shared_target:
                problems, tracked = self._in_state(write_and_track), True
            elif system == BETTER_AUTH:
                problems = differences(self._in_target(lambda conn: _write_better_auth(conn, new)))
            else:
                other = self._call(
                    SUPABASE,
                    lambda t: self.supabase.create_user(
                        email,
                        user_id=user.id,
                        password_hash=password_hash,
                        email_confirm=verified,
                        user_metadata=metadata,
                        timeout=t,
                    ),
                    seconds,
                )
                problems = differences(other)
        except Exception as exc:  # any failure here leaves the user one-sided: it must become a gap
            kind = exc.kind if isinstance(exc, BackendError) else type(exc).__name__
            self._warn("dual-write secondary failed; gap recorded", {"system": system, "error": kind})
            return self._report_gaps([replace(gap, detail=kind)]), (f"{reason}:{kind}",)
        if not tracked:
            try:
                self._in_state(lambda conn: track(conn, problems))
            except psycopg.Error as exc:
                self._warn("status record failed after dual write", {"error": type(exc).__name__})
        if problems:
            detail = ",".join(problems)
            return self._report_gaps([replace(gap, reason="mismatch", detail=detail)]), (f"mismatch:{detail}",)
        return (), ()

    # --- login ------------------------------------------------------------------------------------

    def _login(self, route: Route, flags: Flags, email: str, password: str, client_ip: str | None) -> AuthOutcome:
        seconds = flags.fallback_timeout_ms / 1000
        primary, secondary = route.primary, route.secondary
        if secondary is None:
            try:
                return AuthOutcome(self._sign_in(primary, email, password, client_ip, seconds), route)
            except InputRefused as exc:
                raise _refused_as_invalid(exc) from exc
        # Who holds the user decides. A primary that does not hold them is not asked (one HTTP call saved for
        # every user not yet migrated), and "wrong password" is final only from the holder. The holder is
        # looked up again after a refusal: a rollback may have removed the user in between.
        first_error: BackendError
        held = self._holds(primary, email)
        if held is False:
            first_error = InvalidCredentials(primary, detail="does not hold the user")
        else:
            try:
                result = self._sign_in(primary, email, password, client_ip, seconds)
            except EmailNotConfirmed:
                raise
            except InputRefused as exc:
                # The primary's rules refuse the address (or the password's length) whether or not it holds
                # the user: it cannot sign them in, so this is no verdict. The other system may (a Supabase
                # user with `tilde~t@` and a Better-Auth of stricter rules); otherwise the plain 401.
                first_error = _refused_as_invalid(exc)
            except InvalidCredentials as exc:
                if self._holds(primary, email) is True:
                    raise
                first_error = exc
            except _FALLBACK_ERRORS as exc:
                first_error = exc
            else:
                return self._after_login(route, flags, result, email, password)
        # Only a system failure of the primary makes the other system's answer a fallback (not "does not hold").
        primary_failure = first_error.kind if isinstance(first_error, _FALLBACK_ERRORS) else None
        try:
            result = self._sign_in(secondary, email, password, client_ip, seconds)
        except InputRefused as exc:
            raise _refused_as_invalid(exc) from exc
        except InvalidCredentials:
            raise
        except _FALLBACK_ERRORS as exc:
            if isinstance(first_error, InvalidCredentials) and self._holds(secondary, email) is False:
                # Neither system holds this email: the answer is known without the one that is down.
                raise InvalidCredentials(secondary, detail="no system holds the user") from exc
            if isinstance(first_error, InvalidCredentials):
                raise  # the primary does not hold the user; the one that might is down
            raise BothUnavailable(f"{primary}+{secondary}", detail="login failed on both systems") from exc
        return self._after_login(route, flags, result, email, password, primary_failure=primary_failure)

    def _after_login(
        self,
        route: Route,
        flags: Flags,
        result: AuthResult,
        email: str,
        password: str,
        *,
        primary_failure: str | None = None,
    ) -> AuthOutcome:
        if result.system != SUPABASE:
            upgraded = flags.hash_upgrade and self._upgrade_hash(route, result.user.id, password)
            return AuthOutcome(result, route, primary_failure=primary_failure, hash_upgraded=upgraded)
        try:
            migrated, gaps = self._lazy_migrate(result.user, email, password)
        except Exception as exc:
            # The login itself succeeded: lazy migration is best effort, and the bulk run catches the user.
            self._warn("lazy migration failed", {"error": type(exc).__name__})
            return AuthOutcome(result, route, primary_failure=primary_failure)
        reasons = ("lazy_failed:email held by another id",) if gaps else ()
        return AuthOutcome(
            result, route, lazy_migrated=migrated, gaps=gaps, primary_failure=primary_failure, gap_reasons=reasons
        )

    def _lazy_migrate(self, user: BackendUser, email: str, password: str) -> tuple[bool, tuple[int, ...]]:
        """Create a Supabase user in Better-Auth at login, with the same id and the password just verified
        (dual_write/lazy.py: the claim every path shares)."""
        if self._in_state(lambda conn: is_tracked(conn, user.id)):
            return False, ()
        if password_fits_bcrypt(password):
            password_hash: str | None = hash_password(password)
        else:
            # bcrypt reads 72 bytes at most: GoTrue's own hash of this password is the one that verifies it.
            password_hash = self.conns.transact("source", lambda conn: supabase_hash(conn, user.id))
        new = NewUser(user.id, email, password_hash, user.email_verified, user.metadata, self.clock())
        try:
            return migrate_lazily(self.conns, new, "lazy_login"), ()
        except pg_errors.UniqueViolation:
            # Better-Auth holds this email under another id: a person must decide; Reconcile records it.
            gap = Gap(
                email,
                SUPABASE,
                "lazy_failed",
                user_id=user.id,
                password_hash=new.password_hash,
                metadata=user.metadata,
                email_verified=user.email_verified,
                detail="email held by another id",
            )
            return False, self._report_gaps([gap])

    def _upgrade_hash(self, route: Route, user_id: str, password: str) -> bool:
        """After Better-Auth verified `password`, replace a Supabase bcrypt hash in its credential account
        with Better-Auth's own scrypt hash; whether it did. Best effort: the login has succeeded already.

        Compare-and-set on the old hash, so a concurrent upgrade or password change is never overwritten.
        A password over bcrypt's 72 bytes is left alone: bcrypt checked only its first 72, and a scrypt hash of
        the whole string typed today would refuse a suffix that signs in now.
        """
        if not password_fits_bcrypt(password):
            return False
        started = time.monotonic()
        try:
            held = self._in_target(lambda conn: credential_hash(conn, user_id))
            if not is_bcrypt_hash(held):
                return False
            assert held is not None
            upgraded = better_auth_hash(password)
            done = self._in_target(lambda conn: replace_credential_hash(conn, user_id, held, upgraded))
        except psycopg.Error as exc:
            self._warn("hash upgrade failed", {"error": type(exc).__name__})
            self._event("hash_upgrade", route, BETTER_AUTH, False, "unavailable", started)
            return False
        if done:
            self._event("hash_upgrade", route, BETTER_AUTH, True, None, started, asked_first=BETTER_AUTH)
        return done

    # --- shared -----------------------------------------------------------------------------------

    def _backend(self, system: SystemName) -> SupabaseAuthBackend | BetterAuthBackend:
        return self.supabase if system == SUPABASE else self.better_auth

    def _call(self, system: SystemName, fn: Callable[[float], T], seconds: float) -> T:
        return self.runner.call(system, fn, seconds)

    def _sign_up(
        self,
        system: SystemName,
        email: str,
        password: str,
        metadata: dict[str, Any],
        client_ip: str | None,
        seconds: float,
    ) -> AuthResult:
        backend = self._backend(system)
        return self._call(
            system, lambda t: backend.sign_up(email, password, metadata, client_ip=client_ip, timeout=t), seconds
        )

    def _sign_in(
        self, system: SystemName, email: str, password: str, client_ip: str | None, seconds: float
    ) -> AuthResult:
        backend = self._backend(system)
        return self._call(system, lambda t: backend.sign_in(email, password, client_ip=client_ip, timeout=t), seconds)

    def _holder(self, system: SystemName, email: str) -> BackendUser | None:
        """The user `system` holds under `email` (its own table), or None; raises Unavailable if unknowable."""
        try:
            if system == SUPABASE:
                return self.conns.transact("source", lambda conn: find_supabase_user(conn, email=email))
            return self._in_target(lambda conn: find_better_auth_user(conn, email=email))
        except psycopg.Error as exc:
            raise Unavailable(system, detail=f"cannot look the email up ({type(exc).__name__})") from exc

    def _holds(self, system: SystemName, email: str) -> bool | None:
        """Whether `system` holds a user with this email; None when its table cannot be read."""
        try:
            return self._holder(system, email) is not None
        except Unavailable:
            return None

    def _refuse_taken_email(self, email: str, *, systems: tuple[SystemName, ...]) -> None:
        """UserExists when any of `systems` already holds the email; Unavailable when that cannot be known."""
        for system in systems:
            if self._holder(system, email) is not None:
                raise UserExists(system, detail="email already registered")

    def _report_gaps(self, gaps: list[Gap]) -> tuple[int, ...]:
        """Record each gap (the record of truth), then queue its id for Reconcile. Never raises."""
        ids: list[int] = []
        for gap in gaps:
            try:
                gap_id = self._record(gap)
            except psycopg.Error as exc:
                # The state database is unreachable: the queue message itself must carry the gap (no secret).
                self._warn("gap could not be recorded; queueing it whole", {"error": type(exc).__name__})
                self._enqueue({"gap": _queueable(gap)})
                continue
            ids.append(gap_id)
            self._enqueue({"gap_id": gap_id})
        return tuple(ids)

    def _record(self, gap: Gap) -> int:
        return self._in_state(lambda conn: record_gap(conn, gap))

    def _enqueue(self, message: Mapping[str, Any]) -> None:
        if self.repairs is None:
            return  # no queue configured: the Reconcile sweep finds open gaps in the table
        try:
            self.repairs.send(message)
        except Exception as exc:  # any queue failure: the table row stays open for the sweep
            self._warn("reconcile enqueue failed; the sweep will pick the gap up", {"error": type(exc).__name__})

    def _event(
        self,
        operation: str,
        route: Route,
        system: str,
        success: bool,
        error_kind: str | None,
        started: float,
        *,
        asked_first: str | None = None,
    ) -> None:
        event = AuthEvent(
            operation=operation if operation in ("signup", "hash_upgrade") else "login",  # type: ignore[arg-type]
            system=system,
            mode=route.mode.value,
            canary=route.canary,
            success=success,
            error_kind=error_kind,
            latency_ms=int((time.monotonic() - started) * 1000),
            primary_system=asked_first or route.primary,
        )
        try:
            self._in_state(lambda conn: record_event(conn, event))
        except psycopg.Error as exc:
            self._warn("auth event not recorded", {"error": type(exc).__name__})

    def _in_state(self, fn: Callable[[psycopg.Connection], T]) -> T:
        return self.conns.transact("state", fn)

    def _in_target(self, fn: Callable[[psycopg.Connection], T]) -> T:
        return self.conns.transact("target", fn)


def _refused_as_invalid(exc: InputRefused) -> InvalidCredentials:
    """A sign-in the system's input rules refused, answered as "invalid email or password": an unknown user
    with an unusual address gets the same 401 as one with a plain address (no oracle for which exist)."""
    return InvalidCredentials(exc.system, status=exc.status, code=exc.code, detail="the system refuses the input")


def _queueable(gap: Gap) -> dict[str, Any]:
    """A gap as a queue message: everything but the password hash."""
    return {
        "email": gap.email,
        "user_id": gap.user_id,
        "source_system": gap.source_system,
        "reason": gap.reason,
        "email_verified": gap.email_verified,
    }


def _write_better_auth(conn: psycopg.Connection, new: NewUser) -> BackendUser:
    """Write the Better-Auth rows with the given id; the record as Better-Auth now holds it.

    Raises:
        UserExists: the email belongs to another id there.
    """
    try:
        insert_better_auth_user(conn, new)
    except pg_errors.UniqueViolation as exc:
        raise UserExists(BETTER_AUTH, detail="email held by another id") from exc
    held = find_better_auth_user(conn, user_id=new.id)
    if held is None:  # pragma: no cover - we just inserted it in this transaction
        raise Unavailable(BETTER_AUTH, detail="user vanished after insert")
    return held
