"""POST /auth/session/exchange with a Supabase refresh token: checked live in GoTrue's tables while Supabase
runs, against the copy `auth-migrate sessions copy` made once it is gone, spent at most once, a reuse
refused, logged as a possible theft and ending the family (the Better-Auth session it bought is deleted).
Sessions the REAL Better-Auth server accepts; hostile refresh tokens refused with 401, nothing made."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final

import httpx
import pytest

from auth_migration.connections import Connections
from auth_migration.sessions.exchange import SessionExchanger
from auth_migration.sessions.session_copy import copy_sessions
from auth_migration_ops.standins.gotrue import GoTrueStandIn
from tests.integration.plugins.dual_write import DualWriteStack
from tests.integration.plugins.session_exchange import (
    PinnedClock,
    app_for,
    cookie_pair,
    counts,
    exchange,
    get_session,
    new_email,
    supabase_session,
)

#: What a refused exchange must not make (the ledger and the family's end are its own tables).
MADE: Final = ("session", '"user"', "account", "migrated_users")
REUSE: Final = "refresh token reused: possible theft; the session is ended"


def refresh(gotrue: GoTrueStandIn, refresh_token: str) -> dict[str, Any]:
    """GoTrue's refresh grant through the stand-in: the old token is rotated (revoked), a new one issued."""
    reply = httpx.post(
        f"{gotrue.url}/auth/v1/token?grant_type=refresh_token",
        json={"refresh_token": refresh_token},
        headers={"apikey": gotrue.anon_key},
        timeout=10,
    )
    reply.raise_for_status()
    body: dict[str, Any] = reply.json()
    return body


def copy(stack: DualWriteStack, clock: PinnedClock) -> dict[str, int]:
    conns = Connections(stack.database_url, stack.database_url, stack.database_url)
    try:
        return copy_sessions(conns, page_size=2, clock=clock).as_dict()
    finally:
        conns.close()


def made(stack: DualWriteStack) -> dict[str, int]:
    return {table: n for table, n in counts(stack).items() if table in MADE}


def session_alive(stack: DualWriteStack, set_cookie: str) -> bool:
    return get_session(stack, cookie=cookie_pair(set_cookie)) is not None


# --- while Supabase runs ----------------------------------------------------------------------------------


def test_a_refresh_token_is_exchanged_once_and_a_replay_ends_what_it_bought(
    dual_write_stack: DualWriteStack, exchangers: Callable[..., SessionExchanger]
) -> None:
    stack = dual_write_stack
    warnings: list[tuple[str, dict[str, Any]]] = []
    app = app_for(stack, exchangers(warnings=warnings))
    supabase = supabase_session(stack.gotrue, new_email())
    user_id = supabase["user"]["id"]

    status, body, headers = exchange(app, {"refresh_token": supabase["refresh_token"]})

    assert status == 200, body
    assert body["user"]["id"] == user_id
    (set_cookie,) = headers["set-cookie"]
    assert get_session(stack, cookie=cookie_pair(set_cookie))["user"]["id"] == user_id
    digest = hashlib.sha256(supabase["refresh_token"].encode()).digest()
    assert stack.query(
        "SELECT exchanged_at IS NOT NULL, better_auth_session_id, copied_at FROM copied_refresh_tokens"
        " WHERE token_hash = %s",
        digest,
    ) == [(True, stack.query("SELECT id FROM session WHERE token = %s", body["token"])[0][0], None)]

    replay, replay_body, replay_headers = exchange(app, {"refresh_token": supabase["refresh_token"]})

    assert (replay, replay_body["error"]) == (401, "invalid_token") and "set-cookie" not in replay_headers
    # Either holder may be the thief: the session the token bought is gone too, and the family is ended.
    assert not session_alive(stack, set_cookie)
    assert [(message, extra["user_id"], extra["reuse"]) for message, extra in warnings] == [(REUSE, user_id, "spent")]
    assert supabase["refresh_token"] not in json.dumps(warnings)
    assert stack.query("SELECT ended_reason FROM copied_supabase_sessions WHERE user_id = %s::uuid", user_id) == [
        ("refresh_token_reused",)
    ]
    assert stack.query(
        "SELECT success, error_kind FROM auth_events WHERE operation = 'session_exchange' ORDER BY id"
    ) == [(True, None), (False, "invalid_token")]


def test_a_token_gotrue_rotated_is_a_reuse_but_its_concurrent_refresh_is_not(
    dual_write_stack: DualWriteStack, exchangers: Callable[..., SessionExchanger]
) -> None:
    stack = dual_write_stack
    warnings: list[tuple[str, dict[str, Any]]] = []
    app = app_for(stack, exchangers(warnings=warnings))
    first = supabase_session(stack.gotrue, new_email())
    second = refresh(stack.gotrue, first["refresh_token"])

    # The token just rotated is the parent of the session's active one: GoTrue would answer it (a client's
    # concurrent refresh), so the exchange does too.
    assert exchange(app, {"refresh_token": first["refresh_token"]})[0] == 200
    third = refresh(stack.gotrue, second["refresh_token"])
    assert third["refresh_token"] != second["refresh_token"]
    # `first` is now two rotations back: a reuse GoTrue itself would refuse.
    status, body, _ = exchange(app, {"refresh_token": first["refresh_token"]})

    assert (status, body["error"]) == (401, "invalid_token")
    assert [extra["reuse"] for _, extra in warnings] == ["rotated"]


# --- after Supabase is gone: the copy -----------------------------------------------------------------------


def test_a_refresh_token_is_exchanged_from_the_copy_after_supabase_is_gone_and_only_once(
    dual_write_stack: DualWriteStack,
    exchangers: Callable[..., SessionExchanger],
    clock: PinnedClock,
) -> None:
    stack = dual_write_stack
    live = app_for(stack, exchangers())
    supabase = supabase_session(stack.gotrue, new_email())
    user_id = supabase["user"]["id"]
    rotated = supabase["refresh_token"]
    current = refresh(stack.gotrue, rotated)
    # The bulk migration wrote the user (here: a lazy exchange of their access token while Supabase ran).
    assert exchange(live, {"access_token": current["access_token"]})[0] == 200

    # The stand-in's autoconfirmed signup made a session too (one token); the sign-in's has two, one rotated.
    assert copy(stack, clock) == {"sessions": 2, "refresh_tokens": 3, "active_refresh_tokens": 2, "sessions_ended": 0}
    stored = json.dumps(stack.query("SELECT encode(token_hash, 'hex') FROM copied_refresh_tokens"))
    assert rotated not in stored and current["refresh_token"] not in stored
    warnings: list[tuple[str, dict[str, Any]]] = []
    gone = app_for(stack, exchangers(supabase_gone=True, warnings=warnings))  # its issuer is the stand-in's URL
    stack.gotrue.stop()

    status, body, headers = exchange(gone, {"refresh_token": current["refresh_token"]})

    assert status == 200, body
    held = get_session(stack, cookie=cookie_pair(headers["set-cookie"][0]))
    assert held["user"]["id"] == user_id and held["session"]["token"] == body["token"]
    assert warnings[0][0] == "Supabase unreachable: the session exchange reads the session copy"
    # The access token still verifies by its signature; its session is judged by the copy.
    assert exchange(gone, {"access_token": current["access_token"]})[0] == 200

    again = exchange(gone, {"refresh_token": current["refresh_token"]})

    assert (again[0], again[1]["error"]) == (401, "invalid_token")
    assert not session_alive(stack, headers["set-cookie"][0])
    assert [extra.get("reuse") for message, extra in warnings if message == REUSE] == ["spent"]
    # The family is ended: the session's access tokens are refused from the copy too.
    assert exchange(gone, {"access_token": current["access_token"]})[0] == 401


def test_a_repeated_copy_keeps_spent_and_revoked_tokens_and_ends_signed_out_sessions(
    dual_write_stack: DualWriteStack, clock: PinnedClock
) -> None:
    stack = dual_write_stack
    kept = supabase_session(stack.gotrue, new_email())
    signed_out = supabase_session(stack.gotrue, new_email())
    expired = supabase_session(stack.gotrue, new_email())
    stack.query("UPDATE auth.sessions SET not_after = %s WHERE user_id = %s", clock(), expired["user"]["id"])
    deleted = supabase_session(stack.gotrue, new_email())
    stack.query("UPDATE auth.users SET deleted_at = %s WHERE id = %s", clock(), deleted["user"]["id"])

    # Two sessions a user (the autoconfirmed signup's and the sign-in's); the expired user's and the deleted
    # user's are not copied.
    assert copy(stack, clock)["sessions"] == 4
    stack.query("UPDATE copied_refresh_tokens SET exchanged_at = %s", clock())
    refresh(stack.gotrue, kept["refresh_token"])
    stack.gotrue.revoke_session(_session_id(signed_out))

    second = copy(stack, clock)

    assert second == {"sessions": 3, "refresh_tokens": 4, "active_refresh_tokens": 3, "sessions_ended": 1}
    rows = stack.query(
        """SELECT s.user_id::text, s.ended_reason, t.revoked, t.exchanged_at IS NOT NULL
           FROM copied_refresh_tokens t JOIN copied_supabase_sessions s USING (session_id)
           WHERE s.session_id = ANY(%s::uuid[])""",
        [_session_id(kept), _session_id(signed_out)],
    )
    assert sorted(rows, key=str) == sorted(
        [
            (kept["user"]["id"], None, False, False),  # the rotation's new token
            (kept["user"]["id"], None, True, True),  # rotated since: revoked, and still spent
            (signed_out["user"]["id"], "gone_from_supabase", False, True),
        ],
        key=str,
    )


def _session_id(session: dict[str, Any]) -> str:
    payload = session["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["session_id"])


# --- hostile refresh tokens: 401, nothing made ----------------------------------------------------------------

#: Read live in GoTrue's tables (Supabase runs).
_LIVE_CASES: Final = [
    "unknown_token",
    "rotated_token",
    "replayed_token",
    "signed_out_session",
    "expired_session",
    "banned_user",
    "deleted_user",
]
#: Read from the copy (Supabase's database is gone).
_COPY_CASES: Final = [
    "copy:unknown_token",
    "copy:rotated_token",
    "copy:replayed_token",
    "copy:signed_out_session",
    "copy:expired_session",
    "copy:banned_user",
    "copy:user_never_migrated",
]


def refresh_twice(gotrue: GoTrueStandIn, token: str) -> None:
    """`token` ends two rotations back: no longer the parent of the session's active token."""
    refresh(gotrue, refresh(gotrue, token)["refresh_token"])


def _hostile_live(stack: DualWriteStack, case: str, clock: PinnedClock, exchanger: SessionExchanger) -> str:
    supabase = supabase_session(stack.gotrue, new_email())
    token: str = supabase["refresh_token"]
    user_id = supabase["user"]["id"]
    if case == "unknown_token":
        return "AbCdEfGhIjKl"
    if case == "rotated_token":
        refresh_twice(stack.gotrue, token)
    elif case == "replayed_token":
        assert exchange(app_for(stack, exchanger), {"refresh_token": token})[0] == 200
    elif case == "signed_out_session":
        stack.gotrue.revoke_session(_session_id(supabase))
    elif case == "expired_session":
        stack.query("UPDATE auth.sessions SET not_after = %s WHERE user_id = %s", clock(), user_id)
    elif case == "banned_user":
        stack.query("UPDATE auth.users SET banned_until = %s WHERE id = %s", clock() + timedelta(days=1), user_id)
    elif case == "deleted_user":
        stack.query("UPDATE auth.users SET deleted_at = %s WHERE id = %s", clock(), user_id)
    return token


def _hostile_copied(stack: DualWriteStack, case: str, clock: PinnedClock, live: SessionExchanger) -> str:
    """The state is made while Supabase runs, copied, then judged by an exchanger for which it is gone."""
    supabase = supabase_session(stack.gotrue, new_email())
    token: str = supabase["refresh_token"]
    user_id = supabase["user"]["id"]
    if case != "user_never_migrated":
        # The user is one the bulk migration wrote (here: by a lazy exchange of the access token).
        assert exchange(app_for(stack, live), {"access_token": supabase["access_token"]})[0] == 200
    if case == "unknown_token":
        copy(stack, clock)
        return "AbCdEfGhIjKl"
    if case == "rotated_token":
        refresh_twice(stack.gotrue, token)
    elif case == "replayed_token":
        assert exchange(app_for(stack, live), {"refresh_token": token})[0] == 200  # spent while Supabase ran
    elif case == "banned_user":
        stack.query("UPDATE auth.users SET banned_until = %s WHERE id = %s", clock() + timedelta(days=1), user_id)
    elif case == "expired_session":
        stack.query(
            "UPDATE auth.sessions SET not_after = %s WHERE user_id = %s", clock() + timedelta(minutes=1), user_id
        )
    copy(stack, clock)
    if case == "signed_out_session":
        stack.gotrue.revoke_session(_session_id(supabase))
        assert copy(stack, clock)["sessions_ended"] == 1
    elif case == "expired_session":
        clock.now += timedelta(minutes=2)
    return token


@pytest.mark.parametrize("case", _LIVE_CASES + _COPY_CASES)
def test_a_hostile_refresh_token_is_refused_with_401_and_makes_nothing(
    dual_write_stack: DualWriteStack, exchangers: Callable[..., SessionExchanger], clock: PinnedClock, case: str
) -> None:
    stack = dual_write_stack
    live = exchangers()
    if case.startswith("copy:"):
        token = _hostile_copied(stack, case.removeprefix("copy:"), clock, live)
        judge = exchangers(supabase_gone=True)
    else:
        token = _hostile_live(stack, case, clock, live)
        judge = live
    before = made(stack)

    status, body, headers = exchange(app_for(stack, judge), {"refresh_token": token})

    assert (status, body["error"]) == (401, "invalid_token")
    assert "set-cookie" not in headers and token not in json.dumps(body)
    after = made(stack)
    # A replay also deletes the session the first exchange bought: never more sessions, never a user.
    assert after["session"] <= before["session"] and {**after, "session": 0} == {**before, "session": 0}
    assert stack.query(
        "SELECT success, error_kind FROM auth_events WHERE operation = 'session_exchange' ORDER BY id DESC LIMIT 1"
    ) == [(False, "invalid_token")]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"access_token": "a.b.c", "refresh_token": "AbCdEfGhIjKl"},
        {"refresh_token": ""},
        {"refresh_token": "x" * 256},
    ],
    ids=["neither", "both", "empty", "too_long"],
)
def test_a_body_without_exactly_one_token_is_a_400_naming_no_value(
    dual_write_stack: DualWriteStack, exchangers: Callable[..., SessionExchanger], body: dict[str, Any]
) -> None:
    stack = dual_write_stack
    status, reply, _ = exchange(app_for(stack, exchangers()), body)

    assert (status, reply["error"]) == (400, "invalid_request")
    assert "AbCdEfGhIjKl" not in json.dumps(reply)
    assert stack.query("SELECT count(*) FROM auth_events")[0][0] == 0


def test_the_copy_command_prints_its_counts_and_refuses_a_bad_page_size(
    dual_write_stack: DualWriteStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from auth_migration_ops.cli.main import main

    stack = dual_write_stack
    supabase_session(stack.gotrue, new_email())
    monkeypatch.setenv("OLD_DATABASE_URL", stack.database_url)
    monkeypatch.setenv("NEW_DATABASE_URL", stack.database_url)

    assert main(["--env-file", "/nonexistent/.env", "sessions", "copy", "--json", "--page-size", "1"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "sessions": 2,
        "refresh_tokens": 2,
        "active_refresh_tokens": 2,
        "sessions_ended": 0,
    }
    assert main(["--env-file", "/nonexistent/.env", "sessions", "copy", "--page-size", "0"]) == 2
    assert "Traceback" not in capsys.readouterr().err
