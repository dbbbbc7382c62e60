"""`auth-migrate sentry apply-alerts`: the reference document's three Sentry alert rules, kept as code in
ops/sentry/alert_rules.json (the bodies of Sentry's issue-alert-rule API), applied to one project.

A rule whose name the project already has is updated (PUT .../rules/{id}/), any other is created
(POST .../rules/), so applying twice changes nothing. The token comes from SENTRY_AUTH_TOKEN (scope
alerts:write or project:write) and is never printed; `--dry-run` prints what would be sent and sends nothing.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import click
import httpx

from auth_migration.exceptions import ConfigError
from auth_migration_ops.cli.common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, JSON_HELP, error, print_json

__all__ = ["RULES_FILE", "AppliedRule", "apply_alert_rules", "load_rules", "rules_endpoint", "sentry"]

RULES_FILE: Final = Path(__file__).resolve().parents[2] / "sentry" / "alert_rules.json"
TOKEN_ENV: Final = "SENTRY_AUTH_TOKEN"  # noqa: S105 - the variable's name, not a token
DEFAULT_URL: Final = "https://sentry.io"
_REQUIRED: Final = ("name", "actionMatch", "frequency", "conditions", "actions")
#: Where requests go instead of the network (tests set an httpx.MockTransport); None: the real one.
TRANSPORT: httpx.BaseTransport | None = None


@dataclass(frozen=True, slots=True)
class AppliedRule:
    name: str
    action: str  # created | updated
    rule_id: str


def load_rules(path: Path = RULES_FILE) -> list[dict[str, Any]]:
    """The rule bodies in `path`, checked for what Sentry requires of each (a name, unique; actionMatch;
    frequency; conditions; actions)."""
    try:
        rules = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the alert rules ({type(exc).__name__})") from None
    if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
        raise ConfigError(f"{path}: expected a JSON array of rule objects")
    names = [rule.get("name") for rule in rules]
    for rule in rules:
        missing = [key for key in _REQUIRED if key not in rule]
        if missing:
            raise ConfigError(f"{path}: rule {rule.get('name')!r} lacks {', '.join(missing)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: rule names must be unique (they are how a rule is found again)")
    return rules


def rules_endpoint(org: str, project: str) -> str:
    """The project's issue-alert-rule collection, relative to the Sentry URL."""
    return f"/api/0/projects/{quote(org, safe='')}/{quote(project, safe='')}/rules/"


def _existing(client: httpx.Client, endpoint: str) -> Iterator[Mapping[str, Any]]:
    """Every rule the project has, following Sentry's cursor pagination (Link: ...; rel="next"; results="true")."""
    url: str | None = endpoint
    while url is not None:
        reply = _checked(client.get(url), "list the project's alert rules")
        body = reply.json()
        if not isinstance(body, list):
            raise ConfigError("Sentry answered the rule list with something other than a list")
        yield from (rule for rule in body if isinstance(rule, dict))
        following = reply.links.get("next")
        url = following["url"] if following and following.get("results") == "true" else None
        if url is not None and httpx.URL(url).host not in ("", client.base_url.host):
            # The token goes with every request: never to a host other than the one asked.
            raise ConfigError(f"Sentry's next page is on another host ({httpx.URL(url).host}); not followed")


def _checked(reply: httpx.Response, what: str) -> httpx.Response:
    if reply.is_success:
        return reply
    try:
        detail: Any = reply.json()
    except ValueError:
        detail = reply.text[:300]
    raise ConfigError(f"Sentry refused to {what}: HTTP {reply.status_code} {json.dumps(detail)[:500]}")


def apply_alert_rules(
    rules: Sequence[Mapping[str, Any]],
    *,
    org: str,
    project: str,
    token: str,
    base_url: str = DEFAULT_URL,
    transport: httpx.BaseTransport | None = None,
) -> list[AppliedRule]:
    """Create or update each rule by name. Raises ConfigError when Sentry refuses (its reply, never the token)."""
    endpoint = rules_endpoint(org, project)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    applied: list[AppliedRule] = []
    try:
        with httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=30, transport=transport) as client:
            by_name = {str(rule.get("name")): str(rule.get("id")) for rule in _existing(client, endpoint)}
            for rule in rules:
                name = str(rule["name"])
                if name in by_name:
                    reply = _checked(client.put(f"{endpoint}{by_name[name]}/", json=rule), f"update {name!r}")
                    action = "updated"
                else:
                    reply = _checked(client.post(endpoint, json=rule), f"create {name!r}")
                    action = "created"
                body = reply.json()
                rule_id = str(body.get("id")) if isinstance(body, dict) else by_name.get(name, "?")
                applied.append(AppliedRule(name, action, rule_id))
    except httpx.HTTPError as exc:
        # httpx's messages name the URL, never the headers: the token cannot show here.
        raise ConfigError(f"cannot reach Sentry at {base_url}: {type(exc).__name__}") from None
    return applied


@click.group(
    short_help="Sentry alert rules as code (ops/sentry/alert_rules.json)",
    help="Sentry: the reference document's alert rules, kept in ops/sentry/alert_rules.json.",
)
def sentry() -> None:
    pass


@sentry.command(
    "apply-alerts",
    short_help="create or update the three alert rules in a Sentry project",
    help="Create or update (by name) the alert rules of ops/sentry/alert_rules.json in one Sentry project "
    f"through its issue-alert-rule API. The token comes from {TOKEN_ENV} (scope alerts:write) and is never "
    "printed. --dry-run prints the JSON that would be sent and sends nothing.",
)
@click.option("--org", required=True, help="the organization slug")
@click.option("--project", required=True, help="the project slug")
@click.option("--dry-run", is_flag=True, help="print the endpoint and the rule bodies; send nothing")
@click.option("--url", "base_url", default=DEFAULT_URL, show_default=True, help="Sentry's URL (self-hosted, regions)")
@click.option(
    "--rules", "rules_path", type=Path, default=RULES_FILE, show_default=True, help="the rule bodies (a JSON array)"
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def apply_alerts(org: str, project: str, dry_run: bool, base_url: str, rules_path: Path, as_json: bool) -> int:
    rules = load_rules(rules_path)
    endpoint = base_url.rstrip("/") + rules_endpoint(org, project)
    if dry_run:
        print_json({"endpoint": endpoint, "method": "POST (PUT .../{id}/ for a name the project has)", "rules": rules})
        return EXIT_OK
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        error(f"{TOKEN_ENV} is not set (a Sentry auth token with alerts:write); --dry-run needs none")
        return EXIT_USAGE
    try:
        applied = apply_alert_rules(
            rules, org=org, project=project, token=token, base_url=base_url, transport=TRANSPORT
        )
    except ConfigError as exc:
        error(str(exc))
        return EXIT_ERROR
    if as_json:
        print_json([{"name": a.name, "action": a.action, "id": a.rule_id} for a in applied])
    else:
        for rule in applied:
            print(f"{rule.action} {rule.name!r} (rule {rule.rule_id}) in {org}/{project}", file=sys.stdout)
    return EXIT_OK
