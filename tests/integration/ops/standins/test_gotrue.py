"""The GoTrue stand-in keeps GoTrue's contract: endpoints, status codes, error codes, stored rows, faults."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import bcrypt
import httpx
import psycopg
import pytest

from auth_migration_ops.datakit.supabase_data import generate_supabase_users
from auth_migration_ops.standins.gotrue import GoTrueStandIn, decode_jwt, sign_jwt
from tests.reference_time import REFERENCE_TIME

PASSWORD = "correct horse 1"


def _signup(standin: GoTrueStandIn, email: str, password: str = PASSWORD, **extra: Any) -> httpx.Response:
    return httpx.post(f"{standin.url}/signup", json={"email": email, "password": password, **extra}, timeout=10)


def _token(standin: GoTrueStandIn, email: str, password: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{standin.url}/token",
        params={"grant_type": "password"},
        json={"email": email, "password": password},
        headers=headers,
        timeout=10,
    )


def _admin(standin: GoTrueStandIn, key: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key or standin.service_key}"}


def _error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error_code"], body["msg"]


# --- signup ---


def test_health_answers_200(gotrue: GoTrueStandIn) -> None:
    response = httpx.get(f"{gotrue.url}/health")

    assert response.status_code == 200
    assert response.json()["name"] == "GoTrue"


def test_signup_returns_a_session_and_stores_a_gotrue_shaped_row(gotrue: GoTrueStandIn) -> None:
    response = _signup(gotrue, "Ada.Lovelace@Example.com", data={"full_name": "Ada"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"access_token", "token_type", "expires_in", "expires_at", "refresh_token", "user"}
    assert body["token_type"] == "bearer"
    user = body["user"]
    assert user["email"] == "ada.lovelace@example.com"
    assert user["user_metadata"] == {"full_name": "Ada"}
    assert user["identities"][0]["provider"] == "email"
    with psycopg.connect(gotrue.database_url) as conn:
        row = conn.execute(
            "SELECT email, encrypted_password, confirmation_token, recovery_token, email_change_token_new,"
            " email_confirmed_at IS NOT NULL, aud, role FROM auth.users WHERE id = %s",
            (user["id"],),
        ).fetchone()
        identity = conn.execute(
            "SELECT provider, provider_id, email FROM auth.identities WHERE user_id = %s", (user["id"],)
        ).fetchone()
    assert row is not None
    email, hashed, *tokens, confirmed, aud, role = row
    assert email == "ada.lovelace@example.com"
    assert hashed.startswith("$2a$10$")
    assert bcrypt.checkpw(PASSWORD.encode(), hashed.encode())
    assert tokens == ["", "", ""]
    assert confirmed
    assert (aud, role) == ("authenticated", "authenticated")
    assert identity == ("email", user["id"], "ada.lovelace@example.com")


def test_access_token_is_an_hs256_jwt_with_gotrue_claims(gotrue: GoTrueStandIn) -> None:
    body = _signup(gotrue, "claims@example.com").json()

    claims = decode_jwt(body["access_token"], gotrue.jwt_secret)

    assert claims is not None
    assert claims["sub"] == body["user"]["id"]
    assert claims["email"] == "claims@example.com"
    assert claims["role"] == "authenticated"
    assert claims["aud"] == "authenticated"
    assert claims["exp"] == body["expires_at"]
    assert decode_jwt(body["access_token"], "another secret of at least thirty-two chars") is None


def test_duplicate_signup_ignoring_case_is_422_user_already_exists(gotrue: GoTrueStandIn) -> None:
    assert _signup(gotrue, "twice@example.com").status_code == 200

    response = _signup(gotrue, "TWICE@example.com")

    assert _error(response) == (422, "user_already_exists", "User already registered")


def test_short_password_is_422_weak_password_with_reasons(gotrue: GoTrueStandIn) -> None:
    response = _signup(gotrue, "weak@example.com", password="12345")

    assert _error(response) == (422, "weak_password", "Password should be at least 6 characters.")
    assert response.json()["weak_password"] == {"reasons": ["length"]}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, (400, "validation_failed")),
        ({"password": PASSWORD}, (400, "validation_failed")),
        ({"email": "nopass@example.com"}, (422, "validation_failed")),
    ],
)
def test_invalid_signup_bodies_get_gotrue_validation_errors(
    gotrue: GoTrueStandIn, body: dict[str, str], expected: tuple[int, str]
) -> None:
    response = httpx.post(f"{gotrue.url}/signup", json=body)

    assert _error(response)[:2] == expected


def test_malformed_json_is_400_bad_json(gotrue: GoTrueStandIn) -> None:
    response = httpx.post(f"{gotrue.url}/signup", content=b"{nope", headers={"Content-Type": "application/json"})

    assert _error(response)[:2] == (400, "bad_json")


def test_signup_without_autoconfirm_returns_the_user_and_sign_in_waits_for_confirmation(
    supabase_db: str, start_gotrue: Callable[..., GoTrueStandIn]
) -> None:
    standin = start_gotrue(supabase_db, autoconfirm=False)

    body = _signup(standin, "later@example.com").json()

    assert "access_token" not in body
    assert body["email"] == "later@example.com"
    assert body["email_confirmed_at"] is None
    assert _error(_token(standin, "later@example.com", PASSWORD)) == (400, "email_not_confirmed", "Email not confirmed")


# --- password grant ---


def test_password_grant_returns_a_session(gotrue: GoTrueStandIn) -> None:
    user_id = _signup(gotrue, "grant@example.com").json()["user"]["id"]

    response = _token(gotrue, "Grant@Example.com", PASSWORD)

    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"access_token", "token_type", "expires_in", "expires_at", "refresh_token", "user"}
    assert body["user"]["id"] == user_id
    assert body["user"]["last_sign_in_at"] is not None


def test_wrong_password_and_unknown_user_get_the_identical_reply(gotrue: GoTrueStandIn) -> None:
    _signup(gotrue, "known@example.com")

    wrong = _token(gotrue, "known@example.com", "not the password")
    unknown = _token(gotrue, "nobody@example.com", PASSWORD)

    assert _error(wrong) == (400, "invalid_credentials", "Invalid login credentials")
    assert (wrong.status_code, wrong.content) == (unknown.status_code, unknown.content)


def test_api_version_header_selects_the_2024_error_shape(gotrue: GoTrueStandIn) -> None:
    response = _token(gotrue, "nobody@example.com", PASSWORD, headers={"X-Supabase-Api-Version": "2024-01-01"})

    assert response.status_code == 400
    assert response.json() == {"code": "invalid_credentials", "message": "Invalid login credentials"}
    assert response.headers["X-Supabase-Api-Version"] == "2024-01-01"


def test_unsupported_grant_type_is_an_oauth_error(gotrue: GoTrueStandIn) -> None:
    response = httpx.post(f"{gotrue.url}/token", params={"grant_type": "magic"}, json={})

    assert response.status_code == 400
    assert response.json() == {"error": "unsupported_grant_type", "error_description": ""}


def test_generated_supabase_users_sign_in_through_the_standin(gotrue: GoTrueStandIn) -> None:
    manifest = generate_supabase_users(
        gotrue.database_url, 40, seed=3, edge_cases=False, credentials_sample=3, reference_time=REFERENCE_TIME
    )

    for credential in manifest.credentials:
        response = _token(gotrue, credential.email, credential.password)
        assert response.status_code == 200
        assert response.json()["user"]["id"] == credential.user_id


# --- /user ---


def test_get_user_needs_a_valid_bearer(gotrue: GoTrueStandIn) -> None:
    session = _signup(gotrue, "me@example.com").json()

    ok = httpx.get(f"{gotrue.url}/user", headers={"Authorization": f"Bearer {session['access_token']}"})
    missing = httpx.get(f"{gotrue.url}/user")
    forged = httpx.get(
        f"{gotrue.url}/user",
        headers={"Authorization": "Bearer " + sign_jwt({"sub": session["user"]["id"]}, "x" * 40)},
    )

    assert ok.status_code == 200
    assert ok.json()["id"] == session["user"]["id"]
    assert _error(missing)[:2] == (401, "no_authorization")
    assert _error(forged)[:2] == (403, "bad_jwt")


# --- admin ---


def test_admin_create_needs_the_service_role(gotrue: GoTrueStandIn) -> None:
    body = {"email": "admin-only@example.com", "password": PASSWORD}

    anonymous = httpx.post(f"{gotrue.url}/admin/users", json=body)
    with_anon_key = httpx.post(f"{gotrue.url}/admin/users", json=body, headers=_admin(gotrue, gotrue.anon_key))

    assert _error(anonymous)[:2] == (401, "no_authorization")
    assert _error(with_anon_key) == (403, "not_admin", "User not allowed")


def test_admin_create_keeps_a_chosen_id_and_password_hash(gotrue: GoTrueStandIn) -> None:
    user_id = str(uuid.uuid4())
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()

    response = httpx.post(
        f"{gotrue.url}/admin/users",
        json={
            "id": user_id,
            "email": "Carried@Example.com",
            "password_hash": hashed,
            "email_confirm": True,
            "user_metadata": {"name": "Carried"},
            "app_metadata": {"plan": "pro"},
        },
        headers=_admin(gotrue),
    )

    assert response.status_code == 200
    user = response.json()
    assert (user["id"], user["email"]) == (user_id, "carried@example.com")
    assert user["email_confirmed_at"] is not None
    assert user["user_metadata"] == {"name": "Carried"}
    assert user["app_metadata"]["plan"] == "pro"
    assert _token(gotrue, "carried@example.com", PASSWORD).json()["user"]["id"] == user_id
    fetched = httpx.get(f"{gotrue.url}/admin/users/{user_id}", headers=_admin(gotrue))
    assert fetched.status_code == 200
    assert fetched.json()["id"] == user_id


def test_admin_create_refuses_password_and_hash_together(gotrue: GoTrueStandIn) -> None:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    body = {"email": "both@example.com", "password": PASSWORD, "password_hash": hashed}

    response = httpx.post(f"{gotrue.url}/admin/users", json=body, headers=_admin(gotrue))

    assert _error(response) == (400, "validation_failed", "Only a password or a password hash should be provided")


def test_admin_create_with_a_taken_email_is_422_email_exists(gotrue: GoTrueStandIn) -> None:
    _signup(gotrue, "taken@example.com")

    response = httpx.post(
        f"{gotrue.url}/admin/users", json={"email": "TAKEN@example.com", "password": PASSWORD}, headers=_admin(gotrue)
    )

    assert _error(response)[:2] == (422, "email_exists")


def test_admin_create_with_a_taken_id_is_gotrues_500(gotrue: GoTrueStandIn) -> None:
    user_id = str(uuid.uuid4())
    first = {"id": user_id, "email": "first@example.com", "password": PASSWORD}
    assert httpx.post(f"{gotrue.url}/admin/users", json=first, headers=_admin(gotrue)).status_code == 200

    again = {"id": user_id, "email": "second@example.com", "password": PASSWORD}
    response = httpx.post(f"{gotrue.url}/admin/users", json=again, headers=_admin(gotrue))

    # adminUserCreate: tx.Create fails on the primary key inside its transaction.
    assert _error(response) == (500, "unexpected_failure", "Database error creating new user")


@pytest.mark.parametrize(
    "password_hash",
    ["md5$abc", "$2a$10$short", "$argon2id$v=19$garbage", "$fbscrypt$v=1,n=14$x"],
)
def test_admin_create_with_a_hash_gotrue_cannot_parse_is_500(gotrue: GoTrueStandIn, password_hash: str) -> None:
    body = {"email": "oddhash@example.com", "password_hash": password_hash}

    response = httpx.post(f"{gotrue.url}/admin/users", json=body, headers=_admin(gotrue))

    # models.NewUserWithPasswordHash fails: a plain 500, and nothing is stored.
    assert _error(response) == (500, "unexpected_failure", "Error creating user")
    listed = httpx.get(f"{gotrue.url}/admin/users", params={"filter": "oddhash"}, headers=_admin(gotrue))
    assert listed.json()["users"] == []


@pytest.mark.parametrize(
    "password_hash",
    [
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        "$fbscrypt$v=1,n=14,r=8,p=1,ss=Bw==,sk=a2V5$c2FsdA==$aGFzaA==",
    ],
)
def test_admin_create_stores_argon2_and_firebase_scrypt_hashes(gotrue: GoTrueStandIn, password_hash: str) -> None:
    body = {"email": "otherhash@example.com", "password_hash": password_hash}

    response = httpx.post(f"{gotrue.url}/admin/users", json=body, headers=_admin(gotrue))

    assert response.status_code == 200


def test_admin_create_with_ban_duration_bans_until_now_plus_it(gotrue: GoTrueStandIn) -> None:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    body = {"email": "banned@example.com", "password_hash": hashed, "email_confirm": True, "ban_duration": "1h30m"}

    created = httpx.post(f"{gotrue.url}/admin/users", json=body, headers=_admin(gotrue))

    assert created.status_code == 200
    banned_until = datetime.fromisoformat(created.json()["banned_until"])
    assert banned_until - gotrue.clock() == pytest.approx(timedelta(minutes=90), abs=timedelta(seconds=5))
    assert _error(_token(gotrue, "banned@example.com", PASSWORD))[:2] == (400, "user_banned")
    bad = {"email": "badban@example.com", "password": PASSWORD, "ban_duration": "ten days"}
    assert _error(httpx.post(f"{gotrue.url}/admin/users", json=bad, headers=_admin(gotrue)))[:2] == (
        400,
        "validation_failed",
    )


def test_admin_get_unknown_user_is_404_user_not_found(gotrue: GoTrueStandIn) -> None:
    response = httpx.get(f"{gotrue.url}/admin/users/{uuid.uuid4()}", headers=_admin(gotrue))

    assert _error(response) == (404, "user_not_found", "User not found")


def test_admin_list_filters_by_email_substring(gotrue: GoTrueStandIn) -> None:
    for email in ("a_b@example.com", "axb@example.com", "other@example.com"):
        _signup(gotrue, email)

    response = httpx.get(f"{gotrue.url}/admin/users", params={"filter": "a_b@"}, headers=_admin(gotrue))

    # '_' is a LIKE wildcard in GoTrue's filter too: exact matching is the client's job.
    assert sorted(u["email"] for u in response.json()["users"]) == ["a_b@example.com", "axb@example.com"]


def test_kong_prefix_reaches_the_same_endpoints(gotrue: GoTrueStandIn) -> None:
    assert httpx.get(f"{gotrue.url}/auth/v1/health").status_code == 200


# --- faults ---


def test_rate_limited_fault_answers_429_over_request_rate_limit(gotrue: GoTrueStandIn) -> None:
    gotrue.faults.rate_limited = True

    response = _token(gotrue, "any@example.com", PASSWORD)

    assert _error(response)[:2] == (429, "over_request_rate_limit")
    assert response.headers["Retry-After"] == "1"


@pytest.mark.parametrize("status", [500, 503])
def test_fail_rate_one_answers_the_chosen_5xx(gotrue: GoTrueStandIn, status: int) -> None:
    gotrue.faults.fail_rate, gotrue.faults.fail_status = 1.0, status

    assert httpx.get(f"{gotrue.url}/health").status_code == status


def test_fail_rate_fails_about_that_share_of_requests(gotrue: GoTrueStandIn) -> None:
    gotrue.faults.fail_rate = 0.3

    with httpx.Client() as client:
        statuses = [client.get(f"{gotrue.url}/health").status_code for _ in range(400)]

    assert set(statuses) == {200, 500}
    assert 0.22 < statuses.count(500) / len(statuses) < 0.38


def test_delay_holds_the_reply(gotrue: GoTrueStandIn) -> None:
    gotrue.faults.delay_s = 0.4

    started = time.monotonic()
    response = httpx.get(f"{gotrue.url}/health", timeout=5)

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.4


def test_down_drops_the_connection_without_a_reply(gotrue: GoTrueStandIn) -> None:
    gotrue.faults.down = True

    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{gotrue.url}/health")
    assert gotrue.calls[-1] == ("GET", "/health", 0)


def test_faults_can_target_one_path_and_be_reset(gotrue: GoTrueStandIn) -> None:
    gotrue.faults.rate_limited = True
    gotrue.faults.paths = frozenset({"/token"})

    assert httpx.get(f"{gotrue.url}/health").status_code == 200
    assert _token(gotrue, "any@example.com", PASSWORD).status_code == 429
    gotrue.faults.reset()
    assert _token(gotrue, "any@example.com", PASSWORD).status_code == 400


def test_stop_returns_promptly_while_a_request_sleeps_in_a_delay(
    supabase_db: str, start_gotrue: Callable[..., GoTrueStandIn]
) -> None:
    standin = start_gotrue(supabase_db)
    standin.faults.delay_s = 30
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{standin.url}/health", timeout=0.2)

    started = time.monotonic()
    standin.stop()

    assert time.monotonic() - started < 2


# --- what the supabase migration target needs ---


def test_admin_create_merges_the_callers_app_metadata_over_gotrues_provider(gotrue: GoTrueStandIn) -> None:
    user_id = str(uuid.uuid4())
    response = httpx.post(
        f"{gotrue.url}/admin/users",
        json={"id": user_id, "email": "merge@example.org", "app_metadata": {"provider": "migration", "x": 1}},
        headers=_admin(gotrue),
    )

    assert response.status_code == 200
    # adminUserCreate sets provider/providers, then user.UpdateAppMetaData(params.AppMetaData) over them.
    assert response.json()["app_metadata"] == {"provider": "migration", "providers": ["email"], "x": 1}


def test_admin_delete_then_get_and_delete_again_are_404_user_not_found(gotrue: GoTrueStandIn) -> None:
    user_id = str(uuid.uuid4())
    httpx.post(f"{gotrue.url}/admin/users", json={"id": user_id, "email": "gone@example.org"}, headers=_admin(gotrue))

    assert httpx.delete(f"{gotrue.url}/admin/users/{user_id}", headers=_admin(gotrue)).status_code == 200
    assert _error(httpx.get(f"{gotrue.url}/admin/users/{user_id}", headers=_admin(gotrue)))[:2] == (
        404,
        "user_not_found",
    )
    assert _error(httpx.delete(f"{gotrue.url}/admin/users/{user_id}", headers=_admin(gotrue)))[:2] == (
        404,
        "user_not_found",
    )


def test_rate_limit_share_answers_about_that_share_429_with_the_chosen_retry_after(gotrue: GoTrueStandIn) -> None:
    gotrue.faults.rate_limit_share = 0.3
    gotrue.faults.retry_after = "2"
    with httpx.Client() as client:
        replies = [client.get(f"{gotrue.url}/health") for _ in range(200)]

    limited = [r for r in replies if r.status_code == 429]
    assert 30 <= len(limited) <= 90
    assert {r.headers["Retry-After"] for r in limited} == {"2"}
    assert {r.json()["error_code"] for r in limited} == {"over_request_rate_limit"}


def test_request_log_records_time_method_path_status_and_created_id(gotrue: GoTrueStandIn) -> None:
    user_id = str(uuid.uuid4())
    before = time.monotonic()
    httpx.post(f"{gotrue.url}/admin/users", json={"id": user_id, "email": "log@example.org"}, headers=_admin(gotrue))
    httpx.get(f"{gotrue.url}/auth/v1/admin/users/{user_id}", headers=_admin(gotrue))

    first, second = gotrue.request_log[-2:]
    assert (first.method, first.path, first.status, first.user_id) == ("POST", "/admin/users", 200, user_id)
    assert (second.method, second.path, second.status, second.user_id) == ("GET", f"/admin/users/{user_id}", 200, None)
    assert before <= first.at <= second.at <= time.monotonic()
