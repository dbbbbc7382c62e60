"""Backends: the two auth systems (Supabase Auth / GoTrue and Better-Auth) behind one interface and one
error vocabulary. Build each once per container (`from_settings`) and reuse it across invocations."""

from __future__ import annotations

from auth_migration.backends.base import (
    BETTER_AUTH,
    SUPABASE,
    AuthBackend,
    AuthResult,
    BackendUser,
    Session,
    SystemName,
)
from auth_migration.backends.better_auth import BetterAuthBackend
from auth_migration.backends.errors import (
    BackendError,
    BadRequest,
    EmailNotConfirmed,
    InputRefused,
    InvalidCredentials,
    Misconfigured,
    RateLimited,
    Timeout,
    Unavailable,
    Unsupported,
    UserExists,
    UserNotFound,
    WeakPassword,
)
from auth_migration.backends.supabase import SupabaseAuthBackend

__all__ = [
    "BETTER_AUTH",
    "SUPABASE",
    "AuthBackend",
    "AuthResult",
    "BackendError",
    "BackendUser",
    "BadRequest",
    "BetterAuthBackend",
    "EmailNotConfirmed",
    "InputRefused",
    "InvalidCredentials",
    "Misconfigured",
    "RateLimited",
    "Session",
    "SupabaseAuthBackend",
    "SystemName",
    "Timeout",
    "Unavailable",
    "Unsupported",
    "UserExists",
    "UserNotFound",
    "WeakPassword",
]
