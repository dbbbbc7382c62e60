"""The progressive canary: a stored plan of percentages (`canary plan 1,5,10,25,50,75,100 --bake 30m`)
that AutoRollback walks one step per run, each step only when it is due.

- A step is due when it has baked for the plan's time AND for the whole health window, so the traffic
  judged is this step's own, not the smaller previous step's (a 90 s bake under a 5 min window waits
  5 min). It then needs AutoRollback's verdict "healthy": the minimum sample, no breach.
- No data, a small sample or a shared outage hold: "no data" is not "healthy" (Flagger and Argo halt
  on it too). A paused plan holds whatever the figures say.
- A breach stops the plan; AutoRollback rolls back as it always does, and sets CANARY_PERCENTAGE to 0.
- The plan owns the canary flags while it runs: when they no longer say what the plan set (someone ran
  `canary off`, `rollback --emergency`, changed the percentage or went to phase 3), the plan stops. It
  never writes over a person's later decision; a new plan starts from what is there now.
- After the last step (100 %) baked healthy it is `ready`: it reports "ready for phase 3" and stops
  there. Moving phases is a person's decision (`auth-migrate phase 3`).

`step_plan` is pure (tests give it a fake clock); the rest reads and writes `canary_plans`.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, Literal

import psycopg
from psycopg.rows import dict_row

from auth_migration.exceptions import InvalidRequest, StateConflict
from auth_migration.flags import CanarySelection, Flags, MigrationMode

if TYPE_CHECKING:
    from auth_migration.rollout.auto import Decision

__all__ = [
    "CanaryPlan",
    "PlanStep",
    "create_plan",
    "flags_mismatch",
    "format_percentage",
    "latest_plan",
    "open_plan",
    "parse_bake",
    "parse_steps",
    "pause_plan",
    "plan_status",
    "record_step",
    "resume_plan",
    "step_plan",
    "stop_open_plan",
]

PlanStatus = Literal["active", "paused", "stopped", "ready"]
StepKind = Literal["hold", "advance", "ready", "stop"]

#: Longer is surely a typo (and a plan nobody watches any more).
MAX_BAKE: Final = timedelta(days=7)
_DURATION: Final = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_COLUMNS: Final = """id, steps, bake_seconds, step_index, step_started_at, status, status_reason, status_actor,
                     actor, reason, created_at, updated_at"""


@dataclass(frozen=True, slots=True)
class CanaryPlan:
    id: int
    steps: tuple[float, ...]
    bake_s: int
    step_index: int
    step_started_at: datetime
    status: PlanStatus
    status_reason: str | None
    status_actor: str | None
    actor: str
    reason: str
    created_at: datetime
    updated_at: datetime

    @property
    def percentage(self) -> float:
        return self.steps[self.step_index]

    @property
    def is_last_step(self) -> bool:
        return self.step_index == len(self.steps) - 1

    @property
    def is_open(self) -> bool:
        """Still steering the canary (active or paused)."""
        return self.status in ("active", "paused")

    def label(self) -> str:
        step = f"step {self.step_index + 1}/{len(self.steps)}"
        return f"canary plan {self.id} {step} ({format_percentage(self.percentage)} %)"

    def baked_s(self, now: datetime) -> float:
        return max(0.0, (now - self.step_started_at).total_seconds())

    def due_s(self, window: timedelta | None = None) -> float:
        """How long the current step must bake: the plan's bake, and at least the health window."""
        return max(float(self.bake_s), window.total_seconds() if window is not None else 0.0)

    def seconds_to_next(self, now: datetime, window: timedelta | None = None) -> float | None:
        """Until the current step is due (then it still needs healthy figures); None when not running."""
        if self.status != "active":
            return None
        return max(0.0, self.due_s(window) - self.baked_s(now))


@dataclass(frozen=True, slots=True)
class PlanStep:
    """What one AutoRollback run does to the plan."""

    kind: StepKind
    reason: str
    #: For "advance": the step index and percentage to set.
    step_index: int | None = None
    percentage: float | None = None

    def as_json(self, plan: CanaryPlan) -> dict[str, Any]:
        return {
            "id": plan.id,
            "action": self.kind,
            "reason": self.reason,
            "step_index": self.step_index if self.step_index is not None else plan.step_index,
            "percentage": self.percentage if self.percentage is not None else plan.percentage,
        }


# --- parsing (the CLI's syntax, also the admin API's) ---------------------------------------------------


def parse_steps(text: str) -> tuple[float, ...]:
    """ "1,5,10,25,50,75,100": strictly increasing, each in (0, 100], at most two decimals, the last 100."""
    parts = [p.strip().removesuffix("%").strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise InvalidRequest(f"canary steps {text!r}: give percentages separated by commas, like 1,5,10,25,50,100")
    steps: list[float] = []
    for part in parts:
        try:
            number = Decimal(part)
        except InvalidOperation:
            raise InvalidRequest(f"canary step {part!r} is not a number") from None
        if not number.is_finite() or not 0 < number <= 100:
            raise InvalidRequest(f"canary step {part} is outside (0, 100]")
        exponent = number.as_tuple().exponent
        # More decimals would not survive the flag's stored form, and the plan would see its own
        # percentage as "changed by hand".
        if isinstance(exponent, int) and exponent < -2:
            raise InvalidRequest(f"canary step {part}: at most two decimals")
        steps.append(float(number))
    for before, after in itertools.pairwise(steps):
        if after <= before:
            shown = f"{format_percentage(after)} after {format_percentage(before)}"
            raise InvalidRequest(f"canary steps must be strictly increasing: {shown}")
    if steps[-1] != 100:
        raise InvalidRequest("the last canary step must be 100: the plan ends with everyone in the canary")
    return tuple(steps)


def parse_bake(text: str) -> int:
    """ "30m", "2h", "90s", "1h30m", "1d" -> seconds (more than 0, at most 7 days)."""
    cleaned = text.strip().lower()
    match = _DURATION.fullmatch(cleaned)
    if not cleaned or match is None or not any(match.groups()):
        raise InvalidRequest(f"bake time {text!r}: give a duration like 30m, 2h, 90s or 1h30m")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise InvalidRequest(f"bake time {text!r} is zero: each step must bake for some time")
    if total > MAX_BAKE.total_seconds():
        raise InvalidRequest(f"bake time {text!r} is longer than {MAX_BAKE.days} days")
    return total


def format_percentage(value: float) -> str:
    """As CANARY_PERCENTAGE is stored (the flag's canonical form)."""
    return f"{value:g}"


# --- the step rule (pure) ---------------------------------------------------------------------------------


def flags_mismatch(plan: CanaryPlan, flags: Flags) -> str | None:
    """Why the flags no longer say what the plan set, or None when they do."""
    if flags.migration_mode is not MigrationMode.DUAL_WRITE or flags.use_better_auth:
        return (
            f"the flags left phase 2 (MIGRATION_MODE={flags.migration_mode.value}, "
            f"USE_BETTER_AUTH={str(flags.use_better_auth).lower()})"
        )
    if not flags.canary_enabled:
        return "the canary was switched off (CANARY_ENABLED=false)"
    if flags.canary_user_selection is not CanarySelection.USER_ID_HASH:
        return f"CANARY_USER_SELECTION is {flags.canary_user_selection.value}, not user_id_hash"
    if not math.isclose(flags.canary_percentage, plan.percentage, abs_tol=1e-9):
        return (
            f"CANARY_PERCENTAGE is {format_percentage(flags.canary_percentage)}, "
            f"not the plan's {format_percentage(plan.percentage)}"
        )
    return None


def step_plan(
    plan: CanaryPlan, flags: Flags, decision: Decision, *, now: datetime, window: timedelta | None = None
) -> PlanStep:
    """What this run does to an open plan, given the stored flags and AutoRollback's verdict on the window."""
    if not plan.is_open:
        return PlanStep("hold", f"canary plan {plan.id} is {plan.status}")
    if decision.action == "rollback":
        return PlanStep("stop", f"breach at {plan.label()}: {decision.reason}")
    mismatch = flags_mismatch(plan, flags)
    if mismatch is not None:
        return PlanStep("stop", f"{mismatch}: {plan.label()} no longer steers the canary")
    if plan.status == "paused":
        return PlanStep("hold", f"{plan.label()} is paused: {plan.status_reason or 'no reason given'}")
    if decision.action != "healthy":
        return PlanStep("hold", f"{plan.label()} holds: {decision.reason}")
    baked, due = plan.baked_s(now), plan.due_s(window)
    if baked < due:
        return PlanStep("hold", f"{plan.label()} baking: {int(baked)} of {int(due)} s")
    if plan.is_last_step:
        return PlanStep("ready", f"{plan.label()} baked healthy: ready for phase 3 (`auth-migrate phase 3`)")
    following = plan.step_index + 1
    return PlanStep(
        "advance",
        f"canary plan {plan.id} step {following + 1}/{len(plan.steps)}: {format_percentage(plan.percentage)} -> "
        f"{format_percentage(plan.steps[following])} % after {int(baked)} s healthy",
        step_index=following,
        percentage=plan.steps[following],
    )


# --- canary_plans -----------------------------------------------------------------------------------------


def _plan(row: dict[str, Any]) -> CanaryPlan:
    return CanaryPlan(
        id=int(row["id"]),
        steps=tuple(float(s) for s in row["steps"]),
        bake_s=int(row["bake_seconds"]),
        step_index=int(row["step_index"]),
        step_started_at=row["step_started_at"],
        status=row["status"],
        status_reason=row["status_reason"],
        status_actor=row["status_actor"],
        actor=row["actor"],
        reason=row["reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _one(conn: psycopg.Connection, query: str, params: Sequence[Any] | dict[str, Any]) -> CanaryPlan | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query.encode(), params).fetchone()
    return _plan(row) if row is not None else None


def create_plan(
    conn: psycopg.Connection, steps: Sequence[float], bake_s: int, *, actor: str, reason: str, now: datetime
) -> CanaryPlan:
    """Store a new plan at its first step. Raises StateConflict while another one is active or paused."""
    if not reason.strip():
        raise InvalidRequest("a canary plan needs a reason")
    try:
        with conn.transaction():
            plan = _one(
                conn,
                f"""INSERT INTO canary_plans (steps, bake_seconds, step_index, step_started_at, status, actor, reason,
                                              created_at, updated_at)
                    VALUES (%s::numeric[], %s, 0, %s, 'active', %s, %s, %s, %s) RETURNING {_COLUMNS}""",
                ([str(Decimal(str(s))) for s in steps], bake_s, now, actor, reason.strip(), now, now),
            )
    except psycopg.errors.UniqueViolation:
        current = open_plan(conn)
        which = f" ({current.label()}, {current.status})" if current else ""
        raise StateConflict(
            f"a canary plan is running already{which}: `canary pause`, or stop it with `canary off` first"
        ) from None
    assert plan is not None  # INSERT ... RETURNING one row
    return plan


def open_plan(conn: psycopg.Connection, *, for_update: bool = False) -> CanaryPlan | None:
    """The active or paused plan, if any (`for_update`: locked until the transaction ends)."""
    lock = " FOR UPDATE" if for_update else ""
    return _one(conn, f"SELECT {_COLUMNS} FROM canary_plans WHERE status IN ('active', 'paused'){lock}", ())


def latest_plan(conn: psycopg.Connection) -> CanaryPlan | None:
    """The open plan, else the newest one (stopped or ready), for status."""
    return _one(
        conn,
        f"""SELECT {_COLUMNS} FROM canary_plans
            ORDER BY status IN ('active', 'paused') DESC, created_at DESC, id DESC LIMIT 1""",
        (),
    )


def _set_status(
    conn: psycopg.Connection,
    plan_id: int,
    status: PlanStatus,
    *,
    why: str,
    actor: str,
    now: datetime,
    restart_bake: bool = False,
) -> CanaryPlan:
    plan = _one(
        conn,
        f"""UPDATE canary_plans SET status = %(status)s, status_reason = %(why)s, status_actor = %(actor)s,
                   updated_at = %(now)s,
                   step_started_at = CASE WHEN %(restart)s THEN %(now)s ELSE step_started_at END
            WHERE id = %(id)s RETURNING {_COLUMNS}""",
        {"status": status, "why": why, "actor": actor, "now": now, "restart": restart_bake, "id": plan_id},
    )
    if plan is None:
        raise StateConflict(f"canary plan {plan_id} is gone")
    return plan


def pause_plan(conn: psycopg.Connection, *, reason: str, actor: str, now: datetime) -> CanaryPlan:
    """Keep the current step; AutoRollback no longer advances it (a breach still rolls back)."""
    with conn.transaction():
        plan = open_plan(conn, for_update=True)
        if plan is None or plan.status != "active":
            raise StateConflict("no active canary plan to pause" + (" (it is paused already)" if plan else ""))
        return _set_status(conn, plan.id, "paused", why=reason.strip(), actor=actor, now=now)


def resume_plan(conn: psycopg.Connection, *, reason: str, actor: str, now: datetime) -> CanaryPlan:
    """Run again from the current step, whose bake starts over: the pause may have hidden a problem."""
    with conn.transaction():
        plan = open_plan(conn, for_update=True)
        if plan is None or plan.status != "paused":
            raise StateConflict("no paused canary plan to resume" + (" (it is running)" if plan else ""))
        return _set_status(conn, plan.id, "active", why=reason.strip(), actor=actor, now=now, restart_bake=True)


def stop_open_plan(conn: psycopg.Connection, *, why: str, actor: str, now: datetime) -> CanaryPlan | None:
    """Stop the open plan (the canary was changed by other means); None when none was open."""
    with conn.transaction():
        plan = open_plan(conn, for_update=True)
        return _set_status(conn, plan.id, "stopped", why=why, actor=actor, now=now) if plan else None


def record_step(conn: psycopg.Connection, plan: CanaryPlan, step: PlanStep, *, actor: str, now: datetime) -> None:
    """Keep what a run did: the new step (its bake starts now), a stop, or ready. A hold keeps nothing."""
    if step.kind == "advance":
        assert step.step_index is not None  # an advance always names its step
        conn.execute(
            """UPDATE canary_plans SET step_index = %s, step_started_at = %s, updated_at = %s WHERE id = %s""",
            (step.step_index, now, now, plan.id),
        )
    elif step.kind in ("stop", "ready"):
        _set_status(conn, plan.id, "stopped" if step.kind == "stop" else "ready", why=step.reason, actor=actor, now=now)


def plan_status(conn: psycopg.Connection, *, now: datetime, window: timedelta | None = None) -> dict[str, Any] | None:
    """The open plan (else the newest) as JSON, or None when no plan was ever made. `window`: the health
    window, for the exact time to the next step (a step is due after its bake and the whole window)."""
    if conn.execute("SELECT to_regclass('canary_plans') IS NULL").fetchone() == (True,):
        return None  # a state database before 0006: no plan can exist
    plan = latest_plan(conn)
    if plan is None:
        return None
    to_next = plan.seconds_to_next(now, window)
    return {
        "id": plan.id,
        "status": plan.status,
        "steps": list(plan.steps),
        "step_index": plan.step_index,
        "step_number": plan.step_index + 1,
        "step_count": len(plan.steps),
        "percentage": plan.percentage,
        "next_percentage": plan.steps[plan.step_index + 1] if not plan.is_last_step else None,
        "bake_s": plan.bake_s,
        "due_s": plan.due_s(window),
        "step_started_at": plan.step_started_at.isoformat(),
        "baked_s": round(plan.baked_s(now), 1) if plan.is_open else None,
        "seconds_to_next_step": round(to_next, 1) if to_next is not None else None,
        "status_reason": plan.status_reason,
        "status_actor": plan.status_actor,
        "ready_for_phase_3": plan.status == "ready",
        "actor": plan.actor,
        "reason": plan.reason,
        "created_at": plan.created_at.isoformat(),
        "updated_at": plan.updated_at.isoformat(),
    }
