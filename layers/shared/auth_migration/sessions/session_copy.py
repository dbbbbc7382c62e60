"""`auth-migrate sessions copy`: GoTrue's live sessions and their refresh tokens, copied into our state.

What the exchange reads once Supabase is gone (exchange.py). Each run copies, page by page (keyset on the
session id), every `auth.sessions` row of a live user that is not past `not_after`, with the user's
`banned_until`, and every `auth.refresh_tokens` row of those sessions as the SHA-256 of its token (hashed in
the source database, so no plain token crosses the wire or lands in our state). A run is idempotent and can
be repeated as often as wanted: a token once revoked stays revoked, a spent token stays spent, and a session
this run did not see (signed out, expired, user deleted since the last run) is ended once the run completes.
An interrupted run ends nothing; the next run does it all again.

Run it last after Supabase stops issuing tokens (GoTrue stopped, or its token endpoint closed) and before
its database goes: every token a client can still hold is then in the copy.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import psycopg

from auth_migration.clock import Clock, system_clock
from auth_migration.connections import Connections

__all__ = ["DEFAULT_PAGE_SIZE", "CopyCounts", "copy_sessions"]

#: Sessions per page: two reads of Supabase and one write of ours, each well under a second at this size.
DEFAULT_PAGE_SIZE: Final = 5_000
_NIL: Final = uuid.UUID(int=0)


@dataclass(frozen=True, slots=True)
class CopyCounts:
    sessions: int
    refresh_tokens: int
    active_refresh_tokens: int
    sessions_ended: int

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def copy_sessions(
    conns: Connections,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    clock: Clock = system_clock,
    on_page: Callable[[int], None] | None = None,
) -> CopyCounts:
    """Copy every live GoTrue session and its refresh tokens (hashed) into our state; returns the counts.
    `on_page(sessions so far)` is called after each page is committed."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    started = clock()
    # The sweep tells this run's rows by its id, not by time: two runs in one clock tick stay apart.
    run = uuid.uuid4()
    after = _NIL
    sessions = tokens = active = 0
    while True:
        page = conns.transact("source", functools.partial(_read_sessions, after=after, now=started, limit=page_size))
        if not page:
            break
        ids = [row[0] for row in page]
        rows = conns.transact("source", functools.partial(_read_tokens, session_ids=ids))
        conns.transact("state", functools.partial(_write, page=page, tokens=rows, copied_at=started, run=run))
        sessions += len(page)
        tokens += len(rows)
        active += sum(1 for row in rows if not row[3])
        after = ids[-1]
        if on_page is not None:
            on_page(sessions)
        if len(page) < page_size:
            break
    ended = conns.transact("state", lambda conn: _end_unseen(conn, started, run))
    return CopyCounts(sessions, tokens, active, ended)


_Session = tuple[uuid.UUID, uuid.UUID, datetime | None, datetime | None, datetime | None]
_Token = tuple[bytes, uuid.UUID, uuid.UUID, bool]


def _read_sessions(conn: psycopg.Connection, after: uuid.UUID, now: datetime, limit: int) -> list[_Session]:
    return conn.execute(
        """SELECT s.id, s.user_id, s.created_at, s.not_after, u.banned_until
           FROM auth.sessions s JOIN auth.users u ON u.id = s.user_id
           WHERE s.id > %(after)s AND u.deleted_at IS NULL AND (s.not_after IS NULL OR s.not_after > %(now)s)
           ORDER BY s.id LIMIT %(limit)s""",
        {"after": after, "now": now, "limit": limit},
    ).fetchall()


def _read_tokens(conn: psycopg.Connection, session_ids: list[uuid.UUID]) -> list[_Token]:
    # The user comes from the session: refresh_tokens.user_id is a varchar GoTrue never constrains.
    return conn.execute(
        """SELECT sha256(convert_to(t.token, 'UTF8')), t.session_id, s.user_id, coalesce(t.revoked, false)
           FROM auth.refresh_tokens t JOIN auth.sessions s ON s.id = t.session_id
           WHERE t.session_id = ANY(%s) AND t.token IS NOT NULL AND t.token <> ''""",
        (session_ids,),
    ).fetchall()


def _write(
    conn: psycopg.Connection, page: list[_Session], tokens: list[_Token], copied_at: datetime, run: uuid.UUID
) -> None:
    # Set-wise from arrays: one statement per table and page, whatever the page size.
    conn.execute(
        """INSERT INTO copied_supabase_sessions
               (session_id, user_id, created_at, not_after, banned_until, copied_at, copy_run)
           SELECT *, %(copied_at)s, %(run)s FROM unnest(%(ids)s::uuid[], %(users)s::uuid[], %(created)s::timestamptz[],
                                                %(not_after)s::timestamptz[], %(banned)s::timestamptz[])
           ON CONFLICT (session_id) DO UPDATE SET
               not_after = EXCLUDED.not_after, banned_until = EXCLUDED.banned_until,
               copied_at = EXCLUDED.copied_at, copy_run = EXCLUDED.copy_run""",
        {
            "ids": [row[0] for row in page],
            "users": [row[1] for row in page],
            "created": [row[2] for row in page],
            "not_after": [row[3] for row in page],
            "banned": [row[4] for row in page],
            "copied_at": copied_at,
            "run": run,
        },
    )
    if not tokens:
        return
    # Revoked is sticky (GoTrue never un-revokes); exchanged_at and the session it bought are kept.
    conn.execute(
        """INSERT INTO copied_refresh_tokens (token_hash, session_id, user_id, revoked, copied_at)
           SELECT *, %(copied_at)s FROM unnest(%(hashes)s::bytea[], %(sessions)s::uuid[], %(users)s::uuid[],
                                                %(revoked)s::boolean[])
           ON CONFLICT (token_hash) DO UPDATE SET
               revoked = copied_refresh_tokens.revoked OR EXCLUDED.revoked, copied_at = EXCLUDED.copied_at""",
        {
            "hashes": [row[0] for row in tokens],
            "sessions": [row[1] for row in tokens],
            "users": [row[2] for row in tokens],
            "revoked": [row[3] for row in tokens],
            "copied_at": copied_at,
        },
    )


def _end_unseen(conn: psycopg.Connection, started: datetime, run: uuid.UUID) -> int:
    cursor = conn.execute(
        """UPDATE copied_supabase_sessions SET ended_at = %(now)s, ended_reason = 'gone_from_supabase'
           WHERE ended_at IS NULL AND copy_run <> %(run)s""",
        {"now": started, "run": run},
    )
    return cursor.rowcount
