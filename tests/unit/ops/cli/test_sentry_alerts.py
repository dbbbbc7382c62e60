"""`auth-migrate sentry apply-alerts`: the reference document's three alert rules as code, their thresholds
AutoRollback's (template.yaml's defaults), applied through Sentry's issue-alert-rule API. Sentry is a fake
here (httpx.MockTransport): it is the server the command talks to, not the thing under test."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest

from auth_migration.flags import Flags
from auth_migration_ops.cli import sentry as cli_sentry
from auth_migration_ops.cli.main import main
from auth_migration_ops.cli.sentry import RULES_FILE, apply_alert_rules, load_rules
from auth_migration_ops.local.template import load_template

TOKEN = "sntrys_test-token-never-printed-0123456789"
ENDPOINT = "/api/0/projects/acme/auth-api/rules/"
EVENT_FREQUENCY = "sentry.rules.conditions.event_frequency.EventFrequencyCondition"


def rule(name: str) -> dict[str, Any]:
    (found,) = [r for r in load_rules() if r["name"] == name]
    return found


def template_default(parameter: str) -> float:
    return float(load_template()["Resources"][parameter]["Properties"]["Value"])


# --- the rules ----------------------------------------------------------------------------------------------


def test_the_file_holds_the_documents_three_rules_in_the_apis_shape() -> None:
    rules = load_rules(RULES_FILE)
    assert [r["name"] for r in rules] == [
        "Auth Error Rate Too High",
        "Canary Auth Failures",
        "Migration Data Consistency Issues",
    ]
    for body in rules:
        assert body["actionMatch"] in ("all", "any", "none")
        assert body["filterMatch"] in ("all", "any", "none")
        assert 5 <= body["frequency"] <= 43200
        assert all(c["id"].startswith("sentry.rules.conditions.") for c in body["conditions"])
        assert all(f["id"].startswith("sentry.rules.filters.") for f in body["filters"])
        assert body["actions"]


def test_the_thresholds_are_auto_rollbacks_as_the_template_sets_them() -> None:
    max_error_rate = template_default("RollbackMaxErrorRateParameter")
    min_success_rate = template_default("RollbackMinSuccessRateParameter")
    min_sample = template_default("RollbackMinSampleParameter")
    window = template_default("RollbackWindowParameter")
    # The code's defaults are the template's (the flags fall back to them when SSM holds nothing).
    defaults = Flags()
    assert (max_error_rate, min_success_rate) == (defaults.rollback_max_error_rate, defaults.rollback_min_success_rate)
    assert (min_sample, window) == (defaults.rollback_min_sample, defaults.rollback_window_minutes)

    (all_traffic,) = rule("Auth Error Rate Too High")["conditions"]
    (canary,) = rule("Canary Auth Failures")["conditions"]
    assert all_traffic["id"] == canary["id"] == EVENT_FREQUENCY
    assert all_traffic["interval"] == canary["interval"] == f"{int(window)}m"
    # "More than N failures in the window", N for a minimum sample: the success-rate floor for all traffic
    # (100 x (1 - 0.90) = 10), the error-rate ceiling for the canary, the traffic AutoRollback watches (100 x 0.05).
    assert all_traffic["value"] == math.floor(min_sample * (1 - min_success_rate) + 1e-9)
    assert canary["value"] == math.floor(min_sample * max_error_rate + 1e-9)
    assert {"key": "canary_user", "match": "eq", "value": "true"}.items() <= rule("Canary Auth Failures")["filters"][
        0
    ].items()


def test_the_consistency_rule_watches_the_documents_tag() -> None:
    (tag,) = rule("Migration Data Consistency Issues")["filters"]
    assert (tag["key"], tag["match"], tag["value"]) == ("migration_event", "eq", "dual_write_inconsistency")


# --- applying them ------------------------------------------------------------------------------------------


class FakeSentry:
    """The issue-alert-rule endpoints of one project: GET (two pages), POST, PUT; every request recorded."""

    def __init__(self, existing: list[dict[str, Any]], *, refuse: int | None = None) -> None:
        self.rules = {str(r["id"]): r for r in existing}
        self.requests: list[httpx.Request] = []
        self.refuse = refuse
        self.next_id = 100

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"detail": "Invalid token"})
        path = request.url.path
        if request.method == "GET" and path == ENDPOINT:
            page = request.url.params.get("cursor")
            listed = sorted(self.rules.values(), key=lambda r: r["id"])
            if page is None:
                nxt = f'<https://{request.url.host}{ENDPOINT}?cursor=1>; rel="next"; results="true"; cursor="1"'
                return httpx.Response(200, json=listed[:1], headers={"Link": nxt})
            last = f'<https://{request.url.host}{ENDPOINT}?cursor=2>; rel="next"; results="false"; cursor="2"'
            return httpx.Response(200, json=listed[1:], headers={"Link": last})
        if self.refuse is not None:
            return httpx.Response(self.refuse, json={"detail": "You do not have permission"})
        body = json.loads(request.content)
        if request.method == "POST" and path == ENDPOINT:
            self.next_id += 1
            created = {**body, "id": str(self.next_id)}
            self.rules[created["id"]] = created
            return httpx.Response(201, json=created)
        if request.method == "PUT" and path.startswith(ENDPOINT):
            rule_id = path.removeprefix(ENDPOINT).strip("/")
            self.rules[rule_id] = {**body, "id": rule_id}
            return httpx.Response(200, json=self.rules[rule_id])
        return httpx.Response(404, json={"detail": "not found"})


@pytest.fixture
def fake_sentry(monkeypatch: pytest.MonkeyPatch) -> FakeSentry:
    fake = FakeSentry([{"id": "7", "name": "Auth Error Rate Too High"}, {"id": "9", "name": "Someone else's rule"}])
    monkeypatch.setattr(cli_sentry, "TRANSPORT", httpx.MockTransport(fake))
    monkeypatch.setenv("SENTRY_AUTH_TOKEN", TOKEN)
    return fake


def test_rules_the_project_has_are_updated_by_name_and_the_others_created() -> None:
    fake = FakeSentry([{"id": "7", "name": "Auth Error Rate Too High"}, {"id": "9", "name": "Unrelated"}])
    rules = load_rules()

    applied = apply_alert_rules(rules, org="acme", project="auth-api", token=TOKEN, transport=httpx.MockTransport(fake))

    assert [(a.name, a.action, a.rule_id) for a in applied] == [
        ("Auth Error Rate Too High", "updated", "7"),
        ("Canary Auth Failures", "created", "101"),
        ("Migration Data Consistency Issues", "created", "102"),
    ]
    writes = [r for r in fake.requests if r.method != "GET"]
    assert [(r.method, r.url.path) for r in writes] == [
        ("PUT", f"{ENDPOINT}7/"),
        ("POST", ENDPOINT),
        ("POST", ENDPOINT),
    ]
    assert [json.loads(r.content) for r in writes] == rules  # exactly the file's bodies
    assert [r.url.params.get("cursor") for r in fake.requests if r.method == "GET"] == [None, "1"]
    assert fake.rules["9"] == {"id": "9", "name": "Unrelated"}  # another rule is left alone

    again = apply_alert_rules(rules, org="acme", project="auth-api", token=TOKEN, transport=httpx.MockTransport(fake))
    assert {a.action for a in again} == {"updated"}  # applying twice creates nothing


def test_the_command_applies_the_rules_and_never_prints_the_token(
    fake_sentry: FakeSentry, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sentry", "apply-alerts", "--org", "acme", "--project", "auth-api"])

    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.splitlines() == [
        "updated 'Auth Error Rate Too High' (rule 7) in acme/auth-api",
        "created 'Canary Auth Failures' (rule 101) in acme/auth-api",
        "created 'Migration Data Consistency Issues' (rule 102) in acme/auth-api",
    ]
    assert TOKEN not in out + err
    assert fake_sentry.requests[0].url.host == "sentry.io"


def test_a_refusal_exits_1_with_sentrys_reason_and_without_the_token(
    fake_sentry: FakeSentry, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sentry.refuse = 403

    code = main(["sentry", "apply-alerts", "--org", "acme", "--project", "auth-api", "--url", "https://s.example"])

    out, err = capsys.readouterr()
    assert code == 1
    assert "HTTP 403" in err
    assert "You do not have permission" in err
    assert TOKEN not in out + err


def test_dry_run_prints_what_it_would_send_and_sends_nothing(
    fake_sentry: FakeSentry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SENTRY_AUTH_TOKEN")

    code = main(["sentry", "apply-alerts", "--org", "acme", "--project", "auth-api", "--dry-run"])

    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert printed["endpoint"] == f"https://sentry.io{ENDPOINT}"
    assert printed["rules"] == load_rules()
    assert fake_sentry.requests == []


def test_without_a_token_it_exits_2_and_sends_nothing(
    fake_sentry: FakeSentry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SENTRY_AUTH_TOKEN")

    assert main(["sentry", "apply-alerts", "--org", "acme", "--project", "auth-api"]) == 2
    assert "SENTRY_AUTH_TOKEN is not set" in capsys.readouterr().err
    assert fake_sentry.requests == []
