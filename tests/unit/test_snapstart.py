"""auth_migration.snapstart: what an API function's init leaves in a SnapStart snapshot is made right again in
each restored environment (random state, SSM connections, settings), and nothing changes without SnapStart."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import snapshot_restore_py
from pydantic import SecretStr

from auth_migration import snapstart, ssm
from auth_migration.exceptions import ConfigError
from auth_migration.settings import Settings

KEY_AT_PUBLISH = "service-key-at-publish"
ROTATED_KEY = "service-key-rotated"


class Loader:
    """load_settings as the runtime calls it: returns `current`, or raises `failure`; counts the reads."""

    def __init__(self, current: Settings) -> None:
        self.current = current
        self.failure: Exception | None = None
        self.reads = 0

    def __call__(self, _environ: Mapping[str, str]) -> Settings:
        self.reads += 1
        if self.failure is not None:
            raise self.failure
        return self.current


class Built:
    """What `build` returns: the resolver stands in as the settings it was built from."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings


def settings(key: str = KEY_AT_PUBLISH, dsn: str | None = None) -> Settings:
    return Settings(
        supabase_service_key=SecretStr(key),
        sentry_dsn=SecretStr(dsn) if dsn else None,
        parameter_prefix="/auth-migration/dev/",
    )


@pytest.fixture
def no_ssm_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssm, "_clients", {})


@pytest.fixture
def restore_hooks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The runtime library's own registry, emptied for the test."""
    registry: list[Any] = []
    monkeypatch.setattr(snapshot_restore_py, "_after_restore_registry", registry)
    return registry


def runtime(
    loader: Loader,
    *,
    register: Callable[[Callable[[], None]], Any] | None = None,
    environ: Mapping[str, str] | None = None,
    sentry: list[Settings] | None = None,
) -> snapstart.ApiRuntime[Built]:
    started = sentry if sentry is not None else []
    return snapstart.ApiRuntime(
        environ or {},
        Built,
        load=loader,
        start_sentry=started.append,
        register=register,
    )


def test_only_a_snapstart_init_counts_as_snapshotting() -> None:
    assert snapstart.snapshotting({"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"})
    assert not snapstart.snapshotting({"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"})
    assert not snapstart.snapshotting({"AWS_LAMBDA_INITIALIZATION_TYPE": "provisioned-concurrency"})
    assert not snapstart.snapshotting({})


def test_an_on_demand_init_registers_no_hook(monkeypatch: pytest.MonkeyPatch, restore_hooks: list[Any]) -> None:
    def no_runtime_hook() -> Any:
        raise AssertionError("snapshot_restore_py imported outside a SnapStart init")

    monkeypatch.setattr(snapstart, "_runtime_hook", no_runtime_hook)
    loader = Loader(settings())
    built = runtime(loader, environ={"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"})

    assert built.app.settings is loader.current
    assert restore_hooks == []
    assert loader.reads == 1


def test_a_snapstart_init_registers_its_restore_hook_with_the_runtime(restore_hooks: list[Any]) -> None:
    built = runtime(Loader(settings()), environ={"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"})

    assert restore_hooks == [(built.after_restore, (), {})]


def test_init_starts_sentry_and_builds_the_resolver_from_the_settings_it_read() -> None:
    loader, started = Loader(settings(dsn="https://key@sentry.example/1")), list[Settings]()
    built = runtime(loader, sentry=started)

    assert started == [loader.current]
    assert built.settings is loader.current
    assert built.app.settings is loader.current


def test_each_restored_environment_draws_its_own_random_numbers(no_ssm_clients: None) -> None:
    hooks: list[Callable[[], None]] = []
    runtime(Loader(settings()), register=hooks.append)
    random.seed(1234)  # the state every environment resumes with: the snapshot's
    snapshot_state = random.getstate()
    without_hook = random.random()

    draws = []
    for _environment in range(2):
        random.setstate(snapshot_state)
        hooks[0]()
        draws.append(random.random())

    assert without_hook not in draws
    assert draws[0] != draws[1]


def test_a_restore_with_unchanged_settings_keeps_the_resolver(no_ssm_clients: None) -> None:
    loader, started = Loader(settings()), list[Settings]()
    built = runtime(loader, sentry=started)
    before = built.app
    loader.current = settings()  # read again: equal values, a new object

    built.after_restore()

    assert loader.reads == 2
    assert built.app is before
    assert len(started) == 1


def test_a_secret_rotated_since_the_snapshot_rebuilds_the_resolver(
    no_ssm_clients: None, caplog: pytest.LogCaptureFixture
) -> None:
    loader, started = Loader(settings()), list[Settings]()
    built = runtime(loader, sentry=started)
    loader.current = settings(ROTATED_KEY)

    built.after_restore()

    assert built.settings is loader.current
    assert built.app.settings is loader.current
    assert len(started) == 1  # the DSN did not change: Sentry is not started again
    [record] = [r for r in caplog.records if r.name == "auth-migration"]
    assert record.changed == ["supabase_service_key"]  # type: ignore[attr-defined]
    logged = f"{record.getMessage()} {vars(record)}"
    assert ROTATED_KEY not in logged
    assert KEY_AT_PUBLISH not in logged


def test_a_new_sentry_dsn_restarts_sentry(no_ssm_clients: None) -> None:
    loader, started = Loader(settings(dsn="https://old@sentry.example/1")), list[Settings]()
    built = runtime(loader, sentry=started)
    loader.current = settings(dsn="https://new@sentry.example/1")

    built.after_restore()

    assert started == [settings(dsn="https://old@sentry.example/1"), loader.current]


def test_settings_that_cannot_be_read_at_restore_keep_the_snapshots(
    no_ssm_clients: None, caplog: pytest.LogCaptureFixture
) -> None:
    loader = Loader(settings())
    built = runtime(loader)
    before_app, before_settings = built.app, built.settings
    loader.failure = ConfigError("PARAMETER_PREFIX: cannot read SSM parameters under /auth-migration/dev")

    built.after_restore()  # must not raise: a failed restore hook fails the environment

    assert built.app is before_app
    assert built.settings is before_settings
    assert any("keeping the snapshot's" in r.getMessage() for r in caplog.records)


def test_a_restore_closes_the_ssm_connections_init_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    class Client:
        closed = 0

        def close(self) -> None:
            self.closed += 1

    client = Client()
    monkeypatch.setattr(ssm, "_clients", {("eu-west-1",): client})
    built = runtime(Loader(settings()))

    built.after_restore()

    assert client.closed == 1


def test_a_resolver_that_cannot_be_built_from_the_new_settings_keeps_the_snapshots(no_ssm_clients: None) -> None:
    loader = Loader(settings())
    builds: list[Settings] = []

    def build(current: Settings) -> Built:
        builds.append(current)
        if len(builds) > 1:
            raise ConfigError("SUPABASE_URL: must be an http:// or https:// URL")
        return Built(current)

    built = snapstart.ApiRuntime({}, build, load=loader, start_sentry=lambda _s: None)
    before_app, before_settings = built.app, built.settings
    loader.current = settings(ROTATED_KEY)

    built.after_restore()

    assert len(builds) == 2
    assert built.app is before_app
    assert built.settings is before_settings
