"""The committed OpenAPI document is the one the code produces, and it describes every route of both APIs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auth_migration.dual_write.api import build_resolver, openapi_schema
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
    assert {"200", "400", "409", "422", "429", "503"} <= set(signup["responses"])
    assert {"200", "400", "401", "429", "503"} <= set(login["responses"])
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
        ("get", "/admin/rollout"): {"200", "403", "503"},
        ("put", "/admin/rollout"): {"200", "400", "403", "409", "415", "503"},
        ("get", "/admin/migrations/{migration_id}"): {"200", "400", "403", "404", "503"},
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
