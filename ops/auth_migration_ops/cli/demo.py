"""The README's main command: generate Supabase-shaped users and migrate them through the local SQS pipeline."""

from __future__ import annotations

import contextlib
import json
import resource
import sys
import time
from datetime import UTC, datetime
from typing import Any

import click
import psycopg

from auth_migration_ops.cli.common import BATCH_SIZE, JSON_HELP, POSITIVE
from auth_migration_ops.cli.progress import ProgressBar, format_report
from auth_migration_ops.datakit.postgres import ensure_postgres, recreate_database
from auth_migration_ops.datakit.schemas import prepare_migration_database
from auth_migration_ops.datakit.supabase_data import generate_supabase_users
from auth_migration_ops.local.pipeline import LocalPipeline
from auth_migration_ops.local.telemetry import TelemetryFile, display_path


def _say(text: str, *, quiet: bool) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


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
        # What the functions print is their log (stdout in Lambda): it goes to the run's telemetry file, and
        # anything else printed meanwhile to stderr, so stdout carries the report alone.
        with (
            TelemetryFile.for_run() as telemetry,
            contextlib.redirect_stdout(sys.stderr),
            LocalPipeline(urls, concurrency=concurrency, telemetry=telemetry) as pipeline,
        ):
            reply = pipeline.control({"action": "start", "source": "supabase", "batch_size": batch_size})
            if not reply.get("ok"):
                print(f"auth-migrate: error: {reply['error']['message']}", file=sys.stderr)
                print(f"auth-migrate: the functions' telemetry: {display_path(telemetry.path)}", file=sys.stderr)
                return 1
            telemetry.name_run(reply["migration_id"])
            _say(f"migration {reply['migration_id']}: {reply['batches_planned']} batches enqueued", quiet=quiet)
            with ProgressBar(enabled=not quiet) as bar:
                pipeline.run_batches(reply["migration_id"], on_progress=bar.update)
            report: dict[str, Any] = pipeline.control({"action": "status", "migration_id": reply["migration_id"]})
            report["dlq_messages"] = pipeline.dlq_depth()
        report.update(telemetry.summary())
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


@click.command(
    short_help="the README's main job: a local end-to-end migration",
    help="The README's main job: generated Supabase users -> Better-Auth through the local SQS pipeline.",
)
@click.option("--users", type=POSITIVE, default=10_000, show_default=True, help="users to generate")
# Not the engine's default (10,000): the demo's 10,000 users would be one batch, and the point of the demo
# is to show the SQS pipeline at work (batches spread over the workers, a progress bar that moves).
@click.option("--batch-size", type=BATCH_SIZE, default=1000, show_default=True)
@click.option("--concurrency", type=POSITIVE, default=2, show_default=True, help="local batch workers")
@click.option(
    "--database-url",
    default="postgresql://postgres@127.0.0.1:5432/auth_migration_demo",
    show_default=True,
    help="database to (re)create for the demo; an embedded Postgres starts if none answers",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def demo(users: int, batch_size: int, concurrency: int, database_url: str, as_json: bool) -> int:
    return run_demo(
        users=users, batch_size=batch_size, concurrency=concurrency, database_url=database_url, as_json=as_json
    )
