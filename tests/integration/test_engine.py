"""The bulk engine end to end on real Postgres: exactly once, atomic per user, dry run, rollback."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import psycopg
import pytest

from auth_migration.clock import fixed_clock
from auth_migration.engine import migration_report, process_batch, resume_migration, rollback_migration
from auth_migration.engine.plan import StartRequest, start_migration
from auth_migration.exceptions import InvalidRequest, NotFound
from auth_migration_ops.datakit.supabase_data import Manifest, generate_supabase_users
from tests.integration.plugins.engine import InlineEngine
from tests.reference_time import REFERENCE_SHIFTS, REFERENCE_TIME

#: The documented outcome of every case the generator writes (see docs/OUTCOMES.md).
EXPECTED_OUTCOME = {
    "normal": "migrated",
    "case_duplicate": "conflict:email_case_duplicate",
    "soft_deleted": "skipped:soft_deleted",
    "banned": "skipped:banned",
    "ban_expired": "migrated",
    "anonymous": "skipped:anonymous",
    "phone_only": "skipped:phone_only",
    "oauth_only": "migrated",
    "unconfirmed": "migrated",
    "odd_metadata": "migrated",
    "huge_metadata": "migrated",
    "invalid_email": "invalid:invalid_email",
    "missing_email": "invalid:missing_email",
    "test_user": "migrated",
    "uppercase_email": "migrated",
}


def expected_counts(manifest: Manifest, overrides: dict[str, str] | None = None) -> Counter[str]:
    outcome = {**EXPECTED_OUTCOME, **(overrides or {})}
    counts: Counter[str] = Counter()
    for case, n in manifest.counts.items():
        counts[outcome[case]] += n
    return counts


def scalar(url: str, query: str, *params: object) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query.encode(), params or None).fetchone()
        assert row is not None
        return int(row[0])


def run(engine: InlineEngine, **kwargs: object) -> dict[str, object]:
    ctx = engine.context()
    started = start_migration(StartRequest(**kwargs), ctx)  # type: ignore[arg-type]
    engine.drain(ctx)
    return migration_report(started.migration_id, ctx)


def test_every_user_gets_its_documented_outcome(inline_engine: InlineEngine) -> None:
    manifest = generate_supabase_users(inline_engine.url, 600, seed=1, bcrypt_rounds=4, reference_time=REFERENCE_TIME)

    report = run(inline_engine, batch_size=50)

    assert report["status"] == "completed_with_errors"
    assert report["processed_count"] == manifest.total
    assert dict(report["outcomes"]) == dict(expected_counts(manifest))  # type: ignore[call-overload]
    migrated = expected_counts(manifest)["migrated"]
    assert scalar(inline_engine.url, "SELECT count(*) FROM migrated_users") == migrated
    assert scalar(inline_engine.url, 'SELECT count(*) FROM "user"') == migrated
    assert scalar(inline_engine.url, 'SELECT count(*) FROM "user" u JOIN migrated_users m ON m.new_auth_id = u.id') == (
        migrated
    )


def test_users_keep_ids_emails_lowercased_and_oauth_identities_become_accounts(inline_engine: InlineEngine) -> None:
    manifest = generate_supabase_users(inline_engine.url, 300, seed=2, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    run(inline_engine)

    upper_id = manifest.ids_by_case["uppercase_email"][0]
    with psycopg.connect(inline_engine.url) as conn:
        (email,) = conn.execute('SELECT email FROM "user" WHERE id = %s', (upper_id,)).fetchone()  # type: ignore[misc]
        assert email == email.lower()
        source_oauth = conn.execute(
            "SELECT count(*) FROM auth.identities i JOIN migrated_users m ON m.original_id = i.user_id::text "
            "WHERE i.provider <> 'email'"
        ).fetchone()
        target_oauth = conn.execute("SELECT count(*) FROM account WHERE \"providerId\" <> 'credential'").fetchone()
        assert source_oauth == target_oauth
        assert target_oauth and target_oauth[0] > 0
        hashes_equal = conn.execute(
            """SELECT count(*) FILTER (WHERE a.password = u.encrypted_password), count(*)
               FROM account a JOIN auth.users u ON u.id::text = a."userId" WHERE a."providerId" = 'credential'"""
        ).fetchone()
        assert hashes_equal is not None and hashes_equal[0] == hashes_equal[1] > 0


def test_a_second_migration_of_the_same_source_creates_nothing(inline_engine: InlineEngine) -> None:
    generate_supabase_users(inline_engine.url, 400, seed=3, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    first = run(inline_engine, batch_size=64)
    users_after_first = scalar(inline_engine.url, 'SELECT count(*) FROM "user"')
    accounts_after_first = scalar(inline_engine.url, "SELECT count(*) FROM account")

    second = run(inline_engine, batch_size=64)

    assert scalar(inline_engine.url, 'SELECT count(*) FROM "user"') == users_after_first
    assert scalar(inline_engine.url, "SELECT count(*) FROM account") == accounts_after_first
    assert second["outcomes"]["already_migrated"] == first["outcomes"]["migrated"]  # type: ignore[index]
    assert "migrated" not in second["outcomes"]  # type: ignore[operator]


def test_every_batch_delivered_twice_concurrently_creates_no_duplicate(inline_engine: InlineEngine) -> None:
    manifest = generate_supabase_users(inline_engine.url, 500, seed=4, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    ctx = inline_engine.context()
    started = start_migration(StartRequest(batch_size=25), ctx)
    messages = list(inline_engine.queue.messages)
    inline_engine.queue.messages.clear()
    errors: list[BaseException] = []

    def worker() -> None:
        wctx = inline_engine.context()
        try:
            for msg in messages:
                process_batch(msg, wctx)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    report = migration_report(started.migration_id, ctx)
    migrated = expected_counts(manifest)["migrated"]
    assert report["status"] == "completed_with_errors"
    assert report["processed_count"] == manifest.total  # counted once although delivered twice
    assert scalar(inline_engine.url, 'SELECT count(*) FROM "user"') == migrated
    assert scalar(inline_engine.url, "SELECT count(*) FROM migrated_users") == migrated


def test_dry_run_writes_nothing_and_predicts_the_real_run(inline_engine: InlineEngine) -> None:
    generate_supabase_users(inline_engine.url, 500, seed=5, bcrypt_rounds=4, reference_time=REFERENCE_TIME)

    dry = run(inline_engine, dry_run=True, batch_size=40)

    assert scalar(inline_engine.url, 'SELECT count(*) FROM "user"') == 0
    assert scalar(inline_engine.url, "SELECT count(*) FROM account") == 0
    assert scalar(inline_engine.url, "SELECT count(*) FROM migrated_users") == 0
    real = run(inline_engine, batch_size=40)
    assert dry["outcomes"] == real["outcomes"]
    assert dry["error_count"] == real["error_count"]


def test_test_users_are_invalid_in_production_only(make_inline_engine, migration_db: str) -> None:
    manifest = generate_supabase_users(migration_db, 300, seed=6, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    engine = make_inline_engine(migration_db, stage="prod")

    report = run(engine)

    assert report["outcomes"] == dict(expected_counts(manifest, {"test_user": "invalid:test_user_in_production"}))
    with psycopg.connect(migration_db) as conn:
        rows = conn.execute("SELECT user_id, error_code FROM migration_errors WHERE error_kind = 'invalid'")
        reasons: dict[str, str] = dict(rows.fetchall())
    for user_id in manifest.ids_by_case["test_user"]:
        assert reasons[user_id] == "test_user_in_production"
    for user_id in manifest.ids_by_case["invalid_email"]:
        assert reasons[user_id] == "invalid_email"


def test_a_user_whose_write_fails_leaves_no_partial_rows_and_blocks_no_one(inline_engine: InlineEngine) -> None:
    manifest = generate_supabase_users(inline_engine.url, 200, seed=7, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    victim = manifest.credentials[0].user_id
    with psycopg.connect(inline_engine.url, autocommit=True) as conn:
        # Fails the victim's account insert after its user row went in: the user must vanish too.
        conn.execute(
            f"""CREATE FUNCTION refuse_victim() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN IF NEW."userId" = '{victim}' THEN
                    RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END IF;
                RETURN NEW; END $$;
                CREATE TRIGGER refuse_victim BEFORE INSERT ON account FOR EACH ROW EXECUTE FUNCTION refuse_victim();"""
        )

    report = run(inline_engine)

    assert scalar(inline_engine.url, 'SELECT count(*) FROM "user" WHERE id = %s', victim) == 0
    assert scalar(inline_engine.url, "SELECT count(*) FROM migrated_users WHERE original_id = %s", victim) == 0
    assert scalar(inline_engine.url, "SELECT count(*) FROM migration_errors WHERE user_id = %s", victim) == 1
    assert report["outcomes"]["migrated"] == expected_counts(manifest)["migrated"] - 1  # type: ignore[index]


def test_rollback_removes_exactly_the_users_of_that_migration(inline_engine: InlineEngine) -> None:
    generate_supabase_users(inline_engine.url, 200, seed=8, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    first = run(inline_engine)
    first_users = scalar(inline_engine.url, 'SELECT count(*) FROM "user"')
    # Users arriving later are migrated by a second migration; one more user signs up natively.
    generate_supabase_users(
        inline_engine.url, 100, seed=9, edge_cases=False, bcrypt_rounds=4, reference_time=REFERENCE_TIME
    )
    second = run(inline_engine)
    with psycopg.connect(inline_engine.url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO "user" (id, name, email, "emailVerified", "createdAt", "updatedAt")
               VALUES ('native-1', 'Native', 'native@example.org', true, now(), now())"""
        )
    second_users = scalar(
        inline_engine.url, "SELECT count(*) FROM migrated_users WHERE migration_id = %s", second["migration_id"]
    )
    assert second_users == 100

    result = rollback_migration(str(first["migration_id"]), inline_engine.context())

    assert result.users_deleted == first_users
    assert scalar(inline_engine.url, 'SELECT count(*) FROM "user"') == second_users + 1
    assert (
        scalar(inline_engine.url, "SELECT count(*) FROM migrated_users WHERE migration_id = %s", first["migration_id"])
        == 0
    )
    assert (
        scalar(
            inline_engine.url,
            'SELECT count(*) FROM account a LEFT JOIN "user" u ON u.id = a."userId" WHERE u.id IS NULL',
        )
        == 0
    )
    report = migration_report(str(first["migration_id"]), inline_engine.context())
    assert report["status"] == "rolled_back"


def add_users_after_the_plan(url: str, n: int) -> None:
    """Users whose ids sort after every planned batch (e.g. signed up while the migration ran)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO auth.users (id, email, encrypted_password, email_confirmed_at, created_at, updated_at,
                                       raw_user_meta_data, raw_app_meta_data)
               SELECT ('ffffffff-ffff-4fff-8fff-' || lpad(g::text, 12, '0'))::uuid, 'late' || g || '@example.org',
                      encrypted_password, now(), now(), now(), '{}', '{}'
               FROM generate_series(1, %s) g, (SELECT encrypted_password FROM auth.users
                                               WHERE encrypted_password <> '' LIMIT 1) p""",
            (n,),
        )


def test_resume_plans_users_added_past_the_plan_and_skips_finished_batches(inline_engine: InlineEngine) -> None:
    generate_supabase_users(
        inline_engine.url, 150, seed=10, edge_cases=False, bcrypt_rounds=4, reference_time=REFERENCE_TIME
    )
    first = run(inline_engine, batch_size=50)
    add_users_after_the_plan(inline_engine.url, 30)
    ctx = inline_engine.context()

    resumed = resume_migration(str(first["migration_id"]), ctx)
    results = inline_engine.drain(ctx)

    report = migration_report(str(first["migration_id"]), ctx)
    assert report["status"] == "completed"
    assert scalar(inline_engine.url, 'SELECT count(*) FROM "user"') == 180
    assert resumed.batches_planned == 1
    assert [r.users for r in results] == [30]  # only the new batch ran


def test_a_new_start_catches_users_created_inside_finished_ranges(inline_engine: InlineEngine) -> None:
    generate_supabase_users(
        inline_engine.url, 150, seed=12, edge_cases=False, bcrypt_rounds=4, reference_time=REFERENCE_TIME
    )
    run(inline_engine, batch_size=50)
    generate_supabase_users(
        inline_engine.url, 30, seed=13, edge_cases=False, bcrypt_rounds=4, reference_time=REFERENCE_TIME
    )  # random ids

    again = run(inline_engine, batch_size=50)

    assert again["outcomes"] == {"already_migrated": 150, "migrated": 30}
    assert scalar(inline_engine.url, 'SELECT count(*) FROM "user"') == 180


def test_bad_requests_write_nothing(inline_engine: InlineEngine) -> None:
    ctx = inline_engine.context()
    for bad in (StartRequest(batch_size=0), StartRequest(batch_size=10_001), StartRequest(source="nope")):
        with pytest.raises(InvalidRequest):
            start_migration(bad, ctx)
    with pytest.raises(NotFound):
        migration_report("mig_unknown", ctx)
    assert scalar(inline_engine.url, "SELECT count(*) FROM migration_states") == 0


@pytest.mark.parametrize("shift", REFERENCE_SHIFTS, ids=lambda d: f"{d.days:+d}d")
def test_bans_are_judged_as_of_the_migrations_start_wherever_that_lies(migration_db: str, shift: timedelta) -> None:
    """A year back, none, a year forward: the same data made for instant R and migrated with the clock at
    R gets the same outcomes. Any read of the real clock in the judgement breaks one of the three."""
    reference = REFERENCE_TIME + shift
    manifest = generate_supabase_users(migration_db, 300, seed=14, bcrypt_rounds=4, reference_time=reference)
    engine = InlineEngine(migration_db, clock=fixed_clock(reference))
    try:
        report = run(engine, batch_size=50)
    finally:
        engine.close()

    assert dict(report["outcomes"]) == dict(expected_counts(manifest))  # type: ignore[call-overload]
    with psycopg.connect(migration_db) as conn:
        row = conn.execute("SELECT as_of FROM migration_states WHERE id = %s", (report["migration_id"],)).fetchone()
    assert row == (reference,)


def test_a_batch_run_long_after_the_start_judges_as_of_the_start(inline_engine: InlineEngine) -> None:
    """Every ban in the data has ended 100 days after the reference; a batch delivered (or resumed) then
    still judges as of the migration's start, so one migration never reaches two verdicts."""
    manifest = generate_supabase_users(inline_engine.url, 300, seed=15, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    started = start_migration(StartRequest(batch_size=50), inline_engine.context())
    later = InlineEngine(
        inline_engine.url, queue=inline_engine.queue, clock=fixed_clock(REFERENCE_TIME + timedelta(days=100))
    )
    try:
        later.drain()
        resume_migration(started.migration_id, later.context())
        later.drain()
        report = migration_report(started.migration_id, later.context())
    finally:
        later.close()

    assert report["outcomes"]["skipped:banned"] == manifest.counts["banned"]
    assert dict(report["outcomes"]) == dict(expected_counts(manifest))
