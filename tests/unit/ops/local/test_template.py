"""Specification of template.yaml as the functions see it, read through auth_migration_ops.local.template."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from auth_migration_ops.local.template import (
    DEFAULT_TEMPLATE_PATH,
    list_functions,
    load_template,
    resolve_function,
)

QUEUE_URL = "http://127.0.0.1:5000/123456789012/auth-migration-batches-dev"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == type_}


def test_short_tags_load_as_intrinsic_dicts(template: dict[str, Any]) -> None:
    queue = template["Resources"]["MigrationBatchQueue"]["Properties"]

    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["MigrationBatchDLQ", "Arn"]}
    assert queue["RedrivePolicy"]["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert queue["QueueName"] == {"Fn::Sub": "auth-migration-batches-${Stage}"}


def test_list_functions_names_the_bulk_migration_pair() -> None:
    assert {"MigrationControlFunction", "MigrateBatchFunction"} <= set(list_functions())


@pytest.mark.parametrize("name", list_functions())
def test_every_function_has_its_handler_defined_in_its_code_dir(name: str) -> None:
    spec = resolve_function(name)
    module_name, _, attribute = spec.handler.rpartition(".")
    module_file = spec.code_dir / f"{module_name.replace('.', '/')}.py"

    tree = ast.parse(module_file.read_text(encoding="utf-8"), filename=str(module_file))

    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    defined |= {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert attribute in defined, f"{module_file} defines no {attribute}"


@pytest.mark.parametrize("name", list_functions())
def test_every_function_runs_with_the_shared_layer_and_common_environment(name: str) -> None:
    spec = resolve_function(name)

    assert spec.layer_dirs == [DEFAULT_TEMPLATE_PATH.parent / "layers" / "shared"]
    assert (spec.layer_dirs[0] / "auth_migration" / "__init__.py").is_file()
    assert spec.environment["POWERTOOLS_SERVICE_NAME"] == "auth-migration"
    assert spec.environment["POWERTOOLS_METRICS_NAMESPACE"] == "AuthMigration/dev"
    assert spec.environment["PARAMETER_PREFIX"] == "/auth-migration/dev/"
    assert spec.environment["STAGE"] == "dev"


def test_short_and_logical_names_resolve_to_the_same_function() -> None:
    assert resolve_function("MigrateBatch") == resolve_function("MigrateBatchFunction")


def test_migrate_batch_reads_max_receive_count_from_the_parameter_default() -> None:
    spec = resolve_function("MigrateBatch")

    assert spec.environment["MAX_RECEIVE_COUNT"] == "5"


def test_queue_url_comes_from_the_resource_values_given_by_the_local_run() -> None:
    spec = resolve_function("MigrateBatch", resource_values={"MigrationBatchQueue": QUEUE_URL})

    assert spec.environment["MIGRATION_QUEUE_URL"] == QUEUE_URL


def test_a_resource_without_a_local_value_resolves_to_empty() -> None:
    spec = resolve_function("MigrationControl")

    assert spec.environment["MIGRATION_QUEUE_URL"] == ""


def test_parameter_overrides_win_over_defaults() -> None:
    spec = resolve_function(
        "MigrateBatch", parameter_overrides={"Stage": "prod", "MaxReceiveCount": "9", "LogLevel": "DEBUG"}
    )

    assert spec.environment["STAGE"] == "prod"
    assert spec.environment["PARAMETER_PREFIX"] == "/auth-migration/prod/"
    assert spec.environment["MAX_RECEIVE_COUNT"] == "9"
    assert spec.environment["POWERTOOLS_LOG_LEVEL"] == "DEBUG"


def test_unknown_function_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="MigrateBatchFunction") as excinfo:
        resolve_function("Nope")

    assert "MigrationControlFunction" in str(excinfo.value)


def test_unknown_parameter_override_is_refused() -> None:
    with pytest.raises(KeyError, match="Stgae"):
        resolve_function("MigrateBatch", parameter_overrides={"Stgae": "prod"})


def test_function_limits_come_from_the_function_over_globals() -> None:
    control = resolve_function("MigrationControl")
    batch = resolve_function("MigrateBatch")

    assert control.timeout == 900
    assert batch.timeout == 120
    assert control.memory_mb == 512  # Globals
    assert batch.memory_mb == 1024


def test_migrate_batch_is_triggered_by_the_batch_queue_with_partial_failures(template: dict[str, Any]) -> None:
    events = template["Resources"]["MigrateBatchFunction"]["Properties"]["Events"]
    (sqs,) = (e["Properties"] for e in events.values() if e["Type"] == "SQS")

    assert sqs["Queue"] == {"Fn::GetAtt": ["MigrationBatchQueue", "Arn"]}
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs["BatchSize"] == {"Ref": "MigrateBatchSize"}
    assert sqs["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "MigrateBatchConcurrency"}


def test_batch_visibility_timeout_is_at_least_six_times_the_consumer_timeout(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["BatchVisibilityTimeout"]
    consumer_timeout = resolve_function("MigrateBatch").timeout

    assert parameter["Default"] >= 6 * consumer_timeout
    assert parameter["MinValue"] >= 6 * consumer_timeout


def test_failed_batches_land_in_an_alarmed_encrypted_dlq(template: dict[str, Any]) -> None:
    queue = template["Resources"]["MigrationBatchQueue"]["Properties"]
    dlq = template["Resources"]["MigrationBatchDLQ"]["Properties"]
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm").values()

    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["SqsManagedSseEnabled"] is True
    assert dlq["SqsManagedSseEnabled"] is True
    assert any(
        a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and a["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["MigrationBatchDLQ", "QueueName"]}
        and a["Properties"]["Threshold"] == 0
        and a["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
        for a in alarms
    )


EXPECTED_FLAG_DEFAULTS = {
    "MIGRATION_MODE": "supabase_only",
    "USE_BETTER_AUTH": "false",
    "MIGRATION_VALIDATION": "true",
    "MIGRATION_FALLBACK_TIMEOUT": "3000",
    "CANARY_ENABLED": "false",
    "CANARY_PERCENTAGE": "0",
    "CANARY_USER_SELECTION": "user_id_hash",
    "CANARY_WHITELIST": "-",
    "CANARY_EMAIL_DOMAINS": "-",
    "ROLLBACK_MAX_ERROR_RATE": "0.05",
    "ROLLBACK_MIN_SUCCESS_RATE": "0.90",
    "ROLLBACK_MIN_SAMPLE": "100",
    "ROLLBACK_WINDOW_MINUTES": "5",
    "DRY_RUN": "false",
    "SESSION_EXCHANGE": "true",
    "HASH_UPGRADE": "false",
}


def test_flags_are_string_parameters_under_the_stage_prefix_with_their_defaults(
    template: dict[str, Any],
) -> None:
    parameters = resources_of_type(template, "AWS::SSM::Parameter").values()
    flags = {
        p["Properties"]["Name"]["Fn::Sub"].removeprefix("/auth-migration/${Stage}/"): p["Properties"]
        for p in parameters
    }

    assert {name: props["Value"] for name, props in flags.items()} == EXPECTED_FLAG_DEFAULTS
    assert all(props["Type"] == "String" for props in flags.values())


@pytest.mark.parametrize("name", list_functions())
def test_every_function_may_read_the_whole_stage_prefix(template: dict[str, Any], name: str) -> None:
    policies = template["Resources"][name]["Properties"]["Policies"]
    readable = {
        p["SSMParameterReadPolicy"]["ParameterName"]["Fn::Sub"] for p in policies if "SSMParameterReadPolicy" in p
    }

    assert readable == {"auth-migration/${Stage}", "auth-migration/${Stage}/*"}


def test_cloudformation_escape_and_pseudo_parameters_in_sub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    template_file = tmp_path / "template.yaml"
    template_file.write_text(
        """
Parameters:
  Stage: {Type: String, Default: dev}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.handler
      Environment:
        Variables:
          ARN: !Sub "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:q-${Stage}"
          LITERAL: !Sub "${!NotAVariable}"
          JOINED: !Join ["-", [a, !Ref Stage, !Select [1, [x, y]]]]
          PICKED: !If [IsProd, big, small]
          OPTIONAL: !If [IsProd, set, !Ref AWS::NoValue]
          NUMBER: 7
          FLAG: true
""",
        encoding="utf-8",
    )

    env = resolve_function("Fn", template_path=template_file).environment
    prod_env = resolve_function("Fn", template_path=template_file, parameter_overrides={"Stage": "prod"}).environment

    assert env["ARN"] == "arn:aws:sqs:us-east-1:123456789012:q-dev"
    assert env["LITERAL"] == "${NotAVariable}"
    assert env["JOINED"] == "a-dev-y"
    assert (env["PICKED"], prod_env["PICKED"]) == ("small", "big")
    assert "OPTIONAL" not in env
    assert prod_env["OPTIONAL"] == "set"
    assert (env["NUMBER"], env["FLAG"]) == ("7", "true")
