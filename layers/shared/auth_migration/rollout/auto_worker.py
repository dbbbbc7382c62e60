"""The AutoRollback function's work: one checker run per scheduled event, its decision as the reply,
logs and metrics (CanaryPercentage in force every run); a state database that cannot be reached is
reported, not raised (the next tick tries again, and a failed run rolls nothing back by itself). With
Sentry on, each run is a cron check-in: ok, or error when it could not judge."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

import psycopg
from aws_lambda_powertools.metrics import MetricUnit

from auth_migration.clock import Clock, system_clock
from auth_migration.connections import Connections
from auth_migration.exceptions import AuthMigrationError
from auth_migration.flags import parse_flags
from auth_migration.observability import logger, metrics
from auth_migration.rollout.auto import Decision, run_auto_rollback
from auth_migration.rollout.store import FlagStore
from auth_migration.sentry import auto_rollback_run
from auth_migration.settings import Settings

__all__ = ["handle_schedule"]


class _WatchedStore:
    """The run's flag store, remembering what it read and wrote: the flags in force after the run."""

    def __init__(self, store: FlagStore) -> None:
        self._store = store
        self.read_values: dict[str, str] | None = None
        self.written: dict[str, str] = {}

    def read(self) -> dict[str, str]:
        values = self._store.read()
        self.read_values = dict(values)
        return values

    def write(self, name: str, value: str) -> None:
        self._store.write(name, value)
        self.written[name] = value

    def canary_percentage(self) -> float | None:
        """CANARY_PERCENTAGE in force (0 with the canary off), or None when the run read no flags."""
        if self.read_values is None:
            return None
        flags, _warnings = parse_flags({**self.read_values, **self.written})
        return flags.canary_percentage if flags.canary_enabled else 0.0


def handle_schedule(
    settings: Settings, store: FlagStore, conns: Connections, *, clock: Clock = system_clock
) -> dict[str, Any]:
    watched = _WatchedStore(store)
    retention = timedelta(days=settings.auth_events_retention_days)
    with auto_rollback_run() as run:
        try:
            decision = conns.transact(
                "state", lambda conn: run_auto_rollback(conn, watched, retention=retention, clock=clock)
            )
        except (AuthMigrationError, psycopg.Error) as exc:
            logger.error("auto-rollback run failed", extra={"error": type(exc).__name__, "detail": str(exc)})
            metrics.add_metric(name="AutoRollbackRunFailed", unit=MetricUnit.Count, value=1)
            run.failed(type(exc).__name__)
            return {"action": "failed", "reason": str(exc)}
        percentage = watched.canary_percentage()
        if percentage is not None:
            metrics.add_metric(name="CanaryPercentage", unit=MetricUnit.Percent, value=percentage)
        run.decided(
            action=decision.action,
            reason=decision.reason,
            figures=decision.figures,
            alert=decision.alert,
            canary_percentage=percentage,
        )
        _report(decision)
        return asdict(decision)


def _report(decision: Decision) -> None:
    extra = {"action": decision.action, "reason": decision.reason, "figures": decision.figures, "plan": decision.plan}
    plan_action = decision.plan["action"] if decision.plan else None
    if decision.action == "rollback":
        logger.warning("auto-rollback stepped back", extra=extra)
        metrics.add_metric(name="AutoRollbackTripped", unit=MetricUnit.Count, value=1)
    elif decision.alert:
        logger.error("auto-rollback holds on a shared outage", extra=extra)
        metrics.add_metric(name="AutoRollbackSharedOutage", unit=MetricUnit.Count, value=1)
    elif plan_action == "advance":
        logger.info("canary plan advanced", extra=extra)
        metrics.add_metric(name="CanaryPlanAdvanced", unit=MetricUnit.Count, value=1)
    elif plan_action == "ready":
        # Logged once per plan: it is no longer open after this run. A person decides on phase 3.
        logger.warning("canary plan ready for phase 3", extra=extra)
        metrics.add_metric(name="CanaryPlanReady", unit=MetricUnit.Count, value=1)
    elif plan_action == "stop":
        logger.warning("canary plan stopped: its flags were changed by other means", extra=extra)
    else:
        logger.info("auto-rollback run", extra=extra)
        if decision.action == "hold":
            metrics.add_metric(name="AutoRollbackHeld", unit=MetricUnit.Count, value=1)
