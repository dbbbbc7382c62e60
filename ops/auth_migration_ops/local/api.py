"""The template's REST API on this machine, the way `sam local start-api` serves it (no container runtime).

Routes come from every AWS::Serverless::Function's `Api` events. A request is matched like API Gateway
matches it (static segments before `{param}` before `{proxy+}`, an exact method before ANY), turned into
the REST (v1) Lambda proxy event API Gateway would send, and handed to the function in-process through
`LocalFunction` (template handler, layers and environment). The proxy reply becomes the HTTP response;
a handler that raises or answers malformed gives API Gateway's 502, an unknown route its 403.

The event building, route matching and reply parsing are pure functions (no I/O), so unit tests pin the
event shape down; `LocalApi` adds the HTTP server and the invocation.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Final, TextIO
from urllib.parse import unquote, urlsplit

from auth_migration_ops.local.invoke import LocalFunction
from auth_migration_ops.local.template import IntrinsicResolver, load_template, resolve_function

__all__ = [
    "API_BODY_LIMIT",
    "ApiReply",
    "ApiRoute",
    "HttpRequest",
    "LocalApi",
    "MalformedProxyResponse",
    "RouteMatch",
    "build_proxy_event",
    "gateway_error",
    "match_route",
    "parse_proxy_response",
    "routes_from_template",
    "serve",
]

#: API Gateway's payload limit (REST APIs): 10 MB; a bigger request is answered 413.
API_BODY_LIMIT: Final = 10 * 1024 * 1024
LOCAL_API_ID: Final = "local"
LOCAL_ACCOUNT_ID: Final = "123456789012"
DEFAULT_PORT: Final = 3000
#: The caller of every IAM-authorised route here (no signature is checked locally, as in sam local).
LOCAL_IAM_USER_ID: Final = "AIDALOCALUSER"
LOCAL_IAM_USER_ARN: Final = f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:user/local"

_FUNCTION_TYPE: Final = "AWS::Serverless::Function"
_API_TYPE: Final = "AWS::Serverless::Api"
_ANY: Final = "ANY"
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", _ANY})
# SAM's implicit API (events without RestApiId) is deployed to a stage named "Prod".
_IMPLICIT_STAGE: Final = "Prod"
# Content types whose bodies are bytes whatever the API's BinaryMediaTypes say; anything else is text
# unless the API lists it or it is not valid UTF-8.
_ALWAYS_BINARY: Final = ("application/octet-stream", "image/*", "audio/*", "video/*", "application/zip")
_PROXY_REPLY_KEYS: Final = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
# Framing headers belong to the gateway, never to the function's reply.
_HOP_BY_HOP: Final = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive", "date"})
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PARAM_SEGMENT: Final = re.compile(r"^\{([A-Za-z0-9._-]+)(\+?)\}$")
_STATIC, _PARAM, _GREEDY = 0, 1, 2


# --- routes -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiRoute:
    """One `Api` event of a function: its resource path and method on one REST API and stage."""

    function: str
    event: str
    path: str
    method: str
    stage: str
    rest_api: str | None = None
    binary_media_types: tuple[str, ...] = ()
    #: "AWS_IAM" when API Gateway authorises the route with IAM (the event then names the caller).
    authorizer: str | None = None
    _segments: tuple[tuple[int, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        segments: list[tuple[int, str]] = []
        parts = _split_path(self.path)
        for index, part in enumerate(parts):
            match = _PARAM_SEGMENT.match(part)
            if match is None:
                if "{" in part or "}" in part:
                    raise ValueError(f"{self.function}.{self.event}: path part {part!r} of {self.path!r} is invalid")
                segments.append((_STATIC, part))
            elif match.group(2):
                if index != len(parts) - 1:
                    raise ValueError(f"{self.function}.{self.event}: {{{match.group(1)}+}} must end the path")
                segments.append((_GREEDY, match.group(1)))
            else:
                segments.append((_PARAM, match.group(1)))
        object.__setattr__(self, "_segments", tuple(segments))

    @property
    def specificity(self) -> tuple[tuple[int, ...], int]:
        """Sort key: the most specific route sorts first (per segment static < param < greedy; ANY last)."""
        return tuple(kind for kind, _ in self._segments), int(self.method == _ANY)

    @property
    def shape(self) -> tuple[tuple[int, str], ...]:
        """The path with parameter names dropped: /items/{id} and /items/{name} are one resource."""
        return tuple((kind, text if kind == _STATIC else "") for kind, text in self._segments)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters if this route serves `method` on raw `path`, else None."""
        if self.method not in (_ANY, method.upper()):
            return None
        parts = _split_path(path)
        params: dict[str, str] = {}
        for index, (kind, text) in enumerate(self._segments):
            if kind == _GREEDY:
                rest = parts[index:]
                if not rest or any(not part for part in rest):
                    return None
                params[text] = "/".join(rest)
                return params
            if index >= len(parts) or not parts[index]:
                return None
            if kind == _STATIC and parts[index] != text:
                return None
            if kind == _PARAM:
                params[text] = parts[index]
        return params if len(parts) == len(self._segments) else None


@dataclass(frozen=True)
class RouteMatch:
    route: ApiRoute
    path_parameters: dict[str, str]


def _split_path(path: str) -> list[str]:
    # "/" is the root resource (no segments); one trailing slash is ignored, as API Gateway ignores it.
    trimmed = path.strip()
    if trimmed.endswith("/"):
        trimmed = trimmed[:-1]
    if not trimmed:
        return []
    return trimmed.removeprefix("/").split("/")


def match_route(routes: Sequence[ApiRoute], method: str, path: str) -> RouteMatch | None:
    """The route API Gateway would pick for `method` on raw `path` (no query), or None (its 403)."""
    candidates = [(route, params) for route in routes if (params := route.match(method, path)) is not None]
    if not candidates:
        return None
    route, params = min(candidates, key=lambda candidate: candidate[0].specificity)
    return RouteMatch(route, params)


def routes_from_template(
    template: Mapping[str, Any], *, parameter_overrides: Mapping[str, str] | None = None
) -> list[ApiRoute]:
    """Every `Type: Api` event of every function in a parsed template, most specific first.

    The stage is the RestApiId's StageName, else the template's Stage parameter, else SAM's "Prod".

    Raises:
        ValueError: an event without Path/Method, an unknown method, an invalid path, a RestApiId
            that is not a `!Ref` to an AWS::Serverless::Api, or two events claiming one route.
    """
    resolver = IntrinsicResolver(template, parameter_overrides=parameter_overrides)
    resources: Mapping[str, Any] = template.get("Resources") or {}
    global_api = _api_properties((template.get("Globals") or {}).get("Api") or {}, resolver)
    parameters: Mapping[str, Any] = template.get("Parameters") or {}
    default_stage = resolver.parameter("Stage") if "Stage" in parameters else _IMPLICIT_STAGE

    routes: list[ApiRoute] = []
    for logical_id, resource in resources.items():
        if not isinstance(resource, Mapping) or resource.get("Type") != _FUNCTION_TYPE:
            continue
        events: Mapping[str, Any] = (resource.get("Properties") or {}).get("Events") or {}
        for event_name, event in events.items():
            if not isinstance(event, Mapping) or event.get("Type") != "Api":
                continue
            props = event.get("Properties") or {}
            where = f"{logical_id}.Events.{event_name}"
            path, method = resolver.resolve(props.get("Path")), resolver.resolve(props.get("Method"))
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValueError(f"{where}: Path must be a string starting with '/', got {path!r}")
            if not isinstance(method, str) or method.upper() not in _METHODS:
                raise ValueError(f"{where}: Method must be one of {sorted(_METHODS)} (any case), got {method!r}")
            rest_api, api_props = _rest_api(where, props.get("RestApiId"), resources, resolver)
            stage = api_props.get("StageName") or default_stage
            binary = [*(global_api.get("BinaryMediaTypes") or []), *(api_props.get("BinaryMediaTypes") or [])]
            authorizer = _authorizer(props, api_props)
            routes.append(
                ApiRoute(
                    function=logical_id,
                    event=event_name,
                    path=path,
                    method=method.upper(),
                    stage=str(stage),
                    rest_api=rest_api,
                    # SAM writes "/" as "~1" in BinaryMediaTypes (a JSON-pointer escape).
                    binary_media_types=tuple(str(item).replace("~1", "/").lower() for item in binary),
                    authorizer=authorizer,
                )
            )
    seen: dict[tuple[str | None, tuple[tuple[int, str], ...], str], ApiRoute] = {}
    for route in routes:
        key = (route.rest_api, route.shape, route.method)
        if key in seen:
            other = seen[key]
            raise ValueError(
                f"{route.method} {route.path} is claimed by both {other.function}.{other.event} "
                f"and {route.function}.{route.event}"
            )
        seen[key] = route
    return sorted(routes, key=lambda route: (route.path, route.method))


def _rest_api(
    where: str, rest_api_id: Any, resources: Mapping[str, Any], resolver: IntrinsicResolver
) -> tuple[str | None, dict[str, Any]]:
    if rest_api_id is None:
        return None, {}
    if not (isinstance(rest_api_id, Mapping) and set(rest_api_id) == {"Ref"}):
        raise ValueError(f"{where}: RestApiId must be a !Ref to an {_API_TYPE} of the template")
    name = str(rest_api_id["Ref"])
    api = resources.get(name)
    if not isinstance(api, Mapping) or api.get("Type") != _API_TYPE:
        raise ValueError(f"{where}: RestApiId !Ref {name} is not an {_API_TYPE} of the template")
    return name, _api_properties(api.get("Properties") or {}, resolver)


def _api_properties(properties: Mapping[str, Any], resolver: IntrinsicResolver) -> dict[str, Any]:
    # Only what the local API uses is resolved: Auth, Cors or a DefinitionBody may hold intrinsics
    # (Fn::ImportValue, authorizer ARNs) that mean nothing locally; of Auth, only a literal default name.
    found = {key: resolver.resolve(properties[key]) for key in ("StageName", "BinaryMediaTypes") if key in properties}
    auth = properties.get("Auth")
    if isinstance(auth, Mapping) and isinstance(auth.get("DefaultAuthorizer"), str):
        found["DefaultAuthorizer"] = auth["DefaultAuthorizer"]
    return found


def _authorizer(event_props: Mapping[str, Any], api_props: Mapping[str, Any]) -> str | None:
    """The event's own Auth.Authorizer, else the API's DefaultAuthorizer; "NONE" means none."""
    auth = event_props.get("Auth")
    name = auth.get("Authorizer") if isinstance(auth, Mapping) else None
    if not isinstance(name, str):
        name = api_props.get("DefaultAuthorizer")
    return None if not isinstance(name, str) or name.upper() == "NONE" else name


# --- the proxy event (pure) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request as received: `target` is the raw request-target (path and query, not decoded)."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    source_ip: str
    server_port: int = DEFAULT_PORT
    protocol: str = "HTTP/1.1"

    @property
    def path(self) -> str:
        return urlsplit(self.target).path or "/"

    def header(self, name: str) -> str | None:
        """The last value of header `name` (case-insensitive), as API Gateway's `headers` keeps it."""
        found = None
        for key, value in self.headers:
            if key.lower() == name.lower():
                found = value
        return found


def _multi_map(pairs: Sequence[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(last value wins, every value) keyed by the first spelling seen of each case-insensitive name."""
    spelling: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        name = spelling.setdefault(key.lower(), key)
        multi.setdefault(name, []).append(value)
    return {name: values[-1] for name, values in multi.items()}, multi


def _query_pairs(query: str) -> list[tuple[str, str]]:
    # API Gateway percent-decodes query names and values but keeps a literal '+' (no form decoding).
    pairs = []
    for piece in query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if name:
            pairs.append((unquote(name), unquote(value)))
    return pairs


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_binary_media_type(content_type: str | None, binary_media_types: Sequence[str]) -> bool:
    """True when `content_type` matches the API's BinaryMediaTypes (`*/*`, `image/*`...) or is always binary."""
    media = _media_type(content_type)
    if not media:
        return False
    for pattern in (*binary_media_types, *_ALWAYS_BINARY):
        kind, _, subtype = pattern.lower().partition("/")
        media_kind, _, media_subtype = media.partition("/")
        if kind in ("*", media_kind) and subtype in ("*", media_subtype):
            return True
    return False


def _request_time(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return f"{moment.day:02d}/{_MONTHS[moment.month - 1]}/{moment.year}:{moment:%H:%M:%S} +0000"


def _resource_id(route: ApiRoute) -> str:
    # A deployed API gives every resource a short stable id; derive one from the resource path.
    return hashlib.sha256(f"{route.rest_api}:{route.path}".encode()).hexdigest()[:6]


def forwarded_headers(request: HttpRequest) -> list[tuple[str, str]]:
    """The request headers as the integration sees them: API Gateway appends the client to X-Forwarded-For
    and sets X-Forwarded-Port / X-Forwarded-Proto."""
    headers = [(k, v) for k, v in request.headers if k.lower() not in ("x-forwarded-port", "x-forwarded-proto")]
    prior = [v for k, v in headers if k.lower() == "x-forwarded-for"]
    headers = [(k, v) for k, v in headers if k.lower() != "x-forwarded-for"]
    chain = ", ".join([*prior, request.source_ip]) if prior else request.source_ip
    headers += [
        ("X-Forwarded-For", chain),
        ("X-Forwarded-Port", str(request.server_port)),
        ("X-Forwarded-Proto", "http"),
    ]
    return headers


def build_proxy_event(
    request: HttpRequest,
    match: RouteMatch,
    *,
    request_id: str | None = None,
    request_time_epoch_ms: int | None = None,
) -> dict[str, Any]:
    """The REST API (v1) Lambda proxy event API Gateway sends for `request` on `match.route`.

    Pure: no I/O. `path` and `pathParameters` stay as sent (API Gateway does not percent-decode them);
    query names and values are percent-decoded. The body is text, or base64 with isBase64Encoded when
    the content type is binary for the API or the bytes are not UTF-8.
    """
    route = match.route
    request_id = request_id or str(uuid.uuid4())
    epoch_ms = request_time_epoch_ms if request_time_epoch_ms is not None else int(time.time() * 1000)
    path = request.path
    query = _query_pairs(urlsplit(request.target).query)
    header_pairs = forwarded_headers(request)
    headers, multi_headers = _multi_map(header_pairs)
    query_last, query_multi = _multi_query(query)

    body: str | None = None
    is_base64 = False
    if request.body:
        binary = is_binary_media_type(request.header("Content-Type"), route.binary_media_types)
        if not binary:
            try:
                body = request.body.decode("utf-8")
            except UnicodeDecodeError:
                binary = True
        if binary:
            body, is_base64 = base64.b64encode(request.body).decode("ascii"), True

    host = request.header("Host") or "localhost"
    domain = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    extended = base64.urlsafe_b64encode(uuid.UUID(request_id).bytes[:11] if _is_uuid(request_id) else b"local").decode()
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": request.method.upper(),
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query_last or None,
        "multiValueQueryStringParameters": query_multi or None,
        "pathParameters": dict(match.path_parameters) or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": _resource_id(route),
            "resourcePath": route.path,
            "httpMethod": request.method.upper(),
            "extendedRequestId": extended,
            "requestTime": _request_time(epoch_ms),
            "path": f"/{route.stage}{path}",
            "accountId": LOCAL_ACCOUNT_ID,
            "protocol": request.protocol,
            "stage": route.stage,
            "domainPrefix": domain.split(".", 1)[0],
            "requestTimeEpoch": epoch_ms,
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "cognitoIdentityId": None,
                "sourceIp": request.source_ip,
                "principalOrgId": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userAgent": request.header("User-Agent"),
                "apiKey": None,
                "apiKeyId": None,
                "clientCert": None,
                **_iam_identity(request if route.authorizer == "AWS_IAM" else None),
            },
            "domainName": domain,
            "apiId": LOCAL_API_ID,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


def _iam_identity(request: HttpRequest | None) -> dict[str, Any]:
    """What an IAM-authorised route's event says about the caller. Like `sam local start-api`, nothing is
    verified here: every caller is the local user, and the access key is the one a SigV4 header names."""
    if request is None:
        return {"accountId": None, "caller": None, "accessKey": None, "userArn": None, "user": None}
    credential = re.search(r"Credential=([A-Z0-9]+)/", request.header("Authorization") or "")
    return {
        "accountId": LOCAL_ACCOUNT_ID,
        "caller": LOCAL_IAM_USER_ID,
        "accessKey": credential.group(1) if credential else None,
        "userArn": LOCAL_IAM_USER_ARN,
        "user": LOCAL_IAM_USER_ID,
    }


def _multi_query(pairs: Sequence[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    # Query names are case-sensitive (unlike header names).
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    return {name: values[-1] for name, values in multi.items()}, multi


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


# --- the proxy reply (pure) -------------------------------------------------------------------------------


class MalformedProxyResponse(ValueError):
    """The function's reply is not a Lambda proxy response; API Gateway answers 502."""


@dataclass(frozen=True)
class ApiReply:
    """An HTTP response to write: status, headers in order (names may repeat), body bytes."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _header_text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise MalformedProxyResponse(f"header {name!r} has a {type(value).__name__} value; expected a string")


def parse_proxy_response(reply: Any) -> ApiReply:
    """Turn a Lambda proxy reply into an HTTP response, as API Gateway does.

    `headers` and `multiValueHeaders` merge; a name in both keeps only its multiValueHeaders values.
    Without a Content-Type the response is application/json (API Gateway's default).

    Raises:
        MalformedProxyResponse: not an object, unknown keys, no integer statusCode, a non-string body,
            headers that are not string maps, or isBase64Encoded with a body that is not base64.
    """
    if not isinstance(reply, Mapping):
        raise MalformedProxyResponse(f"the reply is a {type(reply).__name__}, not an object")
    unknown = sorted(set(reply) - _PROXY_REPLY_KEYS)
    if unknown:
        raise MalformedProxyResponse(f"unknown key(s) {unknown}; allowed: {sorted(_PROXY_REPLY_KEYS)}")
    status = reply.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise MalformedProxyResponse(f"statusCode must be an integer HTTP status, got {status!r}")

    single = reply.get("headers") or {}
    multi = reply.get("multiValueHeaders") or {}
    if not isinstance(single, Mapping) or not isinstance(multi, Mapping):
        raise MalformedProxyResponse("headers and multiValueHeaders must be objects")
    pairs: list[tuple[str, str]] = []
    multi_names = {str(name).lower() for name in multi}
    for name, value in single.items():
        if str(name).lower() not in multi_names:
            pairs.append((str(name), _header_text(name, value)))
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedProxyResponse(f"multiValueHeaders[{name!r}] must be a list")
        pairs.extend((str(name), _header_text(name, value)) for value in values)
    pairs = [(name, value) for name, value in pairs if name.lower() not in _HOP_BY_HOP]
    for name, value in pairs:
        if any(ch in name + value for ch in "\r\n") or not name:
            raise MalformedProxyResponse(f"header {name!r} has an invalid name or a line break")
    if not any(name.lower() == "content-type" for name, _ in pairs):
        pairs.append(("Content-Type", "application/json"))

    body = reply.get("body")
    encoded = reply.get("isBase64Encoded", False)
    if not isinstance(encoded, bool):
        raise MalformedProxyResponse(f"isBase64Encoded must be a boolean, got {encoded!r}")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        raise MalformedProxyResponse(f"body must be a string (JSON-encode objects), got {type(body).__name__}")
    elif encoded:
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedProxyResponse(f"isBase64Encoded is true but body is not base64: {exc}") from exc
    else:
        data = body.encode("utf-8")
    return ApiReply(status, tuple(pairs), data)


def gateway_error(status: int, message: str, error_type: str) -> ApiReply:
    """A response API Gateway produces itself (no function involved), with its x-amzn-ErrorType."""
    body = json.dumps({"message": message}).encode()
    return ApiReply(status, (("Content-Type", "application/json"), ("x-amzn-ErrorType", error_type)), body)


def missing_route() -> ApiReply:
    return gateway_error(403, "Missing Authentication Token", "MissingAuthenticationTokenException")


def internal_error() -> ApiReply:
    return gateway_error(502, "Internal server error", "InternalServerErrorException")


def too_large() -> ApiReply:
    return gateway_error(413, "Request Too Long", "RequestTooLongException")


# --- the server --------------------------------------------------------------------------------------------


class _BodyTooLarge(Exception):
    pass


class _BadRequest(Exception):
    pass


class LocalApi:
    """The template's Api routes served over HTTP, each function run in-process by a `LocalFunction`.

    A function serves one request at a time (a Lambda container serves one invocation at a time), so
    requests to one function queue on its lock while other functions' requests run; note that
    `LocalFunction` also serialises functions whose environments differ (os.environ is process-wide).
    """

    def __init__(
        self,
        template_path: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        env_overrides: Mapping[str, str] | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        resource_values: Mapping[str, str] | None = None,
        body_limit: int = API_BODY_LIMIT,
        quiet: bool = False,
        errors: TextIO | None = None,
    ) -> None:
        self.template_path = template_path
        self.host = host
        self.port = port
        self.env_overrides = dict(env_overrides or {})
        self.body_limit = body_limit
        self.quiet = quiet
        self._errors = errors
        template = load_template(template_path)
        self.routes = routes_from_template(template, parameter_overrides=parameter_overrides)
        if not self.routes:
            raise ValueError(f"{template_path or 'template.yaml'} has no function with an `Api` event")
        self._functions: dict[str, LocalFunction] = {}
        self._locks: dict[str, threading.Lock] = {}
        for name in sorted({route.function for route in self.routes}):
            spec = resolve_function(
                name,
                template_path=template_path,
                parameter_overrides=parameter_overrides,
                resource_values=resource_values,
            )
            self._functions[name] = LocalFunction(spec)
            self._locks[name] = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def errors(self) -> TextIO:
        return self._errors or sys.stderr

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local API has no address until it is bound")
        host, port = self._server.server_address[:2]
        shown = f"[{host!s}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}"

    def function(self, name: str) -> LocalFunction:
        return self._functions[name]

    # --- dispatch ---

    def handle(self, request: HttpRequest) -> tuple[ApiReply, str]:
        """The reply to `request` and its request id: match, build the event, invoke, parse the reply."""
        request_id = str(uuid.uuid4())
        found = match_route(self.routes, request.method, request.path)
        if found is None:
            return missing_route(), request_id
        event = build_proxy_event(request, found, request_id=request_id)
        name = found.route.function
        try:
            with self._locks[name]:
                result = self._functions[name].invoke(event, env_overrides=self.env_overrides)
        except Exception:
            self._report(f"{name}: the invocation failed (request {request_id}):\n{traceback.format_exc()}")
            return internal_error(), request_id
        try:
            return parse_proxy_response(result), request_id
        except MalformedProxyResponse as exc:
            self._report(f"{name}: invalid Lambda proxy response (request {request_id}): {exc}\n")
            return internal_error(), request_id

    def _report(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.errors.write(text)
            self.errors.flush()

    # --- lifecycle ---

    def bind(self) -> LocalApi:
        """Bind the listening socket (raises OSError when the port is taken)."""
        if self._server is None:
            server_class = _Server6 if ":" in self.host else _Server
            server = server_class((self.host, self.port), _RequestHandler)
            server.api = self
            self._server = server
        return self

    def start(self) -> LocalApi:
        """Bind and serve in a background thread (tests); `serve_forever()` serves in the caller's."""
        self.bind()
        assert self._server is not None
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="local-api", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.bind()
        assert self._server is not None
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        if self._thread is not None:
            server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        server.server_close()

    def __enter__(self) -> LocalApi:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# Why the stdlib server and not a framework (Flask, as sam local uses): no extra dependency for an ops
# tool, and one process with a thread per connection is sam local's own model; the functions still run
# one request at a time each, so a faster server would buy nothing.
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: a burst of 20 clients saw connections reset. The
    # kernel caps it at net.core.somaxconn; every accepted connection gets its own thread, and requests
    # then wait on their function's lock (one warm container each), queued rather than refused.
    request_queue_size = 1024
    api: LocalApi


class _Server6(_Server):
    address_family = socket.AF_INET6


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "auth-migrate-local-api"
    protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.api.quiet:
            self.server.api._report(f"{self.address_string()} - [{self.log_date_time_string()}] {format % args}\n")

    def handle_expect_100(self) -> bool:
        # `Expect: 100-continue` (curl sends it for large bodies): refuse before the body is sent.
        try:
            length = self._content_length()
        except _BadRequest:
            length = None
        if length is not None and length > self.server.api.body_limit:
            self.close_connection = True
            self._write(too_large(), request_id=str(uuid.uuid4()))
            return False
        return super().handle_expect_100()

    def do_GET(self) -> None:
        self._serve()

    # TRACE too: API Gateway answers every method a route does not declare (403), never 501.
    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_TRACE = do_GET

    def _serve(self) -> None:
        api = self.server.api
        try:
            body = self._read_body(api.body_limit)
        except _BodyTooLarge:
            self.close_connection = True
            self._write(too_large(), request_id=str(uuid.uuid4()))
            self._drain(api.body_limit)
            return
        except _BadRequest as exc:
            self.close_connection = True
            self._write(gateway_error(400, str(exc), "BadRequestException"), request_id=str(uuid.uuid4()))
            return
        request = HttpRequest(
            method=self.command,
            target=self.path,
            headers=tuple((str(k), str(v)) for k, v in self.headers.items()),
            body=body,
            source_ip=str(self.client_address[0]),
            server_port=int(self.server.server_address[1]),
            protocol=self.request_version,
        )
        reply, request_id = api.handle(request)
        self._write(reply, request_id=request_id)

    def _content_length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return None
        try:
            length = int(raw)
        except ValueError:
            raise _BadRequest("invalid Content-Length") from None
        if length < 0:
            raise _BadRequest("invalid Content-Length")
        return length

    def _read_body(self, limit: int) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(limit)
        length = self._content_length()
        if not length:
            return b""
        if length > limit:
            self._pending = length
            raise _BodyTooLarge
        data = self.rfile.read(length)
        if len(data) != length:
            raise _BadRequest("the body ended before Content-Length bytes")
        return data

    def _read_chunked(self, limit: int) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest("invalid chunked body") from None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers, then the blank line
                    pass
                return b"".join(chunks)
            total += size
            if total > limit:
                self._pending = 0  # the rest of a chunked body cannot be skipped cheaply: close
                raise _BodyTooLarge
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)  # the CRLF after the chunk

    def _drain(self, limit: int) -> None:
        # Read (and drop) what the client is still sending, briefly, so closing does not reset the
        # connection before it has read the 413.
        remaining = min(getattr(self, "_pending", 0), 4 * limit)
        with contextlib.suppress(OSError):
            self.connection.settimeout(1.0)
            while remaining > 0:
                data = self.rfile.read(min(remaining, 1 << 16))
                if not data:
                    break
                remaining -= len(data)

    def _write(self, reply: ApiReply, *, request_id: str) -> None:
        self.send_response_only(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Date", formatdate(usegmt=True))
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and reply.body:
            self.wfile.write(reply.body)
        self.log_request(reply.status)


# --- `auth-migrate local api` ---------------------------------------------------------------------------------

_EXAMPLE_BODIES: Final = {
    "/auth/signup": '{"email":"ada@example.com","password":"correct-horse-battery-staple"}',
    "/auth/login": '{"email":"ada@example.com","password":"correct-horse-battery-staple"}',
}


def banner(api: LocalApi, services: Sequence[tuple[str, str]]) -> str:
    """What `auth-migrate local api` prints once it listens: URL, routes, the stack, example requests."""
    width = max(len(route.method) for route in api.routes)
    path_width = max(len(route.path) for route in api.routes)
    lines = [f"auth-migrate local api: listening on {api.url} (stage {api.routes[0].stage})", "", "Routes:"]
    lines += [
        f"  {route.method:<{width}}  {route.path:<{path_width}}  -> {route.function}"
        + (f" ({route.rest_api})" if route.rest_api else "")
        + (" [IAM: not checked here; caller is the local user]" if route.authorizer == "AWS_IAM" else "")
        for route in api.routes
    ]
    if services:
        lines += ["", "Local stack:"]
        lines += [f"  {what}: {where}" for what, where in services]
    examples = sorted(
        (route for route in api.routes if route.path in _EXAMPLE_BODIES and route.method in ("POST", _ANY)),
        key=lambda route: list(_EXAMPLE_BODIES).index(route.path),  # sign up first, then log in
    )
    lines += ["", "Try:"]
    if examples:
        for route in examples:
            lines.append(
                f"  curl -s -X POST {api.url}{route.path} -H 'Content-Type: application/json' "
                f"-d '{_EXAMPLE_BODIES[route.path]}'"
            )
        if any(route.path == "/admin/rollout" for route in api.routes):
            lines.append(f"  curl -s {api.url}/admin/rollout")
    else:
        route = api.routes[0]
        method = "GET" if route.method == _ANY else route.method
        path = re.sub(r"\{[^}]+\}", "example", route.path)
        data = " -H 'Content-Type: application/json' -d '{}'" if method in ("POST", "PUT", "PATCH") else ""
        lines.append(f"  curl -s -X {method} {api.url}{path}{data}")
    lines += ["", "Ctrl-C stops the server and everything it started."]
    return "\n".join(lines)


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived: leave serve_forever (or the stack's start) the way Ctrl-C does."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _port_free(host: str, port: int) -> str | None:
    """None if (host, port) can be bound now, else the reason."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    template_path: Path | None = None,
    database_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    on_ready: Callable[[LocalApi], None] | None = None,
) -> int:
    """`auth-migrate local api`: start (or attach to) the local stack, serve until Ctrl-C / SIGTERM.

    Returns the exit code: 0 after a clean stop, 1 when the stack or the server cannot start, 2 for a
    template or configuration problem.
    """
    from auth_migration_ops.local.stack import DEFAULT_DATABASE_URL, LocalStack, LocalStackError

    out = out or sys.stdout

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        routes = routes_from_template(load_template(template_path))
    except (OSError, ValueError, KeyError) as exc:
        say(f"auth-migrate: error: cannot read the template's API routes: {exc}")
        return 2
    if not routes:
        say(f"auth-migrate: error: {template_path or 'template.yaml'} has no function with an `Api` event")
        return 2
    taken = _port_free(host, port)
    if taken is not None:
        say(f"auth-migrate: error: cannot listen on {host}:{port}: {taken}")
        return 1

    stack = LocalStack(template_path, environ=environ, database_url=database_url or DEFAULT_DATABASE_URL, log=say)
    api: LocalApi | None = None
    with _sigterm_raises():
        try:
            try:
                stack.start()
                api = LocalApi(
                    template_path,
                    host=host,
                    port=port,
                    env_overrides=stack.env_overrides,
                    resource_values=stack.resource_values,
                ).bind()
            except LocalStackError as exc:
                say(f"auth-migrate: error: {exc}")
                return 2
            except Exception as exc:  # the stack's parts fail in many ways; one line, no traceback
                reason = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
                say(f"auth-migrate: error: the local API could not start: {reason}")
                return 1
            print(banner(api, stack.services), file=out, flush=True)
            if on_ready is not None:
                on_ready(api)
            api.serve_forever()
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM as _Terminated
            say("auth-migrate local api: stopping")
        finally:
            if api is not None:
                api.stop()
            stack.stop()
    return 0
