"""Shared fixtures: a simulated fleet served over HTTP and a real Prometheus scraping it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fleet_stack import FleetStack, require_binary, start_stack
from sqlalchemy import create_engine, text

from bot.simulator.kubernetes_api import KubernetesStandIn
from bot.simulator.prometheus_runner import find_prometheus


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return require_binary("prometheus", find_prometheus())


@pytest.fixture(scope="module")
def mixed_fleet(prometheus_binary: str) -> Iterator[FleetStack]:
    """8 replicas on 4 nodes, half on old vLLM names and the old DCGM `Hostname` label."""
    stack = start_stack(prometheus_binary, legacy_fraction=0.5)
    yield stack
    stack.prometheus.stop()
    stack.server.stop()


POSTGRES_URL = os.environ.get(
    "VLLM_CHATOPS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_available() -> bool:
    try:
        with create_engine(POSTGRES_URL).connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@contextmanager
def fresh_postgres_schema() -> Iterator[str]:
    """A database URL on the real PostgreSQL whose search path is a new, empty schema."""
    if not _postgres_available():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL not reachable at {POSTGRES_URL}")
        pytest.skip("PostgreSQL not reachable")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_postgres_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on SQLite and on the real PostgreSQL (a fresh schema each time).

    Under CI=true an unreachable PostgreSQL is a failure, not a skip.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    with fresh_postgres_schema() as url:
        yield url


@pytest.fixture
def fake() -> Iterator[KubernetesStandIn]:
    """The Kubernetes API stand-in holding Deployment ml/llama: 2 replicas of vllm:0.6.3,
    rolled out over vllm:0.6.1 (a test module may define its own ``fake``)."""
    with KubernetesStandIn() as fk:
        fk.add_deployment("ml", "llama", "vllm:0.6.3", replicas=2, revisions=["vllm:0.6.1"])
        yield fk
