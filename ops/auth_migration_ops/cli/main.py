"""`auth-migrate`: the root command. Each group lives in a module of its own (db, migrate, status and
reconcile, invoke and local, openapi and bench, demo); this one wires them and maps failures to exit
codes: 0 done, 1 failure, 2 bad usage or input, 130 interrupted. No failure prints a traceback."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from auth_migration.exceptions import AuthMigrationError
from auth_migration_ops.cli.canary import canary
from auth_migration_ops.cli.common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, CliState, error
from auth_migration_ops.cli.db import db
from auth_migration_ops.cli.demo import demo
from auth_migration_ops.cli.local import invoke, local
from auth_migration_ops.cli.migrate import migrate
from auth_migration_ops.cli.rollout import flags, phase, rollback
from auth_migration_ops.cli.sentry import sentry
from auth_migration_ops.cli.sessions import sessions
from auth_migration_ops.cli.status import reconcile, status
from auth_migration_ops.cli.tools import bench, openapi

__all__ = ["cli", "main"]

_EPILOG = (
    "Settings come from the environment or ./.env (OLD_DATABASE_URL, NEW_DATABASE_URL, "
    "BETTER_AUTH_DATABASE_URL, ...). Shell completion: "
    'eval "$(_AUTH_MIGRATE_COMPLETE=bash_source auth-migrate)" (zsh_source, fish_source).'
)


@click.group(
    help="Operate the Supabase Auth -> Better-Auth migration: schema, bulk migrations, status, repair, "
    "the local runtime.",
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.option(
    "--env-file", type=Path, default=Path(".env"), show_default=True, help="dotenv file read for the settings"
)
@click.pass_context
def cli(ctx: click.Context, env_file: Path) -> None:
    ctx.obj = CliState(env_file=env_file)


for command in (db, migrate, flags, phase, canary, rollback, invoke, bench, demo, status, reconcile, openapi, local):
    cli.add_command(command)
cli.add_command(sentry)
cli.add_command(sessions)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="auth-migrate", standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help, and a command's own early exit
        return int(exc.exit_code)
    except click.exceptions.Abort:
        hint = "; `auth-migrate migrate resume ID` continues" if args[:1] == ["migrate"] else ""
        print(f"auth-migrate: interrupted{hint}", file=sys.stderr)
        return 130
    except click.ClickException as exc:  # usage errors: Click's own message, exit 2
        exc.show()
        return int(exc.exit_code)
    except AuthMigrationError as exc:
        error(str(exc))
        return EXIT_USAGE if type(exc).__name__ == "InvalidRequest" else EXIT_ERROR
    except KeyboardInterrupt:
        hint = "; `auth-migrate migrate resume ID` continues" if args[:1] == ["migrate"] else ""
        print(f"auth-migrate: interrupted{hint}", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else EXIT_OK
