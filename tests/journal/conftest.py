"""Journal fixtures: one opener per backend, PostgreSQL in a fresh schema per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import trio_asyncio

from fundarb.journal import Journal, open_journal

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"

Opener = Callable[..., AbstractAsyncContextManager[Journal]]


def pg_url() -> str:
    """The test server: ``FUNDARB_TEST_DATABASE_URL`` or the local default."""
    return os.environ.get("FUNDARB_TEST_DATABASE_URL", "").strip() or DEFAULT_URL


def _drop_schema(schema: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(pg_url())
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Each journal test runs once per backend."""
    return str(request.param)


@pytest.fixture
def open_test_journal(backend: str, tmp_path: Path) -> Iterator[Opener]:
    """``open_test_journal(**options)`` opens the same journal each call (to test reopening)."""
    schema = f"fundarb_test_{uuid.uuid4().hex[:16]}"

    def opener(**options: Any) -> AbstractAsyncContextManager[Journal]:
        if backend == "sqlite":
            return open_journal(None, tmp_path, **options)
        return open_journal(pg_url(), schema=schema, **options)

    yield opener
    if backend == "postgres":
        _drop_schema(schema)


@pytest.fixture
def schema() -> Iterator[str]:
    """A fresh PostgreSQL schema name, dropped after the test."""
    name = f"fundarb_test_{uuid.uuid4().hex[:16]}"
    yield name
    _drop_schema(name)


async def run_sql(journal: Any, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run raw SQL on the journal's own database (to corrupt rows, like a failing disk would)."""
    if journal.backend == "sqlite":
        return await journal._run(lambda conn: conn.execute(query, args).fetchall())

    parts = query.split("?")
    pg_query = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))

    async def go() -> list[tuple[Any, ...]]:
        async with journal.pool.acquire() as conn:
            return [tuple(r) for r in await conn.fetch(pg_query, *args)]

    return await trio_asyncio.aio_as_trio(go)()
