"""The ops dashboard in a real headless Chromium (Debian's, driven by Playwright) against `auth-migrate
local api` on the local stack with real data: it shows the database's numbers, a stored `<script>` shows
as text and never runs, and a rollout change made through its confirmation step reaches SSM and the audit.

DASHBOARD_SCREENSHOT=docs/dashboard.png keeps the screenshot the README shows."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from auth_migration.engine import start_migration
from auth_migration.engine.plan import StartRequest
from auth_migration_ops.local.api import LocalApi
from auth_migration_ops.local.stack import LocalStack
from tests.integration.plugins.engine import InlineEngine

CHROMIUM = "/usr/bin/chromium"
# Chromium's own background traffic is refused by this machine's closed network: keep it off.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
PASSWORD = "correct horse battery"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed (scripts/bootstrap)"),
]


@pytest.fixture
def local(make_database: Callable[[], str], better_auth_installed: None) -> Iterator[tuple[LocalStack, LocalApi]]:
    stack = LocalStack(environ={}, database_url=make_database(), log=lambda _text: None).start()
    try:
        api = LocalApi(
            host="127.0.0.1",
            port=0,
            env_overrides={**stack.env_overrides, "FLAGS_MAX_AGE_S": "1"},
            resource_values=stack.resource_values,
            quiet=True,
            errors=io.StringIO(),
        ).start()
        try:
            yield stack, api
        finally:
            api.stop()
    finally:
        stack.stop()


def _one(url: str, sql: str, *params: Any) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def test_the_dashboard_shows_real_numbers_escapes_stored_text_and_changes_the_rollout(
    local: tuple[LocalStack, LocalApi], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    stack, api = local
    with httpx.Client(base_url=api.url, timeout=30) as client:
        for name in ("ada", "grace", "linus"):
            assert client.post("/auth/signup", json={"email": f"{name}@example.com", "password": PASSWORD}).is_success
        hostile = client.put(
            "/admin/rollout", json={"flags": {"MIGRATION_FALLBACK_TIMEOUT": "2500"}, "reason": HOSTILE}
        )
        assert hostile.status_code == 200, hostile.text
    engine = InlineEngine(stack.database_url)
    try:
        migration = start_migration(StartRequest(source="supabase", batch_size=100), engine.context())
        engine.drain()
    finally:
        engine.close()
    tracked = _one(stack.database_url, "SELECT count(*) FROM user_migration_status WHERE state <> 'rolled_back'")
    bcrypt_left = _one(
        stack.database_url, """SELECT count(*) FROM account WHERE "providerId" = 'credential' AND password ~ '^\\$2'"""
    )
    assert bcrypt_left > 0  # the bulk migration kept GoTrue's hashes

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{api.url}/admin/dashboard")
            expect(page.locator("#status-line")).to_contain_text("updated", timeout=20_000)

            assert page.locator('[data-stat="total_users"]').inner_text() == str(tracked)
            assert page.locator('[data-stat="completion_rate"]').inner_text() == "100.0 %"  # a percentage, as is
            expect(page.locator("#stats")).to_contain_text("gaps needing a person")
            assert page.locator("#phase").inner_text() == "2"  # the local stack: dual-write, Supabase primary
            row = page.locator("#migrations tbody tr", has_text=migration.migration_id)
            expect(row).to_contain_text("completed")
            expect(row).to_contain_text("3")  # processed

            # The cutover: every operation over the window (the three signups), and the bcrypt hashes left.
            expect(page.locator("#bcrypt-left")).to_have_text(str(bcrypt_left), timeout=20_000)
            signups = page.locator("#operations tbody tr", has_text="signup")
            expect(signups.locator("td").nth(1)).to_have_text("3")
            expect(page.locator("#operations")).to_contain_text("session exchange")
            assert page.locator('[data-copy="last_copy_at"]').inner_text() == "never"

            # The stored reason is shown as the text it is, and none of it ran.
            expect(page.locator("#history")).to_contain_text(HOSTILE)
            assert page.evaluate("window.__pwned") is None
            assert page.locator("script").count() == 1
            assert page.locator("#history img").count() == 0

            # A rollout change: review (a dry run) shows the ordered changes, nothing written yet; apply writes.
            page.check("input[name=kind][value=canary]")
            page.fill("#canary-input", "5")
            page.fill("#reason", "dashboard canary 5 %")
            page.click("button[type=submit]")
            expect(page.locator("#confirm")).to_be_visible()
            expect(page.locator("#planned")).to_contain_text("CANARY_PERCENTAGE")
            assert _one(stack.database_url, "SELECT count(*) FROM flag_changes WHERE reason LIKE %s", "dashboard%") == 0
            page.click("#apply")
            expect(page.locator("#result")).to_contain_text("applied")
            expect(page.locator("#canary-percentage")).to_have_text("5 %", timeout=20_000)
            shot = Path(os.environ.get("DASHBOARD_SCREENSHOT") or tmp_path / "dashboard.png")
            page.screenshot(path=str(shot), full_page=True)
            assert errors == []
        finally:
            browser.close()

    assert stack.aws is not None
    ssm = stack.aws.client("ssm")
    assert ssm.get_parameter(Name=stack.parameter_prefix + "CANARY_PERCENTAGE")["Parameter"]["Value"] == "5"
    assert ssm.get_parameter(Name=stack.parameter_prefix + "CANARY_ENABLED")["Parameter"]["Value"] == "true"
    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute(
            "SELECT flag, new_value, source FROM flag_changes WHERE reason = %s ORDER BY id", ("dashboard canary 5 %",)
        ).fetchall()
    assert ("CANARY_PERCENTAGE", "5", "admin-api") in rows
    assert {source for _flag, _new, source in rows} == {"admin-api"}
