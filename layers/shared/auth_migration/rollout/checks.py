"""What must hold before a phase: refused steps come with the reason and the figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg

from auth_migration.flags import Flags
from auth_migration.validation import EMAIL_REFUSED_BY_SIGN_IN, SignInEmailRule

__all__ = [
    "SYSTEM_FAILURE_SQL",
    "USER_ERROR_KINDS",
    "USER_ERROR_SQL",
    "Blocker",
    "Health",
    "phase_blockers",
    "primary_health",
    "user_error_params",
]

#: Outcomes that are the user's doing (a wrong password, a taken email): never a sign the system is
#: unhealthy. A credential-stuffing burst must not count against Better-Auth.
USER_ERROR_KINDS: Final = frozenset(
    {
        "invalid_credentials",
        "user_exists",
        "email_not_confirmed",
        "weak_password",
        "bad_request",
        "user_not_found",
        # Session exchanges (sessions/exchange.py): a token that is not a live Supabase session, an email
        # Better-Auth holds under another id, and our own per-IP / per-user limit. A flood of bad or
        # replayed tokens must never read as Better-Auth failing and roll the rollout back.
        "invalid_token",
        "account_conflict",
        "exchange_rate_limited",
    }
)
HEALTH_WINDOW: Final = timedelta(minutes=5)

# The rule above as SQL over an auth_events row, shared by every reader of health figures (the checks,
# AutoRollback, the canary figures) so they cannot disagree. Both need `user_error_params()`.
#: The user's own error: says nothing about the system.
USER_ERROR_SQL: Final = "(NOT success AND error_kind = ANY(%(user_error_kinds)s))"
#: The system's failure: a failure that is not the user's, or a success the other system gave after
#: this one failed (a fallback: the user got in, but the system answering first did not serve them).
SYSTEM_FAILURE_SQL: Final = (
    "((NOT success AND coalesce(error_kind, '') <> ALL(%(user_error_kinds)s))"
    " OR (success AND system <> primary_system))"
)


def user_error_params() -> dict[str, Any]:
    """The named parameters USER_ERROR_SQL and SYSTEM_FAILURE_SQL take."""
    return {"user_error_kinds": sorted(USER_ERROR_KINDS)}


@dataclass(frozen=True, slots=True)
class Blocker:
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Health:
    """The requests one system answered first over a window, told apart by whose failure it was."""

    requests: int
    user_errors: int
    system_failures: int

    @property
    def judged(self) -> int:
        """Requests that say something about the system: a user's own error says nothing."""
        return self.requests - self.user_errors

    @property
    def error_rate(self) -> float:
        return self.system_failures / self.judged if self.judged else 0.0

    @property
    def success_rate(self) -> float:
        return 1.0 - self.error_rate if self.judged else 1.0

    def figures(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "user_errors": self.user_errors,
            "system_failures": self.system_failures,
            "error_rate": round(self.error_rate, 4),
        }


def primary_health(
    conn: psycopg.Connection, system: str, *, now: datetime, window: timedelta = HEALTH_WINDOW
) -> Health:
    """One index range over auth_events (occurred_at), grouped in the server. A request the other
    system answered after this one failed (a fallback) is this system's failure, even though the user
    got in."""
    row = conn.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE {USER_ERROR_SQL}), count(*) FILTER (WHERE {SYSTEM_FAILURE_SQL})
            FROM auth_events
            WHERE primary_system = %(system)s AND occurred_at > %(since)s AND occurred_at <= %(now)s""",
        {**user_error_params(), "system": system, "since": now - window, "now": now},
    ).fetchone()
    assert row is not None  # aggregates return a row
    return Health(int(row[0]), int(row[1]), int(row[2]))


def phase_blockers(
    conn: psycopg.Connection,
    phase: int,
    flags: Flags,
    *,
    now: datetime,
    sign_in_email_rule: SignInEmailRule = SignInEmailRule.SHIPPED,
) -> list[Blocker]:
    """Why moving to `phase` now would be unsafe; empty when nothing stands in the way.

    Phase 3 and 4 put everyone on Better-Auth first: its primary traffic so far must be healthy.
    Phase 4 stops writing Supabase: every user must be in Better-Auth (a finished bulk migration, no
    open dual-write gap) or they are stranded, and Better-Auth's sign-in (`sign_in_email_rule`, the
    config we ship by default) must accept their email, or they are locked out with no fallback.
    """
    blockers: list[Blocker] = []
    if phase == 4:
        latest = conn.execute(
            """SELECT id, status, batches_done, batches_total FROM migration_states
               WHERE NOT dry_run AND status <> 'rolled_back' ORDER BY created_at DESC LIMIT 1"""
        ).fetchone()
        if latest is None:
            blockers.append(Blocker("no bulk migration has run: Supabase's users are not in Better-Auth yet"))
        elif latest[1] not in ("completed", "completed_with_errors"):
            blockers.append(
                Blocker(
                    f"bulk migration {latest[0]} is {latest[1]}",
                    {"migration_id": latest[0], "batches_done": latest[2], "batches_total": latest[3]},
                )
            )
        gaps_row = conn.execute("SELECT count(*) FROM dual_write_gaps WHERE status = 'open'").fetchone()
        gaps = int(gaps_row[0]) if gaps_row else 0
        if gaps:
            blockers.append(
                Blocker(
                    f"{gaps} dual-write gap(s) open: users one system lacks (`auth-migrate reconcile sweep`)",
                    {"open_gaps": gaps},
                )
            )
    if phase == 4:
        blockers.extend(_refused_email_blockers(conn, sign_in_email_rule))
    if phase in (3, 4):
        health = primary_health(conn, "better_auth", now=now)
        if health.judged >= flags.rollback_min_sample and health.error_rate > flags.rollback_max_error_rate:
            blockers.append(
                Blocker(
                    f"Better-Auth-primary traffic is unhealthy: {health.error_rate:.1%} system failures over the "
                    f"last {int(HEALTH_WINDOW.total_seconds() // 60)} min (limit {flags.rollback_max_error_rate:.1%})",
                    health.figures(),
                )
            )
    return blockers


def _refused_email_blockers(conn: psycopg.Connection, rule: SignInEmailRule) -> list[Blocker]:
    """Users we created or migrated (migrated_users: bulk, lazy, dual-write) whose email the sign-in rule
    refuses, and the latest bulk migration's users it left behind for that reason and nobody migrated
    since. Both would be locked out once Supabase no longer answers for them."""
    refused, params = rule.refuses_sql("m.email")
    row = conn.execute(
        f"""SELECT (SELECT count(*) FROM migrated_users m WHERE {refused}),
                   (SELECT count(*) FROM migration_errors e
                     WHERE e.error_code = %(code)s
                       AND e.migration_id = (SELECT id FROM migration_states
                                              WHERE NOT dry_run AND status <> 'rolled_back'
                                              ORDER BY created_at DESC LIMIT 1)
                       AND NOT EXISTS (SELECT 1 FROM migrated_users t WHERE t.original_id = e.user_id))""",
        {**params, "code": EMAIL_REFUSED_BY_SIGN_IN},
    ).fetchone()
    in_target, left_behind = (int(row[0]), int(row[1])) if row else (0, 0)
    if not in_target and not left_behind:
        return []
    return [
        Blocker(
            f"{in_target + left_behind} user(s) have an email Better-Auth's sign-in ({rule} rule) refuses: "
            "they could not sign in once Supabase stops answering (docs/BETTER_AUTH.md section 2a)",
            {"in_better_auth": in_target, "not_migrated": left_behind, "email_rule": str(rule)},
        )
    ]
