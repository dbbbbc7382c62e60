"""SnapStart, emulated with fork: what a restored Signup, Login or SessionExchange still runs before its first reply.

With `AuthApiSnapStart` (template.yaml), Lambda runs these functions' init once, when a version is published
(AWS_LAMBDA_INITIALIZATION_TYPE=snap-start), and resumes a copy of that memory for every cold start after.
Here one process per API handler does that init as Lambda would: the function directory and layer on
sys.path, the template's environment (bench.cold_start's), the layer's packages only, and snapshot_restore_py
(the dev venv's copy standing in for the runtime's own). It then forks: each child is one environment resumed
from the snapshot. A child runs the hooks the runtime would (`snapshot_restore_py.get_after_restore()`, in
order), then the first request (one refused at body validation, as `cold_start --invoke`), and reports both
times and one `random.random()` draw. A fork differs from a restore in one way that matters here: CPython
reseeds `random` in a forked child, so each child first puts back the state the init left, as a snapshot would.

What it shows: the work a restore leaves for the user's first request (the hooks: reseed, SSM connections
closed, settings read again; then the request itself) against the init it no longer waits for; and that no two
restored environments draw the same random numbers. What it cannot show: Lambda's own restore (bringing the
snapshot's memory back), which only `Restore Duration` in the REPORT line measures, and the SSM round trip of
the settings' re-read (PARAMETER_PREFIX is empty here, as in cold_start: nothing may touch the network).

    python -m bench.snapstart_restore [--restores 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from bench import cold_start

CHILD_TIMEOUT_S = 120.0

# argv[1] = the handler's first request (cold_start's refused-request code), argv[2] = restores,
# argv[3:] = sys.path entries. One JSON line last on stdout.
_CHILD = r"""
import json, os, random, sys, threading, time
__PRELUDE__
for _p in reversed(sys.argv[3:]):
    sys.path.insert(0, _p)

_t0 = time.perf_counter()
import app
_init_s = time.perf_counter() - _t0
import snapshot_restore_py

_hooks = list(snapshot_restore_py.get_after_restore())
if threading.active_count() != 1:
    raise SystemExit(f"{threading.active_count()} threads after init: a fork would not copy them")
_request = compile(sys.argv[1], "<first-request>", "exec")
_restores = []
for _ in range(int(sys.argv[2])):
    _read, _write = os.pipe()
    _snapshot_random = random.getstate()
    _pid = os.fork()
    if _pid == 0:
        os.close(_read)
        # CPython reseeds `random` in a forked child (os.register_at_fork); a snapshot restore does not.
        random.setstate(_snapshot_random)
        try:
            _t = time.perf_counter()
            for _func, _args, _kwargs in _hooks:
                _func(*_args, **_kwargs)
            _hooks_s = time.perf_counter() - _t
            _t = time.perf_counter()
            exec(_request, {"app": app})
            _out = {"hooks_s": _hooks_s, "request_s": time.perf_counter() - _t, "draw": random.random(),
                    "network": _attempts}
        except BaseException as exc:
            _out = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        os.write(_write, json.dumps(_out).encode())
        os._exit(0)
    os.close(_write)
    with os.fdopen(_read, "rb") as _pipe:
        _restores.append(json.loads(_pipe.read() or b'{"error": "the restored child wrote nothing"}'))
    os.waitpid(_pid, 0)
print(json.dumps({"init_s": _init_s, "hooks": len(_hooks), "restores": _restores, "network": _attempts}))
"""


def api_variants() -> list[cold_start.Variant]:
    """bench.cold_start's handler variants that answer API Gateway (they have a refused request), set up for a
    snapshotting init."""
    found = []
    for variant in cold_start.discover_variants(invoke=True):
        if variant.kind == "handler" and variant.invoke:
            variant.env = {**variant.env, "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
            found.append(variant)
    return found


def _child_code() -> str:
    # The runtime provides snapshot_restore_py; every other package outside the layer stays hidden.
    hidden = tuple(name for name in cold_start.hidden_modules() if name != "snapshot_restore_py")
    return _CHILD.replace("__PRELUDE__", cold_start.child_prelude(hidden))


def measure(variant: cold_start.Variant, restores: int) -> dict[str, Any]:
    """One snapshotting init of `variant`, then `restores` environments forked from it."""
    argv = [sys.executable, "-c", _child_code(), variant.invoke, str(restores), *variant.paths]
    proc = subprocess.run(
        argv,
        env=variant.env,
        cwd=cold_start.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-1500:]}"}
    out: dict[str, Any] = json.loads(lines[-1])
    errors = [r["error"] for r in out["restores"] if "error" in r]
    network = list(out["network"]) + [event for r in out["restores"] for event in r.get("network", [])]
    if errors or network:
        return {"error": "; ".join(errors) or f"network used: {network}"}
    runs = out["restores"]
    draws = [r["draw"] for r in runs]
    return {
        "error": None,
        "init_ms": out["init_s"] * 1000,
        "restore_hooks": out["hooks"],
        "hooks_ms": _summary([r["hooks_s"] * 1000 for r in runs]),
        "first_request_ms": _summary([r["request_s"] * 1000 for r in runs]),
        "restores": len(runs),
        "distinct_random_draws": len(set(draws)),
    }


def _summary(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "max": max(values)}


def run(restores: int) -> dict[str, Any]:
    results = {variant.name: measure(variant, restores) for variant in api_variants()}
    ok = all(
        r["error"] is None and r["restore_hooks"] == 1 and r["distinct_random_draws"] == r["restores"]
        for r in results.values()
    )
    return {"restores": restores, "python": sys.version.split()[0], "variants": results, "ok": ok}


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"SnapStart emulated with fork: {result['restores']} restored environments per API handler "
        f"(Python {result['python']}); ms, median (max)",
        "",
        f"{'handler':28} {'init (skipped)':>15} {'restore hooks':>18} {'first request':>18} {'random draws':>13}",
    ]
    for name, r in result["variants"].items():
        if r["error"] is not None:
            lines.append(f"{name:28} FAILED: {r['error']}")
            continue
        hooks, request = r["hooks_ms"], r["first_request_ms"]
        lines.append(
            f"{name:28} {r['init_ms']:>15.1f} {hooks['median']:>9.2f} ({hooks['max']:>6.2f}) "
            f"{request['median']:>9.2f} ({request['max']:>6.2f}) "
            f"{r['distinct_random_draws']:>6}/{r['restores']} distinct"
        )
    lines += [
        "",
        "Not measured here: Lambda's restore itself (REPORT line: Restore Duration) and the hooks' SSM read.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.snapstart_restore", description=__doc__.splitlines()[0])
    parser.add_argument("--restores", type=int, default=5, help="environments forked from each init (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    if args.restores < 2:
        parser.error("--restores must be at least 2 (distinct random draws need two environments)")
    result = run(args.restores)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
