"""`python -m deelrx_kit.migrate [service ...]`: bring each service's schema to the newest revision.

The Kubernetes migration Job runs this before a rollout with the migration role's URL
(`DEELRX_<SERVICE>_DATABASE_URL`); the services then start with `DEELRX_MIGRATE_ON_START=false`
and a runtime role that cannot change the schema.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

from deelrx_kit import db
from deelrx_kit.logging import configure_logging
from deelrx_kit.production import DATABASE_SERVICES, UnsafeProductionSettings, production_problems
from deelrx_kit.settings import Settings


def migrations_dir(service: str) -> Path:
    spec = importlib.util.find_spec(f"services.{service}")
    if spec is None or spec.origin is None:
        raise SystemExit(f"unknown service: {service}")
    return Path(spec.origin).parent / "migrations"


async def migrate(settings: Settings, services: list[str]) -> None:
    for service in services:
        await db.migrate(migrations_dir(service), settings.service_database_url(service), service)
        print(f"{service}: schema at the newest revision", flush=True)


def main(argv: list[str]) -> int:
    settings = Settings()
    configure_logging("migrate", settings.log_level)
    services = argv or sorted(DATABASE_SERVICES)
    unknown = set(services) - DATABASE_SERVICES
    if unknown:
        raise SystemExit(f"no database: {', '.join(sorted(unknown))}")
    # The Job needs only its database settings; the services check everything else at start.
    problems = [p for s in services for p in production_problems(settings, s) if "DATABASE_URL" in p]
    if problems:
        raise SystemExit(str(UnsafeProductionSettings("migrate", problems)))
    asyncio.run(migrate(settings, services))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
