"""Password hashing for carrying one password into the second auth system.

bcrypt at cost 10 with the `$2a$` prefix is exactly what GoTrue writes (Go's bcrypt.DefaultCost), so
GoTrue accepts the hash as `password_hash`, and the Better-Auth server verifies `$2` hashes with
bcryptjs (docs/BETTER_AUTH.md). pyca/bcrypt releases the GIL while hashing, so a hash computed in a
worker thread overlaps the primary system's HTTP call instead of adding to it.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from typing import Final

import bcrypt

__all__ = [
    "BCRYPT_MAX_BYTES",
    "BCRYPT_ROUNDS",
    "better_auth_hash",
    "hash_password",
    "is_bcrypt_hash",
    "password_fits_bcrypt",
]

BCRYPT_ROUNDS: Final = 10
#: bcrypt reads only the first 72 bytes; a longer password would be silently shortened (and pyca/bcrypt
#: 5 refuses it), so the API refuses such passwords at signup instead (GoTrue also caps at 72).
BCRYPT_MAX_BYTES: Final = 72


def password_fits_bcrypt(password: str) -> bool:
    return len(password.encode("utf-8")) <= BCRYPT_MAX_BYTES


def hash_password(password: str) -> str:
    """A `$2a$10$...` bcrypt hash of `password` (at most 72 UTF-8 bytes)."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=BCRYPT_ROUNDS, prefix=b"2a")).decode("ascii")


def is_bcrypt_hash(value: str | None) -> bool:
    return bool(value) and str(value).startswith(("$2a$", "$2b$", "$2y$"))


# Better-Auth's own hashPassword (@better-auth/utils/password, node build, in better-auth 1.7.25): scrypt
# N=16384, r=16, p=1, 64-byte key, over the NFKC-normalized password, salted with 16 random bytes written as
# hex, and the hex STRING is the salt scrypt sees; stored as "<salt hex>:<key hex>".
_SCRYPT_N: Final = 16384
_SCRYPT_R: Final = 16
_SCRYPT_P: Final = 1
_SCRYPT_KEY_BYTES: Final = 64


def better_auth_hash(password: str, *, salt: str | None = None) -> str:
    """The hash Better-Auth's hashPassword would store for `password` (`salt`: 32 hex chars, for tests)."""
    salt = salt if salt is not None else secrets.token_hex(16)
    key = hashlib.scrypt(
        unicodedata.normalize("NFKC", password).encode("utf-8"),
        salt=salt.encode("ascii"),
        n=_SCRYPT_N,
        r=_SCRYPT_R,
        p=_SCRYPT_P,
        maxmem=128 * _SCRYPT_N * _SCRYPT_R * 2,  # Node's bound in the same code: twice what scrypt needs
        dklen=_SCRYPT_KEY_BYTES,
    )
    return f"{salt}:{key.hex()}"
