"""Runs a template function in this process the way `sam local invoke` runs it in a container: its
environment and runtime variables applied, its layer on sys.path, a warm module reused across invokes.

The environment is process-global, so invokes are serialised by environment: calls that need the same
variables (the same function with the same overrides) may run concurrently, like several warm
containers; a call needing different variables waits until the others have finished and restored it.
So a handler must not synchronously invoke another function through this runner (it would wait forever).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from auth_migration_ops.local.template import FunctionSpec, resolve_function

if TYPE_CHECKING:
    from auth_migration_ops.local.telemetry import TelemetryFile

__all__ = [
    "LambdaTimeoutError",
    "LocalFunction",
    "LocalLambdaContext",
    "clear_cache",
    "error_document",
    "invoke_function",
    "load_event",
]

DEFAULT_REGION = "us-east-1"
_LOCAL_ACCOUNT_ID = "123456789012"
# Powertools keeps its cold-start flag per module, i.e. per process: without a reset, every function but
# the first one invoked here would log cold_start=false and never emit its ColdStart metric.
_COLD_START_FLAG_MODULES = (
    "aws_lambda_powertools.logging.logger",
    "aws_lambda_powertools.tracing.tracer",
    "aws_lambda_powertools.metrics.provider.cold_start",
    "aws_lambda_powertools.metrics.base",
)


class LambdaTimeoutError(RuntimeError):
    """The handler ran past the function's Timeout; Lambda would have killed it."""


class LocalLambdaContext:
    """The context object the Python runtime passes to a handler, with a real countdown."""

    def __init__(
        self,
        *,
        function_name: str,
        timeout_s: int,
        memory_limit_in_mb: int,
        region: str = DEFAULT_REGION,
        function_version: str = "$LATEST",
        aws_request_id: str | None = None,
        log_stream_name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.function_name = function_name
        self.function_version = function_version
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{_LOCAL_ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = log_stream_name or f"{datetime.now(UTC):%Y/%m/%d}/[{function_version}]{uuid.uuid4().hex}"
        self.identity: Any = None
        self.client_context: Any = None
        self._clock = clock
        self._deadline = clock() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - self._clock()) * 1000))


class _EnvironmentGate:
    """Lets invokes share os.environ only while they need identical values; restores it after the last."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._active: dict[str, str] | None = None
        self._saved: dict[str, str | None] = {}
        self._holders = 0

    @contextmanager
    def applied(self, variables: Mapping[str, str]) -> Iterator[None]:
        wanted = dict(variables)
        with self._condition:
            self._condition.wait_for(lambda: self._holders == 0 or self._active == wanted)
            if self._holders == 0:
                self._saved = {name: os.environ.get(name) for name in wanted}
                os.environ.update(wanted)
                self._active = wanted
            self._holders += 1
        try:
            yield
        finally:
            with self._condition:
                self._holders -= 1
                if self._holders == 0:
                    for name, previous in self._saved.items():
                        if previous is None:
                            os.environ.pop(name, None)
                        else:
                            os.environ[name] = previous
                    self._active = None
                    self._saved = {}
                    self._condition.notify_all()


_ENVIRONMENT = _EnvironmentGate()


@contextmanager
def _on_sys_path(directories: list[Path]) -> Iterator[None]:
    # /var/task comes first on Lambda, then the layers; mirror that order and undo exactly what we added.
    added = [str(directory) for directory in directories if str(directory) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for entry in added:
            if entry in sys.path:
                sys.path.remove(entry)


class LocalFunction:
    """One warm 'container' of a template function: imported on the first invoke, reused after."""

    def __init__(self, spec: FunctionSpec, *, region: str | None = None, enforce_timeout: bool = True) -> None:
        self.spec = spec
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        self.enforce_timeout = enforce_timeout
        self._module: ModuleType | None = None
        self._import_lock = threading.Lock()
        module_path, _, self._handler_name = spec.handler.rpartition(".")
        self._module_file = spec.code_dir.joinpath(*module_path.split(".")).with_suffix(".py")
        # Fixed per container, so identical invokes present identical environments and may overlap.
        self._log_stream_name = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"

    @property
    def module(self) -> ModuleType | None:
        """The imported handler module, or None before the first (cold) invoke."""
        return self._module

    def runtime_environment(self) -> dict[str, str]:
        """Variables the Lambda runtime (and `sam local invoke`) set besides the template's own."""
        name = self.spec.logical_id
        return {
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(self.spec.timeout),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": self._log_stream_name,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{self.spec.runtime}",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "LAMBDA_TASK_ROOT": str(self.spec.code_dir),
            # sam local sets this; Powertools Tracer reads it to stay off (there is no X-Ray daemon here).
            "AWS_SAM_LOCAL": "true",
        }

    def invoke(
        self,
        event: Mapping[str, Any],
        *,
        env_overrides: Mapping[str, str] | None = None,
        aws_request_id: str | None = None,
        telemetry: TelemetryFile | None = None,
    ) -> Any:
        """Call the handler with a JSON copy of `event`; return its JSON-round-tripped result.

        The first call imports the module (a cold start) inside the same environment, so module-level
        configuration sees the function's variables and `env_overrides`. `aws_request_id` is the
        context's request id (a fresh one by default), so a caller can name the invoke in a report.
        With `telemetry`, what the function prints, logs and warns during this invoke (its cold start
        included) goes to that file instead of this process's stdout and stderr (other threads unaffected).

        Raises:
            Whatever the handler raises; TypeError if the result is not JSON-serialisable (Lambda's
            Runtime.MarshalError); LambdaTimeoutError if the call outlived the function's Timeout.
        """
        # Lambda hands the handler a freshly decoded event; a handler mutating it cannot leak back.
        payload = json.loads(json.dumps(event))
        variables = {**self.spec.environment, **self.runtime_environment(), **(env_overrides or {})}
        captured: AbstractContextManager[None] = telemetry.capture() if telemetry is not None else nullcontext()
        with (
            captured,
            _ENVIRONMENT.applied(variables),
            _on_sys_path([self.spec.code_dir, *self.spec.layer_dirs]),
        ):
            handler = self._handler()
            context = LocalLambdaContext(
                function_name=self.spec.logical_id,
                timeout_s=self.spec.timeout,
                memory_limit_in_mb=self.spec.memory_mb,
                region=self.region,
                log_stream_name=self._log_stream_name,
                aws_request_id=aws_request_id,
            )
            started = time.monotonic()
            result = handler(payload, context)
            elapsed = time.monotonic() - started
        if self.enforce_timeout and elapsed > self.spec.timeout:
            raise LambdaTimeoutError(
                f"{self.spec.logical_id} ran {elapsed:.1f} s, past its {self.spec.timeout} s Timeout "
                "(Lambda would have stopped it; this runner can only report it afterwards)"
            )
        return json.loads(json.dumps(result))

    def _handler(self) -> Callable[[Any, LocalLambdaContext], Any]:
        with self._import_lock:
            if self._module is None:
                _mark_cold_start()
                self._module = self._import()
        handler = getattr(self._module, self._handler_name, None)
        if not callable(handler):
            raise AttributeError(f"{self._module_file} has no callable {self._handler_name!r}")
        return handler  # type: ignore[no-any-return]

    def _import(self) -> ModuleType:
        if not self._module_file.is_file():
            raise FileNotFoundError(f"{self.spec.logical_id}: handler module {self._module_file} not found")
        # Every function ships an `app.py`; a unique name keeps their modules apart in sys.modules.
        module_name = f"_local_lambda_{self.spec.logical_id}_{uuid.uuid4().hex[:8]}"
        spec = importlib.util.spec_from_file_location(module_name, self._module_file)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {self._module_file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        return module


def _mark_cold_start() -> None:
    for name in _COLD_START_FLAG_MODULES:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "is_cold_start"):
            vars(module)["is_cold_start"] = True


_CACHE: dict[tuple[Any, ...], LocalFunction] = {}
_CACHE_LOCK = threading.Lock()


def invoke_function(
    name: str,
    event: Mapping[str, Any],
    *,
    env_overrides: Mapping[str, str] | None = None,
    resource_values: Mapping[str, str] | None = None,
    parameter_overrides: Mapping[str, str] | None = None,
    template_path: Path | None = None,
    aws_request_id: str | None = None,
) -> Any:
    """Invoke template function `name` ("MigrateBatch" or "MigrateBatchFunction") in-process.

    Functions stay warm per (name, resource_values, parameter_overrides, template): a new moto queue URL
    means a new container, exactly as a redeploy would. `clear_cache()` forces cold starts.
    """
    # "MigrateBatch" and "MigrateBatchFunction" are one function, so one warm container.
    logical_name = name if name.endswith("Function") else f"{name}Function"
    key = (
        logical_name,
        tuple(sorted((resource_values or {}).items())),
        tuple(sorted((parameter_overrides or {}).items())),
        str(template_path or ""),
    )
    with _CACHE_LOCK:
        function = _CACHE.get(key)
        if function is None:
            spec = resolve_function(
                name,
                template_path=template_path,
                parameter_overrides=parameter_overrides,
                resource_values=resource_values,
            )
            function = _CACHE[key] = LocalFunction(spec)
    return function.invoke(event, env_overrides=env_overrides, aws_request_id=aws_request_id)


def clear_cache() -> None:
    """Forget every warm function, so the next invoke of each is a cold start."""
    with _CACHE_LOCK:
        _CACHE.clear()


def error_document(exc: BaseException, *, request_id: str = "") -> dict[str, Any]:
    """What Lambda's Python runtime (and so `sam local invoke`) answers for a handler that raised:
    errorMessage, errorType, requestId and stackTrace, the runner's own frames left out as the runtime
    leaves out its bootstrap's."""
    frames = traceback.extract_tb(exc.__traceback__)
    # Everything up to the runner's last frame is the caller's and the runner's; importlib's frozen
    # frames sit between the runner and a module that failed at import (an init error).
    start = max((i + 1 for i, frame in enumerate(frames) if frame.filename == __file__), default=0)
    own = [frame for frame in frames[start:] if not frame.filename.startswith("<frozen ")]
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(own),
    }


def load_event(path: Path) -> dict[str, Any]:
    """Read a sample event (events/<function>/<case>.json).

    Raises:
        ValueError: the file is not JSON or its top level is not an object.
    """
    try:
        event = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise ValueError(f"{path} must hold a JSON object (a Lambda event), got {type(event).__name__}")
    return event
