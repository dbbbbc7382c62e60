"""The README's main command: generate Supabase-shaped users and migrate them through the local SQS pipeline."""

from __future__ import annotations

import contextlib
import json
import resource
import sys
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from auth_migration_ops.local_pipeline import LocalPipeline
from auth_migration_ops.local_schema import prepare_migration_database
from auth_migration_ops.localdb import ensure_postgres
from auth_migration_ops.progress import ProgressBar, format_report
from auth_migration_ops.supabase_data import generate_supabase_users


def _say(text: str, *, quiet: bool) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def recreate_database(url: str) -> None:
    """Drop and create the demo database (it is the demo's own: every run starts from nothing)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = str(info.get("dbname") or "")
    if not name or name in ("postgres", "template0", "template1"):
        raise ValueError(f"refusing to recreate database {name!r}: give the demo a database of its own")
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def run_demo(*, users: int, batch_size: int, concurrency: int, database_url: str, as_json: bool) -> int:
    quiet = as_json
    with ensure_postgres(database_url) as pg:
        if pg.embedded:
            _say(f"no PostgreSQL answered at the configured URL; started an embedded one ({pg.url})", quiet=quiet)
        url = pg.url
        recreate_database(url)
        t0 = time.monotonic()
        prepare_migration_database(url)
        # The functions judge bans as of their start (the wall clock, as in Lambda): the data is made
        # relative to the same clock, so the demo's outcomes are the same whatever day it runs.
        manifest = generate_supabase_users(url, users, seed=42, reference_time=datetime.now(UTC))
        _say(f"generated {manifest.total:,} Supabase users in {time.monotonic() - t0:.1f} s", quiet=quiet)

        urls = {"OLD_DATABASE_URL": url, "NEW_DATABASE_URL": url, "BETTER_AUTH_DATABASE_URL": url}
        # What the functions print is their log (stdout in Lambda); here stdout carries the report.
        with contextlib.redirect_stdout(sys.stderr), LocalPipeline(urls, concurrency=concurrency) as pipeline:
            reply = pipeline.control({"action": "start", "source": "supabase", "batch_size": batch_size})
            if not reply.get("ok"):
                print(f"auth-migrate: error: {reply['error']['message']}", file=sys.stderr)
                return 1
            _say(f"migration {reply['migration_id']}: {reply['batches_planned']} batches enqueued", quiet=quiet)
            bar = ProgressBar(enabled=not quiet)
            pipeline.run_batches(reply["migration_id"], on_progress=bar.update)
            bar.close()
            report: dict[str, Any] = pipeline.control({"action": "status", "migration_id": reply["migration_id"]})
            report["dlq_messages"] = pipeline.dlq_depth()
        with psycopg.connect(url) as conn:
            row = conn.execute('SELECT (SELECT count(*) FROM "user"), (SELECT count(*) FROM migrated_users)').fetchone()
        report["better_auth_users"], report["tracking_rows"] = row if row else (0, 0)
        report["generated_users"] = manifest.total
    # ru_maxrss is KiB on Linux: the whole CLI process (generator, moto, poller and both functions).
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_report(report))
        print(f"  Better-Auth users: {report['better_auth_users']:,}   tracking rows: {report['tracking_rows']:,}")
        print(f"  peak RSS of this process: {report['peak_rss_mb']} MB")
    return 0 if report["status"] in ("completed", "completed_with_errors") else 1
