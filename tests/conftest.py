"""Shared pytest fixtures for serfcast's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from serf_agents import SerfPool, SerfPoolFactory


def find_shared_dir() -> Path:
    """Find the shared reference folder (captures, vectors, reference sheets).

    ``SERFCAST_SHARED`` names it when set. Otherwise it is the folder ``shared``
    beside the repository's own folder, which is also how CI lays out its checkout.
    """
    override = os.environ.get("SERFCAST_SHARED")
    candidate = Path(override) if override else _beside_repository()
    if not candidate.is_dir():
        raise FileNotFoundError(
            f"shared folder {candidate} does not exist; set SERFCAST_SHARED to it"
        )
    return candidate


def _beside_repository() -> Path:
    return Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared reference folder (see :func:`find_shared_dir`)."""
    return find_shared_dir()


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
        agent_tags: Sequence[Mapping[str, str]] = (),
        query_response: str | None = None,
    ) -> SerfPool:
        workdir = tmp_path / f"pool{len(pools)}"
        pool = SerfPool(
            versions,
            workdir,
            encrypt=encrypt,
            tags=tags,
            extra_args=extra_args,
            agent_tags=agent_tags,
            query_response=query_response,
        )
        pools.append(pool)
        pool.start()
        return pool

    yield start_pool
    for pool in pools:
        pool.stop_all()
