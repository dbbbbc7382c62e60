"""Better-Auth as a target: set-wise writes of its own `user` and `account` rows (schema as it creates it).

Rows are written straight into Better-Auth's database rather than through its HTTP API because only
SQL can keep the Supabase user id (foreign keys and RLS keep working) and the bcrypt hash (users keep
their password), and only SQL can share a transaction with the tracking row.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import psycopg

from auth_migration.exceptions import ConfigError
from auth_migration.models import TargetUser

_REQUIRED = {
    "user": {"id", "name", "email", "emailVerified", "image", "createdAt", "updatedAt"},
    "account": {"id", "accountId", "providerId", "userId", "password", "createdAt", "updatedAt"},
}
_BAN_COLUMNS = {"banned", "banReason", "banExpires"}


@dataclass(frozen=True, slots=True)
class TargetCapabilities:
    #: Better-Auth's admin plugin adds user.banned/banReason/banExpires: bans can then be carried over.
    supports_bans: bool = False


@dataclass(frozen=True, slots=True)
class Existing:
    """Target users that already hold one of a batch's ids or emails."""

    email_by_id: dict[str, str]
    id_by_email: dict[str, str]


@dataclass(frozen=True, slots=True)
class TrackedWrite:
    """What write_tracked did: tracking rows it inserted, and target users it created among them."""

    claimed: set[str]
    created: set[str]


class BetterAuthTarget:
    name = "better-auth"

    def check(self, conn: psycopg.Connection) -> TargetCapabilities:
        rows = conn.execute(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name IN ('user', 'account')"""
        ).fetchall()
        found: dict[str, set[str]] = {"user": set(), "account": set()}
        for table, column in rows:
            found[table].add(column)
        for table, needed in _REQUIRED.items():
            missing = needed - found[table]
            if missing:
                raise ConfigError(
                    f"Better-Auth table {table!r} is missing or lacks {sorted(missing)} in "
                    "BETTER_AUTH_DATABASE_URL: create Better-Auth's tables first (its migrate command)"
                )
        return TargetCapabilities(supports_bans=found["user"] >= _BAN_COLUMNS)

    def lookup(self, conn: psycopg.Connection, ids: Sequence[str], emails: Sequence[str]) -> Existing:
        # Index probes driven by unnest(): with `id = ANY(...) OR email = ANY(...)` the planner picks a
        # sequential scan that compares every row with every key (measured: 144 ms per 100-user batch
        # at 50k users). A plain join on unnest() did the same at 1,000 keys once the table held ~50k
        # rows (a hash join over a full scan: 5 ms -> 65 ms per batch); LATERAL ... LIMIT 1 cannot be
        # flattened into a join, so it stays one primary-key / email-index probe per key.
        # %b: arrays go in binary format (psycopg's text array dumper is pure Python, 5x slower).
        rows = conn.execute(
            """SELECT f.id, f.email FROM unnest(%b::text[]) AS k(id)
                   CROSS JOIN LATERAL (SELECT u.id, u.email FROM "user" u WHERE u.id = k.id LIMIT 1) f
               UNION
               SELECT f.id, f.email FROM unnest(%b::text[]) AS k(email)
                   CROSS JOIN LATERAL (SELECT u.id, u.email FROM "user" u WHERE u.email = k.email LIMIT 1) f""",
            (list(ids), list(emails)),
        ).fetchall()
        id_set = set(ids)
        return Existing(
            email_by_id={i: e for i, e in rows if i in id_set},
            id_by_email={e: i for i, e in rows},
        )

    def insert(self, conn: psycopg.Connection, users: Sequence[TargetUser], caps: TargetCapabilities) -> set[str]:
        """Insert users (and, for those actually inserted, their accounts); returns the ids inserted.

        Idempotent by id: a user or account that already exists is left untouched (ON CONFLICT DO
        NOTHING on the primary keys, which we derive deterministically). Any other constraint
        violation (an email taken by another id) raises, and the caller isolates the culprit.
        """
        if not users:
            return set()
        ban_cols, ban_vals = "", ""
        params: list[object] = [
            [u.id for u in users],
            [u.name for u in users],
            [u.email for u in users],
            [u.email_verified for u in users],
            [u.image for u in users],
            [u.created_at for u in users],
            [u.updated_at for u in users],
        ]
        if caps.supports_bans:
            ban_cols = ', banned, "banReason", "banExpires"'
            ban_vals = ", %b::bool[], %b::text[], %b::timestamptz[]"
            params += [
                [u.banned for u in users],
                ["migrated from Supabase" if u.banned else None for u in users],
                [u.ban_expires for u in users],
            ]
        rows = conn.execute(
            f"""INSERT INTO "user" (id, name, email, "emailVerified", image, "createdAt", "updatedAt"{ban_cols})
                SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bool[], %b::text[],
                                     %b::timestamptz[], %b::timestamptz[]{ban_vals})
                ON CONFLICT (id) DO NOTHING RETURNING id""",
            params,
        ).fetchall()
        created = {r[0] for r in rows}
        accounts = [(u, a) for u in users if u.id in created for a in u.accounts]
        if accounts:
            conn.execute(
                """INSERT INTO account (id, "accountId", "providerId", "userId", password, "createdAt", "updatedAt")
                   SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
                                        %b::timestamptz[], %b::timestamptz[])
                   ON CONFLICT (id) DO NOTHING""",
                [
                    [a.id for _, a in accounts],
                    [a.account_id for _, a in accounts],
                    [a.provider_id for _, a in accounts],
                    [u.id for u, _ in accounts],
                    [a.password for _, a in accounts],
                    [u.created_at for u, _ in accounts],
                    [u.updated_at for u, _ in accounts],
                ],
            )
        return created

    def write_tracked(
        self,
        conn: psycopg.Connection,
        users: Sequence[TargetUser],
        caps: TargetCapabilities,
        *,
        adopt: Collection[str],
        migration_id: str,
        source: str,
    ) -> TrackedWrite:
        """One-database mode: claim, target rows and status of a set of users in ONE statement.

        Data-modifying CTEs, in order: insert the tracking rows into migrated_users (ON CONFLICT DO
        NOTHING on original_id is the claim: a concurrent claimer waits, then loses); insert the
        `user` rows of those claimed to be created (ids in `adopt` are claimed with created_target =
        false and get no target rows), then the accounts of the users actually inserted; upsert
        user_migration_status for everyone claimed. A constraint violation (an email taken by another
        id) fails the statement as a whole, and the caller isolates the culprit with savepoints.

        A user claimed for creation whose id appeared in the target after the caller's look-up (the
        `user` insert did nothing) is re-marked created_target = false: adopted, never deleted by a
        rollback. That needs a second statement, only in that race.
        """
        if not users:
            return TrackedWrite(set(), set())
        ban_types, ban_names, ban_cols, ban_vals = "", "", "", ""
        params: list[object] = [
            [u.id for u in users],
            [u.email for u in users],
            [u.name for u in users],
            [u.email_verified for u in users],
            [u.image for u in users],
            [u.created_at for u in users],
            [u.updated_at for u in users],
            ["{" + ",".join(u.flags) + "}" for u in users],
            [u.metadata_text() for u in users],
            [u.id not in adopt for u in users],
        ]
        if caps.supports_bans:
            ban_types = ", %b::bool[], %b::text[], %b::timestamptz[]"
            ban_names = ", banned, ban_reason, ban_expires"
            ban_cols = ', banned, "banReason", "banExpires"'
            ban_vals = ", t.banned, t.ban_reason, t.ban_expires"
            params += [
                [u.banned for u in users],
                ["migrated from Supabase" if u.banned else None for u in users],
                [u.ban_expires for u in users],
            ]
        accounts = [(u, a) for u in users if u.id not in adopt for a in u.accounts]
        params += [
            migration_id,
            source,
            [a.id for _, a in accounts],
            [a.account_id for _, a in accounts],
            [a.provider_id for _, a in accounts],
            [u.id for u, _ in accounts],
            [a.password for _, a in accounts],
            migration_id,
        ]
        rows = conn.execute(
            f"""WITH t AS (
                  SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bool[], %b::text[], %b::timestamptz[],
                                       %b::timestamptz[], %b::text[], %b::text[], %b::bool[]{ban_types})
                      AS t(id, email, name, verified, image, created, updated, flags, meta, make{ban_names})
                ),
                claim AS (
                  INSERT INTO migrated_users
                      (original_id, new_auth_id, email, migration_id, source, created_target, flags, metadata)
                  SELECT id, id, email, %b, %b, make, flags::text[], meta::jsonb FROM t
                  ON CONFLICT (original_id) DO NOTHING
                  RETURNING original_id, created_target
                ),
                made AS (
                  INSERT INTO "user" (id, name, email, "emailVerified", image, "createdAt", "updatedAt"{ban_cols})
                  SELECT t.id, t.name, t.email, t.verified, t.image, t.created, t.updated{ban_vals}
                  FROM t JOIN claim ON claim.original_id = t.id WHERE claim.created_target
                  ON CONFLICT (id) DO NOTHING
                  RETURNING id, "createdAt", "updatedAt"
                ),
                acc AS (
                  INSERT INTO account (id, "accountId", "providerId", "userId", password, "createdAt", "updatedAt")
                  SELECT a.id, a.account_id, a.provider_id, a.user_id, a.password, made."createdAt", made."updatedAt"
                  FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[])
                      AS a(id, account_id, provider_id, user_id, password)
                  JOIN made ON made.id = a.user_id
                  ON CONFLICT (id) DO NOTHING
                ),
                status AS (
                  INSERT INTO user_migration_status (user_id, email, state, supabase_migrated, better_auth_migrated,
                                                     migration_id, migration_completed_at)
                  SELECT t.id, t.email, 'migrated_bulk', true, true, %b, now()
                  FROM t JOIN claim ON claim.original_id = t.id
                  ON CONFLICT (user_id) DO UPDATE SET state = 'migrated_bulk', better_auth_migrated = true,
                      migration_id = EXCLUDED.migration_id, migration_completed_at = now(), updated_at = now()
                )
                SELECT claim.original_id, claim.created_target, made.id IS NOT NULL
                FROM claim LEFT JOIN made ON made.id = claim.original_id""",
            params,
        ).fetchall()
        claimed = {r[0] for r in rows}
        created = {r[0] for r in rows if r[2]}
        lost_race = [r[0] for r in rows if r[1] and not r[2]]
        if lost_race:
            conn.execute("UPDATE migrated_users SET created_target = false WHERE original_id = ANY(%b)", (lost_race,))
        return TrackedWrite(claimed, created)

    def delete(self, conn: psycopg.Connection, ids: Sequence[str]) -> int:
        """Delete users by id; their accounts and sessions go with them (Better-Auth's FKs cascade)."""
        if not ids:
            return 0
        cur = conn.execute('DELETE FROM "user" WHERE id = ANY(%s)', (list(ids),))
        return cur.rowcount
