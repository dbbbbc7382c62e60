"""`auth-migrate sessions copy`: GoTrue's live sessions and refresh tokens (hashed) into our state, so the
session exchange keeps working once Supabase is gone (layers/.../sessions/session_copy.py)."""

from __future__ import annotations

import json
import sys

import click

from auth_migration_ops.cli.common import EXIT_OK, JSON_HELP, POSITIVE, CliState, pass_state


@click.group(
    short_help="Supabase sessions for the session exchange (copy)", help="Supabase sessions the exchange reads."
)
def sessions() -> None:
    pass


@sessions.command(
    short_help="copy live Supabase sessions and their refresh tokens (hashed) into the state database",
    help=(
        "Copy every live Supabase session (auth.sessions of users not deleted, not past not_after) and its refresh "
        "tokens, as SHA-256 hashes computed in Supabase's database, into the state database. Idempotent: run it "
        "as often as wanted, and once more after Supabase stops issuing tokens and before its database goes. A "
        "completed run ends the copied sessions Supabase no longer holds (signed out, expired, user deleted)."
    ),
)
@click.option("--page-size", type=POSITIVE, default=None, help="sessions per page (default 5000)")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_state
def copy(state: CliState, page_size: int | None, as_json: bool) -> int:
    from auth_migration.connections import Connections
    from auth_migration.sessions.session_copy import DEFAULT_PAGE_SIZE, copy_sessions
    from auth_migration.store import connect, require_schema

    settings = state.settings()
    with connect(settings.new_database_url, autocommit=True) as conn:
        require_schema(conn)
    conns = Connections(settings.new_database_url, settings.old_database_url, settings.new_database_url)
    try:
        counts = copy_sessions(
            conns,
            page_size=page_size or DEFAULT_PAGE_SIZE,
            on_page=None if as_json else lambda done: print(f"  {done} sessions copied", file=sys.stderr),
        )
    finally:
        conns.close()
    if as_json:
        print(json.dumps(counts.as_dict()))
    else:
        print(
            f"copied {counts.sessions} session(s) and {counts.refresh_tokens} refresh token(s) "
            f"({counts.active_refresh_tokens} not rotated); ended {counts.sessions_ended} session(s) "
            "Supabase no longer holds"
        )
    return EXIT_OK
