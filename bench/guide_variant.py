"""Better-Auth's own "Migrating from Supabase" guide script, ported to Python: the bench's `guide` variant.

The script is the `migration.ts` of docs/content/docs/guides/supabase-migration-guide.mdx in
github.com/better-auth/better-auth, as it stands for Better-Auth 1.7 (the version of the bench's target
schema): the file at commit 52c47517a2 (2026-04-10), the last one before `feat(auth)!: scope accounts by
issuer` (dbd302e422) added an `issuer` column to its account insert for a schema 1.7 does not have. It
is a Node script (`pg`); this is our own code doing the same thing, step by step:

- one `SELECT COUNT(*) FROM auth.users`, then pages of `batchSize` (5,000) users read with
  `u.*, json_agg(i.* ORDER BY i.id)` over `auth.users LEFT JOIN auth.identities`, `GROUP BY u.id`,
  keyset `WHERE u.id > $1 ORDER BY u.id LIMIT $2`; the next page follows while a page is full;
- per user, its skip rules and nothing else: no email (and no phoneNumber plugin), `deleted_at` set,
  `banned_until` set (and no admin plugin; an expired ban too). Name and image from the metadata, then
  the first identity's data, then the email's local part; `userMetadata` / `appMetadata` when
  `Object.keys(...)` is non-empty; `invitedAt`, `lastSignInAt`;
- per page, one transaction on the target (`BEGIN`): one multi-row `INSERT INTO "user"` over the union
  of the page's fields `ON CONFLICT ("id") DO NOTHING` (chunks of 65,000 parameters: one statement for
  5,000 users), then one multi-row `INSERT INTO "account"` `ON CONFLICT ("id") DO NOTHING`, with a
  fresh random id per account (`generateId()`): a credential account per `email` identity (password
  `encrypted_password || null`), an OAuth account per identity of a configured social provider
  (`accountId` = `identity_data.sub || provider_id`). Any error: `ROLLBACK`, the whole page counts as
  failed, the next page follows. No tracking rows, no validation of emails or passwords.

Faithful to what `pg` sends: every parameter is text of unknown type (the server casts it to the
column's type), made as `pg`'s `prepareValue` makes it: a JSON object is `JSON.stringify`-ed, an
array becomes a Postgres array literal, a string goes as it is, a Date as local ISO time with
milliseconds. So a user whose `raw_user_meta_data` is a JSON string (`"just a string"`) or a JSON array
hands `jsonb` a text that is not JSON, the INSERT fails, and the guide rolls back that user's whole page
(its 5,000 users), as the Node script does. A re-run duplicates every account: `ON CONFLICT ("id")`
never fires for a fresh random id.

Configuration as the guide asks for the bench's data: email and password on, the social providers that
occur in the source (`github`, `google`), the guide's four `user.additionalFields` (`add_guide_columns`
adds the columns `npx auth migrate` would: jsonb, jsonb, timestamptz, timestamptz). No admin,
anonymous or phoneNumber plugin: the bench's target is Better-Auth's default schema, which our engine
writes too, so the branches only those plugins take (ban, role, anonymous flag, phone number, the
temporary email of phone-only users) are left out. The SSO steps of the guide are optional and need a
hand-made SAML mapping; they are left out too (the source has no `sso:` identities).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg.types.string import TextLoader

#: Where the algorithm comes from (bench/README.md cites it too).
GUIDE_SOURCE = (
    "github.com/better-auth/better-auth docs/content/docs/guides/supabase-migration-guide.mdx "
    "at 52c47517a2 (the migration.ts for Better-Auth 1.7, before the account `issuer` column)"
)

#: The guide's CONFIG.batchSize ("Recommended: 5000-10000").
GUIDE_BATCH_SIZE = 5000

#: The guide's limit on bind parameters per statement.
_MAX_PARAMS_PER_QUERY = 65000

#: The ids of the users our engine migrated, kept across the bench's TRUNCATEs (not a target table).
OURS_TABLE = "bench_ours_users"

#: `npx auth migrate` with the guide's `user.additionalFields` (type json -> jsonb, date -> timestamptz).
_GUIDE_COLUMNS = (
    ('"userMetadata"', "jsonb"),
    ('"appMetadata"', "jsonb"),
    ('"invitedAt"', "timestamptz"),
    ('"lastSignInAt"', "timestamptz"),
)

_READ_FIRST = """
SELECT
  u.*,
  COALESCE(
    json_agg(
      i.* ORDER BY i.id
    ) FILTER (WHERE i.id IS NOT NULL),
    '[]'::json
  ) as identities
FROM auth.users u
LEFT JOIN auth.identities i ON u.id = i.user_id

GROUP BY u.id
ORDER BY u.id ASC
LIMIT $1
"""

_READ_NEXT = """
SELECT
  u.*,
  COALESCE(
    json_agg(
      i.* ORDER BY i.id
    ) FILTER (WHERE i.id IS NOT NULL),
    '[]'::json
  ) as identities
FROM auth.users u
LEFT JOIN auth.identities i ON u.id = i.user_id
WHERE u.id > $1
GROUP BY u.id
ORDER BY u.id ASC
LIMIT $2
"""

# generateId(): 32 characters of [A-Za-z0-9] from crypto random bytes (Better-Auth's alphabet).
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_ID_TABLE = bytes(_ALPHABET[b % len(_ALPHABET)] for b in range(256))


def generate_id() -> str:
    """A fresh random 32-character id, as Better-Auth's `generateId()` makes one."""
    return os.urandom(32).translate(_ID_TABLE).decode("ascii")


@dataclass(frozen=True, slots=True)
class GuideConfig:
    """The guide's CONFIG and the parts of the Better-Auth config it reads (no plugins: see the module doc)."""

    batch_size: int = GUIDE_BATCH_SIZE
    resume_from_id: str | None = None
    social_providers: tuple[str, ...] = ("github", "google")


@dataclass(slots=True)
class GuideRun:
    """The guide's own counters (MigrationState) and where its time went."""

    seconds: float = 0.0
    total_users: int = 0
    pages: int = 0
    pages_failed: int = 0
    success: int = 0
    failure: int = 0
    skip: int = 0
    #: The guide keeps its first 100 errors: here each with its failed page's `(after_id, last_id]`.
    errors: list[dict[str, str | None]] = field(default_factory=list)
    #: Every failed page's `(after_id, last_id]` (after_id None: the first page).
    failed_ranges: list[tuple[str | None, str]] = field(default_factory=list)
    read_seconds: float = 0.0
    write_seconds: float = 0.0
    client_cpu_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("seconds", "read_seconds", "write_seconds", "client_cpu_seconds"):
            out[key] = round(out[key], 3)
        return out


# ------------------------------------------------------------------------------- JavaScript semantics


def _truthy(value: Any) -> bool:
    """JavaScript's truthiness of a JSON.parse / pg value: null, false, 0, NaN and "" are falsy."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, int | float):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True  # objects, arrays (even empty ones), Dates


def _prop(value: Any, key: str) -> Any:
    """`value?.[key]`: only a (parsed JSON) object has these properties; a string or an array has none."""
    return value.get(key) if isinstance(value, dict) else None


def _has_keys(value: Any) -> bool:
    """`Object.keys(value).length > 0`: an object's keys, an array's or a string's indexes."""
    return isinstance(value, dict | list | str) and len(value) > 0


def _js_number(text: str) -> int | float:
    """JSON.parse's number: a double, so `1.0` is 1 and prints as 1 (the read side parses with this)."""
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 1e21 else value


_JSON_DECODER = json.JSONDecoder(parse_float=_js_number)


def _json_loads(data: str | bytes) -> Any:
    return _JSON_DECODER.decode(data.decode() if isinstance(data, bytes) else data)


def _json_stringify(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _date_to_string(value: datetime) -> str:
    """pg's dateToString: ISO with milliseconds and the local offset (this process's zone)."""
    return value.astimezone().isoformat(timespec="milliseconds")


def _array_string(values: Sequence[Any]) -> str:
    """pg's arrayString: a Postgres array literal, every element quoted."""
    parts = []
    for item in values:
        if item is None:
            parts.append("NULL")
        elif isinstance(item, list):
            parts.append(_array_string(item))
        else:
            text = prepare_value(item)
            assert text is not None
            parts.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(parts) + "}"


def prepare_value(value: Any) -> str | None:
    """The text `pg` (node-postgres) sends for a JavaScript value, as its `prepareValue` makes it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _date_to_string(value)
    if isinstance(value, list):
        return _array_string(value)
    if isinstance(value, dict):
        return _json_stringify(value)
    return str(value)  # strings as they are; numbers as Number#toString prints the usual ones


# ------------------------------------------------------------------------------------ the algorithm

#: A page's users kept by the skip rules, each with its `userData`.
_Valid = list[tuple[Mapping[str, Any], dict[str, Any]]]


def _user_data(user: Mapping[str, Any]) -> dict[str, Any]:
    """processBatch's `userData` for one user (no admin, anonymous or phoneNumber plugin)."""
    meta = user["raw_user_meta_data"]
    identities = user["identities"] or []
    first = identities[0] if identities else None
    first_data = _prop(first, "identity_data")

    def name() -> Any:
        for key in ("name", "full_name", "username", "user_name"):
            if _truthy(_prop(meta, key)):
                return _prop(meta, key)
        for key in ("name", "full_name", "username", "preferred_username"):
            if _truthy(_prop(first_data, key)):
                return _prop(first_data, key)
        return str(user["email"]).split("@")[0]  # users without an email were skipped

    def image() -> Any:
        for key in ("avatar_url", "picture"):
            if _truthy(_prop(meta, key)):
                return _prop(meta, key)
        for key in ("avatar_url", "picture"):
            if _truthy(_prop(first_data, key)):
                return _prop(first_data, key)
        return None

    data: dict[str, Any] = {
        "id": user["id"],
        "email": user["email"],
        "emailVerified": _truthy(user["email_confirmed_at"]),
        "name": name(),
        "image": image(),
        "createdAt": user["created_at"],
        "updatedAt": user["updated_at"],
    }
    if _truthy(meta) and _has_keys(meta):
        data["userMetadata"] = meta
    app_meta = user["raw_app_meta_data"]
    if _truthy(app_meta) and _has_keys(app_meta):
        data["appMetadata"] = app_meta
    if _truthy(user["invited_at"]):
        data["invitedAt"] = user["invited_at"]
    if _truthy(user["last_sign_in_at"]):
        data["lastSignInAt"] = user["last_sign_in_at"]
    return data


def _skipped(user: Mapping[str, Any]) -> bool:
    """The guide's only filter (no phoneNumber, no admin plugin)."""
    if not _truthy(user["email"]) and not _truthy(user["phone"]):
        return True
    if not _truthy(user["email"]):
        return True  # no phoneNumber plugin
    if _truthy(user["deleted_at"]):
        return True
    return _truthy(user["banned_until"])  # no admin plugin: any ban, even an expired one


def _accounts(users: Iterable[Mapping[str, Any]], providers: Sequence[str]) -> list[tuple[Any, ...]]:
    """accountsData: (id, userId, providerId, accountId, password, createdAt, updatedAt) per identity."""
    rows: list[tuple[Any, ...]] = []
    for user in users:
        for identity in user["identities"] or []:
            provider = identity["provider"]
            if provider == "email":
                password = user["encrypted_password"] if _truthy(user["encrypted_password"]) else None
                created, updated = user["created_at"], user["updated_at"]
                rows.append((generate_id(), user["id"], "credential", user["id"], password, created, updated))
            if provider in providers:
                sub = _prop(identity["identity_data"], "sub")
                created = identity["created_at"] if identity["created_at"] is not None else user["created_at"]
                updated = identity["updated_at"] if identity["updated_at"] is not None else user["updated_at"]
                account_id = sub if _truthy(sub) else identity["provider_id"]
                rows.append((generate_id(), user["id"], provider, account_id, None, created, updated))
    return rows


def _placeholders(rows: int, width: int) -> str:
    out, n = [], 1
    for _ in range(rows):
        out.append("(" + ", ".join(f"${i}" for i in range(n, n + width)) + ")")
        n += width
    return ", ".join(out)


def _write_page(to_db: psycopg.Connection[Any], valid: _Valid, config: GuideConfig) -> None:
    """One page in one transaction: users, then accounts (the caller rolls back on any error)."""
    to_db.execute("BEGIN")
    fields: dict[str, None] = {}
    for _user, data in valid:
        fields.update(dict.fromkeys(data))
    names = list(fields)
    per_chunk = _MAX_PARAMS_PER_QUERY // len(names)
    columns = ", ".join(f'"{f}"' for f in names)
    for start in range(0, len(valid), per_chunk):
        chunk = valid[start : start + per_chunk]
        values = [prepare_value(data.get(f)) for _user, data in chunk for f in names]
        to_db.execute(
            f"""
            INSERT INTO "user" ({columns})
            VALUES {_placeholders(len(chunk), len(names))}
            ON CONFLICT ("id") DO NOTHING
          """,
            values,
            prepare=False,
        )
    accounts = _accounts((user for user, _data in valid), config.social_providers)
    per_chunk = _MAX_PARAMS_PER_QUERY // 7
    for start in range(0, len(accounts), per_chunk):
        chunk_rows = accounts[start : start + per_chunk]
        values = [prepare_value(v) for row in chunk_rows for v in row]
        to_db.execute(
            f"""
              INSERT INTO "account" ("id", "userId", "providerId", "accountId", "password", "createdAt", "updatedAt")
              VALUES {_placeholders(len(chunk_rows), 7)}
              ON CONFLICT ("id") DO NOTHING
            """,
            values,
            prepare=False,
        )
    to_db.execute("COMMIT")


def _connect(url: str) -> psycopg.Connection[dict[str, Any]]:
    """A `pg` Pool's connection: autocommit, `$n` placeholders as written, uuids as strings, JSON parsed."""
    conn = psycopg.connect(url, autocommit=True, row_factory=dict_row, cursor_factory=psycopg.RawCursor)
    conn.adapters.register_loader("uuid", TextLoader)
    set_json_loads(_json_loads, conn)
    return conn


def run_guide(url: str, config: GuideConfig | None = None) -> GuideRun:
    """migrateFromSupabase(): the whole source, page by page, into the target at `url` (source there too)."""
    config = config or GuideConfig()
    run = GuideRun()
    with _connect(url) as from_db, _connect(url) as to_db:
        cpu_started, started = time.process_time(), time.perf_counter()
        if config.resume_from_id:
            row = from_db.execute(
                "SELECT COUNT(*) as count FROM auth.users WHERE id > $1", [config.resume_from_id]
            ).fetchone()
        else:
            row = from_db.execute("SELECT COUNT(*) as count FROM auth.users").fetchone()
        run.total_users = int(row["count"]) if row else 0
        last_id = config.resume_from_id
        has_more = True
        while has_more:
            read_started = time.perf_counter()
            if last_id:
                batch = from_db.execute(_READ_NEXT, [last_id, str(config.batch_size)]).fetchall()
            else:
                batch = from_db.execute(_READ_FIRST, [str(config.batch_size)]).fetchall()
            run.read_seconds += time.perf_counter() - read_started
            has_more = len(batch) == config.batch_size
            if not batch:
                break
            run.pages += 1
            valid: _Valid = []
            for user in batch:
                if _skipped(user):
                    run.skip += 1
                    continue
                valid.append((user, _user_data(user)))
            if valid:
                write_started = time.perf_counter()
                try:
                    _write_page(to_db, valid, config)
                    run.success += len(valid)
                except psycopg.Error as exc:
                    to_db.execute("ROLLBACK")
                    run.failure += len(valid)
                    run.pages_failed += 1
                    run.failed_ranges.append((last_id, batch[-1]["id"]))
                    if len(run.errors) < 100:  # error.message, as the guide keeps it; DETAIL says which value
                        run.errors.append(
                            {
                                "after_id": last_id,
                                "last_id": batch[-1]["id"],
                                "error": exc.diag.message_primary or str(exc),
                                "detail": (exc.diag.message_detail or "")[:200] or None,
                            }
                        )
                run.write_seconds += time.perf_counter() - write_started
            last_id = batch[-1]["id"]
        run.seconds = time.perf_counter() - started
        run.client_cpu_seconds = time.process_time() - cpu_started
    return run


# --------------------------------------------------------------------------------- bench plumbing


def add_guide_columns(url: str) -> None:
    """The columns the guide's Better-Auth config adds (its `user.additionalFields`); it refuses to run without."""
    with psycopg.connect(url, autocommit=True) as conn:
        adds = ", ".join(f"ADD COLUMN IF NOT EXISTS {name} {kind}" for name, kind in _GUIDE_COLUMNS)
        conn.execute(f'ALTER TABLE "user" {adds}'.encode())


def drop_guide_columns(url: str) -> None:
    """Back to the default Better-Auth schema the other variants write."""
    with psycopg.connect(url, autocommit=True) as conn:
        drops = ", ".join(f"DROP COLUMN IF EXISTS {name}" for name, _kind in _GUIDE_COLUMNS)
        conn.execute(f'ALTER TABLE "user" {drops}'.encode())


def record_ours(url: str) -> int:
    """Keep the ids of the users our engine just migrated (outside the target, so TRUNCATE leaves them)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {OURS_TABLE}".encode())
        conn.execute(f'CREATE UNLOGGED TABLE {OURS_TABLE} AS SELECT id FROM "user"'.encode())
        conn.execute(f"ALTER TABLE {OURS_TABLE} ADD PRIMARY KEY (id)".encode())
        row = conn.execute(f"SELECT count(*) FROM {OURS_TABLE}".encode()).fetchone()
    assert row is not None
    return int(row[0])


def guide_counts(url: str, run: GuideRun) -> dict[str, int]:
    """What the guide left in the target, against the users our engine migrates.

    `duplicates` is the bench's count without the tracking term (the guide writes no tracking rows):
    (users - distinct ids) + (users - distinct lower(email)) + (accounts - distinct (providerId, accountId)).
    """
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            f"""SELECT (SELECT count(*) FROM "user"), (SELECT count(DISTINCT id) FROM "user"),
                       (SELECT count(DISTINCT lower(email)) FROM "user"),
                       (SELECT count(*) FROM account),
                       (SELECT count(*) FROM (SELECT DISTINCT "providerId", "accountId" FROM account) a),
                       (SELECT count(*) FROM {OURS_TABLE}),
                       (SELECT count(*) FROM "user" g JOIN {OURS_TABLE} o ON o.id = g.id)""".encode()
        ).fetchone()
        assert row is not None
        lost = 0
        for after_id, last_id in run.failed_ranges:
            hit = conn.execute(
                f"""SELECT count(*) FROM {OURS_TABLE}
                    WHERE (%s::uuid IS NULL OR id::uuid > %s::uuid) AND id::uuid <= %s::uuid""".encode(),
                (after_id, after_id, last_id),
            ).fetchone()
            lost += int(hit[0]) if hit else 0
    users, distinct_ids, distinct_emails, accounts, distinct_accounts, ours, of_ours = (int(v) for v in row)
    return {
        "users": users,
        "accounts": accounts,
        "ours_users": ours,
        "users_of_ours": of_ours,
        "ours_missing": ours - of_ours,
        "ours_lost_in_failed_pages": lost,
        "ours_skipped_by_guide_rules": ours - of_ours - lost,
        "users_not_ours": users - of_ours,
        "distinct_ids": distinct_ids,
        "distinct_emails": distinct_emails,
        "distinct_accounts": distinct_accounts,
        "duplicates": (users - distinct_ids) + (users - distinct_emails) + (accounts - distinct_accounts),
    }


def bench_guide(url: str, config: GuideConfig | None = None) -> dict[str, Any]:
    """The guide on an empty target, then a second time over its own output; figures for both runs.

    Needs `record_ours` first (the users our engine migrates) and an empty target.
    """
    add_guide_columns(url)
    try:
        first = run_guide(url, config)
        after_first = guide_counts(url, first)
        rerun = run_guide(url, config)
        after_rerun = guide_counts(url, rerun)
    finally:
        drop_guide_columns(url)
    return {
        "source": GUIDE_SOURCE,
        "page_size": (config or GuideConfig()).batch_size,
        "seconds": first.seconds,
        "run": first.as_dict(),
        "counts": after_first,
        "rerun": rerun.as_dict(),
        "rerun_counts": after_rerun,
        "rerun_seconds": rerun.seconds,
        "rerun_users_added": after_rerun["users"] - after_first["users"],
        "rerun_accounts_added": after_rerun["accounts"] - after_first["accounts"],
    }
