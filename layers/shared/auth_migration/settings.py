"""Connection settings: one typed, frozen model built at cold start from environ, a .env file and SSM.

Secrets never appear in its repr/str or in the ConfigError raised for a bad value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, Protocol
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from auth_migration.exceptions import ConfigError
from auth_migration.flags import ParameterProvider, parse_bool

__all__ = [
    "DEFAULT_DATABASE_URL",
    "ENV_NAMES",
    "SSM_SECRET_NAMES",
    "Settings",
    "load_settings",
    "parse_dotenv",
    "redacted_url",
]

DEFAULT_DATABASE_URL: Final = "postgresql://postgres@127.0.0.1:5432/auth_migration"

# Settings field -> the environment / .env / SSM name it is read from.
ENV_NAMES: Final[Mapping[str, str]] = {
    "stage": "STAGE",
    "old_database_url": "OLD_DATABASE_URL",
    "new_database_url": "NEW_DATABASE_URL",
    "better_auth_database_url": "BETTER_AUTH_DATABASE_URL",
    "supabase_url": "SUPABASE_URL",
    "supabase_service_key": "SUPABASE_SERVICE_KEY",
    "better_auth_url": "BETTER_AUTH_URL",
    "sentry_dsn": "SENTRY_DSN",
    "sentry_traces_sample_rate": "SENTRY_TRACES_SAMPLE_RATE",
    "sentry_hash_emails": "SENTRY_HASH_EMAILS",
    "parameter_prefix": "PARAMETER_PREFIX",
    "migration_queue_url": "MIGRATION_QUEUE_URL",
    "reconcile_queue_url": "RECONCILE_QUEUE_URL",
    "max_receive_count": "MAX_RECEIVE_COUNT",
    "dry_run": "DRY_RUN",
    "auth_events_retention_days": "AUTH_EVENTS_RETENTION_DAYS",
    "flags_max_age_s": "FLAGS_MAX_AGE_S",
    "supabase_jwt_secret": "SUPABASE_JWT_SECRET",
    "supabase_jwt_issuer": "SUPABASE_JWT_ISSUER",
    "supabase_jwks_url": "SUPABASE_JWKS_URL",
    "better_auth_secret": "BETTER_AUTH_SECRET",
    "better_auth_cookie_prefix": "BETTER_AUTH_COOKIE_PREFIX",
    "better_auth_secure_cookies": "BETTER_AUTH_SECURE_COOKIES",
    "better_auth_cookie_domain": "BETTER_AUTH_COOKIE_DOMAIN",
    "better_auth_session_expires_s": "BETTER_AUTH_SESSION_EXPIRES_IN",
    "exchange_limit_per_ip": "EXCHANGE_LIMIT_PER_IP",
    "exchange_limit_per_user": "EXCHANGE_LIMIT_PER_USER",
}
# The secret-ish names that may live in SSM as SecureString `{PARAMETER_PREFIX}{NAME}`.
SSM_SECRET_NAMES: Final[tuple[str, ...]] = (
    "OLD_DATABASE_URL",
    "NEW_DATABASE_URL",
    "BETTER_AUTH_DATABASE_URL",
    "SUPABASE_SERVICE_KEY",
    "SENTRY_DSN",
    "SUPABASE_JWT_SECRET",
    "BETTER_AUTH_SECRET",
)
_DATABASE_FIELDS: Final = ("old_database_url", "new_database_url", "better_auth_database_url")
_FIELD_BY_ENV: Final = {env: name for name, env in ENV_NAMES.items()}


# --- redaction ---------------------------------------------------------------------------------------

_SCHEME_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)(.*)$", re.DOTALL)
# libpq key=value form and URI query strings both carry a password as password=...
_KV_PASSWORD_RE: Final = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)", re.IGNORECASE)


def redacted_url(url: str) -> str:
    """`url` with any password replaced by ``***``: ``user:pass@`` -> ``user:***@``, ``password=x``.

    Errs towards masking too much: with an unencoded '@' in a password, all up to the last '@' is
    treated as user info.
    """
    match = _SCHEME_RE.match(url)
    if match is None:
        return _KV_PASSWORD_RE.sub(r"\1***", url)
    scheme, rest = match.groups()
    head, sep, tail = rest.rpartition("@")
    if sep:
        user, colon, _password = head.partition(":")
        head = f"{user}:***" if colon else user
        rest = f"{head}@{tail}"
    return scheme + _KV_PASSWORD_RE.sub(r"\1***", rest)


# --- the model ---------------------------------------------------------------------------------------

_LIBPQ_KV_RE: Final = re.compile(r"^\s*[A-Za-z_]+\s*=")


def _check_database_url(value: str) -> str:
    text = value.strip()
    if text.startswith(("postgresql://", "postgres://")) or _LIBPQ_KV_RE.match(text):
        return text
    raise ValueError("must be a postgresql:// or postgres:// URL or a libpq key=value string")


def _check_http_url(value: str) -> str:
    text = value.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return text


class Settings(BaseModel):
    """Where the databases and services are, validated once; passed to domain code as an argument."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    stage: Literal["dev", "staging", "prod"] = "dev"
    old_database_url: str = DEFAULT_DATABASE_URL
    new_database_url: str = DEFAULT_DATABASE_URL
    # Defaults to new_database_url: by default Better-Auth's tables live in the target database.
    better_auth_database_url: str = DEFAULT_DATABASE_URL
    supabase_url: str = "http://127.0.0.1:9999"
    supabase_service_key: SecretStr | None = None
    better_auth_url: str = "http://127.0.0.1:3000"
    sentry_dsn: SecretStr | None = None
    #: Share of invocations whose transactions (spans, latencies) go to Sentry; errors are always sent.
    sentry_traces_sample_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    #: Email addresses in Sentry events become a stable sha256 prefix (`email-sha256:...`); off: sent as they are.
    sentry_hash_emails: bool = True
    parameter_prefix: str | None = None
    migration_queue_url: str | None = None
    reconcile_queue_url: str | None = None
    max_receive_count: int = Field(default=5, ge=1, le=1000)  # SQS's own bounds for maxReceiveCount
    dry_run: bool = False
    #: AutoRollback deletes auth_events older than this, a bounded chunk per run.
    auth_events_retention_days: int = Field(default=30, ge=1, le=3650)
    #: How long a container reuses its flag read: the bound on how late an emergency rollback is
    #: obeyed. Powertools v3's own default is 300 s, five minutes of traffic on a rolled-back system.
    flags_max_age_s: int = Field(default=10, ge=0, le=300)
    # --- session exchange (sessions/): Supabase tokens in, Better-Auth sessions out ---
    #: The Supabase project's JWT secret (HS256 access tokens); without it only JWKS-signed tokens verify.
    supabase_jwt_secret: SecretStr | None = None
    #: The `iss` of the project's access tokens; default `{SUPABASE_URL}/auth/v1`, what GoTrue writes.
    supabase_jwt_issuer: str | None = None
    #: The project's public signing keys (ES256/RS256 tokens); default `{SUPABASE_URL}/auth/v1/.well-known/jwks.json`.
    supabase_jwks_url: str | None = None
    #: Better-Auth's own BETTER_AUTH_SECRET: its session cookie is signed with it, so ours must be too.
    better_auth_secret: SecretStr | None = None
    #: Better-Auth's `advanced.cookiePrefix` (its default "better-auth"): the cookie is `<prefix>.session_token`.
    better_auth_cookie_prefix: str = Field(default="better-auth", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: Better-Auth's `advanced.useSecureCookies`; unset: what Better-Auth decides, https BETTER_AUTH_URL -> secure.
    better_auth_secure_cookies: bool | None = None
    #: Better-Auth's cross-subdomain cookie domain, when the app sets one.
    better_auth_cookie_domain: str | None = Field(default=None, pattern=r"^\.?[A-Za-z0-9.-]{1,253}$")
    #: Better-Auth's `session.expiresIn` in seconds (its default 7 days; a cookie may not outlive 400 days).
    better_auth_session_expires_s: int = Field(default=7 * 24 * 3600, ge=60, le=400 * 24 * 3600)
    #: Session exchanges allowed per client IP and per user per minute (shared by every container).
    exchange_limit_per_ip: int = Field(default=30, ge=1, le=100_000)
    exchange_limit_per_user: int = Field(default=10, ge=1, le=10_000)

    @model_validator(mode="before")
    @classmethod
    def _better_auth_defaults_to_new(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("better_auth_database_url") is None:
            data = {**data, "better_auth_database_url": data.get("new_database_url", DEFAULT_DATABASE_URL)}
        return data

    @field_validator("stage", mode="before")
    @classmethod
    def _lower_stage(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(*_DATABASE_FIELDS)
    @classmethod
    def _database_url(cls, value: str) -> str:
        return _check_database_url(value)

    @field_validator("supabase_url", "better_auth_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("supabase_jwt_issuer", "supabase_jwks_url")
    @classmethod
    def _optional_http_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value)

    @field_validator("parameter_prefix")
    @classmethod
    def _ssm_prefix(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("/"):
            raise ValueError("must be an SSM path starting with '/'")
        # Names are appended directly ({PARAMETER_PREFIX}{NAME}), so the prefix ends in '/'.
        return value if value.endswith("/") else value + "/"

    @field_validator("dry_run", "sentry_hash_emails", "better_auth_secure_cookies", mode="before")
    @classmethod
    def _bool_words(cls, value: Any) -> Any:
        # Same words as the flags (yes/no/on/off too), so DRY_RUN means the same in env and SSM.
        if isinstance(value, str):
            parsed = parse_bool(value)
            if parsed is None:
                raise ValueError("must be true/false/1/0/yes/no/on/off")
            return parsed
        return value

    @property
    def flag_prefix(self) -> str:
        """Where the rollout flags live: PARAMETER_PREFIX, else the template's /auth-migration/<stage>/."""
        return self.parameter_prefix or f"/auth-migration/{self.stage}/"

    @property
    def jwt_issuer(self) -> str:
        """The `iss` Supabase access tokens must carry."""
        return self.supabase_jwt_issuer or f"{self.supabase_url}/auth/v1"

    @property
    def jwks_url(self) -> str:
        return self.supabase_jwks_url or f"{self.supabase_url}/auth/v1/.well-known/jwks.json"

    @property
    def secure_cookies(self) -> bool:
        """Whether the session cookie is `__Secure-` prefixed and Secure, as Better-Auth decides it."""
        if self.better_auth_secure_cookies is not None:
            return self.better_auth_secure_cookies
        return self.better_auth_url.startswith("https://")

    @property
    def shares_state_with_target(self) -> bool:
        """Better-Auth's tables live in the target database, so one transaction can cover both."""
        return _database_identity(self.new_database_url) == _database_identity(self.better_auth_database_url)

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # Drives both repr() and str(): database URLs carry passwords; SecretStr masks itself.
        for name, value in super().__repr_args__():
            yield name, redacted_url(value) if name in _DATABASE_FIELDS and isinstance(value, str) else value


def _database_identity(url: str) -> tuple[str, str, str]:
    """(host, port, dbname) of a libpq URL or key=value string; user and password do not matter."""
    params: dict[str, str] = {}
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        params["host"] = parts.hostname or ""
        try:
            params["port"] = str(parts.port or "")
        except ValueError:
            params["port"] = ""
        params["dbname"] = parts.path.lstrip("/")
        params["user"] = parts.username or ""
        # Query parameters override the authority (unix sockets: ?host=/run/postgresql).
        params.update((k, v) for k, v in parse_qsl(parts.query) if k in ("host", "port", "dbname"))
    else:
        for token in url.split():
            key, _, value = token.partition("=")
            params[key.strip().lower()] = value.strip().strip("'")
    host = (params.get("host") or "localhost").lower()
    port = params.get("port") or "5432"
    return host, port, params.get("dbname") or params.get("user", "")


# --- .env --------------------------------------------------------------------------------------------

_DOTENV_LINE_RE: Final = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", re.DOTALL)
_DOUBLE_QUOTED_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def parse_dotenv(text: str, *, source: str = ".env") -> dict[str, str]:
    """KEY=VALUE lines: blank lines and # comments skipped, optional `export`, quoted values.

    Double quotes understand \\n \\t \\" \\\\; single quotes are literal; an unquoted value ends at
    `` #``. A malformed line raises ConfigError naming the line number, never its content.
    """
    # Hand-written on purpose: python-dotenv is not in the Lambda layer, and only the local run and
    # tests use a .env file, so a dependency for ~30 lines is not worth its weight.
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _DOTENV_LINE_RE.match(stripped)
        if match is None:
            raise ConfigError(f"{source}:{number}: expected KEY=VALUE")
        key, raw = match.groups()
        try:
            values[key] = _dotenv_value(raw)
        except ValueError as why:
            raise ConfigError(f"{source}:{number}: {key}: {why}") from None
    return values


def _dotenv_value(raw: str) -> str:
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        out: list[str] = []
        i = 1
        while i < len(raw):
            char = raw[i]
            if char == quote:
                trailing = raw[i + 1 :].strip()
                if trailing and not trailing.startswith("#"):
                    raise ValueError("unexpected text after the closing quote")
                return "".join(out)
            if char == "\\" and quote == '"' and i + 1 < len(raw):
                nxt = raw[i + 1]
                out.append(_DOUBLE_QUOTED_ESCAPES.get(nxt, "\\" + nxt))
                i += 2
                continue
            out.append(char)
            i += 1
        raise ValueError("unterminated quoted value")
    comment = re.search(r"\s#", raw)
    return (raw[: comment.start()] if comment else raw).strip()


# --- loading -----------------------------------------------------------------------------------------


class SecretProvider(ParameterProvider, Protocol):
    """What settings read from SSM: the prefix (get_multiple) and one named parameter (get)."""

    def get(self, name: str, max_age: int | None = None, *, decrypt: bool | None = None) -> Any: ...


def load_settings(
    environ: Mapping[str, str],
    *,
    dotenv_path: Path | None = None,
    ssm_provider: SecretProvider | None = None,
) -> Settings:
    """Build Settings: environ > .env file > SSM SecureString `{PARAMETER_PREFIX}{NAME}` > defaults.

    An empty value counts as unset (CloudFormation cannot omit an environment variable
    conditionally). A missing .env file is skipped. SSM is asked (once, decrypted) only when
    PARAMETER_PREFIX is set and a secret-ish name is still missing.

    Raises
    ------
    ConfigError
        A value is invalid (names the variable, never echoes a value) or SSM cannot be read.
    """
    layers: list[Mapping[str, str]] = [environ]
    if dotenv_path is not None and dotenv_path.is_file():
        layers.append(parse_dotenv(dotenv_path.read_text(encoding="utf-8"), source=str(dotenv_path)))

    def lookup(name: str) -> str | None:
        for layer in layers:
            value = layer.get(name)
            if value:
                return value
        return None

    values: dict[str, str] = {}
    for env_name in ENV_NAMES.values():
        value = lookup(env_name)
        if value is not None:
            values[env_name] = value

    prefix = values.get("PARAMETER_PREFIX")
    if prefix and any(name not in values for name in SSM_SECRET_NAMES):
        for name, value in _read_ssm_secrets(prefix, ssm_provider).items():
            values.setdefault(name, value)
    # The template's SentryDsnParameterName: a DSN kept outside the stage prefix (shared by stacks).
    dsn_parameter = lookup("SENTRY_DSN_PARAMETER")
    if dsn_parameter and "SENTRY_DSN" not in values:
        dsn = _read_ssm_parameter(dsn_parameter, ssm_provider)
        if dsn:
            values["SENTRY_DSN"] = dsn

    try:
        return Settings.model_validate({_FIELD_BY_ENV[name]: value for name, value in values.items()})
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {_describe(exc)}") from None


def _read_ssm_secrets(prefix: str, provider: ParameterProvider | None) -> dict[str, str]:
    if not prefix.startswith("/"):
        raise ConfigError("PARAMETER_PREFIX: must be an SSM path starting with '/'")
    # Lazy: boto3 is a large part of a cold start and most local runs never reach SSM.
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
    from botocore.exceptions import BotoCoreError

    from auth_migration.ssm import ssm_provider

    path = prefix.rstrip("/") or "/"
    try:
        fetched = (provider or ssm_provider()).get_multiple(path, decrypt=True)
    except (GetParameterError, BotoCoreError) as exc:
        raise ConfigError(f"PARAMETER_PREFIX: cannot read SSM parameters under {path}: {exc}") from None
    return {str(k): str(v) for k, v in fetched.items() if k in SSM_SECRET_NAMES and v}


def _read_ssm_parameter(name: str, provider: SecretProvider | None) -> str | None:
    if not name.startswith("/"):
        raise ConfigError("SENTRY_DSN_PARAMETER: must be a full SSM parameter name starting with '/'")
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
    from botocore.exceptions import BotoCoreError

    from auth_migration.ssm import ssm_provider

    try:
        value = (provider or ssm_provider()).get(name, decrypt=True)
    except (GetParameterError, BotoCoreError) as exc:
        raise ConfigError(f"SENTRY_DSN_PARAMETER: cannot read {name}: {exc}") from None
    return str(value) if value else None


def _describe(exc: ValidationError) -> str:
    # Built from locations and our own messages only: pydantic's default text would echo the input.
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        name = ENV_NAMES.get(field, field or "settings")
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{name}: {message}")
    return "; ".join(problems)
