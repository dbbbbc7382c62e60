"""`auth-migrate`: the ops CLI (schema, migrations, local pipeline, in-process invoke, the demo run)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from auth_migration.exceptions import AuthMigrationError
from auth_migration.settings import Settings, load_settings

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _batch_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch size must be an integer, got {text!r}") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"batch size must be between 1 and 10000, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a TCP port, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port (0-65535; 0 picks a free one), got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auth-migrate", description=__doc__)
    parser.add_argument("--env-file", type=Path, default=Path(".env"), help="dotenv file (default ./.env)")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="migration-state schema").add_subparsers(dest="db_command", required=True)
    up = db.add_parser("upgrade", help="apply the versioned SQL migrations (idempotent)")
    up.add_argument("--database-url", help="default: NEW_DATABASE_URL")

    mig = sub.add_parser("migrate", help="bulk migrations").add_subparsers(dest="migrate_command", required=True)
    start = mig.add_parser("start", help="plan and enqueue a migration")
    start.add_argument("--source", default="supabase", choices=["supabase", "profiles"])
    start.add_argument("--target", default="better-auth", choices=["better-auth"])
    start.add_argument("--batch-size", type=_batch_size, default=100)
    start.add_argument("--dry-run", action="store_true", help="decide and report, write nothing to the target")
    for p in (start, mig.add_parser("resume", help="re-send unfinished batches, plan users added past the end")):
        if p is not start:
            p.add_argument("migration_id")
        p.add_argument("--local", action="store_true", help="run the SQS pipeline here (moto + in-process functions)")
        p.add_argument("--concurrency", type=_positive, default=2, help="local batch workers (default 2)")
        p.add_argument("--json", action="store_true", help="print the final report as JSON")
    for name, text in (("rollback", "delete exactly the users this migration created"), ("status", "report")):
        p = mig.add_parser(name, help=text)
        p.add_argument("migration_id")
        p.add_argument("--json", action="store_true")

    inv = sub.add_parser("invoke", help="run a template function in-process, like `sam local invoke`")
    inv.add_argument("function", help="logical id or short name, e.g. MigrationControl")
    inv.add_argument("-e", "--event", type=Path, required=True, help="event JSON file (see events/)")
    inv.add_argument(
        "--aws",
        action="store_true",
        help="use the AWS the environment points at, instead of a local moto SQS/SSM (the default)",
    )

    bench = sub.add_parser("bench", help="benchmarks: raw floor vs engine vs per-user, re-run, workers (bench/)")
    bench.add_argument("bench_args", nargs="*", help="arguments of bench.migration_bench (see bench/README.md)")

    demo = sub.add_parser("demo", help="local end-to-end migration of generated Supabase users into Better-Auth")
    demo.add_argument("--users", type=_positive, default=10_000)
    demo.add_argument("--batch-size", type=_batch_size, default=100)
    demo.add_argument("--concurrency", type=_positive, default=2)
    demo.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/auth_migration_demo",
        help="database to (re)create for the demo; an embedded Postgres starts if none answers",
    )
    demo.add_argument("--json", action="store_true")

    status = sub.add_parser(
        "status", help="users per system: total, supabase, better-auth, fully migrated, completion rate, open gaps"
    )
    status.add_argument("--json", action="store_true")
    status.add_argument("--database-url", help="default: NEW_DATABASE_URL")

    rec = sub.add_parser("reconcile", help="dual-write repair").add_subparsers(dest="reconcile_command", required=True)
    sweep = rec.add_parser("sweep", help="repair every open dual-write gap now, here (not through the queue)")
    sweep.add_argument("--json", action="store_true")

    oapi = sub.add_parser("openapi", help="print the auth API's OpenAPI 3.1 document")
    oapi.add_argument("--out", type=Path, help="write it to this file instead of stdout")

    local = sub.add_parser("local", help="run the template's functions here").add_subparsers(
        dest="local_command", required=True
    )
    api = local.add_parser(
        "api",
        help="serve the template's REST API routes here, like `sam local start-api`",
        description=(
            "Serves every `Api` event of the template's functions, each function run in-process. With "
            "SUPABASE_URL and BETTER_AUTH_URL both set, the functions use those services (and the database "
            "and AWS settings of the environment); otherwise Postgres, Better-Auth, a GoTrue stand-in and "
            "moto (SSM flags, SQS) start here and stop with the server (Ctrl-C or SIGTERM)."
        ),
    )
    api.add_argument("--port", type=_port, default=3000, help="default 3000, as sam local")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    api.add_argument("--template", type=Path, default=None, help="SAM template (default: the repository's)")
    api.add_argument(
        "--database-url",
        default=None,
        help="database the started stack (re)creates (default auth_migration_local_api on 127.0.0.1:5432; "
        "an embedded Postgres starts if none answers)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its options belong to bench.migration_bench, not to this parser
        return _bench(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except AuthMigrationError as exc:
        print(f"auth-migrate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if type(exc).__name__ == "InvalidRequest" else EXIT_ERROR
    except KeyboardInterrupt:
        hint = "; `auth-migrate migrate resume ID` continues" if argv[:1] == ["migrate"] else ""
        print(f"auth-migrate: interrupted{hint}", file=sys.stderr)
        return 130


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(os.environ, dotenv_path=args.env_file if args.env_file.is_file() else None)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "db":
        return _db_upgrade(args)
    if args.command == "migrate":
        return _migrate(args)
    if args.command == "invoke":
        return _invoke(args)
    if args.command == "bench":
        return _bench(args.bench_args)
    if args.command == "status":
        return _status(args)
    if args.command == "reconcile":
        return _reconcile_sweep(args)
    if args.command == "openapi":
        return _openapi(args)
    if args.command == "local":
        from auth_migration_ops.local_api import serve

        return serve(host=args.host, port=args.port, template_path=args.template, database_url=args.database_url)
    from auth_migration_ops.demo import run_demo

    return run_demo(
        users=args.users,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        database_url=args.database_url,
        as_json=args.json,
    )


def _status(args: argparse.Namespace) -> int:
    from auth_migration.dual_write.records import migration_stats
    from auth_migration.store import connect, require_schema

    url = args.database_url or _settings(args).new_database_url
    with connect(url, autocommit=True) as conn:
        require_schema(conn)
        stats = migration_stats(conn).as_dict()
    if args.json:
        print(json.dumps(stats))
        return EXIT_OK
    labels = {
        "total_users": "users tracked",
        "supabase_migrated": "in Supabase",
        "better_auth_migrated": "in Better-Auth",
        "fully_migrated": "in both",
        "data_validated": "validated",
        "completion_rate": "completion rate %",
        "open_gaps": "open dual-write gaps",
        "conflicts": "gaps needing a person",
    }
    width = max(len(v) for v in labels.values())
    for key, label in labels.items():
        print(f"{label:<{width}}  {stats[key]}")
    return EXIT_OK


def _reconcile_sweep(args: argparse.Namespace) -> int:
    from auth_migration.dual_write.reconcile_worker import sweep
    from auth_migration.dual_write.runtime import reconciler

    worker = reconciler(_settings(args))
    try:
        counts = sweep(worker, None, older_than_s=0)
    finally:
        worker.conns.close()
        worker.supabase.close()
    print(json.dumps(counts) if args.json else f"repaired {counts['repaired']} gap(s)")
    return EXIT_OK


def _openapi(args: argparse.Namespace) -> int:
    from auth_migration.dual_write.api import build_resolver, openapi_schema
    from auth_migration.exceptions import ConfigError

    def unavailable() -> Any:
        raise ConfigError("the schema needs no service")

    text = json.dumps(openapi_schema(build_resolver(unavailable, unavailable)), indent=2) + "\n"
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _bench(argv: list[str]) -> int:
    from auth_migration_ops.template import DEFAULT_TEMPLATE_PATH

    # bench/ lives beside template.yaml in the repository (it is not shipped to Lambda).
    sys.path.insert(0, str(DEFAULT_TEMPLATE_PATH.parent))
    try:
        from bench.migration_bench import main as bench_main
    except ImportError:
        print("auth-migrate: error: bench/ is not importable; run from the repository root", file=sys.stderr)
        return EXIT_USAGE
    return bench_main(argv)


def _db_upgrade(args: argparse.Namespace) -> int:
    from auth_migration.store import connect, upgrade

    url = args.database_url or _settings(args).new_database_url
    with connect(url, autocommit=True) as conn:
        applied = upgrade(conn)
    print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
    return EXIT_OK


def _migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    cmd = args.migrate_command
    event: dict[str, Any] = {"action": cmd}
    if cmd == "start":
        event.update(source=args.source, target=args.target, batch_size=args.batch_size, dry_run=args.dry_run)
    else:
        event["migration_id"] = args.migration_id
    if cmd in ("start", "resume") and args.local:
        return _run_local(settings, event, concurrency=args.concurrency, as_json=args.json)

    from auth_migration.control import handle_control_event
    from auth_migration.runtime import engine_context

    ctx = engine_context(settings)
    try:
        reply = handle_control_event(event, ctx, default_dry_run=settings.dry_run)
    finally:
        ctx.connections.close()
    return _print_reply(reply, as_json=getattr(args, "json", False))


def _run_local(settings: Settings, event: dict[str, Any], *, concurrency: int, as_json: bool) -> int:
    from auth_migration_ops.local_pipeline import LocalPipeline
    from auth_migration_ops.progress import ProgressBar

    # What the functions print is their log (stdout in Lambda); here stdout carries the report.
    with (
        contextlib.redirect_stdout(sys.stderr),
        LocalPipeline(_database_urls(settings), stage=settings.stage, concurrency=concurrency) as pipeline,
    ):
        reply = pipeline.control(event)
        if not reply.get("ok"):
            return _print_reply(reply, as_json=as_json)
        bar = ProgressBar(enabled=not as_json)
        pipeline.run_batches(reply["migration_id"], on_progress=bar.update)
        bar.close()
        status = pipeline.control({"action": "status", "migration_id": reply["migration_id"]})
        status["dlq_messages"] = pipeline.dlq_depth()
    return _print_reply(status, as_json=as_json)


def _database_urls(settings: Settings) -> dict[str, str]:
    return {
        "OLD_DATABASE_URL": settings.old_database_url,
        "NEW_DATABASE_URL": settings.new_database_url,
        "BETTER_AUTH_DATABASE_URL": settings.better_auth_database_url or settings.new_database_url,
    }


def _invoke(args: argparse.Namespace) -> int:
    from auth_migration_ops.invoke import invoke_function, load_event

    try:
        event = load_event(args.event)
    except (OSError, ValueError) as exc:
        print(f"auth-migrate: error: cannot read event {args.event}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.aws:
            result = invoke_function(args.function, event)
        else:
            from auth_migration_ops.local_pipeline import LocalPipeline

            settings = _settings(args)
            with LocalPipeline(_database_urls(settings), stage=settings.stage) as pipeline:
                result = pipeline.function(args.function).invoke(event, env_overrides=pipeline.env)
    except KeyError as exc:
        print(f"auth-migrate: error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(result, indent=2, default=str))
    return EXIT_OK


def _print_reply(reply: dict[str, Any], *, as_json: bool) -> int:
    if not reply.get("ok", True):
        error = reply["error"]
        print(f"auth-migrate: error: {error['message']}", file=sys.stderr)
        return EXIT_USAGE if error["type"] == "invalid_request" else EXIT_ERROR
    if as_json:
        print(json.dumps(reply, indent=2, default=str))
    else:
        from auth_migration_ops.progress import format_report

        print(format_report(reply))
    return EXIT_OK


__all__ = ["build_parser", "main"]


if __name__ == "__main__":
    sys.exit(main())
