"""The engine's other shapes: the legacy profiles source, and state and Better-Auth in two databases."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from auth_migration.engine import migration_report, process_batch, rollback_migration
from auth_migration.engine.plan import StartRequest, start_migration
from auth_migration_ops.datakit.supabase_data import generate_profiles, generate_supabase_users
from tests.integration.plugins.engine import InlineEngine, create_better_auth_schema, prepare_migration_db
from tests.integration.test_engine import expected_counts, scalar
from tests.reference_time import REFERENCE_TIME


def test_profiles_source_migrates_valid_rows_and_reports_the_rest(inline_engine: InlineEngine) -> None:
    manifest = generate_profiles(
        inline_engine.url, 300, seed=31, with_password_hash=True, bcrypt_rounds=4, reference_time=REFERENCE_TIME
    )
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
    manifest = generate_supabase_users(state_url, 400, seed=32, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
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


def test_two_databases_crash_after_the_target_write_converges_on_redelivery(
    make_database: Callable[[], str], make_inline_engine: Callable[..., InlineEngine]
) -> None:
    """The window two databases cannot close: Better-Auth committed, tracking rows not yet written."""
    state_url, target_url = make_database(), make_database()
    prepare_migration_db(state_url)
    create_better_auth_schema(target_url)
    manifest = generate_supabase_users(
        state_url, 120, seed=33, edge_cases=False, bcrypt_rounds=4, reference_time=REFERENCE_TIME
    )
    engine = make_inline_engine(state_url, target_url=target_url)
    ctx = engine.context()
    started = start_migration(StartRequest(batch_size=200), ctx)
    (message,) = engine.queue.messages
    with psycopg.connect(state_url, autocommit=True) as conn:
        # The process "dies" right after Better-Auth committed: the tracking insert fails.
        conn.execute(
            """CREATE FUNCTION crash() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN RAISE EXCEPTION 'worker died'; END $$;
               CREATE TRIGGER crash BEFORE INSERT ON migrated_users FOR EACH STATEMENT EXECUTE FUNCTION crash();"""
        )
    with pytest.raises(psycopg.errors.RaiseException):
        process_batch(message, ctx)
    assert scalar(target_url, 'SELECT count(*) FROM "user"') == manifest.total  # target committed
    assert scalar(state_url, "SELECT count(*) FROM migrated_users") == 0
    with psycopg.connect(state_url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER crash ON migrated_users")

    result = process_batch(message, ctx)  # SQS redelivers

    assert result.outcomes == {"migrated": manifest.total}
    assert scalar(state_url, "SELECT count(*) FROM migrated_users WHERE created_target") == manifest.total
    assert rollback_migration(started.migration_id, ctx).users_deleted == manifest.total
    assert scalar(target_url, 'SELECT count(*) FROM "user"') == 0
