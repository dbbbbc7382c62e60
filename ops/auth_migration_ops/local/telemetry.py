"""Where a local run puts what its functions print: `.local/runs/<run>/telemetry.jsonl`, one JSON object a line.

In Lambda a function's stdout and stderr are its CloudWatch log: Powertools' JSON log lines and the EMF
blobs its Metrics print. Run in-process (the local pipeline) they would land in the operator's terminal,
in the middle of the progress bar. `TelemetryFile.capture()` sends them to the file instead, for the
calling thread only, while it is active (the pipeline runs one invoke per poller thread):

- `sys.stdout` and `sys.stderr` become routers: a write from a capturing thread goes to that thread's
  file, any other write to the stream they replaced (a progress bar, a report, another thread);
- Powertools Logger handlers (a StreamHandler bound to sys.stdout when the Logger was made, possibly
  long before) get the same router as their stream;
- Python warnings from a capturing thread become JSON lines (`{"level": "WARNING", "warning": ...}`),
  and so do records of stdlib loggers that reach the root logger (what Lambda's runtime handler logs).

A line that is a JSON object (a Powertools log line, an EMF blob) is written as it came; any other
line is wrapped (`{"stream": "stdout", "message": ...}`), so every line of the file is JSON. Nothing is
added to what the functions print: they never log passwords, hashes or tokens, and neither does this.
The hooks are installed while at least one capture is active and removed after the last.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import traceback
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

__all__ = ["FILE_NAME", "RUNS_DIR", "TelemetryFile", "display_path"]

#: Local runs keep their files here, relative to the working directory (git-ignored).
RUNS_DIR = Path(".local") / "runs"
FILE_NAME = "telemetry.jsonl"


def display_path(path: Path) -> str:
    """`path` relative to the working directory when it lies under it (what an operator types), else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class TelemetryFile:
    """One run's telemetry file: thread-safe (and process-safe: each line is one append) JSON lines.

    A context manager (closes the file). `metric_blobs` counts EMF blobs (objects with an `_aws` key),
    `log_lines` every other line.
    """

    def __init__(self, path: Path) -> None:
        path = path.resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._lock = threading.Lock()
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.metric_blobs = 0
        self.log_lines = 0

    @classmethod
    def for_run(cls, runs_dir: Path = RUNS_DIR) -> TelemetryFile:
        """A new run directory under `runs_dir`, named by the time (rename it with `name_run`)."""
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
        return cls(runs_dir / name / FILE_NAME)

    @property
    def path(self) -> Path:
        with self._lock:
            return self._path

    def name_run(self, run_id: str) -> Path:
        """Rename the run directory to `run_id` (a migration id), `run_id-2`... when taken; the file
        stays open across the rename. Returns the file's new path."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id).strip(".") or "run"
        with self._lock:
            directory = self._path.parent
            if directory.name == safe:
                return self._path
            for n in range(1, 1000):
                target = directory.with_name(safe if n == 1 else f"{safe}-{n}")
                if target.exists():
                    continue
                try:
                    directory.rename(target)
                except OSError:
                    continue
                self._path = target / self._path.name
                break
            return self._path

    def summary(self) -> dict[str, Any]:
        """What a report says about the file."""
        with self._lock:
            return {
                "telemetry_file": display_path(self._path),
                "telemetry_metric_blobs": self.metric_blobs,
                "telemetry_log_lines": self.log_lines,
            }

    # ---- writing ---------------------------------------------------------------------------------

    def write_line(self, line: str, *, stream: str = "stdout") -> None:
        """One line a function printed: kept as it is when it is a JSON object, else wrapped as one."""
        text = line.strip()
        if not text:
            return
        obj: Any = None
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
        if isinstance(obj, dict):
            self._append(text, metric="_aws" in obj)
        else:
            self.write_object({"timestamp": _now(), "stream": stream, "message": line.rstrip("\r\n")})

    def write_object(self, obj: dict[str, Any]) -> None:
        self._append(json.dumps(obj, default=str, separators=(",", ":")), metric="_aws" in obj)

    def write_warning(self, message: Warning | str, category: type[Warning], filename: str, lineno: int) -> None:
        self.write_object(
            {
                "timestamp": _now(),
                "level": "WARNING",
                "warning": category.__name__,
                "message": str(message),
                "location": f"{filename}:{lineno}",
            }
        )

    def write_record(self, record: logging.LogRecord) -> None:
        obj: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            obj["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
            obj["exception_name"] = record.exc_info[0].__name__
        self.write_object(obj)

    def _append(self, text: str, *, metric: bool) -> None:
        data = (text + "\n").encode("utf-8", errors="replace")
        with self._lock:
            if self._fd is None:
                return
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if metric:
                self.metric_blobs += 1
            else:
                self.log_lines += 1

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> TelemetryFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- capturing -------------------------------------------------------------------------------

    @contextmanager
    def capture(self) -> Iterator[None]:
        """While active, what this thread prints, logs or warns goes to this file (see the module doc)."""
        previous = _current_capture()
        current = _Capture(self)
        _install()
        _thread.capture = current
        try:
            yield
        finally:
            _thread.capture = previous
            current.finish()
            _uninstall()


# --------------------------------------------------------------------------------------------------
# Per-thread routing


class _Capture:
    """One thread's capture: its file and the partial lines written so far (print() writes in pieces)."""

    def __init__(self, sink: TelemetryFile) -> None:
        self.sink = sink
        self._partial: dict[str, str] = {}

    def write(self, stream: str, text: str) -> None:
        pending = self._partial.get(stream, "") + text
        *lines, rest = pending.split("\n")
        self._partial[stream] = rest
        for line in lines:
            self.sink.write_line(line, stream=stream)

    def finish(self) -> None:
        for stream, rest in self._partial.items():
            if rest.strip():
                self.sink.write_line(rest, stream=stream)
        self._partial.clear()


class _ThreadState(threading.local):
    capture: _Capture | None = None


_thread = _ThreadState()


def _current_capture() -> _Capture | None:
    return _thread.capture


class _Router:
    """A text stream that sends a capturing thread's writes to its file and everyone else's to `fallback`."""

    def __init__(self, fallback: Any, name: str) -> None:
        self.fallback = fallback
        self.name = name

    def write(self, text: str) -> int:
        capture = _current_capture()
        if capture is None:
            return int(self.fallback.write(text) or 0)
        capture.write(self.name, text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if _current_capture() is None:
            self.fallback.flush()

    def isatty(self) -> bool:
        return _current_capture() is None and bool(self.fallback.isatty())

    def __getattr__(self, name: str) -> Any:
        # encoding, fileno, buffer...: the stream this one stands in for.
        return getattr(self.fallback, name)


def _is_router(stream: Any) -> bool:
    return isinstance(stream, _Router)


def _routes_to(stream: Any, fallback: Any) -> bool:
    return isinstance(stream, _Router) and stream.fallback is fallback


class _RootRouter(logging.Handler):
    """On the root logger while capturing: a capturing thread's stdlib records go to its file (Lambda's
    runtime puts a handler there too); for other threads it stands in for logging's last resort."""

    def emit(self, record: logging.LogRecord) -> None:
        if _powertools_ancestry(record.name):
            return  # already written by the Powertools handler on its way up
        capture = _current_capture()
        if capture is not None:
            capture.sink.write_record(record)
        else:
            last_resort = logging.lastResort
            at_level = last_resort is not None and record.levelno >= last_resort.level
            if last_resort is not None and at_level and not _handled_elsewhere(record.name, self):
                last_resort.handle(record)


def _chain(name: str) -> Iterator[logging.Logger]:
    logger: logging.Logger | None = logging.getLogger(name) if name != "root" else logging.root
    while logger is not None:
        yield logger
        if not logger.propagate:
            return
        logger = logger.parent


def _powertools_ancestry(name: str) -> bool:
    return any(getattr(logger, "powertools_handler", None) is not None for logger in _chain(name))


def _handled_elsewhere(name: str, own: logging.Handler) -> bool:
    return any(handler is not own for logger in _chain(name) for handler in logger.handlers)


def _route_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    capture = _current_capture()
    if capture is not None and file is None:
        capture.sink.write_warning(message, category, filename, lineno)
        return
    original = _hooks.showwarning
    if original is None or original is _route_warning:
        original = _ORIGINAL_SHOWWARNING
    original(message, category, filename, lineno, file, line)


class _Hooks:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.stdout: Any = None
        self.stderr: Any = None
        self.showwarning: Any = None
        self.root: _RootRouter | None = None
        self.handlers: list[tuple[logging.StreamHandler[Any], Any]] = []


_hooks = _Hooks()
_ORIGINAL_SHOWWARNING = warnings.showwarning


def _powertools_handlers() -> Iterator[logging.StreamHandler[Any]]:
    # list() copies the dict in one step (no Python code runs in between): a logger made meanwhile waits.
    loggers = [logging.root, *list(logging.Logger.manager.loggerDict.values())]
    for logger in loggers:
        handler = getattr(logger, "powertools_handler", None)
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            yield handler


def _install() -> None:
    with _hooks.lock:
        _hooks.active += 1
        if _hooks.active > 1:
            return
        try:
            _hook()
        except BaseException:
            # Half-installed hooks would outlive the capture that failed to start: undo them now.
            _hooks.active -= 1
            _unhook()
            raise


def _uninstall() -> None:
    with _hooks.lock:
        _hooks.active -= 1
        if _hooks.active > 0:
            return
        _unhook()


def _hook() -> None:
    if not _is_router(sys.stdout):
        _hooks.stdout = sys.stdout
        sys.stdout = cast(TextIO, _Router(sys.stdout, "stdout"))
    if not _is_router(sys.stderr):
        _hooks.stderr = sys.stderr
        sys.stderr = cast(TextIO, _Router(sys.stderr, "stderr"))
    _hooks.showwarning = warnings.showwarning
    warnings.showwarning = _route_warning
    _hooks.root = _RootRouter()
    logging.root.addHandler(_hooks.root)
    # A Logger made outside a capture holds the stdout of that moment; one made inside holds a router. Only
    # those bound to stdout are rerouted: a Logger given a stream of its own keeps it.
    stdout = _hooks.stdout if _hooks.stdout is not None else sys.__stdout__
    for handler in _powertools_handlers():
        if not _is_router(handler.stream) and handler.stream in (stdout, sys.__stdout__):
            _hooks.handlers.append((handler, handler.stream))
            _set_stream(handler, _Router(handler.stream, "stdout"))


def _unhook() -> None:
    # Restore only what still holds our router: whoever replaced it since keeps their stream.
    if _hooks.stdout is not None and _routes_to(sys.stdout, _hooks.stdout):
        sys.stdout = _hooks.stdout
    if _hooks.stderr is not None and _routes_to(sys.stderr, _hooks.stderr):
        sys.stderr = _hooks.stderr
    _hooks.stdout = _hooks.stderr = None
    if warnings.showwarning is _route_warning and _hooks.showwarning is not None:
        warnings.showwarning = _hooks.showwarning
    _hooks.showwarning = None
    if _hooks.root is not None:
        logging.root.removeHandler(_hooks.root)
        _hooks.root = None
    for handler, stream in _hooks.handlers:
        if _is_router(handler.stream):
            _set_stream(handler, stream)
    _hooks.handlers.clear()


def _set_stream(handler: logging.StreamHandler[Any], stream: Any) -> None:
    """StreamHandler.setStream flushes the old stream first, which raises when that stream is closed (a
    Logger made under a finished test's capture, a broken pipe): swap it under the handler's lock only."""
    handler.acquire()
    try:
        handler.stream = stream
    finally:
        handler.release()
