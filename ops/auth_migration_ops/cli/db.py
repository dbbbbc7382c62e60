"""`auth-migrate db`: the migration-state schema (versioned SQL files shipped in the layer)."""

from __future__ import annotations

import click

from auth_migration_ops.cli.common import EXIT_OK, JSON_HELP, CliState, pass_state, print_json


@click.group(
    short_help="the migration-state schema (db upgrade)",
    help="The migration-state schema: migration_states, migrated_users, errors, gaps, audit.",
)
def db() -> None:
    pass


@db.command(
    short_help="apply the versioned SQL migrations (idempotent)",
    help="Apply the versioned SQL migrations not yet applied (idempotent, safe to run concurrently).",
)
@click.option("--database-url", help="the state database (default: NEW_DATABASE_URL)")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_state
def upgrade(state: CliState, database_url: str | None, as_json: bool) -> int:
    from auth_migration.store import connect, upgrade

    with connect(database_url or state.settings().new_database_url, autocommit=True) as conn:
        applied = upgrade(conn)
    if as_json:
        print_json({"applied": applied})
    else:
        print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
    return EXIT_OK
