"""Specification of the in-process invoker: environment, warm modules, context and timeouts."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest

from auth_migration_ops.local.invoke import (
    LambdaTimeoutError,
    LocalFunction,
    LocalLambdaContext,
    clear_cache,
    invoke_function,
)
from auth_migration_ops.local.template import FunctionSpec, resolve_function

TOY_TEMPLATE = """
Parameters:
  Greeting: {Type: String, Default: hello}
Globals:
  Function:
    Timeout: 5
    MemorySize: 256
    Layers: [!Ref ToyLayer]
    Environment:
      Variables:
        GREETING: !Ref Greeting
Resources:
  ToyLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: layer/}
  Queue:
    Type: AWS::SQS::Queue
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Handler: app.lambda_handler
      Environment:
        Variables:
          QUEUE_URL: !Ref Queue
  OtherFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: other/
      Handler: app.lambda_handler
"""

# Reads what it was given at cold start and at call time; counts calls to prove the module stays warm.
ECHO_APP = """
import os
import threading

import toy_greeter

COLD_START_GREETING = os.environ.get("GREETING")
CALLS = 0
BARRIER: threading.Barrier | None = None


def lambda_handler(event, context):
    global CALLS
    CALLS += 1
    if BARRIER is not None:
        BARRIER.wait()
    event["mutated"] = True
    return {
        "calls": CALLS,
        "cold_start_greeting": COLD_START_GREETING,
        "greeting": toy_greeter.greet(),
        "queue_url": os.environ.get("QUEUE_URL"),
        "function_name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
        "memory": os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        "region": os.environ.get("AWS_REGION"),
        "extra": os.environ.get("TOY_EXTRA"),
        "context_function": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "event": event,
    }
"""

OTHER_APP = """
import os
import time


def lambda_handler(event, context):
    first = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    time.sleep(event.get("sleep", 0))
    return {"before": first, "after": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"), "answer": object() if event.get(
        "unserialisable") else 42}
"""


@pytest.fixture
def toy_template(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "layer").mkdir()
    (tmp_path / "layer" / "toy_greeter.py").write_text(
        'import os\n\n\ndef greet():\n    return os.environ["GREETING"] + " from the layer"\n', encoding="utf-8"
    )
    for name, source in {"echo": ECHO_APP, "other": OTHER_APP}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(dedent(source), encoding="utf-8")
    template = tmp_path / "template.yaml"
    template.write_text(TOY_TEMPLATE, encoding="utf-8")
    yield template
    sys.modules.pop("toy_greeter", None)
    clear_cache()


@pytest.fixture
def echo(toy_template: Path) -> LocalFunction:
    return LocalFunction(
        resolve_function("Echo", template_path=toy_template, resource_values={"Queue": "http://toy/queue"})
    )


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GREETING", "QUEUE_URL", "TOY_EXTRA", "AWS_LAMBDA_FUNCTION_NAME", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")


@pytest.mark.usefixtures("clean_env")
def test_function_environment_is_visible_inside_the_call_and_restored_after(echo: LocalFunction) -> None:
    reply = echo.invoke({"n": 1}, env_overrides={"TOY_EXTRA": "override"})

    assert reply["greeting"] == "hello from the layer"
    assert reply["queue_url"] == "http://toy/queue"
    assert reply["function_name"] == "EchoFunction"
    assert reply["memory"] == "256"
    assert reply["extra"] == "override"
    for name in ("GREETING", "QUEUE_URL", "TOY_EXTRA", "AWS_LAMBDA_FUNCTION_NAME"):
        assert name not in os.environ
    assert os.environ["AWS_DEFAULT_REGION"] == "eu-west-1"


def test_a_variable_that_existed_before_gets_its_old_value_back(
    echo: LocalFunction, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREETING", "outer")

    reply = echo.invoke({}, env_overrides={"GREETING": "inner"})

    assert reply["greeting"] == "inner from the layer"
    assert os.environ["GREETING"] == "outer"


@pytest.mark.usefixtures("clean_env")
def test_region_follows_the_callers_default_region(echo: LocalFunction) -> None:
    assert echo.invoke({})["region"] == "eu-west-1"


def test_module_is_imported_once_and_stays_warm(echo: LocalFunction) -> None:
    first = echo.invoke({})
    module = echo.module
    second = echo.invoke({}, env_overrides={"GREETING": "later"})

    assert (first["calls"], second["calls"]) == (1, 2)
    assert echo.module is module
    assert second["cold_start_greeting"] == "hello"  # module-level code ran once, at the cold start


def test_cold_start_sees_the_overrides_of_the_first_invoke(echo: LocalFunction) -> None:
    reply = echo.invoke({}, env_overrides={"GREETING": "bonjour"})

    assert reply["cold_start_greeting"] == "bonjour"


def test_each_new_container_starts_cold_for_powertools(echo: LocalFunction, monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_lambda_powertools.logging import logger as powertools_logger

    monkeypatch.setattr(powertools_logger, "is_cold_start", False)  # as left by an earlier function
    echo.invoke({})
    assert powertools_logger.is_cold_start is True

    monkeypatch.setattr(powertools_logger, "is_cold_start", False)
    echo.invoke({})  # warm: the flag is the handler's business now
    assert powertools_logger.is_cold_start is False


def test_handler_gets_a_json_copy_of_the_event(echo: LocalFunction) -> None:
    event = {"nested": {"n": 1}}

    reply = echo.invoke(event)

    assert reply["event"] == {"nested": {"n": 1}, "mutated": True}
    assert event == {"nested": {"n": 1}}


def test_context_counts_down_from_the_function_timeout(echo: LocalFunction) -> None:
    reply = echo.invoke({})

    assert reply["context_function"] == "EchoFunction"
    assert 4_000 < reply["remaining_ms"] <= 5_000


def test_context_remaining_time_follows_its_clock() -> None:
    now = [100.0]
    context = LocalLambdaContext(
        function_name="F", timeout_s=3, memory_limit_in_mb=128, region="eu-west-1", clock=lambda: now[0]
    )

    assert context.get_remaining_time_in_millis() == 3_000
    now[0] += 1.25
    assert context.get_remaining_time_in_millis() == 1_750
    now[0] += 10
    assert context.get_remaining_time_in_millis() == 0
    assert context.invoked_function_arn == "arn:aws:lambda:eu-west-1:123456789012:function:F"
    assert context.log_group_name == "/aws/lambda/F"
    assert context.aws_request_id


def test_identical_invokes_of_one_function_run_concurrently(
    echo: LocalFunction, monkeypatch: pytest.MonkeyPatch
) -> None:
    echo.invoke({})
    assert echo.module is not None
    # Serialised calls would leave one thread alone at the barrier until it breaks.
    monkeypatch.setattr(echo.module, "BARRIER", threading.Barrier(2, timeout=2))
    outcomes: list[object] = []

    def call() -> None:
        try:
            outcomes.append(echo.invoke({})["calls"])
        except threading.BrokenBarrierError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes == [3, 3]


@pytest.mark.usefixtures("clean_env")
def test_different_functions_never_see_each_others_environment(toy_template: Path) -> None:
    other = LocalFunction(resolve_function("Other", template_path=toy_template))
    echo = LocalFunction(resolve_function("Echo", template_path=toy_template))
    results: dict[str, object] = {}

    def slow_other() -> None:
        results["other"] = other.invoke({"sleep": 0.2})

    thread = threading.Thread(target=slow_other)
    thread.start()
    results["echo"] = echo.invoke({})
    thread.join()

    assert results["other"] == {"before": "OtherFunction", "after": "OtherFunction", "answer": 42}
    assert "AWS_LAMBDA_FUNCTION_NAME" not in os.environ


def test_unserialisable_result_fails_like_a_lambda_marshal_error(toy_template: Path) -> None:
    other = LocalFunction(resolve_function("Other", template_path=toy_template))

    with pytest.raises(TypeError):
        other.invoke({"unserialisable": True})


def test_a_call_past_the_timeout_is_reported(toy_template: Path) -> None:
    spec = resolve_function("Other", template_path=toy_template)
    zero_timeout = FunctionSpec(**{**spec.__dict__, "timeout": 0})

    with pytest.raises(LambdaTimeoutError, match="Timeout"):
        LocalFunction(zero_timeout).invoke({})
    assert LocalFunction(zero_timeout, enforce_timeout=False).invoke({})["answer"] == 42


def test_missing_handler_module_is_a_clear_error(toy_template: Path) -> None:
    (toy_template.parent / "other" / "app.py").unlink()

    with pytest.raises(FileNotFoundError, match=r"app\.py"):
        LocalFunction(resolve_function("Other", template_path=toy_template)).invoke({})


@pytest.mark.usefixtures("clean_env")
def test_invoke_function_keeps_one_warm_function_per_configuration(toy_template: Path) -> None:
    first = invoke_function("Echo", {}, template_path=toy_template, resource_values={"Queue": "q1"})
    second = invoke_function("EchoFunction", {}, template_path=toy_template, resource_values={"Queue": "q1"})
    again = invoke_function("Echo", {}, template_path=toy_template, resource_values={"Queue": "q1"})
    redeployed = invoke_function("Echo", {}, template_path=toy_template, resource_values={"Queue": "q2"})
    clear_cache()
    cold = invoke_function("Echo", {}, template_path=toy_template, resource_values={"Queue": "q1"})

    assert (first["calls"], second["calls"], again["calls"]) == (1, 2, 3)
    assert (redeployed["calls"], redeployed["queue_url"]) == (1, "q2")
    assert cold["calls"] == 1


def test_invoke_function_applies_parameter_overrides(toy_template: Path) -> None:
    reply = invoke_function("Echo", {}, template_path=toy_template, parameter_overrides={"Greeting": "hi"})

    assert reply["greeting"] == "hi from the layer"
