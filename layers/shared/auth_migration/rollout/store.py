"""Where the flags live: SSM Parameter Store under the stage's prefix (what every function reads)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from auth_migration.exceptions import ConfigError
from auth_migration.flags import FLAG_NAMES

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

__all__ = ["FlagStore", "SsmFlagStore"]

#: Emails are personal data: a new whitelist parameter is encrypted; an existing one keeps its type.
_SECURE_BY_DEFAULT = frozenset({"CANARY_WHITELIST"})


class FlagStore(Protocol):
    def read(self) -> dict[str, str]:
        """Every flag stored (SSM name without the prefix -> string)."""
        ...

    def write(self, name: str, value: str) -> None: ...


class SsmFlagStore:
    """Flags under `prefix` in SSM. Raw boto3 rather than Powertools Parameters: the CLI must see what
    is stored now (no cache) and write, which Parameters does not do."""

    def __init__(self, prefix: str, client: SSMClient) -> None:
        if not prefix.startswith("/") or not prefix.endswith("/"):
            raise ConfigError("the flag parameter prefix must be an SSM path like /auth-migration/dev/")
        self.prefix = prefix
        self._client = client
        self._types: dict[str, str] = {}

    def read(self) -> dict[str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        found: dict[str, str] = {}
        try:
            pages = self._client.get_paginator("get_parameters_by_path").paginate(
                Path=self.prefix.rstrip("/"), Recursive=False, WithDecryption=True
            )
            for page in pages:
                for parameter in page.get("Parameters", []):
                    name = parameter["Name"].removeprefix(self.prefix)
                    if name in FLAG_NAMES:
                        found[name] = parameter["Value"]
                        self._types[name] = parameter["Type"]
        except (BotoCoreError, ClientError) as exc:
            raise ConfigError(f"cannot read the flags under {self.prefix}: {_reason(exc)}") from exc
        return found

    def write(self, name: str, value: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        kind: Any = self._types.get(name) or ("SecureString" if name in _SECURE_BY_DEFAULT else "String")
        try:
            self._client.put_parameter(Name=self.prefix + name, Value=value, Type=kind, Overwrite=True)
        except (BotoCoreError, ClientError) as exc:
            raise ConfigError(f"cannot write {self.prefix}{name}: {_reason(exc)}") from exc


def _reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or type(exc).__name__)
    return type(exc).__name__
