"""A batch worker in its own process: the local stand-in for one Lambda instance behind the SQS trigger.

`python -m auth_migration_ops.local.worker --endpoint-url URL --queue-url URL --queue-arn ARN` polls
until the queue is drained, running MigrateBatch in-process with the environment it inherited.
Used to run several real processes at once and to kill one mid-batch (SIGKILL) in the tests.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from auth_migration_ops.local.aws import LocalAws
from auth_migration_ops.local.invoke import LocalFunction
from auth_migration_ops.local.sqs_poller import EventSourceMapping
from auth_migration_ops.local.template import resolve_function


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="auth_migration_ops.local.worker")
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--queue-arn", required=True)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=600)
    args = parser.parse_args(argv)

    aws = LocalAws.attach(args.endpoint_url)
    function = LocalFunction(resolve_function("MigrateBatch", resource_values={"MigrationBatchQueue": args.queue_url}))
    env = dict(os.environ)

    def handler(event: dict[str, Any], _context: Any) -> Any:
        return function.invoke(event, env_overrides=env)

    esm = EventSourceMapping(aws.client("sqs"), args.queue_url, args.queue_arn, handler, batch_size=args.batch_size)
    print("worker ready", flush=True)
    stats = esm.run_until_drained(timeout_s=args.timeout_s)
    print(f"worker done: {stats}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
