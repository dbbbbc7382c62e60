"""What every command shares: exit codes, the settings, parameter types and how replies are printed."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from auth_migration.settings import Settings, load_settings

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
JSON_HELP = "print the result as JSON (for scripts)"


@dataclass(frozen=True, slots=True)
class CliState:
    """The root group's options, handed to every command (click's `obj`)."""

    env_file: Path

    def settings(self) -> Settings:
        return load_settings(os.environ, dotenv_path=self.env_file if self.env_file.is_file() else None)


pass_state = click.make_pass_decorator(CliState)


class _BoundedInt(click.ParamType[int, Any]):
    """An integer in [low, high], refused with the message the CLI has always given."""

    def __init__(self, name: str, what: str, low: int, high: int | None, hint: str = "") -> None:
        self.name, self.what, self.low, self.high, self.hint = name, what, low, high, hint

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value))
            except ValueError:
                self.fail(f"{self.what} must be an integer, got {value!r}", param, ctx)
        if number < self.low or (self.high is not None and number > self.high):
            bounds = f"between {self.low} and {self.high}" if self.high is not None else f"at least {self.low}"
            self.fail(f"{self.what} must be {bounds}{self.hint}, got {number}", param, ctx)
        return number


BATCH_SIZE = _BoundedInt("batch_size", "batch size", 1, 10_000)
POSITIVE = _BoundedInt("positive", "the value", 1, None)
PORT = _BoundedInt("port", "a TCP port", 0, 65535, " (0 picks a free one)")


def database_urls(settings: Settings) -> dict[str, str]:
    return {
        "OLD_DATABASE_URL": settings.old_database_url,
        "NEW_DATABASE_URL": settings.new_database_url,
        "BETTER_AUTH_DATABASE_URL": settings.better_auth_database_url or settings.new_database_url,
    }


def error(message: str) -> None:
    print(f"auth-migrate: error: {message}", file=sys.stderr)


def refused_confirmation(question: str, *, yes: bool, what: str) -> int | None:
    """None when the operator confirmed (or passed --yes); else the exit code, the reason printed:
    2 when there is no terminal to ask on (a script must say --yes), 1 when they said no."""
    if yes:
        return None
    if not sys.stdin.isatty():
        error(f"{what} and the input is not a terminal to confirm on; pass --yes")
        return EXIT_USAGE
    if not click.confirm(question, err=True):
        error("not confirmed; nothing changed")
        return EXIT_ERROR
    return None


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def print_reply(reply: dict[str, Any], *, as_json: bool) -> int:
    """A MigrationControl reply: its error as one line (exit 2 for bad input, 1 otherwise), else the report."""
    if not reply.get("ok", True):
        failure = reply["error"]
        error(failure["message"])
        return EXIT_USAGE if failure["type"] == "invalid_request" else EXIT_ERROR
    if as_json:
        print_json(reply)
    else:
        from auth_migration_ops.cli.progress import format_report

        print(format_report(reply))
    return EXIT_OK
