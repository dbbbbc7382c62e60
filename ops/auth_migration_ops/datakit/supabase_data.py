"""Generated source data for local runs and tests: Supabase's `auth.users` / `auth.identities` and the
legacy `public.profiles` table, deterministic per seed, streamed with COPY, with real projects' edge cases.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from queue import Queue
from typing import Any

import bcrypt
import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

__all__ = [
    "EDGE_CASES",
    "PROFILE_EDGE_CASES",
    "Credential",
    "Manifest",
    "create_profiles_schema",
    "create_supabase_schema",
    "generate_profiles",
    "generate_supabase_users",
]

#: How many users each edge case gets in `generate_supabase_users` (fixed, whatever n is).
EDGE_CASES: dict[str, int] = {
    "case_duplicate": 6,  # three pairs
    "soft_deleted": 3,
    "banned": 3,
    "ban_expired": 3,
    "anonymous": 3,
    "phone_only": 3,
    "oauth_only": 3,
    "unconfirmed": 3,
    "odd_metadata": 7,
    "huge_metadata": 2,
    "invalid_email": 3,
    "missing_email": 3,
    "test_user": 3,
    "uppercase_email": 1,
}

#: How many rows each edge case gets in `generate_profiles`.
PROFILE_EDGE_CASES: dict[str, int] = {
    "invalid_email": 3,
    "missing_email": 3,
    "bad_avatar_url": 4,
    "lowercase_names": 3,
    "test_user": 3,
}

#: Past this many users the "normal" ids are counted but not listed (a million ids is ~90 MB).
NORMAL_IDS_LISTED_UP_TO = 200_000

_CHUNK = 20_000
_SCHEMA_LOCK = 0x5B_A5E_DA7A  # serializes concurrent schema creation in one database
_INSTANCE_ID = "00000000-0000-0000-0000-000000000000"
_THREE_YEARS_S = 3 * 365 * 24 * 3600
_DAY_S = 24 * 3600

# Lowercase, and none of them contains "test": the production rule treats such addresses apart.
_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "proton.me", "acme.io", "fastmail.com")
_FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sofía", "Mateo", "Chloé", "Lucas",
    "Hannah", "Ethan", "Aiko", "Kenji", "Priya", "Arjun", "Fatima", "Omar", "Zoë", "Björn",
    "Mei", "Wei", "Ana", "João", "Grace", "Samuel", "Leila", "Tomás", "Nadia", "Ivan",
)  # fmt: skip
_LAST_NAMES = (
    "Smith", "Johnson", "García", "Müller", "Rossi", "Kim", "Nguyen", "Patel", "O'Brien", "Kowalski",
    "Silva", "Tanaka", "Dubois", "Novak", "Hansen", "Cohen", "Okafor", "Haddad", "Lindqvist", "Moreau",
    "Brown", "Ivanova", "Santos", "Yilmaz", "Chen", "Walker", "Fischer", "Costa", "Ahmed", "Reyes",
)  # fmt: skip
_WORDS = (
    "maple", "river", "copper", "falcon", "harbor", "meadow", "orbit", "pepper", "quartz", "saffron",
    "timber", "violet", "willow", "ember", "glacier", "lantern", "marble", "nectar", "pixel", "summit",
)  # fmt: skip

_USER_COLUMNS = (
    "instance_id", "id", "aud", "role", "email", "encrypted_password", "email_confirmed_at",
    "confirmation_sent_at", "last_sign_in_at", "raw_app_meta_data", "raw_user_meta_data",
    "is_super_admin", "created_at", "updated_at", "phone", "phone_confirmed_at", "banned_until",
    "deleted_at", "is_anonymous",
)  # fmt: skip
_IDENTITY_COLUMNS = (
    "provider_id", "user_id", "identity_data", "provider", "last_sign_in_at", "created_at", "updated_at", "id",
)  # fmt: skip
_PROFILE_COLUMNS = ("id", "email", "username", "first_name", "last_name", "avatar_url", "created_at", "updated_at")

_NULL = "\\N"  # NULL in COPY text format
_APP_META_EMAIL = '{"provider": "email", "providers": ["email"]}'


class _Default(Enum):
    META = "generated metadata"


def _ascii(name: str) -> str:
    """'Björn O'Brien' -> 'bjornobrien': the seed's email regex only takes ASCII local parts."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


@dataclass(frozen=True)
class Credential:
    """A user whose password is known, for sign-in tests."""

    user_id: str
    email: str
    password: str = field(repr=False)


@dataclass
class Manifest:
    """What a generator wrote: the ids of each case, and known credentials."""

    total: int = 0
    ids_by_case: dict[str, list[str]] = field(default_factory=dict)
    credentials: list[Credential] = field(default_factory=list)
    oauth_accounts: int = 0
    #: Rows per case; equals len(ids_by_case[case]) except "normal" ids past NORMAL_IDS_LISTED_UP_TO.
    counts: dict[str, int] = field(default_factory=dict)
    #: Edge-case users that have an email and a password (banned, case_duplicate, uppercase_email...).
    edge_credentials: dict[str, list[Credential]] = field(default_factory=dict)
    #: The instant the data was generated relative to: compare its timestamps with this, never the clock.
    reference_time: datetime | None = None

    def _add(self, case: str, user_id: str, *, listed: bool = True) -> None:
        self.total += 1
        self.counts[case] = self.counts.get(case, 0) + 1
        ids = self.ids_by_case.setdefault(case, [])
        if listed:
            ids.append(user_id)


# --------------------------------------------------------------------------------------------- schema


def _schema_sql(name: str) -> str:
    return (files("auth_migration_ops.datakit") / "sql" / name).read_text(encoding="utf-8")


def _apply_sql(conninfo: str, script: str) -> None:
    with psycopg.connect(conninfo) as conn:
        # CREATE ... IF NOT EXISTS still races on the catalog when two sessions run it at once.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        conn.execute(sql.SQL(script))  # a trusted file shipped with this package


def create_supabase_schema(conninfo: str) -> None:
    """Create GoTrue's `auth.users`, `auth.identities`, `auth.sessions` and `auth.refresh_tokens` (idempotent)."""
    _apply_sql(conninfo, _schema_sql("supabase_auth_schema.sql"))


def create_profiles_schema(conninfo: str, *, with_password_hash: bool = False) -> None:
    """Create the legacy `public.profiles` table (idempotent), optionally with `password_hash`."""
    script = _schema_sql("profiles_schema.sql")
    if with_password_hash:
        script += "\nALTER TABLE public.profiles ADD COLUMN IF NOT EXISTS password_hash text NULL;\n"
    _apply_sql(conninfo, script)


# ------------------------------------------------------------------------------------------- helpers


#: Hashes of the generated (synthetic) passwords survive between runs here: hashing is the slow part.
POOL_CACHE_DIR = Path.home() / ".cache" / "auth-migration" / "bcrypt-pool"


# Users "without a password" hold NULL (anonymous) or '' (OAuth-only, as GoTrue wrote for years):
# readers must treat both as "no password".
@lru_cache(maxsize=8)
def _password_pool(seed: int, size: int, rounds: int) -> tuple[tuple[str, str], ...]:
    """(password, bcrypt hash) pairs, hashed once per (seed, size, rounds) and cached on disk."""
    rng = random.Random(f"passwords:{seed}")
    passwords = [f"{rng.choice(_WORDS)}-{rng.choice(_WORDS)}-{rng.randrange(1000, 10000)}" for _ in range(size)]
    cache = POOL_CACHE_DIR / f"seed{seed}-n{size}-cost{rounds}.json"
    try:
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if [p for p, _ in cached] == passwords and all(h.startswith(f"$2a${rounds:02d}$") for _, h in cached):
            return tuple((p, h) for p, h in cached)
    except (OSError, ValueError, TypeError):
        pass  # no cache yet, or an unreadable one: hash afresh

    def hash_one(password: str) -> str:
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()
        # GoTrue (Go's x/crypto/bcrypt) writes $2a$; for passwords under 72 bytes it is the same hash.
        return "$2a$" + hashed[4:]

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:  # bcrypt releases the GIL
        pairs = tuple(zip(passwords, pool.map(hash_one, passwords), strict=True))
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(pairs), encoding="utf-8")
        partial.replace(cache)
    except OSError:
        pass  # a read-only home only costs the next run the hashing time
    return pairs


def _uuid4(rng: random.Random) -> str:
    """A version-4 UUID drawn from `rng` (uuid.uuid4() reads os.urandom, which no seed can repeat)."""
    bits = rng.getrandbits(128)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[bits & 3]}{h[17:20]}-{h[20:]}"


@lru_cache(maxsize=1)
def _times_of_day() -> tuple[str, ...]:
    return tuple(f" {h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60))


_DAYS: dict[int, str] = {}


def _ts(epoch: float) -> str:
    """Epoch seconds as timestamptz text; strftime per value was a third of the generator's time."""
    whole = int(epoch)
    day, second = divmod(whole, _DAY_S)
    date = _DAYS.get(day)
    if date is None:
        date = _DAYS[day] = time.strftime("%Y-%m-%d", time.gmtime(day * _DAY_S))
    return f"{date}{_times_of_day()[second]}.{int((epoch - whole) * 1e6):06d}+00"


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _field(value: str | None) -> str:
    """One value in COPY text format."""
    return _NULL if value is None else value.translate(_COPY_ESCAPES)


def _line(values: tuple[str | None, ...]) -> str:
    return "\t".join(map(_field, values)) + "\n"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _copy_statement(table: str, columns: tuple[str, ...]) -> sql.Composed:
    schema, _, name = table.partition(".")
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(schema, name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )


def _user_meta(first: str, last: str, shape: int) -> str:
    """raw_user_meta_data in the shapes sign-up forms and OAuth providers leave behind."""
    if shape == 0:
        return _json({"full_name": f"{first} {last}"})
    if shape == 1:
        return _json({"name": f"{first} {last}"})
    if shape == 2:
        return _json({"first_name": first, "last_name": last})
    if shape == 3:
        return _json({"user_name": _ascii(first + last)})
    return "{}"


@dataclass
class _Chunk:
    users: list[str] = field(default_factory=list)
    identities: list[str] = field(default_factory=list)


def _produce(make_chunks: Callable[[], Iterator[_Chunk]]) -> Iterator[_Chunk]:
    """Run the (GIL-bound) row generator in a thread, so it builds chunk k+1 while Postgres loads k."""
    chunks: Queue[_Chunk | BaseException | None] = Queue(maxsize=2)

    def run() -> None:
        try:
            for chunk in make_chunks():
                chunks.put(chunk)
            chunks.put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            chunks.put(exc)

    worker = threading.Thread(target=run, name="supabase-data-generator", daemon=True)
    worker.start()
    try:
        while (item := chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        # Unblock a producer stuck on a full queue when the consumer stops early.
        while worker.is_alive():
            if chunks.empty():
                worker.join(timeout=0.05)
            else:
                chunks.get_nowait()


@contextmanager
def _indexes_deferred(conn: psycopg.Connection[Any], tables: tuple[str, ...]) -> Iterator[None]:
    """Into empty tables, load without indexes and constraints, then rebuild them (as pg_restore does).

    Keeping ~10 btrees over random uuids current row by row made a million-user load three times
    slower than sorting each index once. Runs inside the caller's transaction, so a failed load
    (or a rebuilt unique index that finds duplicates) rolls the schema back untouched. Tables that
    already hold rows keep their indexes: rebuilding them would cost more than it saves.
    """
    # Writers wait until we commit, so "empty" stays true between this check and the load.
    conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(sql.SQL(", ").join(map(_table, tables))))
    empty = all(
        conn.execute(sql.SQL("SELECT NOT EXISTS (SELECT FROM {})").format(_table(t))).fetchone() == (True,)
        for t in tables
    )
    if not empty:
        yield
        return
    oids = list(tables)
    constraints = conn.execute(
        """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype
        FROM pg_constraint
        WHERE (conrelid = ANY(%s::regclass[]) AND contype IN ('p', 'u', 'f'))
           -- and foreign keys from other tables into these (auth.sessions -> auth.users): they hang on the
           -- keys dropped below; like the rest, they are added back (and checked) after the load
           OR (confrelid = ANY(%s::regclass[]) AND contype = 'f')
        ORDER BY contype = 'f' DESC
        """,
        (oids, oids),
    ).fetchall()
    indexes = conn.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), obj_description(i.indexrelid, 'pg_class')
        FROM pg_index i
        WHERE i.indrelid = ANY(%s::regclass[])
          AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u'))
        """,
        (oids,),
    ).fetchall()
    for table, name, _, _ in constraints:  # foreign keys first: they depend on the primary keys
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.SQL(table), sql.Identifier(name)))
    for index, _, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(index)))
    yield
    for index, definition, comment in indexes:
        conn.execute(sql.SQL(definition))
        if comment is not None:
            conn.execute(sql.SQL("COMMENT ON INDEX {} IS {}").format(sql.SQL(index), sql.Literal(comment)))
    for table, name, definition, _ in reversed(constraints):  # primary and unique keys before the foreign keys
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.SQL(table), sql.Identifier(name), sql.SQL(definition)
            )
        )


def _table(qualified: str) -> sql.Identifier:
    schema, _, name = qualified.partition(".")
    return sql.Identifier(schema, name)


def _reference_epoch(reference_time: datetime) -> float:
    if reference_time.tzinfo is None:
        raise ValueError("reference_time must be timezone-aware")
    return reference_time.timestamp()


# ------------------------------------------------------------------------------------- supabase users


class _UserFactory:
    """Builds COPY lines for auth.users / auth.identities; holds the RNG so order is deterministic."""

    def __init__(self, *, seed: int, now: float, pool: tuple[tuple[str, str], ...], manifest: Manifest) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.pool = pool
        self.manifest = manifest
        # Provider account ids: a per-run base plus a sequence, so they never collide.
        self.google_base = 10**20 + self.rng.randrange(10**19)
        self.github_base = 1_000_000 + self.rng.randrange(10**7)
        self.phone_base = 15_550_000_000 + self.rng.randrange(1_000_000)
        self.seq = 0

    # -- pieces

    def times(self) -> tuple[float, float, float | None]:
        """created_at, updated_at, last_sign_in_at (None: never signed in)."""
        rng = self.rng
        created = self.now - rng.random() * _THREE_YEARS_S
        last = created + rng.random() * (self.now - created) if rng.random() < 0.85 else None
        updated = max(created + rng.random() * (self.now - created), last or created)
        return created, updated, last

    def user_meta(self, first: str, last: str) -> str:
        return _user_meta(first, last, self.rng.randrange(5))

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def user_line(
        self,
        user_id: str,
        *,
        email: str | None,
        password_hash: str | None,
        user_meta: str | None,
        app_meta: str | None = _APP_META_EMAIL,
        confirmed: bool = True,
        phone: str | None = None,
        banned_until: float | None = None,
        deleted_at: float | None = None,
        anonymous: bool = False,
        times: tuple[float, float, float | None] | None = None,
    ) -> str:
        created, updated, last = times or self.times()
        confirmed_at = _ts(created + 60 + self.rng.random() * 3600) if confirmed and email else None
        return _line(
            (
                _INSTANCE_ID,
                user_id,
                "authenticated",
                "authenticated",
                email,
                password_hash,
                confirmed_at,
                _ts(created) if email else None,
                _ts(last) if last is not None else None,
                app_meta,
                user_meta,
                "f",
                _ts(created),
                _ts(updated),
                phone,
                _ts(created + 30) if phone else None,
                _ts(banned_until) if banned_until is not None else None,
                _ts(deleted_at) if deleted_at is not None else None,
                "t" if anonymous else "f",
            )
        )

    def email_identity(self, user_id: str, email: str, *, verified: bool, created: float) -> str:
        data = {"sub": user_id, "email": email, "email_verified": verified, "phone_verified": False}
        return self.identity_line(user_id, "email", user_id, _json(data), created)

    def oauth_identity(self, user_id: str, email: str, name: str, provider: str, created: float) -> str:
        seq = self.next_seq()
        if provider == "google":
            account_id = str(self.google_base + seq)
            data: dict[str, Any] = {
                "iss": "https://accounts.google.com",
                "sub": account_id,
                "name": name,
                "email": email,
                "picture": f"https://lh3.googleusercontent.com/a/{account_id}=s96-c",
                "full_name": name,
                "avatar_url": f"https://lh3.googleusercontent.com/a/{account_id}=s96-c",
                "provider_id": account_id,
                "email_verified": True,
                "phone_verified": False,
            }
        else:
            account_id = str(self.github_base + seq)
            handle = name.lower().replace(" ", "-").replace("'", "")
            data = {
                "iss": "https://api.github.com",
                "sub": account_id,
                "name": name,
                "email": email,
                "user_name": handle,
                "full_name": name,
                "avatar_url": f"https://avatars.githubusercontent.com/u/{account_id}?v=4",
                "provider_id": account_id,
                "email_verified": True,
                "phone_verified": False,
                "preferred_username": handle,
            }
        self.manifest.oauth_accounts += 1
        return self.identity_line(user_id, provider, account_id, _json(data), created)

    def identity_line(self, user_id: str, provider: str, provider_id: str, data: str, created: float) -> str:
        at = _ts(created)
        return _line((provider_id, user_id, data, provider, at, at, at, _uuid4(self.rng)))

    def name(self) -> tuple[str, str]:
        return self.rng.choice(_FIRST_NAMES), self.rng.choice(_LAST_NAMES)

    def password(self) -> tuple[str, str]:
        return self.pool[self.rng.randrange(len(self.pool))]

    # -- whole users

    def email_user(
        self,
        chunk: _Chunk,
        case: str,
        email: str,
        *,
        user_meta: str | _Default | None = _Default.META,
        confirmed: bool = True,
        banned_until: float | None = None,
        deleted_at: float | None = None,
    ) -> None:
        """An email + password user with its `email` identity; its credential goes to edge_credentials."""
        user_id = _uuid4(self.rng)
        first, last = self.name()
        password, hashed = self.password()
        times = self.times()
        chunk.users.append(
            self.user_line(
                user_id,
                email=email,
                password_hash=hashed,
                user_meta=self.user_meta(first, last) if user_meta is _Default.META else user_meta,
                confirmed=confirmed,
                banned_until=banned_until,
                deleted_at=deleted_at,
                times=times,
            )
        )
        chunk.identities.append(self.email_identity(user_id, email, verified=confirmed, created=times[0]))
        self.manifest._add(case, user_id)
        self.manifest.edge_credentials.setdefault(case, []).append(Credential(user_id, email, password))

    def edge_chunk(self) -> _Chunk:
        chunk = _Chunk()
        rng, now = self.rng, self.now

        for local, domain in (("Jane.Doe", "gmail.com"), ("Bob.SMITH", "outlook.com"), ("Ana.Lopez", "acme.io")):
            for email in (f"{local}@{domain}", f"{local.lower()}@{domain}"):
                self.email_user(chunk, "case_duplicate", email)

        for k in range(EDGE_CASES["soft_deleted"]):
            self.email_user(
                chunk,
                "soft_deleted",
                f"gone{k}.{rng.getrandbits(24):06x}@yahoo.com",
                deleted_at=now - (k + 1) * 7 * _DAY_S,
            )
        for k in range(EDGE_CASES["banned"]):
            self.email_user(
                chunk,
                "banned",
                f"banned{k}.{rng.getrandbits(24):06x}@gmail.com",
                banned_until=now + (k + 1) * 30 * _DAY_S,
            )
        for k in range(EDGE_CASES["ban_expired"]):
            self.email_user(
                chunk,
                "ban_expired",
                f"paroled{k}.{rng.getrandbits(24):06x}@icloud.com",
                banned_until=now - (k + 1) * 30 * _DAY_S,
            )
        for k in range(EDGE_CASES["unconfirmed"]):
            self.email_user(chunk, "unconfirmed", f"pending{k}.{rng.getrandbits(24):06x}@proton.me", confirmed=False)

        for _ in range(EDGE_CASES["anonymous"]):
            user_id = _uuid4(rng)
            chunk.users.append(
                self.user_line(
                    user_id,
                    email=None,
                    password_hash=None,
                    user_meta="{}",
                    app_meta="{}",
                    confirmed=False,
                    anonymous=True,
                )
            )
            self.manifest._add("anonymous", user_id)

        for _ in range(EDGE_CASES["phone_only"]):
            user_id = _uuid4(rng)
            phone = str(self.phone_base + self.next_seq())
            times = self.times()
            chunk.users.append(
                self.user_line(
                    user_id, email=None, password_hash=self.password()[1], user_meta="{}",
                    app_meta='{"provider": "phone", "providers": ["phone"]}', phone=phone, times=times,
                )
            )  # fmt: skip
            data = {"sub": user_id, "phone": phone, "email_verified": False, "phone_verified": True}
            chunk.identities.append(self.identity_line(user_id, "phone", user_id, _json(data), times[0]))
            self.manifest._add("phone_only", user_id)

        for k in range(EDGE_CASES["oauth_only"]):
            user_id = _uuid4(rng)
            first, last = self.name()
            email = f"{_ascii(first)}.{_ascii(last)}.{k}{rng.getrandbits(16):04x}@gmail.com"
            times = self.times()
            meta = {
                "full_name": f"{first} {last}",
                "avatar_url": "https://lh3.googleusercontent.com/a/x",
                "email_verified": True,
            }
            # GoTrue stored '' (not NULL) as the password of OAuth sign-ups for years.
            chunk.users.append(
                self.user_line(
                    user_id, email=email, password_hash="", user_meta=_json(meta),
                    app_meta='{"provider": "google", "providers": ["google"]}', times=times,
                )
            )  # fmt: skip
            chunk.identities.append(self.oauth_identity(user_id, email, f"{first} {last}", "google", times[0]))
            self.manifest._add("oauth_only", user_id)

        odd_metadata: list[str | None] = [
            _json("just a string"),
            _json([1, "two", {"three": 3}]),
            "null",  # JSON null, not SQL NULL
            None,  # SQL NULL: rows inserted by hand often have no metadata at all
            _json({"full_name": "Zoë Ø'Brien-Łukasz 👩🏽‍💻", "display_name": "ليلى حداد", "hebrew": "שָׁלוֹם"}),
            _json({"full_name": "N" * 5000}),
            _json({"full_name": "Tab\there\nnew line\r\x01\x07\x1b[31mred\x7f", "note": 'back\\slash "quoted"'}),
        ]
        for k, odd in enumerate(odd_metadata):
            self.email_user(chunk, "odd_metadata", f"odd{k}.{rng.getrandbits(24):06x}@fastmail.com", user_meta=odd)

        for k in range(EDGE_CASES["huge_metadata"]):
            items = [
                {"id": j, "label": f"preference-{j}", "value": "x" * 64, "enabled": j % 2 == 0} for j in range(2700)
            ]
            huge = _json({"full_name": f"Heavy User {k}", "preferences": items})  # ~300 KB
            self.email_user(chunk, "huge_metadata", f"heavy{k}.{rng.getrandbits(24):06x}@outlook.com", user_meta=huge)

        for email in ("not-an-email", "a@b", "spaces in@x.com"):
            self.email_user(chunk, "invalid_email", email)

        for _ in range(EDGE_CASES["missing_email"]):
            user_id = _uuid4(rng)
            first, last = self.name()
            chunk.users.append(
                self.user_line(
                    user_id,
                    email=None,
                    password_hash=self.password()[1],
                    user_meta=self.user_meta(first, last),
                    confirmed=False,
                )
            )
            self.manifest._add("missing_email", user_id)

        for email in ("test.user1@company.com", "qa+test2@company.com", "TestUser3@company.com"):
            self.email_user(chunk, "test_user", email)

        self.email_user(chunk, "uppercase_email", "Mixed.Case.PERSON@Example.COM")
        return chunk

    def normal_chunks(
        self, start: int, count: int, *, record_ids: bool, sample_every: int, sample_size: int
    ) -> Iterator[_Chunk]:
        """The bulk of the users; the hot loop of a million-user run, hence the local aliases."""
        rng, now, pool, manifest = self.rng, self.now, self.pool, self.manifest
        random_, getrandbits = rng.random, rng.getrandbits
        n_first, n_last, n_domains, n_pool = len(_FIRST_NAMES), len(_LAST_NAMES), len(_DOMAINS), len(pool)
        metas: dict[tuple[int, int, int], str] = {}
        chunk = _Chunk()
        for i in range(start, start + count):
            user_id = _uuid4(rng)
            fi, li, shape = int(random_() * n_first), int(random_() * n_last), int(random_() * 5)
            meta = metas.get((fi, li, shape))
            if meta is None:
                meta = metas[fi, li, shape] = _field(_user_meta(_FIRST_NAMES[fi], _LAST_NAMES[li], shape))
            email = f"user{i}.{getrandbits(24):06x}@{_DOMAINS[int(random_() * n_domains)]}"
            password, hashed = pool[int(random_() * n_pool)]
            created = now - random_() * _THREE_YEARS_S
            span = now - created
            last_seen = created + random_() * span if random_() < 0.85 else None
            updated = created + random_() * span
            if last_seen is not None and last_seen > updated:
                updated = last_seen
            created_s = _ts(created)
            app_meta = _APP_META_EMAIL
            oauth_line = None
            if random_() < 0.10:
                provider = "google" if random_() < 0.6 else "github"
                app_meta = f'{{"provider": "email", "providers": ["email", "{provider}"]}}'
                name = f"{_FIRST_NAMES[fi]} {_LAST_NAMES[li]}"
                oauth_line = self.oauth_identity(user_id, email, name, provider, created + random_() * span)
            chunk.users.append(
                f"{_INSTANCE_ID}\t{user_id}\tauthenticated\tauthenticated\t{email}\t{hashed}\t"
                f"{_ts(created + 60 + random_() * 3600)}\t{created_s}\t"
                f"{_NULL if last_seen is None else _ts(last_seen)}\t{app_meta}\t{meta}\tf\t"
                f"{created_s}\t{_ts(updated)}\t\\N\t\\N\t\\N\t\\N\tf\n"
            )
            data = f'{{"sub": "{user_id}", "email": "{email}", "email_verified": true, "phone_verified": false}}'
            chunk.identities.append(
                f"{user_id}\t{user_id}\t{data}\temail\t{created_s}\t{created_s}\t{created_s}\t{_uuid4(rng)}\n"
            )
            if oauth_line is not None:
                chunk.identities.append(oauth_line)
            manifest._add("normal", user_id, listed=record_ids)
            if (i - start) % sample_every == 0 and len(manifest.credentials) < sample_size:
                manifest.credentials.append(Credential(user_id, email, password))
            if len(chunk.users) >= _CHUNK:
                yield chunk
                chunk = _Chunk()
        if chunk.users:
            yield chunk


def generate_supabase_users(
    conninfo: str,
    n: int,
    *,
    seed: int = 0,
    edge_cases: bool = True,
    password_pool_size: int = 32,
    bcrypt_rounds: int = 10,
    credentials_sample: int = 20,
    record_normal_ids: bool | None = None,
    reference_time: datetime,
) -> Manifest:
    """Write `n` users (edge cases included) into `auth.users` / `auth.identities` of an existing schema.

    Parameters
    ----------
    n: total users written; with `edge_cases` it must be at least ``sum(EDGE_CASES.values())``.
    seed: same seed, same ids, emails and passwords (timestamps follow `reference_time`).
    record_normal_ids: list every "normal" id in the manifest; by default only up to
        NORMAL_IDS_LISTED_UP_TO users (they are always counted in `Manifest.counts`).
    reference_time: "now" for timestamps (created over the 3 years before it, bans 30-90 days either
        side of it). Required: data judged against a clock must say which instant it was made for (a
        test pins one; the demo passes the clock it migrates with).

    All in one transaction: a failure writes nothing. Into empty tables the indexes are rebuilt once
    after the load (fast path); into filled ones rows go in as usual. Edge-case emails are fixed, so
    a second run needs `edge_cases=False` and another seed.
    """
    edge_total = sum(EDGE_CASES.values()) if edge_cases else 0
    if n < edge_total:
        raise ValueError(f"n={n} is smaller than the {edge_total} edge-case users; pass edge_cases=False")
    manifest = Manifest(reference_time=reference_time)
    factory = _UserFactory(
        seed=seed,
        now=_reference_epoch(reference_time),
        pool=_password_pool(seed, password_pool_size, bcrypt_rounds),
        manifest=manifest,
    )
    normal = n - edge_total
    record_ids = normal <= NORMAL_IDS_LISTED_UP_TO if record_normal_ids is None else record_normal_ids

    def chunks() -> Iterator[_Chunk]:
        if edge_cases:
            yield factory.edge_chunk()
        yield from factory.normal_chunks(
            1,
            normal,
            record_ids=record_ids,
            sample_every=max(1, normal // max(1, credentials_sample)),
            sample_size=credentials_sample,
        )

    users_copy = _copy_statement("auth.users", _USER_COLUMNS)
    identities_copy = _copy_statement("auth.identities", _IDENTITY_COLUMNS)
    # One transaction: a failed run leaves nothing behind, and the index dance below stays invisible.
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        with _indexes_deferred(conn, ("auth.identities", "auth.users")):
            for chunk in _produce(chunks):
                with cur.copy(users_copy, writer=QueuedLibpqWriter(cur)) as copy:
                    copy.write("".join(chunk.users))
                with cur.copy(identities_copy, writer=QueuedLibpqWriter(cur)) as copy:
                    copy.write("".join(chunk.identities))
        # Fresh statistics, so whatever reads these tables next gets sane plans before autovacuum runs.
        cur.execute("ANALYZE auth.users, auth.identities")
    return manifest


# ------------------------------------------------------------------------------------------- profiles


def generate_profiles(
    conninfo: str,
    n: int,
    *,
    seed: int = 0,
    edge_cases: bool = True,
    with_password_hash: bool = False,
    password_pool_size: int = 32,
    bcrypt_rounds: int = 10,
    credentials_sample: int = 20,
    record_normal_ids: bool | None = None,
    reference_time: datetime,
) -> Manifest:
    """Write `n` rows (edge cases included) into the legacy `public.profiles` of an existing schema.

    With `with_password_hash` the table must have the column (``create_profiles_schema(...,
    with_password_hash=True)``) and the manifest carries sample credentials; without it, none.
    """
    edge_total = sum(PROFILE_EDGE_CASES.values()) if edge_cases else 0
    if n < edge_total:
        raise ValueError(f"n={n} is smaller than the {edge_total} edge-case rows; pass edge_cases=False")
    rng = random.Random(f"profiles:{seed}")
    now = _reference_epoch(reference_time)
    pool = _password_pool(seed, password_pool_size, bcrypt_rounds) if with_password_hash else ()
    manifest = Manifest(reference_time=reference_time)
    normal = n - edge_total
    record_ids = normal <= NORMAL_IDS_LISTED_UP_TO if record_normal_ids is None else record_normal_ids
    sample_every = max(1, normal // max(1, credentials_sample))
    columns = (*_PROFILE_COLUMNS, "password_hash") if with_password_hash else _PROFILE_COLUMNS

    def row(
        case: str,
        email: str | None,
        first: str | None,
        last: str | None,
        *,
        username: str | None = None,
        avatar: str | None = None,
        listed: bool = True,
    ) -> tuple[str, str, str | None]:
        user_id = _uuid4(rng)
        created = now - rng.random() * _THREE_YEARS_S
        updated = created + rng.random() * (now - created)
        if username is None and first and last:
            username = f"{first}{last}".lower().replace("'", "").replace(" ", "") + str(rng.randrange(100))
        if avatar is None:
            avatar = f"https://cdn.acme.io/avatars/{rng.getrandbits(64):016x}.png"
        values: tuple[str | None, ...] = (user_id, email, username, first, last, avatar, _ts(created), _ts(updated))
        password, hashed = pool[rng.randrange(len(pool))] if pool else ("", "")
        if with_password_hash:
            values = (*values, hashed)
        manifest._add(case, user_id, listed=listed)
        return _line(values), user_id, password if with_password_hash else None

    def edges() -> list[str]:
        lines: list[str] = []
        for email in ("not-an-email", "a@b", "spaces in@x.com"):
            lines.append(row("invalid_email", email, rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES))[0])
        for _ in range(PROFILE_EDGE_CASES["missing_email"]):
            lines.append(row("missing_email", None, rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES))[0])
        for k, avatar in enumerate(("not a url", "javascript:alert(1)", "", "http://")):
            lines.append(
                row("bad_avatar_url", f"avatar{k}.{rng.getrandbits(24):06x}@yahoo.com", "Ada", "Byron", avatar=avatar)[
                    0
                ]
            )
        for k, (first, last) in enumerate((("john", "doe"), ("maría", "de la cruz"), ("lee", "o'neil"))):
            lines.append(
                row("lowercase_names", f"{first[:3].lower()}{k}.{rng.getrandbits(24):06x}@gmail.com", first, last)[0]
            )
        for email in ("test.user1@company.com", "qa+test2@company.com", "TestUser3@company.com"):
            lines.append(row("test_user", email, "Quality", "Assurance", username=email.split("@")[0])[0])
        return lines

    copy_statement = _copy_statement("public.profiles", columns)
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        with cur.copy(copy_statement, writer=QueuedLibpqWriter(cur)) as copy:
            if edge_cases:
                copy.write("".join(edges()))
            lines: list[str] = []
            for i in range(1, normal + 1):
                first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
                local = f"{_ascii(first)}.{_ascii(last)}"
                email = f"{local}{i}@{_DOMAINS[rng.randrange(len(_DOMAINS))]}"
                line, user_id, password = row("normal", email, first, last, listed=record_ids)
                lines.append(line)
                if (
                    password is not None
                    and (i - 1) % sample_every == 0
                    and len(manifest.credentials) < credentials_sample
                ):
                    manifest.credentials.append(Credential(user_id, email, password))
                if len(lines) >= _CHUNK:
                    copy.write("".join(lines))
                    lines.clear()
            if lines:
                copy.write("".join(lines))
        cur.execute("ANALYZE public.profiles")
    return manifest
