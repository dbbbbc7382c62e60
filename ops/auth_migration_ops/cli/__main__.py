"""`python -m auth_migration_ops.cli`: the same as `auth-migrate`."""

import sys

from auth_migration_ops.cli.main import main

sys.exit(main())
