"""The API functions' init, made safe to snapshot: Lambda SnapStart runs init once, when a version is
published, and every later cold start resumes a copy of that memory, possibly days later and many at once.

What the snapshot holds that must not be shared or kept stale, and what `ApiRuntime.after_restore` does:
- Python's `random` state, seeded once at import: every restored environment would draw the same retry
  jitter (retry.py), so their retries would meet again. It is reseeded from os.urandom.
- The SSM client's pooled connection, opened by init's read of the settings: its socket is not the
  restored environment's. It is closed; the next call opens its own.
- The settings: secrets read from SSM when the version was published. A secret rotated since (a database
  password, the Supabase service key) would stay old in every restored environment until the next deploy.
  They are read again, and the resolver is rebuilt when they differ. The imports, pydantic's schemas and the
  TLS context stay in the snapshot, so a rebuild costs milliseconds, not the init.

Nothing else at init is unique or connected: no database connection and no HTTP request is made before the
first request (bench/cold_start.py fails a handler whose import touches the network), and uuids, salts and
tokens come from os.urandom, per call.

Only a snapshotting init (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start) registers the hook, through the
runtime's own snapshot_restore_py (in the python3.12+ managed runtimes, not in the layer): an on-demand init
imports nothing more.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any, Final

from auth_migration.exceptions import ConfigError
from auth_migration.observability import logger
from auth_migration.sentry import init_sentry
from auth_migration.settings import Settings, load_settings
from auth_migration.ssm import close_connections

__all__ = ["INITIALIZATION_TYPE", "SNAP_START", "ApiRuntime", "snapshotting"]

#: Set by Lambda for the init phase: "on-demand", "provisioned-concurrency" or "snap-start".
INITIALIZATION_TYPE: Final = "AWS_LAMBDA_INITIALIZATION_TYPE"
SNAP_START: Final = "snap-start"

Register = Callable[[Callable[[], None]], Any]


def snapshotting(environ: Mapping[str, str]) -> bool:
    """True during the init Lambda takes a SnapStart snapshot of."""
    return environ.get(INITIALIZATION_TYPE) == SNAP_START


def _runtime_hook() -> Register:
    from snapshot_restore_py import register_after_restore  # the managed runtime's (python3.12+)

    return register_after_restore  # type: ignore[no-any-return]


class ApiRuntime[App]:
    """An API function's settings and the resolver built from them, made once per container (init).

    `app` is read on every request, so a rebuild after a restore is seen by the next one. `load`, `build`,
    `start_sentry` and `register` are the real ones in Lambda; tests pass their own.
    """

    def __init__(
        self,
        environ: Mapping[str, str],
        build: Callable[[Settings], App],
        *,
        load: Callable[[Mapping[str, str]], Settings] = load_settings,
        start_sentry: Callable[[Settings], object] = init_sentry,
        register: Register | None = None,
    ) -> None:
        self._environ = environ
        self._build = build
        self._load = load
        self._start_sentry = start_sentry
        self.settings = load(environ)
        start_sentry(self.settings)
        self.app = build(self.settings)
        if register is None and snapshotting(environ):
            register = _runtime_hook()
        if register is not None:
            register(self.after_restore)

    def after_restore(self) -> None:
        """Run by Lambda in each environment resumed from the snapshot, before its first request."""
        random.seed()  # from os.urandom: each environment its own jitter
        close_connections()
        try:
            fresh = self._load(self._environ)
            if fresh == self.settings:
                return
            app = self._build(fresh)
        except ConfigError as exc:
            # Keep serving with the snapshot's settings (what a warm container does) rather than fail the
            # restore: Lambda would answer API Gateway with a bare 502 until the next deploy.
            logger.warning(
                "settings not re-read after a SnapStart restore; keeping the snapshot's", extra={"error": str(exc)}
            )
            return
        changed = sorted(name for name in Settings.model_fields if getattr(fresh, name) != getattr(self.settings, name))
        if fresh.sentry_dsn != self.settings.sentry_dsn:
            self._start_sentry(fresh)
        self.app = app
        self.settings = fresh
        # Names only: the values are secrets.
        logger.info("settings changed since the SnapStart snapshot; resolver rebuilt", extra={"changed": changed})
