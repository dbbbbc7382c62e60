"""The final report as text: the lines an operator acts on (password resets, DLQ, telemetry file)."""

from __future__ import annotations

from typing import Any

from auth_migration_ops.cli.progress import format_report


def status(**extra: Any) -> dict[str, Any]:
    return {
        "action": "status",
        "migration_id": "mig_1",
        "dry_run": False,
        "status": "completed",
        "source": "profiles",
        "target": "supabase",
        "processed_count": 10,
        "elapsed_s": 1.0,
        "users_per_s": 10.0,
        "error_count": 0,
        "batches_done": 1,
        "batches_total": 1,
        "batches_failed": 0,
        "outcomes": {"migrated": 10},
        **extra,
    }


def test_users_without_a_usable_hash_are_named_in_the_report() -> None:
    text = format_report(status(needs_password_reset={"count": 3, "user_ids": ["a", "b", "c"]}))
    assert "3 user(s) need a password reset or a magic link" in text


def test_a_dry_run_says_would_need() -> None:
    text = format_report(status(dry_run=True, needs_password_reset={"count": 2, "user_ids": [], "predicted": True}))
    assert "2 user(s) would need a password reset" in text and "DRY RUN" in text


def test_no_line_when_nobody_needs_a_reset_or_the_target_has_none() -> None:
    assert "password reset" not in format_report(status(needs_password_reset={"count": 0, "user_ids": []}))
    assert "password reset" not in format_report(status())
