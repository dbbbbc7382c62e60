"""Time bombs are caught the day they are written: the layer reads the wall clock in one place only.

Code that judges or stamps time takes a Clock (auth_migration.clock) so tests can pin it; a new
`datetime.now()` elsewhere in the layer fails here instead of on the day some fixed date passes.
"""

from __future__ import annotations

import ast
from pathlib import Path

LAYER = Path(__file__).resolve().parents[2] / "layers" / "shared" / "auth_migration"
#: Where a wall-clock read is the point: the clock itself, and turning a server's absolute time
#: (Retry-After date, cookie Max-Age) into a relative one at receipt (both take `now=` for tests).
ALLOWED = {"clock.py", "backends/transport.py", "backends/better_auth.py"}
CLOCK_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"), ("time", "time")}


def clock_reads(path: Path) -> list[int]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
            if (name, node.func.attr) in CLOCK_CALLS:
                found.append(node.lineno)
    return found


def test_the_layer_reads_the_wall_clock_only_through_its_clock() -> None:
    offenders = {
        str(path.relative_to(LAYER)): lines
        for path in sorted(LAYER.rglob("*.py"))
        if str(path.relative_to(LAYER)) not in ALLOWED and (lines := clock_reads(path))
    }
    assert offenders == {}


def test_the_scan_sees_a_clock_read(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import datetime, time\nx = datetime.datetime.now()\ny = time.time()\n", encoding="utf-8")
    assert clock_reads(sample) == [2, 3]
