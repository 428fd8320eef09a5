from alembic import context

from deelrx_kit.migrations_env import run
from services.identity.adapters.sql import metadata

run(context, metadata)
