"""Per-user validation: the defined outcome for every kind of user a real Supabase project holds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

import email_validator

from auth_migration.models import Outcome, OutcomeKind, SourceUser

# The seed's pattern, kept: it is what the legacy system accepted.
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_ASCII_ALNUM: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#: The outcome code of a user whose email the target's sign-in refuses (docs/OUTCOMES.md).
EMAIL_REFUSED_BY_SIGN_IN: Final = "email_refused_by_sign_in"
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit; also our API's limit (dual_write/api_models.py)

# The two sign-in email rules, written once for Python and PostgreSQL: {an} is the ASCII letters and digits,
# {a} the letters (spelled out in SQL, where a range's meaning can depend on the collation).
#: zod 4.6.7's `z.email()`, which stock Better-Auth 1.7.25 applies on sign-up and sign-in.
_ZOD_EMAIL: Final = r"^(?:[{an}_'+-]+\.)*[{an}_'+-]*[{an}_+-]@(?:[{an}][{an}-]*\.)+[{a}]{{2,}}$"
#: GoTrue's rule (internal/api/mail.go validateEmail -> badoux/checkmail ValidateFormat), at most 255 chars.
_GOTRUE_EMAIL: Final = (
    r"^[{an}.!#$%&'*+/=?^_`{{|}}~-]+@[{an}](?:[{an}-]{{0,61}}[{an}])?(?:\.[{an}](?:[{an}-]{{0,61}}[{an}])?)*$"
)
GOTRUE_EMAIL_MAX: Final = 255
# fullmatch: Python's `$` also matches before a final newline, zod's and Go's do not.
STOCK_BETTER_AUTH_EMAIL_RE: Final = re.compile(_ZOD_EMAIL.format(an="A-Za-z0-9", a="A-Za-z"))
GOTRUE_EMAIL_RE: Final = re.compile(_GOTRUE_EMAIL.format(an="A-Za-z0-9"))


class SignInEmailRule(StrEnum):
    """Which addresses the Better-Auth deployment's sign-in accepts (docs/BETTER_AUTH.md section 2a)."""

    #: The config we ship (the supabase-emails plugin): zod's addresses or GoTrue's.
    SHIPPED = "shipped"
    #: Better-Auth without that plugin: zod's addresses only. The stricter reference.
    STOCK = "stock"

    def accepts(self, email: str) -> bool:
        if STOCK_BETTER_AUTH_EMAIL_RE.fullmatch(email):
            return True
        return self is SignInEmailRule.SHIPPED and gotrue_accepts(email)

    def refuses_sql(self, column: str) -> tuple[str, dict[str, str]]:
        """A PostgreSQL condition true when this rule refuses `column`'s email, and its named parameters
        (the patterns hold `%` and `'`, so they travel as parameters, never in the SQL text)."""
        params = {"stock_email_re": _ZOD_EMAIL.format(an=_ASCII_ALNUM, a=_ASCII_ALNUM[:52])}
        accepted = f"{column} ~ %(stock_email_re)s"
        if self is SignInEmailRule.SHIPPED:
            params["gotrue_email_re"] = _GOTRUE_EMAIL.format(an=_ASCII_ALNUM)
            accepted += f" OR (length({column}) <= {GOTRUE_EMAIL_MAX} AND {column} ~ %(gotrue_email_re)s)"
        return f"NOT coalesce({accepted}, false)", params


def gotrue_accepts(email: str) -> bool:
    """Whether GoTrue's signup / admin create would accept this address."""
    return len(email) <= GOTRUE_EMAIL_MAX and GOTRUE_EMAIL_RE.fullmatch(email) is not None


def api_accepts(email: str) -> bool:
    """Whether our API's email check (pydantic's EmailStr: email-validator, no DNS) passes this address,
    so its owner can type it at our login. A stored address is never in the "Name <addr>" form."""
    if len(email) > MAX_EMAIL_LENGTH:
        return False
    try:
        email_validator.validate_email(email, check_deliverability=False)
    except email_validator.EmailNotValidError:
        return False
    return True


def well_formed_email(email: str) -> bool:
    """The seed's pattern, or an address our API accepts: Supabase (GoTrue) holds `tilde~t@` and `hash#t@`,
    and their owners sign in through our API; the seed's pattern alone would leave them behind."""
    if len(email) > MAX_EMAIL_LENGTH:
        return False
    # The seed's pattern first: nearly every address matches it, and email-validator costs far more.
    return EMAIL_RE.match(email) is not None or api_accepts(email)


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
    #: The email rule the target's sign-in applies: a user it refuses could never sign in there.
    sign_in_email_rule: SignInEmailRule = SignInEmailRule.SHIPPED


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
    if not well_formed_email(email):
        return _out(user, OutcomeKind.INVALID, "invalid_email", "email is not well-formed")
    if not policy.sign_in_email_rule.accepts(email.lower()):
        # Migrated, they could never sign in to Better-Auth: reported, and phase 4 waits (rollout/checks.py).
        return _out(
            user,
            OutcomeKind.INVALID,
            EMAIL_REFUSED_BY_SIGN_IN,
            f"Better-Auth's sign-in ({policy.sign_in_email_rule} email rule) refuses this address",
        )
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


# What EMAIL_RE (the seed's pattern) and zod's rule (which every sign-in rule accepts) BOTH accept, as one
# pattern: zod's local part less `'` (EMAIL_RE has no `'`; zod's other local characters are all EMAIL_RE's)
# and zod's domain (each also matches EMAIL_RE's `[an.-]+\.[a]{2,}`). Equal to the two patterns together
# (tests/unit/test_plain_email_pattern.py checks it); one regex instead of two took ~30 % off the regex
# time of planning's pass over 1M users. For PostgreSQL, spelled without ranges (their meaning can depend
# on the collation).
_PLAIN_EMAIL: Final = r"^(?:[{an}_+-]+\.)*[{an}_+-]+@(?:[{an}][{an}-]*\.)+[{a}]{{2,}}$"
_PLAIN_EMAIL_SQL = _PLAIN_EMAIL.format(an=_ASCII_ALNUM, a=_ASCII_ALNUM[:52])


def plainly_valid_sql(
    policy: ValidationPolicy, *, user_id: str, email: str, deleted_at: str, is_anonymous: str, banned_until: str
) -> str | None:
    """A SQL condition over a source's columns that holds only for users classify() lets through.

    It may be false for some of them (they are then classified here, in Python), never true for one
    classify() would stop, so a source can count such users server-side instead of returning them:
    a re-run counts already-migrated users without reading or converting them.

    - the raw email must match the seed's pattern with no surrounding whitespace: Python's strip()
      is then a no-op, and PostgreSQL's `$` (unlike Python's) never matches before a final newline;
      and zod's (stock Better-Auth's), which every sign-in rule accepts;
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
        f"{email} ~ '{_PLAIN_EMAIL_SQL}'",
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
