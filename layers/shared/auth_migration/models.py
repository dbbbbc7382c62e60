"""The data that flows through a migration: source users, target drafts, batch messages, outcomes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class SourceIdentity:
    """An OAuth identity of a source user (Supabase auth.identities, provider other than email)."""

    provider: str
    provider_id: str


@dataclass(slots=True)
class SourceUser:
    """One user as read from a source, before validation. Sources map their rows onto this shape.

    Read-only by convention (transforms read it, never change it). Not frozen: a frozen dataclass sets
    each field through object.__setattr__, and building 1,000 of them cost ~2 ms per batch.
    """

    id: str
    email: str | None
    password_hash: str | None = None
    email_confirmed_at: datetime | None = None
    phone: str | None = None
    user_metadata: Any = None
    app_metadata: Any = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    is_anonymous: bool = False
    deleted_at: datetime | None = None
    banned_until: datetime | None = None
    identities: tuple[SourceIdentity, ...] = ()
    origin: str = "supabase"  # which system the user comes from, kept in the migration metadata
    #: Set by fetch_range(..., with_migrated=True): migrated_users already holds this id. Such a user is
    #: read with only the columns validation needs (id, email, phone, deleted/anonymous/banned).
    migrated: bool = False


@dataclass(frozen=True, slots=True)
class TargetAccount:
    """A Better-Auth `account` row: the credential (bcrypt hash) or one OAuth link."""

    id: str
    provider_id: str
    account_id: str
    password: str | None = None


@dataclass(slots=True)
class TargetUser:
    """A Better-Auth `user` draft built from a source user; transforms edit it in place.

    `metadata_json` caches `metadata` as JSON (what the tracking row stores), set by the transform that
    measures its size so a batch serializes each user's metadata once. Whoever changes `metadata` must
    clear it (transforms.transform clears it before every step); metadata_text() falls back to
    serializing when it is unset.
    """

    id: str
    email: str
    name: str
    email_verified: bool
    image: str | None
    created_at: datetime
    updated_at: datetime
    accounts: list[TargetAccount] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    banned: bool = False
    ban_expires: datetime | None = None
    metadata_json: str | None = field(default=None, compare=False, repr=False)

    def metadata_text(self) -> str:
        """`metadata` as the JSON text of migrated_users.metadata: the cache, else a fresh serialization."""
        if self.metadata_json is None:
            return json.dumps(self.metadata, default=str)
        return self.metadata_json


class OutcomeKind(StrEnum):
    """What happened to one source user in one batch."""

    MIGRATED = "migrated"
    ADOPTED = "adopted"  # the target already held this id: tracked, not created
    ALREADY_MIGRATED = "already_migrated"
    #: The target held this id from an earlier migration's interrupted batch (its intent names it):
    #: tracked as created by that migration, whose rollback then removes it. Not an error; listed.
    RECOVERED = "recovered"
    SKIPPED = "skipped"
    INVALID = "invalid"
    CONFLICT = "conflict"
    FAILED = "failed"


#: Kinds that count in migration_states.error_count (a person should look at them).
ERROR_KINDS = frozenset({OutcomeKind.INVALID, OutcomeKind.CONFLICT, OutcomeKind.FAILED})


@dataclass(frozen=True, slots=True)
class Outcome:
    user_id: str
    kind: OutcomeKind
    code: str  # e.g. "soft_deleted", "invalid_email", "email_case_duplicate"
    message: str = ""
    details: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        """The counter this outcome adds to, e.g. "skipped:soft_deleted" or "migrated"."""
        return self.kind.value if self.kind in _BARE_KINDS else f"{self.kind.value}:{self.code}"


_BARE_KINDS = frozenset({OutcomeKind.MIGRATED, OutcomeKind.ADOPTED, OutcomeKind.ALREADY_MIGRATED})


@dataclass(frozen=True, slots=True)
class BatchMessage:
    """The body of one MigrateBatch SQS message: a keyset range (after_id, upto_id] of source ids."""

    migration_id: str
    batch_no: int
    after_id: str | None
    upto_id: str

    def to_body(self) -> dict[str, Any]:
        return {
            "migration_id": self.migration_id,
            "batch_no": self.batch_no,
            "after_id": self.after_id,
            "upto_id": self.upto_id,
        }
