"""`auth-migrate`: the operator's commands. Used by operators (and by the README's demo and the tests).

`main` builds the parser and dispatches; `demo` is the README's main job; `progress` draws the bar
and the final report.
"""

from auth_migration_ops.cli.main import main

__all__ = ["main"]
