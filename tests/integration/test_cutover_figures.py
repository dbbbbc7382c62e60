"""GET /admin/cutover's figures over real exchanges (GoTrue stand-in tokens, the real Better-Auth server's
database): each operation over the window, the session copy and the tokens it spent, the bcrypt hashes left,
and the hash count read again only after HASH_COUNTS_MAX_AGE."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from auth_migration.admin.service import AdminService
from auth_migration.connections import Connections
from auth_migration.sessions.cutover_figures import HASH_COUNTS_MAX_AGE
from auth_migration.sessions.exchange import SessionExchanger
from tests.integration.plugins.dual_write import DualWriteStack
from tests.integration.plugins.session_exchange import PinnedClock, app_for, exchange, new_email, supabase_session
from tests.integration.test_session_refresh_exchange import copy


class FlagsOnly:
    """The SSM flags the service reads (the store's one method the cutover view needs)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def read(self) -> dict[str, str]:
        return dict(self.values)


def _by_operation(view: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
    return {
        o["operation"]: (o["requests"], o["successes"], o["user_errors"], o["system_failures"])
        for o in view["operations"]
    }


def test_the_cutover_view_counts_exchanges_refusals_the_copy_and_bcrypt_hashes(
    dual_write_stack: DualWriteStack, exchangers: Callable[..., SessionExchanger], clock: PinnedClock
) -> None:
    stack = dual_write_stack
    first, second = supabase_session(stack.gotrue, new_email()), supabase_session(stack.gotrue, new_email())
    copied = copy(stack, clock)  # the stand-in's signup and its sign-in each made a session: 2 per user
    assert copied["sessions"] == copied["refresh_tokens"] == 4
    app = app_for(stack, exchangers())
    assert exchange(app, {"access_token": first["access_token"]})[0] == 200  # lazily migrated: a bcrypt hash
    assert exchange(app, {"refresh_token": second["refresh_token"]})[0] == 200
    assert exchange(app, {"refresh_token": second["refresh_token"]})[0] == 401  # the replay ends its session
    assert exchange(app, {"access_token": "not.a.jwt"})[0] == 401
    conns = Connections(stack.database_url, stack.database_url, stack.database_url)
    # auth_events are stamped by the database's clock, the window is read at the service's: let them agree.
    clock.now = stack.query("SELECT now()")[0][0]
    service = AdminService(
        FlagsOnly({"HASH_UPGRADE": "true", "ROLLBACK_WINDOW_MINUTES": "10"}),  # type: ignore[arg-type]
        conns,
        clock=clock,
    )
    try:
        view = service.cutover()

        assert (view["window_minutes"], view["session_exchange_enabled"], view["hash_upgrade_enabled"]) == (
            10,
            True,
            True,
        )
        ops = _by_operation(view)
        assert ops["session_exchange"] == (4, 2, 2, 0)
        assert ops["signup"] == ops["login"] == ops["hash_upgrade"] == (0, 0, 0, 0)
        sessions = dict(view["sessions"])
        assert sessions.pop("last_copy_at") is not None
        assert sessions == {
            "sessions_live": 3,
            "sessions_gone_from_supabase": 0,
            "sessions_ended_by_reuse": 1,
            "refresh_tokens_copied": 4,
            "refresh_tokens_exchanged": 1,
        }
        assert view["passwords"]["bcrypt_hashes"] == 2  # both users migrated lazily with GoTrue's bcrypt

        # The hash count is a scan of Better-Auth's accounts: kept for HASH_COUNTS_MAX_AGE, then read again.
        stack.query("""UPDATE account SET password = 'x' WHERE "userId" = %s""", first["user"]["id"])
        assert service.cutover()["passwords"]["bcrypt_hashes"] == 2
        clock.now += HASH_COUNTS_MAX_AGE + timedelta(seconds=1)
        assert service.cutover()["passwords"]["bcrypt_hashes"] == 1
    finally:
        conns.close()
