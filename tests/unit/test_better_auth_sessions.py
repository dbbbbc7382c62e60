"""The session cookie as Better-Auth's sign-in sets it (sessions/better_auth_sessions.py). The integration test
tests/integration/test_session_exchange.py proves the real server accepts it; these pin the format."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import unquote

import pytest

from auth_migration.sessions.better_auth_sessions import CookieSettings, session_cookie, signed_value

SECRET = "auth-migration-test-secret-not-for-production-0123456789"  # server.mjs's test secret


def test_the_value_is_the_token_and_its_base64_hmac_url_encoded_like_encodeuricomponent() -> None:
    token = "Abc123" * 5 + "xy"
    value = signed_value(token, SECRET)
    signature = base64.b64encode(hmac.new(SECRET.encode(), token.encode(), hashlib.sha256).digest()).decode()
    assert unquote(value) == f"{token}.{signature}"
    # encodeURIComponent escapes '+', '/' and '=' of standard base64; Better-Auth checks a 44-character signature.
    assert not set(value) & {"+", "/", "="}
    assert len(unquote(value).rsplit(".", 1)[1]) == 44


@pytest.mark.parametrize(
    ("secure", "name"), [(False, "better-auth.session_token"), (True, "__Secure-better-auth.session_token")]
)
def test_the_cookie_carries_better_auths_name_and_attributes(secure: bool, name: str) -> None:
    cookie = str(session_cookie("t" * 32, CookieSettings(secret=SECRET, secure=secure, max_age_s=604800)))
    assert cookie.startswith(f"{name}={signed_value('t' * 32, SECRET)}; Path=/")
    assert "; Max-Age=604800" in cookie and "; HttpOnly" in cookie and "; SameSite=Lax" in cookie
    assert ("; Secure" in cookie) is secure
    assert "Domain=" not in cookie


def test_a_cross_subdomain_cookie_names_its_domain_and_a_custom_prefix() -> None:
    cookie = str(session_cookie("t" * 32, CookieSettings(secret=SECRET, prefix="app", domain=".example.com")))
    assert cookie.startswith("app.session_token=") and "; Domain=.example.com" in cookie


def test_an_exchange_body_takes_exactly_one_token_and_never_shows_it() -> None:
    import hashlib

    import pydantic
    import pytest

    from auth_migration.sessions.api_models import ExchangeRequest
    from auth_migration.sessions.refresh_tokens import token_hash

    assert ExchangeRequest.model_validate({"refresh_token": "AbCdEfGhIjKl"}).access_token is None
    for body in ({}, {"access_token": "a.b.c", "refresh_token": "AbCdEfGhIjKl"}, {"refresh_token": "x" * 256}):
        with pytest.raises(pydantic.ValidationError):
            ExchangeRequest.model_validate(body)
    assert "AbCdEfGhIjKl" not in repr(ExchangeRequest.model_validate({"refresh_token": "AbCdEfGhIjKl"}))
    # The copy hashes in SQL (sha256(convert_to(token, 'UTF8'))): the same bytes as here.
    assert token_hash("AbCdEfGhIjKl") == hashlib.sha256(b"AbCdEfGhIjKl").digest()
