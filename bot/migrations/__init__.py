"""Versioned schema migrations of the state store (Alembic), run by ``Store`` at start."""
