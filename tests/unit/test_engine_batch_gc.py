"""A Better-Auth batch runs with the cyclic GC paused, and the collector's state survives any batch (no I/O)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import psycopg
import pytest

from auth_migration.connections import Connections
from auth_migration.engine import EngineContext, process_batch
from auth_migration.engine.batch import GcPause
from auth_migration.models import BatchMessage
from auth_migration.targets import BetterAuthTarget

_URL = "postgresql://nobody@127.0.0.1:1/never"  # Connections connects lazily: never reached here


class _StateLostMidBatch(Connections):
    """The state database fails the batch's first statement; remembers whether the GC ran meanwhile."""

    def __init__(self) -> None:
        super().__init__(_URL, _URL, _URL)
        self.gc_enabled_inside: bool | None = None

    @property
    def state(self) -> psycopg.Connection:
        self.gc_enabled_inside = gc.isenabled()
        raise RuntimeError("state database lost mid-batch")


@pytest.fixture
def gc_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def _failing_batch() -> tuple[BatchMessage, EngineContext, _StateLostMidBatch]:
    conns = _StateLostMidBatch()
    ctx = EngineContext(connections=conns, max_retries=0)
    msg = BatchMessage(migration_id="m1", batch_no=1, after_id=None, upto_id="u9")
    ctx.targets[msg.migration_id] = BetterAuthTarget.name  # as a warm container knows it: no query
    return msg, ctx, conns


@pytest.mark.usefixtures("gc_enabled")
def test_batch_that_raises_pauses_the_gc_and_restores_it() -> None:
    msg, ctx, conns = _failing_batch()
    with pytest.raises(RuntimeError, match="lost mid-batch"):
        process_batch(msg, ctx)
    assert conns.gc_enabled_inside is False
    assert gc.isenabled()


def test_batch_leaves_a_disabled_gc_disabled() -> None:
    was = gc.isenabled()
    gc.disable()
    try:
        msg, ctx, _ = _failing_batch()
        with pytest.raises(RuntimeError):
            process_batch(msg, ctx)
        assert not gc.isenabled()
    finally:
        if was:
            gc.enable()


@pytest.mark.usefixtures("gc_enabled")
def test_nested_pauses_restore_the_gc_only_when_the_outermost_leaves() -> None:
    pause = GcPause()
    with pause:
        with pytest.raises(ValueError, match="inner batch"), pause:
            raise ValueError("inner batch failed")
        assert not gc.isenabled()
    assert gc.isenabled()
