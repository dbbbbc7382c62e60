"""Reading the next batch ahead (engine/batch.py prefetch_batch) changes when a batch reads, never what it
records: the same outcomes as batches that read under their own lock; a plan gone stale between the read
and the lock (a user claimed by a login meanwhile, an email taken in Better-Auth meanwhile, a duplicate
delivery, a rollback) is either not used or ends as the constraints decide, with no duplicate and no
partial rows; a prefetch that fails costs nothing but the read."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from auth_migration.connections import Connections
from auth_migration.dual_write.directory import NewUser
from auth_migration.dual_write.lazy import migrate_lazily
from auth_migration.engine import EngineContext, migration_report, process_batch, rollback_migration
from auth_migration.engine.batch import prefetch_batch
from auth_migration.engine.plan import StartRequest, start_migration
from auth_migration.models import BatchMessage
from auth_migration_ops.datakit.supabase_data import generate_supabase_users
from tests.integration.plugins.engine import InlineEngine
from tests.reference_time import REFERENCE_TIME


def _generate(url: str, users: int) -> None:
    generate_supabase_users(url, users, seed=31, bcrypt_rounds=4, reference_time=REFERENCE_TIME)


def _start(engine: InlineEngine, ctx: EngineContext, batch_size: int) -> tuple[str, list[BatchMessage]]:
    started = start_migration(StartRequest(batch_size=batch_size), ctx)
    messages = list(engine.queue.messages)
    engine.queue.messages.clear()
    return started.migration_id, messages


def _duplicates(url: str) -> tuple[int, int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            """SELECT (SELECT count(*) - count(DISTINCT lower(email)) FROM "user"),
                      (SELECT count(*) - count(DISTINCT ("providerId", "accountId")) FROM account),
                      (SELECT count(*) FROM "user" u WHERE NOT EXISTS
                          (SELECT 1 FROM migrated_users m WHERE m.original_id = u.id))"""
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def _first_pending_user(url: str, msg: BatchMessage) -> tuple[str, str]:
    """A live user of the batch's range with a plain email: (id, email)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            """SELECT id::text, lower(email) FROM auth.users u
               WHERE id > coalesce(%s::uuid, '00000000-0000-0000-0000-000000000000') AND id <= %s::uuid
                 AND deleted_at IS NULL AND NOT coalesce(is_anonymous, false) AND banned_until IS NULL
                 AND email ~ '^[a-z0-9.]+@[a-z0-9]+\\.[a-z]+$'
                 AND NOT EXISTS (SELECT 1 FROM auth.users o WHERE lower(o.email) = lower(u.email) AND o.id <> u.id)
               ORDER BY id LIMIT 1""",
            (msg.after_id, msg.upto_id),
        ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


def test_batches_read_ahead_record_exactly_what_batches_read_under_their_lock(
    make_inline_engine: Any, migration_db: str, make_database: Any
) -> None:
    plain_db = make_database()
    from auth_migration_ops.datakit.schemas import prepare_migration_database

    prepare_migration_database(plain_db, profiles=True)
    reports = []
    for url, prefetch in ((migration_db, True), (plain_db, False)):
        _generate(url, 700)
        engine = make_inline_engine(url)
        ctx = engine.context()
        ctx.prefetch = prefetch
        migration_id, _messages = _start(engine, ctx, 100)
        engine.queue.messages.extend(_messages)
        results = engine.drain(ctx)
        # Every batch but the first was read while the one before it wrote (none without the prefetch).
        assert sum(r.read_ahead for r in results) == (len(results) - 1 if prefetch else 0)
        reports.append(migration_report(migration_id, ctx))
        assert _duplicates(url) == (0, 0, 0)

    ahead, locked = reports
    assert ahead["outcomes"] == locked["outcomes"] and ahead["processed_count"] == locked["processed_count"] == 700
    assert ahead["status"] == locked["status"]


def test_a_plan_gone_stale_before_the_lock_ends_as_the_claim_and_constraints_decide(
    inline_engine: InlineEngine, migration_db: str
) -> None:
    _generate(migration_db, 300)
    ctx = inline_engine.context()
    migration_id, messages = _start(inline_engine, ctx, 100)
    first, second = messages[0], messages[1]
    claimed_id, claimed_email = _first_pending_user(migration_db, second)

    # Batch 1 runs and reads batch 2 ahead; then, before batch 2 takes its lock, a login migrates one of its
    # users lazily (the same per-user claim) and someone signs up in Better-Auth with another one's email.
    process_batch(first, ctx, next_msg=second)
    ctx.prefetcher().wait()
    assert ctx.prefetcher().pending == 1
    conns = Connections(migration_db, migration_db, migration_db)
    try:
        assert migrate_lazily(conns, NewUser(claimed_id, claimed_email, None, True, {}, REFERENCE_TIME), "lazy_login")
    finally:
        conns.close()
    with psycopg.connect(migration_db, autocommit=True) as conn:
        taken = conn.execute(
            """SELECT id::text, lower(email) FROM auth.users u
               WHERE id > %s::uuid AND id <= %s::uuid AND id <> %s::uuid AND deleted_at IS NULL
                 AND NOT coalesce(is_anonymous, false) AND banned_until IS NULL
                 AND email ~ '^[a-z0-9.]+@[a-z0-9]+\\.[a-z]+$'
                 AND NOT EXISTS (SELECT 1 FROM auth.users o WHERE lower(o.email) = lower(u.email) AND o.id <> u.id)
               ORDER BY id DESC LIMIT 1""",
            (second.after_id, second.upto_id, claimed_id),
        ).fetchone()
        assert taken is not None
        squatter = str(uuid.uuid4())
        conn.execute(
            """INSERT INTO "user" (id, name, email, "emailVerified", "createdAt", "updatedAt")
               VALUES (%s, 'squatter', %s, false, %s, %s)""",
            (squatter, taken[1], REFERENCE_TIME, REFERENCE_TIME),
        )

    result = process_batch(second, ctx)

    assert result.status == "done" and result.read_ahead  # the plan made before the login and the signup
    assert result.outcomes.get("already_migrated", 0) >= 1  # lost the claim to the login: not written twice
    assert result.outcomes.get("conflict:email_taken_in_target") == 1
    with psycopg.connect(migration_db) as conn:
        assert conn.execute(
            "SELECT source, migration_id FROM migrated_users WHERE original_id = %s", (claimed_id,)
        ).fetchone() == ("lazy_login", None)
        assert conn.execute('SELECT count(*) FROM "user" WHERE id = %s', (taken[0],)).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM migrated_users WHERE original_id = %s", (taken[0],)).fetchone() == (
            0,
        )
    # Nobody twice; the only Better-Auth user without a tracking row is the squatter.
    assert _duplicates(migration_db) == (0, 0, 1)
    inline_engine.queue.messages.extend(messages[2:])
    inline_engine.drain(ctx)
    assert migration_report(migration_id, ctx)["processed_count"] == 300


def test_a_batch_done_or_rolled_back_after_its_read_ahead_writes_nothing(
    inline_engine: InlineEngine, migration_db: str
) -> None:
    _generate(migration_db, 300)
    ctx = inline_engine.context()
    other = inline_engine.context()
    migration_id, messages = _start(inline_engine, ctx, 100)
    first, second, third = messages[:3]

    # A duplicate delivery of batch 2 runs elsewhere between the read-ahead and the lock.
    process_batch(first, ctx, next_msg=second)
    done_elsewhere = process_batch(second, other)
    assert done_elsewhere.status == "done"
    assert process_batch(second, ctx, next_msg=third).status == "duplicate"

    # A rollback commits between batch 3's read-ahead and its lock: batch 3 is ignored, writes nothing.
    rollback_migration(migration_id, other)
    before = _duplicates(migration_db)
    assert process_batch(third, ctx).status == "ignored"
    with psycopg.connect(migration_db) as conn:
        assert conn.execute('SELECT count(*) FROM "user"').fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM migrated_users").fetchone() == (0,)
    assert before == (0, 0, 0)


def test_a_read_ahead_that_fails_is_reported_and_the_batch_reads_for_itself(
    inline_engine: InlineEngine, migration_db: str
) -> None:
    _generate(migration_db, 200)
    logged: list[tuple[str, dict[str, object]]] = []
    ctx = inline_engine.context()
    ctx.log = lambda message, extra: logged.append((message, extra))
    migration_id, messages = _start(inline_engine, ctx, 100)
    first, second = messages[:2]
    # The read-ahead cannot connect (its database name is wrong for it); the batch's own connection is open.
    assert ctx.connections.state.execute("SELECT 1").fetchone() == (1,)
    good = ctx.connections.urls["state"]
    ctx.connections.urls["state"] = good.rsplit("/", 1)[0] + "/gone_" + uuid.uuid4().hex[:8]
    try:
        process_batch(first, ctx, next_msg=second)
        result = process_batch(second, ctx)
    finally:
        ctx.connections.urls["state"] = good

    assert result.status == "done" and result.users == 100 and not result.read_ahead
    assert any(message == "batch prefetch failed" for message, _ in logged)
    assert migration_report(migration_id, ctx)["status"].startswith("completed")


def test_only_the_shared_layout_reads_ahead(inline_engine: InlineEngine, migration_db: str) -> None:
    _generate(migration_db, 200)
    ctx = inline_engine.context()
    _migration_id, messages = _start(inline_engine, ctx, 100)
    ctx.connections.shared_target = False  # two databases: the batch records its intent first, no read-ahead

    prefetch_batch(messages[1], ctx)

    assert ctx.prefetcher().pending == 0
