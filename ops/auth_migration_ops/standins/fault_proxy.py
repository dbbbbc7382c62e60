"""An HTTP proxy that injects faults in front of a real server (the Better-Auth test server).

The GoTrue stand-in has its fault knobs built in; Better-Auth is the real npm package, so its faults
(down, slow, rate-limited, failing a share of calls) are injected here, between our client and it,
with the same `Faults` knobs, settable while it runs.
"""

from __future__ import annotations

import random
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, Final

import httpx

from auth_migration_ops.standins.gotrue import Faults
from auth_migration_ops.standins.quiet_server import QuietThreadingHTTPServer

__all__ = ["FaultProxy"]

# Hop-by-hop headers are the proxy's own business (RFC 9110 7.6.1); everything else passes through.
_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)


class FaultProxy:
    """Forwards every request to `upstream` unless a fault says otherwise.

    Faults: `down` drops the connection unanswered; `delay_s` waits first; `rate_limited` answers 429 as
    Better-Auth does (no code, an X-Retry-After header); `fail_rate` answers that share with an empty 500.
    """

    def __init__(self, upstream: str, *, seed: int | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = Faults()
        #: Requests received, faulty or not: tests check which system a route never asked.
        self.requests_received = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._client = httpx.Client(base_url=self.upstream, timeout=60.0, follow_redirects=False)
        self._server = QuietThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def draw_failure(self) -> bool:
        with self._lock:
            return self._rng.random() < self.faults.fail_rate

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        return self._client.request(method, path, headers=headers, content=body)


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            with proxy._lock:
                proxy.requests_received += 1
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            faults = proxy.faults
            if faults.applies_to(self.path.split("?")[0]):
                if faults.delay_s > 0:
                    proxy._stopping.wait(faults.delay_s)
                if faults.down or proxy._stopping.is_set():
                    self.close_connection = True
                    return
                if faults.rate_limited:
                    self._reply(429, {"X-Retry-After": "10"}, b"")
                    return
                if faults.fail_rate > 0 and proxy.draw_failure():
                    self._reply(faults.fail_status, {}, b"")
                    return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP and k.lower() != "host"}
            try:
                upstream = proxy.forward(method, self.path, headers, body)
            except httpx.HTTPError:
                self._reply(502, {}, b"")
                return
            out = [(k, v) for k, v in upstream.headers.multi_items() if k.lower() not in _HOP_BY_HOP]
            self.send_response(upstream.status_code)
            for key, value in out:
                if key.lower() != "content-encoding":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(upstream.content)))
            self.end_headers()
            self.wfile.write(upstream.content)

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
