"""Read classic pcap captures of gossip traffic, with no dependencies.

Tests replay what real agents sent each other, so they need the UDP datagrams and
the TCP byte streams out of a ``tcpdump -w`` file. This is the smallest reader
that does that well enough to trust:

* the classic pcap container (not pcapng) in either byte order, with microsecond
  or nanosecond timestamps;
* the link layers tcpdump writes: Ethernet (also on Linux loopback), Linux cooked
  capture v1 and v2, raw IP and the BSD loopback header;
* IPv4 only. A record holding anything else (IPv6, ARP, ICMP, an IP fragment, or a
  packet cut short by the snapshot length) is counted in ``skipped``.

TCP is reassembled per direction: each direction of a connection becomes one
:class:`TcpStream`. Segments are placed by their sequence number relative to the
initial sequence number, counted modulo 2**32 so a wrap is harmless; bytes seen
twice are kept once; a missing range leaves ``complete`` false. A SYN with a new
sequence number on a 4-tuple in use starts a new connection. Checksums are not
checked, because loopback captures show checksums that offloading never filled in.

Every length read from the file is bounded before it is used: a record holds at
most 262144 bytes and a stream at most 64 MiB (:class:`LimitExceededError`). Any
other input that breaks the format raises :class:`RemoteProtocolError` naming the
record, numbered from 1 as Wireshark numbers frames.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

from serfcast.errors import LimitExceededError, RemoteProtocolError

__all__ = [
    "MAX_RECORD_LENGTH",
    "MAX_STREAM_LENGTH",
    "PcapContents",
    "TcpStream",
    "UdpDatagram",
    "read_pcap",
]

MAX_RECORD_LENGTH = 262144
MAX_STREAM_LENGTH = 64 * 1024 * 1024

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    """One UDP datagram, with the capture time in seconds since the epoch."""

    time: float
    src: Address
    dst: Address
    payload: bytes


@dataclass(frozen=True, slots=True)
class TcpStream:
    """One direction of one TCP connection, reassembled in sequence order.

    ``time`` is when the first payload byte was captured. ``complete`` is true only
    when the SYN and a FIN or RST were seen and no byte in between is missing;
    otherwise ``payload`` holds what was captured, with missing ranges left out.
    """

    time: float
    src: Address
    dst: Address
    payload: bytes
    complete: bool


@dataclass(frozen=True, slots=True)
class PcapContents:
    """What :func:`read_pcap` found.

    ``datagrams`` are in capture order, ``streams`` in order of their first payload
    byte (directions that carried no payload are left out). ``skipped`` counts the
    records that were not IPv4 UDP or TCP; records left out by ``ports`` are not
    counted.
    """

    datagrams: list[UdpDatagram]
    streams: list[TcpStream]
    skipped: int


def read_pcap(data: bytes, *, ports: Collection[int] | None = None) -> PcapContents:
    """Parse a classic pcap file held in memory.

    With ``ports``, keep only UDP and TCP traffic whose source or destination port
    is in it. Raises RemoteProtocolError (LimitExceededError for a size limit) if
    the file is damaged or not a pcap file.
    """
    view = memoryview(data)
    file_format = _read_file_header(view)
    reader = _Reader(_LINK_DECODERS[file_format.link_type], ports)
    for record in _records(view, file_format):
        reader.record(record)
    return reader.contents()


# --- The container --------------------------------------------------------------------

_FILE_HEADER_LENGTH = 24
_RECORD_HEADER_LENGTH = 16
_PCAPNG_MAGIC = bytes.fromhex("0a0d0d0a")
# magic number as it appears in the file -> (struct byte order, timestamp units/s)
_MAGICS = {
    bytes.fromhex("d4c3b2a1"): ("<", 1_000_000),
    bytes.fromhex("a1b2c3d4"): (">", 1_000_000),
    bytes.fromhex("4d3cb2a1"): ("<", 1_000_000_000),
    bytes.fromhex("a1b23c4d"): (">", 1_000_000_000),
}


@dataclass(frozen=True, slots=True)
class _FileFormat:
    byte_order: str
    units_per_second: int
    link_type: int


@dataclass(frozen=True, slots=True)
class _Record:
    number: int
    time: float
    frame: memoryview
    snapped: bool  # captured shorter than it was on the wire


def _read_file_header(data: memoryview) -> _FileFormat:
    if len(data) < _FILE_HEADER_LENGTH:
        raise RemoteProtocolError(f"pcap: file header is truncated ({len(data)} bytes)")
    magic = bytes(data[:4])
    if magic == _PCAPNG_MAGIC:
        raise RemoteProtocolError(
            "pcap: this is a pcapng file; convert it with `editcap -F pcap`"
        )
    if magic not in _MAGICS:
        raise RemoteProtocolError(f"pcap: unknown magic number {magic.hex()}")
    byte_order, units = _MAGICS[magic]
    major, _, _, _, _, link_field = struct.unpack_from(byte_order + "HHiIII", data, 4)
    if major != 2:
        raise RemoteProtocolError(f"pcap: unsupported format version {major}")
    link_type = link_field & 0xFFFF  # the upper bits describe an Ethernet FCS
    if link_type not in _LINK_DECODERS:
        raise RemoteProtocolError(f"pcap: link type {link_type} is not supported")
    return _FileFormat(byte_order, units, link_type)


def _records(data: memoryview, file_format: _FileFormat) -> Iterator[_Record]:
    header = struct.Struct(file_format.byte_order + "IIII")
    offset, number = _FILE_HEADER_LENGTH, 0
    while offset < len(data):
        number += 1
        if len(data) - offset < _RECORD_HEADER_LENGTH:
            raise RemoteProtocolError(f"pcap: record {number} is truncated (header)")
        seconds, fraction, captured, original = header.unpack_from(data, offset)
        if captured > MAX_RECORD_LENGTH:
            raise LimitExceededError(
                f"pcap: record {number} claims {captured} bytes,"
                f" more than the limit of {MAX_RECORD_LENGTH}"
            )
        start = offset + _RECORD_HEADER_LENGTH
        offset = start + captured
        if offset > len(data):
            raise RemoteProtocolError(f"pcap: record {number} is truncated")
        time = seconds + fraction / file_format.units_per_second
        yield _Record(number, time, data[start:offset], captured < original)


# --- Link, network and transport headers ----------------------------------------------


class _BadPacket(RemoteProtocolError):
    """A header inside one record is short or impossible; the reader adds where."""

    def __init__(self, message: str, *, truncated: bool = False) -> None:
        super().__init__(message)
        self.truncated = truncated


def _need(buffer: memoryview, length: int, what: str) -> None:
    if len(buffer) < length:
        raise _BadPacket(f"{what} is truncated", truncated=True)


def _u16(buffer: memoryview, offset: int) -> int:
    return int.from_bytes(buffer[offset : offset + 2], "big")


_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_VLAN_TAGS = (0x8100, 0x88A8)


def _from_ethernet(frame: memoryview) -> memoryview | None:
    _need(frame, 14, "Ethernet header")
    offset, ethertype = 14, _u16(frame, 12)
    while ethertype in _ETHERTYPE_VLAN_TAGS:  # each tag costs 4 bytes: bounded
        _need(frame, offset + 4, "VLAN tag")
        offset, ethertype = offset + 4, _u16(frame, offset + 2)
    return frame[offset:] if ethertype == _ETHERTYPE_IPV4 else None


def _from_linux_sll(frame: memoryview) -> memoryview | None:
    _need(frame, 16, "Linux cooked header")
    return frame[16:] if _u16(frame, 14) == _ETHERTYPE_IPV4 else None


def _from_linux_sll2(frame: memoryview) -> memoryview | None:
    _need(frame, 20, "Linux cooked v2 header")
    return frame[20:] if _u16(frame, 0) == _ETHERTYPE_IPV4 else None


def _from_raw_ip(frame: memoryview) -> memoryview | None:
    _need(frame, 1, "IP header")
    return frame if frame[0] >> 4 == 4 else None


def _from_bsd_loopback(frame: memoryview) -> memoryview | None:
    _need(frame, 4, "loopback header")
    # AF_INET is 2 everywhere, written in the byte order of the capturing host
    family = bytes(frame[:4])
    return frame[4:] if family in (b"\x02\0\0\0", b"\0\0\0\x02") else None


_LINK_DECODERS: dict[int, Callable[[memoryview], memoryview | None]] = {
    0: _from_bsd_loopback,
    1: _from_ethernet,
    101: _from_raw_ip,
    113: _from_linux_sll,
    228: _from_raw_ip,
    276: _from_linux_sll2,
}

_PROTOCOL_TCP = 6
_PROTOCOL_UDP = 17


@dataclass(frozen=True, slots=True)
class _Ipv4:
    src: str
    dst: str
    protocol: int
    payload: memoryview


def _parse_ipv4(packet: memoryview) -> _Ipv4 | None:
    """Return the packet, or None for a fragment (which cannot be read alone)."""
    _need(packet, 20, "IPv4 header")
    if packet[0] >> 4 != 4:
        raise _BadPacket(f"IP version {packet[0] >> 4} where IPv4 was announced")
    header_length, total_length = (packet[0] & 0x0F) * 4, _u16(packet, 2)
    if header_length < 20 or total_length < header_length:
        raise _BadPacket(
            f"IPv4 header length {header_length} and total length {total_length}"
            " are impossible"
        )
    _need(packet, total_length, "IPv4 packet")
    if _u16(packet, 6) & 0x3FFF:  # more-fragments flag or a fragment offset
        # XXX: fragments are skipped, not reassembled, because gossip packets fit
        # in one loopback MTU.
        return None
    src, dst = _dotted(packet[12:16]), _dotted(packet[16:20])
    return _Ipv4(src, dst, packet[9], packet[header_length:total_length])


def _dotted(address: memoryview) -> str:
    return ".".join(str(octet) for octet in address)


_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10


@dataclass(frozen=True, slots=True)
class _Segment:
    number: int
    time: float
    src: Address
    dst: Address
    seq: int
    flags: int
    payload: memoryview


def _parse_udp(ip: _Ipv4, time: float) -> UdpDatagram:
    _need(ip.payload, 8, "UDP header")
    src_port, dst_port, length = struct.unpack_from("!HHH", ip.payload)
    if length < 8:
        raise _BadPacket(f"UDP length {length} is below the header's 8 bytes")
    _need(ip.payload, length, "UDP datagram")
    payload = bytes(ip.payload[8:length])
    return UdpDatagram(time, (ip.src, src_port), (ip.dst, dst_port), payload)


def _parse_tcp(ip: _Ipv4, record: _Record) -> _Segment:
    _need(ip.payload, 20, "TCP header")
    src_port, dst_port, seq, _, offset, flags = struct.unpack_from(
        "!HHIIBB", ip.payload
    )
    header_length = (offset >> 4) * 4
    if header_length < 20:
        raise _BadPacket(f"TCP header length {header_length} is below 20")
    _need(ip.payload, header_length, "TCP options")
    src, dst = (ip.src, src_port), (ip.dst, dst_port)
    payload = ip.payload[header_length:]
    return _Segment(record.number, record.time, src, dst, seq, flags, payload)


# --- Records to contents --------------------------------------------------------------


class _Reader:
    """Sorts decoded records into datagrams, TCP segments and skipped records."""

    def __init__(
        self,
        link_decoder: Callable[[memoryview], memoryview | None],
        ports: Collection[int] | None,
    ) -> None:
        self.link_decoder = link_decoder
        self.ports = None if ports is None else frozenset(ports)
        self.datagrams: list[UdpDatagram] = []
        self.tcp = _TcpReassembler()
        self.skipped = 0

    def record(self, record: _Record) -> None:
        try:
            self._decode(record)
        except _BadPacket as exc:
            # A packet cut off by the snapshot length is legal in pcap: skip it.
            if not (exc.truncated and record.snapped):
                raise RemoteProtocolError(
                    f"pcap: record {record.number}: {exc}"
                ) from None
            self.skipped += 1

    def contents(self) -> PcapContents:
        return PcapContents(self.datagrams, self.tcp.streams(), self.skipped)

    def _decode(self, record: _Record) -> None:
        packet = self.link_decoder(record.frame)
        ip = None if packet is None else _parse_ipv4(packet)
        if ip is not None and ip.protocol == _PROTOCOL_UDP:
            datagram = _parse_udp(ip, record.time)
            if self._wanted(datagram.src, datagram.dst):
                self.datagrams.append(datagram)
        elif ip is not None and ip.protocol == _PROTOCOL_TCP:
            segment = _parse_tcp(ip, record)
            if self._wanted(segment.src, segment.dst):
                self.tcp.segment(segment)
        else:
            self.skipped += 1

    def _wanted(self, src: Address, dst: Address) -> bool:
        return self.ports is None or src[1] in self.ports or dst[1] in self.ports


# --- TCP reassembly -------------------------------------------------------------------

_SEQ_MODULUS = 1 << 32


def _seq_distance(seq: int, base: int) -> int:
    """Signed distance from ``base`` to ``seq`` on the 32-bit sequence circle."""
    distance = (seq - base) % _SEQ_MODULUS
    return distance - _SEQ_MODULUS if distance >= _SEQ_MODULUS // 2 else distance


@dataclass(slots=True)
class _Chunk:
    start: int  # offset of the first byte in the stream
    arrival: int  # order of capture, to prefer the first copy of resent bytes
    time: float
    data: memoryview


class _HalfStream:
    """The bytes one side of a connection sent, placed by sequence number."""

    def __init__(self, src: Address, dst: Address, isn: int | None, serial: int):
        self.src, self.dst, self.isn, self.serial = src, dst, isn, serial
        # sequence number of payload byte 0; without a SYN, the first one seen
        self.base = None if isn is None else (isn + 1) % _SEQ_MODULUS
        self.ended = False
        self.chunks: list[_Chunk] = []

    def add(self, segment: _Segment, seq: int, arrival: int) -> None:
        if self.base is None:
            self.base = seq
        start, data = _seq_distance(seq, self.base), segment.payload
        if start < 0:  # keepalive probes, or bytes sent before the capture began
            data, start = data[-start:], 0
        end = start + len(data)
        if end > MAX_STREAM_LENGTH:
            raise LimitExceededError(
                f"pcap: record {segment.number}: TCP stream {self.src} -> {self.dst}"
                f" would exceed {MAX_STREAM_LENGTH} bytes"
            )
        if data:
            self.chunks.append(_Chunk(start, arrival, segment.time, data))

    def assemble(self) -> TcpStream | None:
        if not self.chunks:
            return None
        self.chunks.sort(key=lambda chunk: (chunk.start, chunk.arrival))
        pieces: list[memoryview] = []
        cursor, hole = 0, False
        for chunk in self.chunks:
            end = chunk.start + len(chunk.data)
            if end <= cursor:
                continue  # every byte of it is already placed: a retransmission
            hole = hole or chunk.start > cursor
            pieces.append(chunk.data[max(0, cursor - chunk.start) :])
            cursor = end
        complete = self.isn is not None and self.ended and not hole
        payload = b"".join(pieces)
        return TcpStream(self.chunks[0].time, self.src, self.dst, payload, complete)


class _TcpReassembler:
    """Keeps one half stream per direction, retiring them when a new SYN arrives."""

    def __init__(self) -> None:
        self.open: dict[tuple[Address, Address], _HalfStream] = {}
        self.retired: list[_HalfStream] = []
        self.arrivals = 0
        self.serials = 0

    def segment(self, segment: _Segment) -> None:
        self.arrivals += 1
        key = (segment.src, segment.dst)
        if segment.flags & _SYN:
            self._syn(segment)
        half = self.open.get(key) or self._start(key, None)
        if segment.payload:
            # data riding on a SYN starts after the sequence number the SYN uses
            seq = segment.seq + 1 if segment.flags & _SYN else segment.seq
            half.add(segment, seq % _SEQ_MODULUS, self.arrivals)
        if segment.flags & (_FIN | _RST):
            half.ended = True
        reverse = self.open.get((segment.dst, segment.src))
        if segment.flags & _RST and reverse is not None:
            reverse.ended = True  # a reset ends the connection both ways

    def streams(self) -> list[TcpStream]:
        halves = sorted([*self.retired, *self.open.values()], key=lambda h: h.serial)
        streams = [stream for half in halves if (stream := half.assemble())]
        return sorted(streams, key=lambda stream: stream.time)

    def _syn(self, segment: _Segment) -> None:
        key = (segment.src, segment.dst)
        current = self.open.get(key)
        if current is not None and current.isn == segment.seq:
            return  # the same SYN sent again
        self._retire(key)
        if not segment.flags & _ACK:  # a client's SYN: the old server side is over
            self._retire((segment.dst, segment.src))
        self._start(key, segment.seq)

    def _start(self, key: tuple[Address, Address], isn: int | None) -> _HalfStream:
        self.serials += 1
        half = self.open[key] = _HalfStream(*key, isn, self.serials)
        return half

    def _retire(self, key: tuple[Address, Address]) -> None:
        half = self.open.pop(key, None)
        if half is not None:
            self.retired.append(half)
