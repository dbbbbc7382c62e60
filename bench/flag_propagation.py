"""How late warm Signup/Login containers obey an emergency rollback: the FLAGS_MAX_AGE_S bound, measured.

Set-up: a moto server (ops LocalAws) in this process holds the phase-3 flags (dual_write, Better-Auth
primary, the canary of phase 2 still on) under a fresh prefix. `--containers` warm "containers" of
Signup and as many of Login are separate processes. Each resolves its function from template.yaml,
takes the template's environment plus Lambda's runtime variables as its process environment (the
endpoint of the moto server, PARAMETER_PREFIX, and FLAGS_MAX_AGE_S = `--max-age`), and imports the real
`functions/<name>/app.py` through ops LocalFunction with one cold invoke (a malformed body: answered
400 before any backend is asked). While the module builds its resolver, the bench keeps the flag source
`dual_write.runtime.api_app` creates, which is the very object whose `snapshot` the resolver calls
once per request. A first snapshot fills its Powertools cache. Then every `--interval-ms` (50) the
container takes one snapshot, as a request would, and reports each change of (mode, primary, canary)
on the monotonic clock, which every process on the machine shares.

Per round: phase 3 is put back (not timed) and every container must see it; a random pause of up to
one max age puts the rollback at a different point of each container's cache cycle; then the real
`auth-migrate rollback --emergency --reason bench` runs as a subprocess with AWS_ENDPOINT_URL set. Its
audit rows go to a throw-away state database that the bench creates and drops. The moment its last SSM
write is committed is taken inside the moto server (its `put_parameter` returns; a read after that sees
the value). Measured per container: from that moment to its first snapshot that holds every rolled-back
flag.

Bound (issue 9): max over containers and rounds <= FLAGS_MAX_AGE_S + 1 s. Exit 1 when it fails.

    python -m bench.flag_propagation [--max-age 10] [--rounds 3] [--containers 4] [--json] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import psycopg

from auth_migration.rollout.changes import emergency_rollback
from auth_migration.rollout.phases import PHASES
from auth_migration.settings import Settings
from auth_migration.store import upgrade
from auth_migration_ops.local.aws import LocalAws, put_parameters
from bench.workload import DEFAULT_SERVER_URL, bench_database

Say = Callable[[str], None]

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
FUNCTIONS: Final = ("Signup", "Login")
SLACK_S: Final = 1.0
#: What a container reports: the three flags a rollback changes (the route of every request).
WATCHED: Final = ("MIGRATION_MODE", "USE_BETTER_AUTH", "CANARY_ENABLED")
#: Phase 3 reached the usual way, from a phase-2 canary: the rollback has three flags to write.
PHASE_3: Final = {**PHASES[3], "CANARY_ENABLED": "true", "CANARY_PERCENTAGE": "10"}
READY_TIMEOUT_S: Final = 180.0
CLI_TIMEOUT_S: Final = 120.0
# No container database or backend is reached (the cold invoke is refused at the body check, and
# snapshots read SSM only); closed ports make any attempt fail at once instead of hanging.
_NO_DATABASE: Final = "postgresql://bench@127.0.0.1:1/none?connect_timeout=1"
_NO_HTTP: Final = "http://127.0.0.1:1"
#: The cold invoke of each function: a request refused at the body check (400 / 415), before the resolver.
_REFUSED_EVENTS: Final = {
    "Signup": REPO_ROOT / "events" / "signup" / "signup_malformed_json.json",
    "Login": REPO_ROOT / "events" / "login" / "login_form_encoded.json",
}

# One container. argv[1]: its JSON config. Protocol lines go to a duplicate of the original stdout;
# fd 1 then points at stderr, since Powertools' Logger and Metrics print to stdout.
_CONTAINER = r"""
import json, os, sys, threading, time
proto = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
cfg = json.loads(sys.argv[1])

def emit(**fields):
    proto.write(json.dumps({"container": cfg["id"], **fields}) + "\n")

from auth_migration_ops.local.invoke import LocalFunction
from auth_migration_ops.local.template import resolve_function
spec = resolve_function(cfg["function"], resource_values={"ReconcileQueue": cfg["queue_url"]})
function = LocalFunction(spec, enforce_timeout=False)
# The process is the container: its environment is what Lambda gives the function, for its whole life.
os.environ.update({**spec.environment, **function.runtime_environment(), **cfg["env"]})

import auth_migration.dual_write.runtime as dual_runtime
kept = []
_factory = dual_runtime.flag_source
def _keeping(settings):
    source = _factory(settings)
    kept.append(source)
    return source
dual_runtime.flag_source = _keeping  # api_app looks it up here when the module is imported

with open(cfg["event_path"], encoding="utf-8") as f:
    event = json.load(f)
started = time.monotonic()
# The cold start: the real app.py, imported under that environment.
reply = function.invoke(event, env_overrides=cfg["env"])
cold_ms = (time.monotonic() - started) * 1000
dual_runtime.flag_source = _factory
(source,) = kept

fetches = [0]
def state(flags):
    return [flags.migration_mode.value, flags.use_better_auth, flags.canary_enabled]

# Containers of one function start at different times in Lambda, so their caches expire at different
# moments: the parent spreads the first request over one max age.
time.sleep(cfg["offset_s"])
flags = source.snapshot()  # the first request: fills the Powertools cache
provider = getattr(source, "_provider", None)
inner = getattr(provider, "_get_multiple", None)
if inner is not None:
    def counted(*args, **kwargs):
        fetches[0] += 1
        return inner(*args, **kwargs)
    provider._get_multiple = counted  # counts cache misses: SSM round trips, not requests
last = state(flags)
emit(event="ready", t=time.monotonic(), state=last, status=reply.get("statusCode"), cold_ms=round(cold_ms, 1),
     source=type(source).__name__, max_age_s=getattr(source, "max_age_s", None), path=getattr(source, "path", None),
     module=function.module.__name__ if function.module else None)

stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
interval = cfg["interval_s"]
requests = 0
slowest = 0.0
due = time.monotonic()
while not stop.is_set():
    due = max(due + interval, time.monotonic())
    stop.wait(max(0.0, due - time.monotonic()))
    if stop.is_set():
        break
    t0 = time.monotonic()
    flags = source.snapshot()
    t1 = time.monotonic()
    requests += 1
    slowest = max(slowest, t1 - t0)
    now = state(flags)
    if now != last:
        emit(event="change", t=t1, t_request=t0, state=now)
        last = now
emit(event="done", requests=requests, ssm_fetches=fetches[0], slowest_snapshot_ms=round(slowest * 1000, 1))
"""


def _base_env() -> dict[str, str]:
    """PATH/HOME/locale only: a developer's AWS_PROFILE, DATABASE_URL or PYTHONPATH cannot leak in."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME")
    return {k: v for k, v in os.environ.items() if k in keep}


def _state(values: Mapping[str, str]) -> list[Any]:
    """The stored strings as a container reports them."""
    return [values["MIGRATION_MODE"], values["USE_BETTER_AUTH"] == "true", values["CANARY_ENABLED"] == "true"]


# ------------------------------------------------------------------------------------ SSM write times


@dataclass
class WriteLog:
    """Every put_parameter the moto server commits, stamped on the monotonic clock as it returns."""

    writes: list[tuple[float, str]] = field(default_factory=list)

    def since(self, mark: int, prefix: str) -> list[tuple[float, str]]:
        return [(t, name) for t, name in self.writes[mark:] if name.startswith(prefix)]


@contextmanager
def recording_writes() -> Iterator[WriteLog]:
    """moto serves SSM from threads of this process, so its backend can be wrapped here: the time a
    write became visible to readers, with no polling error and no clock of the CLI's needed."""
    from moto.ssm import models

    log = WriteLog()
    backend: Any = models.SimpleSystemManagerBackend
    original = backend.put_parameter

    def put_parameter(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        log.writes.append((time.monotonic(), str(kwargs.get("name", args[0] if args else ""))))
        return result

    backend.put_parameter = put_parameter
    try:
        yield log
    finally:
        backend.put_parameter = original


# ----------------------------------------------------------------------------------------- containers


@dataclass
class Container:
    id: str
    function: str
    proc: subprocess.Popen[str]
    stderr: IO[str]
    ready: dict[str, Any] | None = None
    done: dict[str, Any] | None = None
    #: (monotonic time, state) of every change reported, in order.
    changes: list[tuple[float, list[Any]]] = field(default_factory=list)
    state: list[Any] | None = None

    def stderr_tail(self) -> str:
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()[-2000:]


def _reader(container: Container, inbox: queue.Queue[tuple[Container, dict[str, Any] | None]]) -> None:
    assert container.proc.stdout is not None
    for line in container.proc.stdout:
        if line.strip():
            inbox.put((container, json.loads(line)))
    inbox.put((container, None))


class Fleet:
    """The warm containers; messages are folded into their Container as they are pumped."""

    def __init__(self) -> None:
        self.containers: list[Container] = []
        self.inbox: queue.Queue[tuple[Container, dict[str, Any] | None]] = queue.Queue()

    def start(
        self, function: str, number: int, env: Mapping[str, str], config: Mapping[str, Any], offset_s: float
    ) -> None:
        cid = f"{function.lower()}-{number}"
        stderr = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        cfg = {
            **config,
            "id": cid,
            "function": function,
            "event_path": str(_REFUSED_EVENTS[function]),
            "offset_s": offset_s,
        }
        proc = subprocess.Popen(
            [sys.executable, "-c", _CONTAINER, json.dumps(cfg)],
            env=dict(env),
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        container = Container(cid, function, proc, stderr)
        self.containers.append(container)
        threading.Thread(target=_reader, args=(container, self.inbox), daemon=True).start()

    def pump(self, until: Callable[[], bool], timeout_s: float) -> bool:
        """Fold messages in until `until()` holds (True) or `timeout_s` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                container, message = self.inbox.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if message is None:
                if container.done is None and container.proc.poll() not in (None, 0):
                    raise RuntimeError(f"container {container.id} died:\n{container.stderr_tail()}")
                continue
            kind = message["event"]
            if kind == "ready":
                container.ready, container.state = message, message["state"]
            elif kind == "change":
                container.changes.append((float(message["t"]), message["state"]))
                container.state = message["state"]
            elif kind == "done":
                container.done = message
        return True

    def stop(self) -> None:
        for container in self.containers:
            if container.proc.stdin is not None and not container.proc.stdin.closed:
                container.proc.stdin.close()  # EOF: the container reports its counts and exits
        self.pump(lambda: all(c.done is not None or c.proc.poll() is not None for c in self.containers), 15.0)
        for container in self.containers:
            try:
                container.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                container.proc.kill()
                container.proc.wait()
            container.stderr.close()


# ---------------------------------------------------------------------------------------------- run


def _run_cli(env: Mapping[str, str], workdir: Path) -> tuple[subprocess.CompletedProcess[str], float, float]:
    started = time.monotonic()
    # cwd: an empty directory, so no developer .env is read for the settings.
    proc = subprocess.run(
        [sys.executable, "-m", "auth_migration_ops.cli", "rollback", "--emergency", "--reason", "bench"],
        env=dict(env),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    return proc, started, time.monotonic()


def run_propagation(
    *,
    max_age_s: int | None = None,
    rounds: int = 3,
    containers: int = 4,
    interval_ms: int = 50,
    seed: int = 9,
    database_url: str = DEFAULT_SERVER_URL,
    say: Say = lambda _text: None,
) -> dict[str, Any]:
    max_age = Settings().flags_max_age_s if max_age_s is None else max_age_s
    if rounds < 1 or containers < 1 or interval_ms < 1 or max_age < 0:
        raise ValueError("rounds, containers and interval must be at least 1, max age not negative")
    bound_s = max_age + SLACK_S
    rng = random.Random(seed)
    prefix = f"/auth-migration/bench-{uuid.uuid4().hex[:8]}/"
    target = _state({**PHASE_3, **emergency_rollback(PHASE_3)})
    phase_3 = _state(PHASE_3)
    run_started = time.perf_counter()
    result_rounds: list[dict[str, Any]] = []
    fleet = Fleet()
    with (
        tempfile.TemporaryDirectory(prefix="bench-flags-") as workdir,
        bench_database(database_url, prefix="bench_flags") as state_url,
        LocalAws() as aws,
        recording_writes() as writes,
    ):
        with psycopg.connect(state_url, autocommit=True) as conn:
            upgrade(conn)  # `auth-migrate db upgrade`: the CLI's audit rows need flag_changes
        ssm = aws.client("ssm")
        put_parameters(ssm, prefix, PHASE_3)
        common = {**_base_env(), **aws.env(), "PARAMETER_PREFIX": prefix}
        container_env = {
            **common,
            "FLAGS_MAX_AGE_S": str(max_age),
            "NEW_DATABASE_URL": _NO_DATABASE,
            "OLD_DATABASE_URL": _NO_DATABASE,
            "BETTER_AUTH_DATABASE_URL": _NO_DATABASE,
            "SUPABASE_URL": _NO_HTTP,
            "BETTER_AUTH_URL": _NO_HTTP,
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        cli_env = {
            **common,
            "NEW_DATABASE_URL": state_url,
            "OLD_DATABASE_URL": state_url,
            "BETTER_AUTH_DATABASE_URL": state_url,
            "AUTH_MIGRATE_AUDIT_SPOOL": str(Path(workdir) / "pending-audit.jsonl"),
        }
        config = {
            "interval_s": interval_ms / 1000,
            "queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-reconcile",
            # Per process (not template) variables: the container's own environment overrides.
            "env": {k: container_env[k] for k in container_env if k not in _base_env()},
        }
        try:
            say(f"starting {containers} Signup + {containers} Login containers (max age {max_age} s) ...")
            total = len(FUNCTIONS) * containers
            for index, (function, number) in enumerate((f, n) for n in range(1, containers + 1) for f in FUNCTIONS):
                # Cache fills spread evenly over one max age: some container always refreshed just
                # before the rollback, so the worst case is reached, not left to luck.
                fleet.start(function, number, container_env, config, offset_s=max_age * index / total)
            if not fleet.pump(lambda: all(c.ready for c in fleet.containers), READY_TIMEOUT_S + max_age):
                late = [c.id for c in fleet.containers if not c.ready]
                raise RuntimeError(f"containers not ready after {READY_TIMEOUT_S:.0f} s: {late}")
            for c in fleet.containers:
                if c.state != phase_3:
                    raise RuntimeError(f"{c.id} warmed with {c.state}, not phase 3 {phase_3}")
            for round_no in range(1, rounds + 1):
                if round_no > 1:
                    put_parameters(ssm, prefix, PHASE_3)  # set-up, not timed
                    if not fleet.pump(lambda: all(c.state == phase_3 for c in fleet.containers), 2 * max_age + 30):
                        raise RuntimeError("containers did not return to phase 3 after the reset")
                pause = rng.uniform(0, max(max_age, 0.5))
                fleet.pump(lambda: False, pause)  # keeps folding messages in while it waits
                say(f"round {round_no}/{rounds}: auth-migrate rollback --emergency (after a {pause:.1f} s pause)")
                mark = len(writes.writes)
                changes_before = {c.id: len(c.changes) for c in fleet.containers}
                proc, cli_started, cli_done = _run_cli(cli_env, Path(workdir))
                if proc.returncode != 0:
                    raise RuntimeError(f"the rollback exited {proc.returncode}: {proc.stderr[-2000:]}")
                written = writes.since(mark, prefix)
                if not written:
                    raise RuntimeError("the rollback wrote nothing to SSM")
                first_write, last_write = written[0][0], written[-1][0]
                obeyed = fleet.pump(lambda: all(c.state == target for c in fleet.containers), bound_s + 10)
                per: dict[str, float | None] = {}
                primary_off: dict[str, float | None] = {}
                for c in fleet.containers:
                    news = c.changes[changes_before[c.id] :]
                    seen = next((t for t, s in news if s == target), None)
                    per[c.id] = round(seen - last_write, 3) if seen is not None else None
                    off = next((t for t, s in news if s[1] is False), None)
                    primary_off[c.id] = round(off - first_write, 3) if off is not None else None
                values = [v for v in per.values() if v is not None]
                result_rounds.append(
                    {
                        "round": round_no,
                        "pause_s": round(pause, 2),
                        "ssm_writes": [name.removeprefix(prefix) for _t, name in written],
                        "writes_span_ms": round((last_write - first_write) * 1000, 1),
                        "cli_seconds": round(cli_done - cli_started, 2),
                        "cli_start_to_last_write_s": round(last_write - cli_started, 2),
                        "cli_stdout": proc.stdout.strip().splitlines(),
                        "all_obeyed": obeyed,
                        "per_container_s": per,
                        "primary_off_after_first_write_s": primary_off,
                        "max_s": max(values) if values else None,
                    }
                )
                say(f"  max {result_rounds[-1]['max_s']} s; " + ", ".join(f"{k} {v}" for k, v in per.items()))
        finally:
            fleet.stop()
        with psycopg.connect(state_url, autocommit=True) as conn:
            audit = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE source = 'cli' AND reason = 'bench') FROM flag_changes"
            ).fetchone()
        spooled = (Path(workdir) / "pending-audit.jsonl").exists()

    every = [v for r in result_rounds for v in r["per_container_s"].values()]
    measured = [v for v in every if v is not None]
    worst = max(measured) if measured else None
    ok = bool(measured) and len(measured) == len(every) and worst is not None and worst <= bound_s
    info = {c.id: {**(c.ready or {}), **(c.done or {})} for c in fleet.containers}
    return {
        "max_age_s": max_age,
        "bound_s": bound_s,
        "rounds": result_rounds,
        "containers": containers,
        "functions": list(FUNCTIONS),
        "interval_ms": interval_ms,
        "max_s": worst,
        "median_s": round(statistics.median(measured), 3) if measured else None,
        "ok": ok,
        "audit_rows": {"total": int(audit[0]), "from_bench": int(audit[1])} if audit else None,
        "audit_spooled": spooled,
        "container_info": {
            cid: {
                k: v.get(k)
                for k in ("source", "max_age_s", "module", "status", "cold_ms", "requests", "ssm_fetches")
                if k in v
            }
            | {"slowest_snapshot_ms": v.get("slowest_snapshot_ms")}
            for cid, v in info.items()
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "wall_seconds": round(time.perf_counter() - run_started, 1),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# -------------------------------------------------------------------------------------------- output


def format_table(result: Mapping[str, Any]) -> str:
    ids = list(result["container_info"])
    lines = [
        f"Flag propagation: {len(ids)} warm containers ({', '.join(result['functions'])}), one snapshot every "
        f"{result['interval_ms']} ms; FLAGS_MAX_AGE_S {result['max_age_s']} s; {len(result['rounds'])} round(s)",
        "seconds from the rollback's last SSM write to the container's first snapshot holding every rolled-back flag",
        "",
        f"{'container':<12}" + "".join(f"{'round ' + str(r['round']):>10}" for r in result["rounds"]),
        "-" * (12 + 10 * len(result["rounds"])),
    ]
    for cid in ids:
        cells = []
        for r in result["rounds"]:
            value = r["per_container_s"].get(cid)
            cells.append(f"{value:>10.3f}" if value is not None else f"{'never':>10}")
        lines.append(f"{cid:<12}" + "".join(cells))
    lines.append(
        f"{'max':<12}"
        + "".join(f"{r['max_s']:>10.3f}" if r["max_s"] is not None else f"{'-':>10}" for r in result["rounds"])
    )
    lines.append("")
    for r in result["rounds"]:
        lines.append(
            f"round {r['round']}: pause {r['pause_s']} s; CLI {r['cli_seconds']} s (last write "
            f"{r['cli_start_to_last_write_s']} s after its start); writes {', '.join(r['ssm_writes'])} within "
            f"{r['writes_span_ms']} ms"
        )
    sample: Mapping[str, Any] = next(iter(result["container_info"].values()), {})
    lines += [
        f"containers: {sample.get('source')} max_age_s={sample.get('max_age_s')} in {sample.get('module')}; "
        f"audit rows written by the CLI: {result['audit_rows']}",
        "",
        f"max {result['max_s']} s, median {result['median_s']} s; bound FLAGS_MAX_AGE_S + {SLACK_S:.0f} s = "
        f"{result['bound_s']} s: " + ("PASS" if result["ok"] else "FAIL"),
    ]
    return "\n".join(lines)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.flag_propagation", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "--max-age", type=int, default=None, help="FLAGS_MAX_AGE_S for the containers (default: the setting's, 10)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rollbacks measured (default 3)")
    parser.add_argument("--containers", type=int, default=4, help="warm containers per function (default 4)")
    parser.add_argument("--interval-ms", type=int, default=50, help="time between requests per container")
    parser.add_argument("--seed", type=int, default=9, help="seed of the pauses before each rollback")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER_URL),
        help="the Postgres server (the bench creates and drops the CLI's state database there)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of the table")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)

    def say(text: str) -> None:
        print(f"[flags {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    result = run_propagation(
        max_age_s=args.max_age,
        rounds=args.rounds,
        containers=args.containers,
        interval_ms=args.interval_ms,
        seed=args.seed,
        database_url=args.database_url,
        say=say,
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
        say(f"JSON written to {args.out}")
    print(json.dumps(result, default=str) if args.json else format_table(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
