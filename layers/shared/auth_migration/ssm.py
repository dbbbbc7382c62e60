"""One boto3 SSM client per container, shared by every reader of SSM: the settings at cold start (the secrets
under PARAMETER_PREFIX, the Sentry DSN parameter) and the rollout flags on requests. Each reader still gets a
Powertools SSMProvider of its own, so each keeps its own cache and max age.

Why: every SSMProvider() builds a new boto3 session and client, and botocore loads the SSM service model and
resolves the endpoint again for each: measured here 115-165 ms for the second one, as for the first. Without
sharing, a cold start built up to two (settings) and the first request a third (flags).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SSMProvider

_lock = threading.Lock()
_clients: dict[tuple[str | None, ...], Any] = {}
# What boto3 reads from the environment when it builds a client: a client built under other values (another
# endpoint, region or credentials, as a test's moto server brings) is not reused.
_CLIENT_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SSM",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
)


#: botocore's defaults (60 s to connect, 60 s to read, legacy retries) would let a hung SSM hold a request far
#: past the API functions' 10-15 s Timeout, and a SnapStart restore hook past the 10 s Lambda gives it. With
#: these a read gives up within ~9 s (two attempts of 2 + 2 s, and standard mode's backoff of at most 1 s):
#: the flags fall back to their last good snapshot, the settings to the snapshot's. A read takes ~10s of ms.
CLIENT_LIMITS: Final[Mapping[str, Any]] = {
    "connect_timeout": 2,
    "read_timeout": 2,
    "retries": {"mode": "standard", "total_max_attempts": 2},
}


def ssm_provider() -> SSMProvider:
    """A new SSMProvider (its own cache) over the container's one SSM client, built on first use."""
    # Imported here: boto3 is a large share of a cold start, and a function without SSM never needs it.
    import boto3
    from aws_lambda_powertools.utilities.parameters import SSMProvider
    from botocore.config import Config

    key = tuple(os.environ.get(name) for name in _CLIENT_ENV)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = boto3.client("ssm", config=Config(**CLIENT_LIMITS))
    return SSMProvider(boto3_client=client)


def close_connections() -> None:
    """Close the pooled connections of every SSM client built so far (each opens new ones on its next call).

    For a SnapStart restore: the connection the init's read left open belongs to the snapshot, not to the
    network of the environment restored from it, and a reuse would fail before botocore retried it.
    """
    with _lock:
        clients = list(_clients.values())
    for client in clients:
        client.close()
