"""Builds the auth API's and Reconcile's collaborators from Settings, once per container."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from auth_migration.backends.better_auth import BetterAuthBackend
from auth_migration.backends.supabase import SupabaseAuthBackend
from auth_migration.dual_write.service import AuthService
from auth_migration.exceptions import ConfigError
from auth_migration.observability import logger
from auth_migration.runtime import connections, flag_source
from auth_migration.settings import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver
    from mypy_boto3_sqs import SQSClient

    from auth_migration.dual_write.reconcile import Reconciler
    from auth_migration.sessions.exchange import SessionExchanger

__all__ = ["SqsRepairQueue", "api_app", "auth_service", "exchange_app", "reconciler", "session_exchanger"]


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


def session_exchanger(settings: Settings) -> SessionExchanger:
    """The SessionExchange function's exchanger: Supabase token verification, Better-Auth cookie settings.

    Raises:
        ConfigError: BETTER_AUTH_SECRET is missing (a cookie Better-Auth cannot verify would sign nobody in).
    """
    # Imported here: PyJWT and cryptography are for this function only (Signup/Login cold start).
    import httpx

    from auth_migration.backends.transport import shared_ssl_context
    from auth_migration.sessions.better_auth_sessions import CookieSettings
    from auth_migration.sessions.exchange import SessionExchanger
    from auth_migration.sessions.supabase_tokens import AccessTokenVerifier, JwksKeys

    if settings.better_auth_secret is None:
        raise ConfigError("BETTER_AUTH_SECRET is required for the session exchange (Better-Auth's own secret)")
    secret = settings.supabase_jwt_secret.get_secret_value() if settings.supabase_jwt_secret else None
    jwks = JwksKeys(settings.jwks_url, httpx.Client(verify=shared_ssl_context(), follow_redirects=False))
    return SessionExchanger(
        verifier=AccessTokenVerifier(issuer=settings.jwt_issuer, secret=secret, jwks=jwks),
        connections=connections(settings),
        cookies=CookieSettings(
            secret=settings.better_auth_secret.get_secret_value(),
            prefix=settings.better_auth_cookie_prefix,
            secure=settings.secure_cookies,
            domain=settings.better_auth_cookie_domain,
            max_age_s=settings.better_auth_session_expires_s,
        ),
        limit_per_ip=settings.exchange_limit_per_ip,
        limit_per_user=settings.exchange_limit_per_user,
        on_warning=lambda msg, extra: logger.warning(msg, extra=extra),
    )


def exchange_app(settings: Settings) -> APIGatewayRestResolver:
    """The SessionExchange function's resolver (the auth API's, with the exchanger), built once per container."""
    from auth_migration.dual_write.api import build_resolver

    service = auth_service(settings)
    try:
        exchanger = session_exchanger(settings)
    except ConfigError as exc:
        # Not at init: a function that cannot start answers API Gateway's bare 502 and logs no reason.
        # Each request is refused 503 instead and logs the missing setting (`misconfigured` in api.py).
        logger.error("session exchange not configured", extra={"error": str(exc)})
        problem = exc

        def unconfigured() -> SessionExchanger:
            raise problem

        return build_resolver(lambda: service, flag_source(settings).snapshot, exchanger=unconfigured)
    return build_resolver(lambda: service, flag_source(settings).snapshot, exchanger=lambda: exchanger)
