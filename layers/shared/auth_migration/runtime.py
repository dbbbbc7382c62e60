"""Builds what a function needs from its Settings, once per container (cold start), reused while warm."""

from __future__ import annotations

from typing import TYPE_CHECKING

from auth_migration.connections import Connections
from auth_migration.flags import FlagSource, SsmFlagSource, StaticFlagSource
from auth_migration.observability import logger
from auth_migration.settings import Settings

if TYPE_CHECKING:
    from auth_migration.engine import EngineContext
    from auth_migration.queue import BatchQueue


def connections(settings: Settings) -> Connections:
    """State, source and target connections as the settings name them (opened lazily)."""
    return Connections(
        state_url=settings.new_database_url,
        source_url=settings.old_database_url,
        target_url=settings.better_auth_database_url or settings.new_database_url,
    )


def engine_context(settings: Settings, *, queue: BatchQueue | None = None) -> EngineContext:
    # Imported here, not at module level (cold start): Signup, Login, Reconcile, Admin and AutoRollback
    # import this module for `connections` / `flag_source` and never build an EngineContext; the engine
    # package (batch, plan, rollback, report, sources) and the GoTrue target are ~7 ms of their import.
    from auth_migration.engine import EngineContext
    from auth_migration.queue import SqsBatchQueue
    from auth_migration.targets.supabase import GoTrueAdmin

    conns = connections(settings)
    if queue is None and settings.migration_queue_url:
        queue = SqsBatchQueue(settings.migration_queue_url)
    return EngineContext(
        connections=conns,
        queue=queue,
        stage=settings.stage,
        max_receive_count=settings.max_receive_count,
        log=lambda msg, extra: logger.info(msg, extra=extra),
        # Only where a service key is configured: the supabase target's batches and rollbacks need it.
        gotrue=GoTrueAdmin.from_settings(settings),
    )


def flag_source(settings: Settings) -> FlagSource:
    """SSM flags under PARAMETER_PREFIX (cached FLAGS_MAX_AGE_S, default 10 s), or the safe defaults
    where no prefix is set."""
    if settings.parameter_prefix:
        return SsmFlagSource(settings.parameter_prefix, max_age_s=settings.flags_max_age_s, on_warning=logger.warning)
    return StaticFlagSource()
