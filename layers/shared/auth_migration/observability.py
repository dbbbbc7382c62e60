"""Logger, Tracer and Metrics, created once and imported everywhere; Sentry with secret scrubbing."""

from __future__ import annotations

import logging
import re
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="auth-migration")
# httpcore's DEBUG trace logs reply headers, Better-Auth's session cookie among them; httpx's logs URLs.
# Neither may run at DEBUG, whatever the root logger's level.
logging.getLogger("httpcore").setLevel(logging.INFO)
logging.getLogger("httpx").setLevel(logging.WARNING)
tracer = Tracer(service="auth-migration")
metrics = Metrics(namespace="AuthMigration", service="auth-migration")

# Keys whose values never leave the process: passwords, hashes, tokens, keys, connection strings.
_SECRET_KEY_RE = re.compile(
    r"pass(word)?|hash|secret|token|api[_-]?key|service[_-]?key|authorization|cookie|dsn|database_url",
    re.IGNORECASE,
)
_URL_CREDENTIALS_RE = re.compile(r"(\w+://[^:/@\s]+:)[^@\s]+@")
_BCRYPT_RE = re.compile(r"\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}")
_REDACTED = "[redacted]"


def scrub(value: Any, *, depth: int = 0) -> Any:
    """A copy of value with secrets masked: by key name, inside URLs, and bcrypt hashes anywhere."""
    if depth > 20:
        return _REDACTED
    if isinstance(value, dict):
        return {
            k: (_REDACTED if isinstance(k, str) and _SECRET_KEY_RE.search(k) else scrub(v, depth=depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v, depth=depth + 1) for v in value]
    if isinstance(value, str):
        return _BCRYPT_RE.sub(_REDACTED, _URL_CREDENTIALS_RE.sub(r"\1***@", value))
    return value


def init_sentry(dsn: str | None, *, stage: str) -> bool:
    """Start Sentry when a DSN is configured; events pass through `scrub` before they leave."""
    if not dsn:
        return False
    import sentry_sdk  # lazily: only functions with a DSN pay for it

    def before_send(event: Any, _hint: Any) -> Any:
        return scrub(event)

    sentry_sdk.init(dsn=dsn, environment=stage, send_default_pii=False, before_send=before_send, traces_sample_rate=0)
    return True
