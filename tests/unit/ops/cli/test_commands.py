"""The CLI reads as a manual: every group and command has help, the README's table matches them,
usage errors exit 2, a destructive command asks first, and the shell can complete it."""

from __future__ import annotations

import io
import re
from pathlib import Path

import click
from click.testing import CliRunner

from auth_migration_ops.cli.main import cli, main
from auth_migration_ops.cli.progress import ProgressBar
from auth_migration_ops.local.pipeline import Progress

README = Path(__file__).resolve().parents[4] / "README.md"


def leaf_commands(group: click.Group = cli, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found |= leaf_commands(command, path + " ")
        else:
            found[path] = command
    return found


def test_every_group_and_command_has_a_manual_page() -> None:
    runner = CliRunner()
    groups = [""] + [name + " " for name, c in cli.commands.items() if isinstance(c, click.Group)]
    for path in [g.strip() for g in groups] + [p for p in leaf_commands() if p != "bench"]:
        result = runner.invoke(cli, [*path.split(), "--help"], prog_name="auth-migrate")
        assert result.exit_code == 0, (path, result.output)
        assert result.output.startswith(f"Usage: auth-migrate {path}".rstrip()), path
        assert len(result.output.splitlines()) >= 4, path


def test_the_readme_command_table_lists_exactly_the_commands() -> None:
    listed = set(re.findall(r"^\| `auth-migrate ([a-z]+(?: [a-z-]+)?)", README.read_text(encoding="utf-8"), re.M))
    commands = set(leaf_commands())
    # A row names a command by its words before the first option or argument.
    assert {" ".join(w for w in row.split() if w in _words(commands)) for row in listed} == commands


def _words(commands: set[str]) -> set[str]:
    return {word for path in commands for word in path.split()}


def test_usage_errors_exit_2_with_the_reason(capsys) -> None:
    assert main(["migrate", "start", "--batch-size", "0"]) == 2
    assert "batch size must be between 1 and 10000, got 0" in capsys.readouterr().err
    assert main(["no-such-command"]) == 2


def test_rollback_asks_first_and_refuses_without_a_terminal_to_ask_on(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # piped input is no confirmation
    assert main(["migrate", "rollback", "mig_x"]) == 2
    assert "pass --yes" in capsys.readouterr().err


def test_the_shell_completes_commands_and_options() -> None:
    runner = CliRunner()
    env = {"_AUTH_MIGRATE_COMPLETE": "bash_complete", "COMP_WORDS": "auth-migrate mi", "COMP_CWORD": "1"}
    result = runner.invoke(cli, [], prog_name="auth-migrate", env=env)
    assert "plain,migrate" in result.output
    env = {
        "_AUTH_MIGRATE_COMPLETE": "bash_complete",
        "COMP_WORDS": "auth-migrate migrate start --ba",
        "COMP_CWORD": "3",
    }
    assert "plain,--batch-size" in runner.invoke(cli, [], prog_name="auth-migrate", env=env).output


def progress(done: int, elapsed: float) -> Progress:
    return Progress(
        "mig_x", "running", processed=done * 100, errors=done, batches_done=done, batches_total=4, elapsed_s=elapsed
    )


def test_progress_off_a_terminal_is_a_plain_line_every_two_seconds_and_at_the_end() -> None:
    out = io.StringIO()
    with ProgressBar(stream=out, force_terminal=False) as bar:
        for done, elapsed in ((1, 0.5), (2, 1.0), (3, 2.6), (4, 3.0), (4, 4.8)):
            bar.update(progress(done, elapsed))
    lines = out.getvalue().splitlines()
    assert lines == [
        "1/4 batches  100 users  1 errors  200 users/s  0.5s",
        "3/4 batches  300 users  3 errors  115 users/s  2.6s",
        "4/4 batches  400 users  4 errors  133 users/s  3.0s",
    ]


def test_progress_on_a_terminal_draws_a_bar_and_nothing_when_disabled() -> None:
    out = io.StringIO()
    with ProgressBar(stream=out, force_terminal=True) as bar:
        bar.update(progress(2, 1.0))
    assert "2/4" in out.getvalue()
    assert "200 users" in out.getvalue()
    quiet = io.StringIO()
    with ProgressBar(enabled=False, stream=quiet, force_terminal=True) as bar:
        bar.update(progress(2, 1.0))
    assert quiet.getvalue() == ""
