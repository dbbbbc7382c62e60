"""SsmFlagSource, load_settings and a SnapStart restore's re-read of them against a real SSM API (a moto server
on a free local port)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SSMProvider
from botocore.config import Config
from moto.server import ThreadedMotoServer
from mypy_boto3_ssm import SSMClient

from auth_migration import ssm as shared_ssm
from auth_migration.exceptions import ConfigError
from auth_migration.flags import CanarySelection, MigrationMode, SsmFlagSource
from auth_migration.settings import Settings, load_settings
from auth_migration.snapstart import ApiRuntime

# One attempt and short timeouts: the outage test must fail fast instead of retrying for seconds.
FAST_FAIL = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1, read_timeout=2)


def start_moto() -> tuple[ThreadedMotoServer, str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def ssm_client(endpoint_url: str) -> SSMClient:
    # Endpoint and fake credentials go to this client only: os.environ stays untouched.
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return session.client("ssm", endpoint_url=endpoint_url, config=FAST_FAIL)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server, endpoint = start_moto()
    yield endpoint
    server.stop()


@pytest.fixture
def ssm(moto_endpoint: str) -> SSMClient:
    return ssm_client(moto_endpoint)


@pytest.fixture
def prefix() -> str:
    # A fresh path per test: the moto backend is shared by the whole module.
    return f"/auth-migration/test-{uuid.uuid4().hex[:8]}/"


def put(ssm: SSMClient, prefix: str, name: str, value: str, *, secure: bool = False) -> None:
    ssm.put_parameter(Name=prefix + name, Value=value, Type="SecureString" if secure else "String", Overwrite=True)


def test_snapshot_reads_string_and_secure_string_flags(ssm: SSMClient, prefix: str) -> None:
    put(ssm, prefix, "MIGRATION_MODE", "dual_write")
    put(ssm, prefix, "USE_BETTER_AUTH", "true")
    put(ssm, prefix, "CANARY_ENABLED", "true")
    put(ssm, prefix, "CANARY_PERCENTAGE", "5")
    put(ssm, prefix, "CANARY_USER_SELECTION", "whitelist")
    put(ssm, prefix, "CANARY_WHITELIST", "Admin@Company.com,test@company.com", secure=True)
    warnings: list[str] = []
    source = SsmFlagSource(prefix, provider=SSMProvider(boto3_client=ssm), on_warning=warnings.append)

    flags = source.snapshot()

    assert flags.migration_mode is MigrationMode.DUAL_WRITE
    assert flags.use_better_auth is True
    assert flags.canary_enabled is True
    assert flags.canary_percentage == 5.0
    assert flags.canary_user_selection is CanarySelection.WHITELIST
    assert flags.canary_whitelist == frozenset({"admin@company.com", "test@company.com"})
    # The flags not stored fell back to their defaults, each with a warning.
    assert any("DRY_RUN is not set" in w for w in warnings)


def test_a_change_within_max_age_is_not_seen_until_the_cache_is_cleared(ssm: SSMClient, prefix: str) -> None:
    put(ssm, prefix, "CANARY_PERCENTAGE", "5")
    provider = SSMProvider(boto3_client=ssm)
    source = SsmFlagSource(prefix, max_age_s=300, provider=provider, on_warning=lambda _w: None)
    assert source.snapshot().canary_percentage == 5.0

    put(ssm, prefix, "CANARY_PERCENTAGE", "50")
    cached = source.snapshot()
    provider.clear_cache()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated
    fresh = source.snapshot()

    assert cached.canary_percentage == 5.0
    assert fresh.canary_percentage == 50.0


def test_a_change_is_seen_once_max_age_has_passed(ssm: SSMClient, prefix: str) -> None:
    put(ssm, prefix, "MIGRATION_MODE", "supabase_only")
    source = SsmFlagSource(prefix, max_age_s=1, provider=SSMProvider(boto3_client=ssm), on_warning=lambda _w: None)
    assert source.snapshot().migration_mode is MigrationMode.SUPABASE_ONLY

    put(ssm, prefix, "MIGRATION_MODE", "dual_write")
    time.sleep(1.2)

    assert source.snapshot().migration_mode is MigrationMode.DUAL_WRITE


def test_ssm_down_after_one_good_read_returns_the_last_good_snapshot(prefix: str) -> None:
    # Its own server, so stopping it cannot disturb the other tests.
    server, endpoint = start_moto()
    try:
        client = ssm_client(endpoint)
        put(client, prefix, "MIGRATION_MODE", "dual_write")
        warnings: list[str] = []
        # max_age 0: every snapshot goes to SSM, so the outage is really hit.
        source = SsmFlagSource(
            prefix, max_age_s=0, provider=SSMProvider(boto3_client=client), on_warning=warnings.append
        )
        good = source.snapshot()
    finally:
        server.stop()

    during_outage = source.snapshot()

    assert during_outage is good
    assert during_outage.migration_mode is MigrationMode.DUAL_WRITE
    assert "last good snapshot" in warnings[-1]


def test_ssm_down_before_any_read_is_a_config_error(prefix: str) -> None:
    server, endpoint = start_moto()
    server.stop()
    source = SsmFlagSource(prefix, provider=SSMProvider(boto3_client=ssm_client(endpoint)))

    with pytest.raises(ConfigError):
        source.snapshot()


def test_load_settings_takes_secure_string_secrets_from_the_prefix(ssm: SSMClient, prefix: str) -> None:
    put(ssm, prefix, "NEW_DATABASE_URL", "postgresql://app:from-ssm@db.internal/target", secure=True)
    put(ssm, prefix, "SUPABASE_SERVICE_KEY", "service-role-key", secure=True)
    put(ssm, prefix, "MIGRATION_MODE", "dual_write")  # a flag sharing the prefix: ignored here

    settings = load_settings(
        {"PARAMETER_PREFIX": prefix, "OLD_DATABASE_URL": "postgresql://old@db/source"},
        ssm_provider=SSMProvider(boto3_client=ssm),
    )

    assert settings.new_database_url == "postgresql://app:from-ssm@db.internal/target"
    assert settings.better_auth_database_url == settings.new_database_url
    assert settings.supabase_service_key is not None
    assert settings.supabase_service_key.get_secret_value() == "service-role-key"
    assert settings.old_database_url == "postgresql://old@db/source"
    assert "from-ssm" not in repr(settings)


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


def test_a_snapstart_restore_serves_the_secret_rotated_after_the_snapshot(
    lambda_env: None, moto_endpoint: str, prefix: str
) -> None:
    operator: SSMClient = ssm_client(moto_endpoint)
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
