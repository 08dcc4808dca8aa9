"""What ``serfcast demo`` was asked to do, checked before anything starts."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from serfcast.demo.agents import SerfBinary, find_serf, no_serf_message
from serfcast.errors import EventTooLargeError, LocalProtocolError
from serfcast.serf.limits import check_user_event_size, user_event_budget

__all__ = ["EVENT_NAME", "SERF_AGENTS", "DemoOptions"]

EVENT_NAME: Final = "serfcast-demo"
#: How many serf agents ``-with-serf`` adds.
SERF_AGENTS: Final = 4


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """The demo's settings. ``payload`` None means ``hello from <sender>``;
    ``serf`` is empty without ``-with-serf``."""

    nodes: int
    profile: str
    payload: bytes | None
    serf: tuple[SerfBinary, ...]
    seed: int

    @classmethod
    def checked(
        cls,
        *,
        nodes: int,
        profile: str,
        payload: str | None,
        with_serf: bool,
        seed: int | None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> DemoOptions:
        """Refuse a payload Serf would not send, or ``-with-serf`` without serf."""
        raw = None if payload is None else payload.encode("utf-8", "surrogateescape")
        if raw is not None:
            _check_payload(raw)
        serf: tuple[SerfBinary, ...] = ()
        if with_serf:
            serf = tuple(find_serf(os.environ if env is None else env, cwd or Path()))
            if not serf:
                raise LocalProtocolError(no_serf_message())
        if seed is None:
            seed = random.SystemRandom().randrange(1, 100_000)
        return cls(nodes, profile, raw, serf, seed)


def _check_payload(payload: bytes) -> None:
    try:
        check_user_event_size(EVENT_NAME, payload, 0, False)
    except EventTooLargeError as exc:
        budget = user_event_budget(EVENT_NAME, 0)
        raise LocalProtocolError(
            f"-payload is {len(payload)} bytes, too big: {exc} "
            f"(a payload of up to {budget} bytes fits)"
        ) from None
