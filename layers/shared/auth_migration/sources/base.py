"""The interface every source implements; the engine never sees a source's SQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import psycopg

from auth_migration.models import SourceUser
from auth_migration.validation import ValidationPolicy


class UserSource(Protocol):
    """Reads users in a stable id order. Ranges are (after_id, upto_id]: after_id None = from the start."""

    name: str

    def check(self, conn: psycopg.Connection) -> None:
        """Raise ConfigError when the source tables are missing or unusable."""

    def batch_boundaries(self, conn: psycopg.Connection, after_id: str | None, batch_size: int) -> Iterator[str]:
        """Yield the last id of each consecutive batch of `batch_size` ids past after_id (the last may be short)."""

    def fetch_range(
        self, conn: psycopg.Connection, after_id: str | None, upto_id: str, *, with_migrated: bool = False
    ) -> list[SourceUser]:
        """The users with after_id < id <= upto_id, in id order.

        with_migrated (only where the migration state lives in the source's database): mark each user
        that migrated_users already holds (SourceUser.migrated) and leave out the columns only a
        migration needs (metadata, identities, password), so a re-run reads little and parses less.
        """

    def fetch_pending(
        self, conn: psycopg.Connection, after_id: str | None, upto_id: str, policy: ValidationPolicy
    ) -> tuple[list[SourceUser], int]:
        """fetch_range(with_migrated=True), less the users a batch has nothing to decide about.

        Returns the users that still need classify() (migrated ones marked), and how many were
        only counted: migrated_users holds them and validation.plainly_valid_sql(policy) holds for
        them, so their outcome is already_migrated. Only where migrated_users lives in the source's
        database. A source may count none (return every user).
        """

    def settled_ranges(
        self,
        conn: psycopg.Connection,
        ranges: Sequence[tuple[str | None, str]],
        policy: ValidationPolicy,
        *,
        batch_size: int = 1,
    ) -> list[int | None]:
        """For each range (after_id, upto_id]: the number of users it holds when fetch_pending(policy)
        would only count every one of them (nothing for a batch to decide), else None.

        Planning calls it (state in the source's database only) to record such ranges as done without
        sending them. A source that counts none in fetch_pending returns None for every range. None is
        always safe (the batch decides); batch_size: the users each range but the last was planned with
        (a source may use it to skip reading ranges that cannot be settled).
        """

    def email_collisions(self, conn: psycopg.Connection) -> Iterator[tuple[str, list[str]]]:
        """(lower(email), ids) for every email shared, ignoring case, by more than one live user."""
