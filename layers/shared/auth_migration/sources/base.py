"""The interface every source implements; the engine never sees a source's SQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import psycopg

from auth_migration.models import SourceUser
from auth_migration.validation import ValidationPolicy


@dataclass(frozen=True, slots=True)
class SettledRange:
    """What planning found in one range: `counted` users fetch_pending would only count, and the ids of
    the others (`undecided`: not migrated, or migrated but not plainly valid), the only users its batch
    has to read and decide. No undecided users: the range is settled, and never sent."""

    counted: int
    undecided: tuple[str, ...] = ()


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
        self,
        conn: psycopg.Connection,
        after_id: str | None,
        upto_id: str,
        policy: ValidationPolicy,
        *,
        only: Sequence[str] | None = None,
    ) -> tuple[list[SourceUser], int]:
        """fetch_range(with_migrated=True), less the users a batch has nothing to decide about.

        Returns the users that still need classify() (migrated ones marked), and how many were
        only counted: migrated_users holds them and validation.plainly_valid_sql(policy) holds for
        them, so their outcome is already_migrated. Only where migrated_users lives in the source's
        database. A source may count none (return every user). `only`: read just these ids of the
        range (a SettledRange's undecided users), not the whole range.
        """

    def settled_ranges(
        self,
        conn: psycopg.Connection,
        ranges: Sequence[tuple[str | None, str]],
        policy: ValidationPolicy,
        *,
        batch_size: int = 1,
    ) -> list[SettledRange | None]:
        """For each range (after_id, upto_id]: how many of its users fetch_pending(policy) would only
        count, and the ids of the others when they are few; else None.

        Planning calls it (state in the source's database only): a range with no undecided users is
        recorded as done and never sent; a range with a few is sent to read only those (fetch_pending's
        `only`). A source that counts none in fetch_pending returns None for every range. None is
        always safe (the batch reads its whole range and decides); batch_size: the users each range but
        the last was planned with (a source may use it to size what "few" means).
        """

    def email_collisions(
        self, conn: psycopg.Connection, among: Sequence[str] | None = None
    ) -> Iterator[tuple[str, list[str]]]:
        """(lower(email), ids) for every email shared, ignoring case, by more than one live user.

        `among`: only the emails of these users need to be found (a re-run's undecided users: nobody
        else is read by a batch); a source may return more."""
