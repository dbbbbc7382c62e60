"""Lazy migration of one Supabase user into Better-Auth, on the per-user claim every path shares.

Login (after GoTrue verified the password) and session exchange (after a valid Supabase session) both
create the user here. The claim is the same migrated_users row the bulk engine inserts, so whichever path
comes second adopts instead of duplicating. With state and Better-Auth in one database the claim and the
rows commit together; with two, the rows go first (idempotent by id) and the claim records whether we
created them.
"""

from __future__ import annotations

import psycopg

from auth_migration.connections import Connections
from auth_migration.dual_write.directory import NewUser, insert_better_auth_user
from auth_migration.dual_write.records import ClaimSource, claim_user, mark_status

__all__ = ["migrate_lazily"]


def migrate_lazily(conns: Connections, new: NewUser, source: ClaimSource) -> bool:
    """Create `new` in Better-Auth with its Supabase id; whether this call made the claim.

    Raises:
        psycopg.errors.UniqueViolation: Better-Auth holds the email under another id (a person decides).
    """

    def claim_and_write(conn: psycopg.Connection) -> bool:
        if not claim_user(conn, new.id, new.email, source, created_target=True):
            return False
        if not insert_better_auth_user(conn, new):
            conn.execute("UPDATE migrated_users SET created_target = false WHERE original_id = %s", (new.id,))
        mark_status(conn, new.id, new.email, "migrated_lazy", supabase=True, better_auth=True, validated=True)
        return True

    if conns.shared_target:
        return conns.transact("state", claim_and_write)
    created = conns.transact("target", lambda conn: insert_better_auth_user(conn, new))

    def claim(conn: psycopg.Connection) -> bool:
        claimed = claim_user(conn, new.id, new.email, source, created_target=created)
        mark_status(conn, new.id, new.email, "migrated_lazy", supabase=True, better_auth=True, validated=True)
        return claimed

    return conns.transact("state", claim)
