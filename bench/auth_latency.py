"""Signup and login latency, side by side in one run: each system alone, dual_write, and login with a hung primary.

Signup variants (one request each per round, round-robin, the starting variant rotating every round, so
machine noise hits all of them alike):
- `gotrue`: SupabaseAuthBackend.sign_up against the GoTrue stand-in (bcrypt cost 10 in GoTrue).
- `better_auth`: BetterAuthBackend.sign_up against the real Better-Auth server, through the FaultProxy
  (the path AuthService takes; the proxy's hop is in every Better-Auth figure).
- `dual_write_primary_supabase` / `dual_write_primary_better_auth`: AuthService.signup in dual_write
  mode, everything up: the primary's HTTP sign-up while our bcrypt hash is computed alongside, the
  secondary's write (GoTrue admin create with that hash, or SQL into Better-Auth's tables), the
  tracking rows and the auth event.
- `gotrue_admin_create_with_hash`: a component, not a system alone: GoTrue's admin create carrying an id
  and a ready bcrypt hash, the secondary write of a Better-Auth-primary signup (not in the ratios).
The ratios compare each dual_write median with the slower system alone (the design's target: about
the slower of the two) and with the sum of both (what a sequential dual write would cost).

Login variants, on users the dual_write signups created (both systems hold them):
- `gotrue`, `better_auth`: each system's sign-in alone.
- `dual_write_primary_<system>_hung`: AuthService.login while the primary hangs (its faults.delay_s = 30
  for that one request) with MIGRATION_FALLBACK_TIMEOUT = `--timeout-ms`: the answer must come from the
  secondary after about timeout + the secondary's own login latency.

    python -m bench.auth_latency [--requests 200] [--login-requests 50] [--timeout-ms 1000] [--warmup 3] [--json]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from auth_migration.backends import BETTER_AUTH, SUPABASE, AuthResult, SystemName
from auth_migration.dual_write.passwords import hash_password
from auth_migration.dual_write.service import AuthOutcome
from auth_migration.flags import Flags, MigrationMode
from bench.auth_stack import AuthStack, add_output_arguments, auth_stack, emit

__all__ = ["format_table", "main", "run_bench", "stats"]

PASSWORD = "correct horse battery 1"
SIGNUP_TIMEOUT_MS = 3000
HUNG_DELAY_S = 30.0
WARMUP_ROUNDS = 3

SIGNUP_VARIANTS = (
    "gotrue",
    "better_auth",
    "dual_write_primary_supabase",
    "dual_write_primary_better_auth",
    "gotrue_admin_create_with_hash",
)
LOGIN_VARIANTS = ("gotrue", "better_auth", "dual_write_primary_supabase_hung", "dual_write_primary_better_auth_hung")

Say = Callable[[str], None]
Call = Callable[[int], str]  # request number -> the system that answered


def stats(samples_ms: Sequence[float]) -> dict[str, Any]:
    """n, median, p95 (nearest rank), mean, min and max, in milliseconds."""
    if not samples_ms:
        return {"n": 0, "median_ms": None, "p95_ms": None, "mean_ms": None, "min_ms": None, "max_ms": None}
    ordered = sorted(samples_ms)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(p95, 1),
        "mean_ms": round(statistics.fmean(ordered), 1),
        "min_ms": round(ordered[0], 1),
        "max_ms": round(ordered[-1], 1),
    }


def _system_of(result: AuthResult | AuthOutcome) -> str:
    return result.result.system if isinstance(result, AuthOutcome) else result.system


def _round_robin(
    calls: dict[str, Call], rounds: int, *, first: int = 0
) -> tuple[dict[str, list[float]], dict[str, Counter[str]], dict[str, Counter[str]]]:
    """Run `rounds` rounds of one call per variant, the first variant rotating; times in ms (errors excluded)."""
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    errors: dict[str, Counter[str]] = {name: Counter() for name in names}
    served: dict[str, Counter[str]] = {name: Counter() for name in names}
    for n in range(first, first + rounds):
        shift = n % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            try:
                system = calls[name](n)
            except Exception as exc:  # counted per kind, never timed
                errors[name][getattr(exc, "kind", type(exc).__name__)] += 1
                continue
            times[name].append((time.perf_counter() - started) * 1000)
            served[name][system] += 1
    return times, errors, served


def _email(prefix: str, n: int) -> str:
    return f"lat-{prefix}-{n:06d}@bench.example.com"


def _signup_calls(stack: AuthStack) -> dict[str, Call]:
    supabase, better_auth = stack.supabase_backend(), stack.better_auth_backend()
    via_supabase, via_better_auth = stack.service(), stack.service()  # two containers, one per primary
    flags_supabase = Flags(migration_mode=MigrationMode.DUAL_WRITE, fallback_timeout_ms=SIGNUP_TIMEOUT_MS)
    flags_better_auth = Flags(
        migration_mode=MigrationMode.DUAL_WRITE, use_better_auth=True, fallback_timeout_ms=SIGNUP_TIMEOUT_MS
    )

    def meta(n: int) -> dict[str, str]:
        return {"full_name": f"Latency User {n}"}

    ready_hash = hash_password(PASSWORD)

    def admin_create(n: int) -> str:
        supabase.create_user(
            _email("adm", n),
            user_id=str(uuid.uuid4()),
            password_hash=ready_hash,
            email_confirm=True,
            user_metadata=meta(n),
        )
        return SUPABASE

    return {
        "gotrue": lambda n: _system_of(supabase.sign_up(_email("sb", n), PASSWORD, meta(n))),
        "better_auth": lambda n: _system_of(better_auth.sign_up(_email("ba", n), PASSWORD, meta(n))),
        "dual_write_primary_supabase": lambda n: _system_of(
            via_supabase.signup(flags_supabase, _email("dwsb", n), PASSWORD, meta(n))
        ),
        "dual_write_primary_better_auth": lambda n: _system_of(
            via_better_auth.signup(flags_better_auth, _email("dwba", n), PASSWORD, meta(n))
        ),
        "gotrue_admin_create_with_hash": admin_create,
    }


def _login_calls(stack: AuthStack, users: list[str], timeout_ms: int) -> dict[str, Call]:
    supabase, better_auth = stack.supabase_backend(), stack.better_auth_backend()
    via_supabase, via_better_auth = stack.service(), stack.service()
    flags_supabase = Flags(migration_mode=MigrationMode.DUAL_WRITE, fallback_timeout_ms=timeout_ms)
    flags_better_auth = Flags(
        migration_mode=MigrationMode.DUAL_WRITE, use_better_auth=True, fallback_timeout_ms=timeout_ms
    )

    def user(n: int) -> str:
        return users[n % len(users)]

    def hung(primary: SystemName, call: Callable[[str], AuthOutcome]) -> Call:
        def run(n: int) -> str:
            # Only this request meets the hung primary: the server reads delay_s when the request arrives.
            stack.set_faults(primary, delay_s=HUNG_DELAY_S)
            try:
                return _system_of(call(user(n)))
            finally:
                stack.set_faults(primary, delay_s=0.0)

        return run

    return {
        "gotrue": lambda n: _system_of(supabase.sign_in(user(n), PASSWORD)),
        "better_auth": lambda n: _system_of(better_auth.sign_in(user(n), PASSWORD)),
        "dual_write_primary_supabase_hung": hung(
            SUPABASE, lambda email: via_supabase.login(flags_supabase, email, PASSWORD)
        ),
        "dual_write_primary_better_auth_hung": hung(
            BETTER_AUTH, lambda email: via_better_auth.login(flags_better_auth, email, PASSWORD)
        ),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def run_bench(
    *,
    requests: int = 200,
    login_requests: int = 50,
    timeout_ms: int = 1000,
    warmup: int = WARMUP_ROUNDS,
    database_url: str | None = None,
    say: Say = lambda _text: None,
) -> dict[str, Any]:
    started = time.perf_counter()
    with auth_stack(database_url) as stack:
        say(f"stack up on {stack.database_url.rpartition('/')[2]}")
        signup_calls = _signup_calls(stack)
        _round_robin(signup_calls, warmup, first=10**5)  # connections, JIT, caches: not timed
        say(f"signups: {requests} rounds x {len(signup_calls)} variants, round-robin")
        signup_times, signup_errors, signup_served = _round_robin(signup_calls, requests)
        dual_emails = [_email(p, n) for p in ("dwsb", "dwba") for n in range(requests)]
        gaps = int(stack.query("SELECT count(*) FROM dual_write_gaps WHERE email = ANY(%s)", dual_emails)[0][0])
        in_both = [e for e, (sb, ba) in stack.holders(dual_emails).items() if sb and sb == ba]

        login_calls = _login_calls(stack, sorted(in_both) or dual_emails, timeout_ms)
        alone = {k: v for k, v in login_calls.items() if not k.endswith("_hung")}
        _round_robin(alone, warmup, first=0)
        say(f"logins: {login_requests} rounds x {len(login_calls)} variants (hung primary: {timeout_ms} ms timeout)")
        login_times, login_errors, login_served = _round_robin(login_calls, login_requests)

    signup = {name: stats(signup_times[name]) for name in SIGNUP_VARIANTS}
    login = {name: stats(login_times[name]) for name in LOGIN_VARIANTS}
    gotrue_ms, better_auth_ms = signup["gotrue"]["median_ms"], signup["better_auth"]["median_ms"]
    slower = max(gotrue_ms or 0.0, better_auth_ms or 0.0) or None
    both = (gotrue_ms + better_auth_ms) if gotrue_ms is not None and better_auth_ms is not None else None
    ratios: dict[str, float | None] = {}
    for name in ("dual_write_primary_supabase", "dual_write_primary_better_auth"):
        ratios[f"{name}_over_slower"] = _ratio(signup[name]["median_ms"], slower)
        ratios[f"{name}_over_sum"] = _ratio(signup[name]["median_ms"], both)
        ratios[f"{name}_p95_over_slower_p95"] = _ratio(
            signup[name]["p95_ms"], max(signup["gotrue"]["p95_ms"] or 0.0, signup["better_auth"]["p95_ms"] or 0.0)
        )
    hung: dict[str, Any] = {}
    for primary, secondary in ((SUPABASE, BETTER_AUTH), (BETTER_AUTH, SUPABASE)):
        name = f"dual_write_primary_{primary}_hung"
        secondary_ms = login["gotrue" if secondary == SUPABASE else "better_auth"]["median_ms"]
        expected = timeout_ms + secondary_ms if secondary_ms is not None else None
        median, worst = login[name]["median_ms"], login[name]["max_ms"]
        hung[name] = {
            "primary": primary,
            "secondary": secondary,
            "timeout_ms": timeout_ms,
            "secondary_alone_median_ms": secondary_ms,
            "expected_ms": expected,
            "median_ms": median,
            "max_ms": worst,
            "median_over_expected_ms": round(median - expected, 1) if median is not None and expected else None,
            "max_over_timeout_ms": round(worst - timeout_ms, 1) if worst is not None else None,
            "served_by": dict(login_served[name]),
        }
    errors = {
        **{f"signup:{k}": dict(v) for k, v in signup_errors.items() if v},
        **{f"login:{k}": dict(v) for k, v in login_errors.items() if v},
    }
    return {
        "bench": "auth_latency",
        "requests": requests,
        "login_requests": login_requests,
        "signup_timeout_ms": SIGNUP_TIMEOUT_MS,
        "timeout_ms": timeout_ms,
        "signup": signup,
        "signup_served_by": {k: dict(v) for k, v in signup_served.items()},
        "ratios": ratios,
        "login": login,
        "hung_primary_login": hung,
        "gaps_after_signups": gaps,
        "dual_users_in_both": len(in_both),
        "errors": errors,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"Signup latency, {result['requests']} requests per variant, round-robin (ms)",
        "",
        "| variant | n | median | p95 | max | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in result["signup"].items():
        errors = sum(result["errors"].get(f"signup:{name}", {}).values())
        lines.append(
            f"| {name} | {s['n']} | {_ms(s['median_ms'])} | {_ms(s['p95_ms'])} | {_ms(s['max_ms'])} | {errors} |"
        )
    r = result["ratios"]
    lines += [
        "",
        "| dual_write primary | median / slower system alone | median / sum of both | p95 / slower p95 |",
        "|---|---:|---:|---:|",
    ]
    for primary in (SUPABASE, BETTER_AUTH):
        key = f"dual_write_primary_{primary}"
        lines.append(
            f"| {primary} | {r[f'{key}_over_slower']} | {r[f'{key}_over_sum']} | {r[f'{key}_p95_over_slower_p95']} |"
        )
    lines += [
        "",
        f"Login latency, {result['login_requests']} requests per variant, round-robin (ms); hung primary = "
        f"delay {HUNG_DELAY_S:.0f} s, fallback timeout {result['timeout_ms']} ms",
        "",
        "| variant | n | median | p95 | max | served by | expected (timeout + secondary alone) | median - expected |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name, s in result["login"].items():
        h = result["hung_primary_login"].get(name)
        served = ", ".join(f"{k} {v}" for k, v in sorted(h["served_by"].items())) if h else "-"
        expected = _ms(h["expected_ms"]) if h else "-"
        over = _ms(h["median_over_expected_ms"]) if h else "-"
        lines.append(
            f"| {name} | {s['n']} | {_ms(s['median_ms'])} | {_ms(s['p95_ms'])} | {_ms(s['max_ms'])} | {served} "
            f"| {expected} | {over} |"
        )
    lines.append("")
    lines.append(
        f"gaps after the dual_write signups: {result['gaps_after_signups']}; errors: {result['errors'] or 'none'}; "
        f"wall {result['wall_seconds']} s"
    )
    return "\n".join(lines)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.auth_latency", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--requests", type=int, default=200, help="signups per variant (default 200)")
    parser.add_argument(
        "--login-requests",
        type=int,
        default=50,
        help="logins per variant (default 50; each hung-primary login costs at least the timeout)",
    )
    parser.add_argument("--timeout-ms", type=int, default=1000, help="MIGRATION_FALLBACK_TIMEOUT for the logins")
    parser.add_argument(
        "--warmup", type=int, default=WARMUP_ROUNDS, help=f"untimed rounds first (default {WARMUP_ROUNDS})"
    )
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    if args.requests < 1 or args.login_requests < 1 or args.warmup < 0:
        parser.error("--requests and --login-requests must be >= 1, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)

    def say(text: str) -> None:
        print(f"[auth_latency {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    result = run_bench(
        requests=args.requests,
        login_requests=args.login_requests,
        timeout_ms=args.timeout_ms,
        warmup=args.warmup,
        database_url=args.database_url,
        say=say,
    )
    emit(result, args, format_table)
    return 0 if not result["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
