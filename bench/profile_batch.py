"""Where `process_batch` spends its time: SQL round trips per batch (timed per statement), transaction
begin/commit, and the Python side (cProfile), at each batch size, on a generated source.

    python -m bench.profile_batch --users 100000 --batch-sizes 100,1000

Pass 1 times every statement and transaction boundary of every batch (cheap wrappers around psycopg's
Cursor.execute and Transaction): the figures per batch. Pass 2 runs cProfile over the first
`--cprofile-batches` batches of a fresh target (cProfile slows Python-heavy code, so its absolute
times are inflated; read its shares).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from auth_migration.connections import Connections
from auth_migration.engine import EngineContext, process_batch, start_migration
from auth_migration.engine.plan import StartRequest
from auth_migration.queue import ListQueue
from bench.workload import DEFAULT_SERVER_URL, bench_database, prepare, reset_target

RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: Statement labels, first match wins: what each round trip of a batch is for.
_LABELS: tuple[tuple[str, str], ...] = (
    ("FOR UPDATE OF b", "lock batch row + read migration"),
    ("information_schema.columns", "target.check (information_schema)"),
    ("claim AS (", "write: claim + user + account + status (one statement)"),
    ("WITH recorded AS", "finish: errors + batch done + counters + status"),
    ("FROM auth.users u", "source read (fetch_pending)"),
    ("FROM public.profiles", "source fetch_range"),
    ("FROM migrated_users WHERE original_id = k.id", "already-migrated lookup (state apart from source)"),
    ("FROM migration_email_conflicts", "case-twin lookup"),
    ('FROM "user" u WHERE u.id = k.id', "target lookup (ids/emails)"),
    ("INSERT INTO migrated_users", "claim: INSERT migrated_users"),
    ('INSERT INTO "user"', 'INSERT "user"'),
    ("INSERT INTO account", "INSERT account"),
    ("UPDATE migrated_users", "UPDATE migrated_users (lost race)"),
    ("INSERT INTO user_migration_status", "INSERT user_migration_status"),
    ("INSERT INTO migration_errors", "INSERT migration_errors"),
    ("UPDATE migration_batches SET status = 'done'", "UPDATE migration_batches (done)"),
    ("processed_count = processed_count", "UPDATE migration_states counters (shared row)"),
    ("UPDATE migration_states SET", "UPDATE migration_states status (shared row)"),
)

#: Functions whose cumulative time the cProfile pass reports (qualified by file suffix and name).
_FUNCTIONS: tuple[tuple[str, str, str], ...] = (
    ("engine/batch.py", "_run", "process_batch body (_run)"),
    ("sources/supabase.py", "fetch_pending", "source fetch_pending (SQL + rows -> SourceUser)"),
    ("sources/supabase.py", "_to_source_user", "  rows -> SourceUser"),
    ("engine/batch.py", "_decide", "_decide (classify, transform, 3 lookups)"),
    ("validation.py", "classify", "  classify"),
    ("transforms.py", "transform", "  transform (build_target + pipeline)"),
    ("transforms.py", "build_target", "    build_target"),
    ("transforms.py", "account_id_for", "      account_id_for (uuid5 via hashlib)"),
    ("transforms.py", "clean_name", "    clean_name"),
    ("transforms.py", "validate_avatar_url", "    validate_avatar_url"),
    ("transforms.py", "mark_source_metadata", "    mark_source_metadata (json.dumps of metadata)"),
    ("targets/better_auth.py", "check", "target.check"),
    ("targets/better_auth.py", "lookup", "target.lookup"),
    ("engine/batch.py", "_write_shared", "_write_shared (one statement: claim + user + account + status)"),
    ("targets/better_auth.py", "write_tracked", "  target.write_tracked (parameters + statement)"),
    ("encoder.py", "encode", "    json.dumps (metadata, all callers)"),
    ("psycopg/types/array.py", "_dump_list", "    binary array parameters (all statements)"),
    ("engine/batch.py", "_finish", "_finish (one statement: errors, batch done, counters, status)"),
)


def _label(query: object) -> str:
    text = query.decode() if isinstance(query, bytes) else str(query)
    for needle, label in _LABELS:
        if needle in text:
            return label
    return re.sub(r"\s+", " ", text).strip()[:60]


@contextmanager
def timed_statements() -> Iterator[dict[str, list[float]]]:
    """Wrap psycopg's Cursor.execute and Transaction enter/exit; yields {label: [seconds, ...]}.

    Connection.execute goes through Cursor.execute, so every statement is seen once. The time
    includes client-side adaptation of parameters and loading of results, as the caller pays it.
    """
    timings: dict[str, list[float]] = defaultdict(list)
    cursor_execute = psycopg.Cursor.execute
    tx_enter, tx_exit = psycopg.Transaction.__enter__, psycopg.Transaction.__exit__

    def execute(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return cursor_execute(self, query, *args, **kwargs)
        finally:
            timings[_label(query)].append(time.perf_counter() - started)

    def enter(self: psycopg.Transaction) -> psycopg.Transaction:
        started = time.perf_counter()
        try:
            return tx_enter(self)
        finally:
            timings["SAVEPOINT" if self.savepoint_name else "BEGIN"].append(time.perf_counter() - started)

    def exit_(self: psycopg.Transaction, *exc: Any) -> bool:
        started = time.perf_counter()
        try:
            return tx_exit(self, *exc)
        finally:
            timings["RELEASE/ROLLBACK TO" if self.savepoint_name else "COMMIT"].append(time.perf_counter() - started)

    patched = (
        (psycopg.Cursor, "execute", execute),
        (psycopg.Transaction, "__enter__", enter),
        (psycopg.Transaction, "__exit__", exit_),
    )
    for cls, name, fn in patched:
        setattr(cls, name, fn)
    try:
        yield timings
    finally:
        psycopg.Cursor.execute = cursor_execute  # type: ignore[method-assign]
        psycopg.Transaction.__enter__ = tx_enter  # type: ignore[method-assign]
        psycopg.Transaction.__exit__ = tx_exit  # type: ignore[method-assign]


def _plan(url: str, batch_size: int) -> tuple[EngineContext, ListQueue, float]:
    queue = ListQueue()
    ctx = EngineContext(connections=Connections(url, url, url), queue=queue, retry_base_s=0.01)
    started = time.perf_counter()
    start_migration(StartRequest(batch_size=batch_size), ctx)
    return ctx, queue, time.perf_counter() - started


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _drain_timed(url: str, batch_size: int) -> dict[str, Any]:
    """Plan a migration and run every batch with each statement timed; the per-batch breakdown."""
    ctx, queue, plan_seconds = _plan(url, batch_size)
    try:
        with timed_statements() as timings:
            started = time.perf_counter()
            for msg in queue.messages:
                process_batch(msg, ctx)
            seconds = time.perf_counter() - started
    finally:
        ctx.connections.close()
    batches = len(queue.messages)
    sql_total = sum(sum(v) for v in timings.values())
    statements = {
        label: {
            "calls_per_batch": round(len(v) / batches, 2),
            "ms_per_batch": round(1000 * sum(v) / batches, 3),
            "share": round(sum(v) / seconds, 4),
            # Per call, over the first and the last tenth of the run: a cost that grows with the
            # target's size (a scan where a probe was meant) shows here, not in the average.
            "ms_first_tenth": round(1000 * _mean(v[: max(1, len(v) // 10)]), 3),
            "ms_last_tenth": round(1000 * _mean(v[-max(1, len(v) // 10) :]), 3),
        }
        for label, v in sorted(timings.items(), key=lambda kv: -sum(kv[1]))
    }
    return {
        "batch_size": batch_size,
        "batches": batches,
        "plan_seconds": round(plan_seconds, 3),
        "batch_seconds": round(seconds, 3),
        "ms_per_batch": round(1000 * seconds / batches, 3),
        "round_trips_per_batch": round(sum(len(v) for v in timings.values()) / batches, 2),
        "sql_and_tx_share": round(sql_total / seconds, 4),
        "python_outside_sql_share": round(1 - sql_total / seconds, 4),
        "statements": statements,
    }


def profile_statements(url: str, batch_size: int) -> dict[str, Any]:
    """Pass 1: every batch of a first run on an empty target, then of a re-run over it, statements timed."""
    reset_target(url)
    first = _drain_timed(url, batch_size)
    first["rerun"] = _drain_timed(url, batch_size)
    return first


def profile_python(url: str, batch_size: int, max_batches: int, stats_file: Path | None) -> dict[str, Any]:
    """Pass 2: cProfile over the first `max_batches` batches of a fresh target."""
    reset_target(url)
    ctx, queue, _ = _plan(url, batch_size)
    messages = queue.messages[:max_batches]
    profiler = cProfile.Profile()
    try:
        profiler.enable()
        for msg in messages:
            process_batch(msg, ctx)
        profiler.disable()
    finally:
        ctx.connections.close()
    stats = pstats.Stats(profiler)
    if stats_file is not None:
        stats.dump_stats(stats_file)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = max((ct for (_f, _l, name), (_cc, _nc, _tt, ct, _c) in raw.items() if name == "process_batch"), default=0.0)
    functions: dict[str, dict[str, float]] = {}
    for suffix, func, label in _FUNCTIONS:
        cum = sum(ct for (f, _l, name), (_cc, _nc, _tt, ct, _c) in raw.items() if name == func and f.endswith(suffix))
        functions[label] = {"ms_per_batch": round(1000 * cum / len(messages), 3), "share": round(cum / total, 4)}
    # Time blocked on the server: psycopg_binary's wait_c is invisible to cProfile, so its time shows
    # up as the own time of Connection.wait, which calls it (checked on psycopg 3.3).
    wait = sum(
        tt
        for (f, _l, name), (_cc, _nc, tt, _ct, _c) in raw.items()
        if name == "wait" and f.endswith(os.path.join("psycopg", "connection.py"))
    )
    top = io.StringIO()
    pstats.Stats(profiler, stream=top).sort_stats("tottime").print_stats(15)
    return {
        "batch_size": batch_size,
        "batches_profiled": len(messages),
        "profiled_seconds": round(total, 3),
        "blocked_on_server_share": round(wait / total, 4) if total else 0.0,
        "functions": functions,
        "top_tottime": top.getvalue(),
    }


def format_report(result: dict[str, Any]) -> str:
    lines = [f"process_batch profile, {result['users']:,} users (inline, all URLs on one database)"]
    for size, entry in result["batch_sizes"].items():
        st, py = entry["statements"], entry["python"]
        lines += [
            "",
            f"== batch size {size}: {st['batches']} batches, {st['ms_per_batch']:.1f} ms/batch, "
            f"{st['round_trips_per_batch']:.1f} round trips/batch; SQL+transactions "
            f"{st['sql_and_tx_share']:.0%} of batch time, Python outside SQL {st['python_outside_sql_share']:.0%}",
            f"{'statement':<48} {'calls/batch':>11} {'ms/batch':>9} {'share':>6} {'ms/call 1st/last 10%':>21}",
        ]
        for label, row in st["statements"].items():
            lines.append(
                f"{label:<48} {row['calls_per_batch']:>11.2f} {row['ms_per_batch']:>9.2f} {row['share']:>6.1%} "
                f"{row['ms_first_tenth']:>10.2f} {row['ms_last_tenth']:>10.2f}"
            )
        rerun = st["rerun"]
        lines.append(
            f"re-run over the migrated target: {rerun['ms_per_batch']:.1f} ms/batch "
            f"({rerun['batch_seconds'] / st['batch_seconds']:.0%} of the first run), top statements:"
        )
        for label, row in list(rerun["statements"].items())[:5]:
            lines.append(
                f"  {label:<46} {row['calls_per_batch']:>11.2f} {row['ms_per_batch']:>9.2f} {row['share']:>6.1%}"
            )
        lines += [
            "",
            f"cProfile, first {py['batches_profiled']} batches (shares of process_batch; blocked on server "
            f"{py['blocked_on_server_share']:.0%}):",
        ]
        for label, row in py["functions"].items():
            lines.append(f"{label:<58} {row['ms_per_batch']:>9.2f} ms {row['share']:>6.1%}")
    return "\n".join(lines)


def run_profile(
    users: int, *, batch_sizes: Sequence[int], cprofile_batches: int, database_url: str, stats_dir: Path | None
) -> dict[str, Any]:
    result: dict[str, Any] = {"users": users, "batch_sizes": {}}
    with bench_database(database_url, prefix="benchprof") as url:
        result["users"] = prepare(url, users)
        for size in batch_sizes:
            statements = profile_statements(url, size)
            stats_file = stats_dir / f"process_batch-{users}-b{size}.pstats" if stats_dir else None
            python = profile_python(url, size, max(1, cprofile_batches * 100 // size), stats_file)
            result["batch_sizes"][str(size)] = {"statements": statements, "python": python}
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="profile_batch", description="profile process_batch")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--batch-sizes", default="100,1000")
    parser.add_argument(
        "--cprofile-batches", type=int, default=300, help="batches of size 100 to cProfile (scaled for bigger ones)"
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER_URL))
    parser.add_argument("--out", type=Path, help="JSON output (default bench/results/profile-<users>.json)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    out: Path = args.out or RESULTS_DIR / f"profile-{args.users}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = run_profile(
        args.users,
        batch_sizes=[int(s) for s in args.batch_sizes.split(",") if s.strip()],
        cprofile_batches=args.cprofile_batches,
        database_url=args.database_url,
        stats_dir=out.parent,
    )
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result) if args.json else format_report(result))
    print(f"JSON written to {out}; pstats files next to it", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
