"""Smoke test of the migration bench: a tiny run has the JSON shape operators compare over time, and
no variant writes a user twice. Not a timing test: the figures at this size mean nothing.

The Better-Auth guide variant is the exception to "no duplicates": it is reported, never gated."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest

from bench.guide_variant import prepare_value
from bench.migration_bench import format_table, run_bench
from tests.integration.plugins.postgres import ADMIN_URL

pytestmark = pytest.mark.slow


def _bench_databases() -> set[str]:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'")}


def test_tiny_bench_reports_every_variant_without_duplicates() -> None:
    before = _bench_databases()

    result = run_bench(2_000, batch_sizes=(100, 1000), workers=(1, 2), per_user_sample=200, database_url=ADMIN_URL)

    assert result["users"] == 2_000
    for key in ("raw", "ours", "ours_batch_100", "ours_batch_1000", "per_user", "rerun", "workers_1", "workers_2"):
        assert result["seconds"][key] > 0, key
    assert set(result["ratios"]) >= {"ours_over_raw", "rerun_over_first", "per_user_over_ours"}
    assert result["variants"]["per_user"]["extrapolated"] is True
    assert result["duplicates"] == 0
    assert result["rerun_rows_added"] == 0
    # Every variant migrated the same users as the set-based floor: the comparison is like for like.
    assert result["migrated_users_match_raw"], result["counts"]
    assert result["variants"]["workers_2"]["status"] == "completed_with_errors"  # the generated edge cases
    assert result["peak_rss_mb"]["workers_max"] > 0
    json.dumps(result)  # what --json prints
    assert "per-user way (EXTRAPOLATED" in format_table(result)
    assert _bench_databases() == before  # the bench dropped what it created


def test_tiny_bench_reports_the_guide_script_beside_ours_without_gating_on_it() -> None:
    # Pages of 200 (the guide's are 5,000): ten pages, so the pages the odd metadata fails are not all of them.
    result = run_bench(
        2_000, batch_sizes=(1000,), workers=(1,), per_user_sample=100, guide_page_size=200, database_url=ADMIN_URL
    )

    assert result["seconds"]["guide"] > 0
    assert result["seconds"]["guide_rerun"] > 0
    assert set(result["ratios"]) >= {"ours_over_guide", "ours_default_over_guide"}
    guide = result["variants"]["guide"]
    assert guide["page_size"] == 200
    assert guide["run"]["pages"] == 10
    # Counted against the users our engine migrated in this run.
    ours = result["counts"]["ours_batch_1000"]["better_auth_users"]
    assert result["guide_ours_users"] == ours
    assert result["guide_users_migrated"] <= ours
    # The generated JSON-string and JSON-array metadata: the guide hands jsonb a text that is not JSON,
    # and its page (every user in it) is rolled back. Expired bans are skipped by its rules too.
    assert 1 <= result["guide_pages_failed"] <= 2
    assert all(e["error"] == "invalid input syntax for type json" for e in guide["run"]["errors"])
    assert result["guide_users_migrated"] < ours
    counts = guide["counts"]
    assert counts["ours_missing"] == counts["ours_lost_in_failed_pages"] + counts["ours_skipped_by_guide_rules"]
    assert counts["ours_lost_in_failed_pages"] > 0
    # Its re-run adds no user (ON CONFLICT (id)) but every account again (fresh random ids).
    assert counts["accounts"] > 0
    assert guide["rerun_users_added"] == 0
    assert result["guide_rerun_accounts_added"] == counts["accounts"]
    assert result["guide_rerun_duplicates"] >= counts["accounts"]
    # Reported, not gated: the engine's own figures stay clean.
    assert result["duplicates"] == 0
    assert result["rerun_rows_added"] == 0
    json.dumps(result)
    table = format_table(result)
    assert "ours/guide" in table
    assert "Better-Auth guide script, pages of 200" in table
    assert "guide (reported, not gated)" in table


def test_the_guide_port_sends_values_as_node_postgres_does() -> None:
    # Expected texts are what node-postgres 8.23's `prepareValue` returned for the same JavaScript values
    # (TZ=UTC). A JSON string goes as it is and an array as a Postgres array literal: neither is JSON.
    assert prepare_value("just a string") == "just a string"
    assert prepare_value([1, "two", {"three": 3}]) == '{"1","two","{\\"three\\":3}"}'
    assert prepare_value([[1, 2], [3, None]]) == '{{"1","2"},{"3",NULL}}'
    assert prepare_value({"a": 1, "b": [1, None, 'x"y\\z'], "c": "Tab\there\x01"}) == (
        '{"a":1,"b":[1,null,"x\\"y\\\\z"],"c":"Tab\\there\\u0001"}'
    )
    assert (prepare_value(True), prepare_value(1.5), prepare_value(42), prepare_value(None)) == (
        "true",
        "1.5",
        "42",
        None,
    )
    moment = datetime(2024, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    assert datetime.fromisoformat(str(prepare_value(moment))) == moment.replace(microsecond=123000)  # milliseconds
