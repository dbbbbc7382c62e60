"""`auth-migrate status` and `auth-migrate reconcile`: where users stand across both systems, and the
repair of dual-write gaps (Reconcile's work, run here)."""

from __future__ import annotations

import json

import click

from auth_migration_ops.cli.common import EXIT_OK, JSON_HELP, CliState, pass_state

_LABELS = {
    "total_users": "users tracked",
    "supabase_migrated": "in Supabase",
    "better_auth_migrated": "in Better-Auth",
    "fully_migrated": "in both",
    "data_validated": "validated",
    "completion_rate": "completion rate %",
    "open_gaps": "open dual-write gaps",
    "conflicts": "gaps needing a person",
    "bcrypt_hashes": "Supabase bcrypt hashes left",
    "better_auth_hashes": "Better-Auth scrypt hashes",
}


@click.command(
    short_help="users per system, completion rate, open dual-write gaps",
    help=(
        "Users per system: tracked, in Supabase, in Better-Auth, in both, validated, completion rate, open gaps, "
        "and the Better-Auth passwords still held as Supabase bcrypt hashes (HASH_UPGRADE re-hashes them at login)."
    ),
)
@click.option("--database-url", help="the state database (default: NEW_DATABASE_URL)")
@click.option("--better-auth-database-url", help="Better-Auth's database (default: BETTER_AUTH_DATABASE_URL)")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_state
def status(state: CliState, database_url: str | None, better_auth_database_url: str | None, as_json: bool) -> int:
    from auth_migration.dual_write.directory import credential_hash_counts
    from auth_migration.dual_write.records import migration_stats
    from auth_migration.store import connect, require_schema

    with connect(database_url or state.settings().new_database_url, autocommit=True) as conn:
        require_schema(conn)
        stats = migration_stats(conn).as_dict()
    target = better_auth_database_url or (database_url if database_url else state.settings().better_auth_database_url)
    with connect(target, autocommit=True) as conn:
        stats.update(credential_hash_counts(conn))
    if as_json:
        print(json.dumps(stats))
        return EXIT_OK
    width = max(len(v) for v in _LABELS.values())
    for key, label in _LABELS.items():
        print(f"{label:<{width}}  {stats[key]}")
    return EXIT_OK


@click.group(
    short_help="repair dual-write gaps (reconcile sweep)", help="Dual-write repair: the gaps Reconcile closes."
)
def reconcile() -> None:
    pass


@reconcile.command(
    short_help="repair every open dual-write gap now, here",
    help="Repair every open dual-write gap now, here (not through the queue).",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_state
def sweep(state: CliState, as_json: bool) -> int:
    from auth_migration.dual_write.reconcile_worker import sweep as sweep_gaps
    from auth_migration.dual_write.runtime import reconciler

    worker = reconciler(state.settings())
    try:
        counts = sweep_gaps(worker, None, older_than_s=0)
    finally:
        worker.conns.close()
        worker.supabase.close()
    print(json.dumps(counts) if as_json else f"repaired {counts['repaired']} gap(s)")
    return EXIT_OK
