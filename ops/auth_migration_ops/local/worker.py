"""A batch worker in its own process: the local stand-in for one Lambda instance behind the SQS trigger.

`python -m auth_migration_ops.local.worker --endpoint-url URL --queue-url URL --queue-arn ARN` polls
until the queue is drained, running MigrateBatch in-process with the environment it inherited.
Used to run several real processes at once and to kill one mid-batch (SIGKILL) in the tests.
`--telemetry FILE` appends what the function prints to FILE (JSON lines, as the local pipeline's run
directory holds them; several workers may share one file) instead of this process's stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from auth_migration_ops.local.aws import LocalAws
from auth_migration_ops.local.invoke import LocalFunction
from auth_migration_ops.local.sqs_poller import EventSourceMapping
from auth_migration_ops.local.telemetry import TelemetryFile
from auth_migration_ops.local.template import resolve_function


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="auth_migration_ops.local.worker")
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--queue-arn", required=True)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=600)
    parser.add_argument("--telemetry", type=Path, default=None, help="JSON-lines file for the function's output")
    args = parser.parse_args(argv)

    aws = LocalAws.attach(args.endpoint_url)
    function = LocalFunction(resolve_function("MigrateBatch", resource_values={"MigrationBatchQueue": args.queue_url}))
    env = dict(os.environ)
    with ExitStack() as stack:
        telemetry = stack.enter_context(TelemetryFile(args.telemetry)) if args.telemetry is not None else None

        def handler(event: dict[str, Any], _context: Any) -> Any:
            return function.invoke(event, env_overrides=env, telemetry=telemetry)

        esm = EventSourceMapping(
            aws.client("sqs"),
            args.queue_url,
            args.queue_arn,
            handler,
            batch_size=args.batch_size,
            telemetry=telemetry,
        )
        print("worker ready", flush=True)
        stats = esm.run_until_drained(timeout_s=args.timeout_s)
        print(f"worker done: {stats}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
