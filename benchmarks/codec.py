"""Codec throughput beside the raw speed of Python's own UDP loopback loop.

Run ``.venv/bin/python benchmarks/codec.py`` (about 25 s) or add ``--quick`` for a
rough smoke run of a few seconds. ``--profile`` adds a cProfile summary of each
decode case. Every loop is bounded in count and time and only 127.0.0.1 is used.

Each measurement is a run of N iterations, N chosen so that one run lasts about
``--run-seconds``; it is repeated ``--repeats`` times and the median and the best
run are reported. The yardstick for decoding is the rate at which a bare Python
loop can take datagrams out of a loopback socket: a decoder slower than a fraction
of that would be what limits a receiving node, not the kernel.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat

import msgpack

from serfcast.wire.frames import Compound, Compressed, Message, UserMsg, encode_frame
from serfcast.wire.keyring import Keyring
from serfcast.wire.messages import (
    PROTOCOL_VSN,
    Alive,
    NodeState,
    Ping,
    PushNodeState,
    Suspect,
)
from serfcast.wire.packet import build_packet, decode_packet, encode_packet
from serfcast.wire.stream import PushPull, StreamDecoder, encode_stream

#: Decoding must keep up with at least this fraction of the bare receive loop.
TARGET_RATIO = 0.3
#: The size of the datagram the loopback baseline sends.
BASELINE_DATAGRAM = 150
#: Datagrams queued per fill of the receive buffer before a timed drain.
DRAIN_BATCH = 256
#: No single run may iterate more than this, however fast it is.
MAX_ITERATIONS = 5_000_000

#: One timed run: do the work ``n`` times, return (operations done, seconds taken).
Runner = Callable[[int], tuple[int, float]]


# ----------------------------------------------------------------------------
# Representative traffic


def packb(value: object) -> bytes:
    """msgpack as Go's codec writes it: the raw family for strings, no bin."""
    packed: bytes = msgpack.packb(value, use_bin_type=False)
    return packed


def serf_tags(tags: dict[str, str]) -> bytes:
    """Node meta as Serf writes it: the magic byte 0xff and a msgpack map."""
    return b"\xff" + packb(dict(sorted(tags.items())))


def serf_user_event() -> bytes:
    """A Serf user event as it travels inside a memberlist user message."""
    body = {"CC": False, "LTime": 7, "Name": "deploy", "Payload": b"v1.2.3"}
    return b"\x03" + packb(body)


def gossip_messages() -> list[Message]:
    """A ping carrying three piggybacked broadcasts, as a busy node sends it."""
    addr = bytes([127, 0, 0, 1])
    return [
        Ping(4242, "node-017", addr, 7946, "node-003"),
        Alive(12, "node-042", addr, 7946, serf_tags(_TAGS), PROTOCOL_VSN),
        Suspect(5, "node-099", "node-003"),
        UserMsg(serf_user_event()),
    ]


_TAGS = {"dc": "dc1", "role": "web"}


def serf_user_state(members: int = 4) -> bytes:
    """Serf's push/pull user state: a 512-slot event ring and member clocks."""
    events: list[object] = [None] * 512
    events[7] = {"Events": [{"Name": b"deploy", "Payload": b"v1.2.3"}], "LTime": 7}
    state = {
        "EventLTime": 8,
        "Events": events,
        "LTime": 310,
        "LeftMembers": [],
        "QueryLTime": 2,
        "StatusLTimes": {f"node-{i:03d}": 300 + i for i in range(members)},
    }
    return b"\x02" + packb(state)


def push_pull(nodes: int = 200) -> PushPull:
    """A push/pull as a member of a ``nodes``-strong Serf cluster sends it."""
    meta = serf_tags(_TAGS)
    states = tuple(
        PushNodeState(
            f"node-{i:03d}",
            bytes([10, 0, i // 256, i % 256]),
            7946,
            meta,
            i % 7 + 1,
            NodeState.ALIVE if i % 50 else NodeState.SUSPECT,
            PROTOCOL_VSN,
        )
        for i in range(nodes)
    )
    return PushPull(join=False, nodes=states, user_state=serf_user_state())


def demo_keyring() -> Keyring:
    """An AES-256 keyring with a fixed, obviously fake key."""
    return Keyring([bytes(range(32))])


# ----------------------------------------------------------------------------
# Measuring


@dataclass(frozen=True)
class Timing:
    """Rates of repeated runs of one measurement, in operations per second."""

    rates: tuple[float, ...]
    iterations: int

    @property
    def median(self) -> float:
        """The median run's rate."""
        return statistics.median(self.rates)

    @property
    def best(self) -> float:
        """The fastest run's rate."""
        return max(self.rates)


#: The baseline loops by name: "send+recv" and "recv only".
LoopbackRates = dict[str, Timing]


@dataclass(frozen=True)
class Settings:
    """How long each run lasts and how often it is repeated."""

    run_seconds: float
    repeats: int


def loop_runner(work: Callable[[], object]) -> Runner:
    """Time ``n`` calls of ``work`` in a plain loop."""

    def run(n: int) -> tuple[int, float]:
        start = time.perf_counter()
        for _ in repeat(None, n):
            work()
        return n, time.perf_counter() - start

    return run


def calibrate(runner: Runner, run_seconds: float) -> int:
    """Find N so that one run takes about ``run_seconds`` (bounded in time)."""
    n = 1
    while True:
        done, elapsed = runner(n)
        if elapsed >= run_seconds / 8 or n >= MAX_ITERATIONS:
            break
        n *= 4
    per_op = elapsed / max(done, 1)
    return max(1, min(MAX_ITERATIONS, int(run_seconds / max(per_op, 1e-9))))


def measure_all(runners: Sequence[Runner], settings: Settings) -> list[Timing]:
    """Calibrate every runner, then take their runs in turns.

    Run 1 of everything, then run 2, and so on: a change in machine load while
    the benchmark runs then spreads over every row, and ratios between rows of
    one table stay fair.
    """
    sizes = [calibrate(runner, settings.run_seconds) for runner in runners]
    rates: list[list[float]] = [[] for _ in runners]
    for _ in range(settings.repeats):
        for runner, n, out in zip(runners, sizes, rates, strict=True):
            done, elapsed = runner(n)
            out.append(done / elapsed)
    return [Timing(tuple(r), n) for r, n in zip(rates, sizes, strict=True)]


# ----------------------------------------------------------------------------
# The loopback baseline


@contextmanager
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A sending and a non-blocking receiving UDP socket on 127.0.0.1."""
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        tx.bind(("127.0.0.1", 0))
        # Non-blocking, as an event loop reads: CPython then calls recvfrom
        # directly instead of polling first, and a lost datagram cannot hang us.
        rx.setblocking(False)
        yield tx, rx
    finally:
        tx.close()
        rx.close()


def send_receive_runner(tx: socket.socket, rx: socket.socket) -> Runner:
    """Send one datagram, then receive it: one at a time, in one loop."""
    payload = bytes(BASELINE_DATAGRAM)
    addr = rx.getsockname()

    def run(n: int) -> tuple[int, float]:
        send, recv = tx.sendto, rx.recvfrom
        start = time.perf_counter()
        for _ in repeat(None, n):
            send(payload, addr)
            recv(65536)
        return n, time.perf_counter() - start

    return run


def drain_runner(tx: socket.socket, rx: socket.socket) -> Runner:
    """Receive-only: queue a batch untimed, then time a loop that only receives.

    Filling the receive buffer first means the timed loop never waits for a
    sender and shares the interpreter with nobody, which a sender thread or a
    second process on a two-core machine could not promise.
    """
    payload = bytes(BASELINE_DATAGRAM)
    addr = rx.getsockname()

    def run(n: int) -> tuple[int, float]:
        received, elapsed = 0, 0.0
        while received < n:
            batch = min(DRAIN_BATCH, n - received)
            for _ in repeat(None, batch):
                tx.sendto(payload, addr)
            got, took = _drain(rx, batch)
            received, elapsed = received + got, elapsed + took
            if got < batch:  # the kernel dropped some: end this run here
                break
        return received, elapsed

    return run


def _drain(rx: socket.socket, count: int) -> tuple[int, float]:
    recv = rx.recvfrom
    got = 0
    start = time.perf_counter()
    try:
        for _ in repeat(None, count):
            recv(65536)
            got += 1
    except BlockingIOError:
        pass
    return got, time.perf_counter() - start


def _enlarge_receive_buffer(rx: socket.socket) -> None:
    want = DRAIN_BATCH * 4096
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            rx.setsockopt(socket.SOL_SOCKET, option, want)
            return
        except OSError:
            continue


def loopback_runners(tx: socket.socket, rx: socket.socket) -> dict[str, Runner]:
    """The two baseline loops by name: send+receive, and receive-only."""
    _enlarge_receive_buffer(rx)
    return {
        "send+recv": send_receive_runner(tx, rx),
        "recv only": drain_runner(tx, rx),
    }


# ----------------------------------------------------------------------------
# The codec cases


@dataclass(frozen=True)
class Case:
    """One row of the table: a named operation on a message of some size."""

    name: str
    op: str  # "encode" or "decode"
    size: int
    work: Callable[[], object]


def packet_cases(keyring: Keyring) -> list[Case]:
    """Encode and decode of the gossip compound: plain, encrypted, compressed."""
    messages = gossip_messages()
    compound = Compound(tuple(messages))
    plain = encode_packet(compound, crc=True)
    sealed = encode_packet(compound, crc=True, keyring=keyring)
    built = build_packet(messages, compress=True, crc=True)
    squeezed = encode_packet(encode_frame(Compressed(compound)), crc=True)
    built_name = "build_packet, crc" + (", lzw" if len(built) < len(plain) else "")
    require(decode_packet(plain).frame == compound, "plain packet")
    require(decode_packet(sealed, keyring=keyring).frame == compound, "sealed packet")
    require(decode_packet(built).frame in (compound, Compressed(compound)), "built")
    require(decode_packet(squeezed).frame == Compressed(compound), "lzw packet")
    cases = [
        Case("ping+3 compound, crc", "encode", len(plain),
             lambda: encode_packet(compound, crc=True)),
        Case("ping+3 compound, crc", "decode", len(plain),
             lambda: decode_packet(plain)),
        Case("ping+3 compound, crc, aes-256", "encode", len(sealed),
             lambda: encode_packet(compound, crc=True, keyring=keyring)),
        Case("ping+3 compound, crc, aes-256", "decode", len(sealed),
             lambda: decode_packet(sealed, keyring=keyring)),
        Case(built_name, "encode", len(built),
             lambda: build_packet(messages, compress=True, crc=True)),
        Case(built_name, "decode", len(built), lambda: decode_packet(built)),
    ]  # fmt: skip
    if len(built) >= len(plain):  # LZW did not pay off: time an LZW packet anyway
        cases.append(Case("ping+3 compound, crc, lzw forced", "decode",
                          len(squeezed), lambda: decode_packet(squeezed)))  # fmt: skip
    return cases


def stream_cases(keyring: Keyring) -> list[Case]:
    """Encode and decode of a 200-node push/pull, compressed as Go sends it."""
    message = push_pull()
    plain = encode_stream(message)
    sealed = encode_stream(message, keyring=keyring)
    for data, ring in ((plain, None), (sealed, keyring)):
        frame = StreamDecoder(keyring=ring).feed(data)
        require(frame is not None and frame.message == message, "push/pull stream")
    return [
        Case("push/pull 200 nodes, lzw", "encode", len(plain),
             lambda: encode_stream(message)),
        Case("push/pull 200 nodes, lzw", "decode", len(plain),
             lambda: StreamDecoder().feed(plain)),
        Case("push/pull 200 nodes, lzw, aes-256", "encode", len(sealed),
             lambda: encode_stream(message, keyring=keyring)),
        Case("push/pull 200 nodes, lzw, aes-256", "decode", len(sealed),
             lambda: StreamDecoder(keyring=keyring).feed(sealed)),
    ]  # fmt: skip


def require(condition: bool, what: str) -> None:
    """Refuse to time a codec that does not round-trip its input."""
    if not condition:
        raise SystemExit(f"{what}: decoding did not give back what was encoded")


# ----------------------------------------------------------------------------
# Reporting


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def print_baseline(loopback: LoopbackRates) -> None:
    """The loopback rows."""
    print(
        f"Loopback baseline, {BASELINE_DATAGRAM}-byte datagrams on 127.0.0.1 "
        "(its runs taken in turns with the codec rows)"
    )
    print(f"  {'loop':<12}{'median/s':>14}{'best/s':>14}{'us/op':>9}")
    for name, timing in loopback.items():
        print(
            f"  {name:<12}{_rate(timing.median):>14}{_rate(timing.best):>14}"
            f"{1e6 / timing.median:>9.2f}"
        )
    print()


def print_table(
    results: Sequence[tuple[Case, Timing]], loopback: LoopbackRates
) -> None:
    """The codec rows; decode rows carry their ratios to the two loopback loops."""
    recv, both = loopback["recv only"].median, loopback["send+recv"].median
    print(f"Codec; target: decode >= {TARGET_RATIO}x the receive-only loop")
    print(
        f"  {'case':<34}{'op':<7}{'bytes':>6}{'median/s':>10}{'best/s':>10}"
        f"{'us/op':>9}{'x recv':>8}{'x s+r':>7}  target"
    )
    for case, timing in results:
        line = (
            f"  {case.name:<34}{case.op:<7}{case.size:>6}{_rate(timing.median):>10}"
            f"{_rate(timing.best):>10}{1e6 / timing.median:>9.1f}"
        )
        if case.op == "decode":
            ratio = timing.median / recv
            verdict = "met" if ratio >= TARGET_RATIO else "BELOW"
            line += f"{ratio:>8.4f}{timing.median / both:>7.4f}  {verdict}"
        print(line)
    print(
        "\n  x recv: median decode rate / median receive-only rate (the target);"
        "\n  x s+r:  the same against the send-then-receive loop."
        "\n  A push/pull is one TCP exchange per peer and push/pull interval; 1/ratio"
        "\n  is how many datagrams could be received in the time one decodes.\n"
    )


def print_profile(cases: Sequence[Case], seconds: float, top: int) -> None:
    """cProfile each decode case for about ``seconds`` and print the hot spots."""
    for case in cases:
        if case.op != "decode":
            continue
        profiler = cProfile.Profile()
        deadline = time.perf_counter() + seconds
        profiler.enable()
        while time.perf_counter() < deadline:
            for _ in repeat(None, 50):
                case.work()
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("tottime").print_stats(top)
        print(f"--- profile: {case.name} (decode), sorted by own time")
        print(_trim_profile(out.getvalue()))


def _trim_profile(text: str) -> str:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(lines[start:]).rstrip() + "\n"


# ----------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run of a few seconds"
    )
    parser.add_argument("--run-seconds", type=float, help="length of one run")
    parser.add_argument("--repeats", type=int, help="runs per measurement")
    parser.add_argument("--profile", action="store_true", help="cProfile decoders")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """Full runs: 5 x 0.2 s; quick runs: 3 x 0.05 s, unless overridden."""
    run_seconds = args.run_seconds or (0.05 if args.quick else 0.2)
    repeats = args.repeats or (3 if args.quick else 5)
    if run_seconds <= 0 or not 1 <= repeats <= 100:
        raise SystemExit("--run-seconds must be > 0 and --repeats within 1..100")
    return Settings(min(run_seconds, 5.0), repeats)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure everything and print the tables."""
    args = parse_args(argv)
    settings = settings_from(args)
    keyring = demo_keyring()
    cases = packet_cases(keyring) + stream_cases(keyring)
    print(
        f"Python {sys.version.split()[0]}; each figure: {settings.repeats} runs "
        f"of ~{settings.run_seconds:g} s, median and best; "
        f"load average {os.getloadavg()[0]:.2f} at start\n"
    )
    with udp_pair() as (tx, rx):
        baseline = loopback_runners(tx, rx)
        runners = [*baseline.values(), *(loop_runner(case.work) for case in cases)]
        timings = measure_all(runners, settings)
    loopback = dict(zip(baseline, timings, strict=False))
    results = list(zip(cases, timings[len(baseline) :], strict=True))
    print_baseline(loopback)
    print_table(results, loopback)
    if args.profile:
        print_profile(cases, 0.5 if args.quick else 2.0, 12 if args.quick else 18)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
