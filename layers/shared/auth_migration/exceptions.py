"""The one error vocabulary: adapters translate library errors into these; callers branch on type."""

from __future__ import annotations


class AuthMigrationError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(AuthMigrationError):
    """Configuration or flags are missing or invalid (names the setting, never echoes a secret)."""


class InvalidRequest(AuthMigrationError):
    """Caller input is malformed: a 4xx / CLI usage error, nothing was written."""


class NotFound(AuthMigrationError):
    """A named object (migration id, user) does not exist."""


class StateConflict(AuthMigrationError):
    """The operation does not fit the object's current state (e.g. resume a rolled-back migration)."""


class TransientError(AuthMigrationError):
    """Worth retrying: lost connection, serialization failure, deadlock, timeout, 5xx."""


class PermanentError(AuthMigrationError):
    """Retrying cannot help: validation failure, conflict, unsupported data."""


class DatabaseUnavailable(TransientError):
    """A database could not be reached."""
