"""The Signup, Login and Reconcile functions as template.yaml defines them, invoked in-process with the
sample events in events/, against the real Better-Auth server, the GoTrue stand-in, and moto (SSM flags,
the Reconcile queue)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from auth_migration_ops.local.aws import LocalAws, QueuePair, put_parameters
from auth_migration_ops.local.invoke import invoke_function, load_event
from auth_migration_ops.standins.better_auth import free_port
from tests.integration.plugins.dual_write import DualWriteStack

EVENTS = Path(__file__).resolve().parents[2] / "events"


class Functions:
    """Invokes the template's functions with one stack's environment (one warm container each)."""

    def __init__(self, stack: DualWriteStack, aws: LocalAws, queue: QueuePair, prefix: str) -> None:
        self.stack, self.aws, self.queue, self.prefix = stack, aws, queue, prefix

    def env(self, *, supabase_down: bool = False) -> dict[str, str]:
        url = self.stack.database_url
        return {
            **self.aws.env(),
            "PARAMETER_PREFIX": self.prefix,
            "SUPABASE_URL": f"http://127.0.0.1:{free_port()}" if supabase_down else self.stack.gotrue.url,
            "SUPABASE_SERVICE_KEY": self.stack.gotrue.service_key,
            "SUPABASE_JWT_SECRET": self.stack.gotrue.jwt_secret,
            "BETTER_AUTH_URL": self.stack.better_auth_server.base_url,
            "BETTER_AUTH_SECRET": self.stack.better_auth_server.effective_secret,
            "NEW_DATABASE_URL": url,
            "OLD_DATABASE_URL": url,
            "BETTER_AUTH_DATABASE_URL": url,
            "RECONCILE_QUEUE_URL": self.queue.url,
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }

    def flags(self, **values: str) -> None:
        put_parameters(self.aws.client("ssm"), self.prefix, values)

    def invoke(self, name: str, event: dict[str, Any], *, supabase_down: bool = False) -> Any:
        # A distinct resource value per environment keeps one warm container per configuration.
        tag = f"{self.queue.url}#{'down' if supabase_down else 'up'}"
        return invoke_function(
            name,
            event,
            env_overrides=self.env(supabase_down=supabase_down),
            resource_values={"ReconcileQueue": tag},
        )


@pytest.fixture
def functions(dual_write_stack: DualWriteStack, local_aws: LocalAws, sqs_queue: Callable[..., QueuePair]) -> Functions:
    prefix = f"/auth-migration-test-{uuid.uuid4().hex[:8]}/"
    fns = Functions(dual_write_stack, local_aws, sqs_queue(), prefix)
    fns.flags(MIGRATION_MODE="dual_write", USE_BETTER_AUTH="false", MIGRATION_FALLBACK_TIMEOUT="2000")
    return fns


def _body(reply: dict[str, Any]) -> dict[str, Any]:
    body = json.loads(reply["body"])
    assert isinstance(body, dict)
    return body


def test_sample_events_give_their_documented_answers(functions: Functions) -> None:
    signed_up = functions.invoke("Signup", load_event(EVENTS / "signup" / "signup.json"))
    assert signed_up["statusCode"] == 200, signed_up
    body = _body(signed_up)
    assert body["system"] == "supabase"
    assert body["user"]["email"] == "new.user@example.com"
    assert body["session"]["access_token"]
    assert functions.stack.holders("new.user@example.com") == (body["user"]["id"], body["user"]["id"])
    assert functions.invoke("Signup", load_event(EVENTS / "signup" / "signup_minimal.json"))["statusCode"] == 200

    expected = {
        ("signup", "signup_weak_password"): 400,
        ("signup", "signup_extra_field"): 400,
        ("signup", "signup_malformed_json"): 400,
        ("login", "login"): 200,
        ("login", "login_wrong_password"): 401,
        ("login", "login_unknown_user"): 401,
        ("login", "login_bad_email"): 400,
        ("login", "login_form_encoded"): 415,
    }
    replies = {}
    for (folder, case), status in expected.items():
        reply = functions.invoke(folder.capitalize(), load_event(EVENTS / folder / f"{case}.json"))
        assert reply["statusCode"] == status, (case, reply)
        replies[case] = reply
    # An unknown user and a wrong password are indistinguishable.
    assert replies["login_wrong_password"]["body"] == replies["login_unknown_user"]["body"]
    assert _body(replies["login"])["user"]["id"] == body["user"]["id"]
    events = functions.stack.query("SELECT operation, success, error_kind FROM auth_events ORDER BY id")
    assert events[:2] == [("signup", True, None), ("signup", True, None)]
    assert ("login", False, "invalid_credentials") in events


def test_the_session_exchange_function_turns_a_login_into_a_better_auth_session(functions: Functions) -> None:
    refused = functions.invoke(
        "SessionExchange", load_event(EVENTS / "session_exchange" / "exchange_invalid_token.json")
    )
    assert (refused["statusCode"], _body(refused)["error"]) == (401, "invalid_token")

    functions.flags(MIGRATION_MODE="supabase_only")  # a Supabase user bulk has not reached: the exchange migrates
    assert functions.invoke("Signup", load_event(EVENTS / "signup" / "signup.json"))["statusCode"] == 200
    signed_in = _body(functions.invoke("Login", load_event(EVENTS / "login" / "login.json")))
    assert signed_in["system"] == "supabase"
    event = load_event(EVENTS / "session_exchange" / "exchange_invalid_token.json")
    event["body"] = json.dumps({"access_token": signed_in["session"]["access_token"]})

    reply = functions.invoke("SessionExchange", event)

    assert reply["statusCode"] == 200, reply
    assert _body(reply)["user"]["id"] == signed_in["user"]["id"]
    (cookie,) = reply["multiValueHeaders"]["Set-Cookie"]
    assert cookie.startswith("better-auth.session_token=")


def test_flags_come_from_ssm_per_request(functions: Functions) -> None:
    functions.flags(MIGRATION_MODE="supabase_only")
    event = load_event(EVENTS / "signup" / "signup.json")
    assert _body(functions.invoke("Signup", event))["system"] == "supabase"
    assert functions.stack.holders("new.user@example.com")[1] is None  # supabase_only: no Better-Auth write


def test_a_gap_travels_through_the_reconcile_queue_and_function(functions: Functions) -> None:
    functions.flags(MIGRATION_MODE="dual_write", USE_BETTER_AUTH="true")
    reply = functions.invoke("Signup", load_event(EVENTS / "signup" / "signup.json"), supabase_down=True)
    assert reply["statusCode"] == 200
    user_id = _body(reply)["user"]["id"]
    assert functions.stack.holders("new.user@example.com") == (None, user_id)

    sqs = functions.aws.client("sqs")
    received = sqs.receive_message(QueueUrl=functions.queue.url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    messages = received.get("Messages", [])
    assert len(messages) == 1
    assert "password" not in messages[0]["Body"]
    event = load_event(EVENTS / "reconcile" / "gap.json")
    event["Records"][0]["body"] = messages[0]["Body"]
    result = functions.invoke("Reconcile", event)
    assert result == {"batchItemFailures": []}
    assert functions.stack.holders("new.user@example.com") == (user_id, user_id)
    assert functions.stack.query("SELECT status, outcome FROM dual_write_gaps") == [("repaired", "created_supabase")]
    # The sweep finds nothing left open.
    assert functions.invoke("Reconcile", load_event(EVENTS / "reconcile" / "sweep.json")) == {
        "requeued": 0,
        "repaired": 0,
    }
