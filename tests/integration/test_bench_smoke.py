"""Smoke test of the migration bench: a tiny run has the JSON shape operators compare over time, and
no variant writes a user twice. Not a timing test: the figures at this size mean nothing."""

from __future__ import annotations

import json

import psycopg
import pytest

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
