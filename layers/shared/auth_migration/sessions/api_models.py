"""The session exchange's request and reply bodies (pydantic): what Event Handler validates and OpenAPI shows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from auth_migration.sessions import MAX_TOKEN_CHARS

__all__ = ["ExchangeReply", "ExchangeRequest", "ExchangeUserBody"]


class ExchangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    access_token: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_TOKEN_CHARS,
            description=(
                "The Supabase access token (JWT) of the signed-in user: supabase-js `session.access_token`. "
                "Verified with the project's JWT secret (HS256) or its JWKS (ES256/RS256)."
            ),
            repr=False,  # the model's repr reaches DEBUG logs (Event Handler logs route arguments)
        ),
    ]


class ExchangeUserBody(BaseModel):
    """The user as Better-Auth's own sign-in reply shows it (its field names)."""

    id: str
    email: str
    name: str
    image: str | None
    email_verified: bool = Field(alias="emailVerified")
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")


class ExchangeReply(BaseModel):
    """What Better-Auth's POST /sign-in/email answers, so the app's Better-Auth client needs no special case;
    the same session travels in the signed `better-auth.session_token` cookie (Set-Cookie)."""

    redirect: Literal[False] = False
    token: str = Field(description="The Better-Auth session token (a bearer token with Better-Auth's bearer plugin)")
    user: ExchangeUserBody
