"""A crashed statement's log line carries neither its parameters nor the constraint's key."""

from __future__ import annotations

import logging

import pytest
import structlog
from sqlalchemy import Column, MetaData, String, Table, insert

from deelrx_kit.db import create_engine
from deelrx_kit.logging import configure_logging

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g"
EMAIL = "grace.hopper@example.com"


@pytest.fixture
def isolated_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_db_error_logs_carry_no_parameters(database_url: str, capsys, isolated_logging) -> None:
    configure_logging("test", "INFO")
    metadata = MetaData()
    users = Table(
        "users_t",
        metadata,
        Column("email", String(320), primary_key=True),
        Column("password_hash", String(255)),
        Column("mail_body", String(2000)),
    )
    engine = create_engine(database_url, "public")
    row = {"email": EMAIL, "password_hash": HASH, "mail_body": "https://x.test/verify-email?token=LinkTokenValue123"}
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with engine.begin() as conn:
            await conn.execute(insert(users).values(**row))
        with pytest.raises(Exception) as caught:
            async with engine.begin() as conn:
                await conn.execute(insert(users).values(**row))  # duplicate key
        structlog.get_logger("db-test").error("rpc_crashed", exc_info=caught.value)
        logging.getLogger("stdlib-test").error("stdlib_crash", exc_info=caught.value)
    finally:
        await engine.dispose()
    lines = [line for line in capsys.readouterr().err.splitlines() if "crash" in line]
    assert len(lines) == 2
    for line in lines:
        assert "IntegrityError" in line or "UniqueViolation" in line  # the error itself is kept
        assert HASH not in line and "argon2id" not in line
        assert EMAIL not in line and "grace.hopper" not in line
        assert "LinkTokenValue123" not in line
