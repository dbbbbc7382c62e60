"""What every engine operation needs: the databases, the queue and the policy, passed explicitly."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from auth_migration.connections import Connections
from auth_migration.queue import BatchQueue

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
    log: Callable[[str, dict[str, object]], None] = field(default=lambda msg, extra: _log.info(msg, extra=extra))
