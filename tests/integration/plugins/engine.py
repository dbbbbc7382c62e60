"""A migration database (Supabase source, Better-Auth target, state) and an engine that runs batches inline."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from auth_migration.clock import Clock
from auth_migration.connections import Connections
from auth_migration.engine import EngineContext, process_batch
from auth_migration.engine.batch import BatchResult
from auth_migration.queue import ListQueue
from auth_migration_ops.datakit.schemas import create_better_auth_tables_from_sql as create_better_auth_schema
from auth_migration_ops.datakit.schemas import prepare_migration_database
from tests.reference_time import REFERENCE_CLOCK

#: Names the tests use for the shared setup (kept so tests read as before).
prepare_migration_db = prepare_migration_database
__all__ = ["InlineEngine", "create_better_auth_schema", "prepare_migration_db"]


@dataclass
class InlineEngine:
    """The engine with every URL on one database and a list as the queue; drain() runs the batches.

    Its clock is pinned (REFERENCE_TIME unless told): generate data with the same reference_time.
    """

    url: str
    stage: str = "dev"
    target_url: str | None = None
    queue: ListQueue = field(default_factory=ListQueue)
    contexts: list[EngineContext] = field(default_factory=list)
    clock: Clock = REFERENCE_CLOCK

    def context(self) -> EngineContext:
        conns = Connections(self.url, self.url, self.target_url or self.url)
        ctx = EngineContext(connections=conns, queue=self.queue, stage=self.stage, retry_base_s=0.01, clock=self.clock)
        self.contexts.append(ctx)
        return ctx

    def drain(self, ctx: EngineContext | None = None) -> list[BatchResult]:
        ctx = ctx or self.context()
        results = []
        while self.queue.messages:
            msg = self.queue.messages.pop(0)
            # As MigrateBatch does with an invocation's records: the next batch is read while this one writes.
            results.append(process_batch(msg, ctx, next_msg=self.queue.messages[0] if self.queue.messages else None))
        ctx.discard_prefetched()
        return results

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.connections.close()


@pytest.fixture
def migration_db(database: str) -> str:
    prepare_migration_database(database, profiles=True)
    return database


@pytest.fixture
def inline_engine(migration_db: str) -> Iterator[InlineEngine]:
    engine = InlineEngine(migration_db)
    yield engine
    engine.close()


@pytest.fixture
def make_inline_engine() -> Iterator[Callable[..., InlineEngine]]:
    made: list[InlineEngine] = []

    def _make(url: str, **kwargs: object) -> InlineEngine:
        engine = InlineEngine(url, **kwargs)  # type: ignore[arg-type]
        made.append(engine)
        return engine

    yield _make
    for engine in made:
        engine.close()
