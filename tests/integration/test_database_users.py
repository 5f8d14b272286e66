"""deploy/postgres-init.sql on the real PostgreSQL: each service's user owns its database (it runs its own
migrations) and cannot even connect to another service's."""
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from motcua.config import SERVICES
from tests import infra


def as_user_of(urls, user_service, database_service):
    """The URL of `user_service`'s user on `database_service`'s database."""
    return urls[user_service].rsplit("/", 1)[0] + "/" + urls[database_service].rsplit("/", 1)[1]


def count_versions(url):
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()


def test_each_service_user_owns_its_database_and_no_other(postgres):
    with infra.databases_as_deployed() as urls:
        for service in SERVICES:
            assert count_versions(urls[service]) == 1  # migrated by its own user
        for intruder, victim in (("notify", "intake"), ("reporting", "gateway"), ("intake", "workflow")):
            with pytest.raises(OperationalError, match="permission denied for database"):
                count_versions(as_user_of(urls, intruder, victim))
