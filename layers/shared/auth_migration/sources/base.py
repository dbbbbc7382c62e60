"""The interface every source implements; the engine never sees a source's SQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import psycopg

from auth_migration.models import SourceUser


class UserSource(Protocol):
    """Reads users in a stable id order. Ranges are (after_id, upto_id]: after_id None = from the start."""

    name: str

    def check(self, conn: psycopg.Connection) -> None:
        """Raise ConfigError when the source tables are missing or unusable."""

    def batch_boundaries(self, conn: psycopg.Connection, after_id: str | None, batch_size: int) -> Iterator[str]:
        """Yield the last id of each consecutive batch of `batch_size` ids past after_id (the last may be short)."""

    def fetch_range(self, conn: psycopg.Connection, after_id: str | None, upto_id: str) -> list[SourceUser]:
        """The users with after_id < id <= upto_id, in id order."""

    def email_collisions(self, conn: psycopg.Connection) -> Iterator[tuple[str, list[str]]]:
        """(lower(email), ids) for every email shared, ignoring case, by more than one live user."""
