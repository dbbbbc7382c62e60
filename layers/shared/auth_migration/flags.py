"""Rollout flags: one immutable, typed snapshot per request, parsed leniently from SSM Parameter Store.

A bad value in SSM never fails an auth request: it falls back to that flag's safe default with a warning.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Final, Protocol

from auth_migration.exceptions import ConfigError, InvalidRequest

__all__ = [
    "FLAG_NAMES",
    "CanarySelection",
    "FlagSource",
    "FlagState",
    "Flags",
    "MigrationMode",
    "ParameterProvider",
    "SsmFlagSource",
    "StaticFlagSource",
    "canonical_value",
    "describe_flags",
    "parse_bool",
    "parse_flags",
]

_log = logging.getLogger(__name__)


class MigrationMode(StrEnum):
    SUPABASE_ONLY = "supabase_only"
    DUAL_WRITE = "dual_write"
    BETTER_AUTH_ONLY = "better_auth_only"


class CanarySelection(StrEnum):
    RANDOM = "random"
    WHITELIST = "whitelist"
    EMAIL_DOMAIN = "email_domain"
    USER_ID_HASH = "user_id_hash"


FALLBACK_TIMEOUT_MIN_MS: Final = 50
FALLBACK_TIMEOUT_MAX_MS: Final = 60_000
# SSM Parameter Store rejects empty values, so operators write this to mean "no entries".
EMPTY_LIST_MARKER: Final = "-"


@dataclass(frozen=True, slots=True)
class Flags:
    """Everything a request needs to decide its route; built once per request, never mutated."""

    migration_mode: MigrationMode = MigrationMode.SUPABASE_ONLY
    use_better_auth: bool = False
    migration_validation: bool = True
    fallback_timeout_ms: int = 3000
    canary_enabled: bool = False
    canary_percentage: float = 0.0
    canary_user_selection: CanarySelection = CanarySelection.USER_ID_HASH
    canary_whitelist: frozenset[str] = field(default_factory=frozenset)
    canary_email_domains: frozenset[str] = field(default_factory=frozenset)
    rollback_max_error_rate: float = 0.05
    rollback_min_success_rate: float = 0.90
    rollback_min_sample: int = 100
    #: The window AutoRollback judges, in minutes.
    rollback_window_minutes: int = 5
    dry_run: bool = False
    #: POST /auth/session/exchange turns Supabase sessions into Better-Auth ones; off after the cutover window.
    session_exchange: bool = True
    #: A Better-Auth sign-in of a user still holding a Supabase bcrypt hash re-hashes the password with
    #: Better-Auth's scrypt (phases 3-4 turn it on), so the bcrypt-aware verify can be retired one day.
    hash_upgrade: bool = False

    def __post_init__(self) -> None:
        # Direct construction (tests, the admin API) gets the same guarantees parse_flags gives.
        problems = [
            name
            for name, ok in (
                ("migration_mode", isinstance(self.migration_mode, MigrationMode)),
                ("canary_user_selection", isinstance(self.canary_user_selection, CanarySelection)),
                (
                    "fallback_timeout_ms",
                    FALLBACK_TIMEOUT_MIN_MS <= self.fallback_timeout_ms <= FALLBACK_TIMEOUT_MAX_MS,
                ),
                ("canary_percentage", _finite(self.canary_percentage) and 0 <= self.canary_percentage <= 100),
                ("rollback_max_error_rate", _is_rate(self.rollback_max_error_rate)),
                ("rollback_min_success_rate", _is_rate(self.rollback_min_success_rate)),
                ("rollback_min_sample", self.rollback_min_sample >= 1),
                ("rollback_window_minutes", 1 <= self.rollback_window_minutes <= 60),
                ("canary_whitelist", isinstance(self.canary_whitelist, frozenset)),
                ("canary_email_domains", isinstance(self.canary_email_domains, frozenset)),
            )
            if not ok
        ]
        if problems:
            raise ConfigError(f"invalid flag values: {', '.join(problems)}")

    @classmethod
    def defaults(cls) -> Flags:
        """The safe state: Supabase only, no canary, validation on."""
        return cls()

    def as_parameters(self) -> dict[str, str]:
        """The SSM string form of every flag; `parse_flags(f.as_parameters())` gives back `f`."""
        out: dict[str, str] = {}
        for spec in _SPECS:
            value = getattr(self, spec.attr)
            out[spec.name] = spec.render(value)
        return out


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _is_rate(value: float) -> bool:
    return _finite(value) and 0.0 <= value <= 1.0


# --- lenient parsing -------------------------------------------------------------------------------

_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})
_INT_RE: Final = re.compile(r"[+-]?\d+")
# Spelled out rather than float(): float() also accepts "nan", "inf" and "1_0", none of which an
# operator means.
_FLOAT_RE: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def parse_bool(value: str) -> bool | None:
    """true/false/1/0/yes/no/on/off in any case and surrounding space; None for anything else."""
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    return None


class _Invalid(ValueError):
    """A raw flag value that cannot be used; the message says why (the caller names the flag)."""


def _show(value: str) -> str:
    # Warnings are logged: keep a garbage value from flooding a log line.
    return repr(value if len(value) <= 40 else value[:40] + "...")


def _to_bool(value: str) -> bool:
    parsed = parse_bool(value)
    if parsed is None:
        raise _Invalid("is not a boolean (true/false/1/0/yes/no/on/off)")
    return parsed


def _to_float(value: str) -> float:
    text = value.strip()
    if not _FLOAT_RE.fullmatch(text):
        raise _Invalid("is not a number")
    return float(text)


def _to_percentage(value: str) -> float:
    text = value.strip().removesuffix("%")
    return _to_float(text)


def _to_rate(value: str) -> float:
    # Operators write both "0.05" and "5%"; a bare number above 1 is ambiguous, so it is refused.
    text = value.strip()
    rate = _to_float(text[:-1]) / 100 if text.endswith("%") else _to_float(text)
    if not 0.0 <= rate <= 1.0:
        raise _Invalid("is not a rate between 0 and 1 (or 0% and 100%)")
    return rate


def _to_int(value: str) -> int:
    text = value.strip()
    if not _INT_RE.fullmatch(text):
        raise _Invalid("is not a whole number")
    return int(text)


def _to_timeout(value: str) -> int:
    ms = _to_int(value)
    if not FALLBACK_TIMEOUT_MIN_MS <= ms <= FALLBACK_TIMEOUT_MAX_MS:
        raise _Invalid(f"is outside {FALLBACK_TIMEOUT_MIN_MS}..{FALLBACK_TIMEOUT_MAX_MS} ms")
    return ms


def _to_min_sample(value: str) -> int:
    sample = _to_int(value)
    if sample < 1:
        raise _Invalid("must be at least 1")
    return sample


def _to_window(value: str) -> int:
    minutes = _to_int(value)
    if not 1 <= minutes <= 60:
        raise _Invalid("is outside 1..60 minutes")
    return minutes


def _to_mode(value: str) -> MigrationMode:
    try:
        return MigrationMode(value.strip().lower())
    except ValueError:
        raise _Invalid(f"is not one of {', '.join(MigrationMode)}") from None


def _to_selection(value: str) -> CanarySelection:
    try:
        return CanarySelection(value.strip().lower())
    except ValueError:
        raise _Invalid(f"is not one of {', '.join(CanarySelection)}") from None


def _split_list(value: str) -> list[str]:
    if value.strip() in ("", EMPTY_LIST_MARKER):
        return []
    return [item.strip().lower() for item in value.split(",") if item.strip() not in ("", EMPTY_LIST_MARKER)]


def _to_whitelist(value: str) -> frozenset[str]:
    # Entries are user ids (UUIDs) or emails; both compare case-insensitively, so store them lowercased.
    return frozenset(_split_list(value))


_DOMAIN_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")


def _to_domains(value: str) -> frozenset[str]:
    domains = [item.removeprefix("@") for item in _split_list(value)]
    bad = [d for d in domains if not _DOMAIN_RE.fullmatch(d)]
    if bad:
        raise _Invalid(f"holds {len(bad)} entr{'y' if len(bad) == 1 else 'ies'} that are not domain names")
    return frozenset(domains)


def _render_bool(value: object) -> str:
    return "true" if value else "false"


def _render_list(value: object) -> str:
    assert isinstance(value, frozenset)
    return ",".join(sorted(value)) or EMPTY_LIST_MARKER


def _render_rate(value: object) -> str:
    assert isinstance(value, int | float)
    # repr() of a float reads back to the same float, so as_parameters() round-trips exactly.
    return repr(float(value))


@dataclass(frozen=True, slots=True)
class _Spec:
    name: str
    attr: str
    parse: Callable[[str], object]
    render: Callable[[object], str] = str


_SPECS: Final[tuple[_Spec, ...]] = (
    _Spec("MIGRATION_MODE", "migration_mode", _to_mode),
    _Spec("USE_BETTER_AUTH", "use_better_auth", _to_bool, _render_bool),
    _Spec("MIGRATION_VALIDATION", "migration_validation", _to_bool, _render_bool),
    _Spec("MIGRATION_FALLBACK_TIMEOUT", "fallback_timeout_ms", _to_timeout),
    _Spec("CANARY_ENABLED", "canary_enabled", _to_bool, _render_bool),
    _Spec("CANARY_PERCENTAGE", "canary_percentage", _to_percentage, _render_rate),
    _Spec("CANARY_USER_SELECTION", "canary_user_selection", _to_selection),
    _Spec("CANARY_WHITELIST", "canary_whitelist", _to_whitelist, _render_list),
    _Spec("CANARY_EMAIL_DOMAINS", "canary_email_domains", _to_domains, _render_list),
    _Spec("ROLLBACK_MAX_ERROR_RATE", "rollback_max_error_rate", _to_rate, _render_rate),
    _Spec("ROLLBACK_MIN_SUCCESS_RATE", "rollback_min_success_rate", _to_rate, _render_rate),
    _Spec("ROLLBACK_MIN_SAMPLE", "rollback_min_sample", _to_min_sample),
    _Spec("ROLLBACK_WINDOW_MINUTES", "rollback_window_minutes", _to_window),
    _Spec("DRY_RUN", "dry_run", _to_bool, _render_bool),
    _Spec("SESSION_EXCHANGE", "session_exchange", _to_bool, _render_bool),
    _Spec("HASH_UPGRADE", "hash_upgrade", _to_bool, _render_bool),
)
FLAG_NAMES: Final[tuple[str, ...]] = tuple(spec.name for spec in _SPECS)
assert {spec.attr for spec in _SPECS} == {f.name for f in fields(Flags)}, "every Flags field has an SSM name"


_SPEC_BY_NAME: Final[dict[str, _Spec]] = {spec.name: spec for spec in _SPECS}


def canonical_value(name: str, value: str) -> tuple[str, str]:
    """(NAME, value as it is stored) for an operator's change, checked strictly: the lenient parsing
    of parse_flags is for reading; a change that would be read as a default is refused instead.

    Raises:
        InvalidRequest: an unknown flag, or a value the flag cannot take (the message says why).
    """
    spec = _SPEC_BY_NAME.get(name.strip().upper())
    if spec is None:
        raise InvalidRequest(f"unknown flag {name!r}; known: {', '.join(FLAG_NAMES)}")
    try:
        parsed = spec.parse(value)
    except _Invalid as why:
        raise InvalidRequest(f"{spec.name}={_show(value)} {why}") from None
    if spec.name == "CANARY_PERCENTAGE" and isinstance(parsed, float) and not 0.0 <= parsed <= 100.0:
        raise InvalidRequest(f"CANARY_PERCENTAGE={_show(value)} is outside 0..100")
    if spec.name == "CANARY_PERCENTAGE" and isinstance(parsed, float):
        return spec.name, f"{parsed:g}"
    return spec.name, spec.render(parsed)


@dataclass(frozen=True, slots=True)
class FlagState:
    """One flag as `flags show` reports it: what SSM holds, what a function uses, and why they differ."""

    name: str
    stored: str | None
    in_force: str
    problem: str | None


def describe_flags(raw: Mapping[str, str]) -> list[FlagState]:
    """Every flag in FLAG_NAMES order: the stored string, the value in force (its default when the
    stored one is missing or bad), and the reason."""
    flags, warnings = parse_flags(raw)
    in_force = flags.as_parameters()
    problems = {w.split("=", 1)[0].split(" ", 1)[0]: w for w in warnings}
    return [FlagState(spec.name, raw.get(spec.name), in_force[spec.name], problems.get(spec.name)) for spec in _SPECS]


def parse_flags(raw: Mapping[str, str]) -> tuple[Flags, list[str]]:
    """Build Flags from SSM names -> strings; never raises on content.

    Returns the flags and one warning per missing or invalid value (that flag took its safe default).
    Names that are not flags (secrets can share the prefix) are ignored.
    """
    defaults = Flags.defaults()
    values: dict[str, object] = {}
    warnings: list[str] = []
    for spec in _SPECS:
        default = getattr(defaults, spec.attr)
        shown_default = spec.render(default)
        value = raw.get(spec.name)
        if value is None:
            warnings.append(f"{spec.name} is not set; using default {shown_default}")
            continue
        try:
            values[spec.attr] = spec.parse(value)
        except _Invalid as why:
            warnings.append(f"{spec.name}={_show(value)} {why}; using default {shown_default}")

    pct = values.get("canary_percentage")
    if isinstance(pct, float) and not 0.0 <= pct <= 100.0:
        # The default, not the nearest bound: clamping a typo such as 250 would put everyone in the canary.
        shown = _SPEC_BY_NAME["CANARY_PERCENTAGE"].render(defaults.canary_percentage)
        warnings.append(f"CANARY_PERCENTAGE={pct:g} is outside 0..100; using default {shown}")
        del values["canary_percentage"]

    flags = Flags(**values)  # type: ignore[arg-type]
    warnings.extend(_inconsistencies(flags))
    return flags, warnings


def _inconsistencies(flags: Flags) -> list[str]:
    # Legal but almost certainly not what the operator meant: say so, change nothing.
    notes: list[str] = []
    if flags.canary_enabled:
        if flags.canary_user_selection is CanarySelection.WHITELIST and not flags.canary_whitelist:
            notes.append("CANARY_USER_SELECTION=whitelist but CANARY_WHITELIST is empty: no user is in the canary")
        if flags.canary_user_selection is CanarySelection.EMAIL_DOMAIN and not flags.canary_email_domains:
            notes.append(
                "CANARY_USER_SELECTION=email_domain but CANARY_EMAIL_DOMAINS is empty: no user is in the canary"
            )
    return notes


# --- sources ----------------------------------------------------------------------------------------


class ParameterProvider(Protocol):
    """The part of Powertools' SSMProvider we use; tests pass an in-memory one.

    Failures surface as Powertools' GetParameterError, as SSMProvider raises them.
    """

    def get_multiple(
        self, path: str, max_age: int | None = None, *, decrypt: bool | None = None
    ) -> Mapping[str, Any]: ...


class FlagSource(Protocol):
    """Where a request gets its flags from."""

    def snapshot(self) -> Flags: ...


class StaticFlagSource:
    """Always the same flags: unit tests and the local run."""

    def __init__(self, flags: Flags | None = None) -> None:
        self._flags = flags if flags is not None else Flags.defaults()

    def snapshot(self) -> Flags:
        return self._flags


class SsmFlagSource:
    """Flags under an SSM path, read through Powertools Parameters (cached for `max_age_s`).

    Parameters
    ----------
    prefix:
        The SSM path holding the flags, e.g. ``/auth-migration/prod/``.
    max_age_s:
        How long a read is reused; a flag change reaches every warm container within this time.
    provider:
        A Powertools SSMProvider (tests point one at moto, or pass an in-memory fake); by default one is
        created lazily over the container's shared SSM client (auth_migration.ssm).
    on_warning:
        Receives every warning (invalid values, SSM outages); defaults to the module logger.
    """

    def __init__(
        self,
        prefix: str,
        *,
        max_age_s: int = 10,
        provider: ParameterProvider | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        if not prefix.startswith("/"):
            raise ConfigError("the flag parameter prefix must be an SSM path starting with '/'")
        if max_age_s < 0:
            raise ConfigError("the flag cache max_age_s must not be negative")
        # GetParametersByPath takes the path without a trailing slash ("/" alone is the root).
        self._path = prefix.rstrip("/") or "/"
        self._max_age_s = max_age_s
        self._provider = provider
        self._warn = on_warning if on_warning is not None else _log.warning
        self._last_raw: dict[str, str] | None = None
        self._last_good: Flags | None = None

    @property
    def path(self) -> str:
        return self._path

    @property
    def max_age_s(self) -> int:
        return self._max_age_s

    def _get_provider(self) -> ParameterProvider:
        if self._provider is None:
            # Imported here: boto3 is a large share of a cold start and the static source needs none of it. The
            # client is the one settings read the secrets with at cold start (auth_migration.ssm): the first
            # request does not build a second (115-165 ms here).
            from auth_migration.ssm import ssm_provider

            self._provider = ssm_provider()
        return self._provider

    def snapshot(self) -> Flags:
        """The current flags; the last good ones if SSM fails.

        Raises
        ------
        ConfigError
            SSM could not be read and no earlier snapshot exists.
        """
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
        from botocore.exceptions import BotoCoreError

        try:
            fetched = self._get_provider().get_multiple(self._path, max_age=self._max_age_s, decrypt=True)
        # GetParameterError wraps every failure of the call; BotoCoreError comes from building the
        # default client (no region, no credentials configuration).
        except (GetParameterError, BotoCoreError) as exc:
            if self._last_good is None:
                raise ConfigError(f"cannot read flags under {self._path} and none were read before") from exc
            self._warn(f"cannot read flags under {self._path} ({type(exc).__name__}); using the last good snapshot")
            return self._last_good

        raw = {str(name): str(value) for name, value in fetched.items()}
        if raw == self._last_raw and self._last_good is not None:
            # A cache hit: same content, so the same Flags, and its warnings were already reported.
            return self._last_good
        flags, warnings = parse_flags(raw)
        for warning in warnings:
            self._warn(f"flags under {self._path}: {warning}")
        self._last_raw = raw
        self._last_good = flags
        return flags
