"""Specification of the local API's pure parts: routes from the template, API Gateway's route choice,
the REST (v1) proxy event, and the proxy reply -> HTTP response rules."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from auth_migration_ops.local.api import (
    LOCAL_IAM_USER_ARN,
    ApiRoute,
    HttpRequest,
    MalformedProxyResponse,
    RouteMatch,
    build_proxy_event,
    internal_error,
    is_binary_media_type,
    match_route,
    missing_route,
    parse_proxy_response,
    routes_from_template,
    too_large,
)
from auth_migration_ops.local.stack import _parameter_prefix, local_flags
from auth_migration_ops.local.template import IntrinsicResolver

REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
EPOCH_MS = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z


def api_event(path: str, method: str, api: str | None = "AuthApi") -> dict[str, Any]:
    props: dict[str, Any] = {"Path": path, "Method": method}
    if api is not None:
        props["RestApiId"] = {"Ref": api}
    return {"Type": "Api", "Properties": props}


def template(*functions: tuple[str, dict[str, Any]], stage_param: bool = True, api: bool = True) -> dict[str, Any]:
    resources: dict[str, Any] = {
        name: {"Type": "AWS::Serverless::Function", "Properties": {"Handler": "app.h", "Events": events}}
        for name, events in functions
    }
    if api:
        resources["AuthApi"] = {
            "Type": "AWS::Serverless::Api",
            "Properties": {"StageName": {"Ref": "Stage"}, "BinaryMediaTypes": ["image~1png"]},
        }
    doc: dict[str, Any] = {"Resources": resources}
    if stage_param:
        doc["Parameters"] = {"Stage": {"Type": "String", "Default": "dev"}}
    return doc


AUTH_TEMPLATE = template(
    ("SignupFunction", {"Signup": api_event("/auth/signup", "post")}),
    ("LoginFunction", {"Login": api_event("/auth/login", "POST"), "Queue": {"Type": "SQS", "Properties": {}}}),
)


def route(path: str, method: str = "GET", **kwargs: Any) -> ApiRoute:
    return ApiRoute(function=kwargs.pop("function", "Fn"), event="E", path=path, method=method, stage="dev", **kwargs)


def request(target: str = "/items/42?a=1", method: str = "GET", **kwargs: Any) -> HttpRequest:
    defaults: dict[str, Any] = {
        "headers": (("Host", "127.0.0.1:3000"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*")),
        "body": b"",
        "source_ip": "127.0.0.1",
        "server_port": 3000,
    }
    defaults.update(kwargs)
    return HttpRequest(method=method, target=target, **defaults)


def event_for(req: HttpRequest, r: ApiRoute | None = None) -> dict[str, Any]:
    r = r or route("/items/{id}")
    found = match_route([r], req.method, req.path)
    assert found is not None
    return build_proxy_event(req, found, request_id=REQUEST_ID, request_time_epoch_ms=EPOCH_MS)


# --- routes from the template --------------------------------------------------------------------------------


def test_every_api_event_becomes_a_route_and_other_events_do_not() -> None:
    routes = routes_from_template(AUTH_TEMPLATE)
    assert [(r.method, r.path, r.function, r.event) for r in routes] == [
        ("POST", "/auth/login", "LoginFunction", "Login"),
        ("POST", "/auth/signup", "SignupFunction", "Signup"),
    ]
    assert {r.rest_api for r in routes} == {"AuthApi"}


def test_iam_authorisation_comes_from_the_apis_default_or_the_events_own_auth() -> None:
    doc = template(
        ("AdminFunction", {"Get": api_event("/admin/rollout", "get", api="AdminApi")}),
        ("OpenFunction", {"Get": {**api_event("/admin/open", "get", api="AdminApi")}}),
        ("SignupFunction", {"Signup": api_event("/auth/signup", "post")}),
    )
    doc["Resources"]["AdminApi"] = {
        "Type": "AWS::Serverless::Api",
        "Properties": {"StageName": "dev", "Auth": {"DefaultAuthorizer": "AWS_IAM", "InvokeRole": "NONE"}},
    }
    doc["Resources"]["OpenFunction"]["Properties"]["Events"]["Get"]["Properties"]["Auth"] = {"Authorizer": "NONE"}
    found = {r.function: r.authorizer for r in routes_from_template(doc)}
    assert found == {"AdminFunction": "AWS_IAM", "OpenFunction": None, "SignupFunction": None}


def test_the_real_templates_admin_routes_need_iam_and_the_auth_routes_do_not() -> None:
    from auth_migration_ops.local.template import load_template

    found = {(r.method, r.path): r.authorizer for r in routes_from_template(load_template())}
    assert found == {
        ("GET", "/admin/cutover"): "AWS_IAM",
        ("GET", "/admin/dashboard"): "AWS_IAM",
        ("GET", "/admin/migrations"): "AWS_IAM",
        ("GET", "/admin/migrations/{migration_id}"): "AWS_IAM",
        ("GET", "/admin/rollout"): "AWS_IAM",
        ("GET", "/admin/rollout/history"): "AWS_IAM",
        ("GET", "/admin/stats"): "AWS_IAM",
        ("PUT", "/admin/rollout"): "AWS_IAM",
        ("POST", "/auth/login"): None,
        ("POST", "/auth/signup"): None,
        ("POST", "/auth/session/exchange"): None,
    }


def test_an_iam_route_names_the_local_caller_and_the_signing_key_and_others_name_nobody() -> None:
    signed = request(headers=(("Host", "h"), ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDLOCAL/20261125/x")))
    identity = event_for(signed, route("/items/{id}", authorizer="AWS_IAM"))["requestContext"]["identity"]
    assert identity["userArn"] == LOCAL_IAM_USER_ARN
    assert (identity["accessKey"], identity["accountId"]) == ("AKIDLOCAL", "123456789012")
    anonymous = event_for(signed)["requestContext"]["identity"]
    assert (anonymous["userArn"], anonymous["caller"], anonymous["accessKey"]) == (None, None, None)


def test_stage_is_the_apis_stage_name_resolved_against_parameter_overrides() -> None:
    assert {r.stage for r in routes_from_template(AUTH_TEMPLATE)} == {"dev"}
    staged = routes_from_template(AUTH_TEMPLATE, parameter_overrides={"Stage": "staging"})
    assert {r.stage for r in staged} == {"staging"}


def test_implicit_api_uses_the_stage_parameter_else_sams_prod() -> None:
    fn = ("Fn", {"Get": api_event("/x", "get", api=None)})
    assert routes_from_template(template(fn, api=False))[0].stage == "dev"
    assert routes_from_template(template(fn, api=False, stage_param=False))[0].stage == "Prod"


def test_binary_media_types_come_from_the_api_with_sams_slash_escape_decoded() -> None:
    doc = template(("Fn", {"Get": api_event("/x", "get")}))
    doc["Globals"] = {"Api": {"BinaryMediaTypes": ["application~1pdf"]}}
    (only,) = routes_from_template(doc)
    assert only.binary_media_types == ("application/pdf", "image/png")


def test_api_properties_the_local_api_does_not_use_are_not_resolved() -> None:
    doc = template(("Fn", {"Get": api_event("/x", "get")}))
    doc["Resources"]["AuthApi"]["Properties"]["Auth"] = {"Authorizer": {"Fn::ImportValue": "shared-authorizer"}}
    assert len(routes_from_template(doc)) == 1


def test_method_any_is_kept_as_any() -> None:
    (only,) = routes_from_template(template(("Fn", {"Proxy": api_event("/{proxy+}", "any")})))
    assert only.method == "ANY"


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"Type": "Api", "Properties": {"Method": "get"}}, "Path must be"),
        (api_event("no-slash", "get"), "Path must be"),
        (api_event("/x", "fetch"), "Method must be"),
        (api_event("/{proxy+}/tail", "get"), "must end the path"),
        (api_event("/a{b}", "get"), "invalid"),
        ({"Type": "Api", "Properties": {"Path": "/x", "Method": "get", "RestApiId": "AuthApi"}}, "!Ref"),
        (api_event("/x", "get", api="Missing"), "is not an AWS::Serverless::Api"),
    ],
)
def test_invalid_events_are_refused_with_the_event_named(event: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        routes_from_template(template(("Fn", {"Bad": event})))


def test_one_resource_and_method_claimed_twice_is_refused() -> None:
    doc = template(("A", {"One": api_event("/items/{id}", "get")}), ("B", {"Two": api_event("/items/{name}", "GET")}))
    with pytest.raises(ValueError, match="claimed by both"):
        routes_from_template(doc)


def test_same_path_different_methods_is_fine() -> None:
    doc = template(("A", {"One": api_event("/items", "get")}), ("B", {"Two": api_event("/items", "post")}))
    assert len(routes_from_template(doc)) == 2


# --- matching ----------------------------------------------------------------------------------------------------


def test_static_beats_parameter_beats_greedy() -> None:
    routes = [route("/{proxy+}", "ANY", function="P"), route("/items/{id}", function="I"), route("/items/new")]
    assert _matched(routes, "GET", "/items/new") == ("/items/new", {})
    assert _matched(routes, "GET", "/items/7") == ("/items/{id}", {"id": "7"})
    assert _matched(routes, "GET", "/items/7/parts") == ("/{proxy+}", {"proxy": "items/7/parts"})
    assert _matched(routes, "DELETE", "/items/new") == ("/{proxy+}", {"proxy": "items/new"})


def test_an_exact_method_beats_any_on_the_same_resource() -> None:
    routes = [route("/items", "ANY", function="Any"), route("/items", "POST", function="Post")]
    found = match_route(routes, "POST", "/items")
    assert found is not None
    assert found.route.function == "Post"
    found = match_route(routes, "PUT", "/items")
    assert found is not None
    assert found.route.function == "Any"


def test_greedy_parameter_below_a_static_prefix() -> None:
    routes = [route("/files/{path+}")]
    assert _matched(routes, "GET", "/files/a/b/c.txt") == ("/files/{path+}", {"path": "a/b/c.txt"})
    assert match_route(routes, "GET", "/files") is None  # a greedy parameter needs at least one segment
    assert match_route(routes, "GET", "/files/a//b") is None


def test_no_route_for_unknown_path_or_method() -> None:
    routes = [route("/auth/signup", "POST")]
    assert match_route(routes, "GET", "/auth/signup") is None
    assert match_route(routes, "POST", "/auth/signup/extra") is None
    assert match_route(routes, "POST", "/auth") is None
    assert match_route(routes, "POST", "/Auth/Signup") is None  # paths are case-sensitive


def test_root_and_trailing_slash() -> None:
    routes = [route("/"), route("/items/{id}")]
    assert _matched(routes, "GET", "/") == ("/", {})
    assert _matched(routes, "GET", "/items/9/") == ("/items/{id}", {"id": "9"})
    assert match_route(routes, "GET", "/items/") is None  # an empty segment is no parameter value


def test_path_parameters_stay_percent_encoded_like_api_gateway() -> None:
    assert _matched([route("/items/{id}")], "GET", "/items/my-id%2F100") == ("/items/{id}", {"id": "my-id%2F100"})


def test_method_matching_ignores_case() -> None:
    assert match_route([route("/x", "GET")], "get", "/x") is not None


def _matched(routes: list[ApiRoute], method: str, path: str) -> tuple[str, dict[str, str]]:
    found = match_route(routes, method, path)
    assert found is not None, f"{method} {path} matched nothing"
    return found.route.path, found.path_parameters


# --- the proxy event -----------------------------------------------------------------------------------------------


def test_event_has_exactly_api_gateways_top_level_keys() -> None:
    event = event_for(request())
    assert set(event) == {
        "resource",
        "path",
        "httpMethod",
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "pathParameters",
        "stageVariables",
        "requestContext",
        "body",
        "isBase64Encoded",
    }
    assert json.loads(json.dumps(event)) == event  # a Lambda event is JSON


def test_resource_path_and_method() -> None:
    event = event_for(request("/items/42?a=1"))
    assert event["resource"] == "/items/{id}"
    assert event["path"] == "/items/42"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"id": "42"}
    assert event["stageVariables"] is None


def test_request_context() -> None:
    ctx = event_for(request("/items/42"))["requestContext"]
    assert ctx["resourcePath"] == "/items/{id}"
    assert ctx["httpMethod"] == "GET"
    assert ctx["path"] == "/dev/items/42"
    assert ctx["stage"] == "dev"
    assert ctx["requestId"] == REQUEST_ID
    assert ctx["requestTimeEpoch"] == EPOCH_MS
    assert ctx["requestTime"] == "14/Nov/2023:22:13:20 +0000"
    assert ctx["accountId"] == "123456789012"
    assert ctx["apiId"] == "local"
    assert ctx["protocol"] == "HTTP/1.1"
    assert ctx["domainName"] == "127.0.0.1"
    assert isinstance(ctx["extendedRequestId"], str)
    assert ctx["extendedRequestId"]
    assert isinstance(ctx["resourceId"], str)
    identity = ctx["identity"]
    assert identity["sourceIp"] == "127.0.0.1"
    assert identity["userAgent"] == "curl/8.5.0"
    nulls = {k for k, v in identity.items() if v is None}
    assert {"cognitoIdentityId", "caller", "accessKey", "user", "userArn", "apiKey", "accountId"} <= nulls


def test_request_id_and_time_default_to_fresh_values() -> None:
    r = route("/items/{id}")
    found = match_route([r], "GET", "/items/1")
    assert found is not None
    first = build_proxy_event(request("/items/1"), found)
    second = build_proxy_event(request("/items/1"), found)
    assert uuid.UUID(first["requestContext"]["requestId"]).version == 4
    assert first["requestContext"]["requestId"] != second["requestContext"]["requestId"]
    assert first["requestContext"]["requestTimeEpoch"] > 1_600_000_000_000


def test_no_query_and_no_path_parameters_are_null_not_empty() -> None:
    event = event_for(request("/x"), route("/x"))
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    assert event["body"] is None
    assert event["isBase64Encoded"] is False


def test_query_last_value_wins_and_every_value_is_kept_percent_decoded() -> None:
    event = event_for(request("/items/1?tag=a&tag=b&q=hello%20world&email=x%2By%40z.io&plus=a+b&flag&=nokey"))
    assert event["queryStringParameters"] == {
        "tag": "b",
        "q": "hello world",
        "email": "x+y@z.io",
        "plus": "a+b",
        "flag": "",
    }
    assert event["multiValueQueryStringParameters"]["tag"] == ["a", "b"]
    assert event["multiValueQueryStringParameters"]["flag"] == [""]


def test_headers_last_value_wins_multi_value_keeps_all_grouped_case_insensitively() -> None:
    headers = (("Host", "h"), ("X-Trace", "one"), ("x-trace", "two"), ("Cookie", "a=1"))
    event = event_for(request(headers=headers))
    assert event["headers"]["X-Trace"] == "two"
    assert event["multiValueHeaders"]["X-Trace"] == ["one", "two"]
    assert "x-trace" not in event["headers"]
    assert event["headers"]["Cookie"] == "a=1"
    assert event["multiValueHeaders"]["Host"] == ["h"]
    assert event["requestContext"]["identity"]["userAgent"] is None


def test_forwarded_headers_are_added_and_the_client_is_appended() -> None:
    event = event_for(request(source_ip="10.1.2.3", server_port=8080))
    assert event["headers"]["X-Forwarded-For"] == "10.1.2.3"
    assert event["headers"]["X-Forwarded-Port"] == "8080"
    assert event["headers"]["X-Forwarded-Proto"] == "http"
    chained = event_for(request(headers=(("X-Forwarded-For", "203.0.113.9"),), source_ip="10.1.2.3"))
    assert chained["headers"]["X-Forwarded-For"] == "203.0.113.9, 10.1.2.3"
    assert chained["multiValueHeaders"]["X-Forwarded-For"] == ["203.0.113.9, 10.1.2.3"]


def test_text_body_is_passed_as_a_string() -> None:
    body = json.dumps({"email": "ada@example.com", "password": "pässword"}).encode()
    req = request("/auth/signup", "POST", headers=(("Content-Type", "application/json"),), body=body)
    event = event_for(req, route("/auth/signup", "POST"))
    assert event["body"] == body.decode()
    assert event["isBase64Encoded"] is False


def test_non_utf8_body_is_base64() -> None:
    body = b"\xff\xfe\x00raw"
    event = event_for(request("/x", "POST", headers=(("Content-Type", "text/plain"),), body=body), route("/x", "POST"))
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


@pytest.mark.parametrize("content_type", ["image/png", "IMAGE/PNG; charset=binary", "application/octet-stream"])
def test_binary_content_type_body_is_base64_even_when_it_is_valid_utf8(content_type: str) -> None:
    r = route("/x", "POST", binary_media_types=("image/png",))
    event = event_for(request("/x", "POST", headers=(("Content-Type", content_type),), body=b"abc"), r)
    assert event["isBase64Encoded"] is True
    assert event["body"] == base64.b64encode(b"abc").decode()


def test_binary_media_type_patterns() -> None:
    assert is_binary_media_type("application/pdf", ["*/*"])
    assert is_binary_media_type("image/webp", [])
    assert is_binary_media_type("text/csv", ["text/*"])
    assert not is_binary_media_type("application/json", ["image/*"])
    assert not is_binary_media_type(None, ["*/*"])


def test_the_event_builder_does_not_change_its_inputs() -> None:
    req = request()
    found = RouteMatch(route("/items/{id}"), {"id": "42"})
    event = build_proxy_event(req, found, request_id=REQUEST_ID, request_time_epoch_ms=EPOCH_MS)
    event["pathParameters"]["id"] = "changed"
    assert found.path_parameters == {"id": "42"}


# --- the proxy reply -------------------------------------------------------------------------------------------------


def test_reply_status_headers_and_body() -> None:
    reply = parse_proxy_response(
        {"statusCode": 201, "headers": {"Content-Type": "text/plain", "X-A": 1, "X-B": True}, "body": "héllo"}
    )
    assert reply.status == 201
    assert reply.headers == (("Content-Type", "text/plain"), ("X-A", "1"), ("X-B", "true"))
    assert reply.body == "héllo".encode()


def test_reply_without_content_type_is_json_and_without_body_is_empty() -> None:
    reply = parse_proxy_response({"statusCode": 204})
    assert reply.headers == (("Content-Type", "application/json"),)
    assert reply.body == b""


def test_multi_value_headers_merge_and_win_over_single_values_of_the_same_name() -> None:
    reply = parse_proxy_response(
        {
            "statusCode": 200,
            "headers": {"set-cookie": "ignored=1", "X-One": "1"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        }
    )
    assert ("X-One", "1") in reply.headers
    assert [v for k, v in reply.headers if k.lower() == "set-cookie"] == ["a=1", "b=2"]


def test_framing_headers_of_the_function_are_dropped() -> None:
    reply = parse_proxy_response({"statusCode": 200, "headers": {"Content-Length": "999", "Connection": "x"}})
    assert [k for k, _ in reply.headers] == ["Content-Type"]


def test_base64_reply_body_is_decoded_and_string_status_accepted() -> None:
    reply = parse_proxy_response(
        {"statusCode": "200", "body": base64.b64encode(b"\x00\xff").decode(), "isBase64Encoded": True}
    )
    assert reply.status == 200
    assert reply.body == b"\x00\xff"


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "ok",
        [],
        {},
        {"statusCode": None},
        {"statusCode": True},
        {"statusCode": 99},
        {"statusCode": "two hundred"},
        {"statusCode": 200, "body": {"a": 1}},
        {"statusCode": 200, "extra": 1},
        {"statusCode": 200, "headers": ["a"]},
        {"statusCode": 200, "headers": {"X": None}},
        {"statusCode": 200, "headers": {"X": {"nested": 1}}},
        {"statusCode": 200, "headers": {"X": "a\r\nInjected: 1"}},
        {"statusCode": 200, "multiValueHeaders": {"X": "not-a-list"}},
        {"statusCode": 200, "isBase64Encoded": "true", "body": "YQ=="},
        {"statusCode": 200, "isBase64Encoded": True, "body": "not base64!"},
    ],
)
def test_malformed_replies_are_refused(bad: Any) -> None:
    with pytest.raises(MalformedProxyResponse):
        parse_proxy_response(bad)


def test_gateway_errors_look_like_api_gateways() -> None:
    assert missing_route().status == 403
    assert json.loads(missing_route().body) == {"message": "Missing Authentication Token"}
    assert ("x-amzn-ErrorType", "MissingAuthenticationTokenException") in missing_route().headers
    assert internal_error().status == 502
    assert json.loads(internal_error().body) == {"message": "Internal server error"}
    assert too_large().status == 413


# --- local stack configuration (pure parts) -------------------------------------------------------------------------


def test_local_flags_are_dual_write_with_supabase_primary() -> None:
    flags = local_flags()
    assert flags["MIGRATION_MODE"] == "dual_write"
    assert flags["USE_BETTER_AUTH"] == "false"
    assert flags["MIGRATION_VALIDATION"] == "true"
    assert flags["MIGRATION_FALLBACK_TIMEOUT"] == "3000"


def test_parameter_prefix_comes_from_the_templates_globals() -> None:
    doc: dict[str, Any] = {
        "Parameters": {"Stage": {"Type": "String", "Default": "dev"}},
        "Globals": {"Function": {"Environment": {"Variables": {"PARAMETER_PREFIX": {"Fn::Sub": "/app/${Stage}"}}}}},
        "Resources": {},
    }
    assert _parameter_prefix(doc, IntrinsicResolver(doc), "dev") == "/app/dev/"
    doc["Globals"] = {}
    assert _parameter_prefix(doc, IntrinsicResolver(doc), "dev") == "/auth-migration/dev/"
