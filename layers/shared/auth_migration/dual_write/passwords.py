"""Password hashing for carrying one password into the second auth system.

bcrypt at cost 10 with the `$2a$` prefix is exactly what GoTrue writes (Go's bcrypt.DefaultCost), so
GoTrue accepts the hash as `password_hash`, and the Better-Auth server verifies `$2` hashes with
bcryptjs (docs/BETTER_AUTH.md). pyca/bcrypt releases the GIL while hashing, so a hash computed in a
worker thread overlaps the primary system's HTTP call instead of adding to it.
"""

from __future__ import annotations

from typing import Final

import bcrypt

__all__ = ["BCRYPT_MAX_BYTES", "BCRYPT_ROUNDS", "hash_password", "is_bcrypt_hash", "password_fits_bcrypt"]

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
