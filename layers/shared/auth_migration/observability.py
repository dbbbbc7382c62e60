"""Logger, Tracer and Metrics, created once and imported everywhere; `scrub`, the one secret filter that
log extras and every Sentry event, transaction and breadcrumb pass through (Sentry itself: sentry.py)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Final

import wrapt
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_xray_sdk.core import patcher

__all__ = [
    "DEFAULT_METRICS_NAMESPACE",
    "SERVICE",
    "hashed_email",
    "logger",
    "metrics",
    "metrics_namespace",
    "scrub",
    "tracer",
]

SERVICE: Final = "auth-migration"
#: Where metrics go when POWERTOOLS_METRICS_NAMESPACE is unset (the template sets AuthMigration/<Stage>).
DEFAULT_METRICS_NAMESPACE: Final = "AuthMigration/local"


def metrics_namespace(environ: Mapping[str, str]) -> str:
    """The CloudWatch namespace: POWERTOOLS_METRICS_NAMESPACE, else AuthMigration/local (never a stage's)."""
    return environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE


logger = Logger(service=SERVICE)
# httpcore's DEBUG trace logs reply headers, Better-Auth's session cookie among them; httpx's logs URLs.
# Neither may run at DEBUG, whatever the root logger's level.
logging.getLogger("httpcore").setLevel(logging.INFO)
logging.getLogger("httpx").setLevel(logging.WARNING)
# Tracer's auto_patch (patch_all) imports every library X-Ray can trace in order to patch it, used or not:
# httpx and psycopg in functions that never call them, sqlite3 in all, and botocore.client (39-72 ms,
# docs/SCALING.md section 7) where nothing else imports boto3 at init (no PARAMETER_PREFIX, so no SSM read).
# Each library is patched instead when it is first imported, before any of our code can use it: what is
# traced stays what patch_all traces.
tracer = Tracer(service=SERVICE, auto_patch=False)

# The module whose import means the library is about to be used, where that is not the library's own name.
# botocore: every client is made by a botocore.session.Session, and botocore.exceptions alone (the SSM error
# handling imports it) makes no call. Not botocore.client itself: its hook runs before the import binds
# `botocore.client`, which X-Ray's patch reads. X-Ray's "sqlalchemy_core" is a name of its own.
_PATCH_WHEN_IMPORTED: Final[Mapping[str, str]] = {"botocore": "botocore.session", "sqlalchemy_core": "sqlalchemy"}


def _patch_on_import(library: str) -> None:
    def patch(_module: ModuleType) -> None:
        # raise_errors=False, as patch_all: a library X-Ray cannot patch stays usable, untraced (psycopg's patch
        # also wraps psycopg_pool, which the layer does not ship: psycopg.connect is wrapped all the same).
        patcher.patch([library], raise_errors=False)

    wrapt.register_post_import_hook(patch, _PATCH_WHEN_IMPORTED.get(library, library))


if not tracer.disabled:  # as Tracer.patch: outside Lambda, or with POWERTOOLS_TRACE_DISABLED, nothing is patched
    for _library in patcher.NO_DOUBLE_PATCH:  # what patch_all patches
        _patch_on_import(_library)
# Read once, at import (cold start), as Powertools itself would; only the fallback is ours.
metrics = Metrics(namespace=metrics_namespace(os.environ), service=SERVICE)

# --- scrubbing -----------------------------------------------------------------------------------------

# Keys whose values never leave the process: passwords, hashes, tokens, keys, cookies, connection strings.
_SECRET_KEY_RE: Final = re.compile(
    r"pass(word)?|hash|secret|token|api[_-]?key|service[_-]?key|private[_-]?key|authorization|cookie|dsn"
    r"|database_url|credential|salt|jwt|session",
    re.IGNORECASE,
)
_URL_CREDENTIALS_RE: Final = re.compile(r"(\w+://[^:/@\s]+:)[^@\s]+@")
# Password hashes in modular crypt form, however truncated (Sentry cuts long strings before before_send):
# bcrypt $2a$/$2b$/$2x$/$2y$, argon2 ($argon2id$v=19$m=...), scrypt and Firebase scrypt ($scrypt$, $fbscrypt$,
# $7$), PBKDF2 and SHA-crypt. Their parameters hold commas (`m=65536,t=3,p=4`): only space, quotes and closing
# brackets end one.
_CRYPT_HASH_RE: Final = re.compile(
    r"\$(?:2[abxy]|argon2(?:id|i|d)|fbscrypt|scrypt|7|pbkdf2(?:-sha\d+)?|[56])\$[^\s\"'<>)\]}]*"
)
# Better-Auth's own scrypt hash: a 16-byte hex salt, a colon, the 64-byte hex key (also when cut short).
_SALT_KEY_HASH_RE: Final = re.compile(r"\b[0-9a-fA-F]{32}:[0-9a-fA-F]{16,}")
# JWTs anywhere (access tokens, GoTrue's service and anon keys): header.payload[.signature], base64url.
_JWT_RE: Final = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*)?")
# Tokens inside header-ish or query-ish text: `Bearer x`, `token=x`, `better-auth.session_token=x; ...`.
_BEARER_RE: Final = re.compile(r"(?i)(\bbearer\s+)[^\s,;\"']+")
# `name=value` anywhere; `name: value` only with the name quoted (JSON, a repr): `password: str` in the source
# lines of a stack trace is no secret, `{"password": "x"}` in a message is.
_ASSIGNED_SECRET_RE: Final = re.compile(
    r"(?i)(\b[\w.-]*(?:password|passwd|secret|token|api[_-]?key|apikey|session)[\w.-]*\s*=\s*[\"']?"
    r"|[\"'][\w.-]*(?:password|passwd|secret|token|api[_-]?key|apikey|session)[\w.-]*[\"']\s*[=:]\s*[\"']?)"
    r"[^\s&;,\"']+"
)
_EMAIL_RE: Final = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_REDACTED: Final = "[redacted]"
_MAX_DEPTH: Final = 20


def hashed_email(email: str) -> str:
    """A stable stand-in for an email: the same address (any case) always gives the same text."""
    digest = hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()
    return f"email-sha256:{digest[:12]}"


def scrub(value: Any, *, hash_emails: bool = False, depth: int = 0) -> Any:
    """A copy of value with secrets masked, at any depth of dicts, lists and tuples.

    By key name (passwords, password_hash, refresh/access/session tokens, keys, cookies, DSNs, URLs of
    databases); in any string: URL credentials, crypt-form password hashes (bcrypt, argon2, scrypt, Firebase
    scrypt, PBKDF2), Better-Auth's `salt:key` scrypt hashes, JWTs, bearer and `name=value` tokens. With
    `hash_emails`, every email address in a string becomes a stable sha256 prefix (`email-sha256:...`).
    """
    if depth > _MAX_DEPTH:
        return _REDACTED
    if isinstance(value, dict):
        return {
            k: (
                _REDACTED
                if isinstance(k, str) and _SECRET_KEY_RE.search(k)
                else scrub(v, hash_emails=hash_emails, depth=depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v, hash_emails=hash_emails, depth=depth + 1) for v in value]
    if isinstance(value, str):
        return _scrub_text(value, hash_emails=hash_emails)
    return value


def _scrub_text(text: str, *, hash_emails: bool) -> str:
    if not text:
        return text
    text = _URL_CREDENTIALS_RE.sub(r"\1***@", text)
    text = _CRYPT_HASH_RE.sub(_REDACTED, text)
    text = _SALT_KEY_HASH_RE.sub(_REDACTED, text)
    text = _JWT_RE.sub(_REDACTED, text)
    text = _BEARER_RE.sub(r"\1" + _REDACTED, text)
    text = _ASSIGNED_SECRET_RE.sub(r"\1" + _REDACTED, text)
    if hash_emails:
        text = _EMAIL_RE.sub(lambda match: hashed_email(match.group(0)), text)
    return text
