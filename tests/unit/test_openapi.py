"""The committed OpenAPI document is the one the code produces, and it describes both routes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auth_migration.dual_write.api import build_resolver, openapi_schema
from auth_migration.exceptions import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _unused() -> Any:
    raise ConfigError("not called while building the schema")


def test_docs_openapi_json_is_current() -> None:
    produced = openapi_schema(build_resolver(_unused, _unused))
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
