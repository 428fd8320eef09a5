"""Re-encrypt every TOTP secret under the keyring's active key, so an old key can be retired.

    DEELRX_ENCRYPTION_KEYS="new:...,old:..." python -m services.identity.reencrypt

Safe to run while the service runs (each row is replaced only if unchanged meanwhile) and to
run again. Afterwards the old key can be removed from the configuration.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx_kit.db import create_engine, session_factory, transaction
from deelrx_kit.keyring import Keyring
from deelrx_kit.settings import Settings
from services.identity.adapters.totp import SqlTotpStore
from services.identity.use_cases.second_factor import totp_aad


async def reseal_totp_secrets(sessionmaker: async_sessionmaker[AsyncSession], keyring: Keyring) -> int:
    repo = SqlTotpStore()
    changed = 0
    async with transaction(sessionmaker) as session:
        for row in await repo.sealed_secrets(session):
            blob = bytes(row.totp_secret_encrypted)
            if keyring.needs_reseal(blob):
                changed += int(await repo.replace_sealed(session, row.id, blob, keyring.reseal(blob, totp_aad(row.id))))
    return changed


async def _main() -> None:
    settings = Settings()
    keyring = settings.keyring()
    engine = create_engine(settings.service_database_url("identity"), "identity")
    try:
        changed = await reseal_totp_secrets(session_factory(engine), keyring)
    finally:
        await engine.dispose()
    print(f"re-encrypted {changed} TOTP secrets under key {keyring.active_kid}")


if __name__ == "__main__":
    asyncio.run(_main())
