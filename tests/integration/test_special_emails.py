"""Legal but unusual emails (`tilde~t@`, `hash#t@`, ...): accepted by our API and by GoTrue, refused by stock
Better-Auth's zod rule. Through the real Better-Auth server (the config we ship, and stock as the reference),
the GoTrue stand-in and real Postgres: nobody we create or migrate is locked out by the switch."""

from __future__ import annotations

import json
import subprocess
import uuid

import psycopg
import pytest

from auth_migration.backends import BETTER_AUTH, SUPABASE, InputRefused, InvalidCredentials
from auth_migration.flags import Flags, MigrationMode
from auth_migration.rollout.checks import phase_blockers
from auth_migration.validation import (
    EMAIL_REFUSED_BY_SIGN_IN,
    SignInEmailRule,
    api_accepts,
    gotrue_accepts,
)
from auth_migration_ops.standins.better_auth import SERVER_DIR
from tests.integration.plugins.dual_write import DualWriteStack, flags_for
from tests.reference_time import REFERENCE_TIME

PASSWORD = "correct horse 1"

#: docs/BETTER_AUTH.md section 2a: our API and GoTrue accept each, stock Better-Auth refuses each.
SPECIAL_LOCAL_PARTS = [
    "tilde~t",
    "hash#t",
    "bang!t",
    "dollar$t",
    "amp&t",
    "star*t",
    "slash/t",
    "eq=t",
    "q?t",
    "caret^t",
    "tick`t",
    "brace{t}",
    "pipe|t",
    "pct%t",
    "o'",  # zod: the local part must not END with an apostrophe
]

#: The four phases' flags (rollout/phases.py), the canary left off.
PHASE_FLAGS: dict[int, Flags] = {
    1: flags_for(MigrationMode.SUPABASE_ONLY, migration_validation=False),
    2: flags_for(MigrationMode.DUAL_WRITE, migration_validation=True),
    3: flags_for(MigrationMode.DUAL_WRITE, better_auth_primary=True, migration_validation=True),
    4: flags_for(MigrationMode.BETTER_AUTH_ONLY, better_auth_primary=True, migration_validation=False),
}


def _special(local: str) -> str:
    # A unique domain label keeps the local part (the unusual bit) exactly as listed.
    return f"{local}@s{uuid.uuid4().hex[:10]}.example.com"


@pytest.fixture
def stock_stack(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> DualWriteStack:
    """The dual-write stack with Better-Auth WITHOUT our supabase-emails plugin (server.mjs EMAIL_RULE=stock):
    what a deployment that skipped docs/BETTER_AUTH.md section 2a runs. The child inherits the variable."""
    monkeypatch.setenv("EMAIL_RULE", "stock")
    stack: DualWriteStack = request.getfixturevalue("dual_write_stack")
    return stack


def stack_conn(stack: DualWriteStack) -> psycopg.Connection:
    return psycopg.connect(stack.database_url, autocommit=True)


# --- the acceptance table, checked against the real validators -----------------------------------------------


def _zod_verdicts(emails: list[str]) -> dict[str, list[bool]]:
    """z.email() as the Better-Auth server's own zod answers, stock and with supabase-emails installed."""
    script = """
import * as z from "zod";
const emails = JSON.parse(process.argv[1]);
const check = () => emails.map((e) => z.email().safeParse(e).success);
const stock = check();
const { supabaseEmails } = await import("./supabase-emails.mjs");
supabaseEmails();
console.log(JSON.stringify({ stock, shipped: check() }));
"""
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script, json.dumps(emails)],
        cwd=SERVER_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    verdicts: dict[str, list[bool]] = json.loads(done.stdout)
    return verdicts


CORPUS = [
    "plain@example.com",
    "a.b+tag@example.co.uk",
    *(f"{local}@example.com" for local in SPECIAL_LOCAL_PARTS),
    "a..b@example.com",
    ".a@example.com",
    "a.@example.com",
    "user@localhost",
    "user@123",
    "a@b-.com",
    "a@-b.com",
    "a@b..com",
    "a@b.c",
    "a@b.xn--p1ai",
    "ü@example.com",
    "user@bücher.de",
    '"quoted"@example.com',
    "a b@example.com",
    "a@example.com\n",
    "x" * 250 + "@ex.com",
]


def test_python_rules_match_the_servers_zod_stock_and_shipped(better_auth_installed: None) -> None:
    verdicts = _zod_verdicts(CORPUS)
    assert verdicts["stock"] == [SignInEmailRule.STOCK.accepts(e) for e in CORPUS]
    assert verdicts["shipped"] == [SignInEmailRule.SHIPPED.accepts(e) for e in CORPUS]
    # The shipped rule widens and never narrows: everything stock accepted is still accepted.
    assert all(shipped or not stock for stock, shipped in zip(verdicts["stock"], verdicts["shipped"], strict=True))


def test_every_listed_address_is_accepted_by_our_api_and_gotrue_and_refused_by_stock_better_auth() -> None:
    for local in SPECIAL_LOCAL_PARTS:
        email = f"{local}@example.com"
        assert api_accepts(email), email
        assert gotrue_accepts(email), email
        assert not SignInEmailRule.STOCK.accepts(email), email
        assert SignInEmailRule.SHIPPED.accepts(email), email


# --- the shipped config: sign-up and sign-in in every phase -------------------------------------------------


def test_each_special_address_signs_up_in_dual_write_and_logs_in_in_every_phase(
    dual_write_stack: DualWriteStack,
) -> None:
    stack = dual_write_stack
    service = stack.service()
    for k, local in enumerate(SPECIAL_LOCAL_PARTS):
        email = _special(local)
        # Alternate the primary: phase 2 (Supabase answers first) and phase 3 (Better-Auth does).
        signed_up = service.signup(PHASE_FLAGS[2 if k % 2 else 3], email, PASSWORD)
        user_id = signed_up.result.user.id
        assert signed_up.gaps == (), email
        assert stack.holders(email) == (user_id, user_id), email
        for phase, flags in PHASE_FLAGS.items():
            outcome = service.login(flags, email, PASSWORD)
            assert outcome.result.user.id == user_id, (email, phase)
            expected = SUPABASE if phase in (1, 2) else BETTER_AUTH
            assert outcome.result.system == expected, (email, phase)


def test_shipped_better_auth_signs_in_a_special_address_directly_and_refuses_none(
    dual_write_stack: DualWriteStack,
) -> None:
    backend = dual_write_stack.better_auth_backend()
    email = _special("tilde~t")
    created = backend.sign_up(email, PASSWORD)
    assert backend.sign_in(email, PASSWORD).user.id == created.user.id
    # A wrong password of any length the Login API forwards is a plain 401, never a 400 on the length.
    for wrong in ("x" * 200, "é" * 1024):
        with pytest.raises(InvalidCredentials):
            backend.sign_in(email, wrong)
    backend.close()


def test_shipped_server_refuses_to_start_without_its_email_check_passing() -> None:
    # The guard's premise: without the plugin, Better-Auth's own sign-in refuses the start check's address.
    script = """
import { START_CHECK_EMAIL, gotrueAccepts } from "./supabase-emails.mjs";
import * as z from "zod";
console.log(JSON.stringify([gotrueAccepts(START_CHECK_EMAIL), z.email().safeParse(START_CHECK_EMAIL).success]));
"""
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script], cwd=SERVER_DIR, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == [True, False]


# --- defence in depth: a Better-Auth whose rule is stricter than Supabase's ---------------------------------


def test_stock_better_auth_refuses_the_address_itself(stock_stack: DualWriteStack) -> None:
    backend = stock_stack.better_auth_backend()
    with pytest.raises(InputRefused) as refused:
        backend.sign_in(_special("tilde~t"), PASSWORD)
    assert refused.value.code == "INVALID_EMAIL"
    backend.close()


@pytest.mark.parametrize("local", ["tilde~t", "hash#t"])
def test_a_user_stock_better_auth_refuses_still_logs_in_through_supabase(
    stock_stack: DualWriteStack, local: str
) -> None:
    stack = stock_stack
    service = stack.service()
    email = _special(local)
    # Supabase primary: GoTrue accepts it; Better-Auth gets the rows by SQL (its sign-up would refuse it).
    user_id = service.signup(PHASE_FLAGS[2], email, PASSWORD).result.user.id
    assert stack.holders(email) == (user_id, user_id)
    # Phase 3: Better-Auth holds the user but refuses the address: no verdict, Supabase signs them in.
    outcome = service.login(PHASE_FLAGS[3], email, PASSWORD)
    assert (outcome.result.system, outcome.result.user.id) == (SUPABASE, user_id)
    # A wrong password is still a 401, whichever system answers it.
    with pytest.raises(InvalidCredentials):
        service.login(PHASE_FLAGS[3], email, "wrong password 9")
    # And phase 4 is refused while such a user exists (the stricter rule this deployment runs).
    with stack_conn(stack) as conn:
        blockers = phase_blockers(conn, 4, PHASE_FLAGS[3], now=REFERENCE_TIME, sign_in_email_rule=SignInEmailRule.STOCK)
    refused = [b for b in blockers if "refuses" in b.reason]
    assert refused and refused[0].figures == {"in_better_auth": 1, "not_migrated": 0, "email_rule": "stock"}


@pytest.mark.parametrize("phase", [3, 4])
def test_unknown_special_address_gets_the_same_401_as_an_unknown_plain_one(
    stock_stack: DualWriteStack, phase: int
) -> None:
    service = stock_stack.service()
    for email in (_special("tilde~t"), _special("plain")):
        with pytest.raises(InvalidCredentials) as refused:
            service.login(PHASE_FLAGS[phase], email, PASSWORD)
        assert not isinstance(refused.value, InputRefused)


# --- the phase-4 blocker over recorded outcomes -------------------------------------------------------------


def test_phase_4_is_refused_while_the_bulk_left_a_refused_email_behind(dual_write_stack: DualWriteStack) -> None:
    stack = dual_write_stack
    stack.query(
        "INSERT INTO migration_states (id, status, source, target, batch_size, dry_run, as_of)"
        " VALUES ('m1', 'completed_with_errors', 'supabase', 'better_auth', 100, false, %s)",
        REFERENCE_TIME,
    )
    stack.query(
        "INSERT INTO migration_errors (migration_id, user_id, error_kind, error_code, error_message)"
        " VALUES ('m1', 'u1', 'invalid', %s, 'refused')",
        EMAIL_REFUSED_BY_SIGN_IN,
    )
    with stack_conn(stack) as conn:
        blockers = phase_blockers(conn, 4, PHASE_FLAGS[3], now=REFERENCE_TIME)
        assert [b.figures for b in blockers if "refuses" in b.reason] == [
            {"in_better_auth": 0, "not_migrated": 1, "email_rule": "shipped"}
        ]
        assert not [b for b in phase_blockers(conn, 3, PHASE_FLAGS[2], now=REFERENCE_TIME) if "refuses" in b.reason]
        # Migrated since (lazily at login, say) with an address the rule accepts: no longer blocking.
        conn.execute(
            "INSERT INTO migrated_users (original_id, new_auth_id, email, source)"
            " VALUES ('u1', 'u1', %s, 'lazy_login')",
            ("tilde~t@example.com",),
        )
        assert not [b for b in phase_blockers(conn, 4, PHASE_FLAGS[3], now=REFERENCE_TIME) if "refuses" in b.reason]


def test_shipped_rule_does_not_block_dual_written_special_users(dual_write_stack: DualWriteStack) -> None:
    stack = dual_write_stack
    service = stack.service()
    service.signup(PHASE_FLAGS[2], _special("tilde~t"), PASSWORD)
    with stack_conn(stack) as conn:
        shipped = phase_blockers(conn, 4, PHASE_FLAGS[3], now=REFERENCE_TIME)
        stock = phase_blockers(conn, 4, PHASE_FLAGS[3], now=REFERENCE_TIME, sign_in_email_rule=SignInEmailRule.STOCK)
    assert not [b for b in shipped if "refuses" in b.reason]
    assert [b.figures["in_better_auth"] for b in stock if "refuses" in b.reason] == [1]
