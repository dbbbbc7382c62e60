"""Flags: lenient parsing of the SSM strings into one typed snapshot, and the flag sources."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from hypothesis import given
from hypothesis import strategies as st

from auth_migration.exceptions import ConfigError
from auth_migration.flags import (
    FLAG_NAMES,
    CanarySelection,
    Flags,
    MigrationMode,
    SsmFlagSource,
    StaticFlagSource,
    parse_flags,
)


def complete_raw(**overrides: str) -> dict[str, str]:
    """Every flag set to a valid, non-default value; override single entries by name."""
    raw = {
        "MIGRATION_MODE": "dual_write",
        "USE_BETTER_AUTH": "true",
        "MIGRATION_VALIDATION": "false",
        "MIGRATION_FALLBACK_TIMEOUT": "5000",
        "CANARY_ENABLED": "true",
        "CANARY_PERCENTAGE": "12.5",
        "CANARY_USER_SELECTION": "random",
        "CANARY_WHITELIST": "admin@company.com",
        "CANARY_EMAIL_DOMAINS": "company.com",
        "ROLLBACK_MAX_ERROR_RATE": "0.1",
        "ROLLBACK_MIN_SUCCESS_RATE": "0.8",
        "ROLLBACK_MIN_SAMPLE": "250",
        "ROLLBACK_WINDOW_MINUTES": "10",
        "DRY_RUN": "yes",
        "SESSION_EXCHANGE": "off",
        "HASH_UPGRADE": "on",
    }
    raw.update(overrides)
    return raw


# --- defaults and a complete mapping ---------------------------------------------------------------


def test_defaults_are_the_safe_state() -> None:
    flags = Flags.defaults()

    assert flags.migration_mode is MigrationMode.SUPABASE_ONLY
    assert flags.use_better_auth is False
    assert flags.migration_validation is True
    assert flags.fallback_timeout_ms == 3000
    assert flags.canary_enabled is False
    assert flags.canary_percentage == 0.0
    assert flags.canary_user_selection is CanarySelection.USER_ID_HASH
    assert flags.canary_whitelist == frozenset()
    assert flags.canary_email_domains == frozenset()
    assert flags.rollback_max_error_rate == 0.05
    assert flags.rollback_min_success_rate == 0.90
    assert flags.rollback_min_sample == 100
    assert flags.dry_run is False
    assert flags.session_exchange is True


def test_empty_mapping_gives_the_defaults_and_one_warning_per_flag() -> None:
    flags, warnings = parse_flags({})

    assert flags == Flags.defaults()
    assert len(warnings) == len(FLAG_NAMES)
    for name, warning in zip(FLAG_NAMES, warnings, strict=True):
        assert warning.startswith(f"{name} is not set")


def test_complete_valid_mapping_parses_without_warnings() -> None:
    flags, warnings = parse_flags(complete_raw())

    assert warnings == []
    assert flags == Flags(
        migration_mode=MigrationMode.DUAL_WRITE,
        use_better_auth=True,
        migration_validation=False,
        fallback_timeout_ms=5000,
        canary_enabled=True,
        canary_percentage=12.5,
        canary_user_selection=CanarySelection.RANDOM,
        canary_whitelist=frozenset({"admin@company.com"}),
        canary_email_domains=frozenset({"company.com"}),
        rollback_max_error_rate=0.1,
        rollback_min_success_rate=0.8,
        rollback_min_sample=250,
        rollback_window_minutes=10,
        dry_run=True,
        session_exchange=False,
        hash_upgrade=True,
    )


def test_names_that_are_not_flags_are_ignored() -> None:
    # Secrets may share the prefix; they are neither parsed nor mentioned.
    _, warnings = parse_flags(complete_raw(NEW_DATABASE_URL="postgresql://u:hunter2@db/x"))

    assert warnings == []


def test_enum_values_are_case_and_space_insensitive() -> None:
    flags, warnings = parse_flags(complete_raw(MIGRATION_MODE="  Better_Auth_Only ", CANARY_USER_SELECTION="WHITELIST"))

    assert warnings == []
    assert flags.migration_mode is MigrationMode.BETTER_AUTH_ONLY
    assert flags.canary_user_selection is CanarySelection.WHITELIST


# --- booleans --------------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["true", "TRUE", "True", "1", "yes", "Yes", "on", "ON", " true "])
def test_truthy_words_read_as_true(word: str) -> None:
    flags, warnings = parse_flags(complete_raw(USE_BETTER_AUTH=word))

    assert warnings == []
    assert flags.use_better_auth is True


@pytest.mark.parametrize("word", ["false", "FALSE", "0", "no", "No", "off", "OFF"])
def test_falsy_words_read_as_false(word: str) -> None:
    flags, warnings = parse_flags(complete_raw(CANARY_ENABLED=word))

    assert warnings == []
    assert flags.canary_enabled is False


# --- every invalid value falls back to its default with a warning naming the flag ------------------


@pytest.mark.parametrize(
    ("name", "value", "attr"),
    [
        ("MIGRATION_MODE", "dual-write", "migration_mode"),
        ("MIGRATION_MODE", "", "migration_mode"),
        ("USE_BETTER_AUTH", "ture", "use_better_auth"),
        ("MIGRATION_VALIDATION", "2", "migration_validation"),
        ("MIGRATION_FALLBACK_TIMEOUT", "5s", "fallback_timeout_ms"),
        ("MIGRATION_FALLBACK_TIMEOUT", "49", "fallback_timeout_ms"),
        ("MIGRATION_FALLBACK_TIMEOUT", "60001", "fallback_timeout_ms"),
        ("MIGRATION_FALLBACK_TIMEOUT", "3000.5", "fallback_timeout_ms"),
        ("CANARY_ENABLED", "maybe", "canary_enabled"),
        ("CANARY_PERCENTAGE", "ten", "canary_percentage"),
        ("CANARY_PERCENTAGE", "nan", "canary_percentage"),
        ("CANARY_PERCENTAGE", "inf", "canary_percentage"),
        ("CANARY_USER_SELECTION", "everyone", "canary_user_selection"),
        ("CANARY_EMAIL_DOMAINS", "company.com,not a domain", "canary_email_domains"),
        ("ROLLBACK_MAX_ERROR_RATE", "5", "rollback_max_error_rate"),
        ("ROLLBACK_MAX_ERROR_RATE", "-0.1", "rollback_max_error_rate"),
        ("ROLLBACK_MIN_SUCCESS_RATE", "120%", "rollback_min_success_rate"),
        ("ROLLBACK_MIN_SAMPLE", "0", "rollback_min_sample"),
        ("ROLLBACK_MIN_SAMPLE", "1e3", "rollback_min_sample"),
        ("DRY_RUN", "sometimes", "dry_run"),
    ],
)
def test_invalid_value_falls_back_to_the_default_with_a_warning(name: str, value: str, attr: str) -> None:
    flags, warnings = parse_flags(complete_raw(**{name: value}))

    assert getattr(flags, attr) == getattr(Flags.defaults(), attr)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{name}=")
    assert "using default" in warnings[0]


def test_other_flags_keep_their_values_when_one_is_invalid() -> None:
    flags, _ = parse_flags(complete_raw(MIGRATION_MODE="bogus"))

    assert flags.migration_mode is MigrationMode.SUPABASE_ONLY
    assert flags.use_better_auth is True
    assert flags.canary_percentage == 12.5


def test_a_huge_invalid_value_is_shortened_in_the_warning() -> None:
    _, warnings = parse_flags(complete_raw(MIGRATION_MODE="x" * 10_000))

    assert len(warnings[0]) < 200


# --- ranges ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["150", "250", "-5", "100.0001"])
def test_percentage_out_of_range_keeps_the_safe_default_with_a_warning(raw: str) -> None:
    # Clamping 250 to 100 would put every user in the canary: a typo must narrow, never widen.
    flags, warnings = parse_flags(complete_raw(CANARY_PERCENTAGE=raw))

    assert flags.canary_percentage == Flags.defaults().canary_percentage == 0.0
    assert len(warnings) == 1
    assert "CANARY_PERCENTAGE" in warnings[0]
    assert "outside 0..100" in warnings[0]


@pytest.mark.parametrize(("raw", "value"), [("5", 5.0), ("5%", 5.0), (" 0.5 ", 0.5), ("100", 100.0)])
def test_percentage_accepts_plain_and_percent_sign_forms(raw: str, value: float) -> None:
    flags, warnings = parse_flags(complete_raw(CANARY_PERCENTAGE=raw))

    assert warnings == []
    assert flags.canary_percentage == value


@pytest.mark.parametrize("ms", ["50", "60000"])
def test_fallback_timeout_bounds_are_inclusive(ms: str) -> None:
    flags, warnings = parse_flags(complete_raw(MIGRATION_FALLBACK_TIMEOUT=ms))

    assert warnings == []
    assert flags.fallback_timeout_ms == int(ms)


@pytest.mark.parametrize(("raw", "rate"), [("0.05", 0.05), ("5%", 0.05), ("0", 0.0), ("1", 1.0)])
def test_rollback_rates_accept_fractions_and_percentages(raw: str, rate: float) -> None:
    flags, warnings = parse_flags(complete_raw(ROLLBACK_MAX_ERROR_RATE=raw))

    assert warnings == []
    assert flags.rollback_max_error_rate == pytest.approx(rate)


# --- lists -----------------------------------------------------------------------------------------


def test_lists_are_split_trimmed_and_lowercased() -> None:
    flags, warnings = parse_flags(
        complete_raw(
            CANARY_WHITELIST=" Admin@Company.com ,, test@company.com,",
            CANARY_EMAIL_DOMAINS="Company.COM, @trusted-partner.com ",
        )
    )

    assert warnings == []
    assert flags.canary_whitelist == frozenset({"admin@company.com", "test@company.com"})
    assert flags.canary_email_domains == frozenset({"company.com", "trusted-partner.com"})


@pytest.mark.parametrize("empty", ["-", "", "  ", " - "])
def test_dash_or_blank_means_an_empty_list(empty: str) -> None:
    flags, warnings = parse_flags(complete_raw(CANARY_WHITELIST=empty, CANARY_EMAIL_DOMAINS=empty))

    assert warnings == []
    assert flags.canary_whitelist == frozenset()
    assert flags.canary_email_domains == frozenset()


# --- legal but suspicious combinations -------------------------------------------------------------


def test_whitelist_selection_with_an_empty_whitelist_is_flagged_but_kept() -> None:
    flags, warnings = parse_flags(complete_raw(CANARY_USER_SELECTION="whitelist", CANARY_WHITELIST="-"))

    assert flags.canary_user_selection is CanarySelection.WHITELIST
    assert warnings == ["CANARY_USER_SELECTION=whitelist but CANARY_WHITELIST is empty: no user is in the canary"]


def test_domain_selection_with_no_domains_is_flagged_only_while_the_canary_is_on() -> None:
    by_domain = complete_raw(CANARY_USER_SELECTION="email_domain", CANARY_EMAIL_DOMAINS="-")
    _, when_on = parse_flags(by_domain)
    _, when_off = parse_flags({**by_domain, "CANARY_ENABLED": "false"})

    assert len(when_on) == 1
    assert "CANARY_EMAIL_DOMAINS is empty" in when_on[0]
    assert when_off == []


# --- the Flags value itself ------------------------------------------------------------------------


def test_flags_are_immutable() -> None:
    flags = Flags.defaults()

    with pytest.raises(dataclasses.FrozenInstanceError):
        flags.canary_enabled = True  # type: ignore[misc]


@pytest.mark.parametrize(
    "changes",
    [
        {"canary_percentage": 101.0},
        {"canary_percentage": math.nan},
        {"fallback_timeout_ms": 10},
        {"rollback_max_error_rate": 1.5},
        {"rollback_min_sample": 0},
        {"migration_mode": "dual_write"},
    ],
)
def test_building_flags_with_an_out_of_range_value_is_a_config_error(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Flags(**changes)


def test_as_parameters_round_trips_through_parse_flags() -> None:
    flags, _ = parse_flags(complete_raw())

    again, warnings = parse_flags(flags.as_parameters())

    assert warnings == []
    assert again == flags


def test_empty_lists_render_as_the_dash_ssm_can_store() -> None:
    assert Flags.defaults().as_parameters()["CANARY_WHITELIST"] == "-"


# --- properties ------------------------------------------------------------------------------------

flag_name = st.sampled_from(FLAG_NAMES)
interesting_value = st.one_of(
    st.text(),
    st.sampled_from(["true", "off", "dual_write", "whitelist", "-", "", "1e309", "-0", "5%", "%", "0x10"]),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers().map(str),
    st.lists(st.text(alphabet="abc.@- ,", max_size=8), max_size=4).map(",".join),
)


@given(st.dictionaries(st.one_of(flag_name, st.text(max_size=20)), interesting_value))
def test_any_mapping_parses_to_valid_flags_without_raising(raw: Mapping[str, str]) -> None:
    flags, warnings = parse_flags(raw)

    assert isinstance(flags.migration_mode, MigrationMode)
    assert isinstance(flags.canary_user_selection, CanarySelection)
    assert 0.0 <= flags.canary_percentage <= 100.0
    assert 50 <= flags.fallback_timeout_ms <= 60_000
    assert 0.0 <= flags.rollback_max_error_rate <= 1.0
    assert 0.0 <= flags.rollback_min_success_rate <= 1.0
    assert flags.rollback_min_sample >= 1
    assert all(isinstance(w, str) for w in warnings)
    # A flag missing from the mapping always earns a warning.
    assert all(any(w.startswith(name) for w in warnings) for name in FLAG_NAMES if name not in raw)


@given(st.dictionaries(flag_name, interesting_value))
def test_parsed_flags_survive_a_round_trip_through_their_ssm_form(raw: Mapping[str, str]) -> None:
    flags, _ = parse_flags(raw)

    assert parse_flags(flags.as_parameters())[0] == flags


# --- sources ---------------------------------------------------------------------------------------


class InMemoryParameterStore:
    """Answers get_multiple like Powertools' SSMProvider, from a dict; can be switched off."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)
        self.reachable = True
        self.calls: list[tuple[str, int | None, bool | None]] = []

    def get_multiple(self, path: str, max_age: int | None = None, *, decrypt: bool | None = None) -> dict[str, str]:
        self.calls.append((path, max_age, decrypt))
        if not self.reachable:
            raise GetParameterError("Could not connect to the endpoint URL")
        return dict(self.values)


def test_static_source_returns_the_flags_it_holds() -> None:
    flags = dataclasses.replace(Flags.defaults(), canary_enabled=True, canary_percentage=5.0)

    assert StaticFlagSource(flags).snapshot() is flags
    assert StaticFlagSource().snapshot() == Flags.defaults()


def test_ssm_source_reads_the_prefix_decrypted_with_its_max_age() -> None:
    store = InMemoryParameterStore(complete_raw())
    source = SsmFlagSource("/auth-migration/dev/", max_age_s=7, provider=store)

    flags = source.snapshot()

    assert flags.migration_mode is MigrationMode.DUAL_WRITE
    assert store.calls == [("/auth-migration/dev", 7, True)]


def test_ssm_source_reports_warnings_once_per_change_not_on_every_request() -> None:
    store = InMemoryParameterStore(complete_raw(MIGRATION_MODE="typo"))
    warnings: list[str] = []
    source = SsmFlagSource("/auth-migration/dev", provider=store, on_warning=warnings.append)

    first, second = source.snapshot(), source.snapshot()
    store.values["MIGRATION_MODE"] = "another-typo"
    source.snapshot()

    assert first is second
    assert len(warnings) == 2
    assert all("MIGRATION_MODE" in w for w in warnings)


def test_ssm_source_keeps_the_last_good_snapshot_when_ssm_fails() -> None:
    store = InMemoryParameterStore(complete_raw())
    warnings: list[str] = []
    source = SsmFlagSource("/auth-migration/dev", provider=store, on_warning=warnings.append)
    good = source.snapshot()

    store.reachable = False
    during_outage = source.snapshot()

    assert during_outage is good
    assert len(warnings) == 1
    assert "last good snapshot" in warnings[0]


def test_ssm_source_without_any_good_snapshot_raises_config_error() -> None:
    store = InMemoryParameterStore(complete_raw())
    store.reachable = False
    source = SsmFlagSource("/auth-migration/dev", provider=store)

    with pytest.raises(ConfigError, match="/auth-migration/dev"):
        source.snapshot()


@pytest.mark.parametrize("prefix", ["auth-migration/dev", ""])
def test_ssm_source_needs_an_absolute_path(prefix: str) -> None:
    with pytest.raises(ConfigError):
        SsmFlagSource(prefix, provider=InMemoryParameterStore({}))
