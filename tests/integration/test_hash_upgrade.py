"""HASH_UPGRADE: a Better-Auth sign-in of a user still holding a Supabase bcrypt hash re-hashes the password
with Better-Auth's own scrypt, through the real Better-Auth server, and `auth-migrate status` counts down."""

from __future__ import annotations

import contextlib
import io
import json
import re
import uuid

import pytest

from auth_migration.backends import InvalidCredentials
from auth_migration.flags import MigrationMode
from auth_migration_ops.cli import main as cli_main
from tests.integration.plugins.dual_write import DualWriteStack, flags_for

PASSWORD = "correct horse 1"
SCRYPT_HASH = re.compile(r"^[0-9a-f]{32}:[0-9a-f]{128}$")


def bcrypt_user(stack: DualWriteStack) -> tuple[str, str]:
    """A Supabase user migrated lazily (Supabase primary): Better-Auth holds their bcrypt hash, as after bulk."""
    email = f"h-{uuid.uuid4().hex[:10]}@example.com"
    supabase_first = flags_for(MigrationMode.SUPABASE_ONLY)
    user_id = stack.service().signup(supabase_first, email, PASSWORD).result.user.id
    assert stack.service().login(flags_for(MigrationMode.DUAL_WRITE), email, PASSWORD).lazy_migrated
    return email, user_id


def _hash_of(stack: DualWriteStack, user_id: str) -> str:
    rows = stack.query("""SELECT password FROM account WHERE "userId" = %s AND "providerId" = 'credential'""", user_id)
    return str(rows[0][0])


def _status(stack: DualWriteStack) -> dict[str, int]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["status", "--json", "--database-url", stack.database_url]) == 0
    result: dict[str, int] = json.loads(out.getvalue())
    return result


def test_a_better_auth_login_upgrades_the_bcrypt_hash_and_the_next_login_still_works(
    dual_write_stack: DualWriteStack,
) -> None:
    stack = dual_write_stack
    email, user_id = bcrypt_user(stack)
    assert _hash_of(stack, user_id).startswith("$2")
    before = _status(stack)

    outcome = stack.service().login(
        flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=True, hash_upgrade=True), email, PASSWORD
    )

    assert outcome.result.system == "better_auth" and outcome.hash_upgraded
    assert SCRYPT_HASH.match(_hash_of(stack, user_id))
    # The real server verifies its own scrypt hash: the password keeps working, and a wrong one does not.
    assert stack.better_auth_backend().sign_in(email, PASSWORD).user.id == user_id
    with pytest.raises(InvalidCredentials):
        stack.better_auth_backend().sign_in(email, PASSWORD + "x")
    after = _status(stack)
    assert after["bcrypt_hashes"] == before["bcrypt_hashes"] - 1
    assert after["better_auth_hashes"] == before["better_auth_hashes"] + 1
    assert stack.query("SELECT success FROM auth_events WHERE operation = 'hash_upgrade'") == [(True,)]

    again = stack.service().login(
        flags_for(MigrationMode.BETTER_AUTH_ONLY, better_auth_primary=True, hash_upgrade=True), email, PASSWORD
    )
    assert not again.hash_upgraded  # already Better-Auth's own hash: nothing to do


def test_without_the_flag_or_with_a_supabase_answer_the_hash_stays(dual_write_stack: DualWriteStack) -> None:
    stack = dual_write_stack
    email, user_id = bcrypt_user(stack)
    original = _hash_of(stack, user_id)

    off = stack.service().login(flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=True), email, PASSWORD)
    supabase_answered = stack.service().login(flags_for(MigrationMode.DUAL_WRITE, hash_upgrade=True), email, PASSWORD)

    assert off.result.system == "better_auth" and not off.hash_upgraded
    assert supabase_answered.result.system == "supabase" and not supabase_answered.hash_upgraded
    assert _hash_of(stack, user_id) == original
    assert stack.query("SELECT count(*) FROM auth_events WHERE operation = 'hash_upgrade'") == [(0,)]
