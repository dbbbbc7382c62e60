"""Session exchange: a signed-in Supabase user gets a Better-Auth session for the same user id.

supabase_tokens.py verifies Supabase access tokens (HS256 or the project's JWKS); refresh_tokens.py reads
refresh tokens live in GoTrue or from the copy session_copy.py makes, and spends each once; better_auth_sessions.py
writes the `session` row and signs the cookie exactly as Better-Auth does; rate_limits.py counts requests
per client IP and per user in Postgres; exchange.py holds the rules. PyJWT and cryptography are imported
only by supabase_tokens.py, which only the SessionExchange function loads.
"""

from typing import Final

#: Longer than any JWT GoTrue issues (a few KB with large metadata), short enough to bound the work.
MAX_TOKEN_CHARS: Final = 16_384
#: GoTrue's column is varchar(255): a longer one cannot be a refresh token.
MAX_REFRESH_TOKEN_CHARS: Final = 255
