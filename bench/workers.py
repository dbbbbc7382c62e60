"""A bench worker process: its own EngineContext and connections, draining batch messages from a
multiprocessing queue, as concurrent Lambda invocations would drain SQS (without SQS itself).

Lives in its own module so that spawned children import it by name, whatever the parent's __main__ is.
"""

from __future__ import annotations

import os
import resource
import time
from multiprocessing.queues import Queue
from typing import Any

from auth_migration.connections import Connections
from auth_migration.engine import EngineContext, process_batch
from auth_migration.models import BatchMessage

#: What goes through the task queue: (migration_id, batch_no, after_id, upto_id), or None to stop.
Task = tuple[str, int, str | None, str] | None


def peak_rss_mb() -> float:
    """This process's own peak resident set size, in MiB.

    VmHWM (/proc/self/status) belongs to the current address space and starts afresh at exec;
    getrusage's ru_maxrss does not: Linux carries it over fork and exec, so a spawned worker would
    report its parent's peak (seen here: every worker "peaked" at the bench process's 120 MB).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # reported in kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def run_worker(url: str, tasks: Queue[Task], results: Queue[tuple[str, dict[str, Any]]]) -> None:
    """Connect, say ready, then process batches until the None sentinel; report counts and peak RSS."""
    conns = Connections(url, url, url)
    ctx = EngineContext(connections=conns, queue=None, retry_base_s=0.01)
    conns.state.execute("SELECT 1")  # connect before "ready": connection setup is not batch time
    results.put(("ready", {"pid": os.getpid()}))
    batches = users = 0
    errors: list[str] = []
    busy = 0.0
    try:
        task = tasks.get()
        while task is not None:
            # Two messages at a time, as a MigrateBatch invocation holds several: the next is read ahead.
            following = tasks.get()
            started = time.perf_counter()
            try:
                result = process_batch(
                    BatchMessage(*task), ctx, next_msg=BatchMessage(*following) if following is not None else None
                )
                batches += 1
                users += result.users
            except Exception as exc:  # reported to the parent, which fails the run: a bench must not hide errors
                errors.append(f"batch {task[1]}: {type(exc).__name__}: {str(exc)[:200]}")
            busy += time.perf_counter() - started
            task = following
    finally:
        ctx.discard_prefetched()
        conns.close()
        results.put(
            (
                "done",
                {
                    "pid": os.getpid(),
                    "batches": batches,
                    "users": users,
                    "busy_seconds": round(busy, 3),
                    "errors": errors,
                    "peak_rss_mb": round(peak_rss_mb(), 1),
                },
            )
        )
