"""Alembic environment of the ledger: the connection comes from :mod:`trunkline.ledger.migrate`
(``config.attributes["connection"]``), or from ``sqlalchemy.url`` when run by the alembic CLI."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, engine_from_config, pool

from trunkline.ledger.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")
if isinstance(given, Connection):
    _run(given)
else:
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        _run(connection)
