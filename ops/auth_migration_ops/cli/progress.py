"""Terminal output of the CLI: a one-line progress bar (stderr) and the human-readable final report."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from auth_migration_ops.local.pipeline import Progress


class ProgressBar:
    """A live bar (rich) on a terminal; elsewhere (CI logs, pipes) a plain line at most every 2 s and at the end.

    A context manager: the bar is drawn from the first update and closed on exit. `force_terminal`
    decides the kind instead of asking the stream (tests).
    """

    def __init__(
        self, *, enabled: bool = True, stream: TextIO | None = None, force_terminal: bool | None = None
    ) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._terminal = self.stream.isatty() if force_terminal is None else force_terminal
        self._last_line_at = -10.0
        self._finished_shown = False
        self._live: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def update(self, p: Progress) -> None:
        if not self.enabled:
            return
        rate = p.processed / p.elapsed_s if p.elapsed_s > 0 else 0.0
        if not self._terminal:
            finished = p.batches_done == p.batches_total
            # The last line once: the pipeline reports the finished state again when it stops.
            if not self._finished_shown and (finished or p.elapsed_s - self._last_line_at >= 2):
                self._finished_shown = finished
                self.stream.write(
                    f"{p.batches_done}/{p.batches_total} batches  {p.processed:,} users  {p.errors:,} errors  "
                    f"{rate:,.0f} users/s  {p.elapsed_s:.1f}s\n"
                )
                self.stream.flush()
                self._last_line_at = p.elapsed_s
            return
        if self._live is None:
            self._start()
        self._live.update(
            self._task,
            total=max(p.batches_total, 1),
            completed=p.batches_done,
            users=p.processed,
            errors=p.errors,
            rate=rate,
        )

    def _start(self) -> None:
        # Imported here: only a run on a terminal pays for rich, never a handler or a JSON run.
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        console = Console(file=self.stream, force_terminal=True)
        self._live = RichProgress(
            TextColumn("batches"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "{task.fields[users]:,} users  {task.fields[errors]:,} errors  {task.fields[rate]:,.0f} users/s"
            ),
            TimeElapsedColumn(),
            console=console,
            # rich would swap sys.stdout/sys.stderr for proxies printing above the bar: the functions'
            # output is routed to the run's telemetry file by those same streams, and must stay there.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()
        self._task = self._live.add_task("migrate", total=None, users=0, errors=0, rate=0.0)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def format_report(reply: dict[str, Any]) -> str:
    """The final report, or the reply of any control action, as aligned text."""
    if reply.get("action") != "status":
        return "\n".join(f"{k:>18}: {v}" for k, v in reply.items() if k not in ("ok", "extra") and v is not None)
    lines = [
        f"migration {reply['migration_id']}  ({'DRY RUN, nothing written' if reply['dry_run'] else 'live'})",
        f"  status        {reply['status']}",
        f"  source        {reply['source']} -> {reply['target']}",
        f"  processed     {reply['processed_count']:,} users in {reply['elapsed_s']:.1f} s"
        + (f"  ({reply['users_per_s']:,.0f} users/s)" if reply.get("users_per_s") else ""),
        f"  errors        {reply['error_count']:,}",
        f"  batches       {reply['batches_done']}/{reply['batches_total']} done, {reply['batches_failed']} failed",
        "  outcomes:",
    ]
    for key, count in sorted(reply["outcomes"].items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"    {key:<40} {count:>10,}")
    reset = reply.get("needs_password_reset")
    if isinstance(reset, dict) and reset.get("count"):
        verb = "would need" if reset.get("predicted") else "need"
        lines.append(
            f"  {reset['count']:,} user(s) {verb} a password reset or a magic link (no usable hash):"
            " `migrate status --json` lists the first ids"
        )
    if "dlq_messages" in reply:
        lines.append(f"  dead-letter queue: {reply['dlq_messages']} message(s)")
    if "telemetry_file" in reply:
        blobs, logs = reply.get("telemetry_metric_blobs", 0), reply.get("telemetry_log_lines", 0)
        lines.append(
            f"  telemetry     {reply['telemetry_file']} ({blobs:,} metric blob{'' if blobs == 1 else 's'}, "
            f"{logs:,} log line{'' if logs == 1 else 's'})"
        )
    return "\n".join(lines)
