"""The real Better-Auth server (Node, ops/better_auth_server) for integration tests and the local run:
install it, create its tables, start and stop it, and sign users up and in over HTTP."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Final

import httpx

__all__ = [
    "SERVER_DIR",
    "BetterAuthServer",
    "create_better_auth_tables",
    "ensure_installed",
    "free_port",
    "sign_in",
    "sign_up",
]

#: The Node project; the repo is installed editable, so it sits beside this package under ops/.
SERVER_DIR: Path = Path(__file__).resolve().parents[2] / "better_auth_server"

#: Better-Auth's own tables as its migration creates them, for building the target without Node.

_NPM_TIMEOUT_S = 300.0
_MIGRATE_TIMEOUT_S = 60.0
_OUTPUT_TAIL_LINES = 40
_PORT_ATTEMPTS = 3


class _PortTaken(RuntimeError):
    """The server could not bind its port."""


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH: the Better-Auth server needs Node.js >= 20")
    return node


def _tail(text: str, lines: int = _OUTPUT_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def ensure_installed() -> None:
    """Run `npm ci` in SERVER_DIR unless node_modules is already at least as new as package-lock.json.

    Raises:
        RuntimeError: npm is missing or failed (the message carries the tail of its output).
    """
    lock = SERVER_DIR / "package-lock.json"
    # npm ci writes this file last, so its mtime says the install finished, not just started.
    marker = SERVER_DIR / "node_modules" / ".package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH: install Node.js >= 20 to run the Better-Auth server")
    try:
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=SERVER_DIR,
            capture_output=True,
            text=True,
            timeout=_NPM_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"npm ci in {SERVER_DIR} took longer than {_NPM_TIMEOUT_S:.0f} s") from exc
    if result.returncode != 0:
        raise RuntimeError(
            f"npm ci in {SERVER_DIR} failed (exit {result.returncode}):\n{_tail(result.stdout + result.stderr)}"
        )


def _server_env(database_url: str, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url
    # Telemetry is off in server.mjs too; the env var keeps it off whatever a developer's shell says.
    env["BETTER_AUTH_TELEMETRY"] = "0"
    env.update(extra)
    return env


def create_better_auth_tables(database_url: str) -> None:
    """Create Better-Auth's own tables in `database_url` with Better-Auth's migration (idempotent).

    Raises:
        RuntimeError: the migration failed (the message carries the tail of its output).
    """
    ensure_installed()
    result = subprocess.run(
        [_node(), "server.mjs", "--migrate-only"],
        cwd=SERVER_DIR,
        env=_server_env(database_url, {}),
        capture_output=True,
        text=True,
        timeout=_MIGRATE_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"Better-Auth migration failed (exit {result.returncode}):\n{_tail(result.stdout + result.stderr)}"
        )


def _read_all(stream: IO[bytes] | None) -> bytes:
    if stream is None:
        return b""
    stream.seek(0)
    return stream.read()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


#: server.mjs's fixed BETTER_AUTH_SECRET when none is given: a test value, never a real deployment's.
TEST_SECRET: Final = "auth-migration-test-secret-not-for-production-0123456789"  # noqa: S105


class BetterAuthServer:
    """One Better-Auth server process on 127.0.0.1, used as a context manager or via start()/stop().

    Parameters:
        database_url: the Postgres database Better-Auth stores users in.
        port: where to listen; a free port when None.
        secret: BETTER_AUTH_SECRET; server.mjs's fixed test secret when None.
        migrate: create Better-Auth's tables on start (False when they already exist, e.g. made
            by datakit.schemas).
        rate_limit: turn on Better-Auth's rate limiter as production has it (3 sign-ins per 10 s per
            client IP, read from X-Forwarded-For); off by default so tests can sign in freely.
        startup_timeout: seconds to wait for the server's READY line.
    """

    def __init__(
        self,
        database_url: str,
        port: int | None = None,
        secret: str | None = None,
        *,
        migrate: bool = True,
        rate_limit: bool = False,
        startup_timeout: float = 30.0,
    ) -> None:
        self.database_url = database_url
        self.port = port
        self.secret = secret
        self.migrate = migrate
        self.rate_limit = rate_limit
        self.startup_timeout = startup_timeout
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._stdout: IO[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def effective_secret(self) -> str:
        """The BETTER_AUTH_SECRET the server signs its cookies with (what the session exchange must use)."""
        return self.secret if self.secret is not None else TEST_SECRET

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the Better-Auth server has no port until start()")
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.base_url}/api/auth"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> BetterAuthServer:
        """Spawn the server and wait for it to listen.

        Raises:
            RuntimeError: it exited or stayed silent past startup_timeout (the message carries the
                tail of its stderr).
        """
        if self._process is not None:
            raise RuntimeError("this Better-Auth server is already started")
        ensure_installed()
        chosen_port = self.port
        for attempt in range(_PORT_ATTEMPTS):
            self.port = chosen_port if chosen_port is not None else free_port()
            try:
                self._spawn()
            except _PortTaken:
                # A free port can be taken between probing and binding; only our own pick is retried.
                if chosen_port is not None or attempt == _PORT_ATTEMPTS - 1:
                    raise
                continue
            break
        return self

    def _spawn(self) -> None:
        extra = {"PORT": str(self.port), "BETTER_AUTH_URL": self.base_url}
        if self.secret is not None:
            extra["BETTER_AUTH_SECRET"] = self.secret
        if not self.migrate:
            extra["MIGRATE"] = "0"
        if self.rate_limit:
            extra["RATE_LIMIT"] = "1"
        # Output goes to files, not pipes: a chatty server must never block on a pipe nobody reads.
        self._stdout = tempfile.TemporaryFile("w+b")  # noqa: SIM115 - closed in stop()
        self._stderr = tempfile.TemporaryFile("w+b")  # noqa: SIM115 - closed in stop()
        started = time.monotonic()
        self._process = subprocess.Popen(
            [_node(), "server.mjs"],
            cwd=SERVER_DIR,
            env=_server_env(self.database_url, extra),
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
        )
        try:
            self._wait_ready(self._process, started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def _wait_ready(self, process: subprocess.Popen[bytes], started: float) -> None:
        while True:
            if b"READY " in _read_all(self._stdout):
                return
            if process.poll() is not None:
                tail = self.stderr_tail()
                if "EADDRINUSE" in tail:
                    raise _PortTaken(f"port {self.port} is in use:\n{tail}")
                raise RuntimeError(
                    f"Better-Auth server exited with code {process.returncode} before READY; stderr:\n{tail}"
                )
            if time.monotonic() - started > self.startup_timeout:
                raise RuntimeError(
                    f"Better-Auth server did not print READY within {self.startup_timeout:.0f} s; "
                    f"stderr:\n{self.stderr_tail()}"
                )
            time.sleep(0.02)

    def stderr_tail(self, lines: int = _OUTPUT_TAIL_LINES) -> str:
        """The last lines the server wrote to stderr (for failure messages)."""
        if self._stderr is None:
            return ""
        return _tail(_read_all(self._stderr).decode(errors="replace"), lines)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the server; kill it if it has not exited within `timeout` seconds."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        for stream in (self._stdout, self._stderr):
            if stream is not None:
                stream.close()
        self._stdout = self._stderr = None

    def __enter__(self) -> BetterAuthServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _post(base_url: str, path: str, body: dict[str, str], timeout: float, client_ip: str | None) -> httpx.Response:
    base_url = base_url.rstrip("/")
    # Better-Auth answers 403 MISSING_OR_NULL_ORIGIN to a request that carries cookies but no Origin,
    # and 403 INVALID_ORIGIN to an untrusted one; the server's own URL is trusted.
    headers = {"Origin": base_url}
    if client_ip is not None:
        # Better-Auth's rate limiter keys on this header; without it every caller shares one bucket.
        headers["X-Forwarded-For"] = client_ip
    return httpx.post(f"{base_url}/api/auth/{path}", json=body, headers=headers, timeout=timeout)


def sign_in(
    base_url: str, email: str, password: str, *, timeout: float = 10, client_ip: str | None = None
) -> httpx.Response:
    """POST /api/auth/sign-in/email; 200 `{redirect, token, user}` or 401 INVALID_EMAIL_OR_PASSWORD."""
    return _post(base_url, "sign-in/email", {"email": email, "password": password}, timeout, client_ip)


def sign_up(
    base_url: str,
    email: str,
    password: str,
    name: str,
    *,
    timeout: float = 10,
    client_ip: str | None = None,
) -> httpx.Response:
    """POST /api/auth/sign-up/email; 200 `{token, user}`, 422 USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL."""
    body = {"email": email, "password": password, "name": name}
    return _post(base_url, "sign-up/email", body, timeout, client_ip)
