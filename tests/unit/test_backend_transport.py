"""The auth systems' HTTP clients: one TLS context for the whole container, still verifying."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from auth_migration.backends import BetterAuthBackend, SupabaseAuthBackend
from auth_migration.backends.transport import HttpClient, shared_ssl_context


@pytest.fixture
def contexts_made(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ssl.SSLContext]]:
    """Every TLS context built while the test runs (httpx builds its default one with ssl.create_default_context)."""
    made: list[ssl.SSLContext] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = real(*args, **kwargs)
        made.append(context)
        return context

    shared_ssl_context.cache_clear()
    monkeypatch.setattr(ssl, "create_default_context", counting)
    yield made
    shared_ssl_context.cache_clear()


def test_both_backends_share_one_tls_context_that_verifies(contexts_made: list[ssl.SSLContext]) -> None:
    SupabaseAuthBackend("https://project.supabase.co/auth/v1", service_key="service-key")
    BetterAuthBackend("https://auth.example.com")

    # Loading the CA bundle is the costly part of a client (~16 ms of cold start): done once.
    assert len(contexts_made) == 1
    (context,) = contexts_made
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_a_client_with_its_own_transport_builds_no_tls_context(contexts_made: list[ssl.SSLContext]) -> None:
    HttpClient("supabase", "https://project.supabase.co", transport=httpx.MockTransport(lambda _r: httpx.Response(200)))

    assert contexts_made == []
