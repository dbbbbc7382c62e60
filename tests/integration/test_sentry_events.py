"""What Sentry receives, captured through the SDK's own transport interface (no network): real signups, logins,
fallbacks, gaps and outages through the API layer over the REAL service (the scenario of
test_auth_api_secrets.py, on the same DualWriteStack), a migration batch through MigrateBatch's SQS handler,
and AutoRollback runs. Checked: the reference document's tags, contexts, error names and fingerprints,
breadcrumbs, spans' data, the cron check-ins and their schedule (the template's), and that no secret the
secrets test collects (passwords, both databases' hashes, tokens, GoTrue's keys and JWT secret, Better-Auth's
secret) appears in any envelope, nor any email (hashed by default)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr
from sentry_sdk import scope as sentry_scope
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from auth_migration.backends.base import BETTER_AUTH, SUPABASE
from auth_migration.connections import Connections
from auth_migration.dual_write.api import handle_api_event
from auth_migration.engine.plan import StartRequest, start_migration
from auth_migration.rollout.auto_worker import handle_schedule
from auth_migration.sentry import (
    AUTO_ROLLBACK_MONITOR_SLUG,
    AUTO_ROLLBACK_SCHEDULE,
    BATCH_PHASES,
    close_sentry,
    init_sentry,
    monitor_schedule,
)
from auth_migration.settings import Settings
from auth_migration_ops.datakit.supabase_data import generate_supabase_users
from auth_migration_ops.local.invoke import load_event
from auth_migration_ops.local.template import load_template
from tests.integration.plugins.dual_write import DualWriteStack
from tests.integration.plugins.engine import InlineEngine
from tests.integration.test_auth_api_secrets import (
    BETTER_AUTH_TEST_SECRET,
    CONTEXT,
    LOGIN,
    SIGNUP,
    Reply,
    Run,
    _scenario,
    app_for,
    event,
)
from tests.reference_time import REFERENCE_TIME

ROOT = Path(__file__).resolve().parents[2]
DSN = "https://0123456789abcdef0123456789abcdef@o0.ingest.sentry.invalid/1"
BATCH_EVENT = load_event(ROOT / "events" / "migrate_batch" / "batch.json")
PHASE_2_CANARY = {
    "MIGRATION_MODE": "dual_write",
    "USE_BETTER_AUTH": "false",
    "CANARY_ENABLED": "true",
    "CANARY_PERCENTAGE": "10",
    "ROLLBACK_MIN_SAMPLE": "100",
}


# --- capturing what the SDK would send -----------------------------------------------------------------


class CapturingTransport(Transport):
    """The SDK's transport interface, keeping every envelope instead of sending it."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def items(self, kind: str) -> list[dict[str, Any]]:
        """The JSON payloads of every item of `kind` (event, transaction, check_in), in order."""
        found: list[dict[str, Any]] = []
        for envelope in self.envelopes:
            for item in envelope.items:
                payload = item.payload.json
                if item.type == kind and isinstance(payload, dict):
                    found.append(payload)
        return found

    def texts(self) -> list[str]:
        """Every envelope exactly as it would go on the wire."""
        return [envelope.serialize().decode("utf-8", "replace") for envelope in self.envelopes]


def reset_sentry_scopes() -> None:
    """sentry-python's own test idiom (its conftest's clean_scopes): no scope outlives a test."""
    sentry_scope._global_scope = None
    sentry_scope._isolation_scope.set(None)
    sentry_scope._current_scope.set(None)


@pytest.fixture
def sentry_transport() -> Iterator[CapturingTransport]:
    reset_sentry_scopes()
    transport = CapturingTransport()
    settings = Settings(sentry_dsn=SecretStr(DSN), sentry_traces_sample_rate=1.0, stage="dev")
    assert init_sentry(settings, transport=transport)
    try:
        yield transport
    finally:
        close_sentry()
        reset_sentry_scopes()


def exception_of(event: dict[str, Any]) -> dict[str, Any]:
    (value, *_causes) = reversed(event["exception"]["values"])  # Sentry lists the outermost last
    return dict(value)


def leaks(transport: CapturingTransport, secrets: dict[str, str], *, extra: Sequence[str] = ()) -> list[str]:
    found = []
    for text in transport.texts():
        found += [what for what, secret in secrets.items() if secret in text]
        found += [f"{marker!r} in an envelope" for marker in ("$2a$", "$2b$", "$2y$", *extra) if marker in text]
    return sorted(set(found))


# --- auth events ----------------------------------------------------------------------------------------


def collect_secrets(stack: DualWriteStack, run: Run) -> dict[str, str]:
    """The secrets test_auth_api_secrets.py collects, the same way: passwords, both databases' hashes and the
    gaps', every token a reply or the session table holds, GoTrue's keys and JWT secret, Better-Auth's secret."""
    db_hashes = {row[0] for row in stack.query("SELECT encrypted_password FROM auth.users") if row[0]}
    db_hashes |= {row[0] for row in stack.query("SELECT password FROM account") if row[0]}
    hashes = db_hashes | run.gap_hashes
    reply_tokens = {
        token
        for reply in run.replies
        if reply.status == 200
        for token in (reply.json()["session"]["access_token"], reply.json()["session"]["refresh_token"])
        if token
    }
    outcome_tokens = {
        token
        for outcome in run.outcomes
        if outcome.result.session is not None
        for token in (
            outcome.result.session.access_token,
            outcome.result.session.refresh_token,
            outcome.result.session.cookie,
        )
        if token
    }
    session_tokens = {row[0] for row in stack.query("SELECT token FROM session")}
    keys = {
        "GoTrue service key": stack.gotrue.service_key,
        "GoTrue anon key": stack.gotrue.anon_key,
        "GoTrue JWT secret": stack.gotrue.jwt_secret,
        "Better-Auth secret": stack.better_auth_server.secret or BETTER_AUTH_TEST_SECRET,
    }
    assert len(run.passwords) >= 10
    assert sum(h.startswith(("$2a$", "$2b$")) for h in db_hashes) >= 8
    assert len(reply_tokens | outcome_tokens | session_tokens) >= 10
    return {
        **{f"password {p!r}": p for p in run.passwords},
        **{f"password hash {h[:12]}...": h for h in hashes},
        **{f"token {t[:8]}...": t for t in reply_tokens | outcome_tokens | session_tokens},
        **keys,
    }


def _fallback_login(stack: DualWriteStack, run: Run) -> None:
    """A user both systems hold signs in while Better-Auth (the primary) refuses connections: Supabase answers."""
    email, password = f"fallback-login-{uuid.uuid4().hex[:8]}@example.com", "Fallback login pw 1"
    run.passwords.add(password)
    healthy = app_for(stack.service(), better_auth_primary=True)
    down = app_for(stack.service(better_auth_down=True), better_auth_primary=True)
    for label, path, app in (("signup for a fallback", SIGNUP, healthy), ("fallback login", LOGIN, down)):
        raw = handle_api_event(event(path, {"email": email, "password": password}), CONTEXT, app)
        run.replies.append(Reply(label, int(raw["statusCode"]), str(raw["body"])))
    assert run.replies[-1].status == 200
    assert run.replies[-1].json()["system"] == SUPABASE


@dataclass(frozen=True)
class Captured:
    transactions: list[dict[str, Any]]
    errors: list[dict[str, Any]]


@pytest.fixture
def auth_run(dual_write_stack: DualWriteStack, sentry_transport: CapturingTransport) -> tuple[Run, Captured]:
    run = Run()
    _scenario(dual_write_stack, run)
    _fallback_login(dual_write_stack, run)
    return run, Captured(sentry_transport.items("transaction"), sentry_transport.items("event"))


def auth_transactions(captured: Captured) -> list[dict[str, Any]]:
    return [t for t in captured.transactions if t["transaction"] in ("auth.signup", "auth.login")]


def test_every_signup_and_login_is_a_transaction_with_the_documents_tags_and_its_latency(
    auth_run: tuple[Run, Captured],
) -> None:
    run, captured = auth_run
    transactions = auth_transactions(captured)

    assert len(transactions) == len(run.replies)  # one per API call
    for tx in transactions:
        operation = tx["transaction"].removeprefix("auth.")
        tags = tx["tags"]
        assert tags["auth_event_type"] == operation
        assert tags["migration_mode"] == "dual_write"
        assert tags["canary_user"] == "false"  # USE_BETTER_AUTH chose the primary, not the canary
        assert tags["auth_system"] in (SUPABASE, BETTER_AUTH, f"{SUPABASE}+{BETTER_AUTH}")
        assert tags["success"] in ("true", "false")
        data = tx["contexts"]["trace"]["data"]
        assert isinstance(data[f"auth_{operation}_duration"], int | float)
        assert data[f"auth_{operation}_duration"] >= 0
        assert tx["contexts"]["migration"]["migration_mode"] == "dual_write"
        assert tx["contexts"]["auth_event"]["type"] == operation
    statuses = {tx["tags"]["http.status_code"] for tx in transactions}
    assert statuses == {"200", "401", "409", "503"}
    # Tags belong to their own request: a success never carries an earlier failure's error kind.
    assert all("error_kind" not in tx["tags"] for tx in transactions if tx["tags"]["success"] == "true")
    fallbacks = [tx for tx in transactions if tx["tags"]["fallback"] == "true"]
    assert {(tx["transaction"], tx["tags"]["auth_system"]) for tx in fallbacks} == {
        ("auth.signup", BETTER_AUTH),  # Supabase down
        ("auth.signup", SUPABASE),  # Better-Auth down
        ("auth.login", SUPABASE),  # Better-Auth down, a user both hold
    }


def test_system_failures_are_the_documents_errors_grouped_and_user_errors_are_not_captured(
    auth_run: tuple[Run, Captured],
) -> None:
    _run, captured = auth_run
    by_fingerprint = {tuple(e["fingerprint"]): e for e in captured.errors}

    both = f"{SUPABASE}+{BETTER_AUTH}"
    assert set(by_fingerprint) == {
        ("AuthSignupError", both, "both_unavailable"),
        ("AuthLoginError", both, "both_unavailable"),
        # The Supabase-down fallback signup could not be carried into Supabase; the CHECK-refused secondary write.
        ("dual_write_inconsistency", SUPABASE, "fallback_signup:unavailable"),
        ("dual_write_inconsistency", BETTER_AUTH, "secondary_failed:CheckViolation"),
    }
    signup_error = by_fingerprint[("AuthSignupError", both, "both_unavailable")]
    assert exception_of(signup_error)["type"] == "AuthSignupError"
    assert signup_error["level"] == "error"
    assert signup_error["tags"]["auth_event_type"] == "signup"
    assert signup_error["tags"]["canary_user"] == "false"
    assert signup_error["tags"]["migration_mode"] == "dual_write"
    assert signup_error["contexts"]["auth_event"]["success"] is False
    assert exception_of(by_fingerprint[("AuthLoginError", both, "both_unavailable")])["type"] == "AuthLoginError"
    # Wrong password, unknown user and a taken email reached Sentry as breadcrumbs of their transactions only.
    kinds = {e["tags"].get("error_kind") for e in captured.errors}
    assert kinds.isdisjoint({"invalid_credentials", "user_exists"})

    gap = by_fingerprint[("dual_write_inconsistency", BETTER_AUTH, "secondary_failed:CheckViolation")]
    assert exception_of(gap)["type"] == "MigrationError"
    assert gap["level"] == "warning"
    assert gap["tags"]["migration_event"] == "dual_write_inconsistency"
    assert gap["tags"]["auth_event_type"] == "signup"
    assert gap["contexts"]["migration_event"]["held_by"] == SUPABASE
    assert gap["user"]["email"].startswith("email-sha256:")


def test_successes_are_breadcrumbs_of_their_own_request(auth_run: tuple[Run, Captured]) -> None:
    _run, captured = auth_run
    fallback_gap = next(e for e in captured.errors if e["fingerprint"][2] == "fallback_signup:unavailable")

    auth_crumbs = [c for c in fallback_gap["breadcrumbs"]["values"] if c["category"] == "auth"]
    messages = [c["message"] for c in auth_crumbs]
    assert len(messages) == 2, messages  # this request's only: isolation per request
    assert messages[0].startswith("signup successful for email-sha256:")
    assert messages[1] == f"signup fell back: {SUPABASE} failed (unavailable), {BETTER_AUTH} answered"
    assert auth_crumbs[0]["data"]["auth_system"] == BETTER_AUTH


def test_no_secret_and_no_email_reaches_any_envelope(
    dual_write_stack: DualWriteStack, auth_run: tuple[Run, Captured], sentry_transport: CapturingTransport
) -> None:
    run, _captured = auth_run
    secrets = collect_secrets(dual_write_stack, run)
    assert len(sentry_transport.envelopes) >= len(run.replies)

    assert leaks(sentry_transport, secrets, extra=("@example.com",)) == []


# --- migration batches ----------------------------------------------------------------------------------


def sqs_event(bodies: Sequence[dict[str, Any] | str], *, receive_count: int = 1) -> dict[str, Any]:
    """MigrateBatch's SQS event (events/migrate_batch/batch.json's shape) carrying `bodies`."""
    (sample,) = BATCH_EVENT["Records"]
    records = []
    for i, body in enumerate(bodies):
        records.append(
            {
                **sample,
                "messageId": f"{sample['messageId'][:-4]}{i:04d}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {**sample["attributes"], "ApproximateReceiveCount": str(receive_count)},
            }
        )
    return {"Records": records}


def started_migration(engine: InlineEngine, users: int, *, batch_size: int = 50) -> list[dict[str, Any]]:
    """Generate `users` source users, start a migration; the bodies of its batch messages."""
    generate_supabase_users(engine.url, users, seed=11, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    start_migration(StartRequest(batch_size=batch_size), engine.context())
    bodies = [message.to_body() for message in engine.queue.messages]
    engine.queue.messages.clear()
    return bodies


def test_a_migration_batch_is_a_transaction_with_a_span_per_statement_group(
    inline_engine: InlineEngine, sentry_transport: CapturingTransport
) -> None:
    from auth_migration.batch_worker import handle_sqs_event

    bodies = started_migration(inline_engine, 120)
    reply = handle_sqs_event(sqs_event(bodies), CONTEXT, inline_engine.context())

    assert reply == {"batchItemFailures": []}
    batches = [t for t in sentry_transport.items("transaction") if t["transaction"] == "migration.batch"]
    assert len(batches) == len(bodies)
    for tx in batches:
        assert tx["tags"]["migration_id"] == bodies[0]["migration_id"]
        data = tx["contexts"]["trace"]["data"]
        assert data["batch_status"] == "done"
        assert data["users"] > 0
        assert data["receive_count"] == 1
        spans = tx["spans"]
        assert [s["op"] for s in spans] == [f"migration.{p}" for p in ("read_source", "transform", "write_target")] + [
            "migration.tracking"
        ]
        assert {s["description"] for s in spans} == set(BATCH_PHASES.values())
        for span in spans:
            assert isinstance(span["data"]["duration_ms"], int | float)
            assert span["status"] == "ok"
    hashes = {row[0] for row in _query(inline_engine.url, "SELECT encrypted_password FROM auth.users") if row[0]}
    assert leaks(sentry_transport, {f"hash {h[:12]}": h for h in hashes}) == []


def test_a_failing_batch_record_is_a_grouped_migration_error_warning_then_error_on_the_last_receive(
    inline_engine: InlineEngine, sentry_transport: CapturingTransport
) -> None:
    from auth_migration.batch_worker import handle_sqs_event

    (body, *_rest) = started_migration(inline_engine, 60)
    unplanned = {**body, "batch_no": 999}
    ctx = inline_engine.context()

    first = handle_sqs_event(sqs_event([unplanned, unplanned]), CONTEXT, ctx)
    last = handle_sqs_event(sqs_event([unplanned], receive_count=ctx.max_receive_count), CONTEXT, ctx)

    assert len(first["batchItemFailures"]) == 2
    assert len(last["batchItemFailures"]) == 1
    errors = sentry_transport.items("event")
    assert {tuple(e["fingerprint"]) for e in errors} == {("MigrationError", "batch", "InvalidRequest")}
    assert [e["level"] for e in errors] == ["warning", "warning", "error"]
    for error in errors:
        assert exception_of(error)["type"] == "MigrationError"
        assert error["tags"]["migration_event"] == "migration_error"
        assert error["tags"]["migration_id"] == body["migration_id"]
        assert error["contexts"]["migration_event"]["batch_no"] == 999
    failed = [t for t in sentry_transport.items("transaction") if t["transaction"] == "migration.batch"]
    assert {t["contexts"]["trace"]["status"] for t in failed} == {"internal_error"}


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.encode()).fetchall()


# --- AutoRollback as a cron monitor ---------------------------------------------------------------------


class MemoryFlagStore:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)

    def read(self) -> dict[str, str]:
        return dict(self.values)

    def write(self, name: str, value: str) -> None:
        self.values[name] = value


def failing_canary_events(url: str, *, n: int = 150, failing: int = 30) -> None:
    """Better-Auth-primary canary logins a few seconds before REFERENCE_TIME, `failing` of them unavailable."""
    with psycopg.connect(url) as conn:
        conn.execute(
            """INSERT INTO auth_events (occurred_at, operation, system, mode, canary, success, error_kind,
                                        latency_ms, primary_system)
               SELECT %s, 'login', 'better_auth', 'dual_write', true, i > %s,
                      CASE WHEN i <= %s THEN 'unavailable' END, 40, 'better_auth'
               FROM generate_series(1, %s) AS i""",
            (REFERENCE_TIME - timedelta(seconds=20), failing, failing, n),
        )


def template_schedule() -> str:
    event = load_template()["Resources"]["AutoRollbackFunction"]["Properties"]["Events"]["EveryMinute"]
    assert event["Type"] == "Schedule"
    return str(event["Properties"]["Schedule"])


def test_the_monitor_schedule_is_the_templates() -> None:
    assert template_schedule() == AUTO_ROLLBACK_SCHEDULE
    assert monitor_schedule(template_schedule()) == {"type": "interval", "value": 1, "unit": "minute"}


def test_an_auto_rollback_run_checks_in_ok_on_the_templates_schedule_and_reports_the_trip(
    migration_db: str, sentry_transport: CapturingTransport
) -> None:
    from auth_migration.clock import fixed_clock

    failing_canary_events(migration_db)
    store = MemoryFlagStore(PHASE_2_CANARY)
    conns = Connections(migration_db, migration_db, migration_db)
    try:
        decision = handle_schedule(Settings(), store, conns, clock=fixed_clock(REFERENCE_TIME))
    finally:
        conns.close()

    assert decision["action"] == "rollback"
    check_ins = sentry_transport.items("check_in")
    assert [c["status"] for c in check_ins] == ["in_progress", "ok"]
    assert {c["monitor_slug"] for c in check_ins} == {AUTO_ROLLBACK_MONITOR_SLUG}
    assert check_ins[0]["check_in_id"] == check_ins[1]["check_in_id"]
    for check_in in check_ins:
        assert check_in["monitor_config"]["schedule"] == monitor_schedule(template_schedule())
        assert check_in["environment"] == "dev"
    (trip,) = sentry_transport.items("event")
    assert trip["fingerprint"] == ["auto_rollback", "rollback"]
    assert trip["level"] == "warning"
    assert trip["message"].startswith("AutoRollback stepped back: Better-Auth-primary traffic (canary) failed")
    (run,) = [t for t in sentry_transport.items("transaction") if t["transaction"] == "auto_rollback.run"]
    assert run["contexts"]["trace"]["data"]["canary_percentage"] == 0.0  # the canary is off after the trip
    assert run["contexts"]["trace"]["data"]["canary_error_rate"] == 0.2


def test_an_auto_rollback_run_that_cannot_judge_checks_in_error(sentry_transport: CapturingTransport) -> None:
    dead = "postgresql://postgres@127.0.0.1:1/nothing_listens_here?connect_timeout=2"
    conns = Connections(dead, dead, dead)

    decision = handle_schedule(Settings(), MemoryFlagStore(PHASE_2_CANARY), conns)

    assert decision["action"] == "failed"
    assert [c["status"] for c in sentry_transport.items("check_in")] == ["in_progress", "error"]
    assert sentry_transport.items("event") == []  # the cron monitor opens the issue, not a second event


# --- cold start -----------------------------------------------------------------------------------------


def test_without_a_dsn_nothing_imports_sentry_sdk() -> None:
    """Only functions with a DSN pay for sentry_sdk: the layer's modules and a DSN-less init import none of it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import auth_migration.batch_worker, auth_migration.dual_write.api\n"
        "import auth_migration.dual_write.reconcile_worker, auth_migration.rollout.auto_worker\n"
        "from auth_migration.sentry import auth_event, init_sentry\n"
        "from auth_migration.settings import Settings\n"
        "assert init_sentry(Settings()) is False\n"
        "print(sorted(m for m in sys.modules if m.startswith('sentry_sdk')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
