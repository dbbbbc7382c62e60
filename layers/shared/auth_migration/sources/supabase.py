"""Supabase Auth as a source: auth.users joined with auth.identities, read over Postgres."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from itertools import pairwise
from operator import itemgetter
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from auth_migration.exceptions import ConfigError
from auth_migration.models import SourceIdentity, SourceUser
from auth_migration.sources.base import SettledRange
from auth_migration.sources.keyset import boundaries
from auth_migration.validation import ValidationPolicy, plainly_valid_sql

_USERS = sql.SQL("auth.users")

# The `email` identity mirrors the user's own email/password: the credential account covers it.
# Measured (bench/): metadata read as text and parsed here with json.loads (psycopg's jsonb loader
# cost 3 us a value); identities as one [provider, provider_id] array per user from a correlated
# subquery: always one index probe per user, whatever the statistics say (a join on a grouped range
# of identities became a nested loop rescanning the whole range per user when the planner believed
# the range held one row: 4 ms per 100-user batch), and skipped for users already migrated.
_LIGHT = "u.id::text, u.email, u.phone, coalesce(u.is_anonymous, false), u.deleted_at, u.banned_until"
_HEAVY = (
    "u.encrypted_password",
    "u.email_confirmed_at",
    "u.raw_user_meta_data::text",
    "u.raw_app_meta_data::text",
    "u.created_at",
    "u.updated_at",
    """(SELECT array_agg(ARRAY[i.provider, i.provider_id] ORDER BY i.provider, i.provider_id)
        FROM auth.identities i WHERE i.user_id = u.id AND i.provider <> 'email')""",
)
_FETCH = f"""
SELECT {_LIGHT}, 0, {", ".join(_HEAVY)}
FROM auth.users u
WHERE {{after}} u.id <= %(upto)s::uuid
ORDER BY u.id
"""
# The same read where migrated_users lives in the source's database. Who is migrated: the tracking rows
# of the batch's own id range, hash-joined (one index range scan; canonical uuid text sorts as the
# uuid does), and for any user not found there one index probe (LATERAL ... LIMIT 1 keeps it a probe
# whatever the statistics say), so the answer is exact under any collation. A re-run thus needs no
# probe at all, a first run one probe per user. Migration-only columns (and their parsing) are left
# out for users already migrated. The 7th column: 0 not migrated, 1 migrated, 2 migrated and plainly
# valid (fetch_pending only counts those). No ORDER BY: the rows come back in id order from
# fetch_pending's sort (canonical uuid text sorts as the uuid does), which skips the counted ones
# (measured: the server's sort cost a third of this statement on a re-run).
_MIGRATED = "(r.original_id IS NOT NULL OR p.done IS NOT NULL)"
_FETCH_WITH_MIGRATED = f"""
SELECT {_LIGHT}, CASE WHEN NOT {_MIGRATED} THEN 0 WHEN {{plain}} THEN 2 ELSE 1 END,
       {", ".join(f"CASE WHEN NOT {_MIGRATED} THEN {c} END" for c in _HEAVY)}
FROM auth.users u
LEFT JOIN (SELECT original_id FROM migrated_users WHERE {{after_text}} original_id <= %(upto)s::uuid::text) r
    ON r.original_id = u.id::text
LEFT JOIN LATERAL (SELECT true AS done FROM migrated_users mu
                   WHERE r.original_id IS NULL AND mu.original_id = u.id::text LIMIT 1) p ON true
WHERE {{after}} u.id <= %(upto)s::uuid
"""

# The same read for named users of a range only (a re-run's batch: the users planning left undecided). One
# index probe per user into auth.users and one into migrated_users.
_FETCH_ONLY = f"""
SELECT {_LIGHT}, CASE WHEN p.done IS NULL THEN 0 WHEN {{plain}} THEN 2 ELSE 1 END,
       {", ".join(f"CASE WHEN p.done IS NULL THEN {c} END" for c in _HEAVY)}
FROM auth.users u
LEFT JOIN LATERAL (SELECT true AS done FROM migrated_users mu WHERE mu.original_id = u.id::text LIMIT 1) p ON true
WHERE u.id = ANY(%(only)s::uuid[]) AND {{after}} u.id <= %(upto)s::uuid
"""

# Planning (state in the source's database): per planned range, how many users it holds, and the ids of
# those fetch_pending would not only count (not migrated, or migrated but not plainly valid: "undecided"),
# all of them when they are at most %(most)s, else one (k says how many there are). Every user is given
# its range by width_bucket (the ranges of a chunk are contiguous: (a, z1], (z1, z2], ...). One statement, so
# both branches see one snapshot: the counts per range, and the undecided users found by a parallel scan
# hash-joined to every tracking row (exact equality on the canonical text id, whatever the collation)
# whose filter lets through only those few rows. Measured at 1M users: one index range read per range
# took 6.7 s (random uuids put a range's 10,000 users on ~9,000 heap pages); one GROUP BY over all of them
# 2.9 s, but it could not name the undecided users: array_agg is not parallel before PostgreSQL 16, and
# grouping by (range, undecided id) made the planner expect a million groups and sort every user.
# A user's range: 1 + how many bounds lie below its id, i.e. how many thresholds (each bound but the last,
# plus one: the next uuid) are <= it, which is what width_bucket counts (0 for an empty array). One call
# per user; the bounds themselves, with a correction for an id equal to one, took two.
_RANGE = "width_bucket(u.id, %(thresholds)s::uuid[]) + 1"
_SETTLED = f"""
SELECT r, NULL, NULL::bigint, count(*)
FROM (SELECT {_RANGE} AS r FROM auth.users u WHERE {{after}} u.id <= %(upto)s::uuid) a
GROUP BY r
UNION ALL
SELECT r, id::text, k, NULL FROM (
    SELECT r, id, count(*) OVER w AS k, row_number() OVER w AS n
    FROM (SELECT {_RANGE} AS r, u.id
          FROM auth.users u LEFT JOIN migrated_users m ON m.original_id = u.id::text
          WHERE {{after}} u.id <= %(upto)s::uuid AND (m.original_id IS NOT NULL AND {{plain}}) IS NOT TRUE) b
    WINDOW w AS (PARTITION BY r)) c
WHERE k <= %(most)s OR n = 1
"""
# At most this many undecided users per range are named (and read by id); a range with more is read whole.
# Both reads touch one random heap page per user (random uuids), so by id wins while a range holds fewer
# undecided users than this; the cap also bounds what planning stores per batch row.
DECIDE_BY_ID_MAX = 1000


class SupabaseSource:
    name = "supabase"

    def check(self, conn: psycopg.Connection) -> None:
        row = conn.execute(
            "SELECT to_regclass('auth.users') IS NOT NULL, to_regclass('auth.identities') IS NOT NULL"
        ).fetchone()
        if not row or not all(row):
            raise ConfigError("source 'supabase' needs auth.users and auth.identities in OLD_DATABASE_URL")

    def batch_boundaries(self, conn: psycopg.Connection, after_id: str | None, batch_size: int) -> Iterator[str]:
        return boundaries(conn, _USERS, "uuid", after_id, batch_size)

    def fetch_range(
        self, conn: psycopg.Connection, after_id: str | None, upto_id: str, *, with_migrated: bool = False
    ) -> list[SourceUser]:
        after, after_text = _after(after_id)
        query = (_FETCH_WITH_MIGRATED if with_migrated else _FETCH).format(
            after=after, after_text=after_text, plain="false"
        )
        rows = conn.execute(query.encode(), {"after": after_id, "upto": upto_id}).fetchall()
        return [_to_source_user(row) for row in sorted(rows, key=itemgetter(0))]

    def fetch_pending(
        self,
        conn: psycopg.Connection,
        after_id: str | None,
        upto_id: str,
        policy: ValidationPolicy,
        *,
        only: Sequence[str] | None = None,
    ) -> tuple[list[SourceUser], int]:
        plain = _plain(policy)
        after, after_text = _after(after_id)
        query = (_FETCH_WITH_MIGRATED if only is None else _FETCH_ONLY).format(
            after=after, after_text=after_text, plain=(plain or "false").replace("%", "%%")
        )
        params = {"after": after_id, "upto": upto_id, "only": list(only or ())}
        rows = conn.execute(query.encode(), params).fetchall()
        pending = sorted((row for row in rows if row[6] != 2), key=itemgetter(0))
        return [_to_source_user(row) for row in pending], len(rows) - len(pending)

    def settled_ranges(
        self,
        conn: psycopg.Connection,
        ranges: Sequence[tuple[str | None, str]],
        policy: ValidationPolicy,
        *,
        batch_size: int = 1,
    ) -> list[SettledRange | None]:
        plain = _plain(policy)
        if plain is None or not ranges:
            return [None] * len(ranges)
        if any(after != upto for (_, upto), (after, _) in pairwise(ranges)):
            raise ValueError("settled_ranges needs contiguous ranges (a plan chunk's)")
        with conn.transaction():
            # A first run has no tracking rows: nothing can be settled, and the users are not read at all.
            if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM migrated_users)").fetchone() == (True,):
                return [None] * len(ranges)
            # JIT compiled the old per-range statement for ~0.25 s at 100k users: not worth it for one pass.
            jit = conn.execute("SELECT current_setting('jit')").fetchone()
            conn.execute("SET LOCAL jit = off")
            after, _ = _after(ranges[0][0])
            rows = conn.execute(
                _SETTLED.format(plain=plain.replace("%", "%%"), after=after).encode(),
                {
                    "thresholds": [str(UUID(int=UUID(upto).int + 1)) for _, upto in ranges[:-1]],
                    "after": ranges[0][0],
                    "upto": ranges[-1][1],
                    "most": min(DECIDE_BY_ID_MAX, batch_size // 4),
                },
            ).fetchall()
            # Planning may run inside a longer transaction on this connection (shared): leave it as found.
            conn.execute("SELECT set_config('jit', %s, true)", (jit[0] if jit else "on",))
        totals: dict[int, int] = {}
        undecided: dict[int, tuple[int, list[str]]] = {}
        for number, user_id, k, total in rows:
            if user_id is None:
                totals[int(number)] = int(total)
            else:
                undecided.setdefault(int(number), (int(k), []))[1].append(str(user_id))
        settled: list[SettledRange | None] = [None] * len(ranges)
        for number, total in totals.items():
            k, ids = undecided.get(number, (0, []))
            # More undecided users than named (k > most): None, the batch reads its whole range.
            if 1 <= number <= len(ranges) and len(ids) == k:
                settled[number - 1] = SettledRange(counted=total - k, undecided=tuple(sorted(ids)))
        return settled

    def email_collisions(
        self, conn: psycopg.Connection, among: Sequence[str] | None = None
    ) -> Iterator[tuple[str, list[str]]]:
        # Deleted and anonymous users are skipped anyway, so they cannot collide with anyone.
        # A hash aggregate (ids sorted here, uuid text sorts as uuids do) instead of sorting every
        # user by lower(email): 215 -> 115 ms at 100k users, paid by every start, re-runs included.
        if among is not None and not among:
            return
        with conn.transaction():
            conn.execute("SET LOCAL work_mem = '64MB'")
            conn.execute("SET LOCAL enable_sort = off")
            rows = conn.execute(
                _COLLISIONS if among is None else _COLLISIONS_AMONG, {"among": list(among or ())}
            ).fetchall()
        for email, ids in rows:
            yield str(email), sorted(ids)


_LIVE_EMAIL = """email IS NOT NULL AND email <> '' AND deleted_at IS NULL AND NOT coalesce(is_anonymous, false)"""
_COLLISIONS = f"""
SELECT lower(email), array_agg(id::text) FROM auth.users WHERE {_LIVE_EMAIL} GROUP BY 1 HAVING count(*) > 1
"""
# Only the emails of named users: the same full pass, but a parallel scan keeps the few rows whose email one
# of them holds before anything is grouped (the full aggregate above cannot run in parallel: array_agg).
_COLLISIONS_AMONG = f"""
SELECT lower(email), array_agg(id::text) FROM auth.users
WHERE {_LIVE_EMAIL}
  AND lower(email) IN (SELECT lower(email) FROM auth.users WHERE id = ANY(%(among)s::uuid[]) AND {_LIVE_EMAIL})
GROUP BY 1 HAVING count(*) > 1
"""


def _plain(policy: ValidationPolicy) -> str | None:
    """validation.plainly_valid_sql over auth.users (alias u): fetch_pending and settled_ranges agree."""
    return plainly_valid_sql(
        policy,
        user_id="u.id::text",
        email="u.email",
        deleted_at="u.deleted_at",
        is_anonymous="coalesce(u.is_anonymous, false)",
        banned_until="u.banned_until",
    )


def _after(after_id: str | None) -> tuple[str, str]:
    """The lower bounds of a keyset range, on auth.users and on migrated_users' text ids."""
    if after_id is None:
        return "", ""
    return "u.id > %(after)s::uuid AND", "original_id > %(after)s::uuid::text AND"


def _to_source_user(row: tuple[Any, ...]) -> SourceUser:
    (uid, email, phone, anonymous, deleted_at, banned_until, migrated) = row[:7]
    (password, confirmed_at, user_meta, app_meta, created_at, updated_at, pairs) = row[7:]
    identities = (
        tuple(SourceIdentity(provider=str(p), provider_id=str(pid)) for p, pid in pairs if p and pid is not None)
        if pairs
        else ()
    )
    return SourceUser(
        id=uid,
        email=email or None,
        password_hash=password or None,
        email_confirmed_at=confirmed_at,
        phone=phone or None,
        user_metadata=None if user_meta is None else json.loads(user_meta),
        app_metadata=None if app_meta is None else json.loads(app_meta),
        created_at=created_at,
        updated_at=updated_at,
        is_anonymous=bool(anonymous),
        deleted_at=deleted_at,
        banned_until=banned_until,
        identities=identities,
        migrated=bool(migrated),
    )
