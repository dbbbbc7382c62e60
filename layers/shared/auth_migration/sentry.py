"""Sentry, for the functions that have a DSN: `init_sentry` imports sentry_sdk (no other function pays for it),
and what the reference document sends, the way this bundle can: auth events, migration batches,
dual-write inconsistencies, AutoRollback as a cron monitor. Every event, transaction and breadcrumb passes
`observability.scrub` first. Without a DSN every report here is a no-op that imports nothing.

What Sentry receives (docs/OBSERVABILITY.md):
- Every signup and login: tags auth_system, auth_event_type, migration_mode, canary_user, success, fallback,
  primary_system; contexts `auth_event` and `migration` (the flags in force); its latency as span data
  (`auth_signup_duration` / `auth_login_duration`, ms). A success is a breadcrumb; a system failure (the 503s,
  the failures AutoRollback counts) is an `AuthSignupError` / `AuthLoginError` grouped by
  [name, system, error kind]; a user's own error (wrong password, taken email, weak password) is a breadcrumb.
- Every session exchange (POST /auth/session/exchange): the same tags with auth_event_type=session_exchange,
  plus exchange_input (access | refresh: the kind of token sent; a key naming a token would be scrubbed);
  context `auth_event`; span data `auth_exchange_duration`. A
  success is a breadcrumb (lazy migration noted); a refusal is a breadcrumb, except a refresh token used a
  second time, which is a `SessionTokenReuse` warning grouped as one issue (a possible theft: the user id and
  Supabase session are on it, never the token); a database failure is an `AuthSessionExchangeError`.
  A login that upgraded a bcrypt hash to Better-Auth's scrypt says so in its context and a breadcrumb.
- A dual-write gap: a `MigrationError` tagged migration_event=dual_write_inconsistency, grouped by
  [dual_write_inconsistency, missing system, reason].
- A MigrateBatch record: a transaction (a span under Lambda's) with a span per statement group (read_source,
  transform, write_target, tracking); a failure is a `MigrationError` tagged migration_event=migration_error,
  migration_id, grouped by [MigrationError, batch, exception type].
- AutoRollback: cron check-ins (in_progress, then ok or error) of monitor AUTO_ROLLBACK_MONITOR_SLUG on the
  template's schedule; a rollback or a shared outage is an event of its own.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from auth_migration.observability import scrub

if TYPE_CHECKING:
    from sentry_sdk.transport import Transport

    from auth_migration.settings import Settings

__all__ = [
    "AUTO_ROLLBACK_MONITOR_CONFIG",
    "AUTO_ROLLBACK_MONITOR_SLUG",
    "AUTO_ROLLBACK_SCHEDULE",
    "BATCH_PHASES",
    "REFRESH_TOKEN_REUSED",
    "AuthLoginError",
    "AuthReport",
    "AuthRequest",
    "AuthSessionExchangeError",
    "AuthSignupError",
    "BatchReport",
    "ExchangeReport",
    "MigrationError",
    "RunReport",
    "SessionTokenReuse",
    "auth_event",
    "auto_rollback_run",
    "close_sentry",
    "exchange_event",
    "init_sentry",
    "invocation_scope",
    "migration_batch",
    "monitor_schedule",
    "sentry_enabled",
]

Timer = Callable[[], float]


# --- the error names the reference document gives its Sentry issues --------------------------------------


class AuthSignupError(Exception):
    """A signup failed because an auth system did (never a user's own error)."""


class AuthLoginError(Exception):
    """A login failed because an auth system did (never a wrong password)."""


class AuthSessionExchangeError(Exception):
    """A session exchange failed because a database it needs did (never a refused token)."""


class SessionTokenReuse(Exception):
    """A Supabase refresh token used after it was spent or rotated: a possible theft."""


class MigrationError(Exception):
    """A migration event that went wrong: a failed batch, a dual-write inconsistency."""


_AUTH_ERRORS: Final[Mapping[str, type[Exception]]] = {"signup": AuthSignupError, "login": AuthLoginError}

# --- AutoRollback's cron monitor ---------------------------------------------------------------------------

#: template.yaml's AutoRollbackFunction Events.EveryMinute schedule (a test holds the two together).
AUTO_ROLLBACK_SCHEDULE: Final = "rate(1 minute)"
AUTO_ROLLBACK_MONITOR_SLUG: Final = "auth-migration-auto-rollback"

_RATE_RE: Final = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON_RE: Final = re.compile(r"^cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)$")


def monitor_schedule(expression: str) -> dict[str, Any]:
    """A Sentry monitor schedule from an EventBridge schedule expression.

    `rate(5 minutes)` -> {"type": "interval", "value": 5, "unit": "minute"}; `cron(0 12 * * ? *)` -> a crontab
    (EventBridge's year field dropped, its `?` read as `*`).

    Raises
    ------
    ValueError
        Not a rate() or cron() expression Sentry can follow.
    """
    text = expression.strip()
    rate = _RATE_RE.match(text)
    if rate is not None:
        return {"type": "interval", "value": int(rate.group(1)), "unit": rate.group(2).removesuffix("s")}
    cron = _CRON_RE.match(text)
    if cron is not None and cron.group(6) in ("*", "?"):
        fields = [part.replace("?", "*") for part in cron.groups()[:5]]
        return {"type": "crontab", "value": " ".join(fields)}
    raise ValueError(f"not a schedule expression Sentry can follow: {expression!r}")


AUTO_ROLLBACK_MONITOR_CONFIG: Final[dict[str, Any]] = {
    "schedule": monitor_schedule(AUTO_ROLLBACK_SCHEDULE),
    "timezone": "UTC",
    # A tick may start a little late; a run is cut at the function's Timeout (50 s) anyway.
    "checkin_margin": 1,
    "max_runtime": 1,
    # Two failed or missed runs in a row open the issue: one lost tick is noise, two is a guard not guarding.
    "failure_issue_threshold": 2,
    "recovery_threshold": 1,
}

# --- set-up ------------------------------------------------------------------------------------------------

# Keys Sentry's own EventScrubber does not know (it matches whole key names, in request/extra/user/frames/
# breadcrumb data, never tags or contexts: `scrub` covers those).
_EXTRA_DENYLIST: Final = (
    "password_hash",
    "encrypted_password",
    "refresh_token",
    "access_token",
    "session_token",
    "id_token",
    "service_key",
    "anon_key",
    "jwt_secret",
    "apikey",
    "x-api-key",
    "database_url",
    "dsn",
)


@dataclass
class _State:
    enabled: bool = False
    hash_emails: bool = True


_state = _State()


def sentry_enabled() -> bool:
    return _state.enabled


def init_sentry(settings: Settings, *, transport: Transport | None = None) -> bool:
    """Start Sentry when SENTRY_DSN (SSM SecureString, or the environment) is set; False (and nothing
    imported) when it is not. `transport`: where envelopes go instead of Sentry's HTTP endpoint (tests)."""
    dsn = settings.sentry_dsn.get_secret_value() if settings.sentry_dsn is not None else None
    if not dsn:
        return False
    import sentry_sdk  # lazily: only functions with a DSN pay for it
    from sentry_sdk.integrations.aws_lambda import AwsLambdaIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    hash_emails = settings.sentry_hash_emails

    def before_send(event: Any, _hint: Any) -> Any:
        return scrub(event, hash_emails=hash_emails)

    def before_breadcrumb(crumb: Any, _hint: Any) -> Any:
        return scrub(crumb, hash_emails=hash_emails)

    options: dict[str, Any] = {}
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(
        dsn=dsn,
        environment=settings.stage,
        # Neither send_default_pii (deprecated) nor data_collection given: the SDK collects no personal data
        # (no bodies, no IPs, no cookies). Frame locals would carry passwords and hashes under any name.
        include_local_variables=False,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        before_send=before_send,
        before_send_transaction=before_send,
        before_breadcrumb=before_breadcrumb,
        event_scrubber=EventScrubber(denylist=[*DEFAULT_DENYLIST, *_EXTRA_DENYLIST], recursive=True),
        integrations=[
            # Warns 1.5 s before the function's timeout; a no-op outside Lambda (tests, the local runtime).
            AwsLambdaIntegration(timeout_warning=True),
            # Log records become breadcrumbs, never events: errors are captured explicitly, grouped, once.
            LoggingIntegration(level=logging.INFO, event_level=None),
        ],
        **options,
    )
    _state.enabled, _state.hash_emails = True, hash_emails
    return True


def close_sentry() -> None:
    """Flush and detach the client (tests, and a process that is done); a no-op when Sentry is off."""
    if not _state.enabled:
        return
    import sentry_sdk

    client = sentry_sdk.get_client()
    client.close()
    sentry_sdk.get_global_scope().set_client(None)
    _state.enabled = False


@contextmanager
def invocation_scope() -> Iterator[None]:
    """One isolation scope (tags, breadcrumbs) per invocation where Lambda's integration does not make one."""
    if not _state.enabled:
        yield
        return
    import sentry_sdk

    with sentry_sdk.isolation_scope():
        yield


def _start(op: str, name: str) -> Any:
    """A transaction where none is running (tests, the local runtime), else a span of the running one
    (Lambda's integration runs each invocation as a transaction)."""
    import sentry_sdk

    if sentry_sdk.get_current_span() is None:
        return sentry_sdk.start_transaction(op=op, name=name)
    return sentry_sdk.start_span(op=op, name=name)


def _flag(value: bool) -> str:
    return "true" if value else "false"


# --- auth events ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """What is known of a signup or login before it runs: its route and the flags in force."""

    operation: Literal["signup", "login"]
    email: str
    mode: str
    primary: str
    canary: bool
    #: The `migration` context: the flags that chose the route (no whitelist: it holds emails).
    migration: Mapping[str, Any] = field(default_factory=dict)


class AuthReport(Protocol):
    def succeeded(
        self,
        *,
        system: str,
        user_id: str,
        latency_ms: float,
        fallback_from: str | None = None,
        lazy_migrated: bool = False,
        hash_upgraded: bool = False,
        inconsistencies: Sequence[tuple[str, str]] = (),
    ) -> None:
        """The request was answered by `system`. `fallback_from`: the primary's error kind when the answer came
        from the other system; `hash_upgraded`: a login replaced a bcrypt hash with Better-Auth's scrypt;
        `inconsistencies`: (missing system, reason) of every dual-write gap recorded."""

    def failed(
        self, *, system: str, kind: str, status: int, latency_ms: float, user_error: bool, cause: BaseException
    ) -> None:
        """The request was refused (`user_error`) or failed; only a failure becomes an issue."""


class _NoAuthReport:
    def succeeded(
        self,
        *,
        system: str,
        user_id: str,
        latency_ms: float,
        fallback_from: str | None = None,
        lazy_migrated: bool = False,
        hash_upgraded: bool = False,
        inconsistencies: Sequence[tuple[str, str]] = (),
    ) -> None:
        return None

    def failed(
        self, *, system: str, kind: str, status: int, latency_ms: float, user_error: bool, cause: BaseException
    ) -> None:
        return None


_NO_AUTH_REPORT: Final = _NoAuthReport()


class _SentryAuthReport:
    def __init__(self, request: AuthRequest, scope: Any, span: Any) -> None:
        self.request, self.scope, self.span = request, scope, span
        self.ended = False

    def _tags(self, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.scope.set_tag(key, value)
            self.span.set_tag(key, value)

    def _context(self, system: str, success: bool, latency_ms: float, **more: Any) -> None:
        request = self.request
        self.scope.set_context(
            "auth_event",
            {
                "type": request.operation,
                "auth_system": system,
                "primary_system": request.primary,
                "success": success,
                "duration_ms": latency_ms,
                "canary_user": request.canary,
                "migration_mode": request.mode,
                **more,
            },
        )
        self.span.set_data(f"auth_{request.operation}_duration", latency_ms)
        self.span.set_data("auth_system", system)
        self.span.set_data("canary_user", request.canary)

    def succeeded(
        self,
        *,
        system: str,
        user_id: str,
        latency_ms: float,
        fallback_from: str | None = None,
        lazy_migrated: bool = False,
        hash_upgraded: bool = False,
        inconsistencies: Sequence[tuple[str, str]] = (),
    ) -> None:
        import sentry_sdk

        request, fallback = self.request, fallback_from is not None
        self.ended = True
        self._tags({"auth_system": system, "success": "true", "fallback": _flag(fallback)})
        self._context(
            system,
            True,
            latency_ms,
            fallback=fallback,
            fallback_from=fallback_from,
            lazy=lazy_migrated,
            upgraded_to_scrypt=hash_upgraded,
        )
        self.span.set_http_status(200)
        self.scope.set_user({"id": user_id, "email": request.email})
        sentry_sdk.add_breadcrumb(
            category="auth",
            message=f"{request.operation} successful for {request.email}",
            level="info",
            data={"auth_system": system, "duration_ms": latency_ms, "fallback": fallback, "lazy": lazy_migrated},
        )
        if hash_upgraded:
            sentry_sdk.add_breadcrumb(
                category="auth",
                message="password hash upgraded: Supabase bcrypt replaced by Better-Auth's scrypt",
                level="info",
            )
        if fallback:
            sentry_sdk.add_breadcrumb(
                category="auth",
                message=f"{request.operation} fell back: {request.primary} failed ({fallback_from}), {system} answered",
                level="warning",
                data={"primary_system": request.primary, "error_kind": fallback_from},
            )
        for missing, reason in inconsistencies:
            self._inconsistency(system, missing, reason)

    def _inconsistency(self, held_by: str, missing: str, reason: str) -> None:
        import sentry_sdk

        kind, _, detail = reason.partition(":")
        sentry_sdk.capture_exception(
            MigrationError(f"Migration dual_write_inconsistency: {reason} ({missing} lacks the user)"),
            level="warning",
            fingerprint=["dual_write_inconsistency", missing, reason],
            tags={"migration_event": "dual_write_inconsistency", "missing_system": missing, "gap_reason": kind},
            contexts={
                "migration_event": {
                    "type": "dual_write_inconsistency",
                    "reason": kind,
                    "detail": detail or None,
                    "held_by": held_by,
                    "missing_system": missing,
                    "migration_mode": self.request.mode,
                    "canary_enabled": self.request.migration.get("canary_enabled"),
                }
            },
        )

    def failed(
        self, *, system: str, kind: str, status: int, latency_ms: float, user_error: bool, cause: BaseException
    ) -> None:
        import sentry_sdk

        request = self.request
        self.ended = True
        self._tags({"auth_system": system, "success": "false", "fallback": "false", "error_kind": kind})
        self._context(system, False, latency_ms, error_kind=kind, user_error=user_error)
        self.span.set_http_status(status)
        if user_error:
            sentry_sdk.add_breadcrumb(
                category="auth",
                message=f"{request.operation} refused: {kind}",
                level="info",
                data={"auth_system": system, "status": status},
            )
            return
        name = _AUTH_ERRORS[request.operation]
        error = name(f"Auth {request.operation} failed: {kind} ({system})")
        error.__cause__ = cause
        sentry_sdk.capture_exception(error, level="error", fingerprint=[name.__name__, system, kind])


class _Ends(Protocol):
    ended: bool


@contextmanager
def _request_scope[R: _Ends](
    name: str, tags: Mapping[str, str], migration: Mapping[str, Any], report: Callable[[Any, Any], R]
) -> Iterator[R]:
    """A request's own isolation scope (its tags and breadcrumbs only) and its transaction `name`, tagged alike,
    and the report made on them. The span is entered and left by hand: its status is the request's, not
    "internal_error" for a 401; only an exception the report did not see marks it so."""
    import sentry_sdk

    with sentry_sdk.isolation_scope() as scope:
        for key, value in tags.items():
            scope.set_tag(key, value)
        scope.set_context("migration", dict(migration))
        span = _start("auth", name)
        for key, value in tags.items():
            span.set_tag(key, value)
        span.__enter__()
        made = report(scope, span)
        try:
            yield made
        except BaseException:
            if not made.ended:
                span.set_status("internal_error")
            raise
        finally:
            span.__exit__(None, None, None)


@contextmanager
def auth_event(request: AuthRequest) -> Iterator[AuthReport]:
    """One signup or login: its own isolation scope (tags and breadcrumbs of this request only) and its
    transaction `auth.<operation>`; report the outcome on what it yields."""
    if not _state.enabled:
        yield _NO_AUTH_REPORT
        return
    tags = {
        "auth_event_type": request.operation,
        "migration_mode": request.mode,
        "canary_user": _flag(request.canary),
        "primary_system": request.primary,
    }
    with _request_scope(
        f"auth.{request.operation}",
        tags,
        request.migration,
        lambda scope, span: _SentryAuthReport(request, scope, span),
    ) as report:
        yield report


# --- session exchanges -------------------------------------------------------------------------------------

#: The refusal reason of a refresh token used again (sessions/exchange.py): the one refusal that is an issue.
REFRESH_TOKEN_REUSED: Final = "refresh_token_reused"  # noqa: S105 - a refusal reason, not a secret


class ExchangeReport(Protocol):
    def exchanged(self, *, user_id: str, latency_ms: float, lazy_migrated: bool) -> None:
        """A Better-Auth session was made for `user_id` (migrated first when `lazy_migrated`)."""

    def refused(self, *, status: int, error: str, reason: str, latency_ms: float, user_id: str | None) -> None:
        """The exchange was refused (a 4xx); a reused refresh token is captured as a possible theft."""

    def unavailable(self, *, reason: str, latency_ms: float, cause: BaseException) -> None:
        """A database the exchange needs failed (the 503): an AuthSessionExchangeError."""


class _NoExchangeReport:
    def exchanged(self, *, user_id: str, latency_ms: float, lazy_migrated: bool) -> None:
        return None

    def refused(self, *, status: int, error: str, reason: str, latency_ms: float, user_id: str | None) -> None:
        return None

    def unavailable(self, *, reason: str, latency_ms: float, cause: BaseException) -> None:
        return None


_NO_EXCHANGE_REPORT: Final = _NoExchangeReport()


class _SentryExchangeReport:
    def __init__(self, token_kind: str, mode: str, scope: Any, span: Any) -> None:
        self.token_kind, self.mode, self.scope, self.span = token_kind, mode, scope, span
        self.ended = False

    def _end(
        self, *, success: bool, status: int, latency_ms: float, error_kind: str | None = None, **more: Any
    ) -> None:
        self.ended = True
        tags = {"success": _flag(success)} if error_kind is None else {"success": "false", "error_kind": error_kind}
        for key, value in tags.items():
            self.scope.set_tag(key, value)
            self.span.set_tag(key, value)
        self.scope.set_context(
            "auth_event",
            {
                "type": "session_exchange",
                "auth_system": "better_auth",
                "exchange_input": self.token_kind,
                "success": success,
                "duration_ms": latency_ms,
                "migration_mode": self.mode,
                "error_kind": error_kind,
                **more,
            },
        )
        self.span.set_data("auth_exchange_duration", latency_ms)
        self.span.set_http_status(status)

    def exchanged(self, *, user_id: str, latency_ms: float, lazy_migrated: bool) -> None:
        import sentry_sdk

        self._end(success=True, status=200, latency_ms=latency_ms, lazy=lazy_migrated)
        self.scope.set_user({"id": user_id})
        sentry_sdk.add_breadcrumb(
            category="auth",
            message=f"session_exchange successful ({self.token_kind} token)",
            level="info",
            data={"duration_ms": latency_ms, "lazy": lazy_migrated},
        )

    def refused(self, *, status: int, error: str, reason: str, latency_ms: float, user_id: str | None) -> None:
        import sentry_sdk

        self._end(success=False, status=status, latency_ms=latency_ms, error_kind=error, reason=reason)
        if user_id is not None:
            self.scope.set_user({"id": user_id})
        if reason != REFRESH_TOKEN_REUSED:
            sentry_sdk.add_breadcrumb(
                category="auth",
                message=f"session_exchange refused: {error} ({reason})",
                level="info",
                data={"status": status, "exchange_input": self.token_kind},
            )
            return
        # One issue for every reuse (Sentry counts events and users on it): a spike is an attack in progress.
        sentry_sdk.capture_exception(
            SessionTokenReuse("Supabase refresh token reused: possible theft; the session family was ended"),
            level="warning",
            fingerprint=["SessionTokenReuse"],
            tags={"security_event": REFRESH_TOKEN_REUSED},
        )

    def unavailable(self, *, reason: str, latency_ms: float, cause: BaseException) -> None:
        import sentry_sdk

        self._end(success=False, status=503, latency_ms=latency_ms, error_kind="unavailable", reason=reason)
        error = AuthSessionExchangeError(f"Session exchange failed: {reason}")
        error.__cause__ = cause
        # Grouped by what failed ("state unreachable", "Better-Auth unwritable", ...), not by the exception text.
        sentry_sdk.capture_exception(
            error, level="error", fingerprint=["AuthSessionExchangeError", reason.split(" (", 1)[0]]
        )


@contextmanager
def exchange_event(*, token_kind: str, mode: str, migration: Mapping[str, Any]) -> Iterator[ExchangeReport]:
    """One session exchange: its own isolation scope and transaction `auth.session_exchange`; report the
    outcome on what it yields. `migration`: the flags in force (Sentry's `migration` context)."""
    if not _state.enabled:
        yield _NO_EXCHANGE_REPORT
        return
    tags = {
        "auth_event_type": "session_exchange",
        "auth_system": "better_auth",
        "migration_mode": mode,
        "exchange_input": token_kind,
    }
    with _request_scope(
        "auth.session_exchange",
        tags,
        migration,
        lambda scope, span: _SentryExchangeReport(token_kind, mode, scope, span),
    ) as report:
        yield report


# --- migration batches ------------------------------------------------------------------------------------

#: The statement groups of a batch (engine/batch.py calls the phase hook with these names).
BATCH_PHASES: Final[Mapping[str, str]] = {
    "read_source": "lock the batch, read the source range",
    "transform": "classify, transform, look the target up",
    "write_target": "write the target rows",
    "tracking": "tracking rows, errors, counters",
}


class BatchReport(Protocol):
    def identify(self, migration_id: str, batch_no: int) -> None: ...

    def phase(self, name: str) -> None:
        """The engine's phase hook: the statement group `name` starts (the previous one ends)."""

    def done(self, *, status: str, users: int, migrated: int, errors: int) -> None: ...


class _NoBatchReport:
    def identify(self, migration_id: str, batch_no: int) -> None:
        return None

    def phase(self, name: str) -> None:
        return None

    def done(self, *, status: str, users: int, migrated: int, errors: int) -> None:
        return None


_NO_BATCH_REPORT: Final = _NoBatchReport()


class _SentryBatchReport:
    def __init__(self, scope: Any, transaction: Any, timer: Timer) -> None:
        self.scope, self.transaction, self.timer = scope, transaction, timer
        self.migration_id: str | None = None
        self.batch_no: int | None = None
        self._span: Any = None
        self._span_started = 0.0

    def identify(self, migration_id: str, batch_no: int) -> None:
        self.migration_id, self.batch_no = migration_id, batch_no
        self.scope.set_tag("migration_id", migration_id)
        self.transaction.set_tag("migration_id", migration_id)
        self.transaction.set_data("batch_no", batch_no)

    def phase(self, name: str) -> None:
        import sentry_sdk

        self.end_phase()
        self._span = sentry_sdk.start_span(op=f"migration.{name}", name=BATCH_PHASES.get(name, name))
        self._span.__enter__()
        self._span_started = self.timer()

    def end_phase(self, *, failed: bool = False) -> None:
        if self._span is None:
            return
        span, self._span = self._span, None
        span.set_data("duration_ms", round((self.timer() - self._span_started) * 1000, 3))
        span.set_status("internal_error" if failed else "ok")
        span.__exit__(None, None, None)

    def done(self, *, status: str, users: int, migrated: int, errors: int) -> None:
        import sentry_sdk

        self.end_phase()
        for key, value in (("batch_status", status), ("users", users), ("users_migrated", migrated)):
            self.transaction.set_data(key, value)
        self.transaction.set_data("user_errors", errors)
        sentry_sdk.add_breadcrumb(
            category="migration",
            message=f"Migration event: migration_success (batch {self.batch_no}, {status})",
            level="info",
            data={
                "migration_id": self.migration_id,
                "batch_no": self.batch_no,
                "users": users,
                "migrated": migrated,
                "errors": errors,
            },
        )


@contextmanager
def migration_batch(
    *, receive_count: int, last_receive: bool, reason: Callable[[BaseException], str], timer: Timer = time.monotonic
) -> Iterator[BatchReport]:
    """One SQS record of MigrateBatch as a transaction `migration.batch`; an exception leaving it is captured
    as a MigrationError (`reason(exc)` is its text: never a database value) and raised on.

    A failure before the last receive is a warning (SQS delivers it again); on the last it is an error (the
    message goes to the DLQ). Both group into one issue per exception type."""
    if not _state.enabled:
        yield _NO_BATCH_REPORT
        return
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        transaction = _start("migration.batch", "migration.batch")
        transaction.set_data("receive_count", receive_count)
        transaction.__enter__()
        started = timer()
        report = _SentryBatchReport(scope, transaction, timer)
        try:
            yield report
        except Exception as exc:
            report.end_phase(failed=True)
            transaction.set_status("internal_error")
            error = MigrationError(f"Migration migration_error: {reason(exc)}")
            error.__cause__ = exc
            sentry_sdk.capture_exception(
                error,
                level="error" if last_receive else "warning",
                fingerprint=["MigrationError", "batch", type(exc).__name__],
                tags={"migration_event": "migration_error", "last_receive": _flag(last_receive)},
                contexts={
                    "migration_event": {
                        "type": "migration_error",
                        "migration_id": report.migration_id,
                        "batch_no": report.batch_no,
                        "receive_count": receive_count,
                        "last_receive": last_receive,
                    }
                },
            )
            raise
        else:
            transaction.set_status("ok")
        finally:
            transaction.set_data("duration_ms", round((timer() - started) * 1000, 3))
            transaction.__exit__(None, None, None)


# --- AutoRollback -----------------------------------------------------------------------------------------


class RunReport(Protocol):
    def decided(
        self, *, action: str, reason: str, figures: Mapping[str, Any], alert: bool, canary_percentage: float | None
    ) -> None: ...

    def failed(self, error: str) -> None:
        """The run could not judge (its check-in says error)."""


class _NoRunReport:
    def decided(
        self, *, action: str, reason: str, figures: Mapping[str, Any], alert: bool, canary_percentage: float | None
    ) -> None:
        return None

    def failed(self, error: str) -> None:
        return None


_NO_RUN_REPORT: Final = _NoRunReport()


class _SentryRunReport:
    def __init__(self, transaction: Any) -> None:
        self.transaction = transaction
        self.error: str | None = None

    def decided(
        self, *, action: str, reason: str, figures: Mapping[str, Any], alert: bool, canary_percentage: float | None
    ) -> None:
        import sentry_sdk

        tx = self.transaction
        tx.set_tag("auto_rollback_action", action)
        tx.set_data("action", action)
        if canary_percentage is not None:
            tx.set_data("canary_percentage", canary_percentage)
        better_auth = figures.get("better_auth")
        if isinstance(better_auth, Mapping):
            for key in ("requests", "system_failures", "error_rate"):
                if key in better_auth:
                    tx.set_data(f"canary_{key}", better_auth[key])
        sentry_sdk.get_current_scope().set_context("canary_metrics", dict(figures))
        if action == "rollback":
            sentry_sdk.capture_message(
                f"AutoRollback stepped back: {reason}",
                level="warning",
                fingerprint=["auto_rollback", "rollback"],
                tags={"migration_event": "auto_rollback"},
            )
        elif alert:
            sentry_sdk.capture_message(
                f"AutoRollback holds on a shared outage: {reason}",
                level="error",
                fingerprint=["auto_rollback", "shared_outage"],
                tags={"migration_event": "auto_rollback"},
            )

    def failed(self, error: str) -> None:
        self.error = error
        self.transaction.set_data("error", error)


@contextmanager
def auto_rollback_run(*, timer: Timer = time.monotonic) -> Iterator[RunReport]:
    """One AutoRollback run: check-in in_progress, then ok, or error when the run failed (reported on what
    this yields, or an exception left it); a transaction `auto_rollback.run` holds its figures."""
    if not _state.enabled:
        yield _NO_RUN_REPORT
        return
    import sentry_sdk
    from sentry_sdk.crons import capture_checkin

    config: Any = dict(AUTO_ROLLBACK_MONITOR_CONFIG)  # sentry_sdk types it as a private TypedDict
    started = timer()
    check_in_id = capture_checkin(monitor_slug=AUTO_ROLLBACK_MONITOR_SLUG, status="in_progress", monitor_config=config)
    with sentry_sdk.new_scope():
        transaction = _start("auto_rollback", "auto_rollback.run")
        transaction.__enter__()
        report = _SentryRunReport(transaction)
        try:
            yield report
        except BaseException as exc:
            report.error = report.error or type(exc).__name__
            raise
        finally:
            transaction.set_status("internal_error" if report.error else "ok")
            transaction.__exit__(None, None, None)
            capture_checkin(
                monitor_slug=AUTO_ROLLBACK_MONITOR_SLUG,
                check_in_id=check_in_id,
                status="error" if report.error else "ok",
                duration=timer() - started,
                monitor_config=config,
            )
