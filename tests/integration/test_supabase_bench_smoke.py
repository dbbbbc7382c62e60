"""Smoke test of the supabase-target bench: a tiny run with two engine contexts gives every figure the
closing notes quote (users/s, share of the cap and of what the machine reaches, the no-cap ceiling, the
seed's sequential way), with zero errors. Not a timing test: the figures at this size mean nothing."""

from __future__ import annotations

import json

import pytest

from bench import supabase_target

pytestmark = pytest.mark.timeout(300)


def test_tiny_supabase_bench_reports_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--caps", "40", "--seconds", "1", "--latency-ms", "5", "--containers", "2"]
    code = supabase_target.main([*argv, "--ceiling-users", "60", "--sequential-users", "10", "--json"])
    result = json.loads(capsys.readouterr().out)

    assert code == 0
    assert result["containers"] == 2
    (run,) = result["engine"]
    assert run["cap_rps"] == 40 and run["users"] == 40 and run["errors"] == 0
    assert run["containers"] == 2 and run["requests"] >= run["users"]
    assert run["of_cap"] > 0 and run["of_reach"] > 0
    assert result["ceiling"]["users"] == 60 and result["ceiling"]["errors"] == 0
    assert result["sequential"]["users"] == 10 and result["sequential"]["users_per_s"] > 0
