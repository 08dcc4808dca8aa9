"""Tests for serfcast.pcap: real captures, hand-built files, and fuzzing."""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import GOLDEN_DIR
from serfcast.errors import LimitExceededError, RemoteProtocolError
from serfcast.pcap import (
    MAX_RECORD_LENGTH,
    MAX_STREAM_LENGTH,
    PcapContents,
    TcpStream,
    read_pcap,
)

CAPTURES = GOLDEN_DIR / "captures"
DECODED_CAPTURES = sorted(CAPTURES.glob("*.decoded.txt"))
INJECT_CAPTURES = sorted(CAPTURES.glob("inject_*.pcap"))


# --- The real captures ----------------------------------------------------------------


class Entry(NamedTuple):
    """One ``--- UDP`` or ``=== TCP`` line of a ``.decoded.txt`` file."""

    proto: str
    time: float
    src_port: int
    dst_port: int
    length: int
    first: int


ENTRY = re.compile(
    r"^(?:---|===) (UDP|TCP) t=\s*([\d.]+) (\d+)->(\d+) (\d+)B first=(\d+)"
)


def decoded_entries(path: Path) -> list[Entry]:
    entries = []
    for line in path.read_text().splitlines():
        if match := ENTRY.match(line):
            proto, time, src, dst, length, first = match.groups()
            entries.append(
                Entry(proto, float(time), int(src), int(dst), int(length), int(first))
            )
    return entries


def read_capture(name: str) -> PcapContents:
    return read_pcap((CAPTURES / name).read_bytes())


def test_every_capture_is_found() -> None:
    assert len(DECODED_CAPTURES) == 5
    assert len(INJECT_CAPTURES) == 4
    assert all(
        path.with_name(path.name[:-12] + ".pcap").exists() for path in DECODED_CAPTURES
    )


@pytest.mark.parametrize("decoded", DECODED_CAPTURES, ids=lambda path: path.name)
def test_capture_agrees_with_its_decoding(decoded: Path) -> None:
    contents = read_capture(decoded.name.removesuffix(".decoded.txt") + ".pcap")
    expected = decoded_entries(decoded)
    tcp_expected = [entry for entry in expected if entry.proto == "TCP"]
    assert len(tcp_expected) == 2  # one push-pull each way when beta joins

    got = [
        ("UDP", d.src[1], d.dst[1], len(d.payload), d.payload[0])
        for d in contents.datagrams
    ] + [
        ("TCP", s.src[1], s.dst[1], len(s.payload), s.payload[0])
        for s in contents.streams
    ]
    assert got == [entry[:1] + entry[2:] for entry in expected]
    assert contents.skipped == 0
    assert all(stream.complete for stream in contents.streams)


@pytest.mark.parametrize("decoded", DECODED_CAPTURES, ids=lambda path: path.name)
def test_capture_times_agree_with_its_decoding(decoded: Path) -> None:
    contents = read_capture(decoded.name.removesuffix(".decoded.txt") + ".pcap")
    expected = decoded_entries(decoded)
    # The decoding prints times rounded to 1 ms from an origin it does not show, so
    # compare each time's distance from the first stream's.
    origin_expected = next(entry.time for entry in expected if entry.proto == "TCP")
    origin = contents.streams[0].time
    times = [d.time for d in contents.datagrams] + [s.time for s in contents.streams]
    for entry, time in zip(expected, times, strict=True):
        assert abs((time - origin) - (entry.time - origin_expected)) < 0.0015


PUSH_PULL_PREFIX = bytes.fromhex(
    "0982a4416c676f00a3427566da"
)  # compress{Algo 0, Buf raw16


def assert_push_pull(stream: TcpStream) -> None:
    """A plaintext push-pull is one compress message whose Buf fills the stream."""
    assert stream.payload.startswith(PUSH_PULL_PREFIX)
    buf_length = int.from_bytes(stream.payload[13:15], "big")
    assert len(stream.payload) == 15 + buf_length


def assert_encrypted_frame(stream: TcpStream) -> None:
    """An encrypted stream is one frame: 0x0a, u32 length, then that many bytes."""
    assert stream.payload[0] == 0x0A and stream.payload[5] == 0x01
    assert len(stream.payload) == 5 + int.from_bytes(stream.payload[1:5], "big")


@pytest.mark.parametrize("name", ["serf094_plain.pcap", "mixed_a0101_b094_plain.pcap"])
def test_plain_push_pull_streams_are_whole(name: str) -> None:
    for stream in read_capture(name).streams:
        assert_push_pull(stream)


def test_encrypted_captures_hold_only_encrypted_traffic() -> None:
    for name in ["serf094_encrypted.pcap", "serf0101_encrypted.pcap"]:
        contents = read_capture(name)
        assert all(d.payload[0] == 0x01 for d in contents.datagrams)
        for stream in contents.streams:
            assert_encrypted_frame(stream)


CLUSTER_PORTS = {18200, 18201, 18202, 18220, 18221, 18222}
INJECTOR_PORTS = {18250, 18270}
MEMBER_FIRST_BYTES = {0x00, 0x02, 0x07, 0x08, 0x09, 0x0C}  # ping ack compound ...


@pytest.mark.parametrize("path", INJECT_CAPTURES, ids=lambda path: path.name)
def test_injection_capture_datagrams(path: Path) -> None:
    contents = read_pcap(path.read_bytes())
    encrypted = path.stem.endswith("_enc")
    members = [d for d in contents.datagrams if {d.src[1], d.dst[1]} <= CLUSTER_PORTS]
    injected = [d for d in contents.datagrams if d.src[1] in INJECTOR_PORTS]
    assert len(members) > 200 and len(injected) >= 15
    assert len(members) + len(injected) == len(contents.datagrams)
    assert contents.skipped == 0

    first_bytes = {d.payload[0] for d in members}
    if encrypted:
        assert first_bytes == {0x01}
    else:
        assert {0x00, 0x02, 0x0C} <= first_bytes <= MEMBER_FIRST_BYTES
    if encrypted:  # one plaintext user message, to see it refused
        plaintext = [d.payload[:2] for d in injected if d.payload[0] != 0x01]
        assert plaintext == [b"\x08\x03"]
    else:  # among the malformed probes: an unknown message type
        assert bytes.fromhex("ff010203") in {d.payload for d in injected}


@pytest.mark.parametrize("path", INJECT_CAPTURES, ids=lambda path: path.name)
def test_injection_capture_streams(path: Path) -> None:
    streams = read_pcap(path.read_bytes()).streams
    encrypted = path.stem.endswith("_enc")
    assert all(stream.complete for stream in streams)
    assert bytes.fromhex("fe000067617262616765") in {s.payload for s in streams}
    assert any(s.payload.startswith(b"\x08\x81\xaaUserMsgLen") for s in streams)
    for stream in streams:
        if stream.payload[0] == (0x0A if encrypted else 0x09):
            check = assert_encrypted_frame if encrypted else assert_push_pull
            check(stream)
        else:  # a user message pushed over TCP, or the invalid type 0xfe
            assert stream.payload[0] in {0x08, 0xFE}


def test_ports_filter_keeps_matching_traffic() -> None:
    data = (CAPTURES / "serf0101_plain.pcap").read_bytes()
    everything = read_pcap(data)
    only_tcp_peer = read_pcap(data, ports=[53744])
    assert only_tcp_peer.datagrams == []
    assert only_tcp_peer.streams == everything.streams
    assert read_pcap(data, ports=[18402]).streams == []
    nothing = read_pcap(data, ports=())
    assert (nothing.datagrams, nothing.streams) == ([], [])


# --- Hand-built files -----------------------------------------------------------------

CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 7946)
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def ipv4(
    src: str, dst: str, protocol: int, payload: bytes, *, fragment: int = 0
) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        1,
        fragment,
        64,
        protocol,
        0,
        bytes(int(part) for part in src.split(".")),
        bytes(int(part) for part in dst.split(".")),
    )
    return header + payload


def udp(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    header = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0)
    return ipv4(src[0], dst[0], 17, header + payload)


def tcp(
    src: tuple[str, int],
    dst: tuple[str, int],
    seq: int,
    flags: int,
    payload: bytes = b"",
) -> bytes:
    options = b"\x01\x01\x01\x01"  # four NOPs, so the header is longer than 20
    header = struct.pack(
        "!HHIIBBHHH", src[1], dst[1], seq % 2**32, 0, 0x60, flags, 65535, 0, 0
    )
    return ipv4(src[0], dst[0], 6, header + options + payload)


def ethernet(packet: bytes, ethertype: int = 0x0800) -> bytes:
    return bytes(12) + struct.pack("!H", ethertype) + packet


class Record(NamedTuple):
    frame: bytes
    time: float = 1.0
    original_length: int | None = None


def pcap(
    frames: Sequence[bytes | Record],
    *,
    link_type: int = 1,
    byte_order: str = "<",
    nanoseconds: bool = False,
) -> bytes:
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    units = 10**9 if nanoseconds else 10**6
    out = struct.pack(byte_order + "IHHiIII", magic, 2, 4, 0, 0, 262144, link_type)
    for index, item in enumerate(frames):
        record = Record(item, 1.0 + index) if isinstance(item, bytes) else item
        seconds = int(record.time)
        fraction = round((record.time - seconds) * units)
        original = record.original_length or len(record.frame)
        out += struct.pack(
            byte_order + "IIII", seconds, fraction, len(record.frame), original
        )
        out += record.frame
    return out


def tcp_capture(segments: list[bytes]) -> PcapContents:
    return read_pcap(pcap([ethernet(segment) for segment in segments]))


LINK_LAYERS: dict[str, tuple[int, Callable[[bytes], bytes]]] = {
    "null-little": (0, lambda p: struct.pack("<I", 2) + p),
    "null-big": (0, lambda p: struct.pack(">I", 2) + p),
    "ethernet": (1, ethernet),
    "ethernet-vlan": (1, lambda p: bytes(12) + bytes.fromhex("8100 0005 0800") + p),
    "raw": (101, lambda p: p),
    "sll": (113, lambda p: bytes(14) + b"\x08\x00" + p),
    "ipv4": (228, lambda p: p),
    "sll2": (276, lambda p: b"\x08\x00" + bytes(18) + p),
}


@pytest.mark.parametrize("layer", LINK_LAYERS)
@pytest.mark.parametrize("byte_order", ["<", ">"])
@pytest.mark.parametrize("nanoseconds", [False, True])
def test_link_layers_and_file_formats(
    layer: str, byte_order: str, nanoseconds: bool
) -> None:
    link_type, wrap = LINK_LAYERS[layer]
    record = Record(wrap(udp(CLIENT, SERVER, b"ping")), time=1700000000.25)
    data = pcap(
        [record], link_type=link_type, byte_order=byte_order, nanoseconds=nanoseconds
    )
    [datagram] = read_pcap(data).datagrams
    assert datagram.src == CLIENT and datagram.dst == SERVER
    assert datagram.payload == b"ping"
    assert datagram.time == 1700000000.25


def test_nanosecond_timestamps_keep_their_precision() -> None:
    record = Record(ethernet(udp(CLIENT, SERVER, b"")), time=12.000000123)
    [datagram] = read_pcap(pcap([record], nanoseconds=True)).datagrams
    assert datagram.time == pytest.approx(12.000000123, abs=1e-12)
    assert datagram.payload == b""


def test_ethernet_padding_is_not_payload() -> None:
    frame = ethernet(udp(CLIENT, SERVER, b"ab"))
    padded = frame + bytes(60 - len(frame)) + b"FCS!"
    [datagram] = read_pcap(pcap([padded])).datagrams
    assert datagram.payload == b"ab"


def test_other_traffic_is_counted_as_skipped() -> None:
    ipv6 = bytes([0x60]) + bytes(39)
    frames = [
        ethernet(ipv6, 0x86DD),
        ethernet(bytes(28), 0x0806),  # ARP
        ethernet(ipv4(CLIENT[0], SERVER[0], 1, bytes(8))),  # ICMP
        ethernet(ipv4(CLIENT[0], SERVER[0], 17, bytes(16), fragment=0x2000)),
        ethernet(udp(CLIENT, SERVER, b"kept")),
    ]
    contents = read_pcap(pcap(frames))
    assert contents.skipped == 4
    assert [d.payload for d in contents.datagrams] == [b"kept"]
    raw_ipv6 = read_pcap(pcap([ipv6], link_type=101))
    assert (raw_ipv6.skipped, raw_ipv6.datagrams) == (1, [])
    null_ipv6 = read_pcap(pcap([struct.pack("<I", 30) + ipv6], link_type=0))
    assert null_ipv6.skipped == 1


def test_packet_cut_by_snapshot_length_is_skipped() -> None:
    frame = ethernet(udp(CLIENT, SERVER, bytes(100)))
    record = Record(frame[:60], original_length=len(frame))
    contents = read_pcap(pcap([record, ethernet(udp(CLIENT, SERVER, b"x"))]))
    assert contents.skipped == 1
    assert [d.payload for d in contents.datagrams] == [b"x"]


def handshake(isn: int = 1000, server_isn: int = 5000) -> list[bytes]:
    return [
        tcp(CLIENT, SERVER, isn, SYN),
        tcp(SERVER, CLIENT, server_isn, SYN | ACK),
        tcp(CLIENT, SERVER, isn + 1, ACK),
    ]


def test_tcp_reorders_and_drops_duplicates() -> None:
    contents = tcp_capture(
        [
            *handshake(),
            tcp(CLIENT, SERVER, 1006, ACK, b"world"),
            tcp(CLIENT, SERVER, 1001, ACK | PSH, b"hello"),
            tcp(CLIENT, SERVER, 1001, ACK | PSH, b"hello"),  # retransmitted
            tcp(CLIENT, SERVER, 1004, ACK, b"lowo"),  # overlaps both
            tcp(CLIENT, SERVER, 1003, ACK, b"ll"),  # inside bytes already placed
            tcp(CLIENT, SERVER, 1011, ACK | PSH, b"!"),
            tcp(CLIENT, SERVER, 1012, FIN | ACK),
        ]
    )
    [stream] = contents.streams
    assert stream == TcpStream(5.0, CLIENT, SERVER, b"helloworld!", complete=True)


def test_tcp_sequence_numbers_wrap() -> None:
    isn = 2**32 - 3
    contents = tcp_capture(
        [
            *handshake(isn),
            tcp(CLIENT, SERVER, isn + 5, ACK, b"EFGH"),  # wrapped past zero
            tcp(CLIENT, SERVER, isn + 1, ACK, b"ABCD"),
            tcp(CLIENT, SERVER, isn + 9, FIN | ACK),
        ]
    )
    [stream] = contents.streams
    assert (stream.payload, stream.complete, stream.time) == (b"ABCDEFGH", True, 5.0)


def test_tcp_gap_leaves_stream_incomplete() -> None:
    contents = tcp_capture(
        [
            *handshake(),
            tcp(CLIENT, SERVER, 1001, ACK, b"abc"),
            tcp(CLIENT, SERVER, 1010, ACK, b"xyz"),
            tcp(CLIENT, SERVER, 1013, FIN | ACK),
        ]
    )
    [stream] = contents.streams
    assert (stream.payload, stream.complete) == (b"abcxyz", False)


def test_tcp_without_end_or_start_is_incomplete() -> None:
    no_end = tcp_capture([*handshake(), tcp(CLIENT, SERVER, 1001, ACK, b"abc")])
    assert [(s.payload, s.complete) for s in no_end.streams] == [(b"abc", False)]
    no_start = tcp_capture(
        [
            tcp(CLIENT, SERVER, 77, ACK, b"mid"),
            tcp(CLIENT, SERVER, 74, ACK, b"abcmiddle"),  # starts before "mid"
            tcp(CLIENT, SERVER, 83, ACK | FIN),
        ]
    )
    assert [(s.payload, s.complete) for s in no_start.streams] == [(b"middle", False)]


def test_tcp_both_directions_and_reset() -> None:
    contents = tcp_capture(
        [
            *handshake(),
            tcp(CLIENT, SERVER, 1001, ACK, b"request"),
            tcp(SERVER, CLIENT, 5001, ACK, b"reply"),
            tcp(SERVER, CLIENT, 5006, RST),
        ]
    )
    got = [(s.src, s.payload, s.complete, s.time) for s in contents.streams]
    assert got == [(CLIENT, b"request", True, 4.0), (SERVER, b"reply", True, 5.0)]


def test_tcp_new_syn_on_same_ports_starts_new_connection() -> None:
    contents = tcp_capture(
        [
            *handshake(1000, 5000),
            tcp(CLIENT, SERVER, 1001, ACK, b"first"),
            tcp(SERVER, CLIENT, 5001, ACK, b"answer1"),
            *handshake(9000, 3000),
            tcp(CLIENT, SERVER, 9001, ACK | FIN, b"second"),
            tcp(SERVER, CLIENT, 3001, ACK | FIN, b"answer2"),
        ]
    )
    got = [(s.payload, s.complete) for s in contents.streams]
    assert got == [
        (b"first", False),
        (b"answer1", False),
        (b"second", True),
        (b"answer2", True),
    ]


def test_tcp_retransmitted_syn_changes_nothing() -> None:
    contents = tcp_capture(
        [
            *handshake(),
            tcp(CLIENT, SERVER, 1000, SYN),
            tcp(SERVER, CLIENT, 5001, ACK | FIN, b"banner"),
            tcp(CLIENT, SERVER, 1001, ACK | FIN, b"bye"),
        ]
    )
    got = [(s.src, s.payload, s.complete) for s in contents.streams]
    assert got == [(SERVER, b"banner", True), (CLIENT, b"bye", True)]


def test_tcp_client_syn_ends_the_old_connection_both_ways() -> None:
    contents = tcp_capture(
        [
            *handshake(1000, 5000),
            tcp(SERVER, CLIENT, 5001, ACK, b"old"),
            tcp(CLIENT, SERVER, 9000, SYN),  # its SYN-ACK was not captured
            tcp(SERVER, CLIENT, 3001, ACK, b"new"),
        ]
    )
    assert [s.payload for s in contents.streams] == [b"old", b"new"]


def test_tcp_streams_are_ordered_by_first_payload() -> None:
    contents = tcp_capture(
        [
            *handshake(),
            tcp(SERVER, CLIENT, 5001, ACK, b"server speaks first"),
            tcp(CLIENT, SERVER, 1001, ACK, b"client answers"),
        ]
    )
    assert [s.src for s in contents.streams] == [SERVER, CLIENT]
    assert [s.time for s in contents.streams] == [4.0, 5.0]


def test_tcp_data_on_syn_follows_the_syn() -> None:
    contents = tcp_capture(
        [
            tcp(CLIENT, SERVER, 99, SYN, b"fast"),
            tcp(CLIENT, SERVER, 104, ACK | FIN, b"open"),
        ]
    )
    assert [(s.payload, s.complete) for s in contents.streams] == [(b"fastopen", True)]


def test_tcp_keepalive_before_data_is_ignored() -> None:
    contents = tcp_capture(
        [
            *handshake(),
            tcp(CLIENT, SERVER, 1000, ACK, b"\x00"),  # keepalive probe: seq - 1
            tcp(CLIENT, SERVER, 1001, ACK | FIN, b"data"),
        ]
    )
    assert [(s.payload, s.complete) for s in contents.streams] == [(b"data", True)]


def test_ports_filter_applies_to_either_end() -> None:
    frames = [
        ethernet(udp(CLIENT, SERVER, b"a")),
        ethernet(udp(SERVER, CLIENT, b"b")),
        ethernet(udp(("10.0.0.3", 1), ("10.0.0.4", 2), b"c")),
        ethernet(tcp(("10.0.0.3", 1), ("10.0.0.4", 2), 1, ACK, b"d")),
    ]
    contents = read_pcap(pcap(frames), ports={7946})
    assert [d.payload for d in contents.datagrams] == [b"a", b"b"]
    assert (contents.streams, contents.skipped) == ([], 0)


# --- Damaged files --------------------------------------------------------------------

GOOD_FRAME = ethernet(udp(CLIENT, SERVER, b"payload"))


def good_file() -> bytes:
    return pcap([GOOD_FRAME, GOOD_FRAME])


def replace(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


FIRST_FRAME = 24 + 16  # file header, then the first record header
SECOND_RECORD = FIRST_FRAME + len(GOOD_FRAME)
IP = FIRST_FRAME + 14

DAMAGED = {
    "empty": (b"", "file header is truncated"),
    "short header": (good_file()[:20], "file header is truncated"),
    "bad magic": (b"\0" * 24, "unknown magic number 00000000"),
    "pcapng": (bytes.fromhex("0a0d0d0a") + bytes(40), "pcapng"),
    "version": (replace(good_file(), 4, b"\x03\x00"), "format version 3"),
    "link type": (replace(good_file(), 20, b"\x69\x00"), "link type 105"),
    "record header cut": (good_file()[: SECOND_RECORD + 10], "record 2 is truncated"),
    "record cut": (good_file()[:-1], "record 2 is truncated"),
    "ethernet cut": (
        replace(good_file(), 32, struct.pack("<II", 10, 10)),
        "record 1: Ethernet header is truncated",
    ),
    "not ipv4": (replace(good_file(), IP, b"\x55"), "record 1: IP version 5"),
    "ihl": (replace(good_file(), IP, b"\x44"), "IPv4 header length 16"),
    "total length": (replace(good_file(), IP + 2, b"\x00\x10"), "total length 16"),
    "ip cut": (replace(good_file(), IP + 2, b"\x01\x00"), "IPv4 packet is truncated"),
    "udp length": (replace(good_file(), IP + 24, b"\x00\x07"), "UDP length 7"),
    "udp cut": (
        replace(good_file(), IP + 24, b"\x00\xff"),
        "UDP datagram is truncated",
    ),
}


@pytest.mark.parametrize("case", DAMAGED)
def test_damaged_files_raise_remote_protocol_error(case: str) -> None:
    data, message = DAMAGED[case]
    with pytest.raises(RemoteProtocolError, match=re.escape(message)):
        read_pcap(data)


def test_bad_tcp_header_length() -> None:
    segment = bytearray(ethernet(tcp(CLIENT, SERVER, 1, ACK, b"x")))
    segment[14 + 20 + 12] = 0x40
    with pytest.raises(RemoteProtocolError, match="TCP header length 16 is below 20"):
        read_pcap(pcap([bytes(segment)]))


def test_record_longer_than_limit() -> None:
    data = replace(good_file(), 32, struct.pack("<I", MAX_RECORD_LENGTH + 1))
    with pytest.raises(LimitExceededError, match="record 1 claims 262145 bytes"):
        read_pcap(data)


def test_stream_longer_than_limit() -> None:
    contents = tcp_capture(
        [*handshake(), tcp(CLIENT, SERVER, 1001 + MAX_STREAM_LENGTH - 1, ACK, b"x")]
    )
    assert len(contents.streams[0].payload) == 1  # the last byte allowed
    with pytest.raises(LimitExceededError, match="record 4: TCP stream"):
        tcp_capture(
            [
                *handshake(),
                tcp(CLIENT, SERVER, 1001 + MAX_STREAM_LENGTH - 1, ACK, b"xy"),
            ]
        )


# --- Fuzzing --------------------------------------------------------------------------


def read_or_reject(data: bytes) -> None:
    """Reading either succeeds or raises RemoteProtocolError; nothing else escapes."""
    try:
        contents = read_pcap(data)
    except RemoteProtocolError:
        return
    assert contents.skipped >= 0


@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    read_or_reject(data)


@given(
    st.sampled_from([0, 1, 101, 113, 228, 276]),
    st.sampled_from(["<", ">"]),
    st.lists(st.binary(max_size=96), max_size=6),
)
def test_arbitrary_records(
    link_type: int, byte_order: str, frames: list[bytes]
) -> None:
    read_or_reject(pcap(frames, link_type=link_type, byte_order=byte_order))


SMALL_CAPTURE = (CAPTURES / "serf0101_plain.pcap").read_bytes()


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.integers(0, len(SMALL_CAPTURE) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=8,
    ),
    st.integers(24, len(SMALL_CAPTURE)),
)
def test_mutated_real_capture(changes: list[tuple[int, int]], length: int) -> None:
    data = bytearray(SMALL_CAPTURE)
    for offset, value in changes:
        data[offset] = value
    read_or_reject(bytes(data[:length]))
