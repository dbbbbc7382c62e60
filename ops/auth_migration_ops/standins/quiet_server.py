"""A ThreadingHTTPServer for the local test servers that stays quiet when a client hangs up first.

Fault injection (a delay past the client's timeout) makes clients leave before the reply, on purpose;
socketserver would print a BrokenPipeError traceback for each. Every other error still prints.
"""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any

__all__ = ["QuietThreadingHTTPServer"]


class QuietThreadingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
            return
        super().handle_error(request, client_address)
