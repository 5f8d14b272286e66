from alembic import context

from motcua.migrate import run_env

run_env(context)
