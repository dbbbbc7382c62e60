"""Supabase refresh tokens and sessions as the exchange reads them: live in GoTrue's tables while Supabase
runs, from our copy (session_copy.py) once it is gone, and the ledger that spends each token once.

Every function takes the connection of the database it reads (source: GoTrue's `auth` schema; state: our
copies and ledger) and runs inside the caller's transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import psycopg

__all__ = [
    "CopiedSession",
    "CopiedToken",
    "LiveToken",
    "claim_token",
    "copied_session",
    "copied_token",
    "end_family",
    "live_token",
    "release_token",
    "token_hash",
    "token_spent_on",
]


def token_hash(token: str) -> bytes:
    """The SHA-256 the copy keeps (session_copy.py hashes in SQL: sha256(convert_to(token, 'UTF8')))."""
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class LiveToken:
    user_id: str
    session_id: str
    revoked: bool
    #: A revoked token whose child is the session's active token: GoTrue answers such a refresh with that
    #: child (a client's concurrent refresh), so it is not a reuse.
    parent_of_active: bool


def live_token(conn: psycopg.Connection, token: str) -> LiveToken | None:
    """GoTrue's row for this refresh token (source database), None when GoTrue holds no such token."""
    row = conn.execute(
        """SELECT s.user_id, t.session_id, coalesce(t.revoked, false),
                  EXISTS (SELECT 1 FROM auth.refresh_tokens c
                          WHERE c.session_id = t.session_id AND c.parent = t.token AND c.revoked IS NOT true)
           FROM auth.refresh_tokens t JOIN auth.sessions s ON s.id = t.session_id
           WHERE t.token = %s""",
        (token,),
    ).fetchone()
    if row is None:
        return None
    return LiveToken(str(row[0]), str(row[1]), bool(row[2]), bool(row[3]))


@dataclass(frozen=True, slots=True)
class CopiedSession:
    user_id: str
    session_id: str
    not_after: datetime | None
    banned_until: datetime | None
    ended: bool


@dataclass(frozen=True, slots=True)
class CopiedToken:
    session: CopiedSession
    revoked: bool
    spent: bool


def copied_session(conn: psycopg.Connection, session_id: str) -> CopiedSession | None:
    row = conn.execute(
        """SELECT user_id, session_id, not_after, banned_until, ended_at IS NOT NULL
           FROM copied_supabase_sessions WHERE session_id = %s::uuid""",
        (session_id,),
    ).fetchone()
    return None if row is None else CopiedSession(str(row[0]), str(row[1]), row[2], row[3], bool(row[4]))


def copied_token(conn: psycopg.Connection, digest: bytes) -> CopiedToken | None:
    """The copied token with its session; a token whose session was never copied counts as ended."""
    row = conn.execute(
        """SELECT t.user_id, t.session_id, s.not_after, s.banned_until, s.session_id IS NULL OR s.ended_at IS NOT NULL,
                  t.revoked, t.exchanged_at IS NOT NULL
           FROM copied_refresh_tokens t LEFT JOIN copied_supabase_sessions s ON s.session_id = t.session_id
           WHERE t.token_hash = %s""",
        (digest,),
    ).fetchone()
    if row is None:
        return None
    session = CopiedSession(str(row[0]), str(row[1]), row[2], row[3], bool(row[4]))
    return CopiedToken(session, bool(row[5]), bool(row[6]))


def claim_token(conn: psycopg.Connection, digest: bytes, *, user_id: str, session_id: str, now: datetime) -> bool:
    """Spend the token: True for the one caller that does, False when it was spent or revoked before.
    A token Supabase issued after the last copy gets its ledger row here."""
    row = conn.execute(
        """INSERT INTO copied_refresh_tokens (token_hash, session_id, user_id, revoked, exchanged_at)
           VALUES (%(digest)s, %(session)s::uuid, %(user)s::uuid, false, %(now)s)
           ON CONFLICT (token_hash) DO UPDATE SET exchanged_at = EXCLUDED.exchanged_at
           WHERE copied_refresh_tokens.exchanged_at IS NULL AND NOT copied_refresh_tokens.revoked
           RETURNING 1""",
        {"digest": digest, "session": session_id, "user": user_id, "now": now},
    ).fetchone()
    return row is not None


def token_spent_on(conn: psycopg.Connection, digest: bytes, better_auth_session_id: str) -> None:
    conn.execute(
        "UPDATE copied_refresh_tokens SET better_auth_session_id = %s WHERE token_hash = %s",
        (better_auth_session_id, digest),
    )


def release_token(conn: psycopg.Connection, digest: bytes, *, claimed_at: datetime) -> None:
    """Give back a claim whose Better-Auth session could not be made (the exchange failed with 5xx): the
    client's retry with the same token must not read as a theft."""
    conn.execute(
        """UPDATE copied_refresh_tokens SET exchanged_at = NULL
           WHERE token_hash = %s AND exchanged_at = %s AND better_auth_session_id IS NULL""",
        (digest, claimed_at),
    )


def end_family(conn: psycopg.Connection, *, user_id: str, session_id: str, now: datetime) -> list[str]:
    """A refresh token of this Supabase session was reused: end the session (its every token is refused from
    now on, as GoTrue's RevokeTokenFamily does) and return the Better-Auth sessions its tokens bought, which
    the caller deletes: either holder may be the thief."""
    conn.execute(
        """INSERT INTO copied_supabase_sessions
               (session_id, user_id, copied_at, copy_run, ended_at, ended_reason)
           VALUES (%(session)s::uuid, %(user)s::uuid, %(now)s, gen_random_uuid(), %(now)s, 'refresh_token_reused')
           ON CONFLICT (session_id) DO UPDATE SET ended_at = EXCLUDED.ended_at, ended_reason = EXCLUDED.ended_reason""",
        {"session": session_id, "user": user_id, "now": now},
    )
    rows = conn.execute(
        """UPDATE copied_refresh_tokens SET revoked = true WHERE session_id = %s::uuid
           RETURNING better_auth_session_id""",
        (session_id,),
    ).fetchall()
    return [str(row[0]) for row in rows if row[0] is not None]
