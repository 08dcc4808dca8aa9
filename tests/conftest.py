"""Shared pytest fixtures for serfcast's tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from serf_agents import SerfPool, SerfPoolFactory


@pytest.fixture
def serf_pool_factory(tmp_path: Path) -> Iterator[SerfPoolFactory]:
    """Start converged pools of real serf agents; all are stopped after the test.

    Each pool gets its own folder under the test's ``tmp_path`` for agent logs and
    handler records, which pytest keeps for inspection after a failure.
    """
    pools: list[SerfPool] = []

    def start_pool(
        versions: Sequence[str],
        *,
        encrypt: str | None = None,
        tags: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> SerfPool:
        workdir = tmp_path / f"pool{len(pools)}"
        pool = SerfPool(
            versions, workdir, encrypt=encrypt, tags=tags, extra_args=extra_args
        )
        pools.append(pool)
        pool.start()
        return pool

    yield start_pool
    for pool in pools:
        pool.stop_all()
