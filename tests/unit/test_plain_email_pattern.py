"""validation's one plain-email pattern accepts exactly what the seed's pattern and zod's rule both accept.

plainly_valid_sql tests one regex where classify() applies two (EMAIL_RE, then the sign-in rule, whose
strictest form is zod's): if the one pattern ever let through an address either refuses, a re-run would
count a user classify() stops as already migrated. The SQL spellings are compiled here with Python's
`re` and compared by fullmatch (PostgreSQL's `$` never matches before a final newline; fullmatch neither).
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from auth_migration.validation import (
    _ASCII_ALNUM,
    _PLAIN_EMAIL_SQL,
    _ZOD_EMAIL,
    EMAIL_RE,
    STOCK_BETTER_AUTH_EMAIL_RE,
)

PLAIN = re.compile(_PLAIN_EMAIL_SQL)
SEED = re.compile(EMAIL_RE.pattern)
ZOD_SQL = re.compile(_ZOD_EMAIL.format(an=_ASCII_ALNUM, a=_ASCII_ALNUM[:52]))

# Every character any of the patterns treats specially, plus ones none accepts.
ALPHABET = "aZ09_+-.'%@!~ \n\u00e9"
PIECES = st.sampled_from(["a", "Z", "9", "_", "+", "-", ".", "'", "%", "@", "ab", "co", "c0", "-x", "x-", "é", " "])


def both(address: str) -> bool:
    return SEED.fullmatch(address) is not None and STOCK_BETTER_AUTH_EMAIL_RE.fullmatch(address) is not None


def test_the_sql_spelling_of_zods_rule_is_the_python_one() -> None:
    for address in ("a@b.co", "o'neil@x.io", "a.'b@x.io", "a'@x.io", "a..b@x.io", "a@-x.io", "a@x.c0"):
        assert (ZOD_SQL.fullmatch(address) is None) == (STOCK_BETTER_AUTH_EMAIL_RE.fullmatch(address) is None)


def test_known_addresses() -> None:
    accepted = ["a@b.co", "first.last+tag@sub.example.org", "x_y-z@a-b.c-d.io", "A9@EXAMPLE.COM", "-@x.io"]
    refused = [
        "o'neil@x.io",  # zod yes, the seed no
        "a%b@x.io",  # the seed yes, zod no
        ".a@x.io",
        "a.@x.io",
        "a..b@x.io",
        "a@-x.io",
        "a@x..io",
        "a@x.c0",
        "a@x",
        " a@x.io",
        "a@x.io\n",
        "é@x.io",
        "a@b@x.io",
    ]
    for address in accepted:
        assert PLAIN.fullmatch(address) and both(address), address
    for address in refused:
        assert not PLAIN.fullmatch(address) and not both(address), address


@settings(max_examples=3000, deadline=None)
@given(st.lists(PIECES, max_size=8), st.lists(PIECES, max_size=8), st.sampled_from(["co", "io", "c", "c0", "", "-"]))
def test_structured_addresses(local: list[str], domain: list[str], tld: str) -> None:
    address = "".join(local) + "@" + "".join(domain) + ("." + tld if tld else "")
    assert (PLAIN.fullmatch(address) is not None) == both(address), address


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=14))
def test_any_string(address: str) -> None:
    assert (PLAIN.fullmatch(address) is not None) == both(address), address
