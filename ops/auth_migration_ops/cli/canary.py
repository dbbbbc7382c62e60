"""`auth-migrate canary ...`: who gets Better-Auth first. By hand (set, allow, off) or as a progressive
plan (plan, pause, resume) that AutoRollback walks one healthy, baked step at a time; `status` shows
the plan and the canary figures (auth_migration/rollout/figures.py, the same the admin API serves).

A command by hand takes the canary over: it stops a running plan, which never writes over it."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Any

import click
import psycopg

from auth_migration.clock import system_clock
from auth_migration.exceptions import AuthMigrationError, InvalidRequest, StateConflict
from auth_migration.flags import MigrationMode, parse_flags
from auth_migration.rollout.phases import phase_of
from auth_migration_ops.cli.common import EXIT_OK, JSON_HELP, CliState, pass_state
from auth_migration_ops.cli.rollout import _REASON_HELP, Rollout, _aws_option, _report_plan, _rollout

__all__ = ["canary"]


@click.group(
    short_help="the canary: percentage, allow-list, off, a progressive plan",
    help="Who gets Better-Auth first: by hand, or a plan AutoRollback walks step by step.",
)
def canary() -> None:
    pass


def _take_over(rollout: Rollout, what: str) -> None:
    """Stop a running plan after a change by hand. Best effort: the flags are written already, and
    AutoRollback stops a plan whose flags changed at its next run anyway."""
    from auth_migration.rollout.plan import stop_open_plan

    try:
        with rollout.db() as conn:
            stopped = stop_open_plan(conn, why=f"{what} by hand", actor=rollout.actor(), now=system_clock())
    except (AuthMigrationError, psycopg.Error) as exc:
        print(f"canary plan: not checked ({exc}); AutoRollback stops a running one at its next run", file=sys.stderr)
        return
    if stopped is not None:
        print(f"{stopped.label()} stopped: the canary is steered by hand now")


@canary.command(name="set", short_help="send PCT % of users (stable by email) to Better-Auth first")
@click.argument("percentage")
@click.option("--reason", required=True, help=_REASON_HELP)
@_aws_option
@pass_state
def canary_set(state: CliState, percentage: str, reason: str, aws: bool) -> int:
    """Raising the percentage only adds users; lowering it only removes some. Stops a running plan."""
    rollout = _rollout(state, aws)
    desired = {"CANARY_ENABLED": "true", "CANARY_PERCENTAGE": percentage, "CANARY_USER_SELECTION": "user_id_hash"}
    code = _report_plan(rollout, rollout.store.read(), desired, reason)
    _take_over(rollout, f"`canary set {percentage}`")
    return code


@canary.command(short_help="put emails or @domains in the canary")
@click.argument("entries", nargs=-1, required=True)
@click.option("--reason", required=True, help=_REASON_HELP)
@_aws_option
@pass_state
def allow(state: CliState, entries: tuple[str, ...], reason: str, aws: bool) -> int:
    """ENTRIES: emails (the allow-list) or @domains (every address there), one kind at a time; added to
    what is allowed already. Stops a running plan."""
    domains = [e for e in entries if e.startswith("@")]
    emails = [e for e in entries if not e.startswith("@")]
    if domains and emails:
        raise InvalidRequest("give emails or @domains, not both: the canary selects by one method at a time")
    rollout = _rollout(state, aws)
    current = rollout.store.read()
    key, selection = ("CANARY_EMAIL_DOMAINS", "email_domain") if domains else ("CANARY_WHITELIST", "whitelist")
    kept = [i for i in (current.get(key) or "").split(",") if i.strip() and i.strip() != "-"]
    merged = ",".join([*kept, *(e.removeprefix("@") for e in (domains or emails))])
    desired = {"CANARY_ENABLED": "true", "CANARY_USER_SELECTION": selection, key: merged}
    code = _report_plan(rollout, current, desired, reason)
    _take_over(rollout, "`canary allow`")
    return code


@canary.command(short_help="nobody in the canary (stops a running plan)")
@click.option("--reason", required=True, help=_REASON_HELP)
@_aws_option
@pass_state
def off(state: CliState, reason: str, aws: bool) -> int:
    """CANARY_ENABLED false: everyone has Supabase first again. Stops a running plan."""
    rollout = _rollout(state, aws)
    code = _report_plan(rollout, rollout.store.read(), {"CANARY_ENABLED": "false"}, reason)
    _take_over(rollout, "`canary off`")
    return code


# --- the progressive plan ---------------------------------------------------------------------------------


@canary.command(name="plan", short_help="store a progressive plan (e.g. 1,5,10,25,50,75,100) and set its first step")
@click.argument("steps")
@click.option("--bake", required=True, help="how long each step runs healthy before the next: 30m, 2h, 90s, 1h30m")
@click.option("--reason", required=True, help=_REASON_HELP)
@_aws_option
@pass_state
def plan(state: CliState, steps: str, bake: str, reason: str, aws: bool) -> int:
    """STEPS: percentages, strictly increasing, the last 100. Needs phase 2 (dual-write, Supabase
    primary). AutoRollback then advances one step per run when the current one has baked for --bake
    (and at least ROLLBACK_WINDOW_MINUTES), had ROLLBACK_MIN_SAMPLE requests and was healthy; a breach
    rolls the canary back to 0 and stops the plan; 100 % baked reports "ready for phase 3" (moving to
    phase 3 stays your decision). Undo: `canary pause`, or `canary off`."""
    from auth_migration.rollout.plan import create_plan, format_percentage, parse_bake, parse_steps

    parsed, bake_s = parse_steps(steps), parse_bake(bake)  # bad input exits 2 before anything is read
    rollout = _rollout(state, aws)
    current = rollout.store.read()
    flags = parse_flags(current)[0]
    if flags.migration_mode is not MigrationMode.DUAL_WRITE or flags.use_better_auth:
        raise InvalidRequest(
            f"a canary plan runs in phase 2 (MIGRATION_MODE dual_write, USE_BETTER_AUTH false); the flags are in "
            f"phase {phase_of(flags.as_parameters()) or '?'}: `auth-migrate phase 2` first"
        )
    with rollout.db() as conn, conn.transaction():
        # The row first, in a transaction the flag writes run inside: a refused plan (one is running)
        # writes no flag, and a failed flag write leaves no plan behind.
        made = create_plan(conn, parsed, bake_s, actor=rollout.actor(), reason=reason, now=system_clock())
        print(f"canary plan {made.id}: {' -> '.join(format_percentage(s) for s in parsed)} %, each baked {bake}")
        desired = {
            "CANARY_ENABLED": "true",
            "CANARY_USER_SELECTION": "user_id_hash",
            "CANARY_PERCENTAGE": format_percentage(parsed[0]),
        }
        code = _report_plan(rollout, current, desired, f"{made.label()}: {reason}")
    window_s = flags.rollback_window_minutes * 60
    if bake_s < window_s:
        print(f"note: each step waits at least the {flags.rollback_window_minutes} min health window")
    return code


@canary.command(short_help="keep the plan at its step (AutoRollback still rolls back on a breach)")
@click.option("--reason", required=True, help=_REASON_HELP)
@_aws_option
@pass_state
def pause(state: CliState, reason: str, aws: bool) -> int:
    """The running plan stays at its current percentage until `canary resume`."""
    from auth_migration.rollout.plan import pause_plan

    rollout = _rollout(state, aws)
    with rollout.db() as conn:
        paused = pause_plan(conn, reason=reason, actor=rollout.actor(), now=system_clock())
    print(f"{paused.label()} paused")
    return EXIT_OK


@canary.command(short_help="run a paused plan again (its current step bakes from the start)")
@click.option("--reason", required=True, help=_REASON_HELP)
@_aws_option
@pass_state
def resume(state: CliState, reason: str, aws: bool) -> int:
    """Refused when the flags no longer hold the plan's step (changed since the pause): start a new plan."""
    from auth_migration.rollout.plan import flags_mismatch, open_plan, resume_plan

    rollout = _rollout(state, aws)
    flags = parse_flags(rollout.store.read())[0]
    with rollout.db() as conn:
        current = open_plan(conn)
        if current is None or current.status != "paused":
            raise StateConflict("no paused canary plan to resume")
        mismatch = flags_mismatch(current, flags)
        if mismatch is not None:
            raise InvalidRequest(f"{mismatch}: this plan cannot go on; start a new one (`canary plan`)")
        resumed = resume_plan(conn, reason=reason, actor=rollout.actor(), now=system_clock())
    print(f"{resumed.label()} running again; this step bakes from now")
    return EXIT_OK


@canary.command(short_help="the plan's step, time to the next, and the canary's health figures")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@_aws_option
@pass_state
def status(state: CliState, as_json: bool, aws: bool) -> int:
    """Over the last ROLLBACK_WINDOW_MINUTES (what AutoRollback judges): canary requests against all,
    success and error rates (system failures only), average and p95 latency, the latest failures."""
    from auth_migration.rollout.figures import canary_figures
    from auth_migration.rollout.plan import plan_status

    rollout = _rollout(state, aws)
    flags = parse_flags(rollout.store.read())[0]
    window = timedelta(minutes=flags.rollback_window_minutes)
    now = system_clock()
    with rollout.db() as conn:
        shown_plan = plan_status(conn, now=now, window=window)
        figures = canary_figures(conn, now=now, window=window).as_json()
    canary_flags = {
        "phase": phase_of(flags.as_parameters()),
        "enabled": flags.canary_enabled,
        "percentage": flags.canary_percentage,
        "selection": flags.canary_user_selection.value,
    }
    if as_json:
        print(json.dumps({"canary": canary_flags, "plan": shown_plan, "figures": figures}, indent=2, default=str))
        return EXIT_OK
    _print_status(canary_flags, shown_plan, figures)
    return EXIT_OK


def _rate(value: float | None) -> str:
    return f"{value:.1%}" if value is not None else "-"


def _print_status(canary_flags: dict[str, Any], shown_plan: dict[str, Any] | None, figures: dict[str, Any]) -> None:
    state = f"{canary_flags['percentage']:g} %" if canary_flags["enabled"] else "off"
    print(f"canary: {state} (selection {canary_flags['selection']}, phase {canary_flags['phase'] or '?'})")
    if shown_plan is None:
        print("plan: none")
    else:
        p = shown_plan
        steps = ",".join(f"{s:g}" for s in p["steps"])
        step = f"step {p['step_number']}/{p['step_count']} ({p['percentage']:g} %)"
        print(f"plan {p['id']}: {p['status']}, {step} of {steps}")
        if p["status"] == "active":
            to_next = p["seconds_to_next_step"]
            target = f"{p['next_percentage']:g} %" if p["next_percentage"] is not None else "ready for phase 3"
            print(f"  baked {int(p['baked_s'])} of {int(p['due_s'])} s; next ({target}) in {int(to_next)} s if healthy")
        elif p["status"] == "ready":
            print("  ready for phase 3: `auth-migrate phase 3 --reason ...` when you decide")
        if p["status_reason"]:
            print(f"  {p['status']} by {p['status_actor']}: {p['status_reason']}")
    c, o = figures["canary"], figures["others"]
    share = figures["canary_share"]
    print(
        f"last {figures['window_s'] // 60} min: {figures['canary_requests']} of {figures['total_requests']} requests "
        f"in the canary ({_rate(share)})"
    )
    for name, group in (("canary", c), ("others", o)):
        latency = "no requests"
        if group["requests"]:
            latency = f"avg {group['avg_latency_ms']} ms, p95 {group['p95_latency_ms']} ms"
        print(
            f"  {name:<7} success {_rate(group['success_rate'])}, errors {_rate(group['error_rate'])} "
            f"({group['system_failures']} system failures, {group['user_errors']} user errors); {latency}"
        )
    for e in figures["recent_errors"]:
        where = f"{e['system']}" + (f" after {e['primary_system']}" if e["primary_system"] != e["system"] else "")
        print(f"  ! {e['occurred_at']} {e['operation']} {where}: {e['error_kind'] or 'fallback'}")
