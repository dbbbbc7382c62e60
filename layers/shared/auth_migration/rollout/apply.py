"""Write a planned set of changes: SSM first, in the planned order, then one audit row per change.

SSM is what every function obeys, so it goes first: an emergency rollback must work while Postgres is
down. The audit rows are handed to `record_audit`, which may keep them for later (the CLI spools them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from auth_migration.clock import Clock, system_clock
from auth_migration.exceptions import ConfigError
from auth_migration.rollout.audit import AuditEntry, Source
from auth_migration.rollout.changes import FlagChange
from auth_migration.rollout.store import FlagStore

__all__ = ["Applied", "apply_changes"]


@dataclass(frozen=True, slots=True)
class Applied:
    entries: list[AuditEntry]
    #: flag_changes ids, or None when the audit rows could not be written yet (kept for later).
    audit_ids: list[int] | None


def apply_changes(
    store: FlagStore,
    changes: Sequence[FlagChange],
    *,
    actor: str,
    reason: str,
    source: Source,
    record_audit: Callable[[Sequence[AuditEntry]], list[int] | None],
    forced: bool = False,
    details: dict[str, Any] | None = None,
    clock: Clock = system_clock,
) -> Applied:
    """Raises ConfigError when a write fails; the changes written before it are audited first."""
    if not reason.strip():
        raise ConfigError("a rollout change needs a reason")
    written: list[AuditEntry] = []
    try:
        for change in changes:
            store.write(change.name, change.new)
            written.append(AuditEntry(change, actor, reason.strip(), source, clock(), forced, details))
    except ConfigError as exc:
        if written:
            record_audit(written)
        done = ", ".join(f"{e.change.name}={e.change.new}" for e in written) or "nothing"
        raise ConfigError(f"{exc}; written before it: {done}") from exc
    return Applied(written, record_audit(written) if written else [])
