"""Per-user validation: the defined outcome for every kind of user a real Supabase project holds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from auth_migration.models import Outcome, OutcomeKind, SourceUser

# The seed's pattern, kept: it is what the legacy system accepted.
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit

# The seed skips any email *containing* "test" in production, which also drops "contest@..." or
# "greatest.hits@...". We match a local part that starts with "test" (test1, TestUser) or holds it as
# a word (qa+test2, load.test).
DEFAULT_TEST_USER_RE = re.compile(r"^test|[._+-]test\d*([._+-]|$)", re.IGNORECASE)


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationPolicy:
    #: The instant bans are judged against: the migration's `as_of`, never a read of the clock here.
    now: datetime
    stage: str = "dev"
    test_user_re: re.Pattern[str] | None = DEFAULT_TEST_USER_RE
    #: Whether the target stores bans (Better-Auth's admin plugin adds user.banned / banExpires).
    target_supports_bans: bool = False


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


# EMAIL_RE for PostgreSQL, spelled without ranges (their meaning can depend on the collation).
_ASCII_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_EMAIL_SQL = rf"^[{_ASCII_ALNUM}._%+-]+@[{_ASCII_ALNUM}.-]+\.[{_ASCII_ALNUM[:52]}]{{2,}}$"


def plainly_valid_sql(
    policy: ValidationPolicy, *, user_id: str, email: str, deleted_at: str, is_anonymous: str, banned_until: str
) -> str | None:
    """A SQL condition over a source's columns that holds only for users classify() lets through.

    It may be false for some of them (they are then classified here, in Python), never true for one
    classify() would stop, so a source can count such users server-side instead of returning them:
    a re-run counts already-migrated users without reading or converting them.

    - the raw email must match the seed's pattern with no surrounding whitespace: Python's strip()
      is then a no-op, and PostgreSQL's `$` (unlike Python's) never matches before a final newline;
    - any ban at all, deleted or anonymous users, and (stage prod) any email holding "test" in any
      case (a superset of DEFAULT_TEST_USER_RE's matches) take the Python path.
    None when no such condition can be promised (a custom test-user pattern in prod).
    """
    checks = [
        f"{user_id} <> ''",
        f"{deleted_at} IS NULL",
        f"NOT {is_anonymous}",
        f"{banned_until} IS NULL",
        f"length({email}) <= {MAX_EMAIL_LENGTH}",
        f"{email} ~ '{_EMAIL_SQL}'",
    ]
    if policy.stage == "prod" and policy.test_user_re is not None:
        if policy.test_user_re is not DEFAULT_TEST_USER_RE:
            return None
        checks.append(f"strpos(lower({email}), 'test') = 0")
    return "(" + " AND ".join(checks) + ")"


def is_banned(user: SourceUser, now: datetime) -> bool:
    return user.banned_until is not None and user.banned_until > now


def _out(user: SourceUser, kind: OutcomeKind, code: str, message: str) -> Outcome:
    return Outcome(user_id=user.id, kind=kind, code=code, message=message)
