"""Cold-start import cost, side by side: a bare interpreter, boto3, boto3 + Powertools, and every handler.

Each sample is a fresh child interpreter, as a Lambda cold start is. Variants:

- ``bare``: the interpreter alone (``pass``).
- ``boto3``: ``import boto3``.
- ``boto3+powertools``: ``import boto3`` and Powertools' Logger, Tracer and Metrics with their defaults.
  This is the baseline the handlers are compared with (issue 13's yardstick). Its Tracer auto-patches,
  which imports httpx, psycopg and sqlite3 to patch them; ``auth_migration.observability`` patches each
  library only when something imports it, so the handlers do not pay for that.
- ``handler:<dir>``: ``import app`` for every ``functions/*/app.py`` (found by glob, so new handlers are
  measured as soon as they exist), with ``sys.path`` = the function's directory + its layer directories
  and the environment the template gives that function (Globals merged), as Lambda would.

Two times per sample: ``import_ms`` (perf_counter around the import, inside the child) and ``init_ms``
(from the parent's spawn to the end of the import, on the monotonic clock both processes share): the
interpreter start plus the import, i.e. what Lambda reports as Init Duration minus its own runtime.
``import_cpu_ms`` is the child's CPU time over the import: on a machine shared with other work it
moves far less than the wall-clock figures, so compare code changes by it when the machine is busy.
Samples are taken round-robin (variant 1, 2, ..., then again) so drift on a shared machine hits all
variants alike; median and min are reported. A separate ``-X importtime`` run per handler lists the
modules that cost most, to show what to import lazily.

Packages of the dev venv that the layer does not ship are hidden from every child, so the figures are
what Lambda imports: every distribution outside the closure of ``layers/shared/requirements.txt`` (httpx
imports its CLI when click, rich and pygments are there; X-Ray's patching imports requests and psycopg_pool).

``--invoke`` adds, for the API handlers that have one (``_REFUSED_REQUESTS``), one invocation right after
the import, in the same child: a request refused at body validation (a 400 before any backend, flag or
database is reached). It shows what the first request still pays for (models built lazily, routes
compiled on first use) and so whether a saving at import is a saving or only moved into that request.

Nothing may touch the network while a handler is imported: the child records every socket audit event
(connect, DNS, sendto) and the database URLs point at a closed port, so a connection made at import
fails the variant. ``PARAMETER_PREFIX`` is empty, so no SSM read happens either (in AWS it does:
``load_settings`` reads the secrets under the prefix at cold start; that round trip is not measured).
That read also imports boto3 and builds an SSM client, which the handlers do not import otherwise:
``--ssm`` adds both (``SSMProvider()``, as ``load_settings`` makes it) to every handler, the closest
offline figure to an AWS cold start.

    python -m bench.cold_start [--repeat 7] [--warmup 1] [--invoke] [--ssm] [--json] [--out FILE]
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = REPO_ROOT / "functions"
SHARED_LAYER_DIR = REPO_ROOT / "layers" / "shared"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
LAYER_REQUIREMENTS = SHARED_LAYER_DIR / "requirements.txt"

BASELINE = "boto3+powertools"
TOP_N = 10
CHILD_TIMEOUT_S = 120.0

Say = Callable[[str], None]

# Points every database at a closed local port: a connection attempted at import fails at once.
_NO_DATABASE = "postgresql://cold_start@127.0.0.1:1/cold_start?connect_timeout=1"
_NO_HTTP = "http://127.0.0.1:1"
_FAKE_ACCOUNT = "123456789012"
_REGION = "us-east-1"

_POWERTOOLS_CODE = """\
import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
Logger(service="cold-start")
Tracer(service="cold-start")
Metrics(namespace="ColdStart", service="cold-start")
"""

# Child-side code, run before anything is imported.
# - Every network attempt is recorded (`_attempts`): a handler's init must make none.
# - The dev venv holds packages the Lambda layer does not ship (httpx imports its command-line module when
#   click and rich are importable, ~80 ms; X-Ray's patching imports requests and psycopg_pool when they are).
#   Hiding them makes a child import what it would in AWS.
_PRELUDE = r"""
import sys

_NET = frozenset((
    "socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
    "socket.gethostbyaddr", "socket.getnameinfo", "socket.sendto", "socket.sendmsg",
))
_attempts = []

def _audit(event, args):
    if event in _NET:
        _attempts.append(event + " " + repr(args)[:200])

sys.addaudithook(_audit)

class _NotInTheLayer:
    _HIDDEN = frozenset(__HIDDEN__)

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self._HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the Lambda layer)")
        return None

sys.meta_path.insert(0, _NotInTheLayer())
"""


def child_prelude(hidden: Sequence[str]) -> str:
    """The child-side code that records network attempts in `_attempts` and makes the modules `hidden`
    unimportable (see _PRELUDE)."""
    return _PRELUDE.replace("__HIDDEN__", repr(tuple(hidden)))


# The child: argv[1] = code to time, argv[2] = code to time after it ("" for none: the first invocation),
# argv[3:] = directories to put first on sys.path. It prints one JSON line on stdout, last. Markers on
# stderr delimit the timed import in `-X importtime` output. __PRELUDE__ becomes child_prelude().
_CHILD = r"""
import sys, time
_t_start = time.monotonic()
__PRELUDE__
for _p in reversed(sys.argv[3:]):
    sys.path.insert(0, _p)
_code = compile(sys.argv[1], "<cold-start>", "exec")
_invoke = compile(sys.argv[2], "<cold-start-invoke>", "exec") if sys.argv[2] else None
_globals = {"__name__": "__cold_start__"}
sys.stderr.write("cold_start:begin\n"); sys.stderr.flush()
_t0, _c0 = time.perf_counter(), time.process_time()
exec(_code, _globals)
_t1, _c1 = time.perf_counter(), time.process_time()
_t_done = time.monotonic()
sys.stderr.write("cold_start:end\n"); sys.stderr.flush()
_invoke_s = None
if _invoke is not None:
    _t2 = time.perf_counter()
    exec(_invoke, _globals)
    _invoke_s = time.perf_counter() - _t2
_rss = 0.0
with open("/proc/self/status", encoding="ascii") as _f:
    for _line in _f:
        if _line.startswith("VmHWM:"):
            _rss = int(_line.split()[1]) / 1024
import json
print(json.dumps({"import_s": _t1 - _t0, "import_cpu_s": _c1 - _c0, "done_monotonic": _t_done,
                  "start_monotonic": _t_start, "invoke_s": _invoke_s, "peak_rss_mb": _rss, "network": _attempts,
                  "modules": len(sys.modules)}))
"""

# The first request, timed after the import: a POST whose JSON body the route's model refuses (400), so no
# backend, flag source or database is reached. An X-Ray trace header with Sampled=0, as Lambda sets one, so
# the tracer records nothing and sends nothing (the child refuses network use).
_INVOKE_CODE = """\
class _Context:
    function_name = "cold-start"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cold-start"
    memory_limit_in_mb = 512
    aws_request_id = "cold-start-request"
    log_group_name = "/aws/lambda/cold-start"
    log_stream_name = "cold-start"
    def get_remaining_time_in_millis(self):
        return 29_000
_event = {
    "resource": __PATH__, "path": __PATH__, "httpMethod": "POST",
    "headers": {"content-type": "application/json"}, "multiValueHeaders": {"content-type": ["application/json"]},
    "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
    "stageVariables": None, "isBase64Encoded": False, "body": __BODY__,
    "requestContext": {"resourcePath": __PATH__, "httpMethod": "POST", "path": "/dev" + __PATH__, "stage": "dev",
                       "requestId": "cold-start-request", "identity": {"sourceIp": "192.0.2.1"}},
}
_reply = app.lambda_handler(_event, _Context())
if _reply["statusCode"] != 400:
    raise SystemExit(f"the refused request got {_reply['statusCode']}, not 400: {_reply['body'][:300]}")
"""
# What load_settings does at init in AWS (PARAMETER_PREFIX set), less the GetParametersByPath call itself.
_SSM_CODE = "from aws_lambda_powertools.utilities.parameters import SSMProvider\nSSMProvider()\n"
_INVOKE_ENV = {"_X_AMZN_TRACE_ID": "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0"}
#: functions/<dir> -> (route, a JSON body its model refuses).
_REFUSED_REQUESTS: Mapping[str, tuple[str, str]] = {
    "signup": ("/auth/signup", json.dumps({"email": "not-an-email", "password": "x"})),
    "login": ("/auth/login", json.dumps({"email": "not-an-email", "password": ""})),
    "session_exchange": ("/auth/session/exchange", json.dumps({"access_token": ""})),
}


@dataclass
class Variant:
    name: str
    kind: str  # "baseline" | "handler"
    code: str
    paths: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    function: str | None = None  # the template's logical id, for handlers declared there
    invoke: str = ""  # code run (and timed) after `code`: the first request; "" = none


@dataclass
class Sample:
    init_s: float
    import_s: float
    interpreter_s: float
    peak_rss_mb: float
    modules: int
    network: list[str]
    invoke_s: float | None = None
    import_cpu_s: float = 0.0


# ------------------------------------------------------------------------------------------ environment


def _base_env() -> dict[str, str]:
    """What the child inherits: PATH/HOME/locale only, so a developer's shell (PYTHONPATH,
    DATABASE_URL, AWS_PROFILE, ...) cannot change what is imported or where it connects."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    return {k: v for k, v in os.environ.items() if k in keep}


def _lambda_env(function_name: str, code_dir: Path, memory_mb: int) -> dict[str, str]:
    """The variables the Lambda runtime itself sets. LAMBDA_TASK_ROOT makes Powertools' Tracer active
    (Tracing: Active in the template), so it patches boto3/botocore/httpx at init as it does in AWS."""
    return {
        "AWS_REGION": _REGION,
        "AWS_DEFAULT_REGION": _REGION,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "LAMBDA_TASK_ROOT": str(code_dir),
        "_HANDLER": "app.lambda_handler",
        # Lambda passes the role's credentials as variables; fakes here so botocore never walks the
        # credential chain to the instance metadata endpoint.
        "AWS_ACCESS_KEY_ID": "cold-start",
        "AWS_SECRET_ACCESS_KEY": "cold-start",
        "AWS_SESSION_TOKEN": "cold-start",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _no_service_env() -> dict[str, str]:
    """Settings that keep every import offline: no SSM prefix, databases and HTTP services on a closed port."""
    return {
        "PARAMETER_PREFIX": "",
        "OLD_DATABASE_URL": _NO_DATABASE,
        "NEW_DATABASE_URL": _NO_DATABASE,
        "BETTER_AUTH_DATABASE_URL": _NO_DATABASE,
        "SUPABASE_URL": _NO_HTTP,
        "BETTER_AUTH_URL": _NO_HTTP,
        "SENTRY_DSN": "",
        "SENTRY_DSN_PARAMETER": "",
    }


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _layer_closure(requirements: Path = LAYER_REQUIREMENTS) -> set[str]:
    """The distributions `sam build` puts in the layer: its requirements and theirs, extras followed."""
    pending: list[Requirement] = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        text = line.partition("#")[0].strip()
        if text:
            pending.append(Requirement(text))
    closure: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = _canonical(requirement.name)
        if name in closure:
            continue
        closure.add(name)
        try:
            needs = importlib.metadata.requires(requirement.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here: nothing of it can be imported either
        extras = requirement.extras or {""}
        for text in needs:
            try:
                need = Requirement(text)
            except InvalidRequirement:
                continue
            if need.marker is None or any(need.marker.evaluate({"extra": extra}) for extra in extras):
                pending.append(need)
    return closure


def hidden_modules() -> list[str]:
    """Top-level modules of this venv that the layer does not ship, less the layer's and functions' own code
    (the project's dist also installs auth_migration, which the layer directory provides)."""
    closure = _layer_closure()
    own = {
        entry.name.removesuffix(".py")
        for folder in (SHARED_LAYER_DIR, *(p for p in FUNCTIONS_DIR.iterdir() if p.is_dir()))
        for entry in folder.iterdir()
    }
    return sorted(
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if module not in own and not any(_canonical(d) in closure for d in dists)
    )


@dataclass(frozen=True)
class _TemplateFunction:
    logical_id: str
    environment: dict[str, str]
    memory_mb: int
    layer_dirs: list[Path]


def _template_functions(say: Say) -> dict[Path, _TemplateFunction]:
    """code dir -> the template's view of that function (environment with Globals merged, layers).

    Queue references resolve to fake SQS URLs/ARNs, so a handler that builds an SQS sender at import
    does so as in AWS (boto3 itself is imported lazily by the sender)."""
    try:
        from auth_migration_ops.local.template import list_functions, load_template, resolve_function
    except ImportError as why:  # the ops package is not installed: Globals-free defaults below
        say(f"template resolution unavailable ({why}); handlers get default environments")
        return {}
    template = load_template(TEMPLATE_PATH)
    values: dict[str, str] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if isinstance(resource, dict) and resource.get("Type") == "AWS::SQS::Queue":
            name = f"cold-start-{logical_id}"
            values[logical_id] = f"https://sqs.{_REGION}.amazonaws.com/{_FAKE_ACCOUNT}/{name}"
            values[f"{logical_id}.Arn"] = f"arn:aws:sqs:{_REGION}:{_FAKE_ACCOUNT}:{name}"
            values[f"{logical_id}.QueueName"] = name
    found: dict[Path, _TemplateFunction] = {}
    for logical_id in list_functions(TEMPLATE_PATH):
        try:
            spec = resolve_function(logical_id, template_path=TEMPLATE_PATH, resource_values=values)
        except (KeyError, ValueError) as why:
            say(f"{logical_id}: not resolvable from the template ({why}); skipped")
            continue
        found[spec.code_dir] = _TemplateFunction(logical_id, spec.environment, spec.memory_mb, spec.layer_dirs)
    return found


def _invoke_code(code_dir: Path) -> str:
    refused = _REFUSED_REQUESTS.get(code_dir.name)
    if refused is None:
        return ""
    path, body = refused
    return _INVOKE_CODE.replace("__PATH__", repr(path)).replace("__BODY__", repr(body))


def discover_variants(say: Say = lambda _text: None, *, invoke: bool = False, ssm: bool = False) -> list[Variant]:
    """The three baselines, then one variant per functions/*/app.py (sorted by directory name); with
    `invoke`, the API handlers that have a refused request in _REFUSED_REQUESTS also take it once; with
    `ssm`, every handler first imports boto3 and builds the SSM client load_settings would."""
    baseline_env = {**_base_env(), **_lambda_env("cold-start-baseline", REPO_ROOT, 512)}
    variants = [
        Variant("bare", "baseline", "pass", env=baseline_env),
        Variant("boto3", "baseline", "import boto3", env=baseline_env),
        Variant(BASELINE, "baseline", _POWERTOOLS_CODE, env=baseline_env),
    ]
    declared = _template_functions(say)
    for app in sorted(FUNCTIONS_DIR.glob("*/app.py")):
        code_dir = app.parent.resolve()
        spec = declared.get(code_dir)
        if spec is None:
            say(f"{code_dir.name}: not in template.yaml yet; importing it with the Globals-only defaults")
            environment = {
                "POWERTOOLS_SERVICE_NAME": "auth-migration",
                "POWERTOOLS_METRICS_NAMESPACE": "AuthMigration",
                "POWERTOOLS_LOG_LEVEL": "INFO",
                "STAGE": "dev",
            }
            layers, memory, logical_id = [SHARED_LAYER_DIR], 512, None
        else:
            environment, layers, memory, logical_id = spec.environment, spec.layer_dirs, spec.memory_mb, spec.logical_id
        env = {
            **_base_env(),
            **environment,
            **_lambda_env(logical_id or code_dir.name, code_dir, memory),
            **_no_service_env(),
        }
        invoke_code = _invoke_code(code_dir) if invoke else ""
        if invoke_code:
            env.update(_INVOKE_ENV)
        variants.append(
            Variant(
                f"handler:{code_dir.name}",
                "handler",
                (_SSM_CODE if ssm else "") + "import app",
                paths=[str(code_dir), *(str(p) for p in layers or [SHARED_LAYER_DIR])],
                env=env,
                function=logical_id,
                invoke=invoke_code,
            )
        )
    return variants


# -------------------------------------------------------------------------------------------- running


class ChildFailed(RuntimeError):
    pass


@functools.cache
def _child_code() -> str:
    return _CHILD.replace("__PRELUDE__", child_prelude(hidden_modules()))


def _run_child(variant: Variant, *, importtime: bool = False) -> tuple[dict[str, Any], str, float]:
    """Run one fresh interpreter; returns (its JSON line, its stderr, the parent's monotonic spawn time)."""
    argv = [
        sys.executable,
        *(["-X", "importtime"] if importtime else []),
        "-c",
        _child_code(),
        variant.code,
        variant.invoke,
        *variant.paths,
    ]
    spawned = time.monotonic()
    proc = subprocess.run(
        argv, env=variant.env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False
    )
    if proc.returncode != 0:
        tail = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("import time:"))[-2000:]
        raise ChildFailed(f"exit {proc.returncode}: {tail.strip()}")
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise ChildFailed("the child printed nothing")
    return json.loads(lines[-1]), proc.stderr, spawned


def sample(variant: Variant) -> Sample:
    out, _stderr, spawned = _run_child(variant)
    return Sample(
        init_s=out["done_monotonic"] - spawned,
        import_s=out["import_s"],
        interpreter_s=out["start_monotonic"] - spawned,
        peak_rss_mb=out["peak_rss_mb"],
        modules=out["modules"],
        network=list(out["network"]),
        invoke_s=out.get("invoke_s"),
        import_cpu_s=out.get("import_cpu_s", 0.0),
    )


def parse_importtime(stderr: str) -> list[dict[str, Any]]:
    """`-X importtime` lines between the child's markers: module, self/cumulative ms, nesting depth."""
    rows: list[dict[str, Any]] = []
    inside = False
    for line in stderr.splitlines():
        if line == "cold_start:begin":
            inside = True
            continue
        if line == "cold_start:end":
            break
        if not inside or not line.startswith("import time:"):
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue  # the header line
        name = parts[2].rstrip()
        stripped = name.lstrip()
        depth = (len(name) - len(stripped) - 1) // 2
        rows.append(
            {
                "module": stripped,
                "self_ms": int(parts[0]) / 1000,
                "cumulative_ms": int(parts[1]) / 1000,
                "depth": max(depth, 0),
            }
        )
    return rows


def import_profile(variant: Variant, top: int = TOP_N) -> dict[str, Any]:
    """Where the import time goes: top modules by cumulative time (the timed module itself left out,
    it is 100 %), and self time summed per top-level package."""
    _out, stderr, _spawned = _run_child(variant, importtime=True)
    rows = parse_importtime(stderr)
    own = {"app", "__cold_start__"}
    by_cumulative = sorted((r for r in rows if r["module"] not in own), key=lambda r: -r["cumulative_ms"])
    packages: dict[str, float] = {}
    for row in rows:
        package = row["module"].split(".")[0]
        packages[package] = packages.get(package, 0.0) + row["self_ms"]
    return {
        "modules_imported": len(rows),
        "total_ms": round(sum(r["self_ms"] for r in rows), 1),
        "top_cumulative": [
            {k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()} for r in by_cumulative[:top]
        ],
        "top_packages": [
            {"package": name, "self_ms": round(ms, 1)}
            for name, ms in sorted(packages.items(), key=lambda item: -item[1])[:top]
        ],
    }


def _stats(values: Sequence[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in values]
    return {"median": round(statistics.median(ms), 1), "min": round(min(ms), 1), "samples": [round(v, 1) for v in ms]}


def _code_version() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, check=False
        )
    except OSError:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else "unknown"


def run_cold_start(
    *,
    repeat: int = 7,
    warmup: int = 1,
    profile: bool = True,
    invoke: bool = False,
    ssm: bool = False,
    say: Say = lambda _text: None,
) -> dict[str, Any]:
    """Measure every variant `repeat` times (round-robin, after `warmup` discarded rounds); with `invoke`,
    also the first request of the API handlers that have one."""
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    variants = discover_variants(say, invoke=invoke, ssm=ssm)
    samples: dict[str, list[Sample]] = {v.name: [] for v in variants}
    errors: dict[str, str] = {}

    def live() -> list[Variant]:
        return [v for v in variants if v.name not in errors]

    # Warm-up rounds also write any missing .pyc files, which would otherwise bill compilation to sample 1.
    for round_no in range(warmup + repeat):
        for variant in live():
            try:
                taken = sample(variant)
            except (ChildFailed, subprocess.TimeoutExpired, ValueError, KeyError) as why:
                errors[variant.name] = str(why)
                say(f"{variant.name}: FAILED: {str(why).splitlines()[-1] if str(why) else why!r}")
                continue
            if round_no >= warmup:
                samples[variant.name].append(taken)
        say(f"round {round_no + 1}/{warmup + repeat} done" + (" (warm-up)" if round_no < warmup else ""))

    result: dict[str, Any] = {}
    for variant in variants:
        entry: dict[str, Any] = {"kind": variant.kind, "function": variant.function, "error": errors.get(variant.name)}
        taken_list = samples[variant.name]
        if taken_list and variant.name not in errors:
            entry.update(
                init_ms=_stats([s.init_s for s in taken_list]),
                import_ms=_stats([s.import_s for s in taken_list]),
                import_cpu_ms=_stats([s.import_cpu_s for s in taken_list]),
                interpreter_ms=_stats([s.interpreter_s for s in taken_list]),
                peak_rss_mb=round(statistics.median(s.peak_rss_mb for s in taken_list), 1),
                modules_loaded=taken_list[-1].modules,
                network_attempts=sorted({a for s in taken_list for a in s.network}),
            )
            invoked = [s for s in taken_list if s.invoke_s is not None]
            if invoked:
                entry["first_invoke_ms"] = _stats([s.invoke_s for s in invoked if s.invoke_s is not None])
                entry["init_and_invoke_ms"] = _stats([s.init_s + (s.invoke_s or 0.0) for s in invoked])
            if profile and variant.kind == "handler":
                try:
                    entry["import_profile"] = import_profile(variant)
                except (ChildFailed, subprocess.TimeoutExpired, ValueError) as why:
                    entry["import_profile"] = {"error": str(why)}
        result[variant.name] = entry

    base = result.get(BASELINE, {}).get("import_ms")
    base_init = result.get(BASELINE, {}).get("init_ms")
    base_cpu = result.get(BASELINE, {}).get("import_cpu_ms")
    for entry in result.values():
        mine = entry.get("import_ms")
        handler = entry["kind"] == "handler"
        entry["over_baseline_ms"] = round(mine["median"] - base["median"], 1) if handler and mine and base else None
        # The ratio docs/SCALING.md section 7 reports (issue 13's target: at most 1.3x for Signup and Login).
        entry["init_vs_baseline"] = (
            round(entry["init_ms"]["median"] / base_init["median"], 2) if handler and mine and base_init else None
        )
        entry["import_cpu_vs_baseline"] = (
            round(entry["import_cpu_ms"]["median"] / base_cpu["median"], 2)
            if handler and mine and base_cpu and base_cpu["median"]
            else None
        )
        if handler and base_init and "init_and_invoke_ms" in entry:
            entry["init_and_invoke_vs_baseline"] = round(entry["init_and_invoke_ms"]["median"] / base_init["median"], 2)

    return {
        "repeat": repeat,
        "warmup": warmup,
        "baseline": BASELINE,
        "hidden_modules": hidden_modules(),
        "ssm_client_at_init": ssm,
        "variants": result,
        "ok": not errors and not any(e.get("network_attempts") for e in result.values()),
        "code_version": _code_version(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "executable": sys.executable,
            "platform": platform.platform(),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# ------------------------------------------------------------------------------------------- reporting


def _times(ratio: float | None) -> str:
    return f"{ratio:.2f}x" if ratio is not None else ""


def format_table(result: Mapping[str, Any]) -> str:
    invoked = any("init_and_invoke_ms" in e for e in result["variants"].values())
    header = (
        f"{'variant':<30} {'import med':>10} {'import min':>10} {'cpu med':>8} {'init med':>9} {'init min':>9} "
        f"{'RSS MB':>7} {'vs ' + BASELINE:>21} {'init ratio':>10} {'cpu ratio':>9}"
    )
    if invoked:
        header += f" {'1st req med':>11} {'init+req med':>12} {'ratio':>6}"
    lines = [
        f"Cold start, {result['repeat']} fresh interpreters per variant (median / min, ms); "
        f"Python {result['machine']['python']}, {result['machine']['cpus']} CPUs, code {result['code_version']}",
        "import = the import alone; cpu = its CPU time; init = interpreter start + import (spawn to import "
        f"done); init (cpu) ratio = init (cpu) median / {BASELINE}'s",
    ]
    if result.get("ssm_client_at_init"):
        lines.append("every handler first imports boto3 and builds an SSM client (--ssm), as load_settings does in AWS")
    if invoked:
        lines.append(
            "1st req = one request refused at body validation (400), right after the import; "
            f"ratio = (init + 1st req) median / {BASELINE}'s init median"
        )
    lines += ["", header, "-" * len(header)]
    for name, entry in result["variants"].items():
        if entry.get("error"):
            lines.append(f"{name:<30} FAILED: {entry['error'].splitlines()[-1] if entry['error'] else ''}")
            continue
        imp, cpu, init = entry["import_ms"], entry["import_cpu_ms"], entry["init_ms"]
        delta, ratio, cpu_ratio = entry["over_baseline_ms"], entry["init_vs_baseline"], entry["import_cpu_vs_baseline"]
        row = (
            f"{name:<30} {imp['median']:>10.1f} {imp['min']:>10.1f} {cpu['median']:>8.1f} {init['median']:>9.1f} "
            f"{init['min']:>9.1f} {entry['peak_rss_mb']:>7.1f} {(f'{delta:+.1f}' if delta is not None else ''):>21} "
            f"{_times(ratio):>10} {_times(cpu_ratio):>9}"
        )
        if "init_and_invoke_ms" in entry:
            row += (
                f" {entry['first_invoke_ms']['median']:>11.1f} {entry['init_and_invoke_ms']['median']:>12.1f} "
                f"{_times(entry.get('init_and_invoke_vs_baseline')):>6}"
            )
        lines.append(row.rstrip())
        if entry.get("network_attempts"):
            lines.append(f"{'':<30} NETWORK AT IMPORT: {entry['network_attempts']}")
    for name, entry in result["variants"].items():
        profile = entry.get("import_profile")
        if entry["kind"] != "handler" or not profile or profile.get("error"):
            continue
        lines += ["", f"{name}: top {TOP_N} by cumulative import time (-X importtime, one run)"]
        lines += [
            f"  {row['cumulative_ms']:>8.1f} ms cumulative {row['self_ms']:>7.1f} self  "
            f"{'  ' * row['depth']}{row['module']}"
            for row in profile["top_cumulative"]
        ]
        packages = ", ".join(f"{p['package']} {p['self_ms']:.0f}" for p in profile["top_packages"])
        lines.append(f"  self ms by package: {packages}")
    return "\n".join(lines)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cold_start", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--repeat", type=int, default=7, help="fresh interpreters per variant (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded rounds first (default 1)")
    parser.add_argument("--no-profile", action="store_true", help="skip the -X importtime run per handler")
    parser.add_argument(
        "--invoke",
        action="store_true",
        help="also time one request refused at body validation right after the import (API handlers)",
    )
    parser.add_argument(
        "--ssm",
        action="store_true",
        help="every handler also imports boto3 and builds the SSM client load_settings makes in AWS",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of the table")
    parser.add_argument("--out", type=Path, help="also write the JSON here (default: not written)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)

    def say(text: str) -> None:
        print(f"[cold-start {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    result = run_cold_start(
        repeat=args.repeat, warmup=args.warmup, profile=not args.no_profile, invoke=args.invoke, ssm=args.ssm, say=say
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        say(f"JSON written to {args.out}")
    print(json.dumps(result) if args.json else format_table(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
