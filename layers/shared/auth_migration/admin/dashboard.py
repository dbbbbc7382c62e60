"""The ops dashboard: GET /admin/dashboard (one server-rendered page whose script reads the admin API and
changes the rollout through PUT /admin/rollout after a dry-run confirmation), and the lists it shows:
GET /admin/stats, GET /admin/cutover, GET /admin/migrations, GET /admin/rollout/history.

The page escapes by construction (its script writes text with textContent only) and its CSP allows
only its own nonce'd script and style, so a stored reason or email can never run as code."""

from __future__ import annotations

import html
import secrets
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Final

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from auth_migration.rest import JSON, json_reply

if TYPE_CHECKING:
    from auth_migration.admin.service import AdminService

__all__ = ["REFRESH_MS", "register_dashboard", "render_page"]

#: How often the page re-reads the API (the flags themselves are cached FLAGS_MAX_AGE_S by the functions).
REFRESH_MS: Final = 10_000
_SIGV4: Final[list[dict[str, list[str]]]] = [{"sigv4": []}]
_TAGS: Final = ["admin"]


@cache
def _template() -> str:
    return resources.files("auth_migration.admin").joinpath("dashboard.html").read_text(encoding="utf-8")


def render_page(*, stage: str, nonce: str) -> str:
    """The page with its nonce and stage filled in (the stage is escaped like any other text)."""
    return (
        _template()
        .replace("__NONCE__", nonce)
        .replace("__STAGE__", html.escape(stage))
        .replace("__REFRESH_MS__", str(REFRESH_MS))
    )


def register_dashboard(
    app: APIGatewayRestResolver, service: Callable[[], AdminService], caller: Callable[[], str], *, stage: str
) -> None:
    """Adds the page and its list routes to the admin resolver (same IAM rule: `caller()` first)."""

    @app.get(
        "/admin/dashboard",
        summary="The ops dashboard (HTML): migrations, stats, canary, recent errors, rollout controls",
        tags=_TAGS,
        security=_SIGV4,
        responses={200: {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}}},
    )
    def dashboard() -> Response[str]:
        caller()
        nonce = secrets.token_urlsafe(16)
        return Response(
            status_code=200,
            content_type="text/html; charset=utf-8",
            body=render_page(stage=stage, nonce=nonce),
            headers={
                "Cache-Control": "no-store",
                # Only this response's own script and style run; nothing may frame the page.
                "Content-Security-Policy": (
                    f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
                ),
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    @app.get(
        "/admin/stats",
        summary="Users per system (the document's MigrationStats): tracked, in each, in both, validated, gaps",
        tags=_TAGS,
        security=_SIGV4,
        responses={200: {"description": "The stats", "content": {JSON: {"schema": {"type": "object"}}}}},
    )
    def stats() -> Response[str]:
        caller()
        return json_reply(200, service().stats())

    @app.get(
        "/admin/cutover",
        summary="The cutover: signups, logins, session exchanges and hash upgrades over the health window, the "
        "Supabase session copy, and the passwords still held as Supabase bcrypt hashes",
        tags=_TAGS,
        security=_SIGV4,
        responses={200: {"description": "The figures", "content": {JSON: {"schema": {"type": "object"}}}}},
    )
    def cutover() -> Response[str]:
        caller()
        return json_reply(200, service().cutover())

    @app.get(
        "/admin/migrations",
        summary="The newest migrations with their progress",
        tags=_TAGS,
        security=_SIGV4,
        responses={200: {"description": "The migrations", "content": {JSON: {"schema": {"type": "array"}}}}},
    )
    def migrations(limit: Annotated[int, Query(ge=1, le=200)] = 20) -> Response[str]:
        caller()
        return json_reply(200, service().migrations(limit=limit))

    @app.get(
        "/admin/rollout/history",
        summary="The newest audited flag changes: who, when, old -> new, why, from where",
        tags=_TAGS,
        security=_SIGV4,
        responses={200: {"description": "The changes", "content": {JSON: {"schema": {"type": "array"}}}}},
    )
    def history(limit: Annotated[int, Query(ge=1, le=200)] = 20) -> Response[str]:
        caller()
        return json_reply(200, service().history(limit=limit))
