"""`auth-migrate flags | phase | rollback --emergency`: the rollout, steered through the SSM flags every
Signup/Login container reads, each change audited in flag_changes (`canary` is in cli/canary.py and uses
the helpers here).

Locally the flags live in a moto server (`auth-migrate local api` starts one and prints its endpoint:
set AWS_ENDPOINT_URL to it); `--aws` uses the AWS account the environment points at."""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from auth_migration.clock import system_clock
from auth_migration.exceptions import AuthMigrationError, DatabaseUnavailable, InvalidRequest
from auth_migration.flags import Flags, describe_flags, parse_flags
from auth_migration.rollout.apply import Applied, apply_changes
from auth_migration.rollout.audit import AuditEntry
from auth_migration.rollout.changes import FlagChange, emergency_rollback, plan_changes
from auth_migration.rollout.phases import PHASE_NAMES, phase_of
from auth_migration.rollout.proposal import propose_phase
from auth_migration.rollout.store import SsmFlagStore
from auth_migration.settings import Settings
from auth_migration_ops.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    JSON_HELP,
    CliState,
    error,
    pass_state,
    refused_confirmation,
)

_AWS_HELP = "use the AWS account the environment points at (default: the local moto at AWS_ENDPOINT_URL)"
_REASON_HELP = "why (kept in the audit)"


class Rollout:
    """One command's view: the flag store, who is acting, and the audit (written now or spooled)."""

    def __init__(self, settings: Settings, *, aws: bool) -> None:
        import boto3

        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.settings = settings
        self.aws = aws
        client = boto3.client("ssm", region_name=region)
        self.store = SsmFlagStore(settings.flag_prefix, client)
        self._region = region

    def actor(self) -> str:
        if not self.aws:
            return f"{getpass.getuser()}@{socket.gethostname()} (local)"
        import boto3

        return str(boto3.client("sts", region_name=self._region).get_caller_identity()["Arn"])

    def db(self) -> Any:
        from auth_migration.store import connect, require_schema

        conn = connect(self.settings.new_database_url, autocommit=True)
        require_schema(conn)
        return conn

    def record_audit(self, entries: Sequence[AuditEntry]) -> list[int] | None:
        """Write the rows (and any spooled earlier); with the state database unreachable, spool them."""
        from auth_migration.rollout.audit import record

        try:
            with self.db() as conn:
                pending = _read_spool()
                ids = record(conn, [*pending, *entries])
                _clear_spool()
                return ids[len(pending) :]
        except DatabaseUnavailable:
            _append_spool(entries)
            return None

    def apply(self, changes: Sequence[FlagChange], reason: str, *, forced: bool = False) -> Applied:
        return apply_changes(
            self.store,
            changes,
            actor=self.actor(),
            reason=reason,
            source="cli",
            record_audit=self.record_audit,
            forced=forced,
            clock=system_clock,
        )


def _spool_path() -> Path:
    return Path(os.environ.get("AUTH_MIGRATE_AUDIT_SPOOL") or Path.home() / ".auth-migrate" / "pending-audit.jsonl")


def _read_spool() -> list[AuditEntry]:
    path = _spool_path()
    if not path.is_file():
        return []
    return [AuditEntry.from_json(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def _append_spool(entries: Sequence[AuditEntry]) -> None:
    path = _spool_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        for entry in entries:
            out.write(json.dumps(entry.as_json()) + "\n")


def _clear_spool() -> None:
    _spool_path().unlink(missing_ok=True)


def _rollout(state: CliState, aws: bool) -> Rollout:
    # Before the settings: with PARAMETER_PREFIX set they are read from SSM too.
    if not aws and not os.environ.get("AWS_ENDPOINT_URL"):
        raise InvalidRequest(
            "no SSM to steer: set AWS_ENDPOINT_URL to a local moto (`auth-migrate local api` prints one), "
            "or pass --aws for the AWS account the environment points at"
        )
    if not aws and not os.environ.get("AWS_ACCESS_KEY_ID"):
        # A local moto takes any key, but boto3 signs nothing without one (this CLI process only: the
        # settings read SSM too when PARAMETER_PREFIX is set).
        os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = "local", "local"
    return Rollout(state.settings(), aws=aws)


def _show_changes(changes: Sequence[FlagChange]) -> None:
    for change in changes:
        print(f"  {change.name}: {change.old if change.old is not None else '(unset)'} -> {change.new}")


def _report(applied: Applied) -> int:
    _show_changes([e.change for e in applied.entries])
    if applied.audit_ids is None:
        print(
            "audit: pending (the state database is unreachable); the next command that reaches it writes it",
            file=sys.stderr,
        )
    elif applied.audit_ids:
        print(f"audit: flag_changes {', '.join(map(str, applied.audit_ids))}")
    return EXIT_OK


def _change(state: CliState, aws: bool, desired: Mapping[str, str], reason: str) -> int:
    rollout = _rollout(state, aws)
    return _report_plan(rollout, rollout.store.read(), desired, reason)


def _aws_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--aws", is_flag=True, help=_AWS_HELP)(command)


# --- flags ------------------------------------------------------------------------------------------


@click.group(short_help="show, set, audit and undo the rollout flags (SSM)", help="The rollout flags in SSM.")
def flags() -> None:
    pass


@flags.command(short_help="every flag: stored value, value in force, problems, last change")
@_aws_option
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_state
def show(state: CliState, aws: bool, as_json: bool) -> int:
    """Every flag: what SSM holds, the value the functions use (the safe default where the stored one is
    missing or bad, and why), and its last audited change."""
    rollout = _rollout(state, aws)
    raw = rollout.store.read()
    last: dict[str, dict[str, Any]] = {}
    audit_note = None
    try:
        from auth_migration.rollout.audit import last_changes

        with rollout.db() as conn:
            last = last_changes(conn)
    except AuthMigrationError as exc:
        audit_note = f"last changes unknown: {exc}"
    rows: list[dict[str, Any]] = [
        {
            "flag": f.name,
            "stored": f.stored,
            "in_force": f.in_force,
            "problem": f.problem,
            "last_change": last.get(f.name),
        }
        for f in describe_flags(raw)
    ]
    phase = phase_of(parse_flags(raw)[0].as_parameters())
    if as_json:
        print(json.dumps({"prefix": rollout.store.prefix, "phase": phase, "flags": rows}, indent=2, default=str))
        return EXIT_OK
    print(f"flags under {rollout.store.prefix}  (phase {phase or '?'}: {PHASE_NAMES.get(phase or 0, 'no phase')})")
    for row in rows:
        change = row["last_change"]
        when = f"  [#{change['id']} {change['changed_at']:%Y-%m-%d %H:%M} {change['actor']}]" if change else ""
        print(f"  {row['flag']:<28} {row['in_force']:<16}{when}")
        if row["problem"]:
            print(f"      ! {row['problem']}")
    if audit_note:
        print(audit_note, file=sys.stderr)
    return EXIT_OK


@flags.command(name="set", short_help="set one flag (validated, audited)")
@click.argument("key")
@click.argument("value")
@click.option("--reason", required=True, help=_REASON_HELP)
@_aws_option
@pass_state
def set(state: CliState, key: str, value: str, reason: str, aws: bool) -> int:
    """Set KEY to VALUE. An unknown key or a value the flag cannot take is refused and nothing is written."""
    return _change(state, aws, {key: value}, reason)


@flags.command(short_help="the audited changes, newest first")
@click.option("--flag", "flag_name", help="only this flag")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_state
def history(state: CliState, flag_name: str | None, limit: int, as_json: bool) -> int:
    from auth_migration.rollout.audit import history as read_history
    from auth_migration.store import connect, require_schema

    with connect(state.settings().new_database_url, autocommit=True) as conn:
        require_schema(conn)
        rows = read_history(conn, flag=flag_name.upper() if flag_name else None, limit=limit)
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return EXIT_OK
    for r in rows:
        forced = "  FORCED" if r["forced"] else ""
        print(
            f"#{r['id']:<5} {r['changed_at']:%Y-%m-%d %H:%M:%S}  {r['flag']}: {r['old_value']} -> {r['new_value']}  "
            f"by {r['actor']} ({r['source']}){forced}: {r['reason']}"
        )
    return EXIT_OK


@flags.command(short_help="put a flag back to what it was before one audited change")
@click.argument("change_id", type=int)
@click.option("--reason", required=True, help=_REASON_HELP)
@click.option("--force", is_flag=True, help="undo even though the flag was changed again since")
@_aws_option
@pass_state
def undo(state: CliState, change_id: int, reason: str, force: bool, aws: bool) -> int:
    """Set the flag of CHANGE_ID back to its old value (refused when it changed again since, unless --force)."""
    from auth_migration.rollout.audit import change_by_id

    rollout = _rollout(state, aws)
    with rollout.db() as conn:
        row = change_by_id(conn, change_id)
    stored = rollout.store.read()
    current = stored.get(row["flag"])
    if current != row["new_value"] and not force:
        raise InvalidRequest(
            f"{row['flag']} is {current} now, not {row['new_value']} as change {change_id} left it; "
            "look at `flags history` (or pass --force)"
        )
    if row["old_value"] is None:
        raise InvalidRequest(f"change {change_id} created {row['flag']}: there is no earlier value to go back to")
    changes = plan_changes(stored, {row["flag"]: row["old_value"]})
    if not changes:
        print("nothing to change: the flag already holds that value")
        return EXIT_OK
    return _report(rollout.apply(changes, f"undo of change {change_id}: {reason}", forced=force))


# --- phase, emergency rollback ---------------------------------------------------------------------


@click.command(short_help="move to rollout phase 1-4 (checked, confirmed, audited)")
@click.argument("number", type=click.IntRange(1, 4))
@click.option("--reason", required=True, help=_REASON_HELP)
@click.option("--yes", is_flag=True, help="do not ask for confirmation (scripts)")
@click.option("--force", is_flag=True, help="go ahead although a safety check refuses (audited as forced)")
@_aws_option
@pass_state
def phase(state: CliState, number: int, reason: str, yes: bool, force: bool, aws: bool) -> int:
    """Phase 1 Supabase only; 2 dual-write with validation; 3 dual-write with Better-Auth primary;
    4 Better-Auth only. Phases 3 and 4 are refused while Better-Auth-primary traffic is unhealthy,
    phase 4 also while the bulk migration is unfinished or dual-write gaps are open."""
    from auth_migration.rollout.checks import Blocker, phase_blockers

    def checks(number: int, in_force: Flags) -> list[Blocker]:
        try:
            with rollout.db() as conn:
                return phase_blockers(conn, number, in_force, now=system_clock())
        except DatabaseUnavailable as exc:
            if not force:
                raise InvalidRequest(
                    f"cannot check that phase {number} is safe ({exc}); pass --force to go ahead"
                ) from exc
            return []

    rollout = _rollout(state, aws)
    proposal = propose_phase(rollout.store.read(), number, blockers=checks)
    changes, blockers = proposal.changes, proposal.blockers
    print(f"phase {number}: {PHASE_NAMES[number]}")
    if not changes:
        print("nothing to change: the flags already hold this phase")
        return EXIT_OK
    for blocker in blockers:
        figures = ", ".join(f"{k}={v}" for k, v in blocker.figures.items())
        print(f"  refused: {blocker.reason}" + (f" ({figures})" if figures else ""), file=sys.stderr)
    if blockers and not force:
        error(f"phase {number} is not safe now; fix the above or pass --force (audited as forced)")
        return EXIT_ERROR
    print("will change, in this order:")
    _show_changes(changes)
    refused = refused_confirmation(f"Move to phase {number}?", yes=yes, what="this changes production traffic")
    if refused is not None:
        return refused
    return _report(rollout.apply(changes, reason, forced=bool(blockers)))


@click.command(short_help="emergency: canary off, Better-Auth not primary, Supabase only")
@click.option("--emergency", is_flag=True, required=True, help="required: this flips production traffic at once")
@click.option("--reason", default="emergency rollback", show_default=True, help=_REASON_HELP)
@_aws_option
@pass_state
def rollback(state: CliState, emergency: bool, reason: str, aws: bool) -> int:
    """Narrows first (Better-Auth off as primary, then the canary, then the mode) and writes SSM before
    the audit, so it works while Postgres is down (the audit row then waits for the next command). From
    phase 4 it stops at dual-write with Supabase primary: users made in phase 4 exist in Better-Auth only."""
    if not emergency:
        raise InvalidRequest("pass --emergency")
    rollout = _rollout(state, aws)
    current = rollout.store.read()
    return _report_plan(rollout, current, emergency_rollback(current), reason)


def _report_plan(rollout: Rollout, current: Mapping[str, str], desired: Mapping[str, str], reason: str) -> int:
    changes = plan_changes(current, desired)
    if not changes:
        print("nothing to change: the flags already hold these values")
        return EXIT_OK
    return _report(rollout.apply(changes, reason))
