"""A SnapStart restore against a real SSM API (a moto server): the API function's settings are read at init
through the container's shared SSM client, and a secret rotated after the snapshot reaches the resolver once
the restore hook has run, over the same client after its connections were closed."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from mypy_boto3_ssm import SSMClient

from auth_migration import ssm as shared_ssm
from auth_migration.settings import Settings
from auth_migration.snapstart import ApiRuntime
from tests.integration.test_flags_ssm import put, ssm_client, start_moto

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server, endpoint = start_moto()
    yield endpoint
    server.stop()


@pytest.fixture
def lambda_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment boto3 reads when auth_migration.ssm builds the container's client."""
    for name in shared_ssm._CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(shared_ssm, "_clients", {})


def service_key(settings: Settings) -> str:
    assert settings.supabase_service_key is not None
    return settings.supabase_service_key.get_secret_value()


def test_a_restore_serves_the_secret_rotated_after_the_snapshot(lambda_env: None, moto_endpoint: str) -> None:
    operator: SSMClient = ssm_client(moto_endpoint)
    prefix = "/auth-migration/snapstart-test/"
    put(operator, prefix, "SUPABASE_SERVICE_KEY", "key-at-publish", secure=True)
    restore_hooks: list[Callable[[], None]] = []

    runtime = ApiRuntime(
        {"PARAMETER_PREFIX": prefix}, service_key, start_sentry=lambda _s: None, register=restore_hooks.append
    )
    assert runtime.app == "key-at-publish"
    [client] = shared_ssm._clients.values()

    put(operator, prefix, "SUPABASE_SERVICE_KEY", "key-rotated", secure=True)
    restore_hooks[0]()  # what Lambda runs in an environment resumed from the snapshot

    assert runtime.app == "key-rotated"
    assert list(shared_ssm._clients.values()) == [client]  # the same client, not a second 115-165 ms build
