"""One batch into Supabase Auth (GoTrue) over its admin API, exactly once; and its rollback.

An HTTP call cannot join the state's transaction, so each user is a step with a record on both sides
of the call, reusing the two-database mechanism of the Better-Auth target:
1. Under the batch row lock: read and classify the range, then commit the intent, the GoTrue ids the
   batch is about to create (migration_batches.pending_create).
2. Under the lock again (a rollback waits for it, a later worker sees the rollback and writes
   nothing): the admin calls run concurrently up to the migration's rate cap, then the tracking rows
   (migrated_users), migration_errors and `done` commit in one transaction.
A crash anywhere in 2 leaves the intent open. The retry looks every id of an open intent up first
(GET /admin/users/{id}); a user GoTrue holds with our id is judged by the `migration_id` its
app_metadata carries: this migration's -> created by it (tracked, never created twice); another
migration's -> that one's (recovered); none -> there before us (adopted, never deleted). A POST that
got 5xx or no answer is settled the same way before it is ever repeated.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import psycopg

from auth_migration.engine.context import EngineContext
from auth_migration.exceptions import ConfigError, InvalidRequest
from auth_migration.models import BatchMessage, Outcome, OutcomeKind, SourceUser
from auth_migration.retry import backoff_delay
from auth_migration.sources import get_source
from auth_migration.targets.rate_limit import Limiter, PostgresSlots, SharedRateLimiter
from auth_migration.targets.supabase import (
    DEFAULT_MAX_REQUESTS_PER_S,
    HASH_REFUSED_MESSAGE,
    MIGRATION_MARKER,
    NEEDS_PASSWORD_RESET,
    GoTrueAdmin,
    GoTrueRejected,
    GoTrueUncertain,
    gotrue_payload,
    usable_password_hash,
)
from auth_migration.transforms import resolve_pipeline, transform
from auth_migration.validation import ValidationPolicy, classify, gotrue_accepts

__all__ = ["pace_of", "rate_of", "rollback_supabase", "run_supabase_batch"]


#: Settles a create that got 5xx or no answer (GET first, then maybe POST again), at most this often.
_CREATE_ATTEMPTS = 6
_ROLLBACK_CHUNK = 500
_EMAIL_CONFLICT_CODES = frozenset({"email_exists", "user_already_exists"})


@dataclass
class _Step:
    """One user to create: its source row, its admin-create body, and what happened."""

    source: SourceUser
    body: dict[str, Any]
    flags: list[str]
    metadata: dict[str, Any]
    outcome: Outcome | None = None
    #: True: this migration created the GoTrue user (rollback deletes it); False: adopted.
    created: bool = False
    #: Set for a user another migration created (recovered): that migration's id.
    owner: str | None = None

    @property
    def gotrue_id(self) -> str:
        return str(self.body["id"])

    @property
    def email(self) -> str:
        return str(self.body["email"])


@dataclass
class _HttpPlan:
    outcomes: list[Outcome] = field(default_factory=list)
    steps: list[_Step] = field(default_factory=list)
    already_migrated: int = 0


def rate_of(options: dict[str, Any] | None) -> float:
    """The migration's request cap (requests/s), fixed at `start` (options.max_requests_per_s)."""
    value = (options or {}).get("max_requests_per_s")
    return float(value) if isinstance(value, int | float) and value > 0 else float(DEFAULT_MAX_REQUESTS_PER_S)


def pace_of(ctx: EngineContext, migration_id: str, options: dict[str, Any] | None) -> Limiter:
    """The migration's request cap, shared through the state database by every container that runs
    its batches (targets/rate_limit.py); one limiter per migration per container."""
    rate = rate_of(options)
    found = ctx.limiters.get(migration_id)
    if found is None or found.rate != rate:
        conns = ctx.connections
        sleep = ctx.gotrue.sleep if ctx.gotrue is not None else time.sleep
        found = SharedRateLimiter(rate, PostgresSlots(lambda: conns.side("state"), migration_id), sleep=sleep)
        ctx.limiters[migration_id] = found
    return found


def _admin(ctx: EngineContext) -> GoTrueAdmin:
    if ctx.gotrue is None:
        raise ConfigError("the supabase target needs SUPABASE_URL and SUPABASE_SERVICE_KEY (GoTrue's admin API)")
    return ctx.gotrue


def _parallel[T, R](fn: Callable[[T], R], items: Sequence[T], rate: float) -> list[R]:
    """fn over items, concurrently: enough threads to keep the cap busy at ~250 ms a call; the limiter,
    not the pool, sets the pace. Order kept; the first exception propagates."""
    if not items:
        return []
    workers = max(1, min(len(items), 256, max(4, math.ceil(rate / 4))))
    if workers == 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gotrue") as pool:
        return list(pool.map(fn, items))


def run_supabase_batch(msg: BatchMessage, ctx: EngineContext) -> Any:
    """Migrate one batch into GoTrue; returns a batch.BatchResult (see the module's docstring)."""
    from auth_migration.engine.batch import BatchResult, _finish, _Plan

    conns = ctx.connections
    state = conns.state
    admin = _admin(ctx)
    with state.transaction():
        row = state.execute(
            """SELECT b.status, m.status, m.dry_run, m.source, m.options, b.pending_create,
                      coalesce(m.as_of, m.created_at)
               FROM migration_batches b JOIN migration_states m ON m.id = b.migration_id
               WHERE b.migration_id = %s AND b.batch_no = %s FOR UPDATE OF b""",
            (msg.migration_id, msg.batch_no),
        ).fetchone()
        if row is None:
            raise InvalidRequest(f"batch {msg.batch_no} of migration {msg.migration_id!r} is not planned")
        batch_status, mig_status, dry_run, source_name, options, pending, as_of = row
        if batch_status == "done":
            return BatchResult(msg.migration_id, msg.batch_no, "duplicate")
        if mig_status in ("rolling_back", "rolled_back"):
            return BatchResult(msg.migration_id, msg.batch_no, "ignored")
        pace = pace_of(ctx, msg.migration_id, options)
        plan = _decide(msg, ctx, source_name, options or {}, as_of)
        total = len(plan.outcomes) + len(plan.steps) + plan.already_migrated
        if dry_run:
            # GETs only: what the real run would conclude for each user, as far as GoTrue can tell now.
            _parallel(lambda s: _predict(s, msg, admin, pace), plan.steps, pace.rate)
            return _finish(state, msg, total, _as_batch_plan(plan, _Plan))
        retrying = set(pending or ())
        if plan.steps:
            # The intent: committed with this transaction, before any call (kept from earlier attempts).
            state.execute(
                """UPDATE migration_batches SET pending_create = ARRAY(
                       SELECT DISTINCT x FROM unnest(coalesce(pending_create, '{}') || %b::text[]) AS t(x) ORDER BY x)
                   WHERE migration_id = %s AND batch_no = %s""",
                ([s.gotrue_id for s in plan.steps], msg.migration_id, msg.batch_no),
            )
    with state.transaction():
        still_open = state.execute(
            "SELECT status FROM migration_batches WHERE migration_id = %s AND batch_no = %s FOR UPDATE",
            (msg.migration_id, msg.batch_no),
        ).fetchone()
        if still_open is None or still_open[0] == "done":
            return BatchResult(msg.migration_id, msg.batch_no, "duplicate")
        mig = state.execute("SELECT status FROM migration_states WHERE id = %s", (msg.migration_id,)).fetchone()
        if mig is None or mig[0] in ("rolling_back", "rolled_back"):
            return BatchResult(msg.migration_id, msg.batch_no, "ignored")
        _parallel(lambda s: _migrate_one(s, msg, admin, pace, s.gotrue_id in retrying), plan.steps, pace.rate)
        _track(state, plan, msg, source_name)
        return _finish(state, msg, total, _as_batch_plan(plan, _Plan))


def _as_batch_plan(plan: _HttpPlan, factory: Callable[[], Any]) -> Any:
    out = factory()
    out.outcomes = plan.outcomes + [s.outcome for s in plan.steps if s.outcome is not None]
    out.already_migrated = plan.already_migrated
    return out


def _decide(
    msg: BatchMessage, ctx: EngineContext, source_name: str, options: dict[str, Any], as_of: datetime
) -> _HttpPlan:
    conns = ctx.connections
    state = conns.state
    source = get_source(source_name)
    policy = ValidationPolicy(stage=ctx.stage, target_supports_bans=True, now=as_of)  # ban_duration
    users = source.fetch_range(conns.source, msg.after_id, msg.upto_id)
    plan = _HttpPlan()
    valid: list[SourceUser] = []
    for user in users:
        verdict = classify(user, policy)
        if verdict is None and not gotrue_accepts((user.email or "").strip().lower()):
            verdict = Outcome(
                user.id, OutcomeKind.INVALID, "email_refused_by_gotrue", "GoTrue's email check refuses this address"
            )
        if verdict is not None:
            plan.outcomes.append(verdict)
        else:
            valid.append(user)
    if not valid:
        return plan
    already = {
        r[0]
        for r in state.execute(
            """SELECT m.original_id FROM unnest(%b::text[]) AS k(id) CROSS JOIN LATERAL
                   (SELECT original_id FROM migrated_users WHERE original_id = k.id LIMIT 1) m""",
            ([u.id for u in valid],),
        )
    }
    plan.already_migrated = sum(1 for u in valid if u.id in already)
    pipeline = resolve_pipeline(options.get("transforms"))
    todo = [(u, transform(u, pipeline, now=as_of)) for u in valid if u.id not in already]
    case_dupes = {
        r[0]
        for r in state.execute(
            "SELECT email_lower FROM migration_email_conflicts WHERE migration_id = %s AND email_lower = ANY(%b)",
            (msg.migration_id, [d.email for _, d in todo]),
        )
    }
    seen: set[str] = set()
    for user, draft in todo:
        if draft.email in case_dupes or draft.email in seen:
            plan.outcomes.append(
                Outcome(
                    user.id,
                    OutcomeKind.CONFLICT,
                    "email_case_duplicate",
                    "several source users share this email ignoring case; a person must decide",
                )
            )
            seen.add(draft.email)
            continue
        seen.add(draft.email)
        body = gotrue_payload(draft, user, migration_id=msg.migration_id, as_of=as_of)
        # The Better-Auth draft's credential flags do not apply: GoTrue takes more hash formats.
        flags = [f for f in draft.flags if f not in ("no_credentials", "unsupported_password_hash")]
        if usable_password_hash(user.password_hash) is None:
            flags.append(NEEDS_PASSWORD_RESET)
            if user.password_hash:
                flags.append("unsupported_password_hash")
        plan.steps.append(_Step(user, body, flags, {**body["user_metadata"], "gotrue_id": body["id"]}))
    return plan


def _judge_existing(step: _Step, found: dict[str, Any], msg: BatchMessage) -> None:
    """GoTrue holds a user with our id: whose is it? (The module docstring has the rule.)"""
    marker = (found.get("app_metadata") or {}).get(MIGRATION_MARKER)
    if str(found.get("email") or "").lower() != step.email:
        step.outcome = Outcome(
            step.source.id,
            OutcomeKind.CONFLICT,
            "id_taken_in_target",
            "GoTrue holds this id with another email; not merged",
            {"gotrue_id": step.gotrue_id},
        )
    elif marker == msg.migration_id:
        step.created = True
        step.outcome = _migrated(step)
    elif isinstance(marker, str) and marker:
        step.created, step.owner = True, marker
        step.outcome = Outcome(
            step.source.id,
            OutcomeKind.RECOVERED,
            "created_by_earlier_intent",
            f"created by migration {marker}; tracked as its user, so `migrate rollback {marker}` removes it",
            {"created_by_migration": marker},
        )
    else:
        step.outcome = Outcome(step.source.id, OutcomeKind.ADOPTED, "adopted")


def _migrated(step: _Step) -> Outcome:
    details = {"flags": step.flags} if step.flags else None
    return Outcome(step.source.id, OutcomeKind.MIGRATED, "migrated", details=details)


def _migrate_one(step: _Step, msg: BatchMessage, admin: GoTrueAdmin, pace: Limiter, retrying: bool) -> None:
    """Create one user exactly once: look up first on a retry; settle an uncertain create by id."""
    if retrying and (found := admin.get_user(step.gotrue_id, pace)) is not None:
        _judge_existing(step, found, msg)
        return
    for attempt in range(1, _CREATE_ATTEMPTS + 1):
        try:
            admin.create_user(step.body, pace)
        except GoTrueUncertain as exc:
            # 5xx or no answer: it may have been created (or our id may be taken, which GoTrue answers
            # 500). The GET says which; only a user still missing is posted again.
            admin.sleep(backoff_delay(attempt, base_s=admin.retry_base_s, cap_s=admin.retry_cap_s))
            if (found := admin.get_user(step.gotrue_id, pace)) is not None:
                _judge_existing(step, found, msg)
                return
            if exc.message == HASH_REFUSED_MESSAGE and "password_hash" in step.body:
                # GoTrue could not parse the hash: the same body fails the same way every time.
                step.outcome = Outcome(
                    step.source.id,
                    OutcomeKind.INVALID,
                    "rejected_by_target",
                    "GoTrue refused the password hash",
                    {"status": exc.status, "gotrue_error_code": "password_hash_refused", "gotrue_message": exc.message},
                )
                return
            continue
        except GoTrueRejected as exc:
            _rejected(step, exc, msg, admin, pace)
            return
        step.created = True
        step.outcome = _migrated(step)
        return
    raise GoTrueUncertain(f"create of one user still uncertain after {_CREATE_ATTEMPTS} attempts")


def _rejected(step: _Step, exc: GoTrueRejected, msg: BatchMessage, admin: GoTrueAdmin, pace: Limiter) -> None:
    if exc.status == httpx.codes.UNPROCESSABLE_ENTITY and exc.error_code in _EMAIL_CONFLICT_CODES:
        found = admin.get_user(step.gotrue_id, pace)
        if found is not None:
            _judge_existing(step, found, msg)
            return
        holder = admin.find_by_email(step.email, pace)
        step.outcome = Outcome(
            step.source.id,
            OutcomeKind.CONFLICT,
            "email_taken_in_target",
            "another GoTrue user already has this email; not merged, not overwritten",
            {"target_user_id": holder.get("id") if holder else None, "gotrue_error_code": exc.error_code},
        )
        return
    step.outcome = Outcome(
        step.source.id,
        OutcomeKind.INVALID,
        "rejected_by_target",
        exc.message or exc.error_code,
        {"status": exc.status, "gotrue_error_code": exc.error_code, "gotrue_message": exc.message},
    )


def _predict(step: _Step, msg: BatchMessage, admin: GoTrueAdmin, pace: Limiter) -> None:
    found = admin.get_user(step.gotrue_id, pace)
    if found is not None:
        _judge_existing(step, found, msg)
        return
    holder = admin.find_by_email(step.email, pace)
    if holder is not None:
        step.outcome = Outcome(
            step.source.id,
            OutcomeKind.CONFLICT,
            "email_taken_in_target",
            "another GoTrue user already has this email; not merged, not overwritten",
            {"target_user_id": holder.get("id")},
        )
    else:
        step.outcome = _migrated(step)


def _track(state: psycopg.Connection, plan: _HttpPlan, msg: BatchMessage, source_name: str) -> None:
    """Tracking rows of every user created, recovered or adopted; a lost claim reads already_migrated."""
    groups: dict[tuple[str, bool], list[_Step]] = {}
    for step in plan.steps:
        if step.outcome is not None and step.outcome.kind in (
            OutcomeKind.MIGRATED,
            OutcomeKind.ADOPTED,
            OutcomeKind.RECOVERED,
        ):
            groups.setdefault((step.owner or msg.migration_id, step.created), []).append(step)
    for (migration_id, created), steps in groups.items():
        rows = state.execute(
            """INSERT INTO migrated_users
                   (original_id, new_auth_id, email, migration_id, source, created_target, flags, metadata)
               SELECT o, n, e, %s, %s, %s, f::text[], m::jsonb
               FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[]) AS t(o, n, e, f, m)
               ON CONFLICT (original_id) DO NOTHING RETURNING original_id""",
            (
                migration_id,
                source_name,
                created,
                [s.source.id for s in steps],
                [s.gotrue_id for s in steps],
                [s.email for s in steps],
                ["{" + ",".join(s.flags) + "}" for s in steps],
                [json.dumps(s.metadata, default=str) for s in steps],
            ),
        ).fetchall()
        claimed = {r[0] for r in rows}
        for step in steps:
            if step.source.id not in claimed:
                step.outcome = Outcome(step.source.id, OutcomeKind.ALREADY_MIGRATED, "already_migrated")
        # Where each user stands, in the same transaction as its tracking row (as the Better-Auth target).
        state.execute(
            """INSERT INTO user_migration_status (user_id, email, state, supabase_migrated, better_auth_migrated,
                                                  migration_id, migration_completed_at)
               SELECT u, e, 'migrated_bulk', true, false, %s, now() FROM unnest(%b::text[], %b::text[]) AS t(u, e)
               ON CONFLICT (user_id) DO UPDATE SET state = 'migrated_bulk', supabase_migrated = true,
                   migration_id = EXCLUDED.migration_id, migration_completed_at = now(), updated_at = now()""",
            (
                migration_id,
                [s.source.id for s in steps if s.source.id in claimed],
                [s.email for s in steps if s.source.id in claimed],
            ),
        )


# --- rollback ----------------------------------------------------------------------------------------


def rollback_supabase(ctx: EngineContext, migration_id: str, options: dict[str, Any]) -> tuple[int, int]:
    """Delete through the admin API exactly the GoTrue users this migration created; returns (users
    deleted, tracking rows deleted). The caller marked it rolling_back and waited for live batches.

    Idempotent: a 404 on delete counts as done; GoTrue first, then the tracking rows, so a crash in
    between re-runs to the same end. Open intents are converged first: an untracked id GoTrue holds
    is deleted only when its app_metadata names this migration (proof it created it)."""
    from auth_migration.engine.rollback import _forget

    state = ctx.connections.state
    admin = _admin(ctx)
    pace = pace_of(ctx, migration_id, options)
    deleted = 0
    last_no = 0
    while True:
        rows = state.execute(
            """SELECT batch_no, pending_create FROM migration_batches
               WHERE migration_id = %s AND pending_create IS NOT NULL AND batch_no > %s ORDER BY batch_no LIMIT 5""",
            (migration_id, last_no),
        ).fetchall()
        if not rows:
            break
        ids = [i for _, pending in rows for i in pending]
        untracked = [
            r[0]
            for r in state.execute(
                # A row naming k.id has original_id = k.id (a primary-key probe) or differs from it
                # (the partial migrated_users_new_auth_id_idx holds exactly those, sql/0011).
                """SELECT k.id FROM unnest(%b::text[]) AS k(id)
                   WHERE NOT EXISTS (SELECT 1 FROM migrated_users m WHERE m.original_id = k.id AND m.new_auth_id = k.id)
                     AND NOT EXISTS (SELECT 1 FROM migrated_users m
                                     WHERE m.new_auth_id = k.id AND m.new_auth_id <> m.original_id)""",
                (ids,),
            )
        ]

        def converge(user_id: str) -> bool:
            found = admin.get_user(user_id, pace)
            if found is None or (found.get("app_metadata") or {}).get(MIGRATION_MARKER) != migration_id:
                return False
            return admin.delete_user(user_id, pace)

        deleted += sum(_parallel(converge, untracked, pace.rate))
        with state.transaction():
            state.execute(
                "UPDATE migration_batches SET pending_create = NULL WHERE migration_id = %s AND batch_no = ANY(%s)",
                (migration_id, [no for no, _ in rows]),
            )
        last_no = rows[-1][0]
    forgotten = 0
    while True:
        tracked = state.execute(
            """SELECT original_id, new_auth_id, created_target FROM migrated_users
               WHERE migration_id = %s ORDER BY original_id LIMIT %s""",
            (migration_id, _ROLLBACK_CHUNK),
        ).fetchall()
        if not tracked:
            return deleted, forgotten
        created = [new_id for _, new_id, was_created in tracked if was_created]
        deleted += sum(_parallel(lambda i: admin.delete_user(i, pace), created, pace.rate))
        with state.transaction():
            forgotten += _forget(state, migration_id, [orig for orig, _, _ in tracked], system="supabase")
