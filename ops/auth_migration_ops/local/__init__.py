"""What `sam local` would give us, without a container runtime: used by the CLI's `--local` paths,
`invoke`, `local api`, the demo and the integration tests.

template (template.yaml -> each function's handler and environment), invoke (a handler run in-process
as Lambda would), aws (a moto server for SQS and SSM), sqs_poller (Lambda's SQS event source mapping),
pipeline (MigrationControl + MigrateBatch over that queue), worker (one MigrateBatch in its own
process), api and stack (the REST API from HTTP requests, with everything it needs started).
"""
