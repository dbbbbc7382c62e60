"""Every mode x primary x condition (both up, one down, one slow past the timeout, one rate-limited), for
signup and login, against the real Better-Auth server and the GoTrue stand-in.

The expected outcome of each cell is written out in EXPECTED (the rules of ARCHITECTURE.md, "Signup and
login"); the test drives the real service into the cell and compares.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

import pytest

from auth_migration.backends import BETTER_AUTH, SUPABASE, BackendError, SystemName
from auth_migration.dual_write.service import AuthOutcome
from auth_migration.flags import MigrationMode
from tests.integration.plugins.dual_write import DualWriteStack, flags_for

PASSWORD = "correct horse 1"
TIMEOUT_MS = 800
SLOW_S = 2.0
MARGIN_S = 1.0

Kind = Literal["none", "down", "slow", "rate_limited"]
Role = Literal["serving", "other", "primary", "secondary"]
# What a call must give: "ok:<role>" (served by that role's system), or the error kind it must raise.
Expect = str

#: (single or dual, role of the faulty system, fault) -> (signup, login, gap possible). A gap is possible
#: where one side may be missing; where it is not, Reconcile must find nothing to do.
EXPECTED: dict[tuple[str, Role, Kind], tuple[Expect, Expect, bool]] = {
    ("single", "serving", "none"): ("ok:serving", "ok:serving", False),
    ("single", "serving", "down"): ("unavailable", "unavailable", False),
    ("single", "serving", "slow"): ("timeout", "timeout", False),
    ("single", "serving", "rate_limited"): ("rate_limited", "rate_limited", False),
    # Mode isolation: the other system's state never matters, and it is never asked.
    ("single", "other", "down"): ("ok:serving", "ok:serving", False),
    ("single", "other", "slow"): ("ok:serving", "ok:serving", False),
    ("single", "other", "rate_limited"): ("ok:serving", "ok:serving", False),
    ("dual", "primary", "none"): ("ok:primary", "ok:primary", False),
    # Signup falls back only when the primary surely wrote nothing; a timeout may still commit (503).
    ("dual", "primary", "down"): ("ok:secondary", "ok:secondary", True),
    ("dual", "primary", "slow"): ("timeout", "ok:secondary", True),
    # A 429 is final: falling back would double the guessing budget.
    ("dual", "primary", "rate_limited"): ("rate_limited", "rate_limited", False),
    ("dual", "secondary", "down"): ("ok:primary", "ok:primary", True),
    ("dual", "secondary", "slow"): ("ok:primary", "ok:primary", True),
    ("dual", "secondary", "rate_limited"): ("ok:primary", "ok:primary", True),
}


def _cells() -> list[tuple[MigrationMode, SystemName, Role, Kind]]:
    faults: tuple[Kind, ...] = ("down", "slow", "rate_limited")
    cells: list[tuple[MigrationMode, SystemName, Role, Kind]] = []
    singles: tuple[tuple[MigrationMode, SystemName], ...] = (
        (MigrationMode.SUPABASE_ONLY, SUPABASE),
        (MigrationMode.BETTER_AUTH_ONLY, BETTER_AUTH),
    )
    for mode, serving in singles:
        cells.append((mode, serving, "serving", "none"))
        cells += [(mode, serving, "serving", kind) for kind in faults]
        cells += [(mode, serving, "other", kind) for kind in faults]
    for primary in (SUPABASE, BETTER_AUTH):
        cells.append((MigrationMode.DUAL_WRITE, primary, "primary", "none"))
        cells += [(MigrationMode.DUAL_WRITE, primary, "primary", kind) for kind in faults]
        cells += [(MigrationMode.DUAL_WRITE, primary, "secondary", kind) for kind in faults]
    return cells


def _cell_id(cell: tuple[MigrationMode, SystemName, Role, Kind]) -> str:
    mode, primary, role, kind = cell
    return f"{mode.value}-{primary}-{role}-{kind}"


def _other(system: SystemName) -> SystemName:
    return BETTER_AUTH if system == SUPABASE else SUPABASE


def _requests(stack: DualWriteStack, system: SystemName) -> int:
    return stack.gotrue.requests_received if system == SUPABASE else stack.proxy.requests_received


def _expected_system(expect: Expect, primary: SystemName) -> SystemName:
    role = expect.removeprefix("ok:")
    return primary if role in ("serving", "primary") else _other(primary)


def _run(call: object) -> AuthOutcome | BackendError:
    try:
        return call()  # type: ignore[operator,no-any-return]
    except BackendError as exc:
        return exc


def _check(result: AuthOutcome | BackendError, expect: Expect, primary: SystemName, what: str) -> None:
    if expect.startswith("ok:"):
        assert isinstance(result, AuthOutcome), f"{what}: expected success, got {result!r}"
        assert result.result.system == _expected_system(expect, primary), what
    else:
        assert isinstance(result, BackendError), f"{what}: expected {expect}, got {result!r}"
        assert result.kind == expect, f"{what}: expected {expect}, got {result.kind}"


@pytest.mark.parametrize("cell", _cells(), ids=_cell_id)
def test_mode_primary_condition(
    dual_write_stack: DualWriteStack, cell: tuple[MigrationMode, SystemName, Role, Kind]
) -> None:
    mode, primary, role, kind = cell
    stack = dual_write_stack
    single = mode is not MigrationMode.DUAL_WRITE
    signup_expect, login_expect, gap_expected = EXPECTED[("single" if single else "dual", role, kind)]
    faulty: SystemName = primary if role in ("serving", "primary") else _other(primary)
    flags = flags_for(mode, better_auth_primary=primary == BETTER_AUTH, timeout_ms=TIMEOUT_MS)

    existing = f"existing-{uuid.uuid4().hex[:8]}@example.com"
    stack.service().signup(flags_for(mode, better_auth_primary=primary == BETTER_AUTH), existing, PASSWORD)
    service = stack.service(
        supabase_down=kind == "down" and faulty == SUPABASE,
        better_auth_down=kind == "down" and faulty == BETTER_AUTH,
    )
    target = stack.gotrue.faults if faulty == SUPABASE else stack.proxy.faults
    target.delay_s = SLOW_S if kind == "slow" else 0.0
    target.rate_limited = kind == "rate_limited"
    asked_before = _requests(stack, _other(primary))

    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    started = time.monotonic()
    signed_up = _run(lambda: service.signup(flags, email, PASSWORD))
    signup_s = time.monotonic() - started
    started = time.monotonic()
    logged_in = _run(lambda: service.login(flags, existing, PASSWORD))
    login_s = time.monotonic() - started

    _check(signed_up, signup_expect, primary, "signup")
    _check(logged_in, login_expect, primary, "login")
    # Two attempts at most, each bounded by the timeout as a total: never a hung request.
    bound = 2 * TIMEOUT_MS / 1000 + MARGIN_S + 0.5
    assert signup_s < bound, signup_s
    assert login_s < bound, login_s
    if single:
        assert _requests(stack, _other(primary)) == asked_before, "a single-system mode asked the other system"

    target.delay_s, target.rate_limited = 0.0, False
    if kind == "slow":
        time.sleep(SLOW_S)  # the slow system finishes whatever it was given
    outcomes = stack.drain()
    if not gap_expected:
        assert outcomes == []
    converges = isinstance(signed_up, AuthOutcome) or (kind == "slow" and role == "primary")
    if not single and converges:
        # Dual-write converges: after Reconcile, both systems hold the user under one id.
        sb_id, ba_id = stack.holders(email)
        assert sb_id is not None
        assert sb_id == ba_id
    if isinstance(signed_up, BackendError) and not gap_expected and kind != "slow":
        assert stack.holders(email) == (None, None)  # a refused signup wrote nothing
