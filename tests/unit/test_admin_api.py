"""The admin API without I/O: the sample events in events/admin through the resolver (each refusal a
4xx with a clear message, an unsigned call refused), the body rules, and AdminService's promise that a
change written to SSM is never reported as failed because the audit database is down."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from pydantic import ValidationError

from auth_migration.admin.api import build_admin_resolver, handle_admin_event
from auth_migration.admin.models import MigrationReport, RolloutChange, RolloutChangeReply, RolloutView
from auth_migration.admin.service import AdminService, Unsafe
from auth_migration.connections import Connections
from auth_migration.exceptions import ConfigError, DatabaseUnavailable, InvalidRequest, NotFound
from auth_migration.rollout.audit import AuditEntry
from auth_migration.rollout.checks import Blocker
from auth_migration.rollout.proposal import Proposal
from auth_migration_ops.local.invoke import LocalLambdaContext, load_event
from tests.reference_time import REFERENCE_CLOCK

EVENTS = Path(__file__).resolve().parents[2] / "events" / "admin"
CONTEXT = cast(Any, LocalLambdaContext(function_name="AdminFunction", timeout_s=20, memory_limit_in_mb=512))
T = TypeVar("T")


class FakeService:
    """Answers as AdminService would, recording what it was asked; `fail` makes the next call raise."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Any, str | None]] = []
        self.fail: Exception | None = None

    def _maybe_fail(self) -> None:
        if self.fail is not None:
            raise self.fail

    def rollout_view(self) -> RolloutView:
        self._maybe_fail()
        self.asked.append(("view", None, None))
        return RolloutView(prefix="/p/", phase=2, phase_name="x", flags=[], health={}, canary={}, plan=None)

    def change_rollout(self, request: RolloutChange, *, actor: str) -> RolloutChangeReply:
        self._maybe_fail()
        self.asked.append(("change", request, actor))
        return RolloutChangeReply(
            applied=True, target="flags", changes=[], blockers=[], forced=False, audit_ids=[1], audit="written", phase=2
        )

    def migration(self, migration_id: str) -> MigrationReport:
        self._maybe_fail()
        raise NotFound(f"no migration with id {migration_id!r}")


def call(service: FakeService, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    app = build_admin_resolver(lambda: cast(AdminService, service))
    raw = handle_admin_event(event, CONTEXT, app)
    return raw["statusCode"], json.loads(raw["body"])


def event(name: str, **changes: Any) -> dict[str, Any]:
    loaded = load_event(EVENTS / f"{name}.json")
    loaded.update(changes)
    return loaded


def test_a_signed_read_answers_the_view() -> None:
    service = FakeService()
    status, body = call(service, event("get_rollout"))
    assert (status, body["phase"]) == (200, 2)


def test_an_unsigned_call_is_refused_and_never_reaches_the_service() -> None:
    service = FakeService()
    status, body = call(service, event("get_rollout_unsigned"))
    assert (status, body["error"]) == (403, "forbidden")
    assert service.asked == []


def test_a_change_carries_the_callers_arn_and_json_numbers_become_stored_text() -> None:
    service = FakeService()
    status, _body = call(service, event("put_rollout_canary"))
    assert status == 200
    ((_what, request, actor),) = service.asked
    assert actor == "arn:aws:sts::123456789012:assumed-role/OpsAdmin/ada@example.com"
    assert request.flags == {"CANARY_ENABLED": "true", "CANARY_PERCENTAGE": "5"}


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"phase": 3}, 400, "reason"),
        ({"phase": 3, "reason": "   "}, 400, "reason must not be blank"),
        ({"phase": 5, "reason": "r"}, 400, "less than or equal to 4"),
        ({"phase": "3", "reason": "r"}, 400, "valid integer"),
        ({"phase": 3, "flags": {"DRY_RUN": "true"}, "reason": "r"}, 400, "exactly one"),
        ({"reason": "r"}, 400, "exactly one"),
        ({"flags": {"CANARY_PERCENTAGE": [5]}, "reason": "r"}, 400, "string"),
        ({"phase": 3, "reason": "r", "sneaky": 1}, 400, "unknown fields"),
    ],
)
def test_bad_bodies_are_a_400_naming_the_problem_and_nothing_is_asked(
    body: dict[str, Any], status: int, fragment: str
) -> None:
    service = FakeService()
    got, reply = call(service, event("put_rollout_canary", body=json.dumps(body)))
    assert got == status
    assert fragment in json.dumps(reply)
    assert service.asked == []


def test_text_plain_and_broken_json_are_refused_before_the_resolver() -> None:
    service = FakeService()
    plain = event("put_rollout_canary")
    plain["headers"] = {**plain["headers"], "Content-Type": "text/plain"}
    assert call(service, plain)[0] == 415
    assert call(service, event("put_rollout_canary", body="{"))[0] == 400
    assert service.asked == []


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (InvalidRequest("CANARY_PERCENTAGE=250 is outside 0..100"), 400, "invalid_request"),
        (Unsafe(Proposal("phase 4", [], [Blocker("no bulk migration has run", {"n": 0})])), 409, "unsafe"),
        (ConfigError("cannot write /p/MIGRATION_MODE: AccessDenied"), 503, "unavailable"),
        (DatabaseUnavailable("connection refused"), 503, "unavailable"),
    ],
)
def test_service_failures_map_to_clear_statuses(error: Exception, status: int, kind: str) -> None:
    service = FakeService()
    service.fail = error
    got, body = call(service, event("put_rollout_canary"))
    assert (got, body["error"]) == (status, kind)
    if kind == "unsafe":
        assert body["blockers"] == [{"reason": "no bulk migration has run", "figures": {"n": 0}}]
    if kind == "invalid_request":
        assert "outside 0..100" in body["message"]


def test_an_unknown_migration_is_a_404_and_an_unknown_route_too() -> None:
    service = FakeService()
    assert call(service, event("get_migration"))[0] == 404
    assert call(service, event("get_rollout", path="/admin/nothing", resource="/admin/nothing"))[0] == 404


def test_the_request_model_takes_exactly_one_kind_of_change() -> None:
    assert RolloutChange.model_validate({"emergency_rollback": True, "reason": "r"}).emergency_rollback
    with pytest.raises(ValidationError):
        RolloutChange.model_validate({"emergency_rollback": True, "phase": 1, "reason": "r"})
    assert RolloutChange.model_validate({"flags": {"USE_BETTER_AUTH": False}, "reason": "r"}).flags == {
        "USE_BETTER_AUTH": "false"
    }


class MemoryStore:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)
        self.writes: list[tuple[str, str]] = []

    def read(self) -> dict[str, str]:
        return dict(self.values)

    def write(self, name: str, value: str) -> None:
        self.writes.append((name, value))
        self.values[name] = value


class DownConnections:
    """The state database refusing every connection."""

    def transact(self, role: str, fn: Callable[[Any], T]) -> T:
        raise DatabaseUnavailable("connection refused")


def test_an_emergency_rollback_with_the_database_down_is_written_and_its_audit_reported_failed() -> None:
    store = MemoryStore({"MIGRATION_MODE": "dual_write", "USE_BETTER_AUTH": "true", "CANARY_ENABLED": "true"})
    lost: list[Sequence[AuditEntry]] = []
    service = AdminService(
        store,
        cast(Connections, DownConnections()),
        clock=REFERENCE_CLOCK,
        on_audit_failure=lambda entries, _exc: lost.append(entries),
    )

    reply = service.change_rollout(
        RolloutChange(emergency_rollback=True, reason="errors after deploy"), actor="arn:aws:iam::1:user/ada"
    )

    assert [name for name, _ in store.writes] == ["USE_BETTER_AUTH", "CANARY_ENABLED", "MIGRATION_MODE"]
    assert (reply.applied, reply.audit, reply.audit_ids, reply.phase) == (True, "failed", None, 1)
    ((entry_a, entry_b, entry_c),) = lost
    assert {e.source for e in (entry_a, entry_b, entry_c)} == {"admin-api"}
    assert entry_a.actor == "arn:aws:iam::1:user/ada"


def test_a_phase_change_needs_its_checks_and_says_so_when_the_database_is_down() -> None:
    store = MemoryStore({"MIGRATION_MODE": "dual_write", "USE_BETTER_AUTH": "false"})
    service = AdminService(store, cast(Connections, DownConnections()), clock=REFERENCE_CLOCK)
    with pytest.raises(DatabaseUnavailable):
        service.change_rollout(RolloutChange(phase=3, reason="go"), actor="a")
    assert store.writes == []


def test_a_dry_run_writes_nothing_and_shows_the_ordered_changes() -> None:
    store = MemoryStore({"MIGRATION_MODE": "supabase_only", "USE_BETTER_AUTH": "false"})
    service = AdminService(store, cast(Connections, DownConnections()), clock=REFERENCE_CLOCK)
    reply = service.change_rollout(
        RolloutChange(flags={"MIGRATION_MODE": "dual_write", "USE_BETTER_AUTH": "true"}, reason="r", dry_run=True),
        actor="a",
    )
    assert store.writes == []
    assert (reply.applied, reply.audit) == (False, "none")
    assert [c.flag for c in reply.changes] == ["MIGRATION_MODE", "USE_BETTER_AUTH"]  # the primary switch last


def _put_parameter_targets(function: str) -> set[str]:
    from auth_migration_ops.local.template import load_template

    statements = [
        statement
        for policy in load_template()["Resources"][function]["Properties"]["Policies"]
        if isinstance(policy, dict) and "Statement" in policy
        for statement in policy["Statement"]
        if statement.get("Action") == "ssm:PutParameter"
    ]
    return {str(resource["Fn::Sub"]).rsplit("/", 1)[1] for s in statements for resource in s["Resource"]}


def test_the_admin_function_may_write_every_flag_and_no_secret() -> None:
    from auth_migration.flags import FLAG_NAMES
    from auth_migration.settings import SSM_SECRET_NAMES

    targets = _put_parameter_targets("AdminFunction")
    assert targets == set(FLAG_NAMES)
    assert not targets & set(SSM_SECRET_NAMES)
