"""The SQS path end to end: MigrationControl -> SQS (moto) -> MigrateBatch, both from template.yaml.

Proves the issue's acceptance points on real parts: exact counts with original ids, sign-in through
the real Better-Auth server with the original passwords, OAuth accounts, and exactly-once after a
worker is SIGKILLed mid-batch and the migration resumed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from auth_migration_ops.datakit.supabase_data import generate_supabase_users
from auth_migration_ops.local.aws import put_parameters
from auth_migration_ops.local.pipeline import LocalPipeline
from auth_migration_ops.standins.better_auth import BetterAuthServer, sign_in
from tests.integration.test_engine import expected_counts
from tests.reference_time import live_reference_time

pytestmark = pytest.mark.slow


def urls(url: str) -> dict[str, str]:
    return {"OLD_DATABASE_URL": url, "NEW_DATABASE_URL": url, "BETTER_AUTH_DATABASE_URL": url}


def one(url: str, query: str) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query.encode()).fetchone()
        assert row is not None
        return row[0]


def test_users_migrated_through_sqs_keep_ids_and_sign_in_with_their_passwords(
    migration_db: str, better_auth_installed: None, start_better_auth: Callable[..., BetterAuthServer]
) -> None:
    manifest = generate_supabase_users(
        migration_db, 1500, seed=21, credentials_sample=12, reference_time=live_reference_time()
    )
    expected = expected_counts(manifest)

    with LocalPipeline(urls(migration_db), concurrency=2) as pipeline:
        started = pipeline.control({"action": "start", "source": "supabase", "batch_size": 100})
        assert started["ok"], started
        pipeline.run_batches(started["migration_id"], timeout_s=300)
        report = pipeline.control({"action": "status", "migration_id": started["migration_id"]})
        assert pipeline.dlq_depth() == 0

    assert report["status"] == "completed_with_errors"
    assert report["outcomes"] == dict(expected)
    migrated = expected["migrated"]
    assert one(migration_db, "SELECT count(*) FROM migrated_users") == migrated
    assert one(migration_db, 'SELECT count(*) FROM "user" u JOIN auth.users s ON s.id::text = u.id') == migrated
    assert one(
        migration_db,
        "SELECT count(*) FROM auth.identities i JOIN migrated_users m ON m.original_id = i.user_id::text "
        "WHERE i.provider <> 'email'",
    ) == one(migration_db, "SELECT count(*) FROM account WHERE \"providerId\" NOT IN ('credential')")

    server = start_better_auth(migration_db, migrate=False)
    for cred in manifest.credentials:
        reply = sign_in(server.base_url, cred.email, cred.password)
        assert reply.status_code == 200, reply.text
        assert reply.json()["user"]["id"] == cred.user_id
    wrong = sign_in(server.base_url, manifest.credentials[0].email, "not-the-password")
    assert wrong.status_code == 401


def test_worker_killed_mid_batch_then_resumed_migrates_everyone_exactly_once(migration_db: str) -> None:
    manifest = generate_supabase_users(
        migration_db, 600, seed=22, bcrypt_rounds=4, reference_time=live_reference_time()
    )
    migrated = expected_counts(manifest)["migrated"]
    with psycopg.connect(migration_db, autocommit=True) as conn:
        # Slow every user insert so that the kill lands inside an open batch transaction.
        conn.execute(
            """CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$;
               CREATE TRIGGER slow_down BEFORE INSERT ON "user" FOR EACH ROW EXECUTE FUNCTION slow_down();"""
        )

    with LocalPipeline(urls(migration_db), concurrency=1, visibility_timeout_s=3) as pipeline:
        started = pipeline.control({"action": "start", "source": "supabase", "batch_size": 50})
        assert pipeline.queue is not None and pipeline.aws is not None
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "auth_migration_ops.local.worker",
                "--endpoint-url",
                pipeline.aws.endpoint_url,
                "--queue-url",
                pipeline.queue.url,
                "--queue-arn",
                pipeline.queue.arn,
            ],
            env={**os.environ, **pipeline.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while one(migration_db, "SELECT batches_done FROM migration_states") < 2:
                assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.3)  # well inside the next batch (~1 s of inserts)
            busy = one(
                migration_db,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND (state = 'idle in transaction' OR (state = 'active' AND query LIKE '%INSERT INTO \"user\"%'))",
            )
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert busy >= 1, "the kill should land inside a batch transaction"
        done_before = one(migration_db, "SELECT batches_done FROM migration_states")
        assert done_before < one(migration_db, "SELECT batches_total FROM migration_states")

        resumed = pipeline.control({"action": "resume", "migration_id": started["migration_id"]})
        assert resumed["ok"], resumed
        pipeline.run_batches(started["migration_id"], timeout_s=300)
        report = pipeline.control({"action": "status", "migration_id": started["migration_id"]})

    assert report["status"] == "completed_with_errors"
    assert report["processed_count"] == manifest.total
    assert one(migration_db, 'SELECT count(*) FROM "user"') == migrated
    assert one(migration_db, "SELECT count(*) FROM migrated_users") == migrated
    assert one(migration_db, "SELECT count(*) - count(DISTINCT id) FROM account") == 0


def test_the_ssm_dry_run_flag_makes_a_plain_start_a_dry_run(migration_db: str) -> None:
    generate_supabase_users(migration_db, 120, seed=23, bcrypt_rounds=4, reference_time=live_reference_time())
    with LocalPipeline(urls(migration_db), concurrency=1) as pipeline:
        assert pipeline.aws is not None
        put_parameters(pipeline.aws.client("ssm"), "/auth-migration/dev", {"DRY_RUN": "true"})
        started = pipeline.control({"action": "start", "source": "supabase"})
        pipeline.run_batches(started["migration_id"], timeout_s=120)
        report = pipeline.control({"action": "status", "migration_id": started["migration_id"]})

    assert report["dry_run"] is True
    assert report["processed_count"] == 120
    assert one(migration_db, 'SELECT count(*) FROM "user"') == 0
    assert one(migration_db, "SELECT count(*) FROM migrated_users") == 0
