"""The operator's side of the bundle: never shipped to Lambda.

- `cli/`: the `auth-migrate` command an operator runs (migrate, db, status, reconcile, local, bench, ...).
- `local/`: the SAM-like runtime that lets functions run here as they would in AWS: template.yaml
  resolution, in-process invoke, moto, the SQS event source mapping, the local REST API.
- `standins/`: systems we cannot install here, so tests and demos have something real to talk to:
  the GoTrue stand-in, a fault proxy, the real Better-Auth server's launcher.
- `datakit/`: generated Supabase / profiles users with every edge case, the schemas they live in,
  and a Postgres to put them in (the configured one, else an embedded one).

Dependencies run one way: cli -> local -> standins -> datakit.
"""
