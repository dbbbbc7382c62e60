"""Two databases (state apart from Better-Auth): a batch killed between its target commit and its
tracking commit, then only `rollback`, or a second `start` first, must leave the target exactly as it
was; a rollback racing a live batch must wait for it.

The kill is real: a child process runs the batch and gets SIGKILL while its tracking insert waits on
a table lock the test holds, that is after Better-Auth committed and before the state did.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
import pytest

from auth_migration.engine import migration_report, process_batch, rollback_migration
from auth_migration.engine.plan import StartRequest, start_migration
from auth_migration.models import BatchMessage
from auth_migration_ops.datakit.supabase_data import generate_supabase_users
from tests.integration.plugins.engine import InlineEngine, create_better_auth_schema, prepare_migration_db
from tests.integration.test_engine import scalar
from tests.reference_time import REFERENCE_TIME

# One MigrateBatch invocation in a process of its own, two databases, clock pinned like the tests'.
_WORKER = """
import json, sys
from auth_migration.clock import fixed_clock
from auth_migration.connections import Connections
from auth_migration.engine import EngineContext, process_batch
from auth_migration.models import BatchMessage
from datetime import datetime
state_url, target_url, body, at = sys.argv[1:5]
clock = fixed_clock(datetime.fromisoformat(at))
ctx = EngineContext(connections=Connections(state_url, state_url, target_url), clock=clock)
print(process_batch(BatchMessage(**json.loads(body)), ctx), flush=True)
"""


@dataclass
class TwoDatabases:
    state_url: str
    target_url: str
    engine: InlineEngine

    def target_snapshot(self) -> tuple[list[tuple[str, str]], list[str]]:
        with psycopg.connect(self.target_url) as conn:
            users = conn.execute('SELECT id, email FROM "user" ORDER BY id').fetchall()
            accounts = conn.execute("SELECT id FROM account ORDER BY id").fetchall()
        return [(str(i), str(e)) for i, e in users], [str(a) for (a,) in accounts]


@pytest.fixture
def two_databases(make_database: Callable[[], str], make_inline_engine: Callable[..., InlineEngine]) -> TwoDatabases:
    state_url, target_url = make_database(), make_database()
    prepare_migration_db(state_url)
    create_better_auth_schema(target_url)
    manifest = generate_supabase_users(
        state_url, 200, seed=41, edge_cases=False, bcrypt_rounds=4, reference_time=REFERENCE_TIME
    )
    # Better-Auth already holds users before the migration: one of them is a source user (same id
    # and email: adopted, never deleted), one is a native Better-Auth user.
    adoptable = manifest.ids_by_case["normal"][120]
    with psycopg.connect(state_url) as conn:
        (email,) = conn.execute("SELECT lower(email) FROM auth.users WHERE id = %s", (adoptable,)).fetchone()  # type: ignore[misc]
    with psycopg.connect(target_url) as conn:
        conn.execute(
            """INSERT INTO "user" (id, name, email, "emailVerified", "createdAt", "updatedAt")
               VALUES (%s, 'Adopted', %s, true, %s, %s), ('native-1', 'Native', 'native@example.org', true, %s, %s)""",
            (adoptable, email, *[REFERENCE_TIME] * 4),
        )
    engine = make_inline_engine(state_url, target_url=target_url)
    assert not engine.context().connections.shared_target
    return TwoDatabases(state_url, target_url, engine)


def kill_between_target_and_tracking_commits(db: TwoDatabases, message: BatchMessage) -> int:
    """Run `message` in a child process and SIGKILL it once Better-Auth committed its users and the
    tracking insert is waiting; returns how many users the batch left in Better-Auth."""
    before = scalar(db.target_url, 'SELECT count(*) FROM "user"')
    with psycopg.connect(db.state_url) as blocker:
        blocker.execute("LOCK TABLE migrated_users IN EXCLUSIVE MODE")  # reads pass, the tracking insert waits
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                db.state_url,
                db.target_url,
                json.dumps(asdict(message)),
                REFERENCE_TIME.isoformat(),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not (backend := _backend_waiting_to_track(db.state_url)):
                assert child.poll() is None, child.stdout.read() if child.stdout else ""
                assert time.monotonic() < deadline, "the worker never reached its tracking insert"
                time.sleep(0.02)
            written = scalar(db.target_url, 'SELECT count(*) FROM "user"') - before
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
    # The blocker is gone: the orphaned backend finishes its statement, finds its client dead, aborts.
    deadline = time.monotonic() + 30
    while scalar(db.state_url, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", backend):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert scalar(db.state_url, "SELECT count(*) FROM migration_batches WHERE pending_create IS NOT NULL") == 1
    return written


def rows(url: str, query: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query.encode(), params or None).fetchall()


def _backend_waiting_to_track(state_url: str) -> int:
    """The server process of a tracking insert waiting on a lock (0: none yet)."""
    return scalar(
        state_url,
        """SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE datname = current_database()
           AND wait_event_type = 'Lock' AND query LIKE '%%INSERT INTO migrated_users%%'""",
    )


def start_and_interrupt(db: TwoDatabases) -> tuple[str, int, int]:
    """Start a migration, run its first batch, kill its second in the window; the rest never runs.
    Returns the migration id and how many users each batch created in Better-Auth."""
    ctx = db.engine.context()
    started = start_migration(StartRequest(batch_size=50), ctx)
    first, second, *_ = db.engine.queue.messages
    db.engine.queue.messages.clear()
    done = process_batch(first, ctx)
    assert done.status == "done"
    written = kill_between_target_and_tracking_commits(db, second)
    assert written > 40  # the killed batch did write (50 users, less any the target already held)
    return started.migration_id, done.outcomes.get("migrated", 0), written


def test_rollback_alone_removes_what_a_killed_batch_wrote(two_databases: TwoDatabases) -> None:
    db = two_databases
    before = db.target_snapshot()
    migration_id, first, written = start_and_interrupt(db)

    result = rollback_migration(migration_id, db.engine.context())

    assert result.status == "rolled_back"
    assert result.users_deleted == first + written  # the finished batch and the killed one
    assert db.target_snapshot() == before
    assert scalar(db.state_url, "SELECT count(*) FROM migrated_users") == 0
    assert scalar(db.state_url, "SELECT count(*) FROM migration_batches WHERE pending_create IS NOT NULL") == 0
    # Run again (an operator who is not sure): nothing more to do, same end.
    assert rollback_migration(migration_id, db.engine.context()).users_deleted == 0
    assert db.target_snapshot() == before


def test_a_second_start_before_the_rollback_does_not_adopt_the_leftovers(two_databases: TwoDatabases) -> None:
    db = two_databases
    before = db.target_snapshot()
    first_id, first, written = start_and_interrupt(db)
    created = first + written
    tracked = scalar(db.state_url, "SELECT count(*) FROM migrated_users WHERE migration_id = %s", first_id)

    ctx = db.engine.context()
    second = start_migration(StartRequest(batch_size=50), ctx)
    db.engine.drain(ctx)
    report = migration_report(second.migration_id, ctx)
    outcomes = report["outcomes"]

    assert outcomes["recovered:created_by_earlier_intent"] == written
    assert outcomes["already_migrated"] == tracked  # the first batch, finished by the first migration
    assert sum(outcomes.values()) == report["processed_count"] == 200
    assert (
        scalar(db.state_url, "SELECT count(*) FROM migrated_users WHERE migration_id = %s AND created_target", first_id)
        == created
    )
    second_created = {
        str(r[0])
        for r in rows(
            db.state_url,
            "SELECT original_id FROM migrated_users WHERE migration_id = %s AND created_target",
            second.migration_id,
        )
    }

    # Rolling back the first migration removes exactly what it created, the killed batch included ...
    assert rollback_migration(first_id, ctx).users_deleted == created
    assert {i for i, _ in db.target_snapshot()[0]} == {i for i, _ in before[0]} | second_created
    # ... and the second's rollback the rest: the target is as it was before both.
    rollback_migration(second.migration_id, ctx)
    assert db.target_snapshot() == before


def test_a_rollback_waits_for_a_live_batch_writing_the_target(two_databases: TwoDatabases) -> None:
    """A worker alive but slow inside its target write holds its batch row: the rollback waits, then
    deletes what it wrote too, and nothing is left behind."""
    db = two_databases
    before = db.target_snapshot()
    ctx = db.engine.context()
    started = start_migration(StartRequest(batch_size=50), ctx)
    message = db.engine.queue.messages.pop(0)
    db.engine.queue.messages.clear()
    worker_ctx, rollback_ctx = db.engine.context(), db.engine.context()
    outcome: dict[str, Any] = {}

    with psycopg.connect(db.target_url) as blocker:
        blocker.execute('LOCK TABLE "user" IN EXCLUSIVE MODE')  # the worker's insert waits here
        worker = threading.Thread(target=lambda: outcome.update(batch=process_batch(message, worker_ctx)))
        worker.start()
        deadline = time.monotonic() + 30
        while not scalar(
            db.target_url,
            """SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
               AND wait_event_type = 'Lock' AND query LIKE '%%INSERT INTO "user"%%'""",
        ):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        rollback = threading.Thread(
            target=lambda: outcome.update(rollback=rollback_migration(started.migration_id, rollback_ctx))
        )
        rollback.start()
        time.sleep(0.5)
        assert rollback.is_alive(), "the rollback must wait for the batch in flight"
    worker.join(30)
    rollback.join(30)

    assert not worker.is_alive()
    assert not rollback.is_alive()
    assert outcome["batch"].status == "done"
    assert outcome["rollback"].users_deleted == outcome["batch"].outcomes.get("migrated")
    assert db.target_snapshot() == before
    assert scalar(db.state_url, "SELECT count(*) FROM migrated_users") == 0
