"""Source user -> Better-Auth user draft, then a pipeline of pluggable transforms (the seed's, by name)."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from auth_migration.exceptions import InvalidRequest
from auth_migration.models import SourceUser, TargetAccount, TargetUser
from auth_migration.names import display_name
from auth_migration.validation import is_banned

Transform = Callable[[TargetUser, SourceUser], None]

#: Namespace of derived account ids: uuid5(provider:account) is the same on every run, so a re-run
#: finds the account an earlier run made instead of adding a second copy.
ACCOUNT_ID_NAMESPACE = uuid.UUID("6f1c1e3a-1d7e-5b7e-9a51-6d2f0b7a4c11")
CREDENTIAL_PROVIDER = "credential"
BCRYPT_RE = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")
MAX_NAME_LENGTH = 255
MAX_URL_LENGTH = 2048
MAX_METADATA_BYTES = 64 * 1024


_NAMESPACE_BYTES = ACCOUNT_ID_NAMESPACE.bytes


def account_id_for(provider: str, account_id: str) -> str:
    """str(uuid.uuid5(ACCOUNT_ID_NAMESPACE, "provider:account")), computed without building UUID objects
    (uuid.uuid5 was 4 % of a batch's time): SHA-1 of namespace + name, version and variant bits set."""
    name = f"{provider}:{account_id}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def build_target(user: SourceUser, *, now: datetime) -> TargetUser:
    """The Better-Auth draft of a validated source user (email present and well-formed).

    The email is always lowercased: Better-Auth looks users up by the lowercased email, so a
    mixed-case stored email could never sign in. That is not optional, hence not a transform.
    `now`: the migration's as_of; bans are judged against it, and it stands in for a missing created_at.
    """
    email = (user.email or "").strip().lower()
    created = user.created_at or now
    draft = TargetUser(
        id=user.id,
        email=email,
        name=display_name(email, user.user_metadata),
        email_verified=user.email_confirmed_at is not None,
        image=_image_from(user.user_metadata),
        created_at=created,
        updated_at=max(user.updated_at or created, created),
    )
    if user.password_hash:
        if BCRYPT_RE.match(user.password_hash):
            draft.accounts.append(
                TargetAccount(
                    id=account_id_for(CREDENTIAL_PROVIDER, user.id),
                    provider_id=CREDENTIAL_PROVIDER,
                    account_id=user.id,
                    password=user.password_hash,
                )
            )
        else:
            draft.flags.append("unsupported_password_hash")
    for identity in user.identities:
        draft.accounts.append(
            TargetAccount(
                id=account_id_for(identity.provider, identity.provider_id),
                provider_id=identity.provider,
                account_id=identity.provider_id,
            )
        )
    if not any(a.provider_id == CREDENTIAL_PROVIDER for a in draft.accounts):
        draft.flags.append("oauth_only" if user.identities else "no_credentials")
    if not draft.email_verified:
        draft.flags.append("unverified_email")
    if is_banned(user, now):
        draft.banned, draft.ban_expires = True, user.banned_until
        draft.flags.append("banned")
    draft.metadata = user.user_metadata if isinstance(user.user_metadata, dict) else {}
    if user.user_metadata is not None and not isinstance(user.user_metadata, dict):
        draft.flags.append("non_object_metadata")
    return draft


def _image_from(meta: Any) -> str | None:
    if not isinstance(meta, dict):
        return None
    for key in ("avatar_url", "picture"):
        if isinstance(meta.get(key), str):
            return str(meta[key])
    return None


# --- the pluggable transforms -------------------------------------------------------------------


def clean_name(draft: TargetUser, _source: SourceUser) -> None:
    """Strip control characters and cap the length: metadata names are user input of any shape."""
    name = draft.name
    # isprintable() is False for every category-C character (and for other spaces than " "): only then
    # does a name need the per-character filter, which was most of this transform's cost.
    if not name.isprintable():
        name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        name = name[:MAX_NAME_LENGTH]
        draft.flags.append("name_truncated")
    draft.name = name or draft.email.split("@", 1)[0]


def capitalize_names(draft: TargetUser, _source: SourceUser) -> None:
    """The seed's capitalizeFirst, applied only to all-lowercase names so "van der Berg" survives."""
    if draft.name and draft.name == draft.name.lower() and "@" not in draft.name:
        draft.name = " ".join(word[:1].upper() + word[1:] for word in draft.name.split(" "))


def validate_avatar_url(draft: TargetUser, _source: SourceUser) -> None:
    """Keep only absolute http(s) URLs of sane length; anything else is dropped and flagged."""
    if draft.image is None:
        return
    url = draft.image.strip()
    parts = urlsplit(url) if len(url) <= MAX_URL_LENGTH and not any(c.isspace() for c in url) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        draft.image = None
        draft.flags.append("avatar_url_dropped")
    else:
        draft.image = url


def mark_source_metadata(draft: TargetUser, source: SourceUser) -> None:
    """The seed's metadata markers, kept in migrated_users.metadata (Better-Auth's user has no such column).

    The size check serializes the metadata anyway; that text, with the markers spliced in, becomes
    draft.metadata_json, so the tracking write does not serialize it a second time (bench/profile_batch).
    """
    original = draft.metadata
    text = json.dumps(original, default=str) if original else "{}"
    if len(text) > MAX_METADATA_BYTES:
        original = {"truncated": True, "original_bytes": len(text)}
        text = json.dumps(original)
        draft.flags.append("metadata_truncated")
    markers = {
        "migrated_from": source.origin,
        "original_id": source.id,
        "original_created_at": source.created_at.isoformat() if source.created_at else None,
    }
    draft.metadata = {**original, **markers}
    if original.keys().isdisjoint(markers):
        # json.dumps writes a dict's items in order joined by ", ": the merged dict's text is the
        # original's with the markers' items appended, byte for byte.
        tail = json.dumps(markers, default=str)[1:]
        draft.metadata_json = "{" + tail if text == "{}" else f"{text[:-1]}, {tail}"
    else:
        # A marker key the user already had keeps its original position: serialize the merged dict.
        draft.metadata_json = json.dumps(draft.metadata, default=str)


TRANSFORMS: dict[str, Transform] = {
    "clean_name": clean_name,
    "capitalize_names": capitalize_names,
    "validate_avatar_url": validate_avatar_url,
    "mark_source_metadata": mark_source_metadata,
}
DEFAULT_TRANSFORMS: tuple[str, ...] = (
    "clean_name",
    "capitalize_names",
    "validate_avatar_url",
    "mark_source_metadata",
)


def resolve_pipeline(names: Sequence[str] | None) -> list[Transform]:
    """The transforms named (default: the seed's set), failing fast on an unknown name."""
    chosen = DEFAULT_TRANSFORMS if names is None else tuple(names)
    unknown = [n for n in chosen if n not in TRANSFORMS]
    if unknown:
        raise InvalidRequest(f"unknown transform(s) {unknown}; known: {', '.join(sorted(TRANSFORMS))}")
    return [TRANSFORMS[n] for n in chosen]


def transform(user: SourceUser, pipeline: Sequence[Transform], *, now: datetime) -> TargetUser:
    draft = build_target(user, now=now)
    for step in pipeline:
        # Any step may change the metadata, so none may find a cached text of it; the step that
        # computes the cache (mark_source_metadata) sets it after its change.
        draft.metadata_json = None
        step(draft, user)
    return draft
