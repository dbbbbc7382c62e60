"""Data for local runs, tests and benches: used by the demo, bench/ and the integration tests.

supabase_data (generated Supabase / legacy profiles users with every edge case and known passwords),
schemas (one database ready for a local migration; Better-Auth's DDL), postgres (the configured
Postgres or an embedded one; a local run's own database), sql/ (the DDL files).
"""
