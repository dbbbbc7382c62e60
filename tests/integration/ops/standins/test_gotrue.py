"""The GoTrue stand-in keeps GoTrue's contract: endpoints, status codes, error codes, stored rows, faults."""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from psycopg.rows import dict_row

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


# --- sessions and refresh tokens (pinned clock) ---

_SIGNED_IN_AT = REFERENCE_TIME
_UA = "pytest-agent/1.0"


class _Clock:
    """A pinned clock the test moves by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> _Clock:
    return _Clock(_SIGNED_IN_AT)


@pytest.fixture
def pinned(supabase_db: str, start_gotrue: Callable[..., GoTrueStandIn], clock: _Clock) -> GoTrueStandIn:
    return start_gotrue(supabase_db, clock=clock)


@pytest.fixture
def es256_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def es256(
    supabase_db: str, start_gotrue: Callable[..., GoTrueStandIn], clock: _Clock, es256_key: ec.EllipticCurvePrivateKey
) -> GoTrueStandIn:
    return start_gotrue(supabase_db, clock=clock, signing_key=es256_key, signing_kid="key-2026")


def _refresh(standin: GoTrueStandIn, refresh_token: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{standin.url}/token",
        params={"grant_type": "refresh_token"},
        json={"refresh_token": refresh_token},
        headers=headers,
        timeout=10,
    )


def _bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def _logout(standin: GoTrueStandIn, access_token: str, scope: str | None = None) -> httpx.Response:
    params = {"scope": scope} if scope is not None else None
    return httpx.post(f"{standin.url}/logout", params=params, headers=_bearer(access_token), timeout=10)


def _fetch(standin: GoTrueStandIn, query: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(standin.database_url, row_factory=dict_row) as conn:
        return conn.execute(query, params).fetchall()


def _session_ids(standin: GoTrueStandIn, user_id: str) -> set[str]:
    return {str(r["id"]) for r in _fetch(standin, "SELECT id FROM auth.sessions WHERE user_id = %s", user_id)}


def _claims_of(standin: GoTrueStandIn, access_token: str) -> dict[str, Any]:
    claims = decode_jwt(access_token, standin.jwt_secret, now=standin.clock().timestamp())
    assert claims is not None
    return claims


def _signed_in(standin: GoTrueStandIn, email: str) -> dict[str, Any]:
    """A new user's session: what signup with autoconfirm hands out (one sessions row, one refresh token)."""
    response = _signup(standin, email)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("grant", ["signup", "password"])
def test_every_session_handed_out_is_a_sessions_row_with_its_refresh_token(pinned: GoTrueStandIn, grant: str) -> None:
    headers = {"User-Agent": _UA, "X-Forwarded-For": "not-an-ip, 203.0.113.7, 10.0.0.1"}
    if grant == "signup":
        response = httpx.post(
            f"{pinned.url}/signup", json={"email": "rows@example.com", "password": PASSWORD}, headers=headers
        )
        body = response.json()
    else:
        _signup(pinned, "rows@example.com")
        _fetch_exec(pinned, "DELETE FROM auth.sessions")  # only the password grant's session is left
        body = _token(pinned, "rows@example.com", PASSWORD, headers=headers).json()

    (session,) = _fetch(pinned, "SELECT * FROM auth.sessions")
    (token,) = _fetch(pinned, "SELECT * FROM auth.refresh_tokens")
    assert _claims_of(pinned, body["access_token"])["session_id"] == str(session["id"])
    assert body["refresh_token"] == token["token"]
    assert re.fullmatch(r"[a-z2-7]{12}", token["token"])  # crypto.SecureAlphanumeric(12)
    assert (str(session["user_id"]), session["aal"], session["factor_id"]) == (body["user"]["id"], "aal1", None)
    assert (session["user_agent"], str(session["ip"])) == (_UA, "203.0.113.7")
    assert (session["created_at"], session["updated_at"]) == (_SIGNED_IN_AT, _SIGNED_IN_AT)
    assert (session["not_after"], session["refreshed_at"], session["tag"]) == (None, None, None)
    assert (token["user_id"], token["session_id"], token["revoked"], token["parent"]) == (
        body["user"]["id"],
        session["id"],
        False,
        None,
    )
    assert str(token["instance_id"]) == "00000000-0000-0000-0000-000000000000"
    assert token["created_at"] == token["updated_at"] == _SIGNED_IN_AT


def test_a_session_records_the_peer_address_without_x_forwarded_for(pinned: GoTrueStandIn) -> None:
    _signup(pinned, "peer@example.com")

    (session,) = _fetch(pinned, "SELECT user_agent, ip FROM auth.sessions")

    assert str(session["ip"]) == "127.0.0.1"
    assert session["user_agent"].startswith("python-httpx/")


def test_signup_without_autoconfirm_hands_out_no_session(
    supabase_db: str, start_gotrue: Callable[..., GoTrueStandIn], clock: _Clock
) -> None:
    standin = start_gotrue(supabase_db, autoconfirm=False, clock=clock)

    _signup(standin, "unconfirmed@example.com")

    assert _fetch(standin, "SELECT id FROM auth.sessions") == []
    assert _fetch(standin, "SELECT id FROM auth.refresh_tokens") == []


def test_refresh_rotates_the_token_within_the_same_session(pinned: GoTrueStandIn, clock: _Clock) -> None:
    first = _signed_in(pinned, "rotate@example.com")
    session_id = _claims_of(pinned, first["access_token"])["session_id"]
    clock.advance(600)

    response = _refresh(pinned, first["refresh_token"], headers={"User-Agent": "another-agent/2"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == set(first)
    assert body["refresh_token"] != first["refresh_token"]
    assert re.fullmatch(r"[a-z2-7]{12}", body["refresh_token"])
    claims = _claims_of(pinned, body["access_token"])
    assert claims["session_id"] == session_id
    assert claims["sub"] == first["user"]["id"]
    assert claims["iat"] == int(clock().timestamp())
    assert body["expires_at"] == int(clock().timestamp()) + pinned.jwt_exp == claims["exp"]
    assert body["expires_in"] == pinned.jwt_exp
    # The amr entry is the session's password sign-in, not the refresh.
    assert claims["amr"] == [{"method": "password", "timestamp": int(_SIGNED_IN_AT.timestamp())}]
    tokens = _fetch(
        pinned, "SELECT token, parent, revoked, session_id, updated_at FROM auth.refresh_tokens ORDER BY id"
    )
    assert [(t["token"], t["parent"], t["revoked"]) for t in tokens] == [
        (first["refresh_token"], None, True),
        (body["refresh_token"], first["refresh_token"], False),
    ]
    assert {str(t["session_id"]) for t in tokens} == {session_id}
    assert tokens[0]["updated_at"] == clock()
    (session,) = _fetch(pinned, "SELECT refreshed_at, updated_at, created_at, user_agent FROM auth.sessions")
    # refreshed_at is a timestamp without time zone, in UTC.
    assert session["refreshed_at"] == clock().astimezone(UTC).replace(tzinfo=None)
    assert (session["updated_at"], session["created_at"]) == (clock(), _SIGNED_IN_AT)
    assert session["user_agent"] == "another-agent/2"
    assert body["user"]["last_sign_in_at"] == clock().isoformat().replace("+00:00", "Z")


def test_refreshing_again_with_the_parent_of_the_active_token_returns_the_active_token(
    pinned: GoTrueStandIn, clock: _Clock
) -> None:
    first = _signed_in(pinned, "lost-reply@example.com")
    clock.advance(60)
    second = _refresh(pinned, first["refresh_token"]).json()
    clock.advance(60)

    again = _refresh(pinned, first["refresh_token"])

    assert again.status_code == 200
    assert again.json()["refresh_token"] == second["refresh_token"]
    assert len(_fetch(pinned, "SELECT id FROM auth.refresh_tokens")) == 2


def test_reusing_an_older_revoked_token_revokes_every_token_of_the_session(
    pinned: GoTrueStandIn, clock: _Clock
) -> None:
    first = _signed_in(pinned, "reuse@example.com")
    clock.advance(60)
    second = _refresh(pinned, first["refresh_token"]).json()
    clock.advance(60)
    third = _refresh(pinned, second["refresh_token"]).json()
    clock.advance(1)

    reused = _refresh(pinned, first["refresh_token"])

    assert _error(reused) == (400, "refresh_token_already_used", "Invalid Refresh Token: Already Used")
    assert {t["revoked"] for t in _fetch(pinned, "SELECT revoked FROM auth.refresh_tokens")} == {True}
    # Legacy tokens: the session row (and so its access tokens) stays; only its refresh tokens are dead.
    assert _session_ids(pinned, first["user"]["id"]) == {_claims_of(pinned, first["access_token"])["session_id"]}
    clock.advance(1)  # the revocation was stamped now: GoTrue's reuse check is strictly after it
    assert _error(_refresh(pinned, third["refresh_token"]))[:2] == (400, "refresh_token_already_used")


def test_a_revoked_token_refreshes_within_the_reuse_interval(
    supabase_db: str, start_gotrue: Callable[..., GoTrueStandIn], clock: _Clock
) -> None:
    standin = start_gotrue(supabase_db, clock=clock, refresh_token_reuse_interval=10)
    first = _signed_in(standin, "interval@example.com")
    second = _refresh(standin, first["refresh_token"]).json()
    _refresh(standin, second["refresh_token"])
    clock.advance(10)

    within = _refresh(standin, first["refresh_token"])
    clock.advance(0.001)
    past = _refresh(standin, second["refresh_token"])

    assert within.status_code == 200
    (child,) = _fetch(
        standin, "SELECT parent FROM auth.refresh_tokens WHERE token = %s", within.json()["refresh_token"]
    )
    assert child["parent"] == first["refresh_token"]
    assert _error(past)[:2] == (400, "refresh_token_already_used")


def test_refresh_with_an_unknown_token_is_refresh_token_not_found(pinned: GoTrueStandIn) -> None:
    response = _refresh(pinned, "abcdefghijkl")

    assert _error(response) == (400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")


@pytest.mark.parametrize("refresh_token", [None, "", "short", "ABCDEFGHIJKL", "abcdefghijk!", "abcdefghijklm"])
def test_a_missing_or_malformed_refresh_token_is_a_validation_error(pinned: GoTrueStandIn, refresh_token: Any) -> None:
    if refresh_token is None:
        response = httpx.post(f"{pinned.url}/token", params={"grant_type": "refresh_token"}, json={}, timeout=10)
    else:
        response = _refresh(pinned, refresh_token)

    assert _error(response) == (400, "validation_failed", "Refresh token is not valid")


def test_refresh_for_a_deleted_user_is_refresh_token_not_found(pinned: GoTrueStandIn) -> None:
    body = _signed_in(pinned, "deleted@example.com")
    httpx.delete(f"{pinned.url}/admin/users/{body['user']['id']}", headers=_admin(pinned))

    response = _refresh(pinned, body["refresh_token"])

    assert _error(response)[:2] == (400, "refresh_token_not_found")
    assert _fetch(pinned, "SELECT id FROM auth.sessions") == []  # gone with the user, tokens with them


def test_refresh_for_a_banned_user_is_user_banned(pinned: GoTrueStandIn, clock: _Clock) -> None:
    body = _signed_in(pinned, "banned@example.com")
    _fetch_exec(pinned, "UPDATE auth.users SET banned_until = %s", clock() + timedelta(hours=1))

    response = _refresh(pinned, body["refresh_token"])
    clock.advance(3601)
    after_the_ban = _refresh(pinned, body["refresh_token"])

    assert _error(response) == (400, "user_banned", "Invalid Refresh Token: User Banned")
    assert after_the_ban.status_code == 200


def test_refresh_of_a_session_past_not_after_is_session_expired(pinned: GoTrueStandIn, clock: _Clock) -> None:
    body = _signed_in(pinned, "not-after@example.com")
    _fetch_exec(pinned, "UPDATE auth.sessions SET not_after = %s", clock() + timedelta(minutes=5))

    clock.advance(300)
    at_the_limit = _refresh(pinned, body["refresh_token"])
    clock.advance(1)
    past = _refresh(pinned, at_the_limit.json()["refresh_token"])

    assert at_the_limit.status_code == 200
    assert _error(past) == (400, "session_expired", "Invalid Refresh Token: Session Expired")


def test_a_refresh_token_without_a_session_is_deleted_and_refused(pinned: GoTrueStandIn) -> None:
    user_id = _signup(pinned, "pre-sessions@example.com").json()["user"]["id"]
    _fetch_exec(
        pinned,
        "INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at)"
        " VALUES ('00000000-0000-0000-0000-000000000000', 'legacytoken1', %s, false, now(), now())",
        user_id,
    )

    response = _refresh(pinned, "legacytoken1")

    assert _error(response) == (400, "session_not_found", "Invalid Refresh Token: No Valid Session Found")
    assert _fetch(pinned, "SELECT id FROM auth.refresh_tokens WHERE token = 'legacytoken1'") == []


def _fetch_exec(standin: GoTrueStandIn, query: str, *params: Any) -> None:
    with psycopg.connect(standin.database_url) as conn:
        conn.execute(query, params)


# --- logout ---


def _three_sessions(standin: GoTrueStandIn) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Two sessions of one user (a, b) and one of somebody else."""
    a = _signed_in(standin, "logout@example.com")
    b = _token(standin, "logout@example.com", PASSWORD).json()
    other = _signed_in(standin, "bystander@example.com")
    return a, b, other


@pytest.mark.parametrize(
    ("scope", "kept"),
    [(None, set()), ("global", set()), ("local", {"b"}), ("others", {"a"})],
)
def test_logout_deletes_the_scopes_sessions_and_their_refresh_tokens(
    pinned: GoTrueStandIn, scope: str | None, kept: set[str]
) -> None:
    a, b, other = _three_sessions(pinned)
    sid = {name: _claims_of(pinned, s["access_token"])["session_id"] for name, s in {"a": a, "b": b}.items()}

    response = _logout(pinned, a["access_token"], scope)

    assert response.status_code == 204
    assert response.content == b""
    assert "Content-Length" not in response.headers
    # GoTrue's default scope is global (logout.go), not local.
    assert _session_ids(pinned, a["user"]["id"]) == {sid[name] for name in kept}
    assert len(_session_ids(pinned, other["user"]["id"])) == 1
    live_tokens = {r["token"] for r in _fetch(pinned, "SELECT token FROM auth.refresh_tokens")}
    assert (a["refresh_token"] in live_tokens, b["refresh_token"] in live_tokens) == ("a" in kept, "b" in kept)
    assert other["refresh_token"] in live_tokens


def test_a_token_whose_session_is_gone_is_session_not_found(pinned: GoTrueStandIn) -> None:
    body = _signed_in(pinned, "gone@example.com")
    assert _logout(pinned, body["access_token"]).status_code == 204

    again = _logout(pinned, body["access_token"])
    user = httpx.get(f"{pinned.url}/user", headers=_bearer(body["access_token"]))

    expected = (403, "session_not_found", "Session from session_id claim in JWT does not exist")
    assert _error(again) == _error(user) == expected


def test_logout_refuses_an_unknown_scope_and_a_missing_bearer(pinned: GoTrueStandIn) -> None:
    body = _signed_in(pinned, "scope@example.com")

    unknown = _logout(pinned, body["access_token"], "everyone")
    missing = httpx.post(f"{pinned.url}/logout")

    assert _error(unknown) == (400, "validation_failed", 'Unsupported logout scope "everyone"')
    assert _error(missing)[:2] == (401, "no_authorization")
    assert len(_fetch(pinned, "SELECT id FROM auth.sessions")) == 1


def test_a_banned_users_token_is_refused_by_user_and_logout(pinned: GoTrueStandIn, clock: _Clock) -> None:
    body = _signed_in(pinned, "banned-bearer@example.com")
    _fetch_exec(pinned, "UPDATE auth.users SET banned_until = %s", clock() + timedelta(days=1))

    assert _error(httpx.get(f"{pinned.url}/user", headers=_bearer(body["access_token"]))) == (
        403,
        "user_banned",
        "User is banned",
    )
    assert _error(_logout(pinned, body["access_token"]))[:2] == (403, "user_banned")


# --- helpers: access_token, revoke_session ---


def test_access_token_without_a_session_leaves_the_claim_out_and_logs_out_everywhere(pinned: GoTrueStandIn) -> None:
    a, _b, _ = _three_sessions(pinned)

    minted, expires_at = pinned.access_token(a["user"])
    claims = _claims_of(pinned, minted)
    user = httpx.get(f"{pinned.url}/user", headers=_bearer(minted))
    logout = _logout(pinned, minted, "local")

    assert "session_id" not in claims
    assert expires_at == int(_SIGNED_IN_AT.timestamp()) + pinned.jwt_exp
    assert user.status_code == 200
    assert logout.status_code == 204
    assert _session_ids(pinned, a["user"]["id"]) == set()  # no session named: GoTrue's global sign-out


def test_access_token_with_a_session_id_names_that_session(pinned: GoTrueStandIn) -> None:
    body = _signed_in(pinned, "minted@example.com")
    session_id = _claims_of(pinned, body["access_token"])["session_id"]

    minted, _ = pinned.access_token(body["user"], session_id=session_id)
    stale, _ = pinned.access_token(body["user"], session_id=str(uuid.uuid4()))

    assert _claims_of(pinned, minted)["session_id"] == session_id
    assert httpx.get(f"{pinned.url}/user", headers=_bearer(minted)).status_code == 200
    assert _error(httpx.get(f"{pinned.url}/user", headers=_bearer(stale)))[:2] == (403, "session_not_found")


def test_revoke_session_deletes_the_session_and_its_refresh_tokens(pinned: GoTrueStandIn) -> None:
    body = _signed_in(pinned, "revoked@example.com")
    session_id = _claims_of(pinned, body["access_token"])["session_id"]

    pinned.revoke_session(session_id)

    assert _session_ids(pinned, body["user"]["id"]) == set()
    assert _fetch(pinned, "SELECT id FROM auth.refresh_tokens") == []
    assert _error(_refresh(pinned, body["refresh_token"]))[:2] == (400, "refresh_token_not_found")
    assert _error(httpx.get(f"{pinned.url}/user", headers=_bearer(body["access_token"])))[:2] == (
        403,
        "session_not_found",
    )
    with pytest.raises(ValueError, match="not a session id"):
        pinned.revoke_session("not-a-uuid")


def test_an_admin_call_with_a_revoked_sessions_token_is_session_not_found(pinned: GoTrueStandIn) -> None:
    body = _signed_in(pinned, "admin-session@example.com")
    pinned.revoke_session(_claims_of(pinned, body["access_token"])["session_id"])

    response = httpx.get(f"{pinned.url}/admin/users", headers=_bearer(body["access_token"]))

    assert _error(response)[:2] == (403, "session_not_found")


# --- asymmetric keys (ES256) and the JWKS ---


def test_es256_access_tokens_carry_the_kid_and_verify_with_the_published_jwks(es256: GoTrueStandIn) -> None:
    body = _signed_in(es256, "es256@example.com")

    header = jwt.get_unverified_header(body["access_token"])
    published = httpx.get(f"{es256.url}/.well-known/jwks.json").json()
    key = jwt.PyJWK.from_dict(published["keys"][0])
    claims = jwt.decode(
        body["access_token"], key, algorithms=["ES256"], audience="authenticated", options={"verify_exp": False}
    )

    assert header == {"alg": "ES256", "kid": "key-2026", "typ": "JWT"}
    assert claims["sub"] == body["user"]["id"]
    assert claims["session_id"] == str(_fetch(es256, "SELECT id FROM auth.sessions")[0]["id"])
    assert decode_jwt(body["access_token"], es256.jwt_secret) is None  # not HS256 any more
    refreshed = _refresh(es256, body["refresh_token"]).json()
    assert jwt.get_unverified_header(refreshed["access_token"])["kid"] == "key-2026"


def test_jwks_publishes_the_public_key_under_both_prefixes(
    es256: GoTrueStandIn, es256_key: ec.EllipticCurvePrivateKey
) -> None:
    direct = httpx.get(f"{es256.url}/.well-known/jwks.json")
    via_kong = httpx.get(f"{es256.url}/auth/v1/.well-known/jwks.json")

    numbers = es256_key.public_key().public_numbers()
    (key,) = direct.json()["keys"]
    assert direct.status_code == via_kong.status_code == 200
    assert direct.json() == via_kong.json() == es256.jwks()
    assert key == {
        "alg": "ES256",
        "crv": "P-256",
        "key_ops": ["verify"],
        "kid": "key-2026",
        "kty": "EC",
        "use": "sig",
        "x": base64.urlsafe_b64encode(numbers.x.to_bytes(32, "big")).rstrip(b"=").decode(),
        "y": base64.urlsafe_b64encode(numbers.y.to_bytes(32, "big")).rstrip(b"=").decode(),
    }
    assert "d" not in key
    assert direct.headers["Cache-Control"] == "public, max-age=600"


def test_jwks_is_empty_when_only_the_symmetric_secret_exists(pinned: GoTrueStandIn) -> None:
    response = httpx.get(f"{pinned.url}/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.json() == pinned.jwks() == {"keys": []}


def test_es256_server_accepts_bearers_signed_either_way(es256: GoTrueStandIn) -> None:
    body = _signed_in(es256, "either@example.com")
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    legacy = sign_jwt(claims, es256.jwt_secret)  # the same claims, HS256 with the legacy secret

    assert httpx.get(f"{es256.url}/user", headers=_bearer(body["access_token"])).status_code == 200
    assert httpx.get(f"{es256.url}/user", headers=_bearer(legacy)).status_code == 200
    # The service_role key stays HS256 with the JWT secret, and admin calls still take it.
    assert jwt.get_unverified_header(es256.service_key)["alg"] == "HS256"
    assert httpx.get(f"{es256.url}/admin/users", headers=_admin(es256)).status_code == 200
    assert _logout(es256, body["access_token"], "local").status_code == 204


def test_es256_tokens_from_another_key_or_server_are_bad_jwt(
    es256: GoTrueStandIn, pinned: GoTrueStandIn, es256_key: ec.EllipticCurvePrivateKey
) -> None:
    body = _signed_in(es256, "forged@example.com")
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    impostor = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims, impostor, algorithm="ES256", headers={"kid": "key-2026"})
    unknown_kid = jwt.encode(claims, es256_key, algorithm="ES256", headers={"kid": "another-kid"})

    assert _error(httpx.get(f"{es256.url}/user", headers=_bearer(forged)))[:2] == (403, "bad_jwt")
    assert _error(httpx.get(f"{es256.url}/user", headers=_bearer(unknown_kid)))[:2] == (403, "bad_jwt")
    # A server with only the symmetric secret knows no ES256 key at all.
    assert _error(httpx.get(f"{pinned.url}/user", headers=_bearer(body["access_token"])))[:2] == (403, "bad_jwt")


def test_an_expired_es256_token_is_bad_jwt_by_the_servers_clock(es256: GoTrueStandIn, clock: _Clock) -> None:
    body = _signed_in(es256, "expired@example.com")

    clock.advance(es256.jwt_exp - 1)
    fresh = httpx.get(f"{es256.url}/user", headers=_bearer(body["access_token"]))
    clock.advance(1)  # jwt-go: expired once now reaches exp
    expired = httpx.get(f"{es256.url}/user", headers=_bearer(body["access_token"]))

    assert fresh.status_code == 200
    assert _error(expired) == (
        403,
        "bad_jwt",
        "invalid JWT: unable to parse or verify signature, token has invalid claims: token is expired",
    )


def test_the_signing_key_must_be_p256(supabase_db: str) -> None:
    with pytest.raises(ValueError, match="P-256"):
        GoTrueStandIn(supabase_db, signing_key=ec.generate_private_key(ec.SECP384R1()))
