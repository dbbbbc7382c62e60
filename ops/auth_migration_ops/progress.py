"""Terminal output of the CLI: a one-line progress bar (stderr) and the human-readable final report."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from auth_migration_ops.local_pipeline import Progress


class ProgressBar:
    """Redraws one line on a terminal; prints a line per update (at most every few seconds) otherwise."""

    def __init__(self, *, enabled: bool = True, stream: TextIO | None = None, width: int = 30) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.width = width
        self._tty = self.stream.isatty()
        self._last_line_at = -10.0
        self._drawn = False

    def update(self, p: Progress) -> None:
        if not self.enabled:
            return
        total = max(p.batches_total, 1)
        filled = int(self.width * p.batches_done / total)
        rate = p.processed / p.elapsed_s if p.elapsed_s > 0 else 0.0
        line = (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {p.batches_done}/{p.batches_total} batches  "
            f"{p.processed:,} users  {p.errors:,} errors  {rate:,.0f} users/s  {p.elapsed_s:.1f}s"
        )
        if self._tty:
            self.stream.write("\r" + line)
            self._drawn = True
        elif p.elapsed_s - self._last_line_at >= 2 or p.batches_done == p.batches_total:
            self.stream.write(line + "\n")
            self._last_line_at = p.elapsed_s
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


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
    if "dlq_messages" in reply:
        lines.append(f"  dead-letter queue: {reply['dlq_messages']} message(s)")
    return "\n".join(lines)
