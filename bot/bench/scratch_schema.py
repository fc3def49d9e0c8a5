"""A fresh PostgreSQL schema for one measurement, dropped afterwards: nothing left behind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PREFIX = "vllm_chatops_bench_"


@contextmanager
def scratch_schema(postgres_url: str) -> Iterator[str]:
    """Yield ``postgres_url`` with its search path set to a new, empty schema.

    The bot creates its tables there (its migrations run on the search path); the schema
    and everything in it is dropped on exit, even after a failure.
    """
    schema = f"{PREFIX}{uuid.uuid4().hex[:12]}"
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        engine.dispose()
