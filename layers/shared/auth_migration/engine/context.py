"""What every engine operation needs: the databases, the queue and the policy, passed explicitly."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auth_migration.clock import Clock, system_clock
from auth_migration.connections import Connections
from auth_migration.engine.prefetch import Prefetcher
from auth_migration.queue import BatchQueue
from auth_migration.targets import BetterAuthTarget, TargetCapabilities
from auth_migration.targets.rate_limit import Limiter
from auth_migration.targets.supabase import GoTrueAdmin

_log = logging.getLogger("auth_migration.engine")


@dataclass
class EngineContext:
    connections: Connections
    queue: BatchQueue | None = None
    stage: str = "dev"
    #: Transient-error retries inside one invocation before the message goes back to SQS.
    max_retries: int = 3
    retry_base_s: float = 0.2
    #: SQS receives after which a failing batch is marked failed (its message then goes to the DLQ).
    max_receive_count: int = 5
    #: Read once per `start` to fix the migration's `as_of`; tests pin it (fixed_clock).
    clock: Clock = system_clock
    log: Callable[[str, dict[str, object]], None] = field(default=lambda msg, extra: _log.info(msg, extra=extra))
    #: GoTrue's admin API for the `supabase` target: one client per container.
    gotrue: GoTrueAdmin | None = None
    #: migration id -> its shared request cap (engine/supabase_batch.pace_of), kept while warm.
    limiters: dict[str, Limiter] = field(default_factory=dict, repr=False)
    #: migration id -> its target (fixed at start): a batch picks its path without another query.
    targets: dict[str, str] = field(default_factory=dict, repr=False)
    #: Read and decide the next batch while this one writes (engine/batch.py prefetch_batch); off: every
    #: batch does all its work under its lock (the tests compare both).
    prefetch: bool = True
    _capabilities: dict[str, TargetCapabilities] = field(default_factory=dict, repr=False)
    _prefetcher: Prefetcher[Any] | None = field(default=None, repr=False)

    def capabilities(self, target: BetterAuthTarget, conn: Any = None) -> TargetCapabilities:
        """The target's checked schema, once per warm container (an information_schema query each batch
        cost more than the batch's own lookups). A schema change needs a new container, as a deploy does.
        `conn`: the target's connection to check it on (default: the shared one)."""
        if target.name not in self._capabilities:
            self._capabilities[target.name] = target.check(conn if conn is not None else self.connections.target)
        return self._capabilities[target.name]

    def prefetcher(self) -> Prefetcher[Any]:
        if self._prefetcher is None:
            self._prefetcher = Prefetcher(
                on_error=lambda key, exc: self.log(
                    "batch prefetch failed", {"batch": str(key), "error": type(exc).__name__}
                )
            )
        return self._prefetcher

    def discard_prefetched(self) -> None:
        """Drop (after waiting for) any batch read ahead: called when an invocation ends, and before the
        connections are reset."""
        if self._prefetcher is not None:
            self._prefetcher.discard()
