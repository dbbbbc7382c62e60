"""`auth-migrate openapi` and `auth-migrate bench`: the API's contract, and the benchmarks in bench/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

from auth_migration_ops.cli.common import EXIT_OK, EXIT_USAGE, error


@click.command(
    short_help="the APIs' OpenAPI 3.1 document (auth and admin)",
    help="Print the OpenAPI 3.1 document of the auth API and the admin API (kept in docs/openapi.json).",
)
@click.option("--out", type=Path, help="write it to this file instead of stdout")
def openapi(out: Path | None) -> int:
    from auth_migration.openapi import openapi_document

    text = json.dumps(openapi_document(), indent=2) + "\n"
    if out:
        out.write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


@click.command(
    short_help="benchmarks side by side: raw floor, engine, per-user, re-run (bench/)",
    help="Benchmarks side by side: raw floor, the engine, the per-user way, re-run, workers. "
    "Every argument goes to bench.migration_bench (`auth-migrate bench --help`, bench/README.md).",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
)
@click.argument("bench_args", nargs=-1, type=click.UNPROCESSED)
def bench(bench_args: tuple[str, ...]) -> int:
    # bench/ lives beside template.yaml and is not shipped: it runs in a process of its own, so no
    # module of ops/ imports it, and its exit code is the command's.
    from auth_migration_ops.local.template import REPO_ROOT

    if not (REPO_ROOT / "bench" / "migration_bench.py").is_file():
        error("bench/ is not here; run from a clone of the repository")
        return EXIT_USAGE
    return subprocess.call([sys.executable, "-m", "bench.migration_bench", *bench_args], cwd=REPO_ROOT)
