"""Migrate one batch: read a keyset range, classify every user, write set-wise, record every outcome.

Guarantees (see ARCHITECTURE.md): a batch runs under its row lock, so duplicate deliveries
serialise and the second finds it done; already-migrated users are skipped set-wise; each user's
target rows and tracking row commit together (one transaction where state and target share a
database, a recorded intent otherwise); one bad user is isolated with savepoints and never blocks
the others; transient errors are retried with backoff before the message goes back to SQS.
"""

from __future__ import annotations

import gc
import json
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from psycopg import errors as pg_errors

from auth_migration.engine.context import EngineContext
from auth_migration.engine.state import finish_status_sql
from auth_migration.exceptions import InvalidRequest
from auth_migration.models import ERROR_KINDS, BatchMessage, Outcome, OutcomeKind, SourceUser, TargetUser
from auth_migration.retry import retry_transient
from auth_migration.sources import UserSource, get_source
from auth_migration.store import is_transient
from auth_migration.targets import BetterAuthTarget, TargetCapabilities, get_target
from auth_migration.targets.supabase import SupabaseTarget
from auth_migration.transforms import resolve_pipeline, transform
from auth_migration.validation import ValidationPolicy, classify

#: An optional hook the worker passes to see a batch's statement groups: called with "read_source",
#: "transform", "write_target" and "tracking" as each starts (the previous one ends there). Sentry's spans.
PhaseHook = Callable[[str], None]


def _no_phase(_name: str) -> None:
    return None


@dataclass
class BatchResult:
    migration_id: str
    batch_no: int
    status: str  # done | duplicate | ignored
    users: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    #: Its users were read and decided ahead, while the batch before it wrote (prefetch_batch).
    read_ahead: bool = False

    @property
    def errors(self) -> int:
        return sum(n for key, n in self.outcomes.items() if key.split(":", 1)[0] in ERROR_KINDS)


@dataclass
class _Plan:
    """What one batch decided for each user before writing."""

    outcomes: list[Outcome] = field(default_factory=list)
    create: list[TargetUser] = field(default_factory=list)
    adopt: list[TargetUser] = field(default_factory=list)
    #: Users found already migrated before any write (outcome "already_migrated", counted only).
    already_migrated: int = 0
    #: Target users an earlier migration's open intent created: (draft, that migration's id).
    recovered: list[tuple[TargetUser, str]] = field(default_factory=list)


def parse_batch_message(body: Any) -> BatchMessage:
    """Validate an SQS body; malformed bodies are permanent errors (they go to the DLQ)."""
    if not isinstance(body, dict):
        raise InvalidRequest("batch message body must be a JSON object")
    mid, no, after, upto = (body.get(k) for k in ("migration_id", "batch_no", "after_id", "upto_id"))
    if not isinstance(mid, str) or not mid or not isinstance(no, int) or isinstance(no, bool) or no < 1:
        raise InvalidRequest("batch message needs migration_id (string) and batch_no (integer >= 1)")
    if not isinstance(upto, str) or not upto or not (after is None or isinstance(after, str)):
        raise InvalidRequest("batch message needs upto_id (string) and after_id (string or null)")
    return BatchMessage(migration_id=mid, batch_no=no, after_id=after, upto_id=upto)


def process_batch(
    msg: BatchMessage,
    ctx: EngineContext,
    *,
    receive_count: int = 1,
    phase: PhaseHook = _no_phase,
    next_msg: BatchMessage | None = None,
) -> BatchResult:
    """Migrate one batch, retrying transient errors; on the last SQS receive, mark the batch failed.

    `next_msg`: the batch this worker processes next (the invocation's next SQS record), read and decided in
    the background while this one writes (prefetch_batch); its process_batch then takes that work."""
    prepared = ctx.prefetcher().take(_key(msg)) if ctx.prefetch else None
    if next_msg is not None and ctx.prefetch:
        prefetch_batch(next_msg, ctx)

    def on_retry(attempt: int, exc: BaseException) -> None:
        ctx.log("batch retry", {"batch_no": msg.batch_no, "attempt": attempt, "error": type(exc).__name__})
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            ctx.discard_prefetched()  # its thread may be using a connection the reset closes
            ctx.connections.reset()

    def attempt() -> BatchResult:
        # The prepared work serves the first attempt only: a retry reads and decides again.
        nonlocal prepared
        ahead, prepared = prepared, None
        return _run(msg, ctx, phase, ahead)

    try:
        return retry_transient(
            attempt,
            is_transient=is_transient,
            max_retries=ctx.max_retries,
            on_retry=on_retry,
            base_s=ctx.retry_base_s,
        )
    except Exception as exc:
        if receive_count >= ctx.max_receive_count:
            _mark_batch_failed(msg, ctx, exc, receive_count)
        raise


def _run(
    msg: BatchMessage, ctx: EngineContext, phase: PhaseHook = _no_phase, prepared: _Prepared | None = None
) -> BatchResult:
    if _target_of(msg, ctx) == SupabaseTarget.name:
        from auth_migration.engine.supabase_batch import run_supabase_batch

        result: BatchResult = run_supabase_batch(msg, ctx)
        return result
    with gc_paused:
        return _run_better_auth(msg, ctx, phase, prepared)


# --- reading ahead -------------------------------------------------------------------------------------

#: The batch row and its migration's, as a batch reads them (under its lock) and as a prefetch reads them
#: (without): the prefetch's work is used only when both readings are equal.
_BATCH_ROW = """SELECT b.status, m.status, m.dry_run, m.source, m.target, m.options, b.pending_create,
                       coalesce(m.as_of, m.created_at), b.decide_only, b.counted
                FROM migration_batches b JOIN migration_states m ON m.id = b.migration_id
                WHERE b.migration_id = %s AND b.batch_no = %s"""


class _BatchRow(NamedTuple):
    """_BATCH_ROW's columns, in order."""

    status: str
    migration_status: str
    dry_run: bool
    source: str
    target: str
    options: dict[str, Any]
    pending_create: list[str] | None
    now: datetime
    decide_only: list[str] | None
    counted: int | None


def _batch_row(conn: psycopg.Connection, msg: BatchMessage, *, lock: bool) -> _BatchRow | None:
    row = conn.execute(_BATCH_ROW + (" FOR UPDATE OF b" if lock else ""), (msg.migration_id, msg.batch_no)).fetchone()
    return None if row is None else _BatchRow(*row)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A batch read and decided ahead, before its lock: what it saw of the batch row, and its plan."""

    seen: _BatchRow
    plan: _Plan
    total: int


def _key(msg: BatchMessage) -> tuple[str, int, str | None, str]:
    return (msg.migration_id, msg.batch_no, msg.after_id, msg.upto_id)


def prefetch_batch(msg: BatchMessage, ctx: EngineContext) -> None:
    """Read and decide `msg` on a connection and thread of its own, for its process_batch to take.

    Only where state, source and target are one database (the shared layout: one connection reads all
    three) and the target is Better-Auth. Nothing is written: the batch takes the plan under its lock only
    if the batch row reads the same then (not done, same migration status, options and intent); users
    migrated or created meanwhile lose the claim or meet a constraint, exactly as a concurrent writer does
    between a batch's own read and write (READ COMMITTED), and are recorded so."""
    conns = ctx.connections
    if not (conns.shared_target and conns.shared_source) or _target_of(msg, ctx) != BetterAuthTarget.name:
        return
    ctx.prefetcher().start(_key(msg), lambda: _prepare(msg, ctx))


def _prepare(msg: BatchMessage, ctx: EngineContext) -> _Prepared | None:
    conn = ctx.connections.side("state", "prefetch")
    with gc_paused, conn.transaction():
        row = _batch_row(conn, msg, lock=False)
        if row is None or row.status == "done" or row.migration_status in ("rolling_back", "rolled_back"):
            return None
        target = get_target(row.target)
        caps = ctx.capabilities(target, conn)
        plan, total = _read_and_decide(
            msg,
            ctx,
            row,
            get_source(row.source),
            target,
            caps,
            source_conn=conn,
            state=conn,
            target_conn=conn,
            known=True,
        )
        return _Prepared(row, plan, total)


def _read_and_decide(
    msg: BatchMessage,
    ctx: EngineContext,
    row: _BatchRow,
    source: UserSource,
    target: BetterAuthTarget,
    caps: TargetCapabilities,
    *,
    source_conn: psycopg.Connection,
    state: psycopg.Connection,
    target_conn: psycopg.Connection | None = None,
    known: bool,
    phase: PhaseHook = _no_phase,
) -> tuple[_Plan, int]:
    """Read the batch's range and decide every user (no writes): the plan and the users it covers.

    `known` (the state lives with the source): the read itself says who is already migrated (one index probe
    per user; no migration-only columns read for them), and the users both migrated and plainly valid are
    only counted: a re-run neither transfers nor converts them. `decide_only` (planning's undecided users
    of a re-run's range, known only): just those are read, and the range's other `counted` users are counted
    as already migrated, as planning counts a settled range."""
    now = row.now
    policy = ValidationPolicy(stage=ctx.stage, target_supports_bans=caps.supports_bans, now=now)
    skipped = 0
    if known:
        users, skipped = source.fetch_pending(source_conn, msg.after_id, msg.upto_id, policy, only=row.decide_only)
        if row.decide_only is not None:
            skipped += row.counted or 0
    else:
        users = source.fetch_range(source_conn, msg.after_id, msg.upto_id)
    phase("transform")
    plan = _decide(
        users,
        msg,
        ctx,
        state,
        target,
        policy,
        now,
        row.options,
        pending_create=set(row.pending_create or ()),
        migrated_known=known,
        target_conn=target_conn,
    )
    plan.already_migrated += skipped
    return plan, len(users) + skipped


class GcPause:
    """Python's cyclic garbage collector off inside `with`, then back to how the first entry found it.

    Why: a Better-Auth batch allocates hundreds of thousands of container objects (rows, SourceUser,
    drafts, parameter lists); every 700 net allocations trigger a young collection that walks them,
    and the older generations follow: measured 49-90 ms per batch of 10,000 users (docs/SCALING.md).
    None of that work frees anything the batch needs freed: its objects go by reference counting when
    it returns, and anything cyclic is left to the first collection after the pause.
    Nested or concurrent entries (threads of one process) share one count: the last to leave restores
    the state the first found, so overlapping pauses never leave the collector disabled for good.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._depth += 1

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._was_enabled:
                gc.enable()


gc_paused = GcPause()


def _target_of(msg: BatchMessage, ctx: EngineContext) -> str:
    """The migration's target, read once per container (it never changes after start)."""
    target = ctx.targets.get(msg.migration_id)
    if target is None:
        row = ctx.connections.state.execute(
            "SELECT target FROM migration_states WHERE id = %s", (msg.migration_id,)
        ).fetchone()
        if row is None:
            raise InvalidRequest(f"no migration with id {msg.migration_id!r}")
        target = ctx.targets[msg.migration_id] = str(row[0])
    return target


def _run_better_auth(
    msg: BatchMessage, ctx: EngineContext, phase: PhaseHook = _no_phase, prepared: _Prepared | None = None
) -> BatchResult:
    conns = ctx.connections
    state = conns.state
    shared = conns.shared_target
    with state.transaction():
        phase("read_source")
        row = _batch_row(state, msg, lock=True)
        if row is None:
            raise InvalidRequest(f"batch {msg.batch_no} of migration {msg.migration_id!r} is not planned")
        if row.status == "done":
            return BatchResult(msg.migration_id, msg.batch_no, "duplicate")
        if row.migration_status in ("rolling_back", "rolled_back"):
            return BatchResult(msg.migration_id, msg.batch_no, "ignored")

        source_name, dry_run = row.source, row.dry_run
        source, target = get_source(source_name), get_target(row.target)
        caps = ctx.capabilities(target)
        if prepared is not None and prepared.seen == row:
            # Read and decided ahead while the previous batch wrote, and nothing it relied on has changed.
            phase("transform")
            plan, total = prepared.plan, prepared.total
            read_ahead = True
        else:
            read_ahead = False
            plan, total = _read_and_decide(
                msg,
                ctx,
                row,
                source,
                target,
                caps,
                source_conn=conns.source,
                state=state,
                known=conns.shared_source,
                phase=phase,
            )

        if dry_run:
            phase("tracking")
            # Same decisions, no writes: what the real run would count, from the same code path.
            _add_outcomes(
                plan, {u.id for u in plan.create}, {u.id for u in plan.create}, {u.id for u in plan.adopt}, {}
            )
            return _finish(state, msg, total, plan, read_ahead=read_ahead)
        if shared:
            phase("write_target")
            _write_shared(plan, msg, source_name, state, target, caps)
            phase("tracking")
            _track_recovered(state, plan, msg, source_name)
            return _finish(state, msg, total, plan, read_ahead=read_ahead)
        # Two databases cannot share a transaction: record the intent and commit it, write the
        # target idempotently, then record the outcome. A retry after a crash in between finds its
        # own rows through pending_create and counts them as created (see _decide), and so does a
        # rollback (rollback._converge_intents).
        phase("tracking")
        state.execute(
            "UPDATE migration_batches SET pending_create = %s WHERE migration_id = %s AND batch_no = %s",
            ([u.id for u in plan.create], msg.migration_id, msg.batch_no),
        )
    with state.transaction():
        # The target is written under the batch row lock, as in the shared layout: a rollback waits
        # for a live worker here, and a worker that gets the lock after a rollback began writes
        # nothing (a crash while holding it leaves only the intent, which the rollback converges).
        still_open = state.execute(
            "SELECT status FROM migration_batches WHERE migration_id = %s AND batch_no = %s FOR UPDATE",
            (msg.migration_id, msg.batch_no),
        ).fetchone()
        if still_open is None or still_open[0] == "done":
            return BatchResult(msg.migration_id, msg.batch_no, "duplicate")
        # A statement of its own, after the lock: its snapshot sees a rollback that committed while we waited.
        mig = state.execute("SELECT status FROM migration_states WHERE id = %s", (msg.migration_id,)).fetchone()
        if mig is None or mig[0] in ("rolling_back", "rolled_back"):
            return BatchResult(msg.migration_id, msg.batch_no, "ignored")
        phase("write_target")
        created, failed = _write_target(conns.target, target, plan.create, caps)
        phase("tracking")
        _track(state, plan, created, failed, msg, source_name)
        _track_recovered(state, plan, msg, source_name)
        return _finish(state, msg, total, plan, read_ahead=read_ahead)


def _decide(
    users: Sequence[SourceUser],
    msg: BatchMessage,
    ctx: EngineContext,
    state: psycopg.Connection,
    target: BetterAuthTarget,
    policy: ValidationPolicy,
    now: datetime,
    options: dict[str, Any],
    *,
    pending_create: set[str],
    migrated_known: bool = False,
    target_conn: psycopg.Connection | None = None,
) -> _Plan:
    plan = _Plan()
    pipeline = resolve_pipeline(options.get("transforms"))
    valid: list[SourceUser] = []
    for user in users:
        verdict = classify(user, policy)
        if verdict is not None:
            plan.outcomes.append(verdict)
        else:
            valid.append(user)
    if not valid:
        return plan
    # Already-migrated users are skipped set-wise before any transform or target lookup, so a
    # re-run costs one read of the range and one index probe per user (in that read when the source
    # shares the state's database, else here; LATERAL ... LIMIT 1 keeps it a probe, see lookup()).
    if migrated_known:
        already = {u.id for u in valid if u.migrated}
    else:
        already = {
            r[0]
            for r in state.execute(
                """SELECT m.original_id FROM unnest(%b::text[]) AS k(id) CROSS JOIN LATERAL
                       (SELECT original_id FROM migrated_users WHERE original_id = k.id LIMIT 1) m""",
                ([u.id for u in valid],),
            )
        }
    # Counted, not listed: an already-migrated user is never recorded one by one (a re-run is all of them).
    plan.already_migrated += sum(1 for u in valid if u.id in already)
    drafts = [transform(u, pipeline, now=now) for u in valid if u.id not in already]
    if not drafts:
        return plan

    ids = [d.id for d in drafts]
    emails = [d.email for d in drafts]
    case_dupes = {
        r[0]
        for r in state.execute(
            "SELECT email_lower FROM migration_email_conflicts WHERE migration_id = %s AND email_lower = ANY(%b)",
            (msg.migration_id, emails),
        )
    }
    existing = target.lookup(target_conn if target_conn is not None else ctx.connections.target, ids, emails)
    # Only ids the target already holds can be another migration's leftover: usually none, no query.
    foreign = [i for i in ids if i in existing.email_by_id and i not in pending_create]
    intents = _intents_elsewhere(state, msg, foreign) if foreign else {}
    seen_emails: set[str] = set()
    for draft in drafts:
        if draft.email in case_dupes or draft.email in seen_emails:
            plan.outcomes.append(
                Outcome(
                    draft.id,
                    OutcomeKind.CONFLICT,
                    "email_case_duplicate",
                    "several source users share this email ignoring case; a person must decide",
                )
            )
        elif draft.id in existing.email_by_id:
            if draft.id in pending_create:
                plan.create.append(draft)  # our own row from an interrupted earlier attempt
            elif draft.id in intents and existing.email_by_id[draft.id] == draft.email:
                # Adopting it would launder a leak: that migration created it and its rollback must
                # find it. Tracked as its creation instead, and listed so the operator sees it.
                plan.recovered.append((draft, intents[draft.id]))
                plan.outcomes.append(
                    Outcome(
                        draft.id,
                        OutcomeKind.RECOVERED,
                        "created_by_earlier_intent",
                        f"created by an interrupted batch of migration {intents[draft.id]}; tracked as its user, "
                        f"so `migrate rollback {intents[draft.id]}` removes it",
                        {"created_by_migration": intents[draft.id]},
                    )
                )
            elif existing.email_by_id[draft.id] == draft.email:
                plan.adopt.append(draft)
            else:
                plan.outcomes.append(
                    Outcome(
                        draft.id,
                        OutcomeKind.CONFLICT,
                        "id_taken_in_target",
                        "the target holds this id with another email",
                    )
                )
        elif draft.email in existing.id_by_email:
            plan.outcomes.append(
                Outcome(
                    draft.id,
                    OutcomeKind.CONFLICT,
                    "email_taken_in_target",
                    "another target user already has this email; not merged",
                    {"target_user_id": existing.id_by_email[draft.email]},
                )
            )
        else:
            plan.create.append(draft)
        seen_emails.add(draft.email)
    return plan


def _intents_elsewhere(state: psycopg.Connection, msg: BatchMessage, ids: Sequence[str]) -> dict[str, str]:
    """id -> migration whose batch (not this one) holds an open intent (pending_create) to create it.

    An intent is open from its commit until its batch records the outcome (done) or a rollback
    converges it; a killed two-database batch leaves it open. Oldest migration first."""
    rows = state.execute(
        """SELECT DISTINCT ON (k.id) k.id, b.migration_id
           FROM migration_batches b CROSS JOIN LATERAL unnest(b.pending_create) AS k(id)
           WHERE b.pending_create && %b::text[] AND k.id = ANY(%b::text[])
             AND NOT (b.migration_id = %s AND b.batch_no = %s)
           ORDER BY k.id, b.migration_id""",
        (list(ids), list(ids), msg.migration_id, msg.batch_no),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def _track_recovered(state: psycopg.Connection, plan: _Plan, msg: BatchMessage, source_name: str) -> None:
    """Tracking rows for plan.recovered, each in the name of the migration that created it."""
    by_migration: dict[str, list[TargetUser]] = {}
    for draft, migration_id in plan.recovered:
        by_migration.setdefault(migration_id, []).append(draft)
    for migration_id, users in by_migration.items():
        owner = replace(msg, migration_id=migration_id)
        claimed = _claim(state, users, owner, source_name, created=True)
        _mark_status(state, [u for u in users if u.id in claimed], owner)


def _write_target(
    conn: psycopg.Connection, target: BetterAuthTarget, users: Sequence[TargetUser], caps: TargetCapabilities
) -> tuple[set[str], dict[str, Outcome]]:
    """Insert set-wise; if the set fails, retry user by user in savepoints to isolate the bad ones."""
    try:
        with conn.transaction():
            return target.insert(conn, users, caps), {}
    except (pg_errors.IntegrityError, pg_errors.DataError):
        pass
    created: set[str] = set()
    failed: dict[str, Outcome] = {}
    for user in users:
        try:
            with conn.transaction():
                created |= target.insert(conn, [user], caps)
        except (pg_errors.IntegrityError, pg_errors.DataError) as exc:
            failed[user.id] = _rejection(user, exc)
    return created, failed


def _rejection(user: TargetUser, exc: psycopg.Error) -> Outcome:
    if isinstance(exc, pg_errors.UniqueViolation):
        return Outcome(
            user.id,
            OutcomeKind.CONFLICT,
            "email_taken_in_target",
            "another target user took this email meanwhile",
        )
    return Outcome(
        user.id,
        OutcomeKind.INVALID,
        "rejected_by_target",
        "the target database rejected this user's data",
        {"sqlstate": exc.sqlstate},
    )


def _write_shared(
    plan: _Plan,
    msg: BatchMessage,
    source_name: str,
    conn: psycopg.Connection,
    target: BetterAuthTarget,
    caps: TargetCapabilities,
) -> None:
    """One database: claim + target rows + status in one statement, set-wise first, per user on failure."""

    def write(users: Sequence[TargetUser], adopt: set[str]) -> tuple[set[str], set[str]]:
        done = target.write_tracked(conn, users, caps, adopt=adopt, migration_id=msg.migration_id, source=source_name)
        return done.claimed, done.created

    adopt_ids = {u.id for u in plan.adopt}
    claimed: set[str] = set()
    created: set[str] = set()
    failed: dict[str, Outcome] = {}
    if not plan.create and not plan.adopt:
        return  # a re-run: no savepoint, no statement
    try:
        with conn.transaction():
            claimed, created = write(plan.create + plan.adopt, adopt_ids)
    except (pg_errors.IntegrityError, pg_errors.DataError):
        # One bad user must not block the others: each user to create in its own savepoint.
        for user in plan.create:
            try:
                with conn.transaction():
                    c, k = write([user], adopt_ids)
                    claimed |= c
                    created |= k
            except (pg_errors.IntegrityError, pg_errors.DataError) as exc:
                failed[user.id] = _rejection(user, exc)
        c, _ = write(plan.adopt, adopt_ids)  # adoptions write no target row: nothing there to reject
        claimed |= c
    adopted = claimed & adopt_ids
    _add_outcomes(plan, claimed - adopted, created, adopted, failed)


def _track(
    state: psycopg.Connection,
    plan: _Plan,
    created: set[str],
    failed: dict[str, Outcome],
    msg: BatchMessage,
    source_name: str,
) -> None:
    """Two-database mode: tracking rows after the target write (created, or adopted by an earlier run)."""
    ok = [u for u in plan.create if u.id not in failed]
    claimed = _claim(state, ok, msg, source_name, created=True)
    adopted = _claim(state, plan.adopt, msg, source_name, created=False)
    _add_outcomes(plan, claimed, created | claimed, adopted, failed)
    _mark_status(state, [u for u in ok + plan.adopt if u.id in claimed | adopted], msg)


def _add_outcomes(
    plan: _Plan, claimed: set[str], created: set[str], adopted: set[str], failed: dict[str, Outcome]
) -> None:
    for user in plan.create:
        if user.id in failed:
            plan.outcomes.append(failed[user.id])
        elif user.id not in claimed:
            plan.outcomes.append(Outcome(user.id, OutcomeKind.ALREADY_MIGRATED, "already_migrated"))
        elif user.id in created:
            plan.outcomes.append(Outcome(user.id, OutcomeKind.MIGRATED, "migrated", details=_flags(user)))
        else:
            plan.outcomes.append(Outcome(user.id, OutcomeKind.ADOPTED, "adopted"))
    for user in plan.adopt:
        kind = OutcomeKind.ADOPTED if user.id in adopted else OutcomeKind.ALREADY_MIGRATED
        plan.outcomes.append(Outcome(user.id, kind, kind.value))


def _flags(user: TargetUser) -> dict[str, Any] | None:
    return {"flags": user.flags} if user.flags else None


def _claim(
    conn: psycopg.Connection,
    users: Sequence[TargetUser],
    msg: BatchMessage,
    source_name: str,
    *,
    created: bool,
) -> set[str]:
    """Insert tracking rows; returns the ids this call claimed (a concurrent claimer blocks us, then wins)."""
    if not users:
        return set()
    rows = conn.execute(
        """INSERT INTO migrated_users
               (original_id, new_auth_id, email, migration_id, source, created_target, flags, metadata)
           SELECT o, o, e, %s, %s, %s, f::text[], m::jsonb
           FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[]) AS t(o, e, f, m)
           ON CONFLICT (original_id) DO NOTHING RETURNING original_id""",
        (
            msg.migration_id,
            source_name,
            created,
            [u.id for u in users],
            [u.email for u in users],
            ["{" + ",".join(u.flags) + "}" for u in users],
            [u.metadata_text() for u in users],
        ),
    ).fetchall()
    return {r[0] for r in rows}


def _mark_status(conn: psycopg.Connection, users: Sequence[TargetUser], msg: BatchMessage) -> None:
    if not users:
        return
    conn.execute(
        """INSERT INTO user_migration_status (user_id, email, state, supabase_migrated, better_auth_migrated,
                                              migration_id, migration_completed_at)
           SELECT u, e, 'migrated_bulk', true, true, %s, now() FROM unnest(%b::text[], %b::text[]) AS t(u, e)
           ON CONFLICT (user_id) DO UPDATE SET state = 'migrated_bulk', better_auth_migrated = true,
               migration_id = EXCLUDED.migration_id, migration_completed_at = now(), updated_at = now()""",
        (msg.migration_id, [u.id for u in users], [u.email for u in users]),
    )


def _finish(
    state: psycopg.Connection, msg: BatchMessage, total: int, plan: _Plan, *, read_ahead: bool = False
) -> BatchResult:
    """Record the errors, mark the batch done, add to the counters and settle the status: one statement.

    total: the users the batch read, counted ones included (every one has exactly one outcome)."""
    counts = Counter(o.key for o in plan.outcomes)
    # The flags of the users it (would have) migrated: a dry run's report counts them from here.
    flags = Counter(
        flag
        for o in plan.outcomes
        if o.kind is OutcomeKind.MIGRATED and o.details
        for flag in o.details.get("flags") or ()
    )
    if plan.already_migrated:
        counts[OutcomeKind.ALREADY_MIGRATED.value] += plan.already_migrated
    result = BatchResult(msg.migration_id, msg.batch_no, "done", total, dict(counts), read_ahead)
    recorded = [o for o in plan.outcomes if o.kind not in _TRACKED_KINDS]
    errors = int(result.errors)
    state.execute(
        f"""WITH recorded AS (
              INSERT INTO migration_errors (migration_id, user_id, batch_no, error_kind, error_code,
                                            error_message, error_details)
              SELECT %s, u, %s, k, c, m, d::jsonb
              FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[]) AS t(u, k, c, m, d)
              ON CONFLICT (migration_id, user_id, error_code) WHERE user_id IS NOT NULL DO NOTHING
            ),
            batch AS (
              UPDATE migration_batches SET status = 'done', attempts = attempts + 1, user_count = %s,
                     outcomes = %s::jsonb, flag_counts = %s::jsonb, pending_create = NULL, completed_at = now()
              WHERE migration_id = %s AND batch_no = %s
            )
            UPDATE migration_states SET processed_count = processed_count + %s, error_count = error_count + %s,
                   batches_done = batches_done + 1,
                   last_processed_id = CASE WHEN last_processed_id IS NULL OR last_processed_id < %s
                                            THEN %s ELSE last_processed_id END,
                   {finish_status_sql("batches_done + 1", f"error_count + {errors}")}
            WHERE id = %s""",
        (
            msg.migration_id,
            msg.batch_no,
            [o.user_id for o in recorded],
            [o.kind.value for o in recorded],
            [o.code for o in recorded],
            [o.message or o.code for o in recorded],
            [json.dumps(o.details) if o.details else None for o in recorded],
            total,
            json.dumps(result.outcomes),
            json.dumps(dict(flags)) if flags else None,
            msg.migration_id,
            msg.batch_no,
            total,
            errors,
            msg.upto_id,
            msg.upto_id,
            msg.migration_id,
        ),
    )
    return result


_TRACKED_KINDS = frozenset({OutcomeKind.MIGRATED, OutcomeKind.ADOPTED, OutcomeKind.ALREADY_MIGRATED})


def _mark_batch_failed(msg: BatchMessage, ctx: EngineContext, exc: BaseException, receive_count: int) -> None:
    """Last receive: the message is about to go to the DLQ. Say so in the state, best effort."""
    try:
        state = ctx.connections.state
        with state.transaction():
            row = state.execute(
                """UPDATE migration_batches SET status = 'failed', attempts = attempts + 1
                   WHERE migration_id = %s AND batch_no = %s AND status NOT IN ('done', 'failed') RETURNING 1""",
                (msg.migration_id, msg.batch_no),
            ).fetchone()
            if row is None:
                return
            state.execute(
                """INSERT INTO migration_errors (migration_id, user_id, batch_no, error_kind, error_code,
                                                 error_message, attempt)
                   VALUES (%s, NULL, %s, 'failed', 'batch_failed', %s, %s)""",
                (
                    msg.migration_id,
                    msg.batch_no,
                    f"{type(exc).__name__} after {receive_count} receives",
                    receive_count,
                ),
            )
            state.execute(
                "UPDATE migration_states SET batches_failed = batches_failed + 1 WHERE id = %s",
                (msg.migration_id,),
            )
            state.execute(f"UPDATE migration_states SET {finish_status_sql()} WHERE id = %s", (msg.migration_id,))
    except psycopg.Error as db_exc:
        ctx.log("could not mark batch failed", {"batch_no": msg.batch_no, "error": type(db_exc).__name__})
