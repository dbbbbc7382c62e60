"""The supabase target against the GoTrue stand-in with added latency per call: users/s at each rate cap,
and the seed's per-user sequential way (create, then track, one user after another) side by side.

    python -m bench.supabase_target [--latency-ms 50] [--caps 50,200,500] [--seconds 6] [--json]

Each cap migrates about `seconds` x cap users (one admin create each) from a fresh legacy `profiles`
table into an empty `auth.users`, through the engine's batch path (intent, concurrent calls under the
shared limiter, tracking). Target: at least 80 % of the cap. The stand-in (a Python HTTP server over
pooled Postgres connections, in a process of its own) shares the machine's cores with the client, so at
high caps the machine may be the bound, not the engine: a `ceiling` row runs the same path with no cap
(MAX_REQUESTS_PER_S) and shows what this machine serves at all; `of reach` is users/s over
min(cap, ceiling). `--containers 2` runs each cap with two engine contexts draining one queue side by
side, as two MigrateBatch containers would: the cap is still the migration's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from auth_migration.clock import fixed_clock, system_clock
from auth_migration.connections import Connections
from auth_migration.engine import EngineContext, process_batch
from auth_migration.engine.plan import StartRequest, start_migration
from auth_migration.queue import ListQueue
from auth_migration.targets.rate_limit import RateLimiter
from auth_migration.targets.supabase import MAX_REQUESTS_PER_S, GoTrueAdmin
from auth_migration_ops.datakit.schemas import prepare_migration_database
from auth_migration_ops.datakit.supabase_data import generate_profiles

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# The stand-in runs in a process of its own: sharing this one's GIL with a hundred client threads, it
# measured the interpreter, not the target (500 req/s capped at ~110 users/s in one process).
_STANDIN = """
import sys, threading
from auth_migration_ops.standins.gotrue import GoTrueStandIn
standin = GoTrueStandIn(sys.argv[1], create_schema=False)
standin.faults.delay_s = float(sys.argv[2])
standin.start()
print(standin.url, standin.service_key, flush=True)
threading.Event().wait()
"""


class _StandInProcess:
    def __init__(self, url: str, delay_s: float) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-c", _STANDIN, url, str(delay_s)], stdout=subprocess.PIPE, text=True
        )
        assert self._child.stdout is not None
        self.url, self.service_key = self._child.stdout.readline().split()

    def stop(self) -> None:
        self._child.kill()
        self._child.wait(timeout=10)


def _database() -> tuple[str, str]:
    name = f"bench_gotrue_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, ADMIN_URL.rpartition("/")[0] + f"/{name}"


def _drop(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _reset(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE auth.users CASCADE")
        conn.execute("TRUNCATE migrated_users, migration_errors, migration_batches, migration_states CASCADE")


def _engine_run(url: str, gotrue: _StandInProcess, cap: int, users: int, containers: int = 1) -> dict[str, Any]:
    now = system_clock()
    queue = ListQueue()
    admins = [GoTrueAdmin(f"{gotrue.url}/auth/v1", gotrue.service_key) for _ in range(containers)]
    contexts = [
        EngineContext(connections=Connections(url, url, url), queue=queue, clock=fixed_clock(now), gotrue=admin)
        for admin in admins
    ]
    # A batch of about one second of calls keeps the pool busy; the limiter sets the pace.
    batch = max(100, min(cap, 1000) // containers)
    request = StartRequest(source="profiles", target="supabase", batch_size=batch, max_requests_per_s=cap)
    start_migration(request, contexts[0])
    lock = threading.Lock()
    totals = [0] * containers

    def drain(k: int) -> None:
        while True:
            with lock:
                if not queue.messages:
                    return
                msg = queue.messages.pop(0)
            totals[k] += process_batch(msg, contexts[k]).outcomes.get("migrated", 0)

    began = time.monotonic()
    threads = [threading.Thread(target=drain, args=(k,)) for k in range(containers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    migrated = sum(totals)
    served = sum(a.requests_sent for a in admins) - 1  # less start's check
    for ctx in contexts:
        ctx.connections.close()
    for admin in admins:
        admin.close()
    return {
        "cap_rps": cap,
        "users": migrated,
        "seconds": round(elapsed, 2),
        "users_per_s": round(migrated / elapsed, 1),
        "of_cap": round(migrated / elapsed / cap, 3),
        "requests": served,
        "requests_per_s": round(served / elapsed, 1),
        "retries": sum(a.retries for a in admins),
        "containers": containers,
        "errors": users - migrated,
    }


def _sequential_run(url: str, gotrue: _StandInProcess, users: int) -> dict[str, Any]:
    """The seed's way: for each user, create it in GoTrue, then insert its tracking row; one at a time."""
    admin = GoTrueAdmin(f"{gotrue.url}/auth/v1", gotrue.service_key)
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id::text, lower(email), password_hash FROM public.profiles ORDER BY id LIMIT %s", (users,)
        )
        profiles = rows.fetchall()
        unlimited = RateLimiter(1e6)
        began = time.monotonic()
        for user_id, email, password_hash in profiles:
            body = {"id": user_id, "email": email, "email_confirm": True, "password_hash": password_hash}
            admin.create_user(body, unlimited)
            conn.execute(
                "INSERT INTO migrated_users (original_id, new_auth_id, email, migration_id, source)"
                " VALUES (%s, %s, %s, NULL, 'profiles')",
                (user_id, user_id, email),
            )
        elapsed = time.monotonic() - began
    admin.close()
    return {"way": "per-user sequential", "users": len(profiles), "users_per_s": round(len(profiles) / elapsed, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--caps", default="50,200,500")
    parser.add_argument("--seconds", type=float, default=6.0, help="about this long at each cap")
    parser.add_argument("--sequential-users", type=int, default=100)
    parser.add_argument("--containers", type=int, default=1, help="engine contexts draining side by side")
    parser.add_argument("--ceiling-users", type=int, default=3000, help="users of the no-cap run (0: skip it)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    caps = [int(c) for c in args.caps.split(",")]
    name, url = _database()
    results: dict[str, Any] = {"latency_ms": args.latency_ms, "containers": args.containers, "engine": []}
    try:
        prepare_migration_database(url, profiles=True)
        gotrue = _StandInProcess(url, args.latency_ms / 1000)
        try:
            for cap in caps:
                users = int(cap * args.seconds)
                with psycopg.connect(url) as conn:
                    conn.execute("TRUNCATE public.profiles")
                generate_profiles(
                    url, users, seed=cap, edge_cases=False, with_password_hash=True, bcrypt_rounds=4,
                    reference_time=system_clock(),
                )  # fmt: skip
                _reset(url)
                results["engine"].append(_engine_run(url, gotrue, cap, users, args.containers))
            if args.ceiling_users:
                with psycopg.connect(url) as conn:
                    conn.execute("TRUNCATE public.profiles")
                generate_profiles(
                    url, args.ceiling_users, seed=1, edge_cases=False, with_password_hash=True, bcrypt_rounds=4,
                    reference_time=system_clock(),
                )  # fmt: skip
                _reset(url)
                results["ceiling"] = _engine_run(url, gotrue, MAX_REQUESTS_PER_S, args.ceiling_users, args.containers)
            ceiling = results.get("ceiling", {}).get("users_per_s") or float("inf")
            for r in results["engine"]:
                r["of_reach"] = round(r["users_per_s"] / min(r["cap_rps"], ceiling), 3)
            _reset(url)
            results["sequential"] = _sequential_run(url, gotrue, args.sequential_users)
        finally:
            gotrue.stop()
    finally:
        _drop(name)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"GoTrue stand-in, {args.latency_ms:.0f} ms added per call, {args.containers} container(s)")
        header = f"{'cap req/s':>10} {'users':>7} {'s':>7} {'users/s':>9} {'of cap':>7} {'of reach':>9}"
        print(f"{header} {'req/s sent':>11}")
        for r in results["engine"]:
            print(
                f"{r['cap_rps']:>10} {r['users']:>7} {r['seconds']:>7} {r['users_per_s']:>9} "
                f"{r['of_cap']:>7.0%} {r['of_reach']:>9.0%} {r['requests_per_s']:>11}"
            )
        if "ceiling" in results:
            c = results["ceiling"]
            row = f"{'no cap':>10} {c['users']:>7} {c['seconds']:>7} {c['users_per_s']:>9}"
            print(f"{row}   (what this machine serves)")
        seq = results["sequential"]
        print(f"per-user sequential (the seed's way): {seq['users_per_s']} users/s over {seq['users']} users")
    return 0


if __name__ == "__main__":
    sys.exit(main())
