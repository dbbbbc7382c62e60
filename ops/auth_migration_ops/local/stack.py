"""What the API functions talk to on this machine: Postgres, Better-Auth, a GoTrue stand-in, moto SQS/SSM.

`LocalStack.start()` either attaches to services the environment names (SUPABASE_URL and BETTER_AUTH_URL
both set: they, the database URLs and the AWS settings of the environment are used as they are) or
starts them here:

- Postgres: the one answering at `database_url`, else an embedded one (as `auth-migrate demo` does),
  with a freshly recreated database holding Supabase's `auth` schema, Better-Auth's tables and the
  migration state (`local_schema.prepare_migration_database`);
- the real Better-Auth server and the GoTrue stand-in, both on that database;
- moto, with the rollout flags under the template's PARAMETER_PREFIX (dual-write) and the template's
  SQS queues, created under their template names.

`env_overrides` and `resource_values` then hold what the functions need (for `LocalFunction` /
`resolve_function`): service URLs, keys, database URLs, the AWS endpoint, queue URLs behind `!Ref`s.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from auth_migration.flags import Flags, MigrationMode
from auth_migration.settings import redacted_url
from auth_migration_ops.local.template import IntrinsicResolver, load_template

if TYPE_CHECKING:
    from mypy_boto3_sqs.literals import QueueAttributeNameType

    from auth_migration_ops.datakit.postgres import LocalPostgres
    from auth_migration_ops.local.aws import LocalAws
    from auth_migration_ops.standins.better_auth import BetterAuthServer
    from auth_migration_ops.standins.gotrue import GoTrueStandIn

__all__ = ["DEFAULT_DATABASE_URL", "PASS_THROUGH_ENV", "LocalStack", "LocalStackError", "local_flags"]

#: The local API's own database; recreated on every start (it is never a database you keep data in).
DEFAULT_DATABASE_URL: Final = "postgresql://postgres@127.0.0.1:5432/auth_migration_local_api"

#: Variables handed to the functions as they are when the environment names the services.
PASS_THROUGH_ENV: Final = (
    "SUPABASE_URL",
    "SUPABASE_SERVICE_KEY",
    "SUPABASE_JWT_SECRET",
    "BETTER_AUTH_URL",
    "BETTER_AUTH_SECRET",
    "OLD_DATABASE_URL",
    "NEW_DATABASE_URL",
    "BETTER_AUTH_DATABASE_URL",
    "PARAMETER_PREFIX",
    "MIGRATION_QUEUE_URL",
    "SENTRY_DSN",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)

_QUEUE_TYPE: Final = "AWS::SQS::Queue"
# Queue properties that map 1:1 onto SQS attributes (the rest: RedrivePolicy after all queues exist).
_QUEUE_ATTRIBUTES: Final = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
)


class LocalStackError(RuntimeError):
    """The environment names the services only half-way (one of SUPABASE_URL / BETTER_AUTH_URL)."""


def local_flags() -> dict[str, str]:
    """The flags the local stack puts in SSM: dual-write, Supabase still primary, validation on."""
    return Flags(migration_mode=MigrationMode.DUAL_WRITE).as_parameters()


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class LocalStack:
    """Everything the template's API functions call, attached to or started here; a context manager.

    Parameters:
        template_path: the SAM template (its Stage, PARAMETER_PREFIX and SQS queues); template.yaml by default.
        environ: where SUPABASE_URL / BETTER_AUTH_URL (and the rest of PASS_THROUGH_ENV) are looked up;
            os.environ by default.
        database_url: the database to (re)create for a started stack; an embedded Postgres starts
            when no server answers there.
        parameter_overrides: template parameter overrides (e.g. {"Stage": "staging"}).
        flags: the SSM flag values to write; `local_flags()` by default.
        log: where progress lines go (stderr by default).
    """

    def __init__(
        self,
        template_path: Path | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        database_url: str = DEFAULT_DATABASE_URL,
        parameter_overrides: Mapping[str, str] | None = None,
        flags: Mapping[str, str] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.template_path = template_path
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.database_url = database_url
        self.parameter_overrides = dict(parameter_overrides or {})
        self.flags = dict(flags if flags is not None else local_flags())
        self.log = log or _stderr
        #: Variables to hand the functions (LocalFunction env_overrides).
        self.env_overrides: dict[str, str] = {}
        #: `!Ref` / `!GetAtt` values of local resources (resolve_function resource_values).
        self.resource_values: dict[str, str] = {}
        #: (what, where) of every service in use, for the banner.
        self.services: list[tuple[str, str]] = []
        self.external = False
        self.postgres: LocalPostgres | None = None
        self.better_auth: BetterAuthServer | None = None
        self.gotrue: GoTrueStandIn | None = None
        self.aws: LocalAws | None = None
        self.parameter_prefix = ""
        self._queue_urls: list[str] = []
        self._parameter_names: list[str] = []

    # --- lifecycle ---

    def start(self) -> LocalStack:
        """Attach or start; on any failure whatever already started is stopped before re-raising.

        Raises:
            LocalStackError: only one of SUPABASE_URL / BETTER_AUTH_URL is set.
            PostgresUnavailable, RuntimeError, OSError, psycopg.Error: a service could not start.
        """
        supabase_url = self.environ.get("SUPABASE_URL", "").strip()
        better_auth_url = self.environ.get("BETTER_AUTH_URL", "").strip()
        if bool(supabase_url) != bool(better_auth_url):
            missing = "BETTER_AUTH_URL" if supabase_url else "SUPABASE_URL"
            raise LocalStackError(
                f"{missing} is not set: set both SUPABASE_URL and BETTER_AUTH_URL to use running services, "
                "or neither to start a local stack"
            )
        if supabase_url:
            self._attach()
            return self
        try:
            self._start_local()
        except BaseException:
            self.stop()
            raise
        return self

    def _attach(self) -> None:
        self.external = True
        self.env_overrides = {name: self.environ[name] for name in PASS_THROUGH_ENV if self.environ.get(name)}
        self.services = [
            ("Supabase (from SUPABASE_URL)", self.env_overrides["SUPABASE_URL"]),
            ("Better-Auth (from BETTER_AUTH_URL)", self.env_overrides["BETTER_AUTH_URL"]),
        ]
        for name in ("NEW_DATABASE_URL", "OLD_DATABASE_URL", "BETTER_AUTH_DATABASE_URL"):
            if name in self.env_overrides:
                self.services.append((name, redacted_url(self.env_overrides[name])))
        self.services.append(("AWS", self.env_overrides.get("AWS_ENDPOINT_URL", "as the environment configures it")))
        self.log("SUPABASE_URL and BETTER_AUTH_URL are set: using those services, starting nothing")

    def _start_local(self) -> None:
        # Imported here: attaching to running services needs none of them (nor Node, nor moto).
        from auth_migration_ops.datakit.postgres import ensure_postgres, recreate_database
        from auth_migration_ops.datakit.schemas import prepare_migration_database
        from auth_migration_ops.local.aws import LocalAws
        from auth_migration_ops.standins.better_auth import BetterAuthServer
        from auth_migration_ops.standins.gotrue import GoTrueStandIn

        template = load_template(self.template_path)
        resolver = IntrinsicResolver(template, parameter_overrides=self.parameter_overrides)
        stage = resolver.parameter("Stage") if "Stage" in (template.get("Parameters") or {}) else "dev"
        self.parameter_prefix = _parameter_prefix(template, resolver, stage)

        self.log("starting the local stack (SUPABASE_URL / BETTER_AUTH_URL are not set)")
        self.postgres = ensure_postgres(self.database_url)
        url = self.postgres.url
        recreate_database(url)
        prepare_migration_database(url)
        kind = "embedded, started here" if self.postgres.embedded else "already running"
        self.services.append(("Postgres", f"{redacted_url(url)} ({kind}; database recreated)"))
        self.log(f"  Postgres: {redacted_url(url)} ({kind}); database recreated with auth, Better-Auth and state")

        # Better-Auth's tables already exist (bundled DDL, proven identical): no Node migration needed.
        self.better_auth = BetterAuthServer(url, migrate=False).start()
        self.services.append(("Better-Auth", self.better_auth.base_url))
        self.log(f"  Better-Auth server: {self.better_auth.base_url}")

        self.gotrue = GoTrueStandIn(url, create_schema=False).start()
        self.services.append(("GoTrue stand-in (SUPABASE_URL)", f"{self.gotrue.url} (also {self.gotrue.url}/auth/v1)"))
        self.log(f"  GoTrue stand-in: {self.gotrue.url}")

        self.aws = LocalAws()
        self._put_flags()
        self._create_queues(template, stage)
        self.services.append(("moto (SSM, SQS)", self.aws.endpoint_url))
        queues = ", ".join(sorted(k for k in self.resource_values if "." not in k)) or "none"
        self.log(f"  moto: {self.aws.endpoint_url}; flags under {self.parameter_prefix}; queues: {queues}")

        self.env_overrides = {
            **self.aws.env(),
            "SUPABASE_URL": self.gotrue.url,
            "SUPABASE_SERVICE_KEY": self.gotrue.service_key,
            "SUPABASE_JWT_SECRET": self.gotrue.jwt_secret,
            "BETTER_AUTH_URL": self.better_auth.base_url,
            "BETTER_AUTH_SECRET": self.better_auth.effective_secret,
            "OLD_DATABASE_URL": url,
            "NEW_DATABASE_URL": url,
            "BETTER_AUTH_DATABASE_URL": url,
            "PARAMETER_PREFIX": self.parameter_prefix,
        }

    def _put_flags(self) -> None:
        from auth_migration_ops.local.aws import put_parameters

        assert self.aws is not None
        put_parameters(self.aws.client("ssm"), self.parameter_prefix, self.flags)
        base = self.parameter_prefix.rstrip("/")
        self._parameter_names = [f"{base}/{name}" for name in self.flags]

    def _create_queues(self, template: Mapping[str, Any], stage: str) -> None:
        assert self.aws is not None
        sqs = self.aws.client("sqs")
        resources: Mapping[str, Any] = template.get("Resources") or {}
        queues = {
            logical_id: resource.get("Properties") or {}
            for logical_id, resource in resources.items()
            if isinstance(resource, Mapping) and resource.get("Type") == _QUEUE_TYPE
        }
        # First every queue (a redrive policy names its DLQ's ARN), then the redrive policies.
        for logical_id, raw in queues.items():
            props = self._resolve(template, raw)
            fifo = str(props.get("FifoQueue", "")).lower() == "true"
            name = str(props.get("QueueName") or f"auth-migration-{stage}-{logical_id}" + (".fifo" if fifo else ""))
            attributes: dict[QueueAttributeNameType, str] = {
                key: _attribute(props[key])
                for key in _QUEUE_ATTRIBUTES
                if key in props and props[key] not in (None, "")
            }
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self._queue_urls.append(url)
            self.resource_values.update(
                {
                    logical_id: url,
                    f"{logical_id}.Arn": arn,
                    f"{logical_id}.QueueName": name,
                    f"{logical_id}.QueueUrl": url,
                }
            )
        for logical_id, raw in queues.items():
            redrive = self._resolve(template, raw).get("RedrivePolicy")
            if isinstance(redrive, Mapping) and redrive.get("deadLetterTargetArn"):
                policy = {
                    "deadLetterTargetArn": redrive["deadLetterTargetArn"],
                    "maxReceiveCount": int(redrive.get("maxReceiveCount", 10)),
                }
                sqs.set_queue_attributes(
                    QueueUrl=self.resource_values[logical_id], Attributes={"RedrivePolicy": json.dumps(policy)}
                )

    def _resolve(self, template: Mapping[str, Any], value: Any) -> dict[str, Any]:
        resolver = IntrinsicResolver(
            template, parameter_overrides=self.parameter_overrides, resource_values=self.resource_values
        )
        resolved = resolver.resolve(value)
        return resolved if isinstance(resolved, dict) else {}

    def stop(self) -> None:
        """Stop what was started here, in reverse order; idempotent. Attached services are left alone.

        moto keeps its state per process, so the flags and queues made here are deleted too: a later
        stack (or test) in the same process starts from a clean account.
        """
        aws, self.aws = self.aws, None
        if aws is not None:
            with contextlib.suppress(Exception):
                sqs = aws.client("sqs")
                for url in self._queue_urls:
                    sqs.delete_queue(QueueUrl=url)
                ssm = aws.client("ssm")
                for start in range(0, len(self._parameter_names), 10):  # DeleteParameters takes 10 at most
                    ssm.delete_parameters(Names=self._parameter_names[start : start + 10])
            aws.stop()
        self._queue_urls, self._parameter_names = [], []
        gotrue, self.gotrue = self.gotrue, None
        if gotrue is not None:
            gotrue.stop()
        better_auth, self.better_auth = self.better_auth, None
        if better_auth is not None:
            better_auth.stop()
        postgres, self.postgres = self.postgres, None
        if postgres is not None:
            postgres.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalStack(external={self.external}, services={[what for what, _ in self.services]})"


def _parameter_prefix(template: Mapping[str, Any], resolver: IntrinsicResolver, stage: str) -> str:
    """PARAMETER_PREFIX as the template's Globals give it to every function, else /auth-migration/<stage>/."""
    variables = (((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}).get(
        "Variables"
    ) or {}
    prefix = resolver.resolve(variables.get("PARAMETER_PREFIX")) if "PARAMETER_PREFIX" in variables else None
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        prefix = f"/auth-migration/{stage}/"
    return prefix if prefix.endswith("/") else prefix + "/"


def _attribute(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
