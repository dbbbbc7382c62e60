"""template.yaml's monitoring: the dashboard, the alarms and the metric contract they read (docs/CLOUDWATCH.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from auth_migration.flags import Flags
from auth_migration_ops.local.template import REPO_ROOT, IntrinsicResolver, load_template

CLOUDWATCH_DOC = REPO_ROOT / "docs" / "CLOUDWATCH.md"
SERVICE_DIMENSION = [{"Name": "service", "Value": "auth-migration"}]
STAGES = ["dev", "prod"]
_SUB_VARIABLE = re.compile(r"\$\{(?!!)([^}]*)\}")
_PSEUDO = {"AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::URLSuffix", "AWS::StackName"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def contract_metrics() -> dict[str, str]:
    return _contract_metrics(CLOUDWATCH_DOC)


def _contract_metrics(doc: Path) -> dict[str, str]:
    """Metric name -> unit, from the first table of the doc whose header starts with | metric | unit |."""
    metrics: dict[str, str] = {}
    in_table = False
    for line in doc.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if cells[:2] == ["metric", "unit"]:
            in_table = True
            continue
        if not in_table:
            continue
        if not cells:
            break
        if set(cells[0]) <= {"-", ":", " "}:
            continue
        for name in cells[0].split("/"):
            metrics[name.strip()] = cells[1]
    return metrics


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def _render_dashboard(template: dict[str, Any], stage: str) -> dict[str, Any]:
    """The dashboard body as CloudFormation would deploy it, with sample values for the resources it names."""
    body = template["Resources"]["MonitoringDashboard"]["Properties"]["DashboardBody"]
    assert set(body) == {"Fn::Sub"} and isinstance(body["Fn::Sub"], str), "DashboardBody is !Sub of one JSON string"
    resources = template["Resources"]
    values: dict[str, str] = {}
    for variable in _SUB_VARIABLE.findall(body["Fn::Sub"]):
        name, _, attribute = variable.partition(".")
        if variable in _PSEUDO or variable in template["Parameters"]:
            continue
        assert name in resources, f"dashboard names ${{{variable}}}: no such parameter or resource"
        values[variable] = f"sample-{name}-{attribute or 'ref'}"
    resolver = IntrinsicResolver(
        template, parameter_overrides={"Stage": stage}, resource_values=values, region="us-east-1"
    )
    rendered = resolver.resolve(body)
    document: dict[str, Any] = json.loads(rendered)
    return document


def _widget_metrics(widget: dict[str, Any]) -> list[list[Any]]:
    return list(widget.get("properties", {}).get("metrics", []))


def test_globals_namespace_is_per_stage(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]

    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == {"Fn::Sub": "AuthMigration/${Stage}"}
    assert variables["POWERTOOLS_SERVICE_NAME"] == "auth-migration"


def test_the_doc_holds_the_whole_contract_table(contract_metrics: dict[str, str]) -> None:
    # The names the other side of the contract emits; the doc's table is what this file checks against.
    assert {
        "Signup_better_auth",
        "Signup_supabase",
        "Login_better_auth",
        "Login_supabase",
        "AuthFailed",
        "Fallback",
        "DualWriteInconsistency",
        "GapRepaired",
        "LazyMigrated",
        "AuthLatencyCanary",
        "AuthLatencyOthers",
        "UsersProcessed",
        "UsersMigrated",
        "UserErrors",
        "BatchFailed",
        "CanaryPercentage",
        "AutoRollbackTripped",
        "AutoRollbackRunFailed",
        "SessionExchanged",
        "SessionExchangeLatency",
        "SessionExchangeRefused_refresh_token_reused",
        "HashUpgraded",
    } == set(contract_metrics)
    assert contract_metrics["AuthLatencyCanary"] == "Milliseconds"
    assert contract_metrics["CanaryPercentage"] == "Percent"


@pytest.mark.parametrize("stage", STAGES)
def test_dashboard_body_renders_to_valid_json(template: dict[str, Any], stage: str) -> None:
    document = _render_dashboard(template, stage)

    widgets = document["widgets"]
    assert widgets, "the dashboard has no widgets"
    for widget in widgets:
        assert {"type", "x", "y", "width", "height", "properties"} <= set(widget)
        assert widget["x"] + widget["width"] <= 24, "the dashboard grid is 24 units wide"
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == "us-east-1"
            assert widget["properties"]["metrics"]


@pytest.mark.parametrize("stage", STAGES)
def test_every_dashboard_metric_is_in_the_contract_or_aws(
    template: dict[str, Any], contract_metrics: dict[str, str], stage: str
) -> None:
    seen: set[str] = set()
    for widget in _render_dashboard(template, stage)["widgets"]:
        for entry in _widget_metrics(widget):
            if isinstance(entry[0], dict):
                assert "expression" in entry[0]
                continue
            namespace, name, *rest = entry
            dimensions = [item for item in rest if not isinstance(item, dict)]
            assert namespace != ".", "write each metric out in full (no '.' shorthand)"
            if namespace.startswith("AWS/"):
                continue
            assert namespace == f"AuthMigration/{stage}", f"{name}: namespace {namespace!r}"
            assert name in contract_metrics, f"{name} is not in docs/CLOUDWATCH.md's metric table"
            assert dimensions == ["service", "auth-migration"], f"{name}: dimensions {dimensions}"
            seen.add(name)
    # What the brief asks the dashboard to show.
    assert {
        "Signup_better_auth",
        "Signup_supabase",
        "Login_better_auth",
        "Login_supabase",
        "AuthFailed",
        "AuthLatencyCanary",
        "AuthLatencyOthers",
        "UsersProcessed",
        "UsersMigrated",
        "UserErrors",
        "BatchFailed",
        "Fallback",
        "DualWriteInconsistency",
        "GapRepaired",
        "CanaryPercentage",
        "AutoRollbackTripped",
        "SessionExchanged",
        "SessionExchangeLatency",
        "SessionExchangeRefused_refresh_token_reused",
        "HashUpgraded",
    } <= seen


def test_dashboard_expressions_use_only_ids_of_their_widget(template: dict[str, Any]) -> None:
    for widget in _render_dashboard(template, "dev")["widgets"]:
        entries = _widget_metrics(widget)
        ids = {item["id"] for entry in entries for item in entry if isinstance(item, dict) and "id" in item}
        for entry in entries:
            if isinstance(entry[0], dict) and "expression" in entry[0]:
                names = set(re.findall(r"\b([a-z][a-z0-9_]*)\b", entry[0]["expression"]))
                assert names <= ids, f"{widget['properties']['title']}: {sorted(names - ids)} undefined"


def test_dashboard_shows_both_dlqs_and_auto_rollback_lambda_metrics(template: dict[str, Any]) -> None:
    entries = [
        entry
        for widget in _render_dashboard(template, "dev")["widgets"]
        for entry in _widget_metrics(widget)
        if not isinstance(entry[0], dict)
    ]
    sqs = {entry[3] for entry in entries if entry[:3] == ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName"]}
    lambda_metrics = {
        entry[1] for entry in entries if entry[0] == "AWS/Lambda" and entry[3] == "sample-AutoRollbackFunction-ref"
    }

    assert sqs == {"sample-MigrationBatchDLQ-QueueName", "sample-ReconcileDLQ-QueueName"}
    assert {"Invocations", "Errors"} <= lambda_metrics


def test_dashboard_alarm_widget_lists_every_alarm(template: dict[str, Any]) -> None:
    listed = {
        alarm
        for widget in _render_dashboard(template, "dev")["widgets"]
        if widget["type"] == "alarm"
        for alarm in widget["properties"]["alarms"]
    }

    assert listed == {f"sample-{name}-Arn" for name in _alarms(template)}


def test_every_alarm_notifies_the_alarm_topic(template: dict[str, Any]) -> None:
    alarms = _alarms(template)

    assert {
        "AuthErrorRateAlarm",
        "CanaryLatencyAlarm",
        "AutoRollbackTrippedAlarm",
        "AutoRollbackNotRunningAlarm",
        "AutoRollbackErrorsAlarm",
        "MigrationBatchDLQAlarm",
        "ReconcileDLQAlarm",
    } <= set(alarms)
    for name, alarm in alarms.items():
        assert {"Ref": "AlarmTopic"} in alarm["AlarmActions"], name
        assert alarm.get("TreatMissingData") in {"breaching", "notBreaching", "ignore", "missing"}, name


def test_every_custom_metric_an_alarm_reads_is_in_the_contract(
    template: dict[str, Any], contract_metrics: dict[str, str]
) -> None:
    for name, alarm in _alarms(template).items():
        metrics = (
            [query["MetricStat"]["Metric"] for query in alarm["Metrics"] if "MetricStat" in query]
            if "Metrics" in alarm
            else [alarm]
        )
        for metric in metrics:
            if metric["Namespace"] in ("AWS/SQS", "AWS/Lambda"):
                continue
            assert metric["Namespace"] == {"Fn::Sub": "AuthMigration/${Stage}"}, name
            assert metric["MetricName"] in contract_metrics, f"{name}: {metric['MetricName']}"
            assert metric["Dimensions"] == SERVICE_DIMENSION, name


def test_alarm_email_subscribes_only_when_set(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["AlarmEmail"]
    subscriptions = {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::SNS::Subscription"
    }

    assert parameter["Default"] == ""
    assert template["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert len(subscriptions) == 1
    (subscription,) = subscriptions.values()
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    for value, subscribed in (("", False), ("oncall@example.com", True)):
        resolver = IntrinsicResolver(template, parameter_overrides={"AlarmEmail": value})
        assert resolver.condition("HasAlarmEmail") is subscribed


def _rate_seconds(expression: str) -> int:
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
    assert match, f"not a rate() schedule: {expression}"
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit


def test_not_running_alarm_covers_three_schedule_intervals(template: dict[str, Any]) -> None:
    events = template["Resources"]["AutoRollbackFunction"]["Properties"]["Events"]
    (schedule,) = [event["Properties"]["Schedule"] for event in events.values() if event["Type"] == "Schedule"]
    interval = _rate_seconds(schedule)
    alarm = _alarms(template)["AutoRollbackNotRunningAlarm"]

    assert alarm["Namespace"] == "AWS/Lambda"
    assert alarm["MetricName"] == "Invocations"
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "AutoRollbackFunction"}}]
    assert alarm["Statistic"] == "Sum"
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Threshold"] == 1
    # No invocations means no datapoint at all: missing data must be the failure.
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"]) == alarm["EvaluationPeriods"]
    assert alarm["Period"] * alarm["EvaluationPeriods"] >= 3 * interval
    # Each period must be able to hold a run, or a healthy schedule could read as "not running".
    assert alarm["Period"] >= interval


def test_auto_rollback_errors_and_trips_alarm_on_any(template: dict[str, Any]) -> None:
    alarms = _alarms(template)
    errors, tripped = alarms["AutoRollbackErrorsAlarm"], alarms["AutoRollbackTrippedAlarm"]

    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "AutoRollbackFunction"}}]
    assert tripped["MetricName"] == "AutoRollbackTripped"
    for alarm in (errors, tripped):
        assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
            "Sum",
            "GreaterThanThreshold",
            0,
        )
        assert alarm["TreatMissingData"] == "notBreaching"


def test_error_rate_threshold_default_is_auto_rollbacks(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    stored = template["Resources"]["RollbackMaxErrorRateParameter"]["Properties"]["Value"]
    stored_sample = template["Resources"]["RollbackMinSampleParameter"]["Properties"]["Value"]

    assert float(parameters["ErrorRateAlarmThreshold"]["Default"]) == float(stored)
    assert float(parameters["ErrorRateAlarmThreshold"]["Default"]) == Flags().rollback_max_error_rate
    assert int(parameters["ErrorRateAlarmMinRequests"]["Default"]) == int(stored_sample)
    assert int(parameters["ErrorRateAlarmMinRequests"]["Default"]) == Flags().rollback_min_sample


def test_error_rate_alarm_is_failures_over_judged_requests(template: dict[str, Any]) -> None:
    alarm = _alarms(template)["AuthErrorRateAlarm"]
    queries = {query["Id"]: query for query in alarm["Metrics"]}
    metric_names = {query["MetricStat"]["Metric"]["MetricName"] for query in queries.values() if "MetricStat" in query}
    returned = [query for query in queries.values() if query.get("ReturnData", True)]

    assert metric_names == {
        "AuthFailed",
        "Signup_better_auth",
        "Signup_supabase",
        "Login_better_auth",
        "Login_supabase",
    }
    assert len(returned) == 1 and "Expression" in returned[0]
    assert alarm["Threshold"] == {"Ref": "ErrorRateAlarmThreshold"}
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    # Auth traffic may be zero at night: no data is healthy.
    assert alarm["TreatMissingData"] == "notBreaching"
    # Every id an expression names is a query of this alarm.
    for query in queries.values():
        expression = query.get("Expression")
        if isinstance(expression, dict):
            expression = IntrinsicResolver(template).resolve(expression)
        if expression:
            names = set(re.findall(r"\b([a-z][a-z0-9_]*)\b", expression))
            assert names <= set(queries), f"{query['Id']}: {sorted(names - set(queries))} undefined"


def test_canary_latency_alarm_reads_p95_over_several_periods(template: dict[str, Any]) -> None:
    alarm = _alarms(template)["CanaryLatencyAlarm"]

    assert alarm["MetricName"] == "AuthLatencyCanary"
    assert alarm["ExtendedStatistic"] == "p95"
    assert alarm["Threshold"] == {"Ref": "CanaryLatencyAlarmThresholdMs"}
    assert template["Parameters"]["CanaryLatencyAlarmThresholdMs"]["Default"] == 2000
    assert alarm["EvaluationPeriods"] >= 3
    assert alarm["TreatMissingData"] == "notBreaching"


def test_dashboard_url_is_an_output(template: dict[str, Any]) -> None:
    value = template["Outputs"]["MonitoringDashboardUrl"]["Value"]
    resolver = IntrinsicResolver(
        template, resource_values={"MonitoringDashboard": "auth-migration-dev"}, region="us-east-1"
    )

    assert resolver.resolve(value) == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards:name=auth-migration-dev"
    )
    assert template["Resources"]["MonitoringDashboard"]["Properties"]["DashboardName"] == {
        "Fn::Sub": "auth-migration-${Stage}"
    }


def test_the_doc_names_every_alarm(template: dict[str, Any]) -> None:
    doc = CLOUDWATCH_DOC.read_text(encoding="utf-8")

    for name in _alarms(template):
        assert f"({name})" in doc, f"docs/CLOUDWATCH.md does not say what to do when {name} fires"
