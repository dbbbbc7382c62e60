"""The `supabase` target: legacy profiles -> GoTrue's admin API (the stand-in over a real `auth` schema),
exactly once over HTTP, rate-capped, with conflicts, rollback, dry run and a SIGKILL in the window
between the HTTP create and the tracking commit."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from auth_migration.connections import Connections
from auth_migration.engine import EngineContext, migration_report, process_batch, rollback_migration
from auth_migration.engine.plan import StartRequest, start_migration
from auth_migration.models import BatchMessage
from auth_migration.targets.supabase import GoTrueAdmin
from auth_migration_ops.datakit.supabase_data import (
    Manifest,
    create_supabase_schema,
    generate_profiles,
    generate_supabase_users,
)
from auth_migration_ops.standins.gotrue import GoTrueStandIn, LoggedRequest
from tests.integration.plugins.engine import InlineEngine
from tests.integration.test_engine import scalar
from tests.reference_time import REFERENCE_CLOCK, REFERENCE_TIME

WRITES = frozenset({"POST", "PUT", "DELETE", "PATCH"})


@dataclass
class Setup:
    url: str
    engine: InlineEngine
    gotrue: GoTrueStandIn
    manifest: Manifest
    #: Profiles whose password_hash the test cleared: they arrive without a password.
    no_hash: list[str]

    def context(self, **admin_options: Any) -> EngineContext:
        ctx = self.engine.context()
        options: dict[str, Any] = {"retry_base_s": 0.01, "retry_cap_s": 0.2, **admin_options}
        ctx.gotrue = GoTrueAdmin(f"{self.gotrue.url}/auth/v1", self.gotrue.service_key, **options)
        return ctx

    def start(self, ctx: EngineContext, **request: Any) -> str:
        started = start_migration(StartRequest(source="profiles", target="supabase", **request), ctx)
        return started.migration_id

    def gotrue_users(self) -> dict[str, dict[str, Any]]:
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                "SELECT id::text, email, encrypted_password, raw_user_meta_data, raw_app_meta_data,"
                " email_confirmed_at, updated_at FROM auth.users"
            ).fetchall()
        keys = ("email", "encrypted_password", "user_metadata", "app_metadata", "email_confirmed_at", "updated_at")
        return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows}

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.gotrue.service_key}", "apikey": self.gotrue.service_key}
        return httpx.request(method, f"{self.gotrue.url}/auth/v1{path}", json=body, headers=headers)


@pytest.fixture
def setup(
    migration_db: str, make_inline_engine: Callable[..., InlineEngine], start_gotrue: Callable[..., GoTrueStandIn]
) -> Setup:
    manifest = generate_profiles(
        migration_db, 80, seed=51, with_password_hash=True, bcrypt_rounds=4, reference_time=REFERENCE_TIME
    )
    no_hash = manifest.ids_by_case["normal"][:5]
    with psycopg.connect(migration_db) as conn:
        conn.execute("UPDATE public.profiles SET password_hash = NULL WHERE id = ANY(%s::uuid[])", (no_hash,))
    gotrue = start_gotrue(migration_db, seed=7)
    return Setup(migration_db, make_inline_engine(migration_db), gotrue, manifest, no_hash)


def valid_profile_ids(url: str) -> set[str]:
    """What the engine migrates from this data: every profile with a well-formed email."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            r"SELECT id::text FROM public.profiles WHERE email ~ '^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$'"
        ).fetchall()
    return {r[0] for r in rows}


def writes(log: list[LoggedRequest]) -> list[LoggedRequest]:
    return [r for r in log if r.method in WRITES]


def test_profiles_arrive_in_gotrue_with_ids_metadata_and_hashes(setup: Setup) -> None:
    ctx = setup.context()
    migration_id = setup.start(ctx, batch_size=20)
    setup.engine.drain(ctx)
    report = migration_report(migration_id, ctx)

    expected = valid_profile_ids(setup.url)
    users = setup.gotrue_users()
    assert set(users) == expected  # ids kept: GoTrue users carry the profiles' UUIDs
    assert report["status"] == "completed_with_errors"  # the invalid/missing emails, nothing else
    assert report["outcomes"]["migrated"] == len(expected)
    assert {e["code"] for e in report["errors_by_code"]} <= {"invalid_email", "missing_email"}
    with psycopg.connect(setup.url) as conn:
        profiles = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT id::text, lower(email), password_hash, first_name, username, created_at FROM public.profiles"
            )
        }
    for user_id, user in users.items():
        email, password_hash, first_name, username, created_at = profiles[user_id]
        assert user["email"] == email
        assert user["email_confirmed_at"] is not None
        assert user["encrypted_password"] == password_hash if password_hash else user["encrypted_password"]
        meta, app = user["user_metadata"], user["app_metadata"]
        assert meta["original_id"] == user_id and meta["migrated_from"] == "legacy_profiles"
        assert meta["username"] == (username.lower() if username else None)
        if first_name and first_name == first_name.lower():
            assert meta["first_name"] == first_name[:1].upper() + first_name[1:]
        assert meta["avatar_url"] is None or meta["avatar_url"].startswith(("http://", "https://"))
        assert app["provider"] == "migration" and app["migrated"] is True
        assert app["migration_date"] == REFERENCE_TIME.isoformat()  # the migration's as_of, not the clock
        assert app["original_created_at"] == created_at.isoformat()
        assert app["migration_id"] == migration_id
    # No password was ever sent, and the users without a hash are listed as needing a reset.
    assert report["needs_password_reset"] == {"count": 5, "user_ids": sorted(setup.no_hash)}
    assert scalar(setup.url, "SELECT count(*) FROM migrated_users WHERE migration_id = %s", migration_id) == len(
        expected
    )

    # A kept bcrypt hash signs in with the old password through GoTrue's password grant.
    credential = next(c for c in setup.manifest.credentials if c.user_id not in setup.no_hash)
    reply = httpx.post(
        f"{setup.gotrue.url}/auth/v1/token",
        params={"grant_type": "password"},
        json={"email": credential.email.lower(), "password": credential.password},
        headers={"apikey": setup.gotrue.anon_key},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["user"]["id"] == credential.user_id


def test_email_held_by_another_gotrue_id_is_a_conflict_and_untouched(setup: Setup) -> None:
    victim = setup.manifest.ids_by_case["normal"][10]
    with psycopg.connect(setup.url) as conn:
        (email,) = conn.execute("SELECT lower(email) FROM public.profiles WHERE id = %s", (victim,)).fetchone()  # type: ignore[misc]
    other_id = "0b7e7b1e-4c2d-4f7a-9a51-6d2f0b7a4c11"
    made = setup.admin("POST", "/admin/users", {"id": other_id, "email": email, "password": "their-own-password"})
    assert made.status_code == 200
    before = setup.gotrue_users()[other_id]

    ctx = setup.context()
    migration_id = setup.start(ctx, batch_size=20)
    setup.engine.drain(ctx)
    report = migration_report(migration_id, ctx)

    assert report["outcomes"]["conflict:email_taken_in_target"] == 1
    assert setup.gotrue_users()[other_id] == before  # never overwritten
    assert victim not in setup.gotrue_users()
    with psycopg.connect(setup.url) as conn:
        row = conn.execute(
            "SELECT error_kind, error_details FROM migration_errors WHERE migration_id = %s AND user_id = %s",
            (migration_id, victim),
        ).fetchone()
        tracked = conn.execute("SELECT count(*) FROM migrated_users WHERE original_id = %s", (victim,)).fetchone()
    assert row is not None and row[0] == "conflict" and row[1]["target_user_id"] == other_id
    assert tracked == (0,)  # never adopted


def test_rate_limited_gotrue_completes_with_zero_errors_under_the_cap(setup: Setup) -> None:
    with psycopg.connect(setup.url) as conn:  # only valid users here: any error would be the limiter's
        conn.execute(r"DELETE FROM public.profiles WHERE email IS NULL OR email !~ '^[^@ ]+@[^@ ]+\.[a-z]{2,}$'")
    setup.gotrue.faults.rate_limit_share = 0.2
    setup.gotrue.faults.retry_after = "0.3"
    cap = 40
    ctx = setup.context()
    migration_id = setup.start(ctx, batch_size=25, max_requests_per_s=cap)
    setup.engine.drain(ctx)
    report = migration_report(migration_id, ctx)

    log = [r for r in setup.gotrue.request_log if r.path.startswith("/admin/users")]
    assert report["error_count"] == 0 and report["status"] == "completed"
    assert report["outcomes"] == {"migrated": len(setup.gotrue_users())}
    limited = [r for r in log if r.status == 429]
    assert len(limited) > 0.1 * len(log)  # the stand-in did refuse about a fifth
    # Under the cap in every one-second window (evenly spaced slots: at most cap + 1).
    times = sorted(r.at for r in log)
    worst = max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))
    assert worst <= cap + 1
    # Retry-After honoured: a refused create is not sent again sooner.
    for refused in (r for r in limited if r.method == "POST"):
        later = [r.at for r in log if r.method == "POST" and r.user_id == refused.user_id and r.at > refused.at]
        assert later and min(later) - refused.at >= 0.3 - 0.02
    # Exactly once: one successful create per user.
    created = Counter(r.user_id for r in log if r.method == "POST" and r.status == 200)
    assert set(created.values()) == {1} and len(created) == len(setup.gotrue_users())


def test_two_containers_running_one_migration_share_its_cap(setup: Setup) -> None:
    """MigrateBatch runs several containers at once: the cap is the migration's, not each container's
    (two containers with a cap of their own each would send about twice the cap)."""
    with psycopg.connect(setup.url) as conn:
        conn.execute(r"DELETE FROM public.profiles WHERE email IS NULL OR email !~ '^[^@ ]+@[^@ ]+\.[a-z]{2,}$'")
    cap = 30
    containers = [setup.context(), setup.context()]
    migration_id = setup.start(containers[0], batch_size=5, max_requests_per_s=cap)
    queue, lock = setup.engine.queue, threading.Lock()

    def drain(ctx: EngineContext) -> None:
        while True:
            with lock:
                if not queue.messages:
                    return
                msg = queue.messages.pop(0)
            process_batch(msg, ctx)

    threads = [threading.Thread(target=drain, args=(ctx,)) for ctx in containers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    report = migration_report(migration_id, containers[0])
    assert report["status"] == "completed" and report["error_count"] == 0
    assert all(getattr(ctx.limiters[migration_id], "blocks", 0) > 0 for ctx in containers)  # both took part
    times = sorted(r.at for r in setup.gotrue.request_log if r.path.startswith("/admin/users"))
    worst = max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))
    assert worst <= cap + 1
    # And the cap is used, not divided: about one second per `cap` requests (generous for a busy machine).
    assert times[-1] - times[0] <= len(times) / cap * 2 + 1


def test_rollback_removes_exactly_this_migrations_users_and_survives_twice(setup: Setup) -> None:
    adoptable = setup.manifest.ids_by_case["normal"][20]
    with psycopg.connect(setup.url) as conn:
        (email,) = conn.execute("SELECT lower(email) FROM public.profiles WHERE id = %s", (adoptable,)).fetchone()  # type: ignore[misc]
    assert setup.admin("POST", "/admin/users", {"id": adoptable, "email": email}).status_code == 200
    native = setup.admin("POST", "/admin/users", {"email": "native.user@example.org", "password": "secret-123"})
    native_id = native.json()["id"]

    ctx = setup.context()
    migration_id = setup.start(ctx, batch_size=20)
    setup.engine.drain(ctx)
    report = migration_report(migration_id, ctx)
    assert report["outcomes"]["adopted"] == 1
    created = report["outcomes"]["migrated"]

    first = rollback_migration(migration_id, ctx)
    assert first.status == "rolled_back" and first.users_deleted == created
    assert set(setup.gotrue_users()) == {adoptable, native_id}  # adopted and native users untouched
    deletes = len([r for r in setup.gotrue.request_log if r.method == "DELETE"])

    second = rollback_migration(migration_id, ctx)
    assert second.status == "rolled_back" and second.users_deleted == 0
    assert set(setup.gotrue_users()) == {adoptable, native_id}
    assert len([r for r in setup.gotrue.request_log if r.method == "DELETE"]) == deletes  # nothing left to ask
    assert scalar(setup.url, "SELECT count(*) FROM migrated_users WHERE migration_id = %s", migration_id) == 0


def test_dry_run_writes_nothing_and_predicts_the_real_run(setup: Setup) -> None:
    victim = setup.manifest.ids_by_case["normal"][3]
    with psycopg.connect(setup.url) as conn:
        (email,) = conn.execute("SELECT lower(email) FROM public.profiles WHERE id = %s", (victim,)).fetchone()  # type: ignore[misc]
    assert setup.admin("POST", "/admin/users", {"email": email, "password": "their-own-password"}).status_code == 200
    setup.gotrue.request_log.clear()

    ctx = setup.context()
    dry_id = setup.start(ctx, batch_size=20, dry_run=True)
    setup.engine.drain(ctx)
    dry = migration_report(dry_id, ctx)
    predicted = dry["outcomes"]
    assert writes(setup.gotrue.request_log) == []
    assert len(setup.gotrue_users()) == 1

    real_id = setup.start(ctx, batch_size=20)
    setup.engine.drain(ctx)
    real = migration_report(real_id, ctx)
    assert real["outcomes"] == predicted
    assert predicted["conflict:email_taken_in_target"] == 1
    # Who will need a reset or a magic link is known before anything is written (the victim among them
    # is a conflict: it is not created at all).
    no_password = sorted(set(setup.no_hash) - {victim})
    assert dry["needs_password_reset"] == {"count": len(no_password), "user_ids": [], "predicted": True}
    assert real["needs_password_reset"]["count"] == len(no_password)
    assert sorted(real["needs_password_reset"]["user_ids"]) == no_password
    assert dry["flags"] == real["flags"] and dry["flags"]["needs_password_reset"] == len(no_password)


# --- a real SIGKILL between GoTrue's create and the tracking commit ---------------------------------

_WORKER = """
import json, sys
from datetime import datetime
from auth_migration.clock import fixed_clock
from auth_migration.connections import Connections
from auth_migration.engine import EngineContext, process_batch
from auth_migration.models import BatchMessage
from auth_migration.targets.supabase import GoTrueAdmin
url, gotrue_url, key, body, at = sys.argv[1:6]
ctx = EngineContext(connections=Connections(url, url, url), clock=fixed_clock(datetime.fromisoformat(at)),
                    gotrue=GoTrueAdmin(gotrue_url, key, retry_base_s=0.01))
print(process_batch(BatchMessage(**json.loads(body)), ctx), flush=True)
"""


def _kill_worker(setup: Setup, message: BatchMessage, *, creates_before_kill: int | None) -> None:
    """Run `message` in a child and SIGKILL it: with creates_before_kill None, once every create is done
    and its tracking insert waits on a lock the test holds; else after that many creates succeeded."""
    args = [
        sys.executable,
        "-c",
        _WORKER,
        setup.url,
        f"{setup.gotrue.url}/auth/v1",
        setup.gotrue.service_key,
        json.dumps(asdict(message)),
        REFERENCE_TIME.isoformat(),
    ]

    def successful_creates() -> int:
        return sum(1 for r in list(setup.gotrue.request_log) if r.method == "POST" and r.status == 200)

    with psycopg.connect(setup.url) as blocker:
        if creates_before_kill is None:
            blocker.execute("LOCK TABLE migrated_users IN EXCLUSIVE MODE")  # reads pass, the tracking insert waits
        child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert child.poll() is None, child.stdout.read() if child.stdout else ""
                assert time.monotonic() < deadline, "the worker never reached the kill point"
                if creates_before_kill is None and _waiting_to_track(setup.url):
                    break
                if creates_before_kill is not None and successful_creates() >= creates_before_kill:
                    break
                time.sleep(0.005)
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _waiting_to_track(setup.url) or _batch_locked(setup.url, message):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _waiting_to_track(url: str) -> int:
    return scalar(
        url,
        """SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
           AND wait_event_type = 'Lock' AND query LIKE '%%INSERT INTO migrated_users%%'""",
    )


def _batch_locked(url: str, message: BatchMessage) -> bool:
    try:
        with psycopg.connect(url) as conn:
            conn.execute("SET lock_timeout = '50ms'")
            conn.execute(
                "SELECT 1 FROM migration_batches WHERE migration_id = %s AND batch_no = %s FOR UPDATE",
                (message.migration_id, message.batch_no),
            )
    except psycopg.errors.LockNotAvailable:
        return True
    return False


@pytest.mark.parametrize("kill_point", ["before_tracking_commit", "random_create"])
def test_sigkill_between_create_and_tracking_then_resume_is_exactly_once(setup: Setup, kill_point: str) -> None:
    setup.gotrue.faults.delay_s = 0.01  # the HTTP phase lasts long enough to be hit at random
    ctx = setup.context()
    migration_id = setup.start(ctx, batch_size=40)
    messages = list(setup.engine.queue.messages)
    setup.engine.queue.messages.clear()
    first = messages[0]
    creates = None if kill_point == "before_tracking_commit" else random.Random(kill_point).randrange(3, 30)
    _kill_worker(setup, first, creates_before_kill=creates)
    in_gotrue = len(setup.gotrue_users())
    assert in_gotrue >= (creates or 30)  # the killed batch did create users, and nothing tracks them
    assert scalar(setup.url, "SELECT count(*) FROM migrated_users") == 0

    # SQS redelivers the killed batch; the rest arrive as usual.
    for message in messages:
        assert process_batch(message, ctx).status == "done"
    report = migration_report(migration_id, ctx)

    expected = valid_profile_ids(setup.url)
    assert set(setup.gotrue_users()) == expected
    assert report["outcomes"]["migrated"] == len(expected)
    assert {e["code"] for e in report["errors_by_code"]} <= {"invalid_email", "missing_email"}  # nothing spurious
    assert scalar(setup.url, "SELECT count(*) FROM migrated_users WHERE created_target") == len(expected)
    created = Counter(r.user_id for r in setup.gotrue.request_log if r.method == "POST" and r.status == 200)
    assert set(created.values()) == {1}  # no user was created twice
    assert scalar(setup.url, "SELECT count(*) FROM migration_batches WHERE pending_create IS NOT NULL") == 0

    # And its rollback still finds every one of them.
    assert rollback_migration(migration_id, ctx).users_deleted == len(expected)
    assert setup.gotrue_users() == {}


# --- the SQS path: MigrationControl -> SQS (moto) -> MigrateBatch, both from template.yaml ----------


@pytest.mark.slow
def test_profiles_reach_gotrue_through_the_sqs_path(
    migration_db: str, start_gotrue: Callable[..., GoTrueStandIn]
) -> None:
    from auth_migration_ops.local.pipeline import LocalPipeline
    from tests.reference_time import live_reference_time

    generate_profiles(
        migration_db, 120, seed=52, with_password_hash=True, bcrypt_rounds=4, reference_time=live_reference_time()
    )
    gotrue = start_gotrue(migration_db, seed=3)
    gotrue.faults.rate_limit_share = 0.1
    gotrue.faults.retry_after = "0.1"
    env = {"SUPABASE_URL": gotrue.url, "SUPABASE_SERVICE_KEY": gotrue.service_key}
    database_urls = {"OLD_DATABASE_URL": migration_db, "NEW_DATABASE_URL": migration_db}
    with LocalPipeline(database_urls, concurrency=2, extra_env=env) as pipeline:
        started = pipeline.control(
            {"action": "start", "source": "profiles", "target": "supabase", "batch_size": 25, "max_requests_per_s": 200}
        )
        assert started["ok"], started
        pipeline.run_batches(started["migration_id"], timeout_s=120)
        report = pipeline.control({"action": "status", "migration_id": started["migration_id"]})
        assert pipeline.dlq_depth() == 0

    expected = valid_profile_ids(migration_db)
    assert report["outcomes"]["migrated"] == len(expected)
    assert {e["code"] for e in report["errors_by_code"]} <= {"invalid_email", "missing_email"}
    with psycopg.connect(migration_db) as conn:
        rows = conn.execute(
            "SELECT u.id::text, u.encrypted_password = p.password_hash, u.raw_app_meta_data->>'migration_id'"
            " FROM auth.users u JOIN public.profiles p ON p.id = u.id"
        ).fetchall()
    assert {r[0] for r in rows} == expected
    assert all(r[1] for r in rows) and {r[2] for r in rows} == {started["migration_id"]}


def test_supabase_users_keep_their_running_bans_and_status_rows_in_the_target(
    migration_db: str,
    make_database: Callable[[], str],
    make_inline_engine: Callable[..., InlineEngine],
    start_gotrue: Callable[..., GoTrueStandIn],
) -> None:
    """Supabase -> Supabase (one project into another): a ban still running at the migration's as_of is
    carried as ban_duration, so the user stays banned exactly as long; user_migration_status says where
    every user stands, and a rollback says it back."""
    source_url = make_database()
    create_supabase_schema(source_url)
    manifest = generate_supabase_users(source_url, 60, seed=77, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    banned = manifest.ids_by_case["banned"]
    gotrue = start_gotrue(migration_db, seed=5, clock=REFERENCE_CLOCK)
    engine = make_inline_engine(migration_db)
    conns = Connections(migration_db, source_url, migration_db)
    ctx = EngineContext(connections=conns, queue=engine.queue, retry_base_s=0.01, clock=REFERENCE_CLOCK)
    ctx.gotrue = GoTrueAdmin(f"{gotrue.url}/auth/v1", gotrue.service_key, retry_base_s=0.01)
    engine.contexts.append(ctx)

    migration_id = start_migration(StartRequest(source="supabase", target="supabase", batch_size=20), ctx).migration_id
    engine.drain(ctx)
    report = migration_report(migration_id, ctx)

    assert "skipped:banned" not in report["outcomes"]
    with psycopg.connect(source_url) as conn:
        source_bans: dict[str, datetime | None] = dict(
            conn.execute(
                "SELECT id::text, banned_until FROM auth.users WHERE id = ANY(%s::uuid[])", (banned,)
            ).fetchall()
        )
    with psycopg.connect(migration_db) as conn:
        target_bans: dict[str, datetime | None] = dict(
            conn.execute(
                "SELECT id::text, banned_until FROM auth.users WHERE id = ANY(%s::uuid[])", (banned,)
            ).fetchall()
        )
        status: dict[str, int] = dict(
            conn.execute(
                "SELECT state || ':' || supabase_migrated || ':' || better_auth_migrated, count(*)"
                " FROM user_migration_status WHERE migration_id = %s GROUP BY 1",
                (migration_id,),
            ).fetchall()
        )
    running = {i for i, until in source_bans.items() if until is not None and until > REFERENCE_TIME}
    assert running, "the generated data has bans still running at the reference time"
    for user_id in running:
        carried, original = target_bans[user_id], source_bans[user_id]
        assert carried is not None and original is not None
        # Whole seconds, rounded up: never a second early.
        assert timedelta(0) <= carried - original < timedelta(seconds=1)
    tracked = scalar(migration_db, "SELECT count(*) FROM migrated_users WHERE migration_id = %s", migration_id)
    assert status == {"migrated_bulk:true:false": tracked}

    rollback_migration(migration_id, ctx)
    after = scalar(
        migration_db,
        "SELECT count(*) FROM user_migration_status WHERE migration_id = %s AND state = 'rolled_back'"
        " AND NOT supabase_migrated",
        migration_id,
    )
    assert after == tracked
