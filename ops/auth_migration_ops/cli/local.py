"""`auth-migrate invoke` and `auth-migrate local`: the template's functions run here, as `sam local`
would run them (no container runtime exists on these machines)."""

from __future__ import annotations

from pathlib import Path

import click

from auth_migration_ops.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    PORT,
    CliState,
    database_urls,
    error,
    pass_state,
    print_json,
)


@click.command(
    short_help="run a template function in-process (sam local invoke)",
    help="Run a template function in-process with an event file, like `sam local invoke`.",
)
@click.argument("function")
@click.option("-e", "--event", "event_path", type=Path, required=True, help="event JSON file (see events/)")
@click.option("--aws", is_flag=True, help="use the AWS the environment points at instead of a local moto SQS/SSM")
@pass_state
def invoke(state: CliState, function: str, event_path: Path, aws: bool) -> int:
    """FUNCTION: a logical id or short name, e.g. MigrationControl."""
    from auth_migration_ops.local.invoke import invoke_function, load_event

    try:
        event = load_event(event_path)
    except (OSError, ValueError) as exc:
        error(f"cannot read event {event_path}: {exc}")
        return EXIT_USAGE
    try:
        if aws:
            result = invoke_function(function, event)
        else:
            from auth_migration_ops.local.pipeline import LocalPipeline

            settings = state.settings()
            with LocalPipeline(database_urls(settings), stage=settings.stage) as pipeline:
                result = pipeline.function(function).invoke(event, env_overrides=pipeline.env)
    except KeyError as exc:
        error(str(exc.args[0] if exc.args else exc))
        return EXIT_USAGE
    print_json(result)
    return EXIT_OK


@click.group(
    short_help="serve the template's REST API here (sam local start-api)", help="Run the template's functions here."
)
def local() -> None:
    pass


@local.command(
    short_help="serve /auth/signup, /auth/login and /admin/* here, like sam local start-api",
    help=(
        "Serve the template's REST API routes here, like `sam local start-api`. Every `Api` event of the "
        "template's functions is served, each function run in-process (IAM-authorised admin routes are not "
        "signature-checked here, as in sam local: the caller is a local IAM user). With SUPABASE_URL and "
        "BETTER_AUTH_URL both set, the functions use those services (and the database and AWS settings of "
        "the environment); "
        "otherwise Postgres, Better-Auth, a GoTrue stand-in and moto (SSM flags, SQS) start here and stop "
        "with the server (Ctrl-C or SIGTERM)."
    ),
)
@click.option("--port", type=PORT, default=3000, show_default=True, help="as sam local")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--template", type=Path, default=None, help="SAM template (default: the repository's)")
@click.option(
    "--database-url",
    default=None,
    help="database the started stack (re)creates (default auth_migration_local_api on 127.0.0.1:5432; an "
    "embedded Postgres starts if none answers)",
)
def api(port: int, host: str, template: Path | None, database_url: str | None) -> int:
    from auth_migration_ops.local.api import serve

    return serve(host=host, port=port, template_path=template, database_url=database_url)
