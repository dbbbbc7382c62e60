"""`auth-migrate canary plan | pause | resume | status` against moto SSM and the real state database:
a plan needs phase 2, sets its first step through the audited path, one runs at a time; pause, resume
and status read the same row AutoRollback walks; a canary change by hand stops the plan.

The CLI runs on the wall clock (as an operator's does), so the events `status` counts are stamped
relative to it (`live_reference_time`)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from auth_migration_ops.cli.main import main
from auth_migration_ops.local.aws import LocalAws
from tests.reference_time import live_reference_time


@pytest.fixture
def rollout(local_aws: LocalAws, migration_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fresh flag prefix in moto at phase 1, the state database, and an audit spool of this test's own."""
    prefix = f"/auth-migration-{uuid.uuid4().hex[:8]}/dev/"
    for key, value in local_aws.env().items():
        monkeypatch.setenv(key, value)
    for key in ("OLD_DATABASE_URL", "NEW_DATABASE_URL", "BETTER_AUTH_DATABASE_URL"):
        monkeypatch.setenv(key, migration_db)
    monkeypatch.setenv("PARAMETER_PREFIX", prefix)
    monkeypatch.setenv("AUTH_MIGRATE_AUDIT_SPOOL", str(tmp_path / "spool.jsonl"))
    ssm = local_aws.client("ssm")
    for name, value in {
        "MIGRATION_MODE": "supabase_only",
        "USE_BETTER_AUTH": "false",
        "CANARY_ENABLED": "false",
    }.items():
        ssm.put_parameter(Name=prefix + name, Value=value, Type="String", Overwrite=True)
    return {"prefix": prefix, "ssm": ssm, "db": migration_db}


def stored(r: dict[str, Any]) -> dict[str, str]:
    params = r["ssm"].get_parameters_by_path(Path=r["prefix"].rstrip("/"), WithDecryption=True)["Parameters"]
    return {p["Name"].removeprefix(r["prefix"]): p["Value"] for p in params}


def plans(r: dict[str, Any]) -> list[tuple[Any, ...]]:
    with psycopg.connect(r["db"]) as conn:
        return conn.execute(
            "SELECT id, status, step_index, bake_seconds, status_reason FROM canary_plans ORDER BY id"
        ).fetchall()


def status_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["canary", "status", "--json"]) == 0
    shown: dict[str, Any] = json.loads(capsys.readouterr().out)
    return shown


def test_a_plan_needs_phase_2_and_valid_steps_and_writes_nothing_otherwise(rollout: dict[str, Any], capsys) -> None:
    assert main(["canary", "plan", "1,5,100", "--bake", "30m", "--reason", "go"]) == 2
    assert "a canary plan runs in phase 2" in capsys.readouterr().err
    assert main(["phase", "2", "--reason", "dual-write", "--yes"]) == 0
    before = stored(rollout)
    assert main(["canary", "plan", "1,5,50", "--bake", "30m", "--reason", "go"]) == 2
    assert "last canary step must be 100" in capsys.readouterr().err
    assert main(["canary", "plan", "1,5,100", "--bake", "0m", "--reason", "go"]) == 2
    assert "zero" in capsys.readouterr().err
    assert stored(rollout) == before
    assert plans(rollout) == []


def test_a_plan_sets_its_first_step_audited_and_one_runs_at_a_time(rollout: dict[str, Any], capsys) -> None:
    assert main(["phase", "2", "--reason", "dual-write", "--yes"]) == 0
    assert main(["canary", "plan", "1,5,10,25,50,75,100", "--bake", "1h30m", "--reason", "progressive"]) == 0

    flags = stored(rollout)
    assert (flags["CANARY_ENABLED"], flags["CANARY_USER_SELECTION"], flags["CANARY_PERCENTAGE"]) == (
        "true",
        "user_id_hash",
        "1",
    )
    ((plan_id, status, step, bake_s, _),) = plans(rollout)
    assert (status, step, bake_s) == ("active", 0, 5400)
    with psycopg.connect(rollout["db"]) as conn:
        rows = conn.execute("SELECT flag, source, reason FROM flag_changes WHERE flag LIKE 'CANARY%' ORDER BY id")
        audited = rows.fetchall()
    assert {r[0] for r in audited} == {"CANARY_ENABLED", "CANARY_USER_SELECTION", "CANARY_PERCENTAGE"}
    assert all(src == "cli" and f"canary plan {plan_id} step 1/7 (1 %): progressive" == why for _, src, why in audited)

    capsys.readouterr()
    assert main(["canary", "plan", "50,100", "--bake", "30m", "--reason", "another"]) == 1
    assert "a canary plan is running already" in capsys.readouterr().err
    assert len(plans(rollout)) == 1
    assert stored(rollout)["CANARY_PERCENTAGE"] == "1"


def test_pause_resume_and_status(rollout: dict[str, Any], capsys) -> None:
    assert main(["phase", "2", "--reason", "dual-write", "--yes"]) == 0
    assert main(["canary", "plan", "5,50,100", "--bake", "30m", "--reason", "go"]) == 0
    now = live_reference_time()
    with psycopg.connect(rollout["db"]) as conn:
        conn.execute(
            """INSERT INTO auth_events (occurred_at, operation, system, mode, canary, success, error_kind, latency_ms,
                                        primary_system)
               SELECT %s - interval '30 seconds', 'login', s, 'dual_write', i <= 20, i > 2,
                      CASE WHEN i <= 2 THEN 'timeout' END, 40, s
               FROM generate_series(1, 100) AS i,
                    LATERAL (SELECT CASE WHEN i <= 20 THEN 'better_auth' ELSE 'supabase' END AS s) AS primary_of""",
            (now,),
        )

    shown = status_json(capsys)
    assert shown["canary"] == {"phase": 2, "enabled": True, "percentage": 5.0, "selection": "user_id_hash"}
    plan = shown["plan"]
    assert (plan["status"], plan["step_number"], plan["step_count"], plan["next_percentage"]) == ("active", 1, 3, 50)
    assert 0 < plan["seconds_to_next_step"] <= 1800
    figures = shown["figures"]
    assert (figures["total_requests"], figures["canary_requests"], figures["canary_share"]) == (100, 20, 0.2)
    assert figures["canary"]["system_failures"] == 2
    assert [e["error_kind"] for e in figures["recent_errors"]] == ["timeout", "timeout"]

    assert main(["canary", "resume", "--reason", "nothing paused"]) == 1
    assert main(["canary", "pause", "--reason", "launch day"]) == 0
    paused = status_json(capsys)["plan"]
    assert (paused["status"], paused["seconds_to_next_step"], paused["status_reason"]) == (
        "paused",
        None,
        "launch day",
    )
    assert main(["canary", "resume", "--reason", "launch over"]) == 0
    assert status_json(capsys)["plan"]["status"] == "active"

    capsys.readouterr()
    assert main(["canary", "status"]) == 0
    text = capsys.readouterr().out
    assert "step 1/3 (5 %)" in text
    assert "20 of 100 requests in the canary (20.0%)" in text
    assert "timeout" in text


def test_a_paused_plan_whose_flags_changed_cannot_resume(rollout: dict[str, Any], capsys) -> None:
    assert main(["phase", "2", "--reason", "dual-write", "--yes"]) == 0
    assert main(["canary", "plan", "5,100", "--bake", "30m", "--reason", "go"]) == 0
    assert main(["canary", "pause", "--reason", "hold"]) == 0
    rollout["ssm"].put_parameter(
        Name=rollout["prefix"] + "CANARY_PERCENTAGE", Value="30", Type="String", Overwrite=True
    )
    capsys.readouterr()
    assert main(["canary", "resume", "--reason", "go on"]) == 2
    assert "CANARY_PERCENTAGE is 30, not the plan's 5" in capsys.readouterr().err
    assert plans(rollout)[0][1] == "paused"


def test_canary_off_stops_a_running_plan(rollout: dict[str, Any], capsys) -> None:
    assert main(["phase", "2", "--reason", "dual-write", "--yes"]) == 0
    assert main(["canary", "plan", "5,100", "--bake", "30m", "--reason", "go"]) == 0
    capsys.readouterr()
    assert main(["canary", "off", "--reason", "enough"]) == 0
    assert "stopped: the canary is steered by hand now" in capsys.readouterr().out
    assert stored(rollout)["CANARY_ENABLED"] == "false"
    ((_, status, _, _, why),) = plans(rollout)
    assert (status, why) == ("stopped", "`canary off` by hand")
    # A new plan can start once the old one stopped.
    assert main(["canary", "plan", "10,100", "--bake", "30m", "--reason", "again"]) == 0
    assert [p[1] for p in plans(rollout)] == ["stopped", "active"]
    assert status_json(capsys)["plan"]["percentage"] == 10


def test_status_without_a_plan_or_traffic(rollout: dict[str, Any], capsys) -> None:
    shown = status_json(capsys)
    assert shown["plan"] is None
    assert (shown["figures"]["total_requests"], shown["figures"]["canary_share"]) == (0, None)
    assert main(["canary", "status"]) == 0
    assert "plan: none" in capsys.readouterr().out
    assert main(["canary", "pause", "--reason", "x"]) == 1


def test_status_judges_the_window_auto_rollback_judges(rollout: dict[str, Any], capsys) -> None:
    rollout["ssm"].put_parameter(
        Name=rollout["prefix"] + "ROLLBACK_WINDOW_MINUTES", Value="10", Type="String", Overwrite=True
    )
    assert status_json(capsys)["figures"]["window_s"] == 600
