"""PostgreSQL roles per service: a migration role that owns the service's schema and a runtime role
that can only read and write that schema's rows.

`python -m deelrx_kit.db_roles [service ...]` prints the SQL for an administrator to run once
(passwords are set separately, e.g. `ALTER ROLE identity_app PASSWORD '...'`, or by the database
operator). The services then connect as `<service>_app`, the migration Job as `<service>_migrator`.
"""

from __future__ import annotations

import sys

from deelrx_kit.production import DATABASE_SERVICES


def runtime_role(service: str) -> str:
    return f"{service}_app"


def migration_role(service: str) -> str:
    return f"{service}_migrator"


def role_statements(service: str, database: str = "deelrx") -> list[str]:
    """Idempotent except for CREATE ROLE, which an administrator runs once."""
    app, owner = runtime_role(service), migration_role(service)
    return [
        f'CREATE ROLE "{owner}" LOGIN',
        f'CREATE ROLE "{app}" LOGIN',
        f'CREATE SCHEMA IF NOT EXISTS "{service}" AUTHORIZATION "{owner}"',
        f'REVOKE ALL ON SCHEMA "{service}" FROM PUBLIC',
        f'GRANT USAGE ON SCHEMA "{service}" TO "{app}"',
        # The migration env says CREATE SCHEMA IF NOT EXISTS, which needs CONNECT and CREATE rights
        # on the database; the schema already exists, so nothing new is created.
        f'GRANT CONNECT, CREATE ON DATABASE "{database}" TO "{owner}"',
        f'GRANT CONNECT ON DATABASE "{database}" TO "{app}"',
        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" IN SCHEMA "{service}" '
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "{app}"',
        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" IN SCHEMA "{service}" '
        f'GRANT USAGE, SELECT ON SEQUENCES TO "{app}"',
    ]


def main(argv: list[str]) -> int:
    services = argv or sorted(DATABASE_SERVICES)
    print("REVOKE CREATE ON SCHEMA public FROM PUBLIC;")
    for service in services:
        if service not in DATABASE_SERVICES:
            raise SystemExit(f"no database: {service}")
        for statement in role_statements(service):
            print(f"{statement};")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
