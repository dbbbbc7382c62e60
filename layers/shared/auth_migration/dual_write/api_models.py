"""The auth API's request and reply bodies (pydantic): what Event Handler validates and OpenAPI describes."""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from auth_migration.backends.base import AuthResult
from auth_migration.dual_write.passwords import BCRYPT_MAX_BYTES, password_fits_bcrypt
from auth_migration.rest import ErrorReply

__all__ = ["AuthReply", "ErrorReply", "LoginRequest", "SessionBody", "SignupRequest", "UserBody"]

PASSWORD_MIN: Final = 8
METADATA_MAX_BYTES: Final = 4096
_METADATA_MAX_DEPTH: Final = 4


def _signup_password(value: str) -> str:
    if not password_fits_bcrypt(value):
        raise ValueError(f"password must be at most {BCRYPT_MAX_BYTES} bytes in UTF-8")
    if not value.strip():
        raise ValueError("password must not be blank")
    return value


def _too_deep(value: Any, limit: int) -> bool:
    """Whether `value` nests containers deeper than `limit` (iterative: hostile depth cannot recurse)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level >= limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return False


def _has_nul(value: Any) -> bool:
    """Postgres text and jsonb cannot hold U+0000: such metadata could be stored in neither system."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if _too_deep(value, _METADATA_MAX_DEPTH):
        raise ValueError(f"metadata must nest at most {_METADATA_MAX_DEPTH} levels")
    try:
        # allow_nan=False: NaN and Infinity are not JSON, and neither system would accept them.
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise ValueError("metadata must be plain JSON (no NaN or Infinity)") from None
    if len(encoded.encode("utf-8")) > METADATA_MAX_BYTES:
        raise ValueError(f"metadata must be at most {METADATA_MAX_BYTES} bytes as JSON")
    if _has_nul(value):
        raise ValueError("metadata must not contain the NUL character")
    return value


# EmailStr (email-validator) checks the syntax without DNS; 254 is the SMTP path limit.
Email = Annotated[EmailStr, Field(max_length=254, description="The user's email; compared ignoring case.")]


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    email: Email
    password: Annotated[
        str,
        Field(
            min_length=PASSWORD_MIN,
            max_length=BCRYPT_MAX_BYTES,
            description="8 to 72 bytes (bcrypt's limit).",
            repr=False,  # the model's repr reaches DEBUG logs (Event Handler logs route arguments)
        ),
        AfterValidator(_signup_password),
    ]
    metadata: Annotated[
        dict[str, Any] | None,
        Field(default=None, description="Profile fields (name, full_name, ...); at most 4 KB of JSON."),
        AfterValidator(_metadata),
    ] = None


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    # No policy here (policies change; old passwords stay valid): only a sane bound.
    password: Annotated[str, Field(min_length=1, max_length=1024, repr=False)]


class UserBody(BaseModel):
    id: str
    email: str


class SessionBody(BaseModel):
    access_token: str
    refresh_token: str | None = None
    expires_at: int | None = None
    token_type: str


class AuthReply(BaseModel):
    """One shape whichever system answered."""

    user: UserBody
    session: SessionBody | None
    system: Literal["supabase", "better_auth"]

    @classmethod
    def of(cls, result: AuthResult) -> AuthReply:
        session = None
        if result.session is not None:
            session = SessionBody(
                access_token=result.session.access_token,
                refresh_token=result.session.refresh_token,
                expires_at=result.session.expires_at,
                token_type=result.session.token_type,
            )
        return cls(user=UserBody(id=result.user.id, email=result.user.email), session=session, system=result.system)
