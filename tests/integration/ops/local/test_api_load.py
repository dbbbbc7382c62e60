"""`auth-migrate local api` under a small load test, as `sam local start-api` users run one: 50 clients at
once, each with its own connection, lose no request (no reset, no refused connection, no 5xx)."""

from __future__ import annotations

import io
import threading
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from auth_migration_ops.local.api import LocalApi
from auth_migration_ops.local.stack import LocalStack

CLIENTS = 50
REQUESTS_EACH = 4
PASSWORD = "correct horse battery"


@pytest.mark.slow
def test_fifty_concurrent_clients_lose_no_request(
    make_database: Callable[[], str], better_auth_installed: None
) -> None:
    stack = LocalStack(environ={}, database_url=make_database(), log=lambda _text: None).start()
    api = LocalApi(
        host="127.0.0.1",
        port=0,
        env_overrides=stack.env_overrides,
        resource_values=stack.resource_values,
        quiet=True,
        errors=io.StringIO(),
    ).start()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(number: int) -> None:
        email = f"load{number}@example.com"
        # A fresh connection per client, opened at the same moment: the burst the backlog must absorb.
        with httpx.Client(base_url=api.url, timeout=120) as http:
            start.wait()
            for attempt in range(REQUESTS_EACH):
                path = "/auth/signup" if attempt == 0 else "/auth/login"
                try:
                    reply = http.post(path, json={"email": email, "password": PASSWORD})
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(f"client {number} request {attempt}: {type(exc).__name__}: {exc}")
                    continue
                with lock:
                    statuses[reply.status_code] += 1

    try:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    finally:
        api.stop()
        stack.stop()

    assert failures == []
    assert statuses == Counter({200: CLIENTS * REQUESTS_EACH}), statuses
