"""Settings: precedence environ > .env > SSM > defaults, validation, and secrets kept out of text."""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from pydantic import ValidationError

from auth_migration.exceptions import ConfigError
from auth_migration.settings import (
    DEFAULT_DATABASE_URL,
    Settings,
    load_settings,
    parse_dotenv,
    redacted_url,
)

PASSWORD = "s3cr3t-Pa55"


class InMemoryParameterStore:
    """Answers get_multiple like Powertools' SSMProvider (names relative to the path)."""

    def __init__(self, values: Mapping[str, str] | None = None, *, reachable: bool = True) -> None:
        self.values = dict(values or {})
        self.reachable = reachable
        self.calls: list[tuple[str, bool | None]] = []

    def get_multiple(self, path: str, max_age: int | None = None, *, decrypt: bool | None = None) -> dict[str, str]:
        self.calls.append((path, decrypt))
        if not self.reachable:
            raise GetParameterError("AccessDeniedException")
        return dict(self.values)

    def get(self, name: str, max_age: int | None = None, *, decrypt: bool | None = None) -> str | None:
        self.calls.append((name, decrypt))
        if not self.reachable or name not in self.values:
            raise GetParameterError("ParameterNotFound")
        return self.values[name]


def write_dotenv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults --------------------------------------------------------------------------------------


def test_empty_environment_gives_local_defaults() -> None:
    settings = load_settings({})

    assert settings.stage == "dev"
    assert settings.old_database_url == DEFAULT_DATABASE_URL
    assert settings.new_database_url == DEFAULT_DATABASE_URL
    assert settings.better_auth_database_url == DEFAULT_DATABASE_URL
    assert settings.supabase_url == "http://127.0.0.1:9999"
    assert settings.supabase_service_key is None
    assert settings.better_auth_url == "http://127.0.0.1:3000"
    assert settings.sentry_dsn is None
    assert settings.parameter_prefix is None
    assert settings.migration_queue_url is None
    assert settings.max_receive_count == 5
    assert settings.dry_run is False


def test_better_auth_database_defaults_to_the_new_database() -> None:
    settings = load_settings({"NEW_DATABASE_URL": "postgresql://app@db.internal:5432/target"})

    assert settings.better_auth_database_url == "postgresql://app@db.internal:5432/target"
    assert settings.shares_state_with_target


def test_every_variable_is_read_and_typed() -> None:
    settings = load_settings(
        {
            "STAGE": "Prod",
            "OLD_DATABASE_URL": "postgres://old@db/old",
            "NEW_DATABASE_URL": "postgresql://new@db/new",
            "BETTER_AUTH_DATABASE_URL": "host=ba-db dbname=better_auth",
            "SUPABASE_URL": "https://abc.supabase.co/",
            "SUPABASE_SERVICE_KEY": "service-key",
            "BETTER_AUTH_URL": "https://app.example.com",
            "SENTRY_DSN": "https://key@o1.ingest.sentry.io/1",
            "PARAMETER_PREFIX": "/auth-migration/prod",
            "MIGRATION_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/q",
            "MAX_RECEIVE_COUNT": "3",
            "DRY_RUN": "on",
        },
        ssm_provider=InMemoryParameterStore(),
    )

    assert settings.stage == "prod"
    assert settings.supabase_url == "https://abc.supabase.co"
    assert settings.supabase_service_key is not None
    assert settings.supabase_service_key.get_secret_value() == "service-key"
    assert settings.parameter_prefix == "/auth-migration/prod/"
    assert settings.max_receive_count == 3
    assert settings.dry_run is True
    assert not settings.shares_state_with_target


def test_settings_are_frozen() -> None:
    settings = load_settings({})

    with pytest.raises(ValidationError):
        settings.stage = "prod"


# --- shares_state_with_target ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "better_auth", "shared"),
    [
        ("postgresql://a:x@DB.local/app", "postgres://b:y@db.local:5432/app", True),
        ("postgresql://a@db/app?sslmode=require", "host=db port=5432 dbname=app user=b", True),
        ("postgresql://a@/app?host=/run/postgresql", "host=/run/postgresql dbname=app", True),
        ("postgresql://a@db/app", "postgresql://a@db/better_auth", False),
        ("postgresql://a@db:5432/app", "postgresql://a@db:5433/app", False),
        ("postgresql://a@db1/app", "postgresql://a@db2/app", False),
    ],
)
def test_shares_state_compares_host_port_and_database_only(new: str, better_auth: str, shared: bool) -> None:
    settings = load_settings({"NEW_DATABASE_URL": new, "BETTER_AUTH_DATABASE_URL": better_auth})

    assert settings.shares_state_with_target is shared


# --- precedence ------------------------------------------------------------------------------------


def test_environ_beats_dotenv_beats_ssm_beats_defaults(tmp_path: Path) -> None:
    dotenv = write_dotenv(
        tmp_path,
        "OLD_DATABASE_URL=postgresql://dotenv@db/old\nNEW_DATABASE_URL=postgresql://dotenv@db/new\n",
    )
    ssm = InMemoryParameterStore(
        {
            "OLD_DATABASE_URL": "postgresql://ssm@db/old",
            "NEW_DATABASE_URL": "postgresql://ssm@db/new",
            "SUPABASE_SERVICE_KEY": "from-ssm",
        }
    )

    settings = load_settings(
        {"OLD_DATABASE_URL": "postgresql://env@db/old", "PARAMETER_PREFIX": "/auth-migration/dev/"},
        dotenv_path=dotenv,
        ssm_provider=ssm,
    )

    assert settings.old_database_url == "postgresql://env@db/old"
    assert settings.new_database_url == "postgresql://dotenv@db/new"
    assert settings.supabase_service_key is not None
    assert settings.supabase_service_key.get_secret_value() == "from-ssm"
    assert settings.sentry_dsn is None


def test_an_empty_environment_value_counts_as_unset(tmp_path: Path) -> None:
    dotenv = write_dotenv(tmp_path, "SUPABASE_URL=http://from-dotenv:9999\n")

    settings = load_settings({"SUPABASE_URL": "", "SENTRY_DSN": ""}, dotenv_path=dotenv)

    assert settings.supabase_url == "http://from-dotenv:9999"
    assert settings.sentry_dsn is None


def test_prefix_from_dotenv_enables_ssm(tmp_path: Path) -> None:
    dotenv = write_dotenv(tmp_path, "PARAMETER_PREFIX=/auth-migration/staging\n")
    ssm = InMemoryParameterStore({"SENTRY_DSN": "https://k@sentry.example/2"})

    settings = load_settings({}, dotenv_path=dotenv, ssm_provider=ssm)

    assert settings.sentry_dsn is not None
    assert ssm.calls == [("/auth-migration/staging", True)]


def test_ssm_is_read_once_decrypted_and_only_for_secret_names() -> None:
    ssm = InMemoryParameterStore(
        {
            "NEW_DATABASE_URL": "postgresql://ssm@db/new",
            "STAGE": "prod",  # not a secret-ish name: SSM may not set it
            "MIGRATION_MODE": "dual_write",  # a flag sharing the prefix
        }
    )

    settings = load_settings({"PARAMETER_PREFIX": "/auth-migration/dev/"}, ssm_provider=ssm)

    assert ssm.calls == [("/auth-migration/dev", True)]
    assert settings.new_database_url == "postgresql://ssm@db/new"
    assert settings.stage == "dev"


def test_ssm_is_not_asked_without_a_prefix() -> None:
    ssm = InMemoryParameterStore({"NEW_DATABASE_URL": "postgresql://ssm@db/new"})

    settings = load_settings({}, ssm_provider=ssm)

    assert ssm.calls == []
    assert settings.new_database_url == DEFAULT_DATABASE_URL


def test_ssm_is_not_asked_when_every_secret_is_already_given() -> None:
    ssm = InMemoryParameterStore(reachable=False)
    environ = {
        "PARAMETER_PREFIX": "/auth-migration/dev/",
        "OLD_DATABASE_URL": "postgresql://a@db/old",
        "NEW_DATABASE_URL": "postgresql://a@db/new",
        "BETTER_AUTH_DATABASE_URL": "postgresql://a@db/new",
        "SUPABASE_SERVICE_KEY": "k",
        "SENTRY_DSN": "https://k@sentry.example/1",
        "SUPABASE_JWT_SECRET": "jwt-secret",
        "BETTER_AUTH_SECRET": "better-auth-secret",
    }

    load_settings(environ, ssm_provider=ssm)

    assert ssm.calls == []


def test_unreadable_ssm_is_a_config_error_naming_the_prefix() -> None:
    with pytest.raises(ConfigError, match="PARAMETER_PREFIX"):
        load_settings(
            {"PARAMETER_PREFIX": "/auth-migration/dev/"}, ssm_provider=InMemoryParameterStore(reachable=False)
        )


def test_a_missing_dotenv_file_is_skipped(tmp_path: Path) -> None:
    settings = load_settings({}, dotenv_path=tmp_path / "absent.env")

    assert settings == Settings()


# --- .env parsing ----------------------------------------------------------------------------------


def test_dotenv_understands_comments_export_and_quotes() -> None:
    text = "\n".join(
        [
            "# a comment",
            "",
            "PLAIN=value",
            "SPACED = padded value  ",
            "export EXPORTED=yes",
            "INLINE=value # trailing comment",
            "HASH_IN_VALUE=abc#def",
            'DOUBLE="two words # not a comment"',
            "SINGLE='literal \\n stays'",
            'ESCAPES="line1\\nline2 \\"quoted\\""',
            'AFTER_QUOTE="v"   # comment',
            "EMPTY=",
        ]
    )

    assert parse_dotenv(text) == {
        "PLAIN": "value",
        "SPACED": "padded value",
        "EXPORTED": "yes",
        "INLINE": "value",
        "HASH_IN_VALUE": "abc#def",
        "DOUBLE": "two words # not a comment",
        "SINGLE": "literal \\n stays",
        "ESCAPES": 'line1\nline2 "quoted"',
        "AFTER_QUOTE": "v",
        "EMPTY": "",
    }


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (f"OK=1\nthis line leaks {PASSWORD}\n", 2),
        (f'KEY="{PASSWORD}\n', 1),
        (f'KEY="{PASSWORD}" junk\n', 1),
        (f"1BAD={PASSWORD}\n", 1),
    ],
)
def test_a_malformed_dotenv_line_names_the_line_but_not_its_content(text: str, line: int) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_dotenv(text, source="local.env")

    assert f"local.env:{line}" in str(caught.value)
    assert PASSWORD not in str(caught.value)


# --- secrets never shown ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://user:pass@host:5432/db", "postgresql://user:***@host:5432/db"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("postgresql://host/db", "postgresql://host/db"),
        ("postgresql://user:p@ss/word@host/db", "postgresql://user:***@host/db"),
        (
            "postgresql://user@host/db?password=pass&sslmode=require",
            "postgresql://user@host/db?password=***&sslmode=require",
        ),
        ("host=db user=u password=pass dbname=x", "host=db user=u password=*** dbname=x"),
        ("host=db password='pa ss' dbname=x", "host=db password=*** dbname=x"),
        ("https://key:secret@sentry.example/1", "https://key:***@sentry.example/1"),
    ],
)
def test_redacted_url_masks_passwords(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


def test_repr_and_str_never_show_a_password_or_key() -> None:
    settings = load_settings(
        {
            "OLD_DATABASE_URL": f"postgresql://old:{PASSWORD}@db/old",
            "NEW_DATABASE_URL": f"host=db password={PASSWORD} dbname=new",
            "BETTER_AUTH_DATABASE_URL": f"postgres://ba:{PASSWORD}@db/ba",
            "SUPABASE_SERVICE_KEY": PASSWORD,
            "SENTRY_DSN": f"https://{PASSWORD}@sentry.example/1",
        }
    )

    for text in (repr(settings), str(settings), f"{settings}", f"{settings!r}"):
        assert PASSWORD not in text
        assert "postgresql://old:***@db/old" in text


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OLD_DATABASE_URL", f"mysql://root:{PASSWORD}@db/old"),
        ("NEW_DATABASE_URL", f"{PASSWORD}"),
        ("BETTER_AUTH_DATABASE_URL", f"http://u:{PASSWORD}@db/x"),
        ("SUPABASE_URL", f"ftp://{PASSWORD}@host"),
        ("BETTER_AUTH_URL", "localhost:3000"),
        ("STAGE", "qa"),
        ("MAX_RECEIVE_COUNT", "0"),
        ("MAX_RECEIVE_COUNT", "five"),
        ("DRY_RUN", "perhaps"),
        ("PARAMETER_PREFIX", "auth-migration/dev"),
    ],
)
def test_an_invalid_value_is_a_config_error_naming_the_variable_not_the_value(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value}, ssm_provider=InMemoryParameterStore())

    assert name in str(caught.value)
    assert value not in str(caught.value)
    # The whole chain is what a traceback or Sentry would show, not only the message.
    assert PASSWORD not in "".join(traceback.format_exception(caught.value))


def test_every_invalid_variable_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"STAGE": "qa", "MAX_RECEIVE_COUNT": "x"})

    assert "STAGE" in str(caught.value)
    assert "MAX_RECEIVE_COUNT" in str(caught.value)


def test_invalid_secret_from_ssm_is_reported_without_its_value() -> None:
    ssm = InMemoryParameterStore({"OLD_DATABASE_URL": f"mysql://u:{PASSWORD}@db/x"})

    with pytest.raises(ConfigError) as caught:
        load_settings({"PARAMETER_PREFIX": "/auth-migration/dev/"}, ssm_provider=ssm)

    assert "OLD_DATABASE_URL" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_flags_are_reread_every_ten_seconds_unless_configured() -> None:
    # An emergency rollback is obeyed at most max-age late; Powertools' own 300 s default would be minutes.
    from auth_migration.flags import SsmFlagSource
    from auth_migration.runtime import flag_source

    prefix = {"PARAMETER_PREFIX": "/auth-migration/dev/"}
    default = flag_source(load_settings(prefix, ssm_provider=InMemoryParameterStore()))
    tuned = flag_source(load_settings({**prefix, "FLAGS_MAX_AGE_S": "3"}, ssm_provider=InMemoryParameterStore()))
    assert isinstance(default, SsmFlagSource)
    assert default.max_age_s == 10
    assert isinstance(tuned, SsmFlagSource)
    assert tuned.max_age_s == 3


# --- a Sentry DSN outside the prefix (template: SentryDsnParameterName) ------------------------------


def test_a_dsn_parameter_outside_the_prefix_is_read_decrypted() -> None:
    ssm = InMemoryParameterStore({"/shared/sentry/DSN": "https://k@o1.ingest.sentry.io/9"})
    settings = load_settings({"SENTRY_DSN_PARAMETER": "/shared/sentry/DSN"}, ssm_provider=ssm)
    assert settings.sentry_dsn is not None
    assert settings.sentry_dsn.get_secret_value() == "https://k@o1.ingest.sentry.io/9"
    assert ssm.calls == [("/shared/sentry/DSN", True)]


def test_a_dsn_already_set_is_not_looked_up_again() -> None:
    ssm = InMemoryParameterStore({"/shared/sentry/DSN": "https://other@o1.ingest.sentry.io/9"})
    environ = {"SENTRY_DSN": "https://k@o1.ingest.sentry.io/1", "SENTRY_DSN_PARAMETER": "/shared/sentry/DSN"}
    settings = load_settings(environ, ssm_provider=ssm)
    assert settings.sentry_dsn is not None and settings.sentry_dsn.get_secret_value().endswith("/1")
    assert ssm.calls == []


@pytest.mark.parametrize(("name", "reachable"), [("shared/no-slash", True), ("/shared/missing", True), ("/x", False)])
def test_an_unreadable_dsn_parameter_is_a_clear_config_error(name: str, reachable: bool) -> None:
    ssm = InMemoryParameterStore({"/x": "https://k@o1.ingest.sentry.io/1"}, reachable=reachable)
    with pytest.raises(ConfigError, match="SENTRY_DSN_PARAMETER") as caught:
        load_settings({"SENTRY_DSN_PARAMETER": name}, ssm_provider=ssm)
    assert "ingest.sentry.io" not in str(caught.value)
