"""Shared pytest fixtures for serfcast's tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from serf_agents import SerfPool, SerfPoolFactory

#: Go's encoder output and real captured traffic, kept with the tests:
#: ``vectors/`` (memberlist and Consul values encoded by Go's own codec) and
#: ``captures/`` (pcaps of real serf agents, their decodings and the key of
#: the encrypted ones).
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"

#: Captures of whole runs (join, events, queries, leave) in ``captures/``.
SEQUENCE_CAPTURES = [
    "serf094_plain",
    "serf094_encrypted",
    "serf0101_plain",
    "serf0101_encrypted",
    "mixed_a0101_b094_plain",
]
#: Captures of runs that also sent agents deliberately broken packets.
INJECT_CAPTURES = [
    "inject_serf094",
    "inject_serf094_enc",
    "inject_serf0101",
    "inject_serf0101_enc",
]


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The golden data folder, :data:`GOLDEN_DIR`."""
    return GOLDEN_DIR


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
