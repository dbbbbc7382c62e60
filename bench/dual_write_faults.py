"""Dual-write signups while one auth system fails a share of its calls: is any acknowledged user lost or doubled?

For each variant (the failing system x the primary), N dual_write signups go through AuthService from
`--concurrency` threads, each thread with its own AuthService (one per Lambda container), all sending
their gap ids to one shared in-memory Reconcile queue. The failing system answers `--fail-rate` of its
calls with an HTTP 500: the GoTrue stand-in's own `faults.fail_rate` (every GoTrue call: sign-up,
admin create), or the FaultProxy's in front of the real Better-Auth server (its HTTP sign-up; as the
secondary Better-Auth is written by SQL, so its faults only matter when it is the primary).

Checks, per variant:
- at once: every acknowledged signup (AuthService.signup returned) is in the system that answered
  (`AuthOutcome.result.system`: the primary, or the secondary it fell back to) under the returned id;
  else it counts as `lost_at_once`.
- after the drain: the faults are switched off (the outage is over), then every queued message goes
  through Reconciler.repair, as the Reconcile function would. Every acknowledged user must then be in
  BOTH systems under the id it was acknowledged with (`lost` otherwise), and no email of the run may have
  two rows in one system or two different ids across the systems (`duplicates`).

    python -m bench.dual_write_faults [--signups 2000] [--fail-rate 0.3] [--failing supabase]
                                      [--primary both] [--concurrency 4] [--json] [--out FILE]

Exit code 1 when any variant lost or duplicated a user.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from auth_migration.backends import BETTER_AUTH, SUPABASE, BackendError, SystemName
from auth_migration.dual_write.service import AuthService
from auth_migration.flags import Flags, MigrationMode
from bench.auth_stack import AuthStack, add_output_arguments, auth_stack, emit

__all__ = ["Variant", "format_table", "main", "run_bench", "run_variant"]

PASSWORD = "correct horse battery 1"
SYSTEMS: tuple[SystemName, ...] = (SUPABASE, BETTER_AUTH)
FALLBACK_TIMEOUT_MS = 3000
FAIL_STATUS = 500

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Variant:
    failing: SystemName
    primary: SystemName

    @property
    def name(self) -> str:
        return f"{self.failing} failing, primary {self.primary}"

    @property
    def tag(self) -> str:
        short = {SUPABASE: "sb", BETTER_AUTH: "ba"}
        return f"f{short[self.failing]}-p{short[self.primary]}"


@dataclass(frozen=True, slots=True)
class _Ack:
    email: str
    user_id: str
    system: str
    gaps: int


@dataclass
class _Tally:
    """What the signup threads saw; appended under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: list[_Ack] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    refused_emails: list[str] = field(default_factory=list)
    lost_at_once: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _email(tag: str, i: int) -> str:
    return f"{tag}-{i:06d}@bench.example.com"


def _held_id(conn: psycopg.Connection, system: str, email: str) -> str | None:
    """The id `system` holds under `email`, read from its own table (one index probe)."""
    if system == SUPABASE:
        row = conn.execute("SELECT id::text FROM auth.users WHERE email = %s", (email,)).fetchone()
    else:
        row = conn.execute('SELECT id FROM "user" WHERE email = %s', (email,)).fetchone()
    return str(row[0]) if row else None


def _signup_thread(
    stack: AuthStack,
    service: AuthService,
    flags: Flags,
    emails: list[str],
    next_index: Callable[[], int],
    tally: _Tally,
) -> None:
    with psycopg.connect(stack.database_url, autocommit=True) as check:
        while (i := next_index()) < len(emails):
            email = emails[i]
            try:
                outcome = service.signup(flags, email, PASSWORD, {"full_name": f"Bench User {i}"})
            except BackendError as exc:
                with tally.lock:
                    tally.refused[exc.kind] += 1
                    tally.refused_emails.append(email)
                continue
            except Exception as exc:  # anything else is a bug in the path under test: count it, keep going
                with tally.lock:
                    tally.refused[f"unexpected:{type(exc).__name__}"] += 1
                    tally.refused_emails.append(email)
                    tally.errors.append(f"{email}: {type(exc).__name__}: {exc}")
                continue
            ack = _Ack(email, outcome.result.user.id, outcome.result.system, len(outcome.gaps))
            held = _held_id(check, ack.system, email)  # at once: before any repair could have run
            with tally.lock:
                tally.acknowledged.append(ack)
                if held != ack.user_id:
                    tally.lost_at_once.append(email)


def _drain(stack: AuthStack) -> dict[str, Any]:
    """Reconcile every queued message, one by one, as the SQS-triggered function would."""
    reconciler = stack.reconciler()
    statuses: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    messages = stack.queue.take_all()
    started = time.perf_counter()
    for message in messages:
        try:
            result = reconciler.repair(reconciler.gap_id_from(message))
        except Exception as exc:  # a repair that raises would be redelivered by SQS; here it is reported
            failures[type(exc).__name__] += 1
            continue
        statuses[result.status] += 1
        outcomes[result.outcome] += 1
    return {
        "messages": len(messages),
        "seconds": round(time.perf_counter() - started, 3),
        "statuses": dict(statuses),
        "outcomes": dict(outcomes),
        "failures": dict(failures),
    }


def run_variant(
    stack: AuthStack,
    variant: Variant,
    *,
    signups: int,
    fail_rate: float,
    concurrency: int,
    say: Say = lambda _text: None,
) -> dict[str, Any]:
    """Run one variant on `stack` and check it; returns its figures (see the module docstring)."""
    emails = [_email(variant.tag, i) for i in range(signups)]
    flags = Flags(
        migration_mode=MigrationMode.DUAL_WRITE,
        use_better_auth=variant.primary == BETTER_AUTH,
        fallback_timeout_ms=FALLBACK_TIMEOUT_MS,
    )
    services = [stack.service() for _ in range(concurrency)]  # one per container, built before the clock
    stack.queue.take_all()
    stack.clear_faults()
    stack.set_faults(variant.failing, fail_rate=fail_rate, fail_status=FAIL_STATUS)
    tally = _Tally()
    counter = iter(range(signups + concurrency))
    counter_lock = threading.Lock()

    def next_index() -> int:
        with counter_lock:
            return next(counter)

    threads = [
        threading.Thread(
            target=_signup_thread, args=(stack, service, flags, emails, next_index, tally), name=f"signup-{n}"
        )
        for n, service in enumerate(services)
    ]
    say(f"{variant.name}: {signups} signups from {concurrency} threads, fail rate {fail_rate}")
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    signup_seconds = time.perf_counter() - started
    stack.clear_faults()  # the outage is over; the operator drains the queue now

    gap_rows = stack.query(
        "SELECT reason, count(*) FROM dual_write_gaps WHERE email = ANY(%s) GROUP BY reason ORDER BY reason", emails
    )
    gaps_by_reason = {str(r[0]): int(r[1]) for r in gap_rows}
    queued = len(stack.queue)
    say(f"{variant.name}: signups took {signup_seconds:.1f} s; draining {queued} queued gap(s)")
    drain = _drain(stack)
    open_after = stack.query(
        "SELECT count(*) FROM dual_write_gaps WHERE email = ANY(%s) AND status <> 'repaired'", emails
    )[0][0]

    holders = stack.holders(emails)
    lost_after: list[str] = []
    for ack in tally.acknowledged:
        sb_ids, ba_ids = holders.get(ack.email, ([], []))
        if ack.user_id not in sb_ids or ack.user_id not in ba_ids:
            lost_after.append(ack.email)
    duplicates: list[str] = []
    one_sided: list[str] = []
    for email, (sb_ids, ba_ids) in holders.items():
        if len(sb_ids) > 1 or len(ba_ids) > 1 or (sb_ids and ba_ids and set(sb_ids) != set(ba_ids)):
            duplicates.append(email)
        elif bool(sb_ids) != bool(ba_ids):
            one_sided.append(email)
    acked = len(tally.acknowledged)
    served_by = Counter(a.system for a in tally.acknowledged)
    refused_present = sum(1 for e in tally.refused_emails if any(holders.get(e, ([], []))))
    result: dict[str, Any] = {
        "variant": variant.name,
        "failing": variant.failing,
        "primary": variant.primary,
        "signups": signups,
        "fail_rate": fail_rate,
        "concurrency": concurrency,
        "acknowledged": acked,
        "refused": sum(tally.refused.values()),
        "refused_by_kind": dict(tally.refused),
        "served_by": {system: served_by.get(system, 0) for system in SYSTEMS},
        "served_by_fallback": acked - served_by.get(variant.primary, 0),
        "acknowledged_with_gap": sum(1 for a in tally.acknowledged if a.gaps),
        "gaps_recorded": sum(gaps_by_reason.values()),
        "gaps_by_reason": gaps_by_reason,
        "gaps_queued": queued,
        "gaps_repaired": drain["statuses"].get("repaired", 0),
        "gaps_conflict": drain["statuses"].get("conflict", 0),
        "gaps_not_closed_after_drain": int(open_after),
        "repair_outcomes": drain["outcomes"],
        "repair_failures": drain["failures"],
        "lost_at_once": len(tally.lost_at_once),
        "lost": len(lost_after),
        "duplicates": len(duplicates),
        "one_sided_after_drain": len(one_sided),
        "refused_but_created_after_drain": refused_present,
        "examples": {
            "lost_at_once": tally.lost_at_once[:5],
            "lost": lost_after[:5],
            "duplicates": duplicates[:5],
            "one_sided_after_drain": one_sided[:5],
            "unexpected_errors": tally.errors[:5],
        },
        "seconds": {
            "signups": round(signup_seconds, 3),
            "drain": drain["seconds"],
            "wall": round(signup_seconds + drain["seconds"], 3),
        },
        "signups_per_second": round(signups / signup_seconds, 1) if signup_seconds > 0 else None,
    }
    say(
        f"{variant.name}: acknowledged {acked}, refused {result['refused']}, gaps {result['gaps_recorded']}, "
        f"repaired {result['gaps_repaired']}, lost {result['lost']}, duplicates {result['duplicates']}"
    )
    return result


def variants_for(failing: str, primary: str) -> list[Variant]:
    failing_systems: Sequence[SystemName] = SYSTEMS if failing == "both-variants" else (_system(failing),)
    primaries: Sequence[SystemName] = SYSTEMS if primary == "both" else (_system(primary),)
    return [Variant(f, p) for f in failing_systems for p in primaries]


def _system(name: str) -> SystemName:
    if name == SUPABASE:
        return SUPABASE
    if name == BETTER_AUTH:
        return BETTER_AUTH
    raise ValueError(f"unknown system {name!r}")


def run_bench(
    *,
    signups: int = 2000,
    fail_rate: float = 0.3,
    failing: str = SUPABASE,
    primary: str = "both",
    concurrency: int = 4,
    database_url: str | None = None,
    say: Say = lambda _text: None,
) -> dict[str, Any]:
    """Every variant in one stack (one database, one Better-Auth server, one GoTrue stand-in)."""
    variants = variants_for(failing, primary)
    started = time.perf_counter()
    with auth_stack(database_url) as stack:
        say(f"stack up on {stack.database_url.rpartition('/')[2]}")
        results = [
            run_variant(stack, v, signups=signups, fail_rate=fail_rate, concurrency=concurrency, say=say)
            for v in variants
        ]
    return {
        "bench": "dual_write_faults",
        "signups": signups,
        "fail_rate": fail_rate,
        "fail_status": FAIL_STATUS,
        "fallback_timeout_ms": FALLBACK_TIMEOUT_MS,
        "concurrency": concurrency,
        "variants": results,
        "lost": sum(r["lost"] + r["lost_at_once"] for r in results),
        "duplicates": sum(r["duplicates"] for r in results),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }


def format_table(result: dict[str, Any]) -> str:
    header = (
        "| variant | signups | acked | refused (by kind) | served by fallback | gaps recorded | gaps repaired "
        "| lost at once | lost after drain | duplicates | signup s | drain s | wall s |"
    )
    lines = [
        f"dual_write signups, {result['fail_rate']:.0%} of the failing system's calls answered HTTP "
        f"{result['fail_status']}, {result['concurrency']} threads, "
        f"fallback timeout {result['fallback_timeout_ms']} ms",
        "",
        header,
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["variants"]:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["refused_by_kind"].items())) or "-"
        refused = f"{r['refused']} ({kinds})" if r["refused"] else "0"
        s = r["seconds"]
        lines.append(
            f"| {r['variant']} | {r['signups']} | {r['acknowledged']} | {refused} | {r['served_by_fallback']} "
            f"| {r['gaps_recorded']} | {r['gaps_repaired']} | {r['lost_at_once']} | {r['lost']} "
            f"| {r['duplicates']} | {s['signups']:.1f} | {s['drain']:.1f} | {s['wall']:.1f} |"
        )
    lines.append("")
    for r in result["variants"]:
        notes = [f"gaps by reason {r['gaps_by_reason'] or '{}'}", f"repair outcomes {r['repair_outcomes'] or '{}'}"]
        if r["repair_failures"]:
            notes.append(f"repair FAILURES {r['repair_failures']}")
        if r["gaps_not_closed_after_drain"]:
            notes.append(f"gaps not closed after drain {r['gaps_not_closed_after_drain']}")
        if r["one_sided_after_drain"]:
            notes.append(f"emails in one system only after drain {r['one_sided_after_drain']}")
        if r["refused_but_created_after_drain"]:
            notes.append(f"refused signups created by the drain {r['refused_but_created_after_drain']}")
        lines.append(f"- {r['variant']}: {r['signups_per_second']} signups/s; " + "; ".join(notes))
    verdict = "OK" if result["lost"] == 0 and result["duplicates"] == 0 else "FAILED"
    lines.append(
        f"\n{verdict}: lost {result['lost']}, duplicates {result['duplicates']}; wall {result['wall_seconds']} s"
    )
    return "\n".join(lines)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dual_write_faults", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--signups", type=int, default=2000, help="signups per variant (default 2000)")
    parser.add_argument("--fail-rate", type=float, default=0.3, help="share of the failing system's calls (0..1)")
    parser.add_argument(
        "--failing",
        choices=(SUPABASE, BETTER_AUTH, "both-variants"),
        default=SUPABASE,
        help="the system that fails; both-variants runs each in turn (default supabase)",
    )
    parser.add_argument(
        "--primary",
        choices=(SUPABASE, BETTER_AUTH, "both"),
        default="both",
        help="dual_write's primary; both runs each in turn (default both)",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="signup threads, one AuthService each")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    if args.signups < 1 or args.concurrency < 1 or not 0 <= args.fail_rate <= 1:
        parser.error("--signups and --concurrency must be >= 1 and --fail-rate within 0..1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)

    def say(text: str) -> None:
        print(f"[dual_write_faults {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    result = run_bench(
        signups=args.signups,
        fail_rate=args.fail_rate,
        failing=args.failing,
        primary=args.primary,
        concurrency=args.concurrency,
        database_url=args.database_url,
        say=say,
    )
    emit(result, args, format_table)
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
