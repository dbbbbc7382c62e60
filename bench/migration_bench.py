"""The migration benchmark: one run, one throw-away database, every variant side by side.

Variants (bench/README.md says what each means): raw `INSERT ... SELECT` (the floor), the engine
inline at each batch size, a re-run over the migrated target, the per-user way on a sample
(extrapolated), 1/2/4 worker processes draining the same planned batches, and Better-Auth's own
"Migrating from Supabase" guide script (bench/guide_variant.py) with its correctness beside its time.

Measured path: `start_migration` + `process_batch` called directly (inline, or in worker processes
fed from a multiprocessing queue). No SQS: moto's SQS costs O(queue depth) per call and would
measure moto, not the engine.

    python -m bench.migration_bench --users 100000 [--json] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from auth_migration.connections import Connections
from auth_migration.engine import EngineContext, process_batch, start_migration
from auth_migration.engine.plan import DEFAULT_BATCH_SIZE, StartRequest
from auth_migration.models import TargetUser
from auth_migration.queue import ListQueue
from auth_migration.sources import get_source
from auth_migration.transforms import resolve_pipeline, transform
from auth_migration.validation import ValidationPolicy, classify
from bench.guide_variant import GUIDE_BATCH_SIZE, GuideConfig, bench_guide, record_ours
from bench.workers import Task, peak_rss_mb, run_worker
from bench.workload import DEFAULT_SERVER_URL, bench_database, prepare, reset_target, server_facts, target_counts

RESULTS_DIR = Path(__file__).resolve().parent / "results"

Say = Callable[[str], None]


# ------------------------------------------------------------------------------------------------ raw

# The rows the engine migrates, in SQL: live, non-anonymous, well-formed email (the engine's regex on
# the trimmed email), not banned (the default target has no ban columns), and no case-twin.
_RAW_LIVE = r"""
    u.deleted_at IS NULL AND NOT coalesce(u.is_anonymous, false)
    AND length(btrim(u.email)) <= 254
    AND btrim(u.email) ~ '^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$'
    AND (u.banned_until IS NULL OR u.banned_until <= now())
    AND lower(u.email) NOT IN (
        SELECT lower(email) FROM auth.users
        WHERE email IS NOT NULL AND email <> '' AND deleted_at IS NULL AND NOT coalesce(is_anonymous, false)
        GROUP BY lower(email) HAVING count(*) > 1)
"""

_RAW_USERS = f"""
INSERT INTO "user" (id, name, email, "emailVerified", image, "createdAt", "updatedAt")
SELECT u.id::text,
       coalesce(nullif(btrim(u.raw_user_meta_data ->> 'full_name'), ''),
                nullif(btrim(u.raw_user_meta_data ->> 'name'), ''),
                nullif(btrim(concat_ws(' ', u.raw_user_meta_data ->> 'first_name',
                                            u.raw_user_meta_data ->> 'last_name')), ''),
                nullif(btrim(u.raw_user_meta_data ->> 'user_name'), ''),
                split_part(lower(btrim(u.email)), '@', 1)),
       lower(btrim(u.email)), u.email_confirmed_at IS NOT NULL, u.raw_user_meta_data ->> 'avatar_url',
       coalesce(u.created_at, now()), greatest(coalesce(u.updated_at, u.created_at, now()), u.created_at)
FROM auth.users u
WHERE {_RAW_LIVE}
"""

# Account ids are derived (md5 as a uuid: the engine uses uuid5, which plain SQL lacks): same idea.
_RAW_ACCOUNTS = r"""
INSERT INTO account (id, "accountId", "providerId", "userId", password, "createdAt", "updatedAt")
SELECT md5('credential:' || b.id)::uuid::text, b.id, 'credential', b.id, u.encrypted_password,
       b."createdAt", b."updatedAt"
FROM "user" b JOIN auth.users u ON u.id = b.id::uuid
WHERE u.encrypted_password ~ '^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$'
UNION ALL
SELECT md5(i.provider || ':' || i.provider_id)::uuid::text, i.provider_id, i.provider, b.id, NULL,
       b."createdAt", b."updatedAt"
FROM "user" b JOIN auth.identities i ON i.user_id = b.id::uuid
WHERE i.provider <> 'email'
"""

_RAW_TRACKING = """
INSERT INTO migrated_users (original_id, new_auth_id, email, migration_id, source, created_target, metadata)
SELECT b.id, b.id, b.email, 'bench-raw', 'supabase', true,
       CASE WHEN jsonb_typeof(u.raw_user_meta_data) = 'object' THEN u.raw_user_meta_data ELSE '{}' END
       || jsonb_build_object('migrated_from', 'supabase', 'original_id', b.id, 'original_created_at', u.created_at)
FROM "user" b JOIN auth.users u ON u.id = b.id::uuid
"""


def bench_raw(url: str) -> float:
    """The floor: three set-based statements in one transaction (user, account, tracking row)."""
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        conn.execute(
            """INSERT INTO migration_states (id, status, source, target, batch_size)
               VALUES ('bench-raw', 'running', 'supabase', 'better-auth', 1)"""
        )
        for statement in (_RAW_USERS, _RAW_ACCOUNTS, _RAW_TRACKING):
            conn.execute(statement.encode())
        conn.commit()
        return time.perf_counter() - started


# -------------------------------------------------------------------------------------------- engine


def _context(url: str, queue: ListQueue | None = None) -> EngineContext:
    return EngineContext(connections=Connections(url, url, url), queue=queue, retry_base_s=0.01)


def bench_engine(url: str, batch_size: int, *, read_ahead: bool = True) -> dict[str, Any]:
    """start_migration + process_batch for every planned batch, inline in this process. `read_ahead` off: every
    batch reads and decides under its own lock (the engine before issue 13's read-ahead), for comparison."""
    queue = ListQueue()
    ctx = _context(url, queue)
    ctx.prefetch = read_ahead
    try:
        started = time.perf_counter()
        plan = start_migration(StartRequest(batch_size=batch_size), ctx)
        planned_at = time.perf_counter()
        outcomes: Counter[str] = Counter()
        messages = queue.messages
        for i, msg in enumerate(messages):
            # As MigrateBatch does with an invocation's records: the next batch is read while this one writes.
            result = process_batch(msg, ctx, next_msg=messages[i + 1] if i + 1 < len(messages) else None)
            if result.status != "done":
                raise RuntimeError(f"batch {msg.batch_no} came back {result.status!r}")
            outcomes.update(result.outcomes)
        seconds = time.perf_counter() - started
        row = ctx.connections.state.execute(
            "SELECT status FROM migration_states WHERE id = %s", (plan.migration_id,)
        ).fetchone()
    finally:
        ctx.connections.close()
    return {
        "seconds": seconds,
        "plan_seconds": planned_at - started,
        "batches": plan.batches_planned,
        "status": row[0] if row else None,
        "outcomes": dict(sorted(outcomes.items())),
    }


# ------------------------------------------------------------------------------------------ per-user


def _insert_one(conn: psycopg.Connection, draft: TargetUser) -> None:
    """The reference document's unit of work: one user, its accounts and its tracking row, one transaction."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO "user" (id, name, email, "emailVerified", image, "createdAt", "updatedAt")
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            (draft.id, draft.name, draft.email, draft.email_verified, draft.image, draft.created_at, draft.updated_at),
        )
        for account in draft.accounts:
            conn.execute(
                """INSERT INTO account (id, "accountId", "providerId", "userId", password, "createdAt", "updatedAt")
                   VALUES (%s, %s, %s, %s, %s, %s, %s)""",
                (
                    account.id,
                    account.account_id,
                    account.provider_id,
                    draft.id,
                    account.password,
                    draft.created_at,
                    draft.updated_at,
                ),
            )
        conn.execute(
            """INSERT INTO migrated_users (original_id, new_auth_id, email, migration_id, source, flags, metadata)
               VALUES (%s, %s, %s, 'bench-per-user', 'supabase', %s, %s::jsonb)""",
            (draft.id, draft.id, draft.email, draft.flags, json.dumps(draft.metadata, default=str)),
        )


def bench_per_user(url: str, sample: int) -> dict[str, Any]:
    """The first `sample` users the per-user way: an existence check, then one transaction each."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = (
            conn.execute(
                "SELECT id::text FROM auth.users ORDER BY id OFFSET %s LIMIT 1", (max(0, sample - 1),)
            ).fetchone()
            or conn.execute("SELECT max(id)::text FROM auth.users").fetchone()
        )
        assert row is not None
        conn.execute(
            """INSERT INTO migration_states (id, status, source, target, batch_size)
               VALUES ('bench-per-user', 'running', 'supabase', 'better-auth', 1)"""
        )
        started = time.perf_counter()
        # Same read, validation and transforms as the engine: only the writing pattern differs.
        users = get_source("supabase").fetch_range(conn, None, str(row[0]))
        # The per-user way judges as of the moment it runs, as the reference document's script does.
        now = datetime.now(UTC)
        policy, pipeline = ValidationPolicy(now=now), resolve_pipeline(None)
        migrated = rejected = skipped = 0
        for user in users:
            if classify(user, policy) is not None:
                skipped += 1
                continue
            draft = transform(user, pipeline, now=now)
            if conn.execute("SELECT 1 FROM migrated_users WHERE original_id = %s", (draft.id,)).fetchone():
                skipped += 1
                continue
            try:
                _insert_one(conn, draft)
                migrated += 1
            except psycopg.IntegrityError:
                rejected += 1  # a case-twin's email: the reference logs it and moves on
        seconds = time.perf_counter() - started
    return {"users": len(users), "seconds": seconds, "migrated": migrated, "rejected": rejected, "skipped": skipped}


# ------------------------------------------------------------------------------------------- workers


def bench_workers(url: str, workers: int, batch_size: int) -> dict[str, Any]:
    """`workers` spawned processes drain the batches of one start_migration; timed from the start call.

    Workers connect and report ready first, so process start-up and imports (a Lambda cold start,
    not batch work) stay out of the timing.
    """
    mp = multiprocessing.get_context("spawn")  # fork would copy this process's open connections
    tasks: Any = mp.Queue()
    results: Any = mp.Queue()
    procs = [mp.Process(target=run_worker, args=(url, tasks, results), daemon=True) for _ in range(workers)]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            kind, _info = results.get(timeout=120)
            assert kind == "ready"
        queue = ListQueue()
        ctx = _context(url, queue)
        try:
            started = time.perf_counter()
            plan = start_migration(StartRequest(batch_size=batch_size), ctx)
            for msg in queue.messages:
                task: Task = (msg.migration_id, msg.batch_no, msg.after_id, msg.upto_id)
                tasks.put(task)
            for _ in procs:
                tasks.put(None)
            reports = []
            for _ in procs:
                kind, info = results.get(timeout=3600)
                reports.append(info)
            seconds = time.perf_counter() - started
            row = ctx.connections.state.execute(
                "SELECT status FROM migration_states WHERE id = %s", (plan.migration_id,)
            ).fetchone()
        finally:
            ctx.connections.close()
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
                proc.join()
    errors = [e for r in reports for e in r["errors"]]
    if errors:
        raise RuntimeError(f"{len(errors)} batch(es) failed with {workers} workers: {errors[:3]}")
    return {
        "seconds": seconds,
        "batches": plan.batches_planned,
        "status": row[0] if row else None,
        "per_worker_batches": sorted(r["batches"] for r in reports),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in reports),
    }


# --------------------------------------------------------------------------------------------- run


def _code_version() -> str:
    """The commit measured (and "+dirty" with uncommitted changes): figures belong to a version."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=False
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, check=False
        )
    except OSError:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else "unknown"


def run_bench(
    users: int = 1_000_000,
    *,
    batch_sizes: Sequence[int] = (DEFAULT_BATCH_SIZE, 1000, 100),
    workers: Sequence[int] = (1, 2, 4),
    per_user_sample: int = 10_000,
    guide_page_size: int = GUIDE_BATCH_SIZE,
    database_url: str = DEFAULT_SERVER_URL,
    say: Say | None = None,
) -> dict[str, Any]:
    """Generate `users` Supabase users in a fresh database and measure every variant; returns the figures.

    `database_url` names the server (any database on it): the bench creates its own database there
    and drops it afterwards. The first batch size is the default one; re-runs use each batch size.
    `guide_page_size` is the guide script's CONFIG.batchSize (5,000 in the guide).
    """
    if not batch_sizes or not workers:
        raise ValueError("need at least one batch size and one worker count")
    log = say or (lambda _text: None)
    seconds: dict[str, float] = {}
    variants: dict[str, Any] = {}
    counts: dict[str, dict[str, int]] = {}
    run_started = time.perf_counter()
    version = _code_version()  # at the start: the code every variant imported
    with bench_database(database_url) as url:
        log(f"generating {users:,} Supabase users ...")
        started = time.perf_counter()
        total = prepare(url, users)
        seconds["generate"] = time.perf_counter() - started
        facts = server_facts(url)
        reset_target(url)

        log("raw INSERT ... SELECT ...")
        seconds["raw"] = bench_raw(url)
        counts["raw"] = target_counts(url).as_dict()
        reset_target(url)

        sample = min(per_user_sample, total)
        log(f"per-user way on {sample:,} users ...")
        per_user = bench_per_user(url, sample)
        per_user["extrapolated_seconds"] = per_user["seconds"] * total / max(1, per_user["users"])
        per_user["extrapolated"] = True
        variants["per_user"] = per_user
        seconds["per_user_sample"] = per_user["seconds"]
        seconds["per_user"] = per_user["extrapolated_seconds"]
        reset_target(url)

        for size in batch_sizes:
            log(f"engine inline, batch size {size} ...")
            first = bench_engine(url, size)
            counts[f"ours_batch_{size}"] = target_counts(url).as_dict()
            if size == batch_sizes[0]:
                record_ours(url)  # who our engine migrates: the guide's users are counted against it
            log(f"re-run over the migrated target, batch size {size} ...")
            rerun = bench_engine(url, size)
            after = target_counts(url).as_dict()
            rerun["created"] = rerun["outcomes"].get("migrated", 0)
            rerun["rows_added"] = after["better_auth_users"] - counts[f"ours_batch_{size}"]["better_auth_users"]
            rerun["over_first"] = rerun["seconds"] / first["seconds"]
            variants[f"ours_batch_{size}"] = first
            variants[f"rerun_batch_{size}"] = rerun
            seconds[f"ours_batch_{size}"] = first["seconds"]
            seconds[f"rerun_batch_{size}"] = rerun["seconds"]
            reset_target(url)
            if size == batch_sizes[0]:
                log(f"engine inline, batch size {size}, no read-ahead ...")
                variants["ours_no_read_ahead"] = bench_engine(url, size, read_ahead=False)
                seconds["ours_no_read_ahead"] = variants["ours_no_read_ahead"]["seconds"]
                counts["ours_no_read_ahead"] = target_counts(url).as_dict()
                reset_target(url)

        best_size = min(batch_sizes, key=lambda s: seconds[f"ours_batch_{s}"])
        default_size = batch_sizes[0]
        seconds["ours"] = seconds[f"ours_batch_{best_size}"]
        seconds["ours_default"] = seconds[f"ours_batch_{default_size}"]
        seconds["rerun"] = seconds[f"rerun_batch_{best_size}"]

        for count in workers:
            log(f"{count} worker process(es), batch size {best_size} ...")
            result = bench_workers(url, count, best_size)
            counts[f"workers_{count}"] = target_counts(url).as_dict()
            result["users_per_second"] = total / result["seconds"]
            variants[f"workers_{count}"] = result
            seconds[f"workers_{count}"] = result["seconds"]
            reset_target(url)

        log(f"Better-Auth's guide script, pages of {guide_page_size:,}, then its re-run ...")
        guide = bench_guide(url, GuideConfig(batch_size=guide_page_size))
        variants["guide"] = guide
        seconds["guide"] = guide["seconds"]
        seconds["guide_rerun"] = guide["rerun_seconds"]
        reset_target(url)

    checked = [k for k in counts if k != "raw"]
    duplicates = sum(counts[k]["duplicates"] for k in checked)
    reruns_added = sum(variants[f"rerun_batch_{s}"]["rows_added"] for s in batch_sizes)
    migrated_by = {k: counts[k]["better_auth_users"] for k in counts}
    return {
        "users": total,
        "path": "inline: start_migration + process_batch in-process; workers: spawned processes fed "
        "from a multiprocessing queue (no SQS); all URLs on one database",
        "batch_sizes": list(batch_sizes),
        "best_batch_size": best_size,
        "default_batch_size": default_size,
        "workers": list(workers),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "users_per_second": {
            k: round(total / v) for k, v in seconds.items() if v > 0 and k not in ("generate", "per_user_sample")
        },
        "ratios": {
            "ours_over_raw": round(seconds["ours"] / seconds["raw"], 3),
            "ours_default_over_raw": round(seconds["ours_default"] / seconds["raw"], 3),
            "rerun_over_first": round(seconds["rerun"] / seconds["ours"], 3),
            "per_user_over_ours": round(seconds["per_user"] / seconds["ours"], 3),
            "ours_over_guide": round(seconds["ours"] / seconds["guide"], 3),
            "ours_default_over_guide": round(seconds["ours_default"] / seconds["guide"], 3),
            "read_ahead_over_none": round(seconds["ours_default"] / seconds["ours_no_read_ahead"], 3),
            **{
                f"workers_{w}_speedup": round(seconds[f"workers_{workers[0]}"] / seconds[f"workers_{w}"], 3)
                for w in workers
            },
        },
        "duplicates": duplicates,
        "rerun_rows_added": reruns_added,
        "migrated_users_match_raw": len(set(migrated_by.values())) == 1,
        # The guide is known to be wrong: reported here, never part of `duplicates` or the exit status.
        "guide_users_migrated": guide["counts"]["users_of_ours"],
        "guide_ours_users": guide["counts"]["ours_users"],
        "guide_pages_failed": guide["run"]["pages_failed"],
        "guide_duplicates": guide["counts"]["duplicates"],
        "guide_rerun_accounts_added": guide["rerun_accounts_added"],
        "guide_rerun_duplicates": guide["rerun_counts"]["duplicates"],
        "counts": counts,
        "variants": variants,
        "peak_rss_mb": {
            "workers_max": max(variants[f"workers_{w}"]["peak_rss_mb"] for w in workers),
            **{f"workers_{w}": variants[f"workers_{w}"]["peak_rss_mb"] for w in workers},
            "bench_process": round(peak_rss_mb(), 1),
        },
        "code_version": version,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), **facts},
        "wall_seconds": round(time.perf_counter() - run_started, 1),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------------------------- output


def format_table(result: dict[str, Any]) -> str:
    """The human-readable summary: seconds, throughput and ratio to the floor, one line per variant."""
    s, n = result["seconds"], result["users"]
    raw, guide_s = s["raw"], s["guide"]
    per_user = result["variants"]["per_user"]
    guide = result["variants"]["guide"]
    gc, grun = guide["counts"], guide["run"]
    best, default = result["best_batch_size"], result["default_batch_size"]
    rows: list[tuple[str, float, str]] = [("raw INSERT ... SELECT (floor)", raw, "")]
    rows.append(
        (
            f"Better-Auth guide script, pages of {guide['page_size']:,}",
            guide_s,
            f"{gc['users_of_ours']:,} of ours' {gc['ours_users']:,} users; "
            f"{grun['pages_failed']} of {grun['pages']} pages failed; duplicates {gc['duplicates']}",
        )
    )
    rows.append(
        (
            "  guide re-run over its own output",
            s["guide_rerun"],
            f"+{guide['rerun_users_added']:,} users, +{guide['rerun_accounts_added']:,} accounts "
            f"(duplicates {guide['rerun_counts']['duplicates']:,})",
        )
    )
    for size in result["batch_sizes"]:
        mark = " (default)" if size == default else ""
        mark += " (best)" if size == best else ""
        rows.append((f"ours, batch {size}{mark}", s[f"ours_batch_{size}"], ""))
        if size == default:
            rows.append(
                (
                    f"  same, no read-ahead, batch {size}",
                    s["ours_no_read_ahead"],
                    f"read-ahead takes {result['ratios']['read_ahead_over_none']:.0%} of this time",
                )
            )
        rerun = result["variants"][f"rerun_batch_{size}"]
        rows.append(
            (
                f"  re-run, batch {size}",
                s[f"rerun_batch_{size}"],
                f"{rerun['over_first']:.0%} of first run, {rerun['rows_added']} rows added",
            )
        )
    rows.append(
        (
            f"per-user way (EXTRAPOLATED from {per_user['users']:,})",
            s["per_user"],
            f"sample took {per_user['seconds']:.1f} s",
        )
    )
    for w in result["workers"]:
        v = result["variants"][f"workers_{w}"]
        dup = result["counts"][f"workers_{w}"]["duplicates"]
        rows.append(
            (
                f"{w} worker process(es), batch {best}",
                s[f"workers_{w}"],
                f"duplicates {dup}, peak RSS {v['peak_rss_mb']:.0f} MB/worker",
            )
        )
    lines = [
        f"Migration bench: {n:,} Supabase users ({result['path']})",
        f"code {result.get('code_version', '?')}; generated in {s['generate']:.1f} s; "
        f"Postgres {result['machine'].get('server_version', '?')}, {result['machine']['cpus']} CPUs",
        "",
        f"{'variant':<44} {'seconds':>9} {'users/s':>9} {'x raw':>7} {'x guide':>8}  notes",
        "-" * 110,
    ]
    for name, secs, note in rows:
        lines.append(
            f"{name:<44} {secs:>9.1f} {n / secs if secs else 0:>9,.0f} {secs / raw:>7.2f} "
            f"{secs / guide_s if guide_s else 0:>8.2f}  {note}"
        )
    r = result["ratios"]
    lines += [
        "",
        f"ours/raw {r['ours_over_raw']:.2f} (default batch: {r['ours_default_over_raw']:.2f})   "
        f"ours/guide {r['ours_over_guide']:.2f} (default batch: {r['ours_default_over_guide']:.2f})   "
        f"re-run/first {r['rerun_over_first']:.1%}   per-user/ours {r['per_user_over_ours']:.1f}   "
        f"duplicates {result['duplicates']}   same users migrated by every variant: "
        f"{result['migrated_users_match_raw']}",
        f"guide (reported, not gated): {gc['users_of_ours']:,} of the {gc['ours_users']:,} users ours migrates "
        f"({gc['ours_lost_in_failed_pages']:,} lost in {grun['pages_failed']} failed pages, "
        f"{gc['ours_skipped_by_guide_rules']:,} skipped by its rules), {gc['users_not_ours']:,} users ours refuses; "
        f"re-run added {guide['rerun_accounts_added']:,} accounts; duplicates {gc['duplicates']} "
        f"(after re-run {guide['rerun_counts']['duplicates']:,})",
    ]
    lines += [f"  guide page failed: {e['error']} ({e['detail']})" for e in grun["errors"][:5]]
    return "\n".join(lines)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=1_000_000, help="source users to generate (default 1,000,000)")
    parser.add_argument(
        "--batch-sizes",
        default=f"{DEFAULT_BATCH_SIZE},1000,100",
        help="comma-separated; the first is the engine's default (engine.plan.DEFAULT_BATCH_SIZE)",
    )
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker process counts")
    parser.add_argument("--per-user-sample", type=int, default=10_000)
    parser.add_argument(
        "--guide-page-size",
        type=int,
        default=GUIDE_BATCH_SIZE,
        help="the Better-Auth guide script's batchSize (default 5,000, as in the guide)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER_URL),
        help="the Postgres server (the bench creates and drops its own database there)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of the table")
    parser.add_argument(
        "--out", type=Path, help="write the JSON here (default bench/results/bench-<users>-<time>.json)"
    )
    return parser.parse_args(argv)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)

    def say(text: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    result = run_bench(
        args.users,
        batch_sizes=_ints(args.batch_sizes),
        workers=_ints(args.workers),
        per_user_sample=args.per_user_sample,
        guide_page_size=args.guide_page_size,
        database_url=args.database_url,
        say=say,
    )
    out: Path = args.out or RESULTS_DIR / f"bench-{args.users}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print(format_table(result))
    say(f"JSON written to {out}")
    return 0 if result["duplicates"] == 0 and result["rerun_rows_added"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
