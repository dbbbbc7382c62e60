"""`auth-migrate migrate`: the bulk migration an operator drives (MigrationControl's actions, run here)."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import click

from auth_migration.engine.plan import DEFAULT_BATCH_SIZE, SUPABASE_BATCH_SECONDS
from auth_migration.settings import Settings
from auth_migration.targets.supabase import DEFAULT_MAX_REQUESTS_PER_S, MAX_REQUESTS_PER_S
from auth_migration_ops.cli.common import (
    BATCH_SIZE,
    JSON_HELP,
    POSITIVE,
    CliState,
    database_urls,
    pass_state,
    print_reply,
    refused_confirmation,
)

_LOCAL_HELP = "run the SQS pipeline here (moto + the template's functions in-process) and wait for the report"


@click.group(
    short_help="bulk migrations: start, resume, rollback, status",
    help="Bulk migrations: start (or dry-run), resume, roll back, report.",
)
def migrate() -> None:
    pass


def _local_options(command: Any) -> Any:
    for option in reversed(
        [
            click.option("--local", is_flag=True, help=_LOCAL_HELP),
            click.option("--concurrency", type=POSITIVE, default=2, show_default=True, help="local batch workers"),
            click.option("--json", "as_json", is_flag=True, help=JSON_HELP),
        ]
    ):
        command = option(command)
    return command


@migrate.command(
    short_help="plan and enqueue a migration (or --dry-run, or --local)",
    help="Plan keyset batches of the source and enqueue them (MigrationControl start).",
)
@click.option("--source", type=click.Choice(["supabase", "profiles"]), default="supabase", show_default=True)
@click.option(
    "--target",
    type=click.Choice(["better-auth", "supabase"]),
    default="better-auth",
    show_default=True,
    help="better-auth: its tables by SQL; supabase: GoTrue's admin API (SUPABASE_URL, SUPABASE_SERVICE_KEY)",
)
@click.option(
    "--max-rps",
    type=click.IntRange(1, MAX_REQUESTS_PER_S),
    default=None,
    help=f"supabase target: GoTrue admin calls per second, whole migration [default: {DEFAULT_MAX_REQUESTS_PER_S}]",
)
@click.option(
    "--batch-size",
    type=BATCH_SIZE,
    default=None,
    help=f"users per batch (1-10000) [default: {DEFAULT_BATCH_SIZE:,} into Better-Auth, the measured fastest;"
    f" supabase target: {SUPABASE_BATCH_SECONDS} s of calls at --max-rps]",
)
@click.option("--dry-run", is_flag=True, help="decide and report every user's outcome; write nothing to the target")
@_local_options
@pass_state
def start(
    state: CliState,
    source: str,
    target: str,
    batch_size: int | None,
    dry_run: bool,
    max_rps: int | None,
    local: bool,
    concurrency: int,
    as_json: bool,
) -> int:
    event: dict[str, Any] = {
        "action": "start",
        "source": source,
        "target": target,
        "dry_run": dry_run,
    }
    if batch_size is not None:
        event["batch_size"] = batch_size
    if max_rps is not None:
        event["max_requests_per_s"] = max_rps
    return _control(state.settings(), event, local=local, concurrency=concurrency, as_json=as_json)


@migrate.command(
    short_help="re-send unfinished batches, plan users added since",
    help="Re-send every batch not done and plan users added past the plan's end.",
)
@click.argument("migration_id")
@_local_options
@pass_state
def resume(state: CliState, migration_id: str, local: bool, concurrency: int, as_json: bool) -> int:
    event = {"action": "resume", "migration_id": migration_id}
    return _control(state.settings(), event, local=local, concurrency=concurrency, as_json=as_json)


@migrate.command(
    short_help="delete exactly the users a migration created",
    help="Delete exactly the Better-Auth users MIGRATION_ID created, and its tracking rows.",
)
@click.argument("migration_id")
@click.option("--yes", is_flag=True, help="do not ask for confirmation (scripts)")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_state
def rollback(state: CliState, migration_id: str, yes: bool, as_json: bool) -> int:
    question = (
        f"Delete every Better-Auth user migration {migration_id} created (adopted users and other paths' users stay)?"
    )
    refused = refused_confirmation(question, yes=yes, what="rollback deletes users")
    if refused is not None:
        return refused
    return _control(state.settings(), {"action": "rollback", "migration_id": migration_id}, as_json=as_json)


@migrate.command(
    short_help="progress and report of one migration",
    help="Progress and report of MIGRATION_ID: counts per outcome and reason, errors, users/s.",
)
@click.argument("migration_id")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_state
def status(state: CliState, migration_id: str, as_json: bool) -> int:
    return _control(state.settings(), {"action": "status", "migration_id": migration_id}, as_json=as_json)


def _control(
    settings: Settings, event: dict[str, Any], *, local: bool = False, concurrency: int = 2, as_json: bool
) -> int:
    if local:
        return _run_local(settings, event, concurrency=concurrency, as_json=as_json)
    from auth_migration.control import handle_control_event
    from auth_migration.runtime import engine_context

    ctx = engine_context(settings)
    try:
        reply = handle_control_event(event, ctx, default_dry_run=settings.dry_run)
    finally:
        ctx.connections.close()
    return print_reply(reply, as_json=as_json)


def _run_local(settings: Settings, event: dict[str, Any], *, concurrency: int, as_json: bool) -> int:
    from auth_migration_ops.cli.progress import ProgressBar
    from auth_migration_ops.local.pipeline import LocalPipeline
    from auth_migration_ops.local.telemetry import TelemetryFile, display_path

    # What the functions print is their log (stdout in Lambda): it goes to the run's telemetry file, and
    # anything else printed meanwhile to stderr, so stdout carries the report alone.
    with (
        TelemetryFile.for_run() as telemetry,
        contextlib.redirect_stdout(sys.stderr),
        LocalPipeline(
            database_urls(settings), stage=settings.stage, concurrency=concurrency, telemetry=telemetry
        ) as pipeline,
    ):
        reply = pipeline.control(event)
        if not reply.get("ok"):
            code = print_reply(reply, as_json=as_json)
            print(f"auth-migrate: the functions' telemetry: {display_path(telemetry.path)}", file=sys.stderr)
            return code
        telemetry.name_run(reply["migration_id"])
        with ProgressBar(enabled=not as_json) as bar:
            pipeline.run_batches(reply["migration_id"], on_progress=bar.update)
        status = pipeline.control({"action": "status", "migration_id": reply["migration_id"]})
        status["dlq_messages"] = pipeline.dlq_depth()
    status.update(telemetry.summary())
    return print_reply(status, as_json=as_json)
