"""Alembic environment for the store.

`store.engine.migrate()` hands in an open connection through
`config.attributes["connection"]`; run from the alembic CLI instead, it reads
`sqlalchemy.url` and opens its own async engine.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context

from store.tables import metadata

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    from store.engine import make_engine, writer

    engine = make_engine(url)
    try:
        async with writer(engine).begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported for the store")

_connection = config.attributes.get("connection")
if _connection is not None:
    _run(_connection)
else:
    asyncio.run(_run_with_own_engine(config.get_main_option("sqlalchemy.url")))
