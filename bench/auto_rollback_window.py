"""AutoRollback's window query at scale: `primary_health` over a 5-minute window of a 10M-row auth_events.

One throw-away database (`bench_<random>`, dropped at the end even after a failure) gets the state
schema as shipped (`auth_migration.store.upgrade`, i.e. `auth-migrate db upgrade`), then `--rows` events
spread evenly over the retention (30 days) ending at a fixed reference time, plus `--expired-rows` older
than the retention (the backlog the purge deletes), all made by server-side `INSERT ... SELECT
generate_series`, inserted in time order as the functions append them, then VACUUM (ANALYZE) so
autovacuum does not run during the timing.

Measured, on one connection opened as the functions open theirs (`store.connect`, no prepared plans):

- ``primary_health(conn, system, now=REFERENCE, window=5 min)`` for better_auth and supabase, `--repeat`
  times each, alternating; min / median / p95 per system and for the pair (one AutoRollback run asks
  both). The first call of each is reported apart (its pages may not be in the cache yet).
- EXPLAIN (ANALYZE, BUFFERS) of the exact statement primary_health sends (captured, not copied).
- With ``--without-index NAME``: the same again with that index dropped inside a transaction that is
  rolled back (DDL is transactional), i.e. an index's before/after in one run, on the same data.
- One whole ``run_auto_rollback`` (moto SSM holding phase-2 canary flags, clock pinned to REFERENCE):
  its wall time including the bounded purge of old events, and an EXPLAIN of that purge (rolled back).

The bound (issue 9): every system's p95 <= 50 ms at 10M rows. Exit 1 when it fails.

    python -m bench.auto_rollback_window [--rows 10000000] [--repeat 50] [--without-index NAME]
                                         [--json] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, cast

import psycopg
from psycopg import sql

from auth_migration.clock import fixed_clock
from auth_migration.rollout.auto import PURGE_BATCH, run_auto_rollback
from auth_migration.rollout.checks import HEALTH_WINDOW, primary_health
from auth_migration.rollout.store import SsmFlagStore
from auth_migration.store import connect, upgrade
from bench.workload import DEFAULT_SERVER_URL, bench_database, server_facts

Say = Callable[[str], None]

#: The instant the data is generated around and every query is asked at: no wall-clock comparison
#: anywhere, so a run today and a run next year measure the same window over the same rows.
REFERENCE: Final = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RETENTION: Final = timedelta(days=30)
BOUND_MS: Final = 50.0
SYSTEMS: Final = ("better_auth", "supabase")
#: Rows per INSERT statement: progress to report, and no single 10M-row transaction.
CHUNK: Final = 1_000_000
PHASE_2_CANARY: Final = {
    "MIGRATION_MODE": "dual_write",
    "USE_BETTER_AUTH": "false",
    "MIGRATION_VALIDATION": "true",
    "CANARY_ENABLED": "true",
    "CANARY_PERCENTAGE": "25",
    "ROLLBACK_MIN_SAMPLE": "100",
    "ROLLBACK_WINDOW_MINUTES": "5",
}

# The mix, per event: 70 % logins; 25 % answered first by Better-Auth (the canary); 2 % user errors
# (wrong password, taken email: never held against a system), 1 % system failures (unavailable, and
# timeouts at the fallback limit), 0.5 % successes by the other system after the primary failed (a
# fallback: the primary's failure); latency 40-200 ms. Better-Auth's error rate in the window is then
# ~1.5 %, below ROLLBACK_MAX_ERROR_RATE: AutoRollback finds the canary healthy, as on a normal day.
# Volatile random() in the inner select keeps Postgres from flattening it, so each is drawn once a row.
_FILL = """
INSERT INTO auth_events (occurred_at, operation, system, mode, canary, success, error_kind, latency_ms,
                         primary_system)
SELECT g.ts, g.op,
       CASE WHEN g.o >= 0.030 AND g.o < 0.035 THEN p.other ELSE p.prim END,
       'dual_write', p.prim = 'better_auth', g.o >= 0.030,
       CASE WHEN g.o < 0.020 THEN CASE g.op WHEN 'login' THEN 'invalid_credentials' ELSE 'user_exists' END
            WHEN g.o < 0.025 THEN 'unavailable'
            WHEN g.o < 0.030 THEN 'timeout' END,
       CASE WHEN g.o >= 0.025 AND g.o < 0.030 THEN 3000 ELSE g.lat END,
       p.prim
FROM (SELECT %(start)s::timestamptz + %(span)s::interval * ((i + random()) / %(n)s) AS ts,
             CASE WHEN random() < 0.7 THEN 'login' ELSE 'signup' END AS op,
             random() AS o, random() AS r, (40 + random() * 160)::int AS lat
      FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS i) g,
     LATERAL (SELECT CASE WHEN g.r < 0.25 THEN 'better_auth' ELSE 'supabase' END AS prim,
                     CASE WHEN g.r < 0.25 THEN 'supabase' ELSE 'better_auth' END AS other) p
"""


# --------------------------------------------------------------------------------------------- data


def fill(url: str, rows: int, expired_rows: int, say: Say) -> dict[str, Any]:
    """The schema as shipped, then the events: expired ones first (the oldest), then the retention."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        applied = upgrade(conn)
        # The backlog: one day of events past the retention, which the purge deletes oldest first.
        spans = [(REFERENCE - RETENTION - timedelta(days=1), timedelta(days=1), expired_rows)]
        spans.append((REFERENCE - RETENTION, RETENTION, rows))
        for start, span, n in spans:
            for lo in range(0, n, CHUNK):
                hi = min(n, lo + CHUNK) - 1
                conn.execute(_FILL, {"start": start, "span": span, "n": n, "lo": lo, "hi": hi})
                say(f"  {hi + 1:,}/{n:,} events from {start:%Y-%m-%d}")
        conn.execute("VACUUM (ANALYZE) auth_events")
        conn.execute("CHECKPOINT")  # the fill's dirty pages written now, not during the timing
        row = conn.execute(
            """SELECT count(*), count(*) FILTER (WHERE occurred_at < %s),
                      pg_total_relation_size('auth_events'), pg_relation_size('auth_events')
               FROM auth_events""",
            (REFERENCE - RETENTION,),
        ).fetchone()
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'auth_events' ORDER BY indexname"
        ).fetchall()
        correlation = conn.execute(
            "SELECT correlation FROM pg_stats WHERE tablename = 'auth_events' AND attname = 'occurred_at'"
        ).fetchone()
    assert row is not None
    return {
        "schema_applied": applied,
        "events": int(row[0]),
        "expired_events": int(row[1]),
        "table_mb": round(int(row[3]) / 2**20, 1),
        "table_with_indexes_mb": round(int(row[2]) / 2**20, 1),
        "indexes": {str(name): str(definition) for name, definition in indexes},
        # 1.0: rows lie on disk in time order, as an append-only table's do (the window is a few pages).
        "occurred_at_correlation": round(float(correlation[0]), 3) if correlation and correlation[0] else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


# ------------------------------------------------------------------------------------------ timing


class _Recorder:
    """Passes every execute to the real connection and keeps the last statement and its parameters,
    so the EXPLAIN is of exactly what primary_health sends."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn
        self.query: str | None = None
        self.params: Any = None

    def execute(self, query: str, params: Any = None) -> Any:
        self.query, self.params = query, params
        return self._conn.execute(query, params)


def _stats(ms: Sequence[float]) -> dict[str, float]:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {
        "min": round(ordered[0], 2),
        "median": round(statistics.median(ordered), 2),
        "p95": round(p95, 2),
        "max": round(ordered[-1], 2),
    }


def measure_window(conn: psycopg.Connection, repeat: int) -> dict[str, Any]:
    """primary_health for both systems, alternating; the first call of each reported apart."""
    samples: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    pairs: list[float] = []
    first: dict[str, float] = {}
    figures: dict[str, Any] = {}
    for round_no in range(repeat + 1):
        pair = 0.0
        for system in SYSTEMS:
            started = time.perf_counter()
            health = primary_health(conn, system, now=REFERENCE, window=HEALTH_WINDOW)
            ms = (time.perf_counter() - started) * 1000
            pair += ms
            if round_no == 0:
                first[system] = round(ms, 2)
                figures[system] = health.figures()
            else:
                samples[system].append(ms)
        if round_no:
            pairs.append(pair)
    explains: dict[str, str] = {}
    for system in SYSTEMS:
        recorder = _Recorder(conn)
        primary_health(cast(psycopg.Connection, recorder), system, now=REFERENCE, window=HEALTH_WINDOW)
        assert recorder.query is not None
        plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {recorder.query}", recorder.params).fetchall()
        explains[system] = "\n".join(str(r[0]) for r in plan)
    return {
        "first_call_ms": first,
        "per_system_ms": {s: _stats(v) for s, v in samples.items()},
        "pair_ms": _stats(pairs),
        "window_figures": figures,
        "explain": explains,
        "within_bound": all(_stats(v)["p95"] <= BOUND_MS for v in samples.values()),
    }


@contextmanager
def _without(conn: psycopg.Connection, index: str) -> Iterator[None]:
    """The table as it was before the index: dropped in a transaction that is rolled back afterwards
    (DDL is transactional in Postgres), so no rebuild and the same data and buffers for both variants."""
    conn.autocommit = False
    try:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
        yield
    finally:
        conn.rollback()
        conn.autocommit = True


def measure_auto_rollback(conn: psycopg.Connection) -> dict[str, Any]:
    """One whole checker run against moto SSM (phase-2 canary flags), its purge included."""
    from auth_migration_ops.local.aws import LocalAws, put_parameters

    cutoff = REFERENCE - RETENTION
    # The purge statement alone, its plan and time; rolled back so the run below still has the work.
    conn.autocommit = False
    try:
        plan = conn.execute(
            """EXPLAIN (ANALYZE, BUFFERS) DELETE FROM auth_events WHERE id IN (
                   SELECT id FROM auth_events WHERE occurred_at < %s ORDER BY occurred_at LIMIT %s)""",
            (cutoff, PURGE_BATCH),
        ).fetchall()
    finally:
        conn.rollback()
        conn.autocommit = True

    def expired() -> int:
        row = conn.execute("SELECT count(*) FROM auth_events WHERE occurred_at < %s", (cutoff,)).fetchone()
        return int(row[0]) if row else 0

    with LocalAws() as aws:
        prefix = "/auth-migration/bench-window/"
        put_parameters(aws.client("ssm"), prefix, PHASE_2_CANARY)
        store = SsmFlagStore(prefix, aws.client("ssm"))
        store.read()  # the client's first call (endpoint set-up) is not the checker's work
        before = expired()
        started = time.perf_counter()
        decision = run_auto_rollback(conn, store, retention=RETENTION, clock=fixed_clock(REFERENCE))
        seconds = time.perf_counter() - started
        after = expired()
        stored = store.read()
    return {
        "seconds": round(seconds, 3),
        "action": decision.action,
        "reason": decision.reason,
        "figures": decision.figures,
        "purged": before - after,
        "expired_before": before,
        "flags_after": {k: stored.get(k) for k in ("MIGRATION_MODE", "USE_BETTER_AUTH", "CANARY_ENABLED")},
        "purge_explain": "\n".join(str(r[0]) for r in plan),
    }


# --------------------------------------------------------------------------------------------- run


def run_window_bench(
    rows: int = 10_000_000,
    *,
    expired_rows: int = 50_000,
    repeat: int = 50,
    without_indexes: Sequence[str] = (),
    database_url: str = DEFAULT_SERVER_URL,
    say: Say = lambda _text: None,
) -> dict[str, Any]:
    if rows < 1 or repeat < 1 or expired_rows < 0:
        raise ValueError("rows and repeat must be at least 1, expired_rows not negative")
    run_started = time.perf_counter()
    with bench_database(database_url) as url:
        say(f"filling auth_events: {rows:,} events over {RETENTION.days} days + {expired_rows:,} expired ...")
        data = fill(url, rows, expired_rows, say)
        facts = server_facts(url)
        with connect(url, autocommit=True, application_name="bench-auto-rollback-window") as conn:
            say(f"timing primary_health, {repeat} x 2 systems, schema as shipped ...")
            variants = {"as_shipped": measure_window(conn, repeat)}
            for index in without_indexes:
                if index not in data["indexes"]:
                    raise ValueError(f"auth_events has no index {index!r}; it has {', '.join(data['indexes'])}")
                say(f"timing primary_health without {index} (dropped in a rolled-back transaction) ...")
                with _without(conn, index):
                    variants[f"without_{index}"] = measure_window(conn, repeat)
            say("one whole run_auto_rollback (moto SSM, phase-2 canary flags) ...")
            auto = measure_auto_rollback(conn)
    shipped = variants["as_shipped"]
    return {
        "rows": rows,
        "expired_rows": expired_rows,
        "repeat": repeat,
        "reference_time": REFERENCE.isoformat(),
        "window_s": int(HEALTH_WINDOW.total_seconds()),
        "bound_ms": BOUND_MS,
        "data": data,
        "variants": variants,
        "auto_rollback": auto,
        "ok": bool(shipped["within_bound"]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), **facts},
        "wall_seconds": round(time.perf_counter() - run_started, 1),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# -------------------------------------------------------------------------------------------- output


def format_table(result: dict[str, Any]) -> str:
    data = result["data"]
    lines = [
        f"AutoRollback window query: {data['events']:,} auth_events ({data['expired_events']:,} past the "
        f"{RETENTION.days}-day retention), {data['table_with_indexes_mb']:,} MB with indexes, filled in "
        f"{data['seconds']} s; occurred_at correlation {data['occurred_at_correlation']}",
        f"window {result['window_s']} s ending {result['reference_time']}; {result['repeat']} calls per system; "
        f"Postgres {result['machine'].get('server_version', '?')}, {result['machine']['cpus']} CPUs",
        "",
        f"{'variant':<36} {'system':<12} {'first':>8} {'min':>8} {'median':>8} {'p95':>8} {'max':>8}  rows in window",
        "-" * 110,
    ]
    for name, variant in result["variants"].items():
        for system in SYSTEMS:
            s = variant["per_system_ms"][system]
            rows = variant["window_figures"][system]["requests"]
            lines.append(
                f"{name:<36} {system:<12} {variant['first_call_ms'][system]:>8.2f} {s['min']:>8.2f} "
                f"{s['median']:>8.2f} {s['p95']:>8.2f} {s['max']:>8.2f}  {rows:,}"
            )
        p = variant["pair_ms"]
        lines.append(f"{name:<36} {'both (pair)':<12} {'':>8} {p['min']:>8.2f} {p['median']:>8.2f} {p['p95']:>8.2f}")
    lines.append("")
    for name, variant in result["variants"].items():
        lines += [f"EXPLAIN (ANALYZE, BUFFERS), {name}, better_auth:", variant["explain"]["better_auth"], ""]
    auto = result["auto_rollback"]
    lines += [
        f"run_auto_rollback: {auto['seconds'] * 1000:.1f} ms, action {auto['action']} ({auto['reason']}); "
        f"purged {auto['purged']:,} of {auto['expired_before']:,} expired events",
        "",
        f"bound: p95 <= {result['bound_ms']:.0f} ms per system at {result['rows']:,} rows (schema as shipped): "
        + ("PASS" if result["ok"] else "FAIL"),
    ]
    return "\n".join(lines)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.auto_rollback_window", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="events within the retention (default 10M)")
    parser.add_argument(
        "--expired-rows", type=int, default=50_000, help="events older than the retention (default 50,000)"
    )
    parser.add_argument("--repeat", type=int, default=50, help="timed calls per system (default 50)")
    parser.add_argument(
        "--without-index",
        action="append",
        default=[],
        metavar="NAME",
        help="also measure with this auth_events index dropped (in a rolled-back transaction); repeatable",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER_URL),
        help="the Postgres server (the bench creates and drops its own database there)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of the table")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)

    def say(text: str) -> None:
        print(f"[window {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    result = run_window_bench(
        args.rows,
        expired_rows=args.expired_rows,
        repeat=args.repeat,
        without_indexes=args.without_index,
        database_url=args.database_url,
        say=say,
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
        say(f"JSON written to {args.out}")
    print(json.dumps(result, default=str) if args.json else format_table(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
