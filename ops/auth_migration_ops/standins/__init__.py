"""Systems we cannot install here, run for tests, demos and `auth-migrate local api`.

gotrue (GoTrue's documented endpoints and error codes over a real `auth` schema; no GoTrue binary
exists in the registries), better_auth (starts the real Better-Auth server, ops/better_auth_server),
fault_proxy (failures, delays and 429s in front of either), quiet_server (their HTTP server base).
Faithful to the real systems: they are not the thing under test.
"""
