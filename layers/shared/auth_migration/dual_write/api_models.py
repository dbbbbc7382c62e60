"""The auth API's request and reply bodies (pydantic): what Event Handler validates and OpenAPI describes."""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, WithJsonSchema

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


# --- what the OpenAPI document says about the bodies ---------------------------------------------------
# The patterns and schemas below only annotate the document (json_schema_extra / WithJsonSchema): the
# validators above and EmailStr stay the one judge, so a schema can never widen or narrow what is accepted.

#: The names email-validator refuses after the @-sign, as the domain or as its last labels (RFC 6761 and
#: IANA's special-use list, email_validator.SPECIAL_USE_DOMAIN_NAMES in 2.4).
SPECIAL_USE_DOMAINS: Final = ("arpa", "invalid", "local", "localhost", "onion", "test")


def _any_case(word: str) -> str:
    # JSON Schema patterns have no flags (ECMA-262 without /i): spell each letter in both cases.
    return "".join(f"[{c.upper()}{c}]" for c in word)


_ATEXT: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# The last label ends in a letter (email-validator: an all-numeric or digit-final TLD is not a domain).
_TLD: Final = r"(?:[A-Za-z0-9][A-Za-z0-9-]{0,61})?[A-Za-z]"
_SPECIAL: Final = "|".join(_any_case(name) for name in sorted(SPECIAL_USE_DOMAINS, key=len, reverse=True))
#: The ASCII email grammar the API accepts: a dot-atom local part, then a domain of at least two LDH labels
#: whose last is not numeric, no label with "--" at its third character (Punycode's mark: IDNA judges those),
#: and no special-use name at its end. Written for both ECMA-262 and Python `re`.
EMAIL_PATTERN: Final = (
    rf"^{_ATEXT}+(?:\.{_ATEXT}+)*@"
    rf"(?!(?:[^@]*\.)?(?:{_SPECIAL})$)"
    r"(?!(?:[A-Za-z0-9-]*\.)*[A-Za-z0-9]{2}--)"
    rf"(?:{_LABEL}\.)+{_TLD}$"
)
EMAIL_MAX_LENGTH: Final = 254
_EMAIL_DESCRIPTION: Final = (
    "The user's email, compared ignoring case. Judged by email-validator 2.4 (pydantic EmailStr, no DNS "
    f"look-up); at most {EMAIL_MAX_LENGTH} characters, the part before the @ not limited to RFC 5321's 64 "
    "(hence no `format: email`). Refused (400): quoted local parts, IP-literal domains, "
    "a domain without a dot or whose last label is numeric, and special-use or reserved names at the end of "
    f"the domain ({', '.join('.' + d for d in SPECIAL_USE_DOMAINS)}, e.g. `ada@example.test`; `example.com` "
    "and other real-looking domains are accepted). The pattern is the ASCII form of that grammar; the API "
    "also accepts internationalised addresses (UTF-8 local parts, Unicode or xn-- domain labels) that pass "
    "IDNA, and, like EmailStr, surrounding spaces and a `Name <address>` form (only the address is used)."
)

#: Whitespace as Python's str.strip() sees it (ECMA-262's \s differs: it lacks U+001C..U+001F and U+0085
#: but has U+FEFF), so the pattern below says exactly what the blank-password check refuses.
_PY_SPACE: Final = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK_PATTERN: Final = rf"[^{_PY_SPACE}]"

_NO_NUL: Final = "^[^\\x00]*$"


def _metadata_value_schema(level: int) -> dict[str, Any]:
    """A metadata value at nesting `level`: any JSON without NUL, containers only above the depth limit.

    Spelled out level by level (the depth is bounded, so no recursion is needed); anyOf of one type each,
    since Event Handler's OpenAPI model takes no list of types.
    """
    scalars: list[dict[str, Any]] = [
        {"type": "string", "pattern": _NO_NUL},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
    ]
    if level >= _METADATA_MAX_DEPTH:
        return {"anyOf": scalars}
    inner = _metadata_value_schema(level + 1)
    return {
        "anyOf": [
            *scalars,
            {"type": "array", "items": inner},
            {"type": "object", "propertyNames": {"pattern": _NO_NUL}, "additionalProperties": inner},
        ]
    }


METADATA_SCHEMA: Final[dict[str, Any]] = {
    "anyOf": [
        {"type": "object", "propertyNames": {"pattern": _NO_NUL}, "additionalProperties": _metadata_value_schema(1)},
        {"type": "null"},
    ],
    "default": None,
    "description": (
        "Profile fields (name, full_name, ...). Refused (400): more than "
        f"{METADATA_MAX_BYTES} bytes as UTF-8 JSON (a limit JSON Schema cannot state), containers nested "
        f"more than {_METADATA_MAX_DEPTH} levels deep, and the NUL character (U+0000) in any key or string: "
        "Postgres text and jsonb cannot hold it."
    ),
}


def _email_schema(schema: dict[str, Any]) -> None:
    # No `format: email`: JSON Schema's email format is RFC 5321's, whose 64-character limit on the local
    # part email-validator does not apply (strict mode is off), so the format would refuse addresses the
    # API takes. The pattern states what is enforced instead.
    schema.pop("format", None)
    schema["pattern"] = EMAIL_PATTERN


# EmailStr (email-validator) checks the syntax without DNS; 254 is the SMTP path limit.
Email = Annotated[
    EmailStr,
    Field(
        max_length=EMAIL_MAX_LENGTH,
        description=_EMAIL_DESCRIPTION,
        json_schema_extra=_email_schema,
    ),
]


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    email: Email
    password: Annotated[
        str,
        Field(
            min_length=PASSWORD_MIN,
            max_length=BCRYPT_MAX_BYTES,
            description=(
                f"At least {PASSWORD_MIN} characters and at most {BCRYPT_MAX_BYTES} bytes in UTF-8 (bcrypt's "
                "limit; maxLength can only count characters), not all whitespace. Each auth system may refuse "
                "it as weak (422)."
            ),
            json_schema_extra={"pattern": NOT_BLANK_PATTERN},
            repr=False,  # the model's repr reaches DEBUG logs (Event Handler logs route arguments)
        ),
        AfterValidator(_signup_password),
    ]
    metadata: Annotated[
        dict[str, Any] | None,
        Field(default=None),
        WithJsonSchema(METADATA_SCHEMA),
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
