"""Root conftest: registers the integration fixture plugins (pytest only allows this at the root)."""

pytest_plugins = [
    "tests.integration.plugins.postgres",
    "tests.integration.plugins.better_auth",
    "tests.integration.plugins.local_aws",
    "tests.integration.plugins.supabase_data",
    "tests.integration.plugins.engine",
    "tests.integration.plugins.gotrue",
    "tests.integration.plugins.dual_write",
    "tests.integration.plugins.session_exchange",
]
