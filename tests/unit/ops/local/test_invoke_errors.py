"""Specification of `error_document`: a handler that raised, as Lambda's Python runtime (and so
`sam local invoke`) reports it: errorMessage, errorType, requestId, stackTrace from the function's frames."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from auth_migration_ops.local.invoke import LocalFunction, error_document
from auth_migration_ops.local.template import resolve_function

TEMPLATE = """
Resources:
  CrashFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: crash/, Handler: app.lambda_handler, Timeout: 5}
  BrokenFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: broken/, Handler: app.lambda_handler, Timeout: 5}
"""

# The crash of issue 12: Event Handler indexing a v2 event for its REST field.
CRASH_APP = """
def lambda_handler(event, context):
    return route(event)


def route(event):
    return event["httpMethod"]
"""

# Fails at its cold start, as a module whose settings cannot load does.
BROKEN_APP = """
raise RuntimeError("settings: NEW_DATABASE_URL is required")


def lambda_handler(event, context):
    return {}
"""


def _function(tmp_path: Path, name: str) -> LocalFunction:
    for folder, source in {"crash": CRASH_APP, "broken": BROKEN_APP}.items():
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "app.py").write_text(dedent(source), encoding="utf-8")
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE, encoding="utf-8")
    return LocalFunction(resolve_function(name, template_path=template))


def test_a_handler_error_is_lambdas_error_document_from_the_handlers_frames(tmp_path: Path) -> None:
    function = _function(tmp_path, "Crash")

    with pytest.raises(KeyError) as raised:
        function.invoke({"version": "2.0"}, aws_request_id="req-1")
    document = error_document(raised.value, request_id="req-1")

    assert document["errorType"] == "KeyError"
    assert document["errorMessage"] == "'httpMethod'"
    assert document["requestId"] == "req-1"
    frames = document["stackTrace"]
    assert [frame.split(", in ")[1].split("\n")[0] for frame in frames] == ["lambda_handler", "route"]
    assert all(str(tmp_path / "crash" / "app.py") in frame for frame in frames)
    assert 'return event["httpMethod"]' in frames[-1]


def test_an_init_error_names_the_modules_own_line_and_no_importlib_frame(tmp_path: Path) -> None:
    function = _function(tmp_path, "Broken")

    with pytest.raises(RuntimeError) as raised:
        function.invoke({})
    document = error_document(raised.value)

    assert document["errorType"] == "RuntimeError"
    assert document["errorMessage"] == "settings: NEW_DATABASE_URL is required"
    (frame,) = document["stackTrace"]
    assert str(tmp_path / "broken" / "app.py") in frame
    assert "<module>" in frame


def test_an_error_raised_outside_any_function_keeps_its_whole_trace() -> None:
    try:
        raise ValueError("plain")
    except ValueError as exc:
        document = error_document(exc)

    assert document == {
        "errorMessage": "plain",
        "errorType": "ValueError",
        "requestId": "",
        "stackTrace": document["stackTrace"],
    }
    assert len(document["stackTrace"]) == 1
