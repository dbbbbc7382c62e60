"""Progress and the final report of a migration: counters, outcomes per kind and reason, errors, rate."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row

from auth_migration.engine.context import EngineContext
from auth_migration.engine.state import validate_migration_id
from auth_migration.exceptions import NotFound
from auth_migration.store import require_schema
from auth_migration.targets.supabase import NEEDS_PASSWORD_RESET, SupabaseTarget

_LISTED = 100


def migration_report(migration_id: str, ctx: EngineContext, *, top_errors: int = 20) -> dict[str, Any]:
    """A JSON-ready report; outcome keys are "migrated", "skipped:soft_deleted", "invalid:invalid_email"..."""
    state = ctx.connections.state
    require_schema(state)
    with state.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            """SELECT id, status, source, target, dry_run, batch_size, processed_count, error_count,
                      last_processed_id, batches_total, batches_done, batches_failed, created_at,
                      updated_at, completed_at,
                      extract(epoch FROM coalesce(completed_at, now()) - created_at) AS elapsed_s
               FROM migration_states WHERE id = %s""",
            (validate_migration_id(migration_id),),
        ).fetchone()
        if row is None:
            raise NotFound(f"no migration with id {migration_id!r}")
        outcomes = {
            r["key"]: int(r["n"])
            for r in cur.execute(
                """SELECT key, sum(value::bigint) AS n FROM migration_batches, jsonb_each_text(outcomes)
                   WHERE migration_id = %s GROUP BY key ORDER BY key""",
                (migration_id,),
            )
        }
        errors = [
            {"kind": r["error_kind"], "code": r["error_code"], "count": int(r["n"])}
            for r in cur.execute(
                """SELECT error_kind, error_code, count(*) AS n FROM migration_errors WHERE migration_id = %s
                   GROUP BY 1, 2 ORDER BY n DESC, 1, 2 LIMIT %s""",
                (migration_id, top_errors),
            )
        ]
    elapsed = float(row.pop("elapsed_s") or 0.0)
    report: dict[str, Any] = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
    report["migration_id"] = report.pop("id")
    report["batches_pending"] = max(0, row["batches_total"] - row["batches_done"] - row["batches_failed"])
    report["outcomes"] = outcomes
    report["migrated"] = outcomes.get("migrated", 0)
    report["errors_by_code"] = errors
    report["elapsed_s"] = round(elapsed, 3)
    report["users_per_s"] = round(row["processed_count"] / elapsed, 1) if elapsed > 0 else None
    flags = {
        str(r[0]): int(r[1])
        for r in state.execute(
            """SELECT key, sum(value::bigint) FROM migration_batches, jsonb_each_text(flag_counts)
               WHERE migration_id = %s AND flag_counts IS NOT NULL GROUP BY key ORDER BY key""",
            (migration_id,),
        )
    }
    report["flags"] = flags
    if row["target"] == SupabaseTarget.name:
        if row["dry_run"]:
            # Nothing was created, so no tracking row lists them: the count the real run would have.
            report["needs_password_reset"] = {
                "count": flags.get(NEEDS_PASSWORD_RESET, 0),
                "user_ids": [],
                "predicted": True,
            }
        else:
            report["needs_password_reset"] = _needs_password_reset(ctx, migration_id)
    return report


def _needs_password_reset(ctx: EngineContext, migration_id: str) -> dict[str, Any]:
    """Users the supabase target created without a password (none, or a hash GoTrue cannot take): they
    sign in after a password reset or a magic link. A count and the first ids (migrated_users.flags)."""
    rows = ctx.connections.state.execute(
        """SELECT original_id, count(*) OVER () FROM migrated_users
           WHERE migration_id = %s AND %s = ANY(flags) ORDER BY original_id LIMIT %s""",
        (migration_id, NEEDS_PASSWORD_RESET, _LISTED),
    ).fetchall()
    return {"count": int(rows[0][1]) if rows else 0, "user_ids": [r[0] for r in rows]}
