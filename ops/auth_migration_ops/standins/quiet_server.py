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
    # socketserver listens with a backlog of 5: a client opening many connections at once (the supabase
    # target's calls at a high cap) had most of them reset. Go's net/http, behind GoTrue, takes the
    # kernel's somaxconn (4096 on current Linux); 1024 is plenty here.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
            return
        super().handle_error(request, client_address)
