"""What only the admin API's OpenAPI document needs: its security scheme (auth_migration.openapi builds
the document, `auth-migrate openapi` prints it into docs/openapi.json).

Not imported by the Admin function: Powertools' OpenAPI models (pydantic models of the whole OpenAPI
specification) cost ~60 ms of cold start and no request uses them. The routes name the scheme by its key
(`security=[{"sigv4": []}]`); Powertools checks that key against these schemes only when it builds the
document (`get_openapi_schema(security_schemes=...)`)."""

from __future__ import annotations

from typing import Final

from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, SecurityScheme

__all__ = ["SECURITY_SCHEMES"]

#: How OpenAPI names API Gateway's IAM authorisation (SigV4 in the Authorization header).
SECURITY_SCHEMES: Final[dict[str, SecurityScheme]] = {
    "sigv4": APIKey.model_validate(
        {
            "name": "Authorization",
            "in": APIKeyIn.header,
            "description": "AWS Signature Version 4 (API Gateway AWS_IAM authorisation)",
        }
    )
}
