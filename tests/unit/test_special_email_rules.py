"""The email rules behind issue 12: the bulk outcome for an address Better-Auth's sign-in refuses, and the
Better-Auth backend telling a refused input apart from a wrong password."""

from __future__ import annotations

import httpx
import pytest

from auth_migration.backends import BetterAuthBackend, InputRefused, InvalidCredentials, WeakPassword
from auth_migration.models import OutcomeKind, SourceUser
from auth_migration.validation import EMAIL_REFUSED_BY_SIGN_IN, SignInEmailRule, ValidationPolicy, classify
from tests.reference_time import REFERENCE_TIME


def _user(email: str) -> SourceUser:
    return SourceUser(id="00000000-0000-4000-8000-000000000001", email=email)


@pytest.mark.parametrize("email", ["tilde~t@example.com", "hash#t@example.com", "o'@example.com"])
def test_a_gotrue_address_migrates_under_the_shipped_rule_and_is_reported_under_the_stock_one(email: str) -> None:
    assert classify(_user(email), ValidationPolicy(now=REFERENCE_TIME)) is None
    stock = classify(_user(email), ValidationPolicy(now=REFERENCE_TIME, sign_in_email_rule=SignInEmailRule.STOCK))
    assert stock is not None
    assert (stock.kind, stock.code) == (OutcomeKind.INVALID, EMAIL_REFUSED_BY_SIGN_IN)


def test_a_seed_valid_address_no_sign_in_rule_accepts_is_reported_not_migrated() -> None:
    # The seed's pattern allows a label starting with "-"; neither zod nor GoTrue does.
    outcome = classify(_user("a@-b.com"), ValidationPolicy(now=REFERENCE_TIME))
    assert outcome is not None and outcome.code == EMAIL_REFUSED_BY_SIGN_IN


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "spaces in@x.com"])
def test_malformed_addresses_stay_invalid_email(email: str) -> None:
    outcome = classify(_user(email), ValidationPolicy(now=REFERENCE_TIME))
    assert outcome is not None and outcome.code == "invalid_email"


def _backend(status: int, body: dict[str, str]) -> BetterAuthBackend:
    transport = httpx.MockTransport(lambda _request: httpx.Response(status, json=body))
    return BetterAuthBackend("http://better-auth.invalid", transport=transport)


@pytest.mark.parametrize("code", ["INVALID_EMAIL", "VALIDATION_ERROR", "PASSWORD_TOO_LONG"])
def test_better_auth_sign_in_refusing_the_input_is_input_refused(code: str) -> None:
    with pytest.raises(InputRefused) as refused:
        _backend(400, {"code": code, "message": "refused"}).sign_in("tilde~t@example.com", "pw")
    assert refused.value.code == code
    assert refused.value.kind == "bad_request"  # health figures: the caller's input, as before


def test_sign_up_keeps_its_own_meaning_and_wrong_password_stays_invalid_credentials() -> None:
    with pytest.raises(WeakPassword):
        _backend(400, {"code": "PASSWORD_TOO_LONG", "message": "long"}).sign_up("a@example.com", "pw")
    with pytest.raises(InvalidCredentials):
        _backend(401, {"code": "INVALID_EMAIL_OR_PASSWORD", "message": "no"}).sign_in("a@example.com", "pw")
