"""The auth API's request and reply bodies (pydantic): what Event Handler validates and OpenAPI describes."""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from auth_migration.backends.base import AuthResult
from auth_migration.dual_write.passwords import BCRYPT_MAX_BYTES, password_fits_bcrypt

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


def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if len(json.dumps(value, ensure_ascii=False).encode("utf-8")) > METADATA_MAX_BYTES:
        raise ValueError(f"metadata must be at most {METADATA_MAX_BYTES} bytes as JSON")
    if _depth(value) > _METADATA_MAX_DEPTH:
        raise ValueError(f"metadata must nest at most {_METADATA_MAX_DEPTH} levels")
    return value


# EmailStr (email-validator) checks the syntax without DNS; 254 is the SMTP path limit.
Email = Annotated[EmailStr, Field(max_length=254, description="The user's email; compared ignoring case.")]


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    email: Email
    password: Annotated[
        str,
        Field(min_length=PASSWORD_MIN, max_length=BCRYPT_MAX_BYTES, description="8 to 72 bytes (bcrypt's limit)."),
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
    password: Annotated[str, Field(min_length=1, max_length=1024)]


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


class ErrorReply(BaseModel):
    error: str
    message: str
    details: list[dict[str, str]] | None = None
