"""The engine's other shapes: the legacy profiles source, and state and Better-Auth in two databases."""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from auth_migration.engine import migration_report, rollback_migration
from auth_migration.engine.plan import StartRequest, start_migration
from auth_migration_ops.supabase_data import generate_profiles, generate_supabase_users
from tests.integration.plugins.engine import InlineEngine, create_better_auth_schema, prepare_migration_db
from tests.integration.test_engine import expected_counts, scalar


def test_profiles_source_migrates_valid_rows_and_reports_the_rest(inline_engine: InlineEngine) -> None:
    manifest = generate_profiles(inline_engine.url, 300, seed=31, with_password_hash=True, bcrypt_rounds=4)
    ctx = inline_engine.context()
    started = start_migration(StartRequest(source="profiles", batch_size=40), ctx)
    inline_engine.drain(ctx)
    report = migration_report(started.migration_id, ctx)

    migrated = report["outcomes"].get("migrated", 0)
    invalid = sum(n for k, n in report["outcomes"].items() if k.startswith("invalid:"))
    assert report["processed_count"] == manifest.total
    assert (
        migrated + invalid + sum(n for k, n in report["outcomes"].items() if k.startswith(("conflict:", "skipped:")))
        == manifest.total
    )
    assert invalid >= manifest.counts.get("invalid_email", 0) + manifest.counts.get("missing_email", 0)
    assert scalar(inline_engine.url, 'SELECT count(*) FROM "user"') == migrated
    with psycopg.connect(inline_engine.url) as conn:
        bad_avatars = conn.execute(
            """SELECT count(*) FROM "user" WHERE image IS NOT NULL AND image !~ '^https?://'"""
        ).fetchone()
        assert bad_avatars == (0,)


def test_two_databases_converge_exactly_once_and_roll_back_exactly(
    make_database: Callable[[], str], make_inline_engine: Callable[..., InlineEngine]
) -> None:
    state_url, target_url = make_database(), make_database()
    prepare_migration_db(state_url)
    create_better_auth_schema(target_url)
    manifest = generate_supabase_users(state_url, 400, seed=32, bcrypt_rounds=4)
    engine = make_inline_engine(state_url, target_url=target_url)
    ctx = engine.context()
    assert not ctx.connections.shared_target

    started = start_migration(StartRequest(batch_size=50), ctx)
    messages = list(engine.queue.messages)
    engine.drain(ctx)
    engine.queue.messages.extend(messages)  # every batch delivered again
    engine.drain(ctx)

    migrated = expected_counts(manifest)["migrated"]
    report = migration_report(started.migration_id, ctx)
    assert report["outcomes"] == dict(expected_counts(manifest))
    assert scalar(target_url, 'SELECT count(*) FROM "user"') == migrated
    assert scalar(state_url, "SELECT count(*) FROM migrated_users WHERE created_target") == migrated

    result = rollback_migration(started.migration_id, ctx)
    assert result.users_deleted == migrated
    assert scalar(target_url, 'SELECT count(*) FROM "user"') == 0
    assert scalar(target_url, "SELECT count(*) FROM account") == 0
