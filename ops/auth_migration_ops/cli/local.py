"""`auth-migrate invoke` and `auth-migrate local`: the template's functions run here, as `sam local`
would run them (no container runtime exists on these machines)."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import click

from auth_migration_ops.cli.common import (
    EXIT_ERROR,
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
    help=(
        "Run a template function in-process with an event file, like `sam local invoke`. The handler's "
        "reply is printed on stdout. A handler that raises is a crash: Lambda's error document "
        "(errorType, errorMessage, stackTrace) on stderr and exit 1; an unknown function or an unreadable "
        "event is a usage error (exit 2)."
    ),
)
@click.argument("function")
@click.option("-e", "--event", "event_path", type=Path, required=True, help="event JSON file (see events/)")
@click.option("--aws", is_flag=True, help="use the AWS the environment points at instead of a local moto SQS/SSM")
@pass_state
def invoke(state: CliState, function: str, event_path: Path, aws: bool) -> int:
    """FUNCTION: a logical id or short name, e.g. MigrationControl."""
    from auth_migration_ops.local.invoke import error_document, invoke_function, load_event
    from auth_migration_ops.local.template import resolve_function

    try:
        event = load_event(event_path)
    except (OSError, ValueError) as exc:
        error(f"cannot read event {event_path}: {exc}")
        return EXIT_USAGE
    # The name is checked before anything runs: past this point a KeyError is the function's own
    # (one once hid a handler's crash as a usage error).
    try:
        resolve_function(function)
    except KeyError as exc:
        error(str(exc.args[0] if exc.args else exc))
        return EXIT_USAGE
    request_id = str(uuid.uuid4())
    # Only the handler's own failure (its import included: a cold start) is a crash; a local stack that
    # cannot start (moto, settings) is reported by main() as any command's error.
    if aws:
        try:
            result = invoke_function(function, event, aws_request_id=request_id)
        except Exception as exc:
            return _crashed(function, error_document(exc, request_id=request_id))
    else:
        from auth_migration_ops.local.pipeline import LocalPipeline

        settings = state.settings()
        with LocalPipeline(database_urls(settings), stage=settings.stage) as pipeline:
            handler = pipeline.function(function)
            try:
                result = handler.invoke(event, env_overrides=pipeline.env, aws_request_id=request_id)
            except Exception as exc:
                return _crashed(function, error_document(exc, request_id=request_id))
    print_json(result)
    return EXIT_OK


def _crashed(function: str, document: dict[str, Any]) -> int:
    """A handler that raised, reported as `sam local invoke` shows it: Lambda's error document."""
    error(f"{function} crashed: {document['errorType']}: {document['errorMessage']}")
    print(json.dumps(document, indent=2), file=sys.stderr)
    return EXIT_ERROR


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
