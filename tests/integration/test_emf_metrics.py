"""The CloudWatch metrics as Powertools prints them (EMF, one JSON document per flush on stdout), for the
table of /work/briefs/metrics_contract.md (docs/OBSERVABILITY.md): a signup, a login that falls back, a
migration batch, an AutoRollback trip. Each handler is wrapped in `metrics.log_metrics` as functions/*/app.py
wraps it. Checked: names, units, values, the namespace, and the one dimension `service`."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from auth_migration.backends.base import BETTER_AUTH, SUPABASE
from auth_migration.clock import fixed_clock
from auth_migration.connections import Connections
from auth_migration.dual_write.api import build_resolver, handle_api_event
from auth_migration.flags import Flags, MigrationMode
from auth_migration.observability import DEFAULT_METRICS_NAMESPACE, metrics, metrics_namespace
from auth_migration.rollout.auto_worker import handle_schedule
from auth_migration.settings import Settings
from tests.integration.plugins.dual_write import DualWriteStack
from tests.integration.plugins.engine import InlineEngine
from tests.integration.test_auth_api_secrets import CONTEXT, LOGIN, SIGNUP, event
from tests.integration.test_sentry_events import (
    PHASE_2_CANARY,
    MemoryFlagStore,
    failing_canary_events,
    sqs_event,
    started_migration,
)
from tests.reference_time import REFERENCE_TIME

Handler = Callable[[dict[str, Any], LambdaContext], Any]


def test_the_namespace_is_the_stages_and_local_without_one() -> None:
    assert metrics_namespace({}) == DEFAULT_METRICS_NAMESPACE == "AuthMigration/local"
    assert metrics_namespace({"POWERTOOLS_METRICS_NAMESPACE": "AuthMigration/prod"}) == "AuthMigration/prod"


@pytest.fixture(autouse=True)
def _fresh_metrics() -> Iterator[None]:
    # Powertools keeps metrics per class: other tests' unflushed ones must not land in these documents.
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def as_function(handler: Handler) -> Handler:
    """`handler` decorated as functions/*/app.py decorates theirs: one EMF document per invocation."""

    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
        return handler(event, context)

    return lambda_handler


def emf(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The one EMF document printed since the last call: {name: (unit, value)} after checking its envelope."""
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert len(documents) == 1, documents
    (document,) = documents
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    expected_namespace = metrics_namespace(os.environ)
    assert directive["Namespace"] == expected_namespace
    if "POWERTOOLS_METRICS_NAMESPACE" not in os.environ:
        assert directive["Namespace"] == "AuthMigration/local"
    # Exactly the default dimension, as the dashboard and the alarms query them.
    assert directive["Dimensions"] == [["service"]]
    assert document["service"] == "auth-migration"
    return {m["Name"]: (m["Unit"], _one(document[m["Name"]])) for m in directive["Metrics"]}


def _one(value: Any) -> Any:
    """Powertools lists a metric's values ([1.0]); one value reads better as itself."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def ticking(*seconds: float) -> Callable[[], float]:
    """A monotonic timer that returns `seconds` in turn (a request reads it at its start and its end)."""
    values = iter(seconds)
    return lambda: next(values)


def api(service: Any, flags: Flags, timer: Callable[[], float]) -> Handler:
    app = build_resolver(lambda: service, lambda: flags, timer=timer)
    return as_function(lambda ev, ctx: handle_api_event(ev, ctx, app))


SUPABASE_FIRST = Flags(migration_mode=MigrationMode.DUAL_WRITE)
# Nobody is Better-Auth-primary by the switch; the canary (everyone, 100 %) puts Better-Auth first.
CANARY_FIRST = Flags(migration_mode=MigrationMode.DUAL_WRITE, canary_enabled=True, canary_percentage=100)


def test_a_signup_counts_its_system_and_its_latency(
    dual_write_stack: DualWriteStack, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = api(dual_write_stack.service(), SUPABASE_FIRST, ticking(100.0, 100.25))
    reply = handler(event(SIGNUP, {"email": "emf-signup@example.com", "password": "Emf signup pw 1"}), CONTEXT)

    assert reply["statusCode"] == 200
    assert emf(capsys) == {"Signup_supabase": ("Count", 1.0), "AuthLatencyOthers": ("Milliseconds", 250.0)}


def test_a_login_that_falls_back_counts_the_fallback_and_the_canary_latency(
    dual_write_stack: DualWriteStack, capsys: pytest.CaptureFixture[str]
) -> None:
    email, password = "emf-fallback@example.com", "Emf fallback pw 1"
    signup = api(dual_write_stack.service(), CANARY_FIRST, ticking(1.0, 1.5))
    assert signup(event(SIGNUP, {"email": email, "password": password}), CONTEXT)["statusCode"] == 200
    assert emf(capsys) == {"Signup_better_auth": ("Count", 1.0), "AuthLatencyCanary": ("Milliseconds", 500.0)}

    login = api(dual_write_stack.service(better_auth_down=True), CANARY_FIRST, ticking(7.0, 7.125))
    reply = login(event(LOGIN, {"email": email, "password": password}), CONTEXT)

    assert reply["statusCode"] == 200
    assert json.loads(reply["body"])["system"] == SUPABASE
    assert emf(capsys) == {
        "Login_supabase": ("Count", 1.0),
        "Fallback": ("Count", 1.0),
        "AuthLatencyCanary": ("Milliseconds", 125.0),
    }


def test_a_gap_and_an_outage_count_dual_write_inconsistency_and_auth_failed(
    dual_write_stack: DualWriteStack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = dual_write_stack
    stack.query('ALTER TABLE "user" ADD CONSTRAINT outage CHECK (false) NOT VALID')
    try:
        gap = api(stack.service(), SUPABASE_FIRST, ticking(0.0, 0.01))
        body = {"email": "emf-gap@example.com", "password": "Emf gap pw 1"}
        assert gap(event(SIGNUP, body), CONTEXT)["statusCode"] == 200
    finally:
        stack.query('ALTER TABLE "user" DROP CONSTRAINT outage')
    assert emf(capsys) == {
        "Signup_supabase": ("Count", 1.0),
        "DualWriteInconsistency": ("Count", 1.0),
        "AuthLatencyOthers": ("Milliseconds", 10.0),
    }

    down = api(stack.service(supabase_down=True, better_auth_down=True), SUPABASE_FIRST, ticking(0.0, 0.02))
    body = {"email": "emf-down@example.com", "password": "Emf down pw 1"}
    assert down(event(SIGNUP, body), CONTEXT)["statusCode"] == 503
    counted = emf(capsys)
    assert counted["AuthFailed"] == ("Count", 1.0)
    assert counted["AuthLatencyOthers"] == ("Milliseconds", 20.0)
    assert not {"Signup_supabase", "Signup_better_auth", BETTER_AUTH} & set(counted)


def test_a_migration_batch_counts_its_users_and_a_failed_record(
    inline_engine: InlineEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    from auth_migration.batch_worker import handle_sqs_event

    bodies = started_migration(inline_engine, 60, batch_size=100)
    ctx = inline_engine.context()
    handler = as_function(lambda ev, context: handle_sqs_event(ev, context, ctx))

    reply = handler(sqs_event([*bodies, {**bodies[0], "batch_no": 999}]), CONTEXT)

    assert len(reply["batchItemFailures"]) == 1
    counted = emf(capsys)
    assert set(counted) == {"UsersProcessed", "UsersMigrated", "UserErrors", "BatchFailed"}
    assert counted["UsersProcessed"] == ("Count", 60.0)
    assert counted["BatchFailed"] == ("Count", 1.0)
    assert counted["UsersMigrated"][0] == counted["UserErrors"][0] == "Count"
    assert 0 < counted["UsersMigrated"][1] < 60  # the generator's edge cases are skipped, invalid or conflicts
    assert counted["UserErrors"][1] > 0


def test_an_auto_rollback_trip_counts_the_trip_and_the_canary_percentage_in_force(
    migration_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    conns = Connections(migration_db, migration_db, migration_db)
    clock = fixed_clock(REFERENCE_TIME)
    store = MemoryFlagStore(PHASE_2_CANARY)
    handler = as_function(lambda _ev, _ctx: handle_schedule(Settings(), store, conns, clock=clock))
    try:
        held = handler({}, CONTEXT)  # no traffic yet: the canary holds at its 10 %
        assert held["action"] == "hold"
        assert emf(capsys) == {"CanaryPercentage": ("Percent", 10.0), "AutoRollbackHeld": ("Count", 1.0)}

        failing_canary_events(migration_db)
        tripped = handler({}, CONTEXT)
    finally:
        conns.close()

    assert tripped["action"] == "rollback"
    assert store.values["CANARY_ENABLED"] == "false"
    # In force after the run: the canary is off, so 0 % have Better-Auth first.
    assert emf(capsys) == {"CanaryPercentage": ("Percent", 0.0), "AutoRollbackTripped": ("Count", 1.0)}
