from alembic import context

from deelrx_kit.migrations_env import run
from services.identity.adapters.tables import metadata

run(context, metadata)
