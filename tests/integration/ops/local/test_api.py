"""`auth-migrate local api` over real HTTP: the tiny fixture template's echo function reports the event it
got; unknown routes, failing handlers and oversized bodies get API Gateway's answers; the local stack
starts (Postgres, Better-Auth, GoTrue stand-in, moto) and stops on its own."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_migration_ops.local.api import API_BODY_LIMIT, LocalApi, banner
from auth_migration_ops.local.stack import LocalStack, LocalStackError
from auth_migration_ops.standins.better_auth import free_port

REPO = Path(__file__).resolve().parents[4]
FIXTURE_TEMPLATE = REPO / "tests" / "fixtures" / "local_api" / "template.yaml"
QUEUE_URL = "http://sqs.local/123456789012/local-api-echo-test"


@pytest.fixture
def errors() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def api(errors: io.StringIO) -> Iterator[LocalApi]:
    server = LocalApi(
        FIXTURE_TEMPLATE,
        port=0,
        env_overrides={"ECHO_MARK": "from-overrides"},
        resource_values={"EchoQueue": QUEUE_URL},
        quiet=True,
        errors=errors,
    )
    with server:
        yield server


@pytest.fixture
def client(api: LocalApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as http:
        yield http


def echoed(response: httpx.Response) -> dict[str, Any]:
    reply: dict[str, Any] = response.json()
    return reply


def test_post_reaches_the_function_as_api_gateways_event(client: httpx.Client) -> None:
    body = {"email": "ada@example.com", "password": "pässword"}
    response = client.post(
        "/echo?source=test&tag=a&tag=b",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Custom": "one", "User-Agent": "local-api-test"},
    )
    assert response.status_code == 201, response.text
    reply = echoed(response)
    event = reply["event"]
    assert event["resource"] == "/echo"
    assert event["path"] == "/echo"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None
    assert event["queryStringParameters"] == {"source": "test", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"source": ["test"], "tag": ["a", "b"]}
    headers = {k.lower(): v for k, v in event["headers"].items()}
    assert headers["x-custom"] == "one"
    assert headers["content-type"] == "application/json"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert json.loads(event["body"]) == body
    assert event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert ctx["identity"]["userAgent"] == "local-api-test"
    assert ctx["stage"] == "test"
    assert ctx["path"] == "/test/echo"
    assert ctx["resourcePath"] == "/echo"
    assert ctx["requestId"] == response.headers["x-amzn-RequestId"]
    # The function ran with the template's environment, the overrides and the local resource values.
    assert reply["function"] == "EchoFunction"
    assert reply["env"] == {"STAGE": "test", "ECHO_MARK": "from-overrides", "ECHO_QUEUE_URL": QUEUE_URL}
    # The proxy reply's headers, single and multi-valued, reach the client.
    assert response.headers["X-Echo"] == "yes"
    assert response.headers.get_list("Set-Cookie") == ["a=1", "b=2"]


def test_path_parameters_and_query_of_a_get(client: httpx.Client) -> None:
    response = client.get("/items/item%2042?x=1&x=2&empty=")
    assert response.status_code == 200, response.text
    event = echoed(response)["event"]
    assert event["resource"] == "/items/{id}"
    assert event["path"] == "/items/item%2042"
    assert event["pathParameters"] == {"id": "item%2042"}
    assert event["queryStringParameters"] == {"x": "2", "empty": ""}
    assert event["multiValueQueryStringParameters"]["x"] == ["1", "2"]
    assert event["body"] is None
    assert event["requestContext"]["path"] == "/test/items/item%2042"


def test_unknown_route_and_unserved_method_are_403_missing_authentication_token(client: httpx.Client) -> None:
    for response in (client.get("/nowhere"), client.get("/echo"), client.delete("/items/1"), client.get("/items")):
        assert response.status_code == 403
        assert response.json() == {"message": "Missing Authentication Token"}
        assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_handler_exception_is_502_and_the_error_goes_to_stderr(client: httpx.Client, errors: io.StringIO) -> None:
    response = client.post("/echo", content=b"{}", headers={"X-Echo-Mode": "raise"})
    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}
    log = errors.getvalue()
    assert "EchoFunction" in log
    assert "RuntimeError: echo was asked to fail" in log
    assert "Traceback" in log
    # The server keeps serving after a failed invocation.
    assert client.post("/echo", content=b"{}").status_code == 201


def test_malformed_reply_is_502(client: httpx.Client, errors: io.StringIO) -> None:
    response = client.post("/echo", content=b"{}", headers={"X-Echo-Mode": "malformed"})
    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}
    assert "invalid Lambda proxy response" in errors.getvalue()


def test_binary_bodies_both_ways(client: httpx.Client) -> None:
    raw = b"\x89PNG\x00\xff\xfe"
    response = client.post("/echo", content=raw, headers={"Content-Type": "application/x-echo-binary"})
    event = echoed(response)["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw
    binary = client.post("/echo", content=b"{}", headers={"X-Echo-Mode": "binary"})
    assert binary.status_code == 200
    assert binary.headers["Content-Type"] == "application/octet-stream"
    assert binary.content == b"\x00\xffecho"


def test_chunked_request_body(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"email": '
        yield b'"chunked@example.com"}'

    response = client.post("/echo", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    assert json.loads(echoed(response)["event"]["body"]) == {"email": "chunked@example.com"}


def test_body_over_10_mb_is_413(client: httpx.Client) -> None:
    at_limit = client.post("/echo", content=b"a" * API_BODY_LIMIT, headers={"Content-Type": "text/plain"})
    assert at_limit.status_code == 201
    over = client.post("/echo", content=b"a" * (API_BODY_LIMIT + 1), headers={"Content-Type": "text/plain"})
    assert over.status_code == 413
    assert over.json() == {"message": "Request Too Long"}


def test_expect_continue_over_the_limit_is_refused_before_the_body(api: LocalApi) -> None:
    host, port = api.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            + f"Content-Length: {API_BODY_LIMIT + 1}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        head = sock.recv(65536).decode("latin-1")
    assert head.startswith("HTTP/1.1 413"), head


def test_concurrent_requests_are_all_answered(client: httpx.Client, api: LocalApi) -> None:
    results: list[int] = []

    def call(n: int) -> None:
        with httpx.Client(base_url=api.url, timeout=30) as http:
            results.append(http.get(f"/items/{n}").status_code)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 8


def test_a_function_serves_one_request_at_a_time(api: LocalApi, monkeypatch: pytest.MonkeyPatch) -> None:
    function = api.function("EchoFunction")
    original = function.invoke
    state = {"running": 0, "most": 0}
    guard = threading.Lock()

    def slow_invoke(event: Any, **kwargs: Any) -> Any:
        with guard:
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])
        try:
            time.sleep(0.05)
            return original(event, **kwargs)
        finally:
            with guard:
                state["running"] -= 1

    monkeypatch.setattr(function, "invoke", slow_invoke)

    def call(n: int) -> None:
        with httpx.Client(base_url=api.url, timeout=30) as http:
            assert http.get(f"/items/{n}").status_code == 200

    threads = [threading.Thread(target=call, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state["most"] == 1


def test_banner_names_the_url_routes_and_an_example(api: LocalApi) -> None:
    text = banner(api, [("Postgres", "postgresql://x")])
    assert api.url in text
    assert "POST" in text
    assert "/items/{id}" in text
    assert "-> EchoFunction" in text
    assert "curl" in text
    assert "Postgres: postgresql://x" in text


# --- the CLI ------------------------------------------------------------------------------------------------------


def _command(port: int) -> list[str]:
    cli = [sys.executable, "-m", "auth_migration_ops.cli", "local", "api"]
    return [*cli, "--port", str(port), "--template", str(FIXTURE_TEMPLATE)]


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SUPABASE_URL", "BETTER_AUTH_URL")}
    env.update(extra)
    return env


def test_cli_serves_with_external_services_and_stops_on_sigterm() -> None:
    port = free_port()
    env = _cli_env(SUPABASE_URL="http://127.0.0.1:9", BETTER_AUTH_URL="http://127.0.0.1:9")
    process = subprocess.Popen(
        _command(port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        assert any(f"http://127.0.0.1:{port}" in line for line in lines), lines
        response = httpx.get(f"http://127.0.0.1:{port}/items/7", timeout=30)
        assert response.status_code == 200
        assert response.json()["event"]["pathParameters"] == {"id": "7"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    _, stderr = process.communicate()
    assert "Traceback" not in stderr
    assert "stopping" in stderr


def test_cli_refuses_half_configured_services() -> None:
    result = subprocess.run(
        _command(free_port()),
        capture_output=True,
        text=True,
        env=_cli_env(SUPABASE_URL="http://127.0.0.1:9"),
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "BETTER_AUTH_URL is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_refuses_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            _command(port),
            capture_output=True,
            text=True,
            env=_cli_env(),
            cwd=REPO,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


# --- the local stack -------------------------------------------------------------------------------------------


def test_external_services_are_used_as_they_are() -> None:
    environ = {
        "SUPABASE_URL": "https://abc.supabase.co",
        "BETTER_AUTH_URL": "https://auth.example.com",
        "NEW_DATABASE_URL": "postgresql://u:secret@db/x",
        "UNRELATED": "no",
    }
    with LocalStack(environ=environ, log=lambda _text: None) as stack:
        assert stack.external
        assert stack.env_overrides == {k: v for k, v in environ.items() if k != "UNRELATED"}
        assert stack.better_auth is None
        assert stack.gotrue is None
        assert stack.aws is None
        assert "secret" not in repr(stack.services)


def test_half_configured_services_are_refused() -> None:
    with pytest.raises(LocalStackError, match="SUPABASE_URL is not set"):
        LocalStack(environ={"BETTER_AUTH_URL": "http://x"}).start()


@pytest.mark.slow
def test_local_stack_starts_and_stops_everything(make_database: Callable[[], str], better_auth_installed: None) -> None:
    logged: list[str] = []
    stack = LocalStack(environ={}, database_url=make_database(), log=logged.append).start()
    try:
        assert stack.gotrue is not None
        assert stack.better_auth is not None
        assert stack.aws is not None
        env = stack.env_overrides
        assert env["SUPABASE_URL"] == stack.gotrue.url
        assert env["SUPABASE_SERVICE_KEY"] == stack.gotrue.service_key
        assert env["BETTER_AUTH_URL"] == stack.better_auth.base_url
        assert env["NEW_DATABASE_URL"] == env["OLD_DATABASE_URL"] == env["BETTER_AUTH_DATABASE_URL"]
        assert env["PARAMETER_PREFIX"] == "/auth-migration/dev/"
        assert env["AWS_ENDPOINT_URL"] == stack.aws.endpoint_url

        assert httpx.get(f"{stack.gotrue.url}/health", timeout=10).status_code == 200
        assert httpx.get(f"{stack.gotrue.url}/auth/v1/health", timeout=10).status_code == 200
        ok = httpx.get(f"{stack.better_auth.base_url}/api/auth/ok", timeout=10)
        assert ok.status_code == 200
        assert ok.json() == {"ok": True}

        ssm = stack.aws.client("ssm")
        mode = ssm.get_parameter(Name="/auth-migration/dev/MIGRATION_MODE")["Parameter"]["Value"]
        assert mode == "dual_write"
        assert ssm.get_parameter(Name="/auth-migration/dev/USE_BETTER_AUTH")["Parameter"]["Value"] == "false"

        # The template's queues exist under their template names, the DLQ wired by the redrive policy.
        sqs = stack.aws.client("sqs")
        queue_url = stack.resource_values["MigrationBatchQueue"]
        assert queue_url.endswith("/auth-migration-batches-dev")
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        assert attributes["VisibilityTimeout"] == "720"
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == stack.resource_values["MigrationBatchDLQ.Arn"]
        assert int(redrive["maxReceiveCount"]) == 5
        assert any("GoTrue stand-in" in what for what, _ in stack.services)
        assert logged
    finally:
        gotrue_url = stack.gotrue.url if stack.gotrue else ""
        better_auth = stack.better_auth
        stack.stop()
    assert better_auth is not None
    assert not better_auth.running
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{gotrue_url}/health", timeout=1)
        except httpx.TransportError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the GoTrue stand-in still answers after stop()")
    stack.stop()  # idempotent
