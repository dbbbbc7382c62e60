"""Per-user validation: the defined outcome for every kind of user a real Supabase project holds."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from auth_migration.models import Outcome, OutcomeKind, SourceUser

# The seed's pattern, kept: it is what the legacy system accepted.
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit

# The seed skips any email *containing* "test" in production, which also drops "contest@..." or
# "greatest.hits@...". We match a local part that starts with "test" (test1, TestUser) or holds it as
# a word (qa+test2, load.test).
DEFAULT_TEST_USER_RE = re.compile(r"^test|[._+-]test\d*([._+-]|$)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    stage: str = "dev"
    test_user_re: re.Pattern[str] | None = DEFAULT_TEST_USER_RE
    #: Whether the target stores bans (Better-Auth's admin plugin adds user.banned / banExpires).
    target_supports_bans: bool = False
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def classify(user: SourceUser, policy: ValidationPolicy) -> Outcome | None:
    """The outcome that stops this user from migrating, or None when the user should migrate.

    Order matters: a deleted user is "soft_deleted" whatever else is wrong with it, so that a
    deleted account is never reported as something a person should fix and never resurrected.
    """
    if not user.id:
        return _out(user, OutcomeKind.INVALID, "missing_id", "user has no id")
    if user.deleted_at is not None:
        return _out(user, OutcomeKind.SKIPPED, "soft_deleted", "deleted in the source; not resurrected")
    if user.is_anonymous:
        return _out(user, OutcomeKind.SKIPPED, "anonymous", "anonymous session user: no identity to migrate")
    email = (user.email or "").strip()
    if not email:
        if user.phone:
            return _out(user, OutcomeKind.SKIPPED, "phone_only", "phone-only user: Better-Auth users need an email")
        return _out(user, OutcomeKind.INVALID, "missing_email", "user has neither email nor phone")
    if len(email) > MAX_EMAIL_LENGTH or not EMAIL_RE.match(email):
        return _out(user, OutcomeKind.INVALID, "invalid_email", "email is not well-formed")
    if policy.stage == "prod" and policy.test_user_re and policy.test_user_re.search(email.split("@", 1)[0]):
        return _out(user, OutcomeKind.INVALID, "test_user_in_production", "test account in production")
    if is_banned(user, policy.now) and not policy.target_supports_bans:
        return _out(
            user,
            OutcomeKind.SKIPPED,
            "banned",
            "banned in the source and the target has no ban columns (enable Better-Auth's admin plugin)",
        )
    return None


def is_banned(user: SourceUser, now: datetime) -> bool:
    return user.banned_until is not None and user.banned_until > now


def _out(user: SourceUser, kind: OutcomeKind, code: str, message: str) -> Outcome:
    return Outcome(user_id=user.id, kind=kind, code=code, message=message)
