"""AutoRollback: every minute, judge the traffic Better-Auth answers first and step back when it breaks.

- Only system failures count (timeouts, unavailable, 5xx, misconfiguration); a wrong password or a
  taken email is the user's, so a credential-stuffing burst cannot roll the migration back.
- Below the minimum sample, or with no data at all, it holds: "no data" is not "healthy".
- When Supabase-primary traffic of the same window fails alike, the outage is shared: rolling back
  would not help, so it holds and alerts.
- A trip steps back once (phase 3 -> phase 2 with the canary off; a canary -> canary off), audited
  with the figures, and never widens again by itself. A run with nothing to watch writes nothing.
- Runs that overlap (a slow one and the next tick) take one advisory lock; the loser does nothing.
- A progressive canary plan (rollout/plan.py) is walked here, one step per run at most: a healthy,
  baked step with the minimum sample advances (CANARY_PERCENTAGE, audited); a breach rolls back as
  above, sets CANARY_PERCENTAGE to 0 and stops the plan; 100 % baked is "ready for phase 3".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Final, Literal

import psycopg

from auth_migration.clock import Clock, system_clock
from auth_migration.flags import Flags, MigrationMode, parse_flags
from auth_migration.rollout.apply import apply_changes
from auth_migration.rollout.audit import record
from auth_migration.rollout.changes import plan_changes
from auth_migration.rollout.checks import Health, primary_health
from auth_migration.rollout.plan import CanaryPlan, format_percentage, open_plan, record_step, step_plan
from auth_migration.rollout.store import FlagStore
from auth_migration.sessions.rate_limits import purge_old_windows

__all__ = ["Decision", "decide", "run_auto_rollback"]

ACTOR: Final = "auto-rollback"
_LOCK_KEY: Final = 0x0A07_0B0C  # pg advisory lock id of the checker (any fixed bigint of ours)
#: Rows of auth_events older than the retention deleted per run: bounded, so a run stays short.
PURGE_BATCH: Final = 10_000

Action = Literal["idle", "healthy", "hold", "rollback", "skipped", "advance"]


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    #: For a rollback: the flags to set.
    flags: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    #: A shared outage: a person should look (the handler alerts).
    alert: bool = False
    #: With a canary plan open: what this run did to it (PlanStep.as_json), else None.
    plan: dict[str, Any] | None = None


def watched(flags: Flags) -> str | None:
    """What traffic has Better-Auth first now: everyone (phase 3), the canary (phase 2), or nothing."""
    if flags.migration_mode is not MigrationMode.DUAL_WRITE:
        return None
    if flags.use_better_auth:
        return "everyone"
    return "canary" if flags.canary_enabled else None


def decide(flags: Flags, better_auth: Health, supabase: Health, *, window: timedelta) -> Decision:
    """The rules above, over the window's figures; pure (tests feed it numbers)."""
    scope = watched(flags)
    figures = {
        "scope": scope,
        "window_s": int(window.total_seconds()),
        "better_auth": better_auth.figures(),
        "supabase": supabase.figures(),
    }
    if scope is None:
        return Decision("idle", "no traffic has Better-Auth first: nothing to watch", figures=figures)
    if better_auth.judged == 0:
        return Decision("hold", "no data: no Better-Auth-primary request in the window", figures=figures)
    if better_auth.judged < flags.rollback_min_sample:
        return Decision(
            "hold",
            f"sample below the minimum: {better_auth.judged} < {flags.rollback_min_sample} requests",
            figures=figures,
        )
    breached = (
        better_auth.error_rate > flags.rollback_max_error_rate
        or better_auth.success_rate < flags.rollback_min_success_rate
    )
    if not breached:
        return Decision("healthy", f"{better_auth.error_rate:.1%} system failures", figures=figures)
    if supabase.judged >= flags.rollback_min_sample and supabase.error_rate > flags.rollback_max_error_rate:
        return Decision(
            "hold",
            f"shared outage: Better-Auth-primary {better_auth.error_rate:.1%} and Supabase-primary "
            f"{supabase.error_rate:.1%} system failures; rolling back would not help",
            figures=figures,
            alert=True,
        )
    step = (
        {"USE_BETTER_AUTH": "false", "CANARY_ENABLED": "false"} if scope == "everyone" else {"CANARY_ENABLED": "false"}
    )
    return Decision(
        "rollback",
        f"Better-Auth-primary traffic ({scope}) failed: {better_auth.error_rate:.1%} system failures "
        f"(limit {flags.rollback_max_error_rate:.1%}) over {better_auth.judged} requests",
        flags=step,
        figures=figures,
    )


def run_auto_rollback(
    conn: psycopg.Connection,
    store: FlagStore,
    *,
    retention: timedelta = timedelta(days=30),
    clock: Clock = system_clock,
) -> Decision:
    """One checker run. `conn` is the state database (autocommit); the lock lives in a transaction."""
    with conn.transaction():
        locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_LOCK_KEY,)).fetchone()
        if not locked or not locked[0]:
            return Decision("skipped", "another AutoRollback run holds the lock")
        now = clock()
        raw = store.read()
        flags, _warnings = parse_flags(raw)
        window = timedelta(minutes=flags.rollback_window_minutes)
        better_auth = primary_health(conn, "better_auth", now=now, window=window)
        supabase = primary_health(conn, "supabase", now=now, window=window)
        decision = decide(flags, better_auth, supabase, window=window)
        plan = _open_plan(conn)
        step = step_plan(plan, flags, decision, now=now, window=window) if plan is not None else None
        if decision.action == "rollback":
            desired = dict(decision.flags)
            if plan is not None:
                # The plan's percentage must not come back with the next `canary` command: start from 0.
                desired["CANARY_PERCENTAGE"] = "0"
            details = dict(decision.figures)
            if plan is not None and step is not None:
                details["plan"] = step.as_json(plan)
            _apply(conn, store, raw, desired, reason=decision.reason, details=details, clock=clock)
        elif plan is not None and step is not None and step.kind == "advance":
            assert step.percentage is not None  # an advance always names its percentage
            _apply(
                conn,
                store,
                raw,
                {"CANARY_PERCENTAGE": format_percentage(step.percentage)},
                reason=step.reason,
                details={**decision.figures, "plan": step.as_json(plan)},
                clock=clock,
            )
            decision = replace(decision, action="advance", reason=step.reason)
        elif step is not None and step.kind == "ready":
            decision = replace(decision, reason=step.reason)
        if plan is not None and step is not None:
            # After SSM: a crash in between leaves the flags one step ahead of the row, which the next
            # run reads as "changed by hand" and stops the plan: never a second widening.
            record_step(conn, plan, step, actor=ACTOR, now=now)
            decision = replace(decision, plan=step.as_json(plan))
        conn.execute(
            """DELETE FROM auth_events WHERE id IN (
                   SELECT id FROM auth_events WHERE occurred_at < %s ORDER BY occurred_at LIMIT %s)""",
            (now - retention, PURGE_BATCH),
        )
        purge_old_windows(conn, now=now)
    return decision


def _open_plan(conn: psycopg.Connection) -> CanaryPlan | None:
    """The open plan, locked for this run; None before 0006 is applied, so a rollback never waits on
    a schema upgrade."""
    if conn.execute("SELECT to_regclass('canary_plans') IS NULL").fetchone() == (True,):
        return None
    return open_plan(conn, for_update=True)


def _apply(
    conn: psycopg.Connection,
    store: FlagStore,
    raw: dict[str, str],
    desired: dict[str, str],
    *,
    reason: str,
    details: dict[str, Any],
    clock: Clock,
) -> None:
    apply_changes(
        store,
        plan_changes(raw, desired),
        actor=ACTOR,
        reason=reason,
        source="auto-rollback",
        details=details,
        record_audit=lambda entries: record(conn, entries),
        clock=clock,
    )
