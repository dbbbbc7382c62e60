"""The rollout commands against moto SSM and the real state database: every change validated, written
in a safe order, audited; unsafe phases refused with the figures; an emergency rollback that works
while Postgres is down."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from auth_migration_ops.cli.main import main
from auth_migration_ops.local.aws import LocalAws


@pytest.fixture
def rollout(local_aws: LocalAws, migration_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fresh flag prefix in moto, the state database, and an audit spool of this test's own."""
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
    return {"prefix": prefix, "ssm": ssm, "db": migration_db, "spool": tmp_path / "spool.jsonl"}


def stored(r: dict[str, Any]) -> dict[str, str]:
    params = r["ssm"].get_parameters_by_path(Path=r["prefix"].rstrip("/"), WithDecryption=True)["Parameters"]
    return {p["Name"].removeprefix(r["prefix"]): p["Value"] for p in params}


def audit(r: dict[str, Any]) -> list[tuple[Any, ...]]:
    with psycopg.connect(r["db"]) as conn:
        return conn.execute(
            "SELECT flag, old_value, new_value, source, forced, reason, actor FROM flag_changes ORDER BY id"
        ).fetchall()


def test_a_flag_change_is_validated_written_and_audited(rollout: dict[str, Any], capsys) -> None:
    before = stored(rollout)
    assert main(["flags", "set", "NO_SUCH_FLAG", "1", "--reason", "x"]) == 2
    assert main(["flags", "set", "CANARY_PERCENTAGE", "250", "--reason", "typo"]) == 2
    assert "outside 0..100" in capsys.readouterr().err
    assert stored(rollout) == before
    assert audit(rollout) == []

    assert main(["flags", "set", "canary_percentage", "5", "--reason", "first step"]) == 0

    assert stored(rollout)["CANARY_PERCENTAGE"] == "5"
    ((flag, old, new, source, forced, reason, actor),) = audit(rollout)
    assert (flag, old, new, source, forced, reason) == ("CANARY_PERCENTAGE", None, "5", "cli", False, "first step")
    assert actor.endswith("(local)")
    assert main(["flags", "set", "CANARY_PERCENTAGE", "5", "--reason", "again"]) == 0  # nothing to change
    assert len(audit(rollout)) == 1


def test_phases_widen_in_a_safe_order_and_narrow_first(rollout: dict[str, Any]) -> None:
    assert main(["phase", "3", "--reason", "go", "--yes"]) == 0
    assert stored(rollout)["MIGRATION_MODE"] == "dual_write"
    assert stored(rollout)["USE_BETTER_AUTH"] == "true"
    widened = [row[0] for row in audit(rollout)]
    assert widened.index("MIGRATION_MODE") < widened.index("USE_BETTER_AUTH")  # the primary switch last

    assert main(["phase", "1", "--reason", "back", "--yes"]) == 0
    narrowed = [row[0] for row in audit(rollout)][len(widened) :]
    assert narrowed[0] == "USE_BETTER_AUTH"  # Better-Auth off as primary before anything else
    assert stored(rollout)["MIGRATION_MODE"] == "supabase_only"


def test_phase_four_is_refused_with_the_reasons_until_forced(rollout: dict[str, Any], capsys) -> None:
    with psycopg.connect(rollout["db"]) as conn:
        conn.execute(
            """INSERT INTO dual_write_gaps (user_id, email, source_system, reason)
               VALUES ('u1', 'gap@example.com', 'supabase', 'secondary_failed')"""
        )
    assert main(["phase", "4", "--reason", "done?", "--yes"]) == 1
    err = capsys.readouterr().err
    assert "no bulk migration has run" in err
    assert "1 dual-write gap(s) open" in err
    assert stored(rollout)["MIGRATION_MODE"] == "supabase_only"

    assert main(["phase", "4", "--reason", "accepted risk", "--yes", "--force"]) == 0
    assert stored(rollout)["MIGRATION_MODE"] == "better_auth_only"
    assert all(forced for *_, forced, _reason, _actor in audit(rollout))


def test_a_phase_change_without_a_terminal_needs_yes(rollout: dict[str, Any], monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", open("/dev/null"))  # noqa: SIM115 - closed with the test
    assert main(["phase", "2", "--reason", "go"]) == 2
    assert "pass --yes" in capsys.readouterr().err
    assert stored(rollout)["MIGRATION_MODE"] == "supabase_only"


def test_an_emergency_rollback_works_with_postgres_down_and_audits_later(
    rollout: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    assert main(["phase", "3", "--reason", "go", "--yes"]) == 0
    assert main(["canary", "set", "10", "--reason", "some"]) == 0
    audited = len(audit(rollout))
    monkeypatch.setenv("NEW_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")

    assert main(["rollback", "--emergency", "--reason", "errors spiking"]) == 0

    flags = stored(rollout)
    assert (flags["USE_BETTER_AUTH"], flags["CANARY_ENABLED"], flags["MIGRATION_MODE"]) == (
        "false",
        "false",
        "supabase_only",
    )
    assert "audit: pending" in capsys.readouterr().err
    assert len(audit(rollout)) == audited
    assert rollout["spool"].is_file()

    monkeypatch.setenv("NEW_DATABASE_URL", rollout["db"])
    assert main(["flags", "set", "MIGRATION_VALIDATION", "false", "--reason", "next"]) == 0
    rows = audit(rollout)[audited:]
    assert [r[0] for r in rows] == ["USE_BETTER_AUTH", "CANARY_ENABLED", "MIGRATION_MODE", "MIGRATION_VALIDATION"]
    assert rows[0][5] == "errors spiking"
    assert not rollout["spool"].exists()


def test_an_emergency_rollback_from_phase_four_keeps_better_auth_only_users_reachable(
    rollout: dict[str, Any],
) -> None:
    assert main(["phase", "4", "--reason", "x", "--yes", "--force"]) == 0
    assert main(["rollback", "--emergency"]) == 0
    flags = stored(rollout)
    assert (flags["MIGRATION_MODE"], flags["USE_BETTER_AUTH"]) == ("dual_write", "false")


def test_flags_show_reports_bad_values_with_the_default_in_force(rollout: dict[str, Any], capsys) -> None:
    rollout["ssm"].put_parameter(
        Name=rollout["prefix"] + "MIGRATION_MODE", Value="garbage", Type="String", Overwrite=True
    )
    rollout["ssm"].put_parameter(
        Name=rollout["prefix"] + "CANARY_PERCENTAGE", Value="250", Type="String", Overwrite=True
    )
    capsys.readouterr()
    assert main(["flags", "show", "--json"]) == 0
    shown = {row["flag"]: row for row in json.loads(capsys.readouterr().out)["flags"]}
    assert shown["MIGRATION_MODE"]["in_force"] == "supabase_only"
    assert "garbage" in shown["MIGRATION_MODE"]["problem"]
    assert shown["CANARY_PERCENTAGE"]["in_force"] == "0.0"
    assert "outside 0..100" in shown["CANARY_PERCENTAGE"]["problem"]


def test_undo_puts_one_change_back_and_refuses_a_stale_one(rollout: dict[str, Any]) -> None:
    assert main(["flags", "set", "MIGRATION_FALLBACK_TIMEOUT", "2000", "--reason", "a"]) == 0
    assert main(["flags", "set", "MIGRATION_FALLBACK_TIMEOUT", "1500", "--reason", "b"]) == 0
    with psycopg.connect(rollout["db"]) as conn:
        first, second = (r[0] for r in conn.execute("SELECT id FROM flag_changes ORDER BY id").fetchall())

    assert main(["flags", "undo", str(first), "--reason", "stale"]) == 2  # changed again since
    assert main(["flags", "undo", str(second), "--reason", "too low"]) == 0
    assert stored(rollout)["MIGRATION_FALLBACK_TIMEOUT"] == "2000"


def test_canary_allow_takes_emails_or_domains_not_both(rollout: dict[str, Any]) -> None:
    assert main(["canary", "allow", "a@example.com", "@example.org", "--reason", "x"]) == 2
    assert main(["canary", "allow", "Ada@Example.com", "--reason", "staff"]) == 0
    assert main(["canary", "allow", "bob@example.com", "--reason", "staff"]) == 0
    flags = stored(rollout)
    assert flags["CANARY_WHITELIST"] == "ada@example.com,bob@example.com"
    assert (flags["CANARY_USER_SELECTION"], flags["CANARY_ENABLED"]) == ("whitelist", "true")
    assert main(["canary", "off", "--reason", "done"]) == 0
    assert stored(rollout)["CANARY_ENABLED"] == "false"


def test_without_an_ssm_to_steer_the_command_says_how(rollout: dict[str, Any], monkeypatch, capsys) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert main(["flags", "show"]) == 2
    assert "AWS_ENDPOINT_URL" in capsys.readouterr().err


def test_the_local_moto_needs_no_aws_credentials(rollout: dict[str, Any], monkeypatch, capsys) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert main(["flags", "show"]) == 0
    assert "MIGRATION_MODE" in capsys.readouterr().out
