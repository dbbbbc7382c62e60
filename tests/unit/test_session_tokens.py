"""Supabase access-token verification (sessions/supabase_tokens.py): what GoTrue would accept, and nothing else.

No I/O: tokens are minted here with PyJWT, the JWKS is served by an httpx MockTransport, the clock is pinned.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from auth_migration.sessions.supabase_tokens import AccessTokenVerifier, JwksKeys, KeysUnavailable, TokenRefused

NOW: Final = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ISSUER: Final = "https://project.supabase.co/auth/v1"
SECRET: Final = "super-secret-jwt-token-with-at-least-32-characters-long"
USER: Final = "6f1d2f0e-8b8c-4b7a-9f0e-2f4a1c3b5d7e"
SESSION: Final = "0b6c3a52-1f43-4d8e-a0a8-9d2e6f7c1b24"
EC_KEY: Final = ec.generate_private_key(ec.SECP256R1())
RSA_KEY: Final = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KID, RSA_KID = "ec-key-1", "rsa-key-1"


def public_jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.get_algorithm_by_name(alg)
    jwk: dict[str, Any] = json.loads(algorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


JWKS: Final = {"keys": [public_jwk(EC_KEY, EC_KID, "ES256"), public_jwk(RSA_KEY, RSA_KID, "RS256")]}


def claims(**overrides: Any) -> dict[str, Any]:
    issued = int(NOW.timestamp()) - 60
    base: dict[str, Any] = {
        "aud": "authenticated",
        "exp": issued + 3600,
        "iat": issued,
        "iss": ISSUER,
        "sub": USER,
        "email": "ada@example.com",
        "role": "authenticated",
        "aal": "aal1",
        "session_id": SESSION,
        "is_anonymous": False,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256(payload: Mapping[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(dict(payload), secret, algorithm="HS256")


def es256(payload: Mapping[str, Any], *, kid: str = EC_KID, key: Any = EC_KEY) -> str:
    return jwt.encode(dict(payload), key, algorithm="ES256", headers={"kid": kid})


def unsigned(payload: Mapping[str, Any], header: Mapping[str, Any]) -> str:
    def part(value: Mapping[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}."


class JwksServer:
    """The project's JWKS endpoint in memory; counts fetches."""

    def __init__(self, document: Mapping[str, Any] | None = None, *, status: int = 200) -> None:
        self.document = dict(document or JWKS)
        self.status = status
        self.fetches = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        return httpx.Response(self.status, json=self.document)


class Timer:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_jwks(server: JwksServer, timer: Callable[[], float] | None = None) -> JwksKeys:
    client = httpx.Client(transport=httpx.MockTransport(server))
    return JwksKeys(f"{ISSUER}/.well-known/jwks.json", client, timer=timer or Timer())


def verifier(*, secret: str | None = SECRET, jwks: JwksKeys | None = None) -> AccessTokenVerifier:
    return AccessTokenVerifier(issuer=ISSUER, secret=secret, jwks=jwks if jwks is not None else make_jwks(JwksServer()))


def test_an_hs256_token_of_the_project_gives_its_user_and_session() -> None:
    found = verifier().verify(hs256(claims()), now=NOW)
    assert (found.user_id, found.session_id) == (USER, SESSION)
    assert found.expires_at == datetime.fromtimestamp(claims()["exp"], tz=UTC)


@pytest.mark.parametrize(("alg", "kid", "key"), [("ES256", EC_KID, EC_KEY), ("RS256", RSA_KID, RSA_KEY)])
def test_an_asymmetric_token_verifies_with_the_jwks_key_it_names(alg: str, kid: str, key: Any) -> None:
    token = jwt.encode(claims(), key, algorithm=alg, headers={"kid": kid})
    assert verifier(secret=None).verify(token, now=NOW).user_id == USER


def test_a_token_within_the_leeway_of_its_expiry_still_verifies() -> None:
    token = hs256(claims(exp=int(NOW.timestamp()) - 10))
    assert verifier().verify(token, now=NOW).user_id == USER


PUBLIC_PEM: Final = (
    RSA_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
OTHER_EC_KEY: Final = ec.generate_private_key(ec.SECP256R1())


def hs256_with_public_key() -> str:
    """Algorithm confusion: HS256 "signed" with the published RSA public key as the HMAC secret. PyJWT
    refuses to make such a token; an attacker's tool would not, so it is made by hand."""
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    signing_input = header + b"." + payload
    signature = base64.urlsafe_b64encode(hmac.new(PUBLIC_PEM.encode(), signing_input, hashlib.sha256).digest())
    return (signing_input + b"." + signature.rstrip(b"=")).decode()


def with_payload_of(token: str, other: str) -> str:
    """`token`'s header and signature around `other`'s payload (a tampered token)."""
    header, _, signature = token.split(".")
    return f"{header}.{other.split('.')[1]}.{signature}"


# (label, token, the verifier's HS secret, expected kind). Each is a token GoTrue would refuse.
HOSTILE: Final[list[tuple[str, str, str | None, str]]] = [
    ("bad HS256 signature", hs256(claims(), secret="x" * 40), SECRET, "bad_signature"),
    (
        "tampered payload",
        with_payload_of(hs256(claims()), hs256(claims(sub=str(uuid.uuid4())))),
        SECRET,
        "bad_signature",
    ),
    ("bad ES256 signature", es256(claims(), key=OTHER_EC_KEY), SECRET, "bad_signature"),
    ("alg none", unsigned(claims(), {"alg": "none", "typ": "JWT"}), SECRET, "algorithm_not_allowed"),
    ("alg None spelled", unsigned(claims(), {"alg": "None", "typ": "JWT"}), SECRET, "algorithm_not_allowed"),
    ("HS/RS confusion, secret configured", hs256_with_public_key(), SECRET, "bad_signature"),
    ("HS/RS confusion, JWKS only", hs256_with_public_key(), None, "algorithm_not_allowed"),
    ("HS256 when only the JWKS is trusted", hs256(claims()), None, "algorithm_not_allowed"),
    ("HS384", jwt.encode(claims(), SECRET, algorithm="HS384"), SECRET, "algorithm_not_allowed"),
    (
        "ES256 header on the RSA key",
        unsigned(claims(), {"alg": "ES256", "kid": RSA_KID}) + "sig",
        SECRET,
        "algorithm_mismatch",
    ),
    ("unknown kid", es256(claims(), kid="invented"), SECRET, "unknown_key"),
    ("no kid", jwt.encode(claims(), EC_KEY, algorithm="ES256"), SECRET, "unknown_key"),
    ("expired", hs256(claims(exp=int(NOW.timestamp()) - 31)), SECRET, "expired"),
    ("not yet valid", hs256(claims(nbf=int(NOW.timestamp()) + 3600)), SECRET, "not_yet_valid"),
    ("issued in the future", hs256(claims(iat=int(NOW.timestamp()) + 3600)), SECRET, "not_yet_valid"),
    ("wrong audience", hs256(claims(aud="anon")), SECRET, "wrong_audience"),
    ("wrong issuer", hs256(claims(iss="https://other.supabase.co/auth/v1")), SECRET, "wrong_issuer"),
    ("no exp", hs256(claims(exp=None)), SECRET, "missing_claim"),
    ("no sub", hs256(claims(sub=None)), SECRET, "missing_claim"),
    ("sub not a uuid", hs256(claims(sub="admin")), SECRET, "malformed"),
    ("service_role key", hs256(claims(role="service_role")), SECRET, "wrong_role"),
    ("anonymous user", hs256(claims(is_anonymous=True)), SECRET, "anonymous_user"),
    ("exp not a number", hs256(claims(exp="tomorrow")), SECRET, "malformed"),
    ("garbage", "not-a-jwt", SECRET, "malformed"),
    ("two dots of garbage", "a.b.c", SECRET, "malformed"),
    ("oversized", "a" * 20_000 + ".b.c", SECRET, "malformed"),
    ("empty", "", SECRET, "malformed"),
]


@pytest.mark.parametrize(("label", "token", "secret", "kind"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_token_is_refused_with_its_reason(label: str, token: str, secret: str | None, kind: str) -> None:
    with pytest.raises(TokenRefused) as refused:
        verifier(secret=secret).verify(token, now=NOW)
    assert refused.value.kind == kind, label


def test_an_unknown_kid_refetches_the_jwks_at_most_once_per_refresh_interval() -> None:
    server, timer = JwksServer(), Timer()
    check = verifier(secret=None, jwks=make_jwks(server, timer))
    for _ in range(20):
        with pytest.raises(TokenRefused):
            check.verify(es256(claims(), kid=f"invented-{uuid.uuid4()}"), now=NOW)
    assert server.fetches == 1
    timer.now += 31
    with pytest.raises(TokenRefused):
        check.verify(es256(claims(), kid="invented-again"), now=NOW)
    assert server.fetches == 2


def test_a_key_added_to_the_jwks_is_found_after_the_refresh_interval() -> None:
    new_key = ec.generate_private_key(ec.SECP256R1())
    server, timer = JwksServer({"keys": []}), Timer()
    check = verifier(secret=None, jwks=make_jwks(server, timer))
    token = es256(claims(), kid="rotated", key=new_key)
    with pytest.raises(TokenRefused, match="unknown_key"):
        check.verify(token, now=NOW)
    server.document = {"keys": [public_jwk(new_key, "rotated", "ES256")]}
    timer.now += 31
    assert check.verify(token, now=NOW).user_id == USER


def test_known_keys_keep_working_through_a_jwks_outage() -> None:
    server, timer = JwksServer(), Timer()
    check = verifier(secret=None, jwks=make_jwks(server, timer))
    assert check.verify(es256(claims()), now=NOW).user_id == USER
    server.status = 503
    timer.now += 601  # the cache is stale: a refresh is tried, fails, and the known key is kept
    assert check.verify(es256(claims()), now=NOW).user_id == USER


def test_an_unreachable_jwks_is_unavailable_not_a_refusal_until_a_fetch_succeeds() -> None:
    server, timer = JwksServer(status=500), Timer()
    check = verifier(secret=None, jwks=make_jwks(server, timer))
    with pytest.raises(KeysUnavailable):
        check.verify(es256(claims()), now=NOW)
    timer.now += 5  # inside min_refresh_s: no new fetch, and still "unavailable", never "unknown_key"
    with pytest.raises(KeysUnavailable):
        check.verify(es256(claims()), now=NOW)
    assert server.fetches == 1
    server.status = 200
    timer.now += 30
    assert check.verify(es256(claims()), now=NOW).user_id == USER


def test_the_refusal_never_carries_the_token() -> None:
    token = hs256(claims(), secret="y" * 40)
    with pytest.raises(TokenRefused) as refused:
        verifier().verify(token, now=NOW)
    assert token not in str(refused.value) and token not in repr(refused.value.args)
