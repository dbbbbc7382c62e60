"""The migration engine: plan keyset batches, migrate one batch, roll back, report."""

from __future__ import annotations

from auth_migration.engine.batch import BatchResult, process_batch
from auth_migration.engine.context import EngineContext
from auth_migration.engine.plan import resume_migration, start_migration
from auth_migration.engine.report import migration_report
from auth_migration.engine.rollback import rollback_migration

__all__ = [
    "BatchResult",
    "EngineContext",
    "migration_report",
    "process_batch",
    "resume_migration",
    "rollback_migration",
    "start_migration",
]
