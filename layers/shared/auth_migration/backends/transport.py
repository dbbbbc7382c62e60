"""One reusable httpx client per auth system: timeouts, connection reuse, transport errors translated."""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final

import httpx

from auth_migration.backends.errors import Timeout, Unavailable

if TYPE_CHECKING:
    import ssl

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_S",
    "DEFAULT_TIMEOUT_S",
    "HttpClient",
    "error_body",
    "json_object",
    "retry_after_seconds",
    "shared_ssl_context",
]

DEFAULT_TIMEOUT_S: Final = 5.0
DEFAULT_CONNECT_TIMEOUT_S: Final = 2.0
# A Lambda container serves one request at a time; a few kept-alive connections cover dual-write's two calls.
_LIMITS: Final = httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=60.0)


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """The one TLS context of every HttpClient in the process, made on first use.

    Exactly what httpx.Client builds for itself with its defaults (certificates and host names verified;
    certifi's CA bundle, or SSL_CERT_FILE / SSL_CERT_DIR), made once: loading the CA bundle takes ~16 ms,
    and Signup/Login build two clients at cold start. Safe to share: an SSLContext may serve many
    connections and threads, and every HttpClient speaks HTTP/1.1 only, so the ALPN protocols httpcore
    sets on it before each TLS handshake are the same for all.
    """
    return httpx.create_ssl_context()


def _timeout(seconds: float, connect_seconds: float) -> httpx.Timeout:
    # Each phase is bounded by `seconds`; connecting gets less, since a refused or black-holed host
    # should fail over sooner than a slow sign-in (bcrypt) is cut off.
    return httpx.Timeout(seconds, connect=min(connect_seconds, seconds))


class HttpClient:
    """An httpx.Client bound to one system's base URL, created once per container and reused.

    Parameters:
        system: the system's name, carried by every error raised.
        base_url: where the system's API lives.
        timeout: default seconds per connect/read/write phase; a call may pass its own.
        connect_timeout: upper bound for connecting.
        headers: sent with every request.
        transport: an httpx transport (tests pass httpx.MockTransport to check the error mapping).
    """

    def __init__(
        self,
        system: str,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.system = system
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.client = httpx.Client(
            base_url=self.base_url,
            timeout=_timeout(timeout, connect_timeout),
            headers=dict(headers or {}),
            limits=_LIMITS,
            transport=transport,
            follow_redirects=False,
            # A given transport brings its own TLS (tests' MockTransport has none): no context is made for it.
            verify=shared_ssl_context() if transport is None else True,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request; a reply of any status is returned, no reply raises Timeout / Unavailable."""
        try:
            return self.client.request(
                method,
                path,
                json=json,
                params=params,
                headers=headers,
                timeout=_timeout(timeout, self.connect_timeout) if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            raise Timeout(self.system, detail=type(exc).__name__) from exc
        except httpx.TransportError as exc:
            # Connect refused, connection dropped mid-reply, protocol garbage: no usable answer.
            raise Unavailable(self.system, detail=type(exc).__name__) from exc

    def close(self) -> None:
        self.client.close()


def json_object(system: str, response: httpx.Response) -> dict[str, Any]:
    """The reply's JSON object; a reply that is not one is a broken server (Unavailable), not our input."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise Unavailable(system, status=response.status_code, detail="reply is not a JSON object")
    return body


def error_body(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of an error reply, or {} (proxies answer 502/503 in HTML)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) in seconds from now; None when absent or garbled.

    now: epoch seconds to measure an HTTP date from (tests pin it); default the wall clock, which is
    what turns the server's absolute date into a wait.
    """
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(text).timestamp() - (time.time() if now is None else now))
    except (TypeError, ValueError):
        return None
