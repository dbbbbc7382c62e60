"""Signup and login through the real Better-Auth server and the GoTrue stand-in: modes x primary x faults,
fallback, lazy migration, the takeover guard, gaps and their repair."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from auth_migration.backends import (
    BETTER_AUTH,
    SUPABASE,
    InvalidCredentials,
    RateLimited,
    SystemName,
    Unavailable,
    UserExists,
)
from auth_migration.dual_write.records import MigrationStats, migration_stats
from auth_migration.dual_write.service import BothUnavailable
from auth_migration.engine.plan import StartRequest, start_migration
from auth_migration.flags import MigrationMode
from auth_migration.rollout.checks import SYSTEM_FAILURE_SQL, user_error_params
from auth_migration_ops.cli import main as cli_main
from tests.integration.plugins.dual_write import DualWriteStack, flags_for
from tests.integration.plugins.engine import InlineEngine

PASSWORD = "correct horse 1"
# Thread scheduling and a TCP teardown on a shared 2-core machine.
MARGIN_S = 1.0
PRIMARIES: list[SystemName] = [SUPABASE, BETTER_AUTH]


def _email(tag: str = "u") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


def _other(system: SystemName) -> SystemName:
    return BETTER_AUTH if system == SUPABASE else SUPABASE


def _set_faults(stack: DualWriteStack, system: SystemName, **faults: Any) -> None:
    target = stack.gotrue.faults if system == SUPABASE else stack.proxy.faults
    for name, value in faults.items():
        setattr(target, name, value)


def _sign_in_directly(stack: DualWriteStack, system: SystemName, email: str) -> str:
    backend = stack.supabase_backend() if system == SUPABASE else stack.better_auth_backend()
    try:
        return backend.sign_in(email, PASSWORD).user.id
    finally:
        backend.close()


def _events(stack: DualWriteStack) -> list[tuple[Any, ...]]:
    return stack.query("SELECT operation, system, mode, success, error_kind FROM auth_events ORDER BY id")


# --- single-system modes ---------------------------------------------------------------------------------


def test_supabase_only_never_touches_better_auth(dual_write_stack: DualWriteStack) -> None:
    stack = dual_write_stack
    service = stack.service(better_auth_down=True)
    flags = flags_for(MigrationMode.SUPABASE_ONLY)
    email = _email()
    signed_up = service.signup(flags, email, PASSWORD, {"full_name": "Ada"})
    logged_in = service.login(flags, email, PASSWORD)
    assert signed_up.result.system == logged_in.result.system == SUPABASE
    assert stack.holders(email) == (signed_up.result.user.id, None)
    assert not logged_in.lazy_migrated
    assert stack.query("SELECT count(*) FROM migrated_users") == [(0,)]
    assert [e[:4] for e in _events(stack)] == [
        ("signup", SUPABASE, "supabase_only", True),
        ("login", SUPABASE, "supabase_only", True),
    ]


def test_better_auth_only_never_touches_gotrue_and_guards_unmigrated_emails(dual_write_stack: DualWriteStack) -> None:
    stack = dual_write_stack
    taken = _email("old")
    stack.supabase_backend().sign_up(taken, PASSWORD)  # a Supabase user the migration has not moved yet
    service = stack.service(supabase_down=True)
    flags = flags_for(MigrationMode.BETTER_AUTH_ONLY)
    email = _email()
    signed_up = service.signup(flags, email, PASSWORD)
    assert service.login(flags, email, PASSWORD).result.system == BETTER_AUTH
    assert stack.holders(email) == (None, signed_up.result.user.id)
    with pytest.raises(UserExists):
        service.signup(flags, taken, "another password 2")
    assert stack.holders(taken)[1] is None  # no Better-Auth account was made for the taken email


# --- dual_write: both up -------------------------------------------------------------------------------


@pytest.mark.parametrize("primary", PRIMARIES)
def test_dual_write_signup_gives_one_id_in_both_systems_and_either_signs_in(
    dual_write_stack: DualWriteStack, primary: SystemName
) -> None:
    stack = dual_write_stack
    service = stack.service()
    flags = flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=primary == BETTER_AUTH)
    email = _email()
    outcome = service.signup(flags, email, PASSWORD, {"full_name": "Grace Hopper"})
    user_id = outcome.result.user.id
    assert outcome.result.system == primary
    assert outcome.result.session is not None
    assert outcome.gaps == ()
    assert stack.holders(email) == (user_id, user_id)
    # Either system signs the user in directly, with the password they chose.
    assert _sign_in_directly(stack, SUPABASE, email) == user_id
    assert _sign_in_directly(stack, BETTER_AUTH, email) == user_id
    assert service.login(flags, email, PASSWORD).result.system == primary
    assert stack.query(
        "SELECT state, supabase_migrated, better_auth_migrated, data_validated FROM user_migration_status"
        " WHERE user_id = %s",
        user_id,
    ) == [("dual_write", True, True, True)]
    assert stack.query("SELECT source, migration_id FROM migrated_users WHERE original_id = %s", user_id) == [
        ("dual_write_signup", None)
    ]
    # Same name in both.
    assert stack.query('SELECT name FROM "user" WHERE id = %s', user_id) == [("Grace Hopper",)]


@pytest.mark.parametrize("primary", PRIMARIES)
def test_an_email_either_system_holds_is_already_registered(
    dual_write_stack: DualWriteStack, primary: SystemName
) -> None:
    stack = dual_write_stack
    service = stack.service()
    flags = flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=primary == BETTER_AUTH)
    in_supabase, in_better_auth = _email("sb"), _email("ba")
    stack.supabase_backend().sign_up(in_supabase, PASSWORD)
    stack.better_auth_backend().sign_up(in_better_auth, PASSWORD)
    for email in (in_supabase, in_better_auth.upper()):
        with pytest.raises(UserExists):
            service.signup(flags, email, "fresh password 3")
    # Nothing was created: each email stays with the one system that held it.
    assert stack.query("SELECT count(*) FROM auth.users") == [(1,)]
    assert stack.query('SELECT count(*) FROM "user"') == [(1,)]


# --- dual_write: one system down, slow, rate-limited -------------------------------------------------------


@pytest.mark.parametrize("primary", PRIMARIES)
def test_secondary_down_signup_served_by_primary_gap_repaired(
    dual_write_stack: DualWriteStack, primary: SystemName
) -> None:
    stack = dual_write_stack
    flags = flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=primary == BETTER_AUTH)
    secondary = _other(primary)
    if secondary == SUPABASE:
        service = stack.service(supabase_down=True)
    else:
        # Better-Auth is written by SQL as the secondary; its database refusing the write is the outage.
        service = stack.service()
        stack.query('ALTER TABLE "user" ADD CONSTRAINT outage CHECK (false) NOT VALID')
    email = _email()
    outcome = service.signup(flags, email, PASSWORD)
    assert outcome.result.system == primary
    assert len(outcome.gaps) == 1
    assert stack.query("SELECT reason, status, source_system FROM dual_write_gaps") == [
        ("secondary_failed", "open", primary)
    ]
    if secondary == BETTER_AUTH:
        stack.query('ALTER TABLE "user" DROP CONSTRAINT outage')
    assert stack.drain() == [f"created_{secondary}"]
    user_id = outcome.result.user.id
    assert stack.holders(email) == (user_id, user_id)
    assert _sign_in_directly(stack, secondary, email) == user_id
    assert stack.query("SELECT status, password_hash FROM dual_write_gaps") == [("repaired", None)]
    assert stack.query("SELECT data_validated FROM user_migration_status WHERE user_id = %s", user_id) == [(True,)]


@pytest.mark.parametrize("primary", PRIMARIES)
def test_primary_down_signup_and_login_fall_back_and_converge(
    dual_write_stack: DualWriteStack, primary: SystemName
) -> None:
    stack = dual_write_stack
    flags = flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=primary == BETTER_AUTH)
    secondary = _other(primary)
    service = stack.service(supabase_down=primary == SUPABASE, better_auth_down=primary == BETTER_AUTH)
    email = _email()
    outcome = service.signup(flags, email, PASSWORD)
    assert outcome.result.system == secondary
    user_id = outcome.result.user.id
    if primary == BETTER_AUTH:
        # Better-Auth's server is down but its database is not: the rows are written by SQL at once.
        assert outcome.gaps == ()
    else:
        assert stack.drain() == ["created_supabase"]
    assert stack.holders(email) == (user_id, user_id)
    assert service.login(flags, email, PASSWORD).result.system == secondary
    assert _sign_in_directly(stack, primary, email) == user_id


@pytest.mark.parametrize("primary", PRIMARIES)
def test_slow_primary_login_falls_back_within_the_timeout(
    dual_write_stack: DualWriteStack, primary: SystemName
) -> None:
    stack = dual_write_stack
    flags = flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=primary == BETTER_AUTH, timeout_ms=500)
    service = stack.service()
    email = _email()
    service.signup(flags, email, PASSWORD)
    _set_faults(stack, primary, delay_s=5.0)
    started = time.monotonic()
    outcome = service.login(flags, email, PASSWORD)
    elapsed = time.monotonic() - started
    assert outcome.result.system == _other(primary)
    assert elapsed < 0.5 + MARGIN_S, elapsed


@pytest.mark.parametrize("primary", PRIMARIES)
def test_slow_primary_signup_is_uncertain_never_two_people(
    dual_write_stack: DualWriteStack, primary: SystemName
) -> None:
    """A primary that times out may still commit the user under its own id: we answer 503 and let
    Reconcile look, instead of creating a second person in the other system."""
    stack = dual_write_stack
    flags = flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=primary == BETTER_AUTH, timeout_ms=300)
    service = stack.service()
    email = _email()
    _set_faults(stack, primary, delay_s=1.0)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        service.signup(flags, email, PASSWORD)
    assert time.monotonic() - started < 0.3 + MARGIN_S
    time.sleep(1.5)  # the slow primary finishes the signup it was given
    _set_faults(stack, primary, delay_s=0.0)
    assert stack.drain() == [f"created_{_other(primary)}"]
    sb_id, ba_id = stack.holders(email)
    assert sb_id is not None
    assert sb_id == ba_id
    relaxed = flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=primary == BETTER_AUTH, timeout_ms=5000)
    with pytest.raises(UserExists):
        service.signup(relaxed, email, PASSWORD)
    assert service.login(relaxed, email, PASSWORD).result.user.id == sb_id


@pytest.mark.parametrize("primary", PRIMARIES)
def test_rate_limited_primary_is_final_and_writes_nothing(
    dual_write_stack: DualWriteStack, primary: SystemName
) -> None:
    """A 429 is the system protecting itself (or the user from guessing): falling back would double the budget."""
    stack = dual_write_stack
    flags = flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=primary == BETTER_AUTH)
    service = stack.service()
    registered = _email()
    service.signup(flags, registered, PASSWORD)
    _set_faults(stack, primary, rate_limited=True)
    with pytest.raises(RateLimited):
        service.signup(flags, _email(), PASSWORD)
    with pytest.raises(RateLimited):
        service.login(flags, registered, PASSWORD)
    assert stack.query("SELECT count(*) FROM auth.users") == [(1,)]
    assert stack.query("SELECT count(*) FROM dual_write_gaps") == [(0,)]


def test_rate_limited_secondary_leaves_a_gap_that_reconcile_closes(dual_write_stack: DualWriteStack) -> None:
    stack = dual_write_stack
    flags = flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=True)
    service = stack.service()
    _set_faults(stack, SUPABASE, rate_limited=True)
    email = _email()
    outcome = service.signup(flags, email, PASSWORD)
    assert outcome.result.system == BETTER_AUTH
    assert len(outcome.gaps) == 1
    _set_faults(stack, SUPABASE, rate_limited=False)
    assert stack.drain() == ["created_supabase"]
    assert _sign_in_directly(stack, SUPABASE, email) == outcome.result.user.id


def test_both_down_is_a_clear_error_with_the_attempt_recorded(dual_write_stack: DualWriteStack) -> None:
    stack = dual_write_stack
    flags = flags_for(MigrationMode.DUAL_WRITE)
    registered = _email("known")
    stack.service().signup(flags, registered, PASSWORD)
    service = stack.service(supabase_down=True, better_auth_down=True)
    email = _email()
    with pytest.raises(BothUnavailable):
        service.signup(flags, email, PASSWORD)
    with pytest.raises(BothUnavailable):
        service.login(flags, registered, PASSWORD)
    # An email neither system's table holds is an unknown user, whichever server is down.
    with pytest.raises(InvalidCredentials):
        service.login(flags, email, PASSWORD)
    assert stack.drain() == ["nothing_created"]
    assert stack.holders(email) == (None, None)
    assert stack.query("SELECT status, password_hash FROM dual_write_gaps WHERE email = %s", email) == [
        ("repaired", None)
    ]


# --- login rules -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("primary", PRIMARIES)
def test_wrong_password_from_the_holder_is_final(dual_write_stack: DualWriteStack, primary: SystemName) -> None:
    stack = dual_write_stack
    flags = flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=primary == BETTER_AUTH, timeout_ms=3000)
    service = stack.service()
    email = _email()
    service.signup(flags, email, PASSWORD)
    _set_faults(stack, _other(primary), delay_s=2.0)  # asking the other system would cost 2 s
    started = time.monotonic()
    with pytest.raises(InvalidCredentials):
        service.login(flags, email, "wrong password 9")
    assert time.monotonic() - started < 1.5
    with pytest.raises(InvalidCredentials):
        service.login(flags, _email("nobody"), PASSWORD)


@pytest.mark.parametrize("primary", PRIMARIES)
def test_supabase_user_logging_in_is_lazily_migrated_with_the_same_id(
    dual_write_stack: DualWriteStack, primary: SystemName
) -> None:
    stack = dual_write_stack
    flags = flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=primary == BETTER_AUTH)
    email = _email("legacy")
    legacy = stack.supabase_backend().sign_up(email, PASSWORD, {"full_name": "Old Timer"})
    service = stack.service()
    outcome = service.login(flags, email, PASSWORD)
    assert outcome.result.system == SUPABASE
    assert outcome.lazy_migrated
    assert stack.holders(email) == (legacy.user.id, legacy.user.id)
    assert _sign_in_directly(stack, BETTER_AUTH, email) == legacy.user.id
    assert stack.query("SELECT source FROM migrated_users WHERE original_id = %s", legacy.user.id) == [("lazy_login",)]
    assert stack.query("SELECT state FROM user_migration_status WHERE user_id = %s", legacy.user.id) == [
        ("migrated_lazy",)
    ]
    again = service.login(flags, email, PASSWORD)
    assert not again.lazy_migrated
    assert again.result.system == primary
    assert stack.query('SELECT count(*) FROM "user"') == [(1,)]


def test_a_canary_login_of_a_user_not_yet_migrated_is_not_a_better_auth_failure(
    dual_write_stack: DualWriteStack,
) -> None:
    """Better-Auth first, but it does not hold the user yet: Supabase answers without Better-Auth having
    failed. AutoRollback must not read that as Better-Auth-primary traffic failing (it would roll a
    healthy canary back while the bulk migration is still running); a real fallback still counts."""
    stack = dual_write_stack
    flags = flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=True)
    email = _email("notyet")
    stack.supabase_backend().sign_up(email, PASSWORD, {})
    service = stack.service()

    assert service.login(flags, email, PASSWORD).result.system == SUPABASE  # lazily migrated now
    assert service.login(flags, email, PASSWORD).result.system == BETTER_AUTH
    _set_faults(stack, BETTER_AUTH, fail_rate=1.0)
    fell_back = service.login(flags, email, PASSWORD)

    assert fell_back.result.system == SUPABASE and fell_back.fallback
    rows = stack.query("SELECT system, primary_system, success FROM auth_events WHERE operation = 'login' ORDER BY id")
    assert rows == [
        ("supabase", "supabase", True),
        ("better_auth", "better_auth", True),
        ("supabase", "better_auth", True),
    ]
    with psycopg.connect(stack.database_url) as conn:
        failures = conn.execute(
            f"SELECT count(*) FROM auth_events WHERE {SYSTEM_FAILURE_SQL}".encode(), user_error_params()
        ).fetchone()
    assert failures == (1,)  # the fallback, and only it


def test_lazy_logins_racing_the_bulk_migration_create_each_user_once(
    dual_write_stack: DualWriteStack, make_inline_engine: Callable[..., InlineEngine]
) -> None:
    """The lazy path and the bulk engine claim the same migrated_users row: whichever comes second adopts."""
    stack = dual_write_stack
    admin = stack.supabase_backend()
    emails = [_email(f"race{i}") for i in range(40)]
    ids = {e: admin.create_user(e, password=PASSWORD, email_confirm=True).id for e in emails}
    engine = make_inline_engine(stack.database_url)
    start_migration(StartRequest(batch_size=5), engine.context())
    flags = flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=True, timeout_ms=5000)
    logins: list[str] = []
    errors: list[BaseException] = []

    def log_in(part: list[str]) -> None:
        service = stack.service()
        for email in part:
            try:
                logins.append(service.login(flags, email, PASSWORD).result.user.id)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=log_in, args=(emails[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(logins) < 10 and time.monotonic() < deadline:  # let the lazy path get ahead, then race it
        time.sleep(0.01)
    results = engine.drain()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(logins) == sorted(ids.values())
    assert all(r.status == "done" for r in results)
    assert stack.query('SELECT count(*), count(DISTINCT id) FROM "user"') == [(40, 40)]
    assert stack.query("SELECT count(*) FROM migrated_users") == [(40,)]
    by_path = dict(stack.query("SELECT source, count(*) FROM migrated_users GROUP BY source"))
    assert by_path.get("lazy_login", 0) >= 10
    assert by_path.get("supabase", 0) >= 1  # both paths claimed users; none twice
    for email in emails[:5]:
        assert _sign_in_directly(stack, BETTER_AUTH, email) == ids[email]


def test_a_better_auth_id_gotrue_cannot_take_is_a_conflict_not_a_retry_loop(dual_write_stack: DualWriteStack) -> None:
    """Better-Auth's default ids are not UUIDs; GoTrue refuses them (docs/BETTER_AUTH.md)."""
    stack = dual_write_stack
    email = _email("nonuuid")
    stack.query(
        """INSERT INTO "user" (id, name, email, "emailVerified", "createdAt", "updatedAt")
           VALUES ('Kz8w0N5rJhdi1JbWle6abcdEFGH12345', 'x', %s, false, now(), now())""",
        email,
    )
    gap_id = stack.reconciler().gap_id_from({"gap": {"email": email, "source_system": "better_auth"}})
    result = stack.reconciler().repair(gap_id)
    assert (result.status, result.outcome) == ("conflict", "rejected_by_supabase")
    assert stack.holders(email)[0] is None


def test_status_counts_users_per_system_and_open_gaps(dual_write_stack: DualWriteStack) -> None:
    stack = dual_write_stack
    flags = flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=True)
    stack.service().signup(flags, _email(), PASSWORD)
    stack.service(supabase_down=True).signup(flags, _email(), PASSWORD)  # leaves a gap
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["status", "--json", "--database-url", stack.database_url]) == 0
    assert json.loads(out.getvalue()) == {
        "total_users": 1,
        "supabase_migrated": 1,
        "better_auth_migrated": 1,
        "fully_migrated": 1,
        "data_validated": 1,
        "open_gaps": 1,
        "conflicts": 0,
        "completion_rate": 100.0,
        # Both signed up through Better-Auth's own API: its scrypt hashes, none of Supabase's bcrypt.
        "bcrypt_hashes": 0,
        "better_auth_hashes": 2,
    }
    stack.drain()
    with contextlib.redirect_stdout(io.StringIO()) as text:
        cli_main(["status", "--database-url", stack.database_url])
    assert "in both" in text.getvalue()
    assert migration_stats_of(stack).fully_migrated == 2


def migration_stats_of(stack: DualWriteStack) -> MigrationStats:
    with psycopg.connect(stack.database_url) as conn:
        return migration_stats(conn)


def test_reconcile_brings_differing_fields_to_the_source_systems_values(dual_write_stack: DualWriteStack) -> None:
    stack = dual_write_stack
    flags = flags_for(MigrationMode.DUAL_WRITE)
    email = _email("drift")
    user_id = stack.service().signup(flags, email, PASSWORD, {"full_name": "Real Name"}).result.user.id
    stack.query('UPDATE "user" SET name = %s, "emailVerified" = false WHERE id = %s', "Drifted", user_id)
    reconciler = stack.reconciler()
    gap = {"email": email, "user_id": user_id, "source_system": "supabase", "reason": "mismatch"}
    result = reconciler.repair(reconciler.gap_id_from({"gap": gap}))
    assert (result.status, result.outcome) == ("repaired", "fields_fixed")
    assert stack.query('SELECT name, "emailVerified" FROM "user" WHERE id = %s', user_id) == [("Real Name", True)]
    # Better-Auth as the source: a verified Better-Auth user is confirmed in GoTrue.
    stack.query("UPDATE auth.users SET email_confirmed_at = NULL WHERE id = %s::uuid", user_id)
    gap["source_system"] = "better_auth"
    result = reconciler.repair(reconciler.gap_id_from({"gap": gap}))
    assert result.outcome == "fields_fixed"
    assert stack.query("SELECT email_confirmed_at IS NOT NULL FROM auth.users WHERE id = %s::uuid", user_id) == [
        (True,)
    ]
    again = reconciler.repair(reconciler.gap_id_from({"gap": gap}))
    assert again.outcome == "consistent"
    reconciler.conns.close()
