"""The watcher behind ``serfcast watch``: each new user event printed once.

By default the watcher joins the pool as a member (with the pool's history
ignored, as ``serf agent`` joins) and leaves it gracefully on SIGINT or
SIGTERM. When observing it never becomes a member: every interval one
push/pull with a seed (see :mod:`serfcast.snapshot`) returns the seed's ring of
recent events, and the new ones are printed. The ring spans 512 Lamport times,
so nothing is missed as long as fewer events than that are fired between two
looks.

Each event is one JSON line on standard output (see
:mod:`serfcast.watch_state`); status lines go to standard error. The name
filter keeps the events of one name (Consul's name, or Serf's). A handler runs
``/bin/sh -c CMD`` per event with serf's variables (``SERF_EVENT=user``,
``SERF_USER_EVENT``, ``SERF_USER_LTIME``, ``SERF_SELF_NAME``) and the payload
on standard input; for a Consul event that is Consul's payload, and
``SERFCAST_CONSUL_ID`` and ``SERFCAST_CONSUL_NAME`` are set too.

A state file keeps what was printed, so a restarted watcher prints nothing
twice. A restart with a state file also catches up: it joins with the pool's
history replayed (or reads the whole ring) and prints only the events the
state does not know, which are those fired while it was away, as far back as
the ring reaches.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO

import trio

from serfcast.cli_node import MemberOptions, show_address
from serfcast.cli_runtime import (
    build_node,
    join_failure,
    join_pool,
    run_handler,
    run_trio,
    serf_logging,
)
from serfcast.drivers.trio import TrioDriver
from serfcast.engine.serf import SerfNode
from serfcast.engine.serf_events import LeaveComplete, SerfEvent, UserEventReceived
from serfcast.errors import LocalProtocolError
from serfcast.handlers import HandlerRun, user_event_invocation
from serfcast.snapshot import NoAnswerError, PoolSnapshot, take_snapshot
from serfcast.watch_state import SeenEvents, WatchedEvent, load_seen, save_seen

__all__ = ["WatchConfig", "Watcher", "run_watch"]

watch_log = logging.getLogger("serfcast.watch")

#: The graceful leave's bound on top of Serf's own steps.
LEAVE_BOUND: Final = 15.0


@dataclass(frozen=True, slots=True)
class WatchConfig:
    """Everything the watcher was told."""

    member: MemberOptions
    observe: bool
    name: str | None
    handler: str | None
    handler_timeout: float
    state_file: str | None
    state_size: int
    interval: float
    timeout: float
    log_level: str


def run_watch(config: WatchConfig, out: TextIO) -> int:
    """Watch until a signal; the exit status."""
    watcher = Watcher(config, out)
    main = _observe if config.observe else _join_and_watch
    with serf_logging(sys.stderr, config.log_level):
        return run_trio(main, watcher)


def _status(text: str) -> None:
    print(f"serfcast watch: {text}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# Printing each event once


class Watcher:
    """Turns received events into printed lines, handler runs and saved state."""

    def __init__(self, config: WatchConfig, out: TextIO) -> None:
        self.config = config
        self.out = out
        self.self_name = config.member.name
        if config.state_file is not None:
            self.seen = load_seen(config.state_file, config.state_size)
        else:
            self.seen = SeenEvents(config.state_size)
        #: Whether a state file says where an earlier run stopped.
        self.resuming = self.seen.floor is not None

    def begin(self, floor: int) -> None:
        """Listening starts: on a first run, everything up to ``floor`` is old."""
        if not self.resuming:
            self.seen.begin(floor)
            self._save()

    def wanted(self, event: WatchedEvent) -> bool:
        """Whether ``event`` passes ``-name``."""
        name = self.config.name
        return name is None or name in (event.name, event.user_name)

    async def take(self, event: WatchedEvent) -> None:
        """Print a new event, run the handler, remember it."""
        if not self.wanted(event) or not self.seen.is_new(event):
            return
        self.out.write(json.dumps(event.to_json()) + "\n")
        self.out.flush()
        if self.config.handler is not None:
            await self._run_handler(self.config.handler, event)
        self.seen.add(event)
        self._save()

    async def _run_handler(self, command: str, event: WatchedEvent) -> None:
        invocation = user_event_invocation(
            self.self_name, {}, event.name, event.ltime, event.user_payload
        )
        if event.consul is not None:
            extra = {
                "SERFCAST_CONSUL_ID": event.consul.id,
                "SERFCAST_CONSUL_NAME": event.consul.name,
            }
            invocation = dataclasses.replace(
                invocation, env={**invocation.env, **extra}
            )
        run = HandlerRun(command, invocation, self.config.handler_timeout)
        result = await run_handler(run)
        if result.error is not None or result.timed_out or result.returncode != 0:
            why = result.error or (
                "timed out" if result.timed_out else f"exit status {result.returncode}"
            )
            watch_log.error("handler for '%s' failed: %s", event.name, why)

    def _save(self) -> None:
        if self.config.state_file is not None:
            save_seen(self.config.state_file, self.seen)


async def _until_signal(cancel_scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            cancel_scope.cancel()
            return


# ----------------------------------------------------------------------------
# As a member


async def _join_and_watch(watcher: Watcher) -> int:
    config = watcher.config
    node, driver = build_node(config.member)
    async with driver:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            report, early = await join_pool(
                driver, node, config.member.seeds, ignore_old=not watcher.resuming
            )
            if not report.contacted:
                raise LocalProtocolError(join_failure(report))
            watcher.begin(node.event_time - 1)
            _status(
                f"joined the pool through {show_address(report.contacted[0])} "
                f"as '{node.name}'"
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_leave_on_signal, signals, driver, node, nursery)
                await _member_events(watcher, early, driver)
                nursery.cancel_scope.cancel()
    return 0


async def _member_events(
    watcher: Watcher, early: Sequence[SerfEvent], driver: TrioDriver[SerfEvent]
) -> None:
    for event in early:
        if isinstance(event, UserEventReceived):
            await watcher.take(_watched(event))
    async for event in driver.events():
        if isinstance(event, LeaveComplete):
            return
        if isinstance(event, UserEventReceived):
            await watcher.take(_watched(event))


def _watched(event: UserEventReceived) -> WatchedEvent:
    return WatchedEvent.from_serf(event.name, event.ltime, event.payload)


async def _leave_on_signal(
    signals: Any,
    driver: TrioDriver[SerfEvent],
    node: SerfNode,
    nursery: trio.Nursery,
) -> None:
    async for _ in signals:
        break
    _status("leaving the pool")
    driver.call(node.leave)
    with trio.move_on_after(LEAVE_BOUND):
        async for _ in signals:
            break  # a second signal: stop waiting for the leave
    nursery.cancel_scope.cancel()


# ----------------------------------------------------------------------------
# As an observer


async def _observe(watcher: Watcher) -> int:
    config = watcher.config
    snapshot = await _look(config)  # an unreachable pool fails at once
    watcher.begin(snapshot.event_ltime - 1)
    _status(
        f"observing through {show_address(snapshot.seed)} every {config.interval:g} s"
    )
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_until_signal, scope)
            while True:
                await _take_ring(watcher, snapshot)
                await trio.sleep(config.interval)
                try:
                    snapshot = await _look(config)
                except NoAnswerError as exc:
                    watch_log.warning("%s", exc)
    return 0


async def _take_ring(watcher: Watcher, snapshot: PoolSnapshot) -> None:
    for buffered in snapshot.events():
        event = WatchedEvent.from_serf(buffered.name, buffered.ltime, buffered.payload)
        await watcher.take(event)


async def _look(config: WatchConfig) -> PoolSnapshot:
    member = config.member

    def ask() -> PoolSnapshot:
        return take_snapshot(
            member.seeds,
            keyring=member.keyring,
            label=member.label,
            timeout=config.timeout,
        )

    # Bounded by the per-seed timeout, so the thread is never left behind.
    return await trio.to_thread.run_sync(ask)
