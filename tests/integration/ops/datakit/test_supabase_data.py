"""The generated source data is what the migration will meet: GoTrue-shaped rows, every edge case, known passwords."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import bcrypt
import psycopg
import pytest

from auth_migration_ops.datakit.supabase_data import (
    EDGE_CASES,
    PROFILE_EDGE_CASES,
    Manifest,
    create_profiles_schema,
    create_supabase_schema,
    generate_profiles,
    generate_supabase_users,
)
from tests.integration.plugins.postgres import create_database, database_url, drop_database
from tests.reference_time import REFERENCE_SHIFTS, REFERENCE_TIME

N = 2_000
NOW = REFERENCE_TIME
# The reference document's own filter for a migratable email.
SEED_EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


def rows(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params or None).fetchall()


def scalar(url: str, query: str, *params: Any) -> Any:
    return rows(url, query, *params)[0][0]


def users_of(url: str, manifest: Manifest, case: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "SELECT * FROM auth.users WHERE id = ANY(%s::uuid[])", (manifest.ids_by_case[case],)
        ).fetchall()


def schema_snapshot(url: str) -> list[tuple[Any, ...]]:
    return rows(
        url,
        """
        SELECT 'index', indexname, indexdef, obj_description(format('%I.%I', schemaname, indexname)::regclass)
        FROM pg_indexes WHERE schemaname = 'auth'
        UNION ALL
        SELECT 'constraint', conname, pg_get_constraintdef(oid), NULL
        FROM pg_constraint WHERE connamespace = 'auth'::regnamespace
        ORDER BY 1, 2
        """,
    )


@pytest.fixture(scope="module")
def generated() -> Iterator[tuple[str, Manifest]]:
    """One database loaded with N users and every edge case, shared by the read-only tests below."""
    name = create_database("supabase_gen")
    url = database_url(name)
    try:
        create_supabase_schema(url)
        yield url, generate_supabase_users(url, N, seed=7, reference_time=NOW)
    finally:
        drop_database(name)


# ------------------------------------------------------------------------------------------- schema


def test_supabase_schema_can_be_created_twice(database: str) -> None:
    create_supabase_schema(database)
    create_supabase_schema(database)

    columns = {
        r[0] for r in rows(database, "SELECT column_name FROM information_schema.columns WHERE table_schema = 'auth'")
    }
    assert {
        "encrypted_password",
        "raw_user_meta_data",
        "is_anonymous",
        "banned_until",
        "deleted_at",
        "provider_id",
    } <= columns


def test_supabase_email_index_is_case_sensitive_like_gotrue(supabase_db: str) -> None:
    insert = "INSERT INTO auth.users (id, email) VALUES (gen_random_uuid(), %s)"
    with psycopg.connect(supabase_db) as conn:
        conn.execute(insert, ("Jane.Doe@x.com",))
        conn.execute(insert, ("jane.doe@x.com",))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, ("jane.doe@x.com",))


def test_profiles_schema_can_be_created_twice_with_and_without_password_hash(database: str) -> None:
    create_profiles_schema(database)
    create_profiles_schema(database)
    create_profiles_schema(database, with_password_hash=True)
    create_profiles_schema(database, with_password_hash=True)

    query = "SELECT column_name FROM information_schema.columns WHERE table_name = 'profiles' ORDER BY ordinal_position"
    columns = [name for (name,) in rows(database, query)]
    assert columns == [
        "id",
        "email",
        "username",
        "first_name",
        "last_name",
        "avatar_url",
        "created_at",
        "updated_at",
        "password_hash",
    ]


# --------------------------------------------------------------------------------------- supabase users


def test_writes_exactly_n_users_with_unique_ids(generated: tuple[str, Manifest]) -> None:
    url, manifest = generated
    all_ids = [i for ids in manifest.ids_by_case.values() for i in ids]

    assert manifest.total == N
    assert scalar(url, "SELECT count(*) FROM auth.users") == N
    assert len(set(all_ids)) == N
    assert {str(r[0]) for r in rows(url, "SELECT id FROM auth.users")} == set(all_ids)


def test_every_edge_case_is_present_with_its_fixed_count(generated: tuple[str, Manifest]) -> None:
    _, manifest = generated

    assert {case: manifest.counts[case] for case in EDGE_CASES} == EDGE_CASES
    assert manifest.counts["normal"] == N - sum(EDGE_CASES.values())
    assert sum(manifest.counts.values()) == N


def test_each_email_user_has_exactly_one_email_identity(generated: tuple[str, Manifest]) -> None:
    url, _ = generated
    per_user = rows(
        url,
        """
        SELECT u.email IS NOT NULL AND u.raw_app_meta_data ->> 'provider' = 'email', count(i.id)
        FROM auth.users u LEFT JOIN auth.identities i ON i.user_id = u.id AND i.provider = 'email'
        GROUP BY u.id
        """,
    )

    assert {count for email_user, count in per_user if email_user} == {1}
    assert {count for email_user, count in per_user if not email_user} == {0}  # OAuth-only, phone, anonymous
    mismatched = "SELECT count(*) FROM auth.identities WHERE provider = 'email' AND provider_id <> user_id::text"
    assert scalar(url, mismatched) == 0


def test_oauth_accounts_counts_the_google_and_github_identities(generated: tuple[str, Manifest]) -> None:
    url, manifest = generated
    by_provider = dict(rows(url, "SELECT provider, count(*) FROM auth.identities GROUP BY provider"))

    assert manifest.oauth_accounts == by_provider["google"] + by_provider["github"]
    # About one normal user in ten also signs in with Google or GitHub.
    assert 0.05 * N < manifest.oauth_accounts < 0.15 * N
    oauth = (
        "SELECT count(*) FROM auth.identities"
        " WHERE provider IN ('google', 'github') AND identity_data->>'sub' = provider_id"
    )
    assert scalar(url, oauth) == manifest.oauth_accounts


def test_sample_credentials_verify_against_the_stored_gotrue_hashes(generated: tuple[str, Manifest]) -> None:
    url, manifest = generated
    assert len(manifest.credentials) == 20

    for credential in manifest.credentials:
        email, stored = rows(url, "SELECT email, encrypted_password FROM auth.users WHERE id = %s", credential.user_id)[
            0
        ]
        assert email == credential.email
        assert stored.startswith("$2a$10$")
        assert bcrypt.checkpw(credential.password.encode(), stored.encode())
        assert not bcrypt.checkpw(b"wrong-password", stored.encode())


def test_credentials_never_show_the_password_in_repr(generated: tuple[str, Manifest]) -> None:
    _, manifest = generated
    credential = manifest.credentials[0]

    assert credential.password not in repr(credential)


def test_normal_users_are_confirmed_email_users_whose_address_never_contains_test(
    generated: tuple[str, Manifest],
) -> None:
    url, manifest = generated
    normal = users_of(url, manifest, "normal")

    assert len(normal) == manifest.counts["normal"]
    assert all(SEED_EMAIL_RE.match(u["email"]) and "test" not in u["email"].lower() for u in normal)
    assert all(u["email"] == u["email"].lower() for u in normal)
    assert all(u["email_confirmed_at"] is not None and u["encrypted_password"].startswith("$2a$10$") for u in normal)
    assert all(u["raw_app_meta_data"]["provider"] == "email" for u in normal)
    shapes = {tuple(sorted(u["raw_user_meta_data"])) for u in normal}
    assert shapes == {("full_name",), ("name",), ("first_name", "last_name"), ("user_name",), ()}


def test_token_columns_are_empty_strings_not_null(generated: tuple[str, Manifest]) -> None:
    url, _ = generated

    assert (
        scalar(
            url,
            """
        SELECT count(*) FROM auth.users
        WHERE confirmation_token IS DISTINCT FROM '' OR recovery_token IS DISTINCT FROM ''
           OR email_change_token_new IS DISTINCT FROM '' OR email_change IS DISTINCT FROM ''
           OR email_change_token_current IS DISTINCT FROM '' OR phone_change_token IS DISTINCT FROM ''
           OR reauthentication_token IS DISTINCT FROM ''
        """,
        )
        == 0
    )


def test_timestamps_span_three_years_and_updated_never_precedes_created(generated: tuple[str, Manifest]) -> None:
    url, _ = generated
    oldest, newest, backwards = rows(
        url, "SELECT min(created_at), max(created_at), count(*) FILTER (WHERE updated_at < created_at) FROM auth.users"
    )[0]

    assert NOW - timedelta(days=3 * 365 + 1) <= oldest < NOW - timedelta(days=2 * 365)
    assert newest <= NOW
    assert backwards == 0


def test_case_duplicate_pairs_differ_only_in_case(generated: tuple[str, Manifest]) -> None:
    url, manifest = generated
    ids = manifest.ids_by_case["case_duplicate"]
    emails = dict(rows(url, "SELECT id::text, email FROM auth.users WHERE id = ANY(%s::uuid[])", ids))

    pairs = [(emails[a], emails[b]) for a, b in zip(ids[::2], ids[1::2], strict=True)]
    assert all(a != b and a.lower() == b.lower() for a, b in pairs)
    assert len({a.lower() for a, _ in pairs}) == 3
    # Each pair collides with nobody else once lowercased.
    assert (
        scalar(url, "SELECT count(*) FROM auth.users WHERE lower(email) = ANY(%s)", [a.lower() for a, _ in pairs]) == 6
    )


def test_account_state_edge_cases(generated: tuple[str, Manifest]) -> None:
    url, manifest = generated
    # Bans are judged against the instant the data was made for, never today's clock (which turned
    # this test red on 2026-12-01, the day the first generated ban ended).
    assert manifest.reference_time == NOW

    assert all(u["deleted_at"] is not None for u in users_of(url, manifest, "soft_deleted"))
    assert all(u["banned_until"] > NOW for u in users_of(url, manifest, "banned"))
    assert all(u["banned_until"] < NOW for u in users_of(url, manifest, "ban_expired"))
    assert all(
        u["email_confirmed_at"] is None and u["confirmed_at"] is None for u in users_of(url, manifest, "unconfirmed")
    )
    assert scalar(url, "SELECT count(*) FROM auth.users WHERE deleted_at IS NOT NULL") == EDGE_CASES["soft_deleted"]


def test_users_without_an_email_or_a_password(generated: tuple[str, Manifest]) -> None:
    url, manifest = generated

    anonymous = users_of(url, manifest, "anonymous")
    assert all(
        u["is_anonymous"] and u["email"] is None and u["phone"] is None and u["encrypted_password"] is None
        for u in anonymous
    )

    phone_only = users_of(url, manifest, "phone_only")
    assert all(
        u["email"] is None and u["phone"] and u["phone_confirmed_at"] and u["encrypted_password"].startswith("$2a$")
        for u in phone_only
    )

    oauth_only = users_of(url, manifest, "oauth_only")
    assert all(u["encrypted_password"] in ("", None) and u["email_confirmed_at"] is not None for u in oauth_only)
    providers = rows(
        url,
        "SELECT user_id::text, array_agg(provider) FROM auth.identities WHERE user_id = ANY(%s::uuid[]) GROUP BY 1",
        manifest.ids_by_case["oauth_only"],
    )
    assert sorted(p for _, p in providers) == [["google"]] * EDGE_CASES["oauth_only"]

    missing = users_of(url, manifest, "missing_email")
    assert all(u["email"] is None and u["phone"] is None and not u["is_anonymous"] for u in missing)


def test_odd_and_huge_metadata(generated: tuple[str, Manifest]) -> None:
    url, manifest = generated
    odd = rows(
        url,
        "SELECT jsonb_typeof(raw_user_meta_data), raw_user_meta_data FROM auth.users WHERE id = ANY(%s::uuid[])",
        manifest.ids_by_case["odd_metadata"],
    )
    kinds = sorted(str(kind) for kind, _ in odd)
    assert kinds == ["None", "array", "null", "object", "object", "object", "string"]
    names = [meta["full_name"] for kind, meta in odd if kind == "object"]
    assert any(len(name) == 5000 for name in names)
    assert any("👩🏽‍💻" in name for name in names)
    assert any("\t" in name and "\x01" in name and "\n" in name for name in names)

    sizes = [len(str(u["raw_user_meta_data"])) for u in users_of(url, manifest, "huge_metadata")]
    assert all(size > 250_000 for size in sizes)


def test_email_shape_edge_cases(generated: tuple[str, Manifest]) -> None:
    url, manifest = generated

    invalid = [u["email"] for u in users_of(url, manifest, "invalid_email")]
    assert sorted(invalid) == ["a@b", "not-an-email", "spaces in@x.com"]
    assert not any(SEED_EMAIL_RE.match(e) for e in invalid)

    assert all("test" in u["email"].lower() for u in users_of(url, manifest, "test_user"))

    (upper,) = users_of(url, manifest, "uppercase_email")
    assert upper["email"] != upper["email"].lower()
    assert scalar(url, "SELECT count(*) FROM auth.users WHERE lower(email) = lower(%s)", upper["email"]) == 1
    (credential,) = manifest.edge_credentials["uppercase_email"]
    assert bcrypt.checkpw(credential.password.encode(), upper["encrypted_password"].encode())


def test_same_seed_gives_the_same_ids_and_another_seed_others(make_database: Callable[[], str]) -> None:
    manifests = []
    for seed in (3, 3, 4):
        url = make_database()
        create_supabase_schema(url)
        manifests.append(generate_supabase_users(url, 200, seed=seed, reference_time=REFERENCE_TIME))

    first, again, other = manifests
    assert first.ids_by_case == again.ids_by_case
    assert [c.email for c in first.credentials] == [c.email for c in again.credentials]
    assert set(first.ids_by_case["normal"]).isdisjoint(other.ids_by_case["normal"])


def test_ids_are_random_so_id_order_is_not_creation_order(generated: tuple[str, Manifest]) -> None:
    url, _ = generated
    by_id = [r[0] for r in rows(url, "SELECT created_at FROM auth.users ORDER BY id")]

    assert by_id != sorted(by_id)


def test_n_smaller_than_the_edge_cases_is_refused(supabase_db: str) -> None:
    with pytest.raises(ValueError, match="edge-case"):
        generate_supabase_users(supabase_db, 10, reference_time=REFERENCE_TIME)

    assert generate_supabase_users(supabase_db, 10, edge_cases=False, reference_time=REFERENCE_TIME).counts == {
        "normal": 10
    }


def test_bulk_load_leaves_the_schema_exactly_as_created(supabase_db: str) -> None:
    before = schema_snapshot(supabase_db)

    generate_supabase_users(supabase_db, 500, seed=1, reference_time=REFERENCE_TIME)
    after_first = schema_snapshot(supabase_db)
    # A second load into non-empty tables takes the keep-the-indexes path.
    generate_supabase_users(supabase_db, 300, seed=2, edge_cases=False, reference_time=REFERENCE_TIME)

    assert after_first == before
    assert schema_snapshot(supabase_db) == before
    assert scalar(supabase_db, "SELECT count(*) FROM auth.users") == 800


def test_a_failed_load_writes_nothing(supabase_db: str) -> None:
    generate_supabase_users(supabase_db, 100, seed=5, edge_cases=False, reference_time=REFERENCE_TIME)

    with pytest.raises(psycopg.errors.UniqueViolation):
        generate_supabase_users(
            supabase_db, 100, seed=5, edge_cases=False, reference_time=REFERENCE_TIME
        )  # same ids again

    assert scalar(supabase_db, "SELECT count(*) FROM auth.users") == 100


# ------------------------------------------------------------------------------------------- profiles


def test_profiles_generator_writes_every_case(profiles_db: str) -> None:
    n = 300
    manifest = generate_profiles(profiles_db, n, seed=1, reference_time=REFERENCE_TIME)

    assert manifest.total == n == scalar(profiles_db, "SELECT count(*) FROM public.profiles")
    assert {case: manifest.counts[case] for case in PROFILE_EDGE_CASES} == PROFILE_EDGE_CASES
    assert manifest.credentials == []
    ids = [i for ids in manifest.ids_by_case.values() for i in ids]
    assert len(set(ids)) == n

    def column(case: str, name: str) -> list[Any]:
        return [
            r[0]
            for r in rows(
                profiles_db,
                f"SELECT {name} FROM public.profiles WHERE id = ANY(%s::uuid[])",
                manifest.ids_by_case[case],
            )
        ]

    assert all(SEED_EMAIL_RE.match(e) and "test" not in e for e in column("normal", "email"))
    assert not any(SEED_EMAIL_RE.match(e) for e in column("invalid_email", "email"))
    assert column("missing_email", "email") == [None] * PROFILE_EDGE_CASES["missing_email"]
    assert all("test" in e.lower() for e in column("test_user", "email"))
    assert not any(str(url).startswith("https://") for url in column("bad_avatar_url", "avatar_url"))
    assert all(first == first.lower() for first in column("lowercase_names", "first_name"))


def test_profiles_with_password_hash_carry_verifiable_credentials(profiles_db: str) -> None:
    create_profiles_schema(profiles_db, with_password_hash=True)

    manifest = generate_profiles(profiles_db, 200, seed=2, with_password_hash=True, reference_time=REFERENCE_TIME)

    assert len(manifest.credentials) == 20
    for credential in manifest.credentials:
        email, stored = rows(
            profiles_db, "SELECT email, password_hash FROM public.profiles WHERE id = %s", credential.user_id
        )[0]
        assert email == credential.email
        assert bcrypt.checkpw(credential.password.encode(), stored.encode())


def test_profiles_same_seed_same_ids(make_database: Callable[[], str]) -> None:
    manifests = []
    for _ in range(2):
        url = make_database()
        create_profiles_schema(url)
        manifests.append(generate_profiles(url, 100, seed=9, reference_time=REFERENCE_TIME))

    assert manifests[0].ids_by_case == manifests[1].ids_by_case


@pytest.mark.parametrize("shift", REFERENCE_SHIFTS, ids=lambda d: f"{d.days:+d}d")
def test_every_generated_time_follows_the_reference_time_wherever_it_lies(supabase_db: str, shift: timedelta) -> None:
    """The guard against a time bomb: moved a year either way, the data keeps its shape relative to the
    reference it was made for, so a test comparing it with the real clock would fail today."""
    reference = REFERENCE_TIME + shift
    manifest = generate_supabase_users(supabase_db, 150, seed=11, bcrypt_rounds=4, reference_time=reference)
    oldest, newest, future = rows(
        supabase_db,
        """SELECT min(created_at), max(greatest(created_at, updated_at, last_sign_in_at)),
                  count(*) FILTER (WHERE deleted_at > %s)
           FROM auth.users""",
        reference,
    )[0]
    banned = users_of(supabase_db, manifest, "banned")
    expired = users_of(supabase_db, manifest, "ban_expired")

    assert reference - timedelta(days=3 * 365 + 1) <= oldest
    assert newest <= reference
    assert future == 0
    assert banned and all(reference < u["banned_until"] <= reference + timedelta(days=100) for u in banned)
    assert expired and all(reference - timedelta(days=100) <= u["banned_until"] < reference for u in expired)
