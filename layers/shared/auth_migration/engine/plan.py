"""Start and resume: plan keyset batches of the source into migration_batches, then enqueue them."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from auth_migration.engine.context import EngineContext
from auth_migration.engine.state import finish_status_sql, load_migration, new_migration_id
from auth_migration.exceptions import ConfigError, InvalidRequest, StateConflict
from auth_migration.models import BatchMessage
from auth_migration.sources import SOURCES, UserSource, get_source
from auth_migration.store import require_schema
from auth_migration.targets import TARGET_NAMES, SupabaseTarget, get_target
from auth_migration.targets.supabase import MAX_REQUESTS_PER_S
from auth_migration.transforms import resolve_pipeline
from auth_migration.validation import ValidationPolicy

MAX_BATCH_SIZE = 10_000
#: Users per batch (one SQS message) into Better-Auth when a migration names none: the fastest the bench
#: measured (bench/README.md; 100k users: 1.31x the raw INSERT ... SELECT floor against 2.25x at the old
#: default of 100), about 2 s and 90 MB per message here (docs/SCALING.md).
DEFAULT_BATCH_SIZE = 10_000
#: The supabase target is bound by its request cap, not by SQL: a batch holds this many seconds of calls
#: at the cap, so an invocation of several messages stays far inside MigrateBatch's timeout.
SUPABASE_BATCH_SECONDS = 5
_ENQUEUE_CHUNK = 500
#: Where the state shares the source's database, planning records as done (never sends) every batch
#: whose users a batch would all only count: migrated and plainly valid (see _record_settled). A
#: re-run then costs one pass per plan chunk instead of a read, a lock and a commit per batch. Off:
#: every batch is sent (the tests compare both).
SKIP_SETTLED_BATCHES = True
#: Past this many undecided users in a whole plan, the emails shared ignoring case are looked for among
#: every user (one full pass) rather than among those named (a query parameter of that many ids).
_UNDECIDED_MAX = 100_000


@dataclass(frozen=True, slots=True)
class StartRequest:
    source: str = "supabase"
    target: str = "better-auth"
    dry_run: bool = False
    #: None: DEFAULT_BATCH_SIZE, or SUPABASE_BATCH_SECONDS of calls at the cap for the supabase target.
    batch_size: int | None = None
    transforms: Sequence[str] | None = None
    #: The supabase target's client-side cap on GoTrue admin calls (requests/s), for the whole
    #: migration; None: targets.supabase.DEFAULT_MAX_REQUESTS_PER_S. Kept in the migration's options.
    max_requests_per_s: int | None = None

    def validate(self) -> None:
        if self.source not in SOURCES:
            raise InvalidRequest(f"unknown source {self.source!r}; known: {', '.join(sorted(SOURCES))}")
        if self.target not in TARGET_NAMES:
            raise InvalidRequest(f"unknown target {self.target!r}; known: {', '.join(sorted(TARGET_NAMES))}")
        if self.max_requests_per_s is not None:
            if self.target != SupabaseTarget.name:
                raise InvalidRequest("max_requests_per_s applies to the supabase target only")
            rate = self.max_requests_per_s
            if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= MAX_REQUESTS_PER_S:
                raise InvalidRequest(f"max_requests_per_s must be an integer between 1 and {MAX_REQUESTS_PER_S}")
        if self.batch_size is not None:
            if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
                raise InvalidRequest("batch_size must be an integer")
            if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
                raise InvalidRequest(f"batch_size must be between 1 and {MAX_BATCH_SIZE}, got {self.batch_size}")
        resolve_pipeline(self.transforms)

    def effective_batch_size(self) -> int:
        """The batch size asked for, else the target's default (see DEFAULT_BATCH_SIZE)."""
        if self.batch_size is not None:
            return self.batch_size
        if self.target == SupabaseTarget.name:
            from auth_migration.engine.supabase_batch import rate_of

            rate = rate_of({"max_requests_per_s": self.max_requests_per_s})
            return max(10, min(MAX_BATCH_SIZE, int(rate * SUPABASE_BATCH_SECONDS)))
        return DEFAULT_BATCH_SIZE


@dataclass
class PlanResult:
    migration_id: str
    status: str
    batches_planned: int = 0
    batches_enqueued: int = 0
    email_conflicts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def start_migration(request: StartRequest, ctx: EngineContext) -> PlanResult:
    """Create a migration, plan all its batches, and enqueue them (nothing is written before checks pass)."""
    request.validate()
    batch_size = request.effective_batch_size()
    conns = ctx.connections
    require_schema(conns.state)
    source = get_source(request.source)
    source.check(conns.source)
    if request.target == SupabaseTarget.name:
        _check_gotrue(ctx, request)
    else:
        get_target(request.target).check(conns.target)
    if ctx.queue is None:
        raise ConfigError("no batch queue configured (MIGRATION_QUEUE_URL)")

    # One instant for the whole migration: every batch, redelivery and resume judges bans against it,
    # so a user's outcome never depends on the day its batch happened to run.
    as_of = ctx.clock()
    migration_id = new_migration_id(as_of)
    options: dict[str, Any] = {}
    if request.transforms is not None:
        options["transforms"] = list(request.transforms)
    if request.max_requests_per_s is not None:
        options["max_requests_per_s"] = request.max_requests_per_s
    with conns.state.transaction():
        conns.state.execute(
            """INSERT INTO migration_states (id, status, source, target, dry_run, batch_size, options, as_of)
               VALUES (%s, 'planning', %s, %s, %s, %s, %s::jsonb, %s)""",
            (
                migration_id,
                request.source,
                request.target,
                request.dry_run,
                batch_size,
                Jsonb(options),
                as_of,
            ),
        )
    conflicts, planned = _plan_with_conflicts(ctx, source, migration_id, None, batch_size, as_of)
    _set_running(conns.state, migration_id)
    enqueued = _enqueue(ctx, migration_id)
    status = load_migration(conns.state, migration_id).status
    return PlanResult(migration_id, status, planned, enqueued, conflicts)


def _check_gotrue(ctx: EngineContext, request: StartRequest) -> None:
    """The supabase target: a client is configured and GoTrue takes its service key (one admin GET)."""
    from auth_migration.engine.supabase_batch import rate_of
    from auth_migration.targets.rate_limit import RateLimiter

    if ctx.gotrue is None:
        raise ConfigError("the supabase target needs SUPABASE_URL and SUPABASE_SERVICE_KEY (GoTrue's admin API)")
    rate = rate_of({"max_requests_per_s": request.max_requests_per_s})
    try:
        ctx.gotrue.check(RateLimiter(rate))  # one call: no need to share the cap
    except Exception as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"GoTrue's admin API at {ctx.gotrue.base_url} is not usable: {exc}") from exc


def resume_migration(migration_id: str, ctx: EngineContext) -> PlanResult:
    """Plan batches for users added past the last planned id, then re-send every batch not done."""
    conns = ctx.connections
    require_schema(conns.state)
    migration = load_migration(conns.state, migration_id)
    if migration.status in ("rolling_back", "rolled_back"):
        raise StateConflict(f"migration {migration_id} was rolled back; start a new one")
    if ctx.queue is None:
        raise ConfigError("no batch queue configured (MIGRATION_QUEUE_URL)")
    source = get_source(migration.source)
    source.check(conns.source)
    conflicts, planned = _plan_with_conflicts(
        ctx, source, migration_id, migration.planned_through_id, migration.batch_size, migration.as_of
    )
    with conns.state.transaction():
        requeued = conns.state.execute(
            """UPDATE migration_batches SET status = 'planned'
               WHERE migration_id = %s AND status IN ('queued', 'failed') RETURNING status""",
            (migration_id,),
        ).rowcount
        conns.state.execute(
            """UPDATE migration_states SET status = 'running', completed_at = NULL, updated_at = now(),
                      batches_failed = (SELECT count(*) FROM migration_batches
                                        WHERE migration_id = %s AND status = 'failed')
               WHERE id = %s""",
            (migration_id, migration_id),
        )
        conns.state.execute(f"UPDATE migration_states SET {finish_status_sql()} WHERE id = %s", (migration_id,))
    enqueued = _enqueue(ctx, migration_id)
    status = load_migration(conns.state, migration_id).status
    return PlanResult(migration_id, status, planned, enqueued, conflicts, {"requeued": requeued})


def _plan_with_conflicts(
    ctx: EngineContext, source: UserSource, migration_id: str, after_id: str | None, batch_size: int, as_of: datetime
) -> tuple[int, int]:
    """Plan the batches and find the emails shared ignoring case; returns (conflicts recorded, batches
    planned). The conflicts are stored before any batch is enqueued, so every batch sees them.

    A first run: each is a full pass over the source, and a connection of its own finds the emails while
    the batches are planned (measured: a third of a re-run's start at 100k users was these two, one after
    the other). Where tracking rows exist and planning reads them (a re-run): planning first, which names
    the few users any batch will still read, then only their emails are looked for (a batch never asks
    about anyone else): at 1M users the full pass took 1.9-3.4 s of a 7 s re-run."""
    conns = ctx.connections
    if _settles_at_planning(ctx):
        planned, undecided = _plan_batches(ctx, source, migration_id, after_id, batch_size, as_of)
        rows = list(source.email_collisions(conns.source, among=undecided))
        return _record_email_conflicts(conns.state, migration_id, rows), planned

    def collisions() -> list[tuple[str, list[str]]]:
        with conns.open_extra("source") as conn:
            return list(source.email_collisions(conn))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="email-collisions") as pool:
        found = pool.submit(collisions)
        planned, _ = _plan_batches(ctx, source, migration_id, after_id, batch_size, as_of)
        rows = found.result()
    return _record_email_conflicts(conns.state, migration_id, rows), planned


def _settles_at_planning(ctx: EngineContext) -> bool:
    """Planning reads the tracking rows (state in the source's database) and there are some to read."""
    if not (SKIP_SETTLED_BATCHES and ctx.connections.shared_source):
        return False
    row = ctx.connections.source.execute("SELECT EXISTS (SELECT 1 FROM migrated_users)").fetchone()
    return row == (True,)


def _record_email_conflicts(state: psycopg.Connection, migration_id: str, rows: Sequence[tuple[str, list[str]]]) -> int:
    with state.transaction():
        if rows:
            state.cursor().executemany(
                """INSERT INTO migration_email_conflicts (migration_id, email_lower, user_ids) VALUES (%s, %s, %s)
                   ON CONFLICT (migration_id, email_lower) DO UPDATE SET user_ids = EXCLUDED.user_ids""",
                [(migration_id, email, ids) for email, ids in rows],
            )
    return len(rows)


def _plan_batches(
    ctx: EngineContext, source: UserSource, migration_id: str, after_id: str | None, batch_size: int, as_of: datetime
) -> tuple[int, list[str] | None]:
    """Append batches covering (after_id, last id]; memory holds one chunk of boundaries at a time.

    Returns the batches planned and the ids of every user a batch will read (each range's undecided users),
    or None when some batch reads its whole range (or planning read no tracking rows)."""
    state = ctx.connections.state
    row = state.execute(
        "SELECT coalesce(max(batch_no), 0) FROM migration_batches WHERE migration_id = %s", (migration_id,)
    ).fetchone()
    next_no = int(row[0]) + 1 if row else 1
    planned = 0
    previous = after_id
    bounds = source.batch_boundaries(ctx.connections.source, after_id, batch_size)
    # The batch path's policy: plainly_valid_sql depends on the stage (and the default test pattern) only.
    skip = SKIP_SETTLED_BATCHES and ctx.connections.shared_source
    policy = ValidationPolicy(stage=ctx.stage, now=as_of)
    undecided: list[str] | None = [] if skip else None
    for chunk in _chunks(bounds, 5000):
        ranges: list[tuple[str | None, str]] = []
        for upto in chunk:
            ranges.append((previous, upto))
            previous = upto
        found = (
            source.settled_ranges(ctx.connections.source, ranges, policy, batch_size=batch_size)
            if skip
            else [None] * len(ranges)
        )
        numbers = range(next_no, next_no + len(ranges))
        next_no += len(ranges)
        for seen in found:
            if undecided is not None and seen is not None and len(undecided) < _UNDECIDED_MAX:
                undecided.extend(seen.undecided)
            else:
                undecided = None
        with state.transaction():
            with (
                state.cursor() as cur,
                cur.copy(
                    "COPY migration_batches (migration_id, batch_no, after_id, upto_id, decide_only, counted)"
                    " FROM STDIN"
                ) as copy,
            ):
                for no, (after, upto), seen in zip(numbers, ranges, found, strict=True):
                    # A range with a few undecided users: its batch reads them by id and counts the others.
                    if seen is not None and seen.undecided:
                        copy.write_row((migration_id, no, after, upto, list(seen.undecided), seen.counted))
                    else:
                        copy.write_row((migration_id, no, after, upto, None, None))
            _record_settled(
                state,
                migration_id,
                [(no, seen.counted) for no, seen in zip(numbers, found, strict=True) if seen and not seen.undecided],
            )
            state.execute(
                """UPDATE migration_states SET planned_through_id = %s, batches_total = batches_total + %s,
                          updated_at = now() WHERE id = %s""",
                (previous, len(ranges), migration_id),
            )
        planned += len(ranges)
    return planned, undecided


def _record_settled(state: psycopg.Connection, migration_id: str, settled: Sequence[tuple[int, int]]) -> None:
    """Record batches (batch_no, users) that hold only users a batch would count as already migrated,
    exactly as batch._finish records such a batch (row done, attempts, user_count, outcomes, counters,
    last_processed_id), in the planning transaction. The status settles in _set_running / resume."""
    if not settled:
        return
    state.execute(
        """WITH settled AS (
             UPDATE migration_batches b SET status = 'done', attempts = b.attempts + 1, user_count = t.n,
                    outcomes = t.o::jsonb, pending_create = NULL, completed_at = now()
             FROM unnest(%s::int[], %s::int[], %s::text[]) AS t(no, n, o)
             WHERE b.migration_id = %s AND b.batch_no = t.no
             RETURNING b.upto_id, t.n
           ),
           total AS (SELECT count(*) AS batches, coalesce(sum(n), 0) AS users, max(upto_id) AS upto FROM settled)
           UPDATE migration_states SET processed_count = processed_count + total.users,
                  batches_done = batches_done + total.batches,
                  last_processed_id = CASE WHEN last_processed_id IS NULL OR last_processed_id < total.upto
                                           THEN total.upto ELSE last_processed_id END,
                  updated_at = now()
           FROM total WHERE id = %s""",
        (
            [no for no, _ in settled],
            [n for _, n in settled],
            # What batch._finish stores: the outcome counts of a batch whose users were all counted.
            [json.dumps({"already_migrated": n} if n else {}) for _, n in settled],
            migration_id,
            migration_id,
        ),
    )


def _chunks(items: Iterator[str], size: int) -> Iterator[list[str]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _set_running(state: psycopg.Connection, migration_id: str) -> None:
    with state.transaction():
        state.execute(
            "UPDATE migration_states SET status = 'running', updated_at = now() WHERE id = %s", (migration_id,)
        )
        # An empty source completes at once.
        state.execute(f"UPDATE migration_states SET {finish_status_sql()} WHERE id = %s", (migration_id,))


def _enqueue(ctx: EngineContext, migration_id: str) -> int:
    """Send every 'planned' batch, marking each 'queued' only after SQS accepted it (so a crash re-sends)."""
    assert ctx.queue is not None
    state = ctx.connections.state
    sent = 0
    last_no = 0
    while True:
        rows = state.execute(
            """SELECT batch_no, after_id, upto_id FROM migration_batches
               WHERE migration_id = %s AND status = 'planned' AND batch_no > %s ORDER BY batch_no LIMIT %s""",
            (migration_id, last_no, _ENQUEUE_CHUNK),
        ).fetchall()
        if not rows:
            return sent
        messages = [BatchMessage(migration_id, no, after, upto) for no, after, upto in rows]
        ctx.queue.send(messages)
        with state.transaction():
            state.execute(
                """UPDATE migration_batches SET status = 'queued'
                   WHERE migration_id = %s AND batch_no = ANY(%s) AND status = 'planned'""",
                (migration_id, [m.batch_no for m in messages]),
            )
        sent += len(messages)
        last_no = messages[-1].batch_no
