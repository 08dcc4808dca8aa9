"""The agent behind ``serfcast agent``: a pool member that runs event handlers.

It prints startup and log lines shaped like the serf agent's, and runs
handlers with serf's environment and standard input (see
:mod:`serfcast.handlers`). There is no RPC port: the agent is driven by
signals. SIGINT and SIGTERM leave the pool gracefully (the serf agent only does
so on SIGINT by default); a second signal exits at once.

Events go to the handlers through a queue of 64, one event at a time, as in
the serf agent, so a slow handler delays the ones behind it. What a query's
handlers print (standard output and error, the last 8 KiB) is the answer,
sent when the handler exits if it fits Serf's response size limit and the
query's deadline has not passed. Every run is bounded by the handler timeout
and, for a query, by its deadline.
"""

from __future__ import annotations

import functools
import logging
import signal
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
from serfcast.engine.nodes import format_addr
from serfcast.engine.serf import SerfNode
from serfcast.engine.serf_events import (
    LeaveComplete,
    MemberEvent,
    QueryReceived,
    SerfEvent,
)
from serfcast.errors import LocalProtocolError
from serfcast.handlers import (
    HandlerResult,
    HandlerRun,
    HandlerSpec,
    Invocation,
    invocation_for,
)

__all__ = ["AgentConfig", "run_agent"]

agent_log = logging.getLogger("serfcast.agent")
serf_log = logging.getLogger("serfcast.serf")

#: Events waiting for the handlers, as in the serf agent.
HANDLER_QUEUE: Final = 64
#: Extra time allowed on top of Serf's own leave steps before giving up.
LEAVE_SLACK: Final = 2.0
EXIT_LEAVE_FAILED: Final = 1


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Everything the agent was told."""

    member: MemberOptions
    handlers: tuple[HandlerSpec, ...]
    handler_timeout: float
    log_level: str


def run_agent(config: AgentConfig, out: TextIO) -> int:
    """Run until a signal ends it; the exit status."""
    return run_trio(_agent_main, config, out)


async def _agent_main(config: AgentConfig, out: TextIO) -> int:
    node, driver = build_node(config.member)
    with serf_logging(out, config.log_level):
        async with driver:
            _banner(config, node, show_address(driver.address), out)
            agent_log.info("serfcast agent starting")
            return await _Agent(config, node, driver).run(out)


def _advertised(node: SerfNode) -> tuple[str, int]:
    ml = node.memberlist
    return format_addr(ml.advertise_addr), ml.advertise_port


def _banner(config: AgentConfig, node: SerfNode, bound: str, out: TextIO) -> None:
    lines = [
        ("Node name", f"'{node.name}'"),
        ("Bind addr", f"'{bound}'"),
        ("Advertise addr", f"'{show_address(_advertised(node))}'"),
        ("Encrypted", str(config.member.keyring is not None).lower()),
        ("Profile", config.member.profile),
        (
            "Message Compression Enabled",
            str(node.memberlist.config.enable_compression).lower(),
        ),
        ("Event handlers", str(len(config.handlers))),
    ]
    width = max(len(label) for label, _ in lines) + 4
    out.write("==> Starting serfcast agent...\n==> serfcast agent running!\n")
    for label, value in lines:
        out.write(f"{label.rjust(width)}: {value}\n")
    out.write("\n==> Log data will now stream in as it occurs:\n\n")
    out.flush()


class _Agent:
    """The running agent: joins, dispatches events, leaves on a signal."""

    def __init__(
        self, config: AgentConfig, node: SerfNode, driver: TrioDriver[SerfEvent]
    ) -> None:
        self.config = config
        self.node = node
        self.driver = driver
        self.leaving = False
        self.status = 0
        send, receive = trio.open_memory_channel[tuple[SerfEvent, Invocation]](
            HANDLER_QUEUE
        )
        self._to_handlers = send
        self._handler_inbox = receive

    async def run(self, out: TextIO) -> int:
        """Join, then handle events until the leave completes or a signal."""
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            early = await self._join(out)
            if early is None:
                return 1
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._run_handlers)
                nursery.start_soon(self._on_signals, signals, out, nursery)
                for event in early:
                    self._dispatch(event)
                async for event in self.driver.events():
                    if self._dispatch(event):
                        break
                nursery.cancel_scope.cancel()
        agent_log.info("shutdown complete")
        return self.status

    async def _join(self, out: TextIO) -> list[SerfEvent] | None:
        seeds = self.config.member.seeds
        if not seeds:
            return []
        _say(out, "==> Joining cluster...(replay: false)")
        report, early = await join_pool(self.driver, self.node, seeds)
        if not report.contacted:
            _say(out, f"==> Error joining the cluster: {join_failure(report)}")
            return None
        count = len(report.contacted)
        _say(out, f"    Join completed. Synced with {count} initial agents")
        return early

    # ------------------------------------------------------------------
    # Leaving

    async def _on_signals(
        self, signals: Any, out: TextIO, nursery: trio.Nursery
    ) -> None:
        async for signum in signals:
            word = "interrupt" if signum == signal.SIGINT else "terminated"
            _say(out, f"==> Caught signal: {word}")
            if self.leaving:
                agent_log.warning("second signal: exiting without waiting")
                self.status = EXIT_LEAVE_FAILED
                nursery.cancel_scope.cancel()
                return
            self._leave(out, nursery)

    def _leave(self, out: TextIO, nursery: trio.Nursery) -> None:
        _say(out, "==> Gracefully shutting down agent...")
        agent_log.info("requesting graceful leave")
        self.leaving = True
        self.driver.call(self.node.leave)
        serf = self.node.serf_config
        bound = 2 * serf.broadcast_timeout + serf.leave_propagate_delay + LEAVE_SLACK
        nursery.start_soon(self._leave_deadline, bound, nursery)

    async def _leave_deadline(self, bound: float, nursery: trio.Nursery) -> None:
        await trio.sleep(bound)
        agent_log.error("graceful leave did not finish in %g s", bound)
        self.status = EXIT_LEAVE_FAILED
        nursery.cancel_scope.cancel()

    # ------------------------------------------------------------------
    # Events

    def _dispatch(self, event: SerfEvent) -> bool:
        """Log one event and queue it for handlers; True once the leave is over."""
        if isinstance(event, LeaveComplete):
            return True
        if isinstance(event, MemberEvent):
            _log_member(event)
        invocation = invocation_for(event, self.node.name, self.node.tags)
        if invocation is None:
            agent_log.debug("event %r", event)
            return False
        agent_log.info("Received event: %s", _event_label(invocation))
        if any(h.wants(invocation.kind, invocation.name) for h in self.config.handlers):
            self._queue(event, invocation)
        return False

    def _queue(self, event: SerfEvent, invocation: Invocation) -> None:
        try:
            self._to_handlers.send_nowait((event, invocation))
        except trio.WouldBlock:
            agent_log.warning(
                "handler queue full (%d): dropped %s",
                HANDLER_QUEUE,
                _event_label(invocation),
            )

    async def _run_handlers(self) -> None:
        async for event, invocation in self._handler_inbox:
            for spec in self.config.handlers:
                if spec.wants(invocation.kind, invocation.name):
                    await self._run_one(spec, event, invocation)

    async def _run_one(
        self, spec: HandlerSpec, event: SerfEvent, invocation: Invocation
    ) -> None:
        timeout = self.config.handler_timeout
        if isinstance(event, QueryReceived):
            timeout = min(timeout, event.deadline - self.driver.now())
            if timeout <= 0:
                agent_log.warning("query '%s' is past its deadline", event.name)
                return
        result = await run_handler(HandlerRun(spec.command, invocation, timeout))
        _log_result(spec, result)
        if isinstance(event, QueryReceived) and result.output:
            self._respond(event, result.output)

    def _respond(self, query: QueryReceived, output: bytes) -> None:
        try:
            self.driver.call(functools.partial(self.node.respond, query, output))
        except LocalProtocolError as exc:
            agent_log.error("failed to respond to query '%s': %s", query.name, exc)


def _say(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()


def _event_label(invocation: Invocation) -> str:
    if invocation.kind == "user":
        return f"user-event: {invocation.name}"
    if invocation.kind == "query":
        return f"query: {invocation.name}"
    return invocation.kind


_MEMBER_WORDS: Final = {
    "MemberJoined": "EventMemberJoin",
    "MemberLeft": "EventMemberLeave",
    "MemberFailed": "EventMemberFailed",
    "MemberUpdated": "EventMemberUpdate",
    "MemberReaped": "EventMemberReap",
}


def _log_member(event: MemberEvent) -> None:
    word = _MEMBER_WORDS.get(type(event).__name__)
    if word is not None:
        serf_log.info("%s: %s %s", word, event.name, event.addr)


def _log_result(spec: HandlerSpec, result: HandlerResult) -> None:
    if result.error is not None:
        agent_log.error("Error invoking script '%s': %s", spec.command, result.error)
    elif result.timed_out:
        agent_log.error("script '%s' timed out and was killed", spec.command)
    elif result.returncode not in (0, None):
        agent_log.error(
            "Error invoking script '%s': exit status %s",
            spec.command,
            result.returncode,
        )
    if result.output_total > len(result.output):
        agent_log.warning(
            "script '%s' generated %d bytes of output, truncated to %d",
            spec.command,
            result.output_total,
            len(result.output),
        )
    if result.output:
        text = result.output.decode("utf-8", "replace")
        agent_log.debug("event script output: %s", text)
