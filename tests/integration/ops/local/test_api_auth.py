"""`auth-migrate local api` end to end: the real template's Signup and Login functions over HTTP, on the
local stack it starts (real Better-Auth server, GoTrue stand-in, moto)."""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
import psycopg
import pytest

from auth_migration_ops.local.api import LocalApi
from auth_migration_ops.local.stack import LocalStack

PASSWORD = "correct horse battery"


@pytest.mark.slow
def test_signup_then_login_over_http_lands_in_both_systems(
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
    try:
        with httpx.Client(base_url=api.url, timeout=30) as client:
            signed_up = client.post("/auth/signup", json={"email": "Ada@Example.com", "password": PASSWORD})
            logged_in = client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
            wrong = client.post("/auth/login", json={"email": "ada@example.com", "password": "not it at all"})
            unknown = client.post("/auth/login", json={"email": "nobody@example.com", "password": PASSWORD})
            hostile = client.post("/auth/signup", content=b"{'email': 1}", headers={"content-type": "application/json"})
        assert signed_up.status_code == 200, signed_up.text
        assert logged_in.status_code == 200, logged_in.text
        user_id = signed_up.json()["user"]["id"]
        assert logged_in.json()["user"]["id"] == user_id
        assert signed_up.json()["system"] == "supabase"  # the local stack's flags: dual_write, Supabase primary
        assert (wrong.status_code, unknown.status_code) == (401, 401)
        assert wrong.json() == unknown.json()
        assert hostile.status_code == 400
        with psycopg.connect(stack.database_url) as conn:
            assert conn.execute("SELECT id::text FROM auth.users").fetchall() == [(user_id,)]
            assert conn.execute('SELECT id FROM "user"').fetchall() == [(user_id,)]
    finally:
        api.stop()
        stack.stop()
