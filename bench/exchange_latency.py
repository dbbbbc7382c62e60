"""Session exchange latency (issue 14), side by side in one run with what a signed-out user would do instead.

Variants, one request each per round, round-robin with the starting variant rotating every round (machine
noise hits all alike), on users the GoTrue stand-in signed up and in (each holds a Supabase session):
- `better_auth_sign_in`: BetterAuthBackend.sign_in against the real Better-Auth server (through the proxy, as
  AuthService calls it) of a user Better-Auth already holds: the password login the exchange spares a user.
- `exchange_access_lazy`: SessionExchanger.exchange with the user's access token, the user not yet in
  Better-Auth: verify the JWT (HS256), read GoTrue's user and session rows, migrate the user on the login
  claim, write the Better-Auth session. Once per user, the first time.
- `exchange_access`: the same for a user Better-Auth holds (a second device, or after the bulk migration).
- `exchange_refresh`: with a refresh token (not yet spent): GoTrue's token row, the once-only ledger, the
  session.
The exchanges are timed at SessionExchanger.exchange (the logic and its database work; the API layer's JSON
and routing are the same as every route's). Every exchanged session is checked to exist in Better-Auth's
`session` table; nothing is gated on time.

    python -m bench.exchange_latency [--users 100] [--warmup 3] [--json]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from auth_migration.connections import Connections
from auth_migration.flags import Flags, MigrationMode
from auth_migration.sessions.better_auth_sessions import CookieSettings
from auth_migration.sessions.exchange import SessionExchanger
from auth_migration.sessions.supabase_tokens import AccessTokenVerifier
from auth_migration_ops.standins.gotrue import GoTrueStandIn
from bench.auth_latency import stats
from bench.auth_stack import AuthStack, add_output_arguments, auth_stack, emit

__all__ = ["VARIANTS", "format_table", "main", "run_bench"]

PASSWORD = "correct horse battery 1"
VARIANTS = ("better_auth_sign_in", "exchange_access_lazy", "exchange_access", "exchange_refresh")
#: High enough that the bench never meets the per-IP / per-user limits (they are not what is measured).
_NO_LIMIT = 1_000_000


def _supabase_sessions(gotrue: GoTrueStandIn, count: int, tag: str) -> list[dict[str, Any]]:
    """`count` users signed up (autoconfirm) and signed in at the stand-in: their GoTrue sessions."""
    sessions = []
    with httpx.Client(base_url=gotrue.url, headers={"apikey": gotrue.anon_key}, timeout=30) as client:
        for n in range(count):
            email = f"xl-{tag}-{n}-{uuid.uuid4().hex[:6]}@example.com"
            client.post("/auth/v1/signup", json={"email": email, "password": PASSWORD}).raise_for_status()
            reply = client.post("/auth/v1/token?grant_type=password", json={"email": email, "password": PASSWORD})
            reply.raise_for_status()
            sessions.append({**reply.json(), "email": email})
    return sessions


def _exchanger(stack: AuthStack, connections: Connections) -> SessionExchanger:
    return SessionExchanger(
        verifier=AccessTokenVerifier(issuer=f"{stack.gotrue.url}/auth/v1", secret=stack.gotrue.jwt_secret),
        connections=connections,
        cookies=CookieSettings(secret=stack.better_auth_server.effective_secret),
        limit_per_ip=_NO_LIMIT,
        limit_per_user=_NO_LIMIT,
    )


def run_bench(
    *, users: int = 100, warmup: int = 3, database_url: str | None = None, say: Callable[[str], None] = print
) -> dict[str, Any]:
    started = time.perf_counter()
    flags = Flags(migration_mode=MigrationMode.DUAL_WRITE, use_better_auth=True)
    with auth_stack(database_url, prefix="bench_auth") as stack:
        rounds = users + warmup
        say(f"signing in {rounds} users x 3 at the GoTrue stand-in ...")
        lazy, held, refresh = (_supabase_sessions(stack.gotrue, rounds, tag) for tag in ("lazy", "held", "refresh"))
        url = stack.database_url
        connections = Connections(url, url, url)
        exchanger = _exchanger(stack, connections)
        backend = stack.better_auth_backend()
        for session in held:  # Better-Auth holds these users before the timed exchanges (as after the bulk run)
            exchanger.exchange(flags, access_token=session["access_token"], client_ip="198.51.100.1", user_agent="b")

        def by_access(session: dict[str, Any]) -> str | None:
            made = exchanger.exchange(
                flags, access_token=session["access_token"], client_ip="198.51.100.1", user_agent="bench"
            )
            return made.session.token

        def by_refresh(session: dict[str, Any]) -> str | None:
            made = exchanger.exchange(
                flags, refresh_token=session["refresh_token"], client_ip="198.51.100.1", user_agent="bench"
            )
            return made.session.token

        def sign_in(session: dict[str, Any]) -> str | None:
            backend.sign_in(session["email"], PASSWORD)
            return None  # Better-Auth's own session: not one of ours to count

        calls: dict[str, Callable[[int], str | None]] = {
            "better_auth_sign_in": lambda i: sign_in(held[i]),
            "exchange_access_lazy": lambda i: by_access(lazy[i]),
            "exchange_access": lambda i: by_access(held[i]),
            "exchange_refresh": lambda i: by_refresh(refresh[i]),
        }
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        tokens: list[str] = []
        say(f"{users} rounds x {len(VARIANTS)} variants, round-robin ({warmup} warm-up rounds not timed)")
        for i in range(rounds):
            order = VARIANTS[i % len(VARIANTS) :] + VARIANTS[: i % len(VARIANTS)]
            for name in order:
                t0 = time.perf_counter()
                token = calls[name](i)
                elapsed = (time.perf_counter() - t0) * 1000
                if token:
                    tokens.append(token)
                if i >= warmup:
                    times[name].append(elapsed)
        connections.close()
        held_sessions = int(stack.query("SELECT count(*) FROM session WHERE token = ANY(%s)", tokens)[0][0])
    result = {name: stats(times[name]) for name in VARIANTS}
    sign_in_ms = result["better_auth_sign_in"]["median_ms"]
    return {
        "bench": "exchange_latency",
        "users": users,
        "latency": result,
        "ratios": {
            f"{name}_over_sign_in": round(result[name]["median_ms"] / sign_in_ms, 2) if sign_in_ms else None
            for name in VARIANTS[1:]
        },
        "sessions_made": len(tokens),
        "sessions_held_by_better_auth": held_sessions,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"Session exchange latency: {result['users']} users per variant, round-robin (ms)",
        f"{'variant':<24} {'median':>8} {'p95':>8} {'max':>8}  x sign-in",
        "-" * 62,
    ]
    for name in VARIANTS:
        s = result["latency"][name]
        ratio = result["ratios"].get(f"{name}_over_sign_in")
        lines.append(
            f"{name:<24} {s['median_ms']:>8.1f} {s['p95_ms']:>8.1f} {s['max_ms']:>8.1f}  "
            + (f"{ratio:.2f}" if ratio is not None else "1.00")
        )
    lines.append(
        f"sessions made {result['sessions_made']}, held by Better-Auth {result['sessions_held_by_better_auth']}"
    )
    return "\n".join(lines)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="exchange_latency", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=100, help="timed requests per variant (default 100)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    if args.users < 1 or args.warmup < 0:
        parser.error("--users must be at least 1 and --warmup not negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    quiet = args.json

    def say(text: str) -> None:
        if not quiet:
            print(f"[exchange_latency] {text}", file=sys.stderr, flush=True)

    result = run_bench(users=args.users, warmup=args.warmup, database_url=args.database_url, say=say)
    emit(result, args, format_table)
    return 0 if result["sessions_made"] == result["sessions_held_by_better_auth"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
