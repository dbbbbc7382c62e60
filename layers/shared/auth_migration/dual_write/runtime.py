"""Builds the auth API's and Reconcile's collaborators from Settings, once per container."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from auth_migration.backends.better_auth import BetterAuthBackend
from auth_migration.backends.supabase import SupabaseAuthBackend
from auth_migration.dual_write.service import AuthService
from auth_migration.observability import logger
from auth_migration.runtime import connections, flag_source
from auth_migration.settings import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver
    from mypy_boto3_sqs import SQSClient

    from auth_migration.dual_write.reconcile import Reconciler

__all__ = ["SqsRepairQueue", "api_app", "auth_service", "reconciler"]


class SqsRepairQueue:
    """Gap ids to the Reconcile queue. boto3 is imported on first send: most requests never send."""

    def __init__(self, queue_url: str, sqs_client: SQSClient | None = None) -> None:
        self.queue_url = queue_url
        self._sqs = sqs_client

    def send(self, message: Mapping[str, Any]) -> None:
        if self._sqs is None:
            import boto3

            self._sqs = boto3.client("sqs")
        self._sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(dict(message)))


def auth_service(settings: Settings) -> AuthService:
    return AuthService(
        supabase=SupabaseAuthBackend.from_settings(settings),
        better_auth=BetterAuthBackend.from_settings(settings),
        connections=connections(settings),
        repairs=SqsRepairQueue(settings.reconcile_queue_url) if settings.reconcile_queue_url else None,
        on_warning=lambda msg, extra: logger.warning(msg, extra=extra),
    )


def reconciler(settings: Settings) -> Reconciler:
    # Imported here: Signup and Login import this module for `api_app` and never reconcile (cold start).
    from auth_migration.dual_write.reconcile import Reconciler

    return Reconciler(supabase=SupabaseAuthBackend.from_settings(settings), connections=connections(settings))


def api_app(settings: Settings) -> APIGatewayRestResolver:
    """The Signup/Login resolver with its service and flag source, built once per container."""
    # Imported here: Event Handler's OpenAPI machinery costs ~70 ms of cold start Reconcile does not need.
    from auth_migration.dual_write.api import build_resolver

    service = auth_service(settings)
    return build_resolver(lambda: service, flag_source(settings).snapshot)
