"""What Sentry receives for session exchanges and hash upgrades, captured through the SDK's transport interface:
real exchanges through the API layer (GoTrue stand-in tokens, the real Better-Auth server's database), a
refresh token replayed (one grouped `SessionTokenReuse` warning naming the user, never the token), a state
database out of reach (an `AuthSessionExchangeError`), and no token, cookie or hash in any envelope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from auth_migration.dual_write.api import build_resolver, handle_api_event
from auth_migration.flags import Flags, MigrationMode
from auth_migration.sessions.exchange import SessionExchanger
from tests.integration.plugins.dual_write import DualWriteStack, flags_for
from tests.integration.plugins.session_exchange import (
    PASSWORD,
    app_for,
    exchange,
    gone_database_url,
    new_email,
    supabase_session,
)
from tests.integration.test_auth_api_secrets import CONTEXT, LOGIN, event
from tests.integration.test_hash_upgrade import bcrypt_user
from tests.integration.test_sentry_events import (
    CapturingTransport,
    exception_of,
    leaks,
    sentry_transport,  # noqa: F401 - the fixture, shared
)


def exchange_transactions(transport: CapturingTransport) -> list[dict[str, Any]]:
    return [t for t in transport.items("transaction") if t["transaction"] == "auth.session_exchange"]


def test_an_exchange_is_a_transaction_tagged_by_token_kind_and_a_replay_is_one_grouped_theft_warning(
    dual_write_stack: DualWriteStack,
    exchangers: Callable[..., SessionExchanger],
    sentry_transport: CapturingTransport,  # noqa: F811
) -> None:
    stack = dual_write_stack
    app = app_for(stack, exchangers())
    supabase = supabase_session(stack.gotrue, new_email())
    user_id = supabase["user"]["id"]

    replies = [
        exchange(app, {"access_token": supabase["access_token"]}),
        exchange(app, {"refresh_token": supabase["refresh_token"]}),
        exchange(app, {"refresh_token": supabase["refresh_token"]}),  # the replay
        exchange(app, {"access_token": "not.a.jwt"}),
    ]

    assert [r[0] for r in replies] == [200, 200, 401, 401]
    transactions = exchange_transactions(sentry_transport)
    assert [(t["tags"]["exchange_input"], t["tags"]["success"]) for t in transactions] == [
        ("access", "true"),
        ("refresh", "true"),
        ("refresh", "false"),
        ("access", "false"),
    ]
    for t in transactions:
        assert t["tags"]["auth_event_type"] == "session_exchange" and t["tags"]["migration_mode"] == "dual_write"
        assert t["contexts"]["auth_event"]["type"] == "session_exchange"
        assert isinstance(t["contexts"]["auth_event"]["duration_ms"], float)
        assert isinstance(t["contexts"]["trace"]["data"]["auth_exchange_duration"], float)
    assert transactions[0]["contexts"]["auth_event"]["lazy"] is True  # the first exchange migrated the user
    assert transactions[2]["contexts"]["auth_event"]["reason"] == "refresh_token_reused"
    assert transactions[3]["contexts"]["auth_event"]["error_kind"] == "invalid_token"

    # Only the replay is an issue: a bad token is the client's, not a theft and not a failure.
    (warning,) = sentry_transport.items("event")
    assert warning["level"] == "warning" and warning["fingerprint"] == ["SessionTokenReuse"]
    assert exception_of(warning)["type"] == "SessionTokenReuse"
    assert warning["tags"]["security_event"] == "refresh_token_reused"
    assert warning["user"]["id"] == user_id

    secrets = {
        "access token": supabase["access_token"],
        "refresh token": supabase["refresh_token"],
        "password": PASSWORD,
        **{f"session token {r[1]['token'][:6]}": r[1]["token"] for r in replies if r[0] == 200},
        **{f"cookie {i}": r[2]["set-cookie"][0].split(";")[0].split("=", 1)[1] for i, r in enumerate(replies[:2])},
    }
    assert leaks(sentry_transport, secrets) == []


def test_a_state_database_out_of_reach_is_an_exchange_error_grouped_by_what_failed(
    dual_write_stack: DualWriteStack,
    exchangers: Callable[..., SessionExchanger],
    sentry_transport: CapturingTransport,  # noqa: F811
) -> None:
    stack = dual_write_stack
    exchanger = exchangers()
    gone = gone_database_url(stack.database_url)
    exchanger.conns.urls["state"] = gone  # the rate-limit read is the first thing that needs it
    app = app_for(stack, exchanger, Flags(migration_mode=MigrationMode.BETTER_AUTH_ONLY))
    supabase = supabase_session(stack.gotrue, new_email())

    status, body, _ = exchange(app, {"access_token": supabase["access_token"]})

    assert (status, body["error"]) == (503, "unavailable")
    (error,) = sentry_transport.items("event")
    assert error["level"] == "error"
    assert error["fingerprint"] == ["AuthSessionExchangeError", "rate limit unreadable"]
    assert exception_of(error)["type"] == "AuthSessionExchangeError"
    (transaction,) = exchange_transactions(sentry_transport)
    assert transaction["tags"]["error_kind"] == "unavailable"
    assert transaction["tags"]["migration_mode"] == "better_auth_only"
    assert leaks(sentry_transport, {"access token": supabase["access_token"]}) == []


def test_a_login_that_upgrades_a_bcrypt_hash_says_so_in_its_auth_event_context(
    dual_write_stack: DualWriteStack,
    sentry_transport: CapturingTransport,  # noqa: F811
) -> None:
    stack = dual_write_stack
    email, _user_id = bcrypt_user(stack)
    service = stack.service()
    flags = flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=True, hash_upgrade=True)
    app = build_resolver(lambda: service, lambda: flags)

    raw = handle_api_event(event(LOGIN, {"email": email, "password": PASSWORD}), CONTEXT, app)

    assert raw["statusCode"] == 200, raw["body"]
    logins = [t for t in sentry_transport.items("transaction") if t["transaction"] == "auth.login"]
    assert logins[-1]["contexts"]["auth_event"]["upgraded_to_scrypt"] is True
    assert leaks(sentry_transport, {"password": PASSWORD}) == []
