"""The bulk engine's fast paths decide exactly as the plain ones (bench/README.md says why they exist).

- Where the state shares the source's database, a batch's read marks already-migrated users and only
  counts those that are also plainly valid (SupabaseSource.fetch_pending): a re-run must report the
  same outcomes as the plain path (fetch_range, then one look-up in migrated_users), including for
  users migrated earlier and changed since (deleted, banned, anonymous, email broken or now a test
  account in prod).
- validation.plainly_valid_sql is never true for a user classify() stops.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from auth_migration.engine import migration_report
from auth_migration.engine.plan import StartRequest, start_migration
from auth_migration.models import SourceUser
from auth_migration.sources.supabase import SupabaseSource
from auth_migration.validation import DEFAULT_TEST_USER_RE, ValidationPolicy, classify, plainly_valid_sql
from auth_migration_ops.datakit.supabase_data import generate_supabase_users
from tests.integration.plugins.engine import InlineEngine
from tests.reference_time import REFERENCE_TIME


def run(engine: InlineEngine, *, shared_source: bool = True, **kwargs: object) -> dict[str, object]:
    ctx = engine.context()
    ctx.connections.shared_source = shared_source
    started = start_migration(StartRequest(**kwargs), ctx)  # type: ignore[arg-type]
    engine.drain(ctx)
    return migration_report(started.migration_id, ctx)


def migrated_ids(url: str, n: int) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT original_id FROM migrated_users WHERE created_target ORDER BY original_id LIMIT %s", (n,)
        ).fetchall()
    return [r[0] for r in rows]


def change_migrated_users(url: str) -> dict[str, str]:
    """Change some users after their migration; returns id -> what was done to it."""
    ids = migrated_ids(url, 9)
    # Times are relative to the instant the engine judges against (its pinned clock), never now().
    changes = {
        "UPDATE auth.users SET deleted_at = %(ref)s WHERE id = %(id)s": "soft_deleted",
        "UPDATE auth.users SET banned_until = %(ref)s + interval '1 day' WHERE id = %(id)s": "banned",
        "UPDATE auth.users SET banned_until = %(ref)s - interval '1 day' WHERE id = %(id)s": "ban_expired",
        "UPDATE auth.users SET is_anonymous = true WHERE id = %(id)s": "anonymous",
        "UPDATE auth.users SET email = 'not an email' WHERE id = %(id)s": "invalid_email",
        "UPDATE auth.users SET email = ' ' || email || E'\\n' WHERE id = %(id)s": "padded_email",
        "UPDATE auth.users SET email = upper(email) WHERE id = %(id)s": "uppercase_email",
        "UPDATE auth.users SET email = 'qa+TEST7@example.org' WHERE id = %(id)s": "test_email",
        "UPDATE auth.users SET email = NULL, phone = '+15550100' WHERE id = %(id)s": "phone_only",
    }
    done: dict[str, str] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for (statement, what), user_id in zip(changes.items(), ids, strict=True):
            conn.execute(statement.encode(), {"ref": REFERENCE_TIME, "id": user_id})
            done[user_id] = what
    return done


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_rerun_decides_exactly_as_the_plain_path(make_inline_engine, migration_db: str, stage: str) -> None:
    manifest = generate_supabase_users(migration_db, 400, seed=21, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    engine = make_inline_engine(migration_db, stage=stage)
    first = run(engine, batch_size=64)
    changed = change_migrated_users(migration_db)

    fast = run(engine, batch_size=64)
    plain = run(engine, batch_size=64, shared_source=False)

    assert fast["outcomes"] == plain["outcomes"]
    assert fast["processed_count"] == plain["processed_count"] == manifest.total
    outcomes = fast["outcomes"]
    assert isinstance(outcomes, dict)
    assert outcomes["skipped:soft_deleted"] == manifest.counts["soft_deleted"] + 1
    assert outcomes["skipped:anonymous"] == manifest.counts["anonymous"] + 1
    assert outcomes["skipped:phone_only"] == manifest.counts["phone_only"] + 1
    test_users = 1 if stage == "prod" else 0  # the changed one; the generated ones were never migrated in prod
    assert outcomes.get("invalid:test_user_in_production", 0) == (
        manifest.counts["test_user"] + test_users if stage == "prod" else 0
    )
    # Migrated users still valid (ban expired, padded or upper-case email...) stay already_migrated.
    first_outcomes = first["outcomes"]
    assert isinstance(first_outcomes, dict)
    assert outcomes["already_migrated"] == first_outcomes["migrated"] - (6 if stage == "prod" else 5)
    with psycopg.connect(migration_db) as conn:
        rows = conn.execute(
            "SELECT user_id, error_code FROM migration_errors WHERE migration_id = %s", (fast["migration_id"],)
        ).fetchall()
    reasons: dict[str, str] = dict(rows)
    by_change = {what: user_id for user_id, what in changed.items()}
    assert reasons[by_change["soft_deleted"]] == "soft_deleted"
    assert reasons[by_change["banned"]] == "banned"
    assert reasons[by_change["invalid_email"]] == "invalid_email"
    for still_fine in ("ban_expired", "padded_email", "uppercase_email"):
        assert by_change[still_fine] not in reasons


def test_fetch_pending_returns_or_counts_every_user_once(inline_engine: InlineEngine) -> None:
    generate_supabase_users(inline_engine.url, 300, seed=22, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    run(inline_engine, batch_size=50)
    source = SupabaseSource()
    policy = ValidationPolicy(now=REFERENCE_TIME)
    with psycopg.connect(inline_engine.url, autocommit=True) as conn:
        upto = conn.execute("SELECT max(id::text) FROM auth.users").fetchone()
        assert upto is not None
        everyone = source.fetch_range(conn, None, upto[0])
        marked = source.fetch_range(conn, None, upto[0], with_migrated=True)
        pending, counted = source.fetch_pending(conn, None, upto[0], policy)
        migrated = {r[0] for r in conn.execute("SELECT original_id FROM migrated_users")}

    assert [u.id for u in marked] == [u.id for u in everyone] == sorted(u.id for u in everyone)
    assert {u.id for u in marked if u.migrated} == migrated & {u.id for u in everyone}
    assert len(pending) + counted == len(everyone)
    assert counted > 0
    assert [u.id for u in pending] == sorted(u.id for u in pending)
    full = {u.id: u for u in everyone}
    for user in pending:
        if not user.migrated:  # not migrated: read in full, exactly as fetch_range reads it
            assert user.identities == full[user.id].identities
            assert user.user_metadata == full[user.id].user_metadata
            assert user.password_hash == full[user.id].password_hash
        else:  # migrated but not plainly valid (classify() decides): read without migration-only columns
            assert user.user_metadata is None
            assert user.password_hash is None


EMAILS = [
    "ana@example.com",
    "Ana.Lopez+promo@Example.CO",
    "a@b.cd",
    " ana@example.com",
    "ana@example.com ",
    "ana@example.com\n",
    "ana@example.com\t",
    "ana@exa mple.com",
    "ana@example.c",
    "ana@example.c0m",
    "ana@@example.com",
    "@example.com",
    "ana@.com",
    "ana@example",
    "anä@example.com",
    "ana@exämple.com",
    "\u212aevin@example.com",  # Kelvin sign
    "ana@example.\u212a\u212a",
    "x" * 240 + "@example.com",
    "x" * 243 + "@example.com",
    "test@example.com",
    "TEST1@example.com",
    "qa+test2@example.com",
    "load.test@example.com",
    "contest@example.com",
    "greatest.hits@example.com",
    "ana%test@example.com",
    "ana_%@example.com",
    "",
    "'; DROP TABLE x; --@example.com",
]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_plainly_valid_sql_never_passes_a_user_classify_stops(migration_db: str, stage: str) -> None:
    now = REFERENCE_TIME
    policy = ValidationPolicy(stage=stage, now=now)
    condition = plainly_valid_sql(
        policy, user_id="id", email="email", deleted_at="deleted_at", is_anonymous="anon", banned_until="banned"
    )
    assert condition is not None
    cases = [
        (f"u{i}-{j}", email, deleted, anon, banned)
        for i, email in enumerate(EMAILS)
        for j, (deleted, anon, banned) in enumerate(
            [
                (None, False, None),
                (now, False, None),
                (None, True, None),
                (None, False, now + timedelta(days=1)),
                (None, False, now - timedelta(days=1)),
            ]
        )
    ]
    with psycopg.connect(migration_db) as conn:
        rows = conn.execute(
            f"""SELECT id, coalesce({condition.replace("%", "%%")}, false)
                FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::bool[], %s::timestamptz[])
                    AS t(id, email, deleted_at, anon, banned)""".encode(),
            [[c[k] for c in cases] for k in range(5)],
        ).fetchall()
    plain: dict[str, bool] = dict(rows)
    passed = 0
    for user_id, email, deleted, anon, banned in cases:
        user = SourceUser(id=user_id, email=email or None, deleted_at=deleted, is_anonymous=anon, banned_until=banned)
        if plain[user_id]:
            passed += 1
            assert classify(user, policy) is None, (email, deleted, anon, banned)
    assert passed >= 4  # ordinary users do take the fast path
    assert plain["u0-0"]  # ana@example.com, live


def test_a_custom_test_user_pattern_in_prod_disables_the_shortcut() -> None:
    columns = {"user_id": "id", "email": "e", "deleted_at": "d", "is_anonymous": "a", "banned_until": "b"}
    assert (
        plainly_valid_sql(ValidationPolicy(stage="prod", test_user_re=re.compile("qa"), now=REFERENCE_TIME), **columns)
        is None
    )
    assert plainly_valid_sql(
        ValidationPolicy(stage="prod", test_user_re=DEFAULT_TEST_USER_RE, now=REFERENCE_TIME), **columns
    )
    assert plainly_valid_sql(
        ValidationPolicy(stage="dev", test_user_re=re.compile("qa"), now=REFERENCE_TIME), **columns
    )


def test_bans_are_carried_over_by_the_one_statement_write_when_the_target_has_ban_columns(
    inline_engine: InlineEngine,
) -> None:
    manifest = generate_supabase_users(inline_engine.url, 200, seed=23, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    with psycopg.connect(inline_engine.url, autocommit=True) as conn:
        conn.execute('ALTER TABLE "user" ADD COLUMN banned boolean, ADD COLUMN "banReason" text')
        conn.execute('ALTER TABLE "user" ADD COLUMN "banExpires" timestamptz')

    report = run(inline_engine, batch_size=32)

    outcomes = report["outcomes"]
    assert isinstance(outcomes, dict)
    assert "skipped:banned" not in outcomes
    banned_ids = manifest.ids_by_case["banned"]
    assert banned_ids
    with psycopg.connect(inline_engine.url) as conn:
        rows = conn.execute(
            """SELECT b.id, b.banned, b."banReason", b."banExpires" = u.banned_until
               FROM "user" b JOIN auth.users u ON u.id::text = b.id WHERE b.id = ANY(%s)""",
            (list(banned_ids),),
        ).fetchall()
        others = conn.execute('SELECT count(*) FROM "user" WHERE banned AND NOT (id = ANY(%s))', (banned_ids,))
        assert others.fetchone() == (0,)
    assert sorted(r[0] for r in rows) == sorted(banned_ids)
    assert all(r[1] is True and r[2] == "migrated from Supabase" and r[3] for r in rows)


# ------------------------------------------------------------------ batches settled at planning time
# Where the state shares the source's database, `start` records as done (never sends) every batch whose
# users a batch would all only count (migrated and plainly valid). Nothing else may differ.

BATCH_COLUMNS = "batch_no, after_id, upto_id, status, attempts, user_count, outcomes, pending_create"
REPORT_KEYS = (
    "status",
    "processed_count",
    "error_count",
    "last_processed_id",
    "batches_total",
    "batches_done",
    "batches_failed",
    "batches_pending",
    "outcomes",
    "migrated",
    "errors_by_code",
)


def rerun(
    engine: InlineEngine, *, skip: bool = True, shared_source: bool = True, batch_size: int = 8
) -> tuple[dict[str, object], list[int], list[tuple[object, ...]]]:
    """A start + drain; returns the report, the batch numbers sent and the migration_batches rows."""
    import auth_migration.engine.plan as plan_module

    ctx = engine.context()
    ctx.connections.shared_source = shared_source
    saved = plan_module.SKIP_SETTLED_BATCHES
    plan_module.SKIP_SETTLED_BATCHES = skip
    try:
        started = start_migration(StartRequest(batch_size=batch_size), ctx)
    finally:
        plan_module.SKIP_SETTLED_BATCHES = saved
    sent = [m.batch_no for m in engine.queue.messages]
    assert len(sent) == started.batches_enqueued
    engine.drain(ctx)
    report = migration_report(started.migration_id, ctx)
    with psycopg.connect(engine.url) as conn:
        rows = conn.execute(
            f"SELECT {BATCH_COLUMNS} FROM migration_batches WHERE migration_id = %s ORDER BY batch_no".encode(),
            (started.migration_id,),
        ).fetchall()
        errors = conn.execute(
            """SELECT user_id, batch_no, error_kind, error_code FROM migration_errors WHERE migration_id = %s
               ORDER BY user_id""",
            (started.migration_id,),
        ).fetchall()
    report["error_rows"] = errors
    return report, sent, rows


def same_result(a: dict[str, object], b: dict[str, object]) -> None:
    for key in (*REPORT_KEYS, "error_rows"):
        assert a[key] == b[key], key


def only_migrated_users_left(url: str) -> int:
    """Drop every source user the first run did not migrate (a source of ordinary, migrated users)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM auth.identities WHERE user_id::text NOT IN (SELECT original_id FROM migrated_users)")
        conn.execute("DELETE FROM auth.users WHERE id::text NOT IN (SELECT original_id FROM migrated_users)")
        # An expired ban is migrated but never plainly valid (classify() decides): lift it.
        conn.execute("UPDATE auth.users SET banned_until = NULL WHERE banned_until IS NOT NULL")
        row = conn.execute("SELECT count(*) FROM auth.users").fetchone()
    assert row is not None
    return int(row[0])


def batch_of(rows: list[tuple[object, ...]], user_id: str) -> int:
    for no, after, upto, *_ in rows:
        assert isinstance(upto, str)
        if (after is None or str(after) < user_id) and user_id <= upto:
            assert isinstance(no, int)
            return no
    raise AssertionError(user_id)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_rerun_settles_batches_at_planning_with_exactly_the_batch_paths_result(
    make_inline_engine, migration_db: str, stage: str
) -> None:
    manifest = generate_supabase_users(migration_db, 400, seed=24, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    engine = make_inline_engine(migration_db, stage=stage)
    run(engine, batch_size=64)
    change_migrated_users(migration_db)

    fast, fast_sent, fast_rows = rerun(engine)
    plain, plain_sent, plain_rows = rerun(engine, skip=False)

    same_result(fast, plain)
    assert fast_rows == plain_rows
    assert fast["processed_count"] == manifest.total
    assert fast["status"] == "completed_with_errors"
    assert len(plain_sent) == plain["batches_total"]
    assert 0 < len(fast_sent) < len(plain_sent)  # some batches settled at planning, the others sent
    settled = [row for row in fast_rows if row[0] not in fast_sent]
    assert all(row[3] == "done" and row[4] == 1 and row[6] == {"already_migrated": row[5]} for row in settled)


def test_a_rerun_with_every_batch_settled_completes_at_planning(inline_engine: InlineEngine) -> None:
    generate_supabase_users(inline_engine.url, 150, seed=25, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    run(inline_engine, batch_size=32)
    users = only_migrated_users_left(inline_engine.url)

    ctx = inline_engine.context()
    started = start_migration(StartRequest(batch_size=16), ctx)

    assert inline_engine.queue.messages == []
    assert started.batches_enqueued == 0
    assert started.status == "completed"
    report = migration_report(started.migration_id, ctx)
    assert report["outcomes"] == {"already_migrated": users}
    assert report["processed_count"] == users
    assert report["batches_done"] == report["batches_total"] == started.batches_planned == -(-users // 16)
    assert report["completed_at"] is not None

    fast, _, fast_rows = rerun(inline_engine, batch_size=16)
    plain, _, plain_rows = rerun(inline_engine, batch_size=16, skip=False)
    same_result(fast, plain)
    assert fast_rows == plain_rows


@pytest.mark.parametrize(
    "change",
    [
        "DELETE FROM migrated_users WHERE original_id = %s",  # not migrated (any more): the batch adopts it
        "UPDATE auth.users SET deleted_at = '2020-01-01' WHERE id = %s",  # migrated, soft-deleted since
        "UPDATE auth.users SET email = ' ' || email WHERE id = %s",  # migrated, no longer plainly valid
    ],
)
def test_a_range_with_anything_to_decide_is_sent(inline_engine: InlineEngine, change: str) -> None:
    generate_supabase_users(inline_engine.url, 150, seed=26, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    run(inline_engine, batch_size=32)
    only_migrated_users_left(inline_engine.url)
    user_id = migrated_ids(inline_engine.url, 40)[-1]
    with psycopg.connect(inline_engine.url, autocommit=True) as conn:
        conn.execute(change.encode(), (user_id,))

    report, sent, rows = rerun(inline_engine, batch_size=16)

    assert sent == [batch_of(rows, user_id)]
    assert report["status"] in ("completed", "completed_with_errors")
    assert report["batches_done"] == report["batches_total"]
    outcomes = report["outcomes"]
    assert isinstance(outcomes, dict)
    assert sum(outcomes.values()) == report["processed_count"]
    assert outcomes["already_migrated"] == report["processed_count"] - (0 if "email" in change else 1)


def test_two_databases_send_every_batch(inline_engine: InlineEngine) -> None:
    generate_supabase_users(inline_engine.url, 150, seed=27, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    run(inline_engine, batch_size=32)
    only_migrated_users_left(inline_engine.url)

    apart, apart_sent, apart_rows = rerun(inline_engine, batch_size=16, shared_source=False)
    shared, shared_sent, shared_rows = rerun(inline_engine, batch_size=16)

    assert len(apart_sent) == apart["batches_total"]
    assert apart_sent
    assert shared_sent == []
    same_result(apart, shared)
    assert apart_rows == shared_rows


# ------------------------------------------------------- a re-run's batches read only what planning named
# Planning names, per range, the users a batch still has to decide (not migrated, or migrated but no longer
# plainly valid); when they are few the batch reads them by id and counts the rest, else its whole range.


def planned_decisions(url: str, migration_id: str) -> dict[int, tuple[list[str] | None, int | None]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT batch_no, decide_only, counted FROM migration_batches WHERE migration_id = %s",
            (migration_id,),
        ).fetchall()
    return {no: (only, counted) for no, only, counted in rows}


def range_users(url: str, rows: list[tuple[object, ...]], batch_no: int) -> list[str]:
    _, after, upto, *_ = next(row for row in rows if row[0] == batch_no)
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT id::text FROM auth.users WHERE (%s::uuid IS NULL OR id > %s::uuid) AND id <= %s::uuid ORDER BY id",
            (after, after, upto),
        ).fetchall()
    return [r[0] for r in found]


@pytest.mark.parametrize("undecided", [1, 4, 5])
def test_a_batch_reads_only_the_users_planning_named(inline_engine: InlineEngine, undecided: int) -> None:
    generate_supabase_users(inline_engine.url, 150, seed=28, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    run(inline_engine, batch_size=32)
    only_migrated_users_left(inline_engine.url)
    _, _, before = rerun(inline_engine, batch_size=16)
    target_batch = before[2][0]
    assert isinstance(target_batch, int)
    members = range_users(inline_engine.url, before, target_batch)
    assert len(members) == 16
    changed = members[3 : 3 + undecided]
    with psycopg.connect(inline_engine.url, autocommit=True) as conn:
        # Migrated but no longer plainly valid (classify() still lets them through), and one soft-deleted since.
        conn.execute("UPDATE auth.users SET email = ' ' || email WHERE id = ANY(%s::uuid[])", (changed[1:],))
        conn.execute("UPDATE auth.users SET deleted_at = %s WHERE id = %s", (REFERENCE_TIME, changed[0]))

    fast, fast_sent, fast_rows = rerun(inline_engine, batch_size=16)
    migration_id = fast["migration_id"]
    plain, _, plain_rows = rerun(inline_engine, batch_size=16, skip=False)

    same_result(fast, plain)
    assert fast_rows == plain_rows
    assert fast_sent == [target_batch]
    assert isinstance(migration_id, str)
    decided = planned_decisions(inline_engine.url, migration_id)
    # 16 // 4 = 4 users at most are named per range; past that the batch reads its whole range.
    expected = (sorted(changed), 16 - undecided) if undecided <= 4 else (None, None)
    assert decided[target_batch] == expected
    assert all(value == (None, None) for no, value in decided.items() if no != target_batch)
    outcomes = fast["outcomes"]
    assert isinstance(outcomes, dict)
    assert outcomes["skipped:soft_deleted"] == 1
    processed = fast["processed_count"]
    assert isinstance(processed, int)
    assert outcomes["already_migrated"] == processed - 1


def test_a_rerun_finds_the_email_conflicts_of_the_users_it_decides(
    inline_engine: InlineEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = generate_supabase_users(inline_engine.url, 150, seed=29, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    assert manifest.counts["case_duplicate"] > 0
    run(inline_engine, batch_size=32)
    twin_of = migrated_ids(inline_engine.url, 1)[0]
    with psycopg.connect(inline_engine.url, autocommit=True) as conn:
        # A new user whose email is a migrated user's in other case: it conflicts with a user nobody decides.
        conn.execute(
            """INSERT INTO auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                                       raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
               SELECT instance_id, gen_random_uuid(), aud, role, upper(email), encrypted_password, email_confirmed_at,
                      raw_app_meta_data, raw_user_meta_data, created_at, updated_at
               FROM auth.users WHERE id = %s""",
            (twin_of,),
        )

    asked: list[list[str] | None] = []
    collisions = SupabaseSource.email_collisions

    def spy(
        self: SupabaseSource, conn: psycopg.Connection, among: list[str] | None = None
    ) -> Iterator[tuple[str, list[str]]]:
        asked.append(None if among is None else list(among))
        return collisions(self, conn, among)

    monkeypatch.setattr(SupabaseSource, "email_collisions", spy)
    # 128 users a range: at most 32 named per range, more than the users the first run left undecided.
    fast, fast_sent, _ = rerun(inline_engine, batch_size=128)
    plain, plain_sent, _ = rerun(inline_engine, batch_size=128, skip=False)

    # The re-run looked among the users its batches decide (the twin, the unmigrated case duplicates...);
    # the plain path, which plans no settled ranges, among everyone.
    assert asked[0] is not None and asked[1] is None
    assert 0 < len(asked[0]) <= 64
    same_result(fast, plain)
    assert len(fast_sent) == len(plain_sent)

    def conflicts(migration_id: object) -> list[tuple[str, list[str]]]:
        with psycopg.connect(inline_engine.url) as conn:
            rows = conn.execute(
                """SELECT email_lower, user_ids FROM migration_email_conflicts WHERE migration_id = %s
                   ORDER BY email_lower""",
                (migration_id,),
            ).fetchall()
        return [(email, sorted(ids)) for email, ids in rows]

    found = conflicts(fast["migration_id"])
    assert found == conflicts(plain["migration_id"])
    assert any(twin_of in ids for _, ids in found)
    assert len(found) == manifest.counts["case_duplicate"] // 2 + 1
