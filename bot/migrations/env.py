"""Alembic's entry point: migrations run on the connection ``Store`` hands over, inside its
schema transaction (under the PostgreSQL advisory lock, one replica at a time)."""

from alembic import context

from bot.store import Base

context.configure(connection=context.config.attributes["connection"], target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
