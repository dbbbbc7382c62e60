"""Smoke test of the cold-start bench: one fresh interpreter per variant, the JSON shape operators compare
over time, every handler importable offline. Not a timing test: one sample on a busy machine means little."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cold_start import (
    BASELINE,
    FUNCTIONS_DIR,
    Variant,
    discover_variants,
    hidden_modules,
    import_profile,
    main,
    sample,
)

pytestmark = pytest.mark.timeout(60)


def test_one_repetition_reports_every_variant_and_handler(capsys: pytest.CaptureFixture[str]) -> None:
    # --no-profile keeps it to one interpreter per variant; the profile's shape is tested below.
    rc = main(["--repeat", "1", "--warmup", "0", "--no-profile", "--json"])
    result = json.loads(capsys.readouterr().out)

    handlers = {f"handler:{p.parent.name}" for p in Path(FUNCTIONS_DIR).glob("*/app.py")}
    assert {"handler:migrate_batch", "handler:migration_control"} <= handlers
    assert set(result["variants"]) == {"bare", "boto3", BASELINE} | handlers
    assert result["repeat"] == 1
    assert result["baseline"] == BASELINE
    for name, entry in result["variants"].items():
        assert entry["error"] is None, (name, entry["error"])
        for key in ("init_ms", "import_ms", "interpreter_ms"):
            assert set(entry[key]) == {"median", "min", "samples"}, (name, key)
            assert len(entry[key]["samples"]) == 1
        assert entry["init_ms"]["median"] > 0
        assert entry["peak_rss_mb"] > 0
        # Importing a handler builds settings and connection holders, never a connection.
        assert entry["network_attempts"] == [], (name, entry["network_attempts"])
        if entry["kind"] == "handler":
            assert isinstance(entry["over_baseline_ms"], float | int)
        else:
            assert entry["over_baseline_ms"] is None
    assert result["variants"]["boto3"]["import_ms"]["median"] > 0
    assert result["ok"] is True
    assert rc == 0


def test_import_profile_lists_the_costliest_modules() -> None:
    (batch,) = [v for v in discover_variants() if v.name == "handler:migrate_batch"]
    profile = import_profile(batch)

    assert 0 < len(profile["top_cumulative"]) <= 10
    assert set(profile["top_cumulative"][0]) == {"module", "self_ms", "cumulative_ms", "depth"}
    assert all(row["module"] != "app" for row in profile["top_cumulative"])  # the handler itself is 100 %
    cumulative = [row["cumulative_ms"] for row in profile["top_cumulative"]]
    assert cumulative == sorted(cumulative, reverse=True)
    assert any(row["package"] == "auth_migration" for row in profile["top_packages"])
    assert profile["modules_imported"] > 0


def test_the_network_guard_sees_a_connection_attempt() -> None:
    """The guard that proves handlers import offline does catch a socket made at import time."""
    code = "import socket\ntry:\n    socket.getaddrinfo('127.0.0.1', 1)\nexcept OSError:\n    pass"
    taken = sample(Variant("probe", "baseline", code))
    assert any(a.startswith("socket.getaddrinfo") for a in taken.network)


def test_the_first_request_is_timed_and_stays_offline() -> None:
    """--invoke: the API handlers take one request their body validation refuses, right after the import."""
    variants = {v.name: v for v in discover_variants(invoke=True)}
    assert variants["handler:signup"].invoke and variants["handler:login"].invoke
    assert not variants["handler:migrate_batch"].invoke  # not an API handler: nothing to send it
    taken = sample(variants["handler:login"])  # the child exits non-zero unless the reply is a 400
    assert taken.invoke_s is not None and taken.invoke_s > 0
    assert taken.network == []


def test_what_the_layer_does_not_ship_is_hidden_and_the_projects_own_code_is_not() -> None:
    hidden = set(hidden_modules())
    assert {"click", "rich", "requests", "psycopg_pool", "pytest"} <= hidden
    assert not {"auth_migration", "httpx", "psycopg", "boto3", "pydantic", "email_validator"} & hidden
