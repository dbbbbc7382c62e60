"""The committed OpenAPI document is the one the code produces, and it describes every route of both APIs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from pydantic import ValidationError

from auth_migration.admin.models import RolloutChange
from auth_migration.dual_write.api import build_resolver, openapi_schema
from auth_migration.dual_write.api_models import LoginRequest, SignupRequest
from auth_migration.exceptions import ConfigError
from auth_migration.openapi import openapi_document

ROOT = Path(__file__).resolve().parents[2]


def _unused() -> Any:
    raise ConfigError("not called while building the schema")


def test_docs_openapi_json_is_current() -> None:
    produced = openapi_document()
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert committed == produced, "run `auth-migrate openapi --out docs/openapi.json`"


def test_schema_describes_both_routes_with_their_bodies_and_refusals() -> None:
    schema = openapi_schema(build_resolver(_unused, _unused))
    signup = schema["paths"]["/auth/signup"]["post"]
    login = schema["paths"]["/auth/login"]["post"]
    assert {"200", "400", "409", "413", "415", "422", "429", "503"} <= set(signup["responses"])
    assert {"200", "400", "401", "403", "413", "415", "429", "503"} <= set(login["responses"])
    components = schema["components"]["schemas"]
    assert components["SignupRequest"]["additionalProperties"] is False
    assert set(components["SignupRequest"]["required"]) == {"email", "password"}
    assert components["LoginRequest"]["properties"]["password"]["maxLength"] == 1024


def test_admin_routes_are_documented_as_iam_only_with_their_refusals() -> None:
    schema = openapi_document()
    assert schema["components"]["securitySchemes"]["sigv4"] == {
        "type": "apiKey",
        "description": "AWS Signature Version 4 (API Gateway AWS_IAM authorisation)",
        "in": "header",
        "name": "Authorization",
    }
    operations = {
        ("get", "/admin/rollout"): {"200", "403", "413", "429", "503"},
        ("put", "/admin/rollout"): {"200", "400", "403", "409", "413", "415", "429", "503"},
        ("get", "/admin/migrations/{migration_id}"): {"200", "400", "403", "404", "413", "429", "503"},
    }
    for (method, path), statuses in operations.items():
        operation = schema["paths"][path][method]
        assert operation["security"] == [{"sigv4": []}], path
        assert operation["tags"] == ["admin"]
        assert statuses <= set(operation["responses"]), (method, path)
    change = schema["components"]["schemas"]["RolloutChange"]
    assert change["additionalProperties"] is False
    assert change["required"] == ["reason"]
    assert {"signup", "login"} <= {
        op["post"]["operationId"].split("_")[0] for p, op in schema["paths"].items() if "post" in op
    }


_REF = "#/components/schemas/"


def _exact_statuses(operation: dict[str, Any]) -> set[str]:
    return set(operation["responses"])


def test_every_status_each_route_answers_is_documented_and_no_other() -> None:
    paths = openapi_document()["paths"]
    assert _exact_statuses(paths["/auth/signup"]["post"]) == {"200", "400", "409", "413", "415", "422", "429", "503"}
    # No 422 on login: Event Handler's HTTPValidationError is never answered (validation errors are 400s).
    assert _exact_statuses(paths["/auth/login"]["post"]) == {"200", "400", "401", "403", "413", "415", "429", "503"}
    for path, item in paths.items():
        for method, operation in item.items():
            for status, reply in operation["responses"].items():
                assert "HTTPValidationError" not in json.dumps(reply), (method, path, status)


def test_refusals_name_their_body_and_retry_after_where_it_is_sent() -> None:
    document = openapi_document()
    signup = document["paths"]["/auth/signup"]["post"]["responses"]
    error = {"$ref": f"{_REF}ErrorReply"}
    for status in ("400", "409", "415", "422", "503"):
        assert signup[status]["content"]["application/json"]["schema"] == error, status
    # 413 and 429 are also made by API Gateway itself, with its own {message} body.
    for status in ("413", "429"):
        assert signup[status]["content"]["application/json"]["schema"] == {
            "anyOf": [error, {"$ref": f"{_REF}GatewayError"}]
        }
    for status in ("429", "503"):
        assert "Retry-After" in signup[status]["headers"]
    assert document["components"]["schemas"]["GatewayError"]["required"] == ["message"]
    rollout = document["paths"]["/admin/rollout"]["get"]["responses"]
    assert {"$ref": f"{_REF}GatewayError"} in rollout["403"]["content"]["application/json"]["schema"]["anyOf"]


def test_the_document_says_the_routes_are_json_only_as_a_csrf_defence() -> None:
    document = openapi_document()
    assert "CSRF" in document["info"]["description"]
    assert "text/plain" in document["info"]["description"]
    for path in ("/auth/signup", "/auth/login"):
        assert "CSRF" in document["paths"][path]["post"]["description"]


def _components() -> dict[str, Any]:
    components: dict[str, Any] = openapi_document()["components"]["schemas"]
    return components


def _schema_says(name: str, body: dict[str, Any]) -> bool:
    # The validator schemathesis judges with (ECMA-style regexes); these components hold no $ref.
    return bool(jsonschema_rs.validator_for(_components()[name], validate_formats=True).is_valid(body))


def _model_says(model: type[Any], body: dict[str, Any]) -> bool:
    try:
        model.model_validate(body)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    ("email", "accepted"),
    [
        ("ada@example.com", True),
        ("ada@foo.example", True),
        ("a.b+tag@sub.example.org", True),
        ("ada@example.test", False),
        ("ada@EXAMPLE.TEST", False),
        ("ada@x.invalid", False),
        ("ada@x.localhost", False),
        ("ada@x.local", False),
        ("ada@x.onion", False),
        ("ada@in-addr.arpa", False),
        ("ada@localhost", False),
        ("ada@x.123", False),
        ("ada@-x.com", False),
        ("a..b@x.com", False),
        ('"a b"@x.com', False),
        ("ada@[127.0.0.1]", False),
        ("a@" + "b" * 64 + ".com", False),
    ],
)
def test_the_email_pattern_agrees_with_the_validator(email: str, accepted: bool) -> None:
    body = {"email": email, "password": "x"}
    assert _model_says(LoginRequest, body) is accepted
    assert _schema_says("LoginRequest", body) is accepted


@pytest.mark.parametrize(
    ("metadata", "accepted"),
    [
        ({"name": "Ada"}, True),
        ({"a": {"b": {"c": [1]}}}, True),
        ({"a": {"b": {"c": {"d": 1}}}}, True),
        ({"a": {"b": {"c": {"d": {}}}}}, False),
        ({"a": [[[[]]]]}, False),
        ({"name": "A\x00da"}, False),
        ({"na\x00me": "Ada"}, False),
        ({"a": ["x", {"b": "\x00"}]}, False),
    ],
)
def test_the_metadata_schema_agrees_with_the_validator(metadata: dict[str, Any], accepted: bool) -> None:
    body = {"email": "ada@example.com", "password": "correct horse", "metadata": metadata}
    assert _model_says(SignupRequest, body) is accepted
    assert _schema_says("SignupRequest", body) is accepted


@pytest.mark.parametrize(
    ("password", "accepted"),
    [("correct horse", True), (" " * 8, False), ("\x1c" * 8, False), ("\u3000" * 8, False), ("\ufeff" * 8, True)],
)
def test_the_blank_password_pattern_agrees_with_the_validator(password: str, accepted: bool) -> None:
    body = {"email": "ada@example.com", "password": password}
    assert _model_says(SignupRequest, body) is accepted
    assert _schema_says("SignupRequest", body) is accepted


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        ({"reason": "r", "phase": 2}, True),
        ({"reason": "r", "flags": {"DRY_RUN": "true"}}, True),
        ({"reason": "r", "emergency_rollback": True}, True),
        ({"reason": "r", "phase": 2, "flags": None, "emergency_rollback": False}, True),
        ({"reason": "r"}, False),
        ({"reason": "r", "phase": 2, "flags": {"DRY_RUN": "true"}}, False),
        ({"reason": "r", "phase": 2, "emergency_rollback": True}, False),
        ({"reason": "r", "phase": None, "flags": None}, False),
        ({"reason": "   ", "phase": 2}, False),
    ],
)
def test_the_rollout_change_schema_says_exactly_one_request(body: dict[str, Any], accepted: bool) -> None:
    assert _model_says(RolloutChange, body) is accepted
    assert _schema_says("RolloutChange", body) is accepted
