"""Supabase access tokens verified locally, as GoTrue itself would: signature, algorithm, exp/nbf, aud, iss.

A project signs with its JWT secret (HS256, every project until 2025) or with asymmetric keys published
at `/auth/v1/.well-known/jwks.json` (ES256 by default, RS256 possible). The algorithm is taken from the
token's header only to pick the key, and each algorithm has exactly one kind of key: HS256 only ever
meets the configured secret, ES256/RS256 only a JWKS key of that algorithm. So `alg: none`, an HS256
token "signed" with a public key (algorithm confusion), or a key used for another algorithm are refused
before any signature is checked.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx
import jwt

from auth_migration.sessions import MAX_TOKEN_CHARS

__all__ = ["AUDIENCE", "AccessClaims", "AccessTokenVerifier", "JwksKeys", "KeysUnavailable", "TokenRefused"]

#: The audience (and role) of a signed-in user's token; anon and service_role keys carry other roles.
AUDIENCE: Final = "authenticated"
_ASYMMETRIC: Final = frozenset({"ES256", "RS256"})


class TokenRefused(Exception):
    """The token is not a valid access token of this project. `kind` says why (logs and metrics only)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class KeysUnavailable(Exception):
    """The project's JWKS could not be read and no key we hold names the token's kid: nothing can be said of the
    token (a 503, try again), which is not the client's fault. Telling it "invalid" would make an app drop a
    session that is fine."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says."""

    user_id: str
    #: GoTrue's auth.sessions row the token belongs to (absent from tokens issued before sessions existed).
    session_id: str | None
    expires_at: datetime


class JwksKeys:
    """The project's public signing keys, fetched from its JWKS URL when first needed and cached.

    Written here rather than taken from PyJWT's PyJWKClient: that client fetches the JWKS again for every
    unknown `kid`, so tokens with invented kids would become a stream of requests to Supabase. Here an
    unknown kid refetches at most once per `min_refresh_s`; keys are otherwise reused for `max_age_s`.
    Fetching goes through our httpx client (the shared TLS context, our timeouts).
    """

    def __init__(
        self,
        url: str,
        client: httpx.Client,
        *,
        max_age_s: float = 600.0,
        min_refresh_s: float = 30.0,
        timeout_s: float = 2.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._client = client
        self._max_age_s = max_age_s
        self._min_refresh_s = min_refresh_s
        self._timeout_s = timeout_s
        self._timer = timer
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        #: The last fetch failed: until one succeeds, an unknown kid is "unavailable", not "unknown".
        self._failing = False
        self._lock = threading.Lock()

    def key(self, kid: str) -> jwt.PyJWK | None:
        """The key with this id, or None when the project publishes none such.

        Raises:
            KeysUnavailable: the JWKS could not be read (now, or at the last try less than min_refresh_s ago)
                and no cached copy holds the kid.
        """
        with self._lock:
            now = self._timer()
            age = None if self._fetched_at is None else now - self._fetched_at
            stale = age is None or age >= self._max_age_s
            may_refresh = age is None or age >= self._min_refresh_s
            if stale or (kid not in self._keys and may_refresh):
                self._refresh(now)
            found = self._keys.get(kid)
            if found is None and self._failing:
                raise KeysUnavailable(f"JWKS at {self.url} unreadable")
            return found

    def _refresh(self, now: float) -> None:
        try:
            reply = self._client.get(self.url, timeout=self._timeout_s)
            reply.raise_for_status()
            document = reply.json()
            keys = {}
            for entry in document.get("keys", []) if isinstance(document, dict) else []:
                if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                    continue
                try:
                    keys[entry["kid"]] = jwt.PyJWK(entry)
                except jwt.PyJWTError:
                    continue  # a key type or algorithm we cannot use: never one we would accept
        except (httpx.HTTPError, ValueError):
            # Known keys keep working through a JWKS outage; the fetch is tried again after min_refresh_s.
            self._failing = True
            return
        finally:
            self._fetched_at = now
        self._keys, self._failing = keys, False


class AccessTokenVerifier:
    """Verifies Supabase access tokens; the time is passed in (PyJWT's own exp check reads the wall clock)."""

    def __init__(
        self,
        *,
        issuer: str,
        secret: str | None = None,
        jwks: JwksKeys | None = None,
        leeway_s: int = 30,
    ) -> None:
        self.issuer = issuer
        self._secret = secret
        self._jwks = jwks
        self._leeway_s = leeway_s

    def verify(self, token: str, *, now: datetime) -> AccessClaims:
        """The claims of a valid access token of this project for a signed-in user.

        Raises:
            TokenRefused: anything else, with the reason in `kind`.
        """
        if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            raise TokenRefused("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRefused("malformed") from None
        algorithm = header.get("alg")
        key: Any
        if algorithm == "HS256" and self._secret:
            key = self._secret
        elif algorithm in _ASYMMETRIC and self._jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str):
                raise TokenRefused("unknown_key")
            found = self._jwks.key(kid)
            if found is None:
                raise TokenRefused("unknown_key")
            if found.algorithm_name != algorithm:
                raise TokenRefused("algorithm_mismatch")
            key = found.key
        else:
            raise TokenRefused("algorithm_not_allowed")
        try:
            claims: Mapping[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=AUDIENCE,
                issuer=self.issuer,
                # Time is checked below against the caller's clock: PyJWT would read the wall clock.
                options={
                    "require": ["exp", "sub", "aud", "iss"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise TokenRefused("bad_signature") from None
        except jwt.InvalidAudienceError:
            raise TokenRefused("wrong_audience") from None
        except jwt.InvalidIssuerError:
            raise TokenRefused("wrong_issuer") from None
        except jwt.MissingRequiredClaimError:
            raise TokenRefused("missing_claim") from None
        except jwt.PyJWTError:
            raise TokenRefused("malformed") from None
        return self._checked(claims, now)

    def _checked(self, claims: Mapping[str, Any], now: datetime) -> AccessClaims:
        at = now.timestamp()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise TokenRefused("malformed")
        if exp <= at - self._leeway_s:
            raise TokenRefused("expired")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is not None and (not isinstance(value, int | float) or value > at + self._leeway_s):
                raise TokenRefused("not_yet_valid")
        if claims.get("role", AUDIENCE) != AUDIENCE:
            raise TokenRefused("wrong_role")
        if claims.get("is_anonymous") is True:
            raise TokenRefused("anonymous_user")  # no email, no password: nothing Better-Auth could hold
        subject = claims.get("sub")
        session_id = claims.get("session_id")
        if not _is_uuid(subject) or (session_id is not None and not _is_uuid(session_id)):
            raise TokenRefused("malformed")
        assert isinstance(subject, str)
        return AccessClaims(
            user_id=str(uuid.UUID(subject)),
            session_id=str(uuid.UUID(session_id)) if isinstance(session_id, str) else None,
            expires_at=datetime.fromtimestamp(exp, tz=UTC),
        )


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
