"""The scrubber every Sentry event, transaction and breadcrumb passes (observability.scrub): what Sentry's
own EventScrubber leaves alone is masked here: tags, contexts, breadcrumbs' messages and data, password
hashes of every kind and JWTs anywhere in any string, and emails when the policy says so. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from auth_migration.observability import hashed_email, scrub

BCRYPT = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
BCRYPT_2A = "$2a$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
BCRYPT_2Y = "$2y$10$abcdefghijklmnopqrstuu5Zx9JkE3Yk2r1oYvQ2e8dJb7w6Wl9mOeG"
ARGON2 = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$qL3uZ9CmJxZ0m8uX4bC0h5uQ1zYw7dK9tP2aN6rV3sM"
SCRYPT = "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E"
FIREBASE_SCRYPT = (
    "$fbscrypt$v=1,n=14,r=8,p=1,ss=Bw==,sk=ou9tdYTGyYm8kuR6Dt0Bp0kDuAYoXrK16mbZO4yGwAn3oLspjnN0/c41v8xZnO1n14J3MjKj"
    "1b2g6AUCAlFwMw==$C0sHCg9ek77hsg==$ZGlmZmVyZW50aGFzaA=="
)
# Better-Auth's own scrypt: hex salt (16 bytes) ":" hex key (64 bytes).
BETTER_AUTH_SCRYPT = "4f1d2a9c0b7e6d5c4b3a29180f1e2d3c:" + "a1b2c3d4e5f60718" * 8
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI2YTFjOWE4ZSIsInJvbGUiOiJhdXRoZW50aWNhdGVkIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
EMAIL = "Ada.Lovelace@Example.com"
SECRETS = [BCRYPT, BCRYPT_2A, BCRYPT_2Y, ARGON2, SCRYPT, FIREBASE_SCRYPT, BETTER_AUTH_SCRYPT, JWT]


def text_of(value: Any) -> str:
    return json.dumps(value)


# --- what the log scrubber always did (the Sentry one is a superset) ------------------------------------


def test_secret_keys_are_masked_whatever_their_value() -> None:
    scrubbed = scrub(
        {"password": "hunter2", "api_key": "k", "Authorization": "Bearer x", "DATABASE_URL": "postgres://u:p@h/db"}
    )
    assert set(scrubbed.values()) == {"[redacted]"}


def test_url_credentials_and_bcrypt_hashes_are_masked_inside_text() -> None:
    scrubbed = scrub({"detail": f"connect postgres://app:s3cret@db:5432/x failed; hash {BCRYPT}"})
    assert scrubbed["detail"] == "connect postgres://app:***@db:5432/x failed; hash [redacted]"


def test_values_other_than_text_pass_unchanged() -> None:
    assert scrub({"count": 3, "ok": True, "rate": 0.5, "none": None}) == {
        "count": 3,
        "ok": True,
        "rate": 0.5,
        "none": None,
    }


# --- keys EventScrubber's DEFAULT_DENYLIST does not know --------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["password_hash", "refresh_token", "access_token", "session_token", "encrypted_password", "service_key", "salt"],
)
def test_keys_sentry_does_not_deny_are_masked(key: str) -> None:
    assert scrub({key: "opaque-value-123"}) == {key: "[redacted]"}


# --- hashes and JWTs in any string, wherever the string is ------------------------------------------------


@pytest.mark.parametrize(
    "secret", SECRETS, ids=["bcrypt", "bcrypt-2a", "bcrypt-2y", "argon2", "scrypt", "fb", "ba", "jwt"]
)
def test_every_kind_of_password_hash_and_jwt_is_masked_inside_text(secret: str) -> None:
    scrubbed = scrub({"message": f"stored value was {secret} (end)", "list": [f"x {secret}"], "tuple": (secret,)})
    assert secret not in text_of(scrubbed)
    assert scrubbed["message"] == "stored value was [redacted] (end)"
    assert scrubbed["tuple"] == ["[redacted]"]


def test_a_hash_cut_short_by_sentrys_string_limit_is_still_masked() -> None:
    cut = f"row: {BCRYPT[:20]}..."
    assert "$2b$" not in scrub(cut)
    assert "4f1d2a9c" not in scrub(f"{BETTER_AUTH_SCRYPT[:60]}...")


def test_tokens_inside_header_and_query_text_are_masked() -> None:
    text = "Cookie: better-auth.session_token=abcDEF123.sig; Authorization: Bearer opaque-token-9 ?token=qwe&x=1"
    scrubbed = scrub(text)
    for secret in ("abcDEF123", "opaque-token-9", "qwe"):
        assert secret not in scrubbed
    assert "x=1" in scrubbed


def test_quoted_secret_keys_inside_a_repr_or_json_text_are_masked() -> None:
    assert "hunter2" not in scrub("""payload {'password': 'hunter2', "refresh_token": "r-77"}""")
    assert "r-77" not in scrub("""payload {'password': 'hunter2', "refresh_token": "r-77"}""")


def test_a_sentry_event_is_scrubbed_in_tags_contexts_breadcrumbs_extra_and_exceptions() -> None:
    event = {
        "tags": {"auth_system": "better_auth", "hint": f"hash={BCRYPT}", "password_hash": BCRYPT},
        "contexts": {
            "auth_event": {"type": "login", "token": JWT, "note": f"jwt {JWT}"},
            "gap": {"password_hash": ARGON2, "detail": FIREBASE_SCRYPT},
        },
        "breadcrumbs": {
            "values": [
                {"category": "auth", "message": f"login with {BETTER_AUTH_SCRYPT}", "data": {"refresh_token": "r1"}},
                {"category": "httplib", "data": {"url": "https://u:pw@gotrue.example/token?grant_type=password"}},
            ]
        },
        "extra": {"nested": [[{"deep": {"value": SCRYPT}}]]},
        "exception": {"values": [{"type": "UniqueViolation", "value": f"Key (password)=({BCRYPT_2Y}) exists"}]},
    }
    scrubbed = scrub(event)
    text = text_of(scrubbed)
    for secret in [*SECRETS, "r1", "u:pw@"]:
        assert secret not in text, secret
    # What is not secret stays readable.
    assert scrubbed["tags"]["auth_system"] == "better_auth"
    assert scrubbed["contexts"]["auth_event"]["type"] == "login"
    assert scrubbed["breadcrumbs"]["values"][0]["category"] == "auth"


def test_nesting_deeper_than_the_limit_is_cut_not_followed() -> None:
    value: Any = BCRYPT
    for _ in range(30):
        value = {"level": value}
    assert BCRYPT not in text_of(scrub(value))


# --- emails, by policy --------------------------------------------------------------------------------------


def test_emails_stay_as_they_are_without_the_policy() -> None:
    assert scrub(f"signup successful for {EMAIL}") == f"signup successful for {EMAIL}"


def test_emails_become_a_stable_sha256_prefix_with_the_policy() -> None:
    digest = hashlib.sha256(EMAIL.lower().encode()).hexdigest()[:12]
    scrubbed = scrub({"user": {"email": EMAIL}, "message": f"login for {EMAIL} and {EMAIL.upper()}"}, hash_emails=True)
    assert scrubbed["user"]["email"] == f"email-sha256:{digest}"
    # Any case of one address gives the same text: events of one user still group and search together.
    assert scrubbed["message"] == f"login for email-sha256:{digest} and email-sha256:{digest}"
    assert hashed_email(EMAIL) == hashed_email(f"  {EMAIL.lower()} ")
    assert "@" not in text_of(scrubbed)


def test_a_database_url_is_not_taken_for_an_email_once_its_password_is_masked() -> None:
    scrubbed = scrub("postgres://app:s3cret@db.internal.example/x", hash_emails=True)
    assert "s3cret" not in scrubbed


def test_the_source_lines_of_a_stack_trace_stay_readable() -> None:
    line = "    def sign_in(self, email: str, password: str, *, client_ip: str | None = None) -> AuthResult:"
    assert scrub(line) == line
