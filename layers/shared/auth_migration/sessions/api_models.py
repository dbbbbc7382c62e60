"""The session exchange's request and reply bodies (pydantic): what Event Handler validates and OpenAPI shows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from auth_migration.sessions import MAX_REFRESH_TOKEN_CHARS, MAX_TOKEN_CHARS

__all__ = ["ExchangeReply", "ExchangeRequest", "ExchangeUserBody"]


def _exactly_one_in_schema(schema: dict[str, Any]) -> None:
    """The OpenAPI document says what the validator enforces: each token a non-null string when sent, and
    exactly one of them (a client generated from the document, or a fuzzer, then sends only valid bodies)."""
    for name in ("access_token", "refresh_token"):
        prop = schema["properties"][name]
        string = next(s for s in prop.pop("anyOf") if s.get("type") == "string")
        prop.pop("default", None)
        prop.update(string)
    schema["oneOf"] = [{"required": ["access_token"]}, {"required": ["refresh_token"]}]


class ExchangeRequest(BaseModel):
    """Exactly one of the Supabase session's two tokens."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_in_schema)

    access_token: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=MAX_TOKEN_CHARS,
            description=(
                "The Supabase access token (JWT) of the signed-in user: supabase-js `session.access_token`. "
                "Verified with the project's JWT secret (HS256) or its JWKS (ES256/RS256)."
            ),
            repr=False,  # the model's repr reaches DEBUG logs (Event Handler logs route arguments)
        ),
    ] = None
    refresh_token: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=MAX_REFRESH_TOKEN_CHARS,
            description=(
                "The Supabase refresh token: supabase-js `session.refresh_token`. Checked against GoTrue while "
                "Supabase runs, against the copy of its sessions once it is gone; exchanged at most once (a "
                "second use is refused and ends that session)."
            ),
            repr=False,
        ),
    ] = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ExchangeRequest:
        if any(getattr(self, name) is None for name in self.model_fields_set):
            raise ValueError("a token sent must be a string")  # null is not "not sent"
        if (self.access_token is None) == (self.refresh_token is None):
            raise ValueError("send exactly one of access_token and refresh_token")
        return self


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
