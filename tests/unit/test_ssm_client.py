"""auth_migration.ssm: settings and flags read SSM through one boto3 client per container, each with its own
Powertools provider (so its own cache), and never through a client built for another endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from auth_migration import ssm


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ssm._CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unit")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unit")
    monkeypatch.setattr(ssm, "_clients", {})


def test_every_reader_gets_its_own_provider_over_one_client() -> None:
    settings_reader, flags_reader = ssm.ssm_provider(), ssm.ssm_provider()

    assert settings_reader is not flags_reader
    assert settings_reader.client is flags_reader.client
    assert settings_reader.store is not flags_reader.store  # each keeps its own cache


def test_a_client_built_for_another_endpoint_is_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5001")
    first = ssm.ssm_provider().client
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5002")
    second = ssm.ssm_provider().client

    assert first is not second
    assert second.meta.endpoint_url == "http://127.0.0.1:5002"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5001")
    assert ssm.ssm_provider().client is first


def test_a_hung_ssm_is_given_up_on_within_seconds() -> None:
    config: Any = ssm.ssm_provider().client.meta.config  # botocore's stubs do not declare Config's attributes

    assert config.connect_timeout == 2
    assert config.read_timeout == 2
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}
    # Every attempt connecting and reading to its limit stays under the 10 s of a SnapStart restore hook.
    assert config.retries["total_max_attempts"] * (config.connect_timeout + config.read_timeout) < 10
