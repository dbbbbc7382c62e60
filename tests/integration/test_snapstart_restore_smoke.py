"""Smoke test of the SnapStart restore bench: each API handler, initialised as a SnapStart snapshot would be,
registers its one after-restore hook, and environments forked from it (a restore, random state included) each
draw their own random numbers and answer their first request. Not a timing test."""

from __future__ import annotations

import json

import pytest

from bench.snapstart_restore import main

pytestmark = pytest.mark.timeout(120)


def test_every_api_handler_restores_with_its_own_random_state(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--restores", "2", "--json"])
    result = json.loads(capsys.readouterr().out)

    assert set(result["variants"]) == {"handler:signup", "handler:login", "handler:session_exchange"}
    for name, entry in result["variants"].items():
        assert entry["error"] is None, (name, entry["error"])
        assert entry["restore_hooks"] == 1, name
        assert entry["distinct_random_draws"] == 2, name
        assert entry["first_request_ms"]["median"] > 0
    assert result["ok"] is True
    assert rc == 0


def test_one_restore_cannot_show_distinct_draws(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--restores", "1"])

    assert exit_info.value.code == 2
    assert "--restores must be at least 2" in capsys.readouterr().err
