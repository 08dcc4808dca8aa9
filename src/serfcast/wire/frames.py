"""Logical messages and their nesting: compound and compress frames.

Inside a UDP packet (after any label, encryption and CRC are peeled off) sits a
tree. A leaf is one message, ``[type][msgpack body]``, or a user message, ``[8]``
followed by raw bytes. A compound (type 7) holds up to 255 parts, each a whole
subtree: ``[7][count][count big-endian u16 lengths][parts...]``. A compress frame
(type 9) holds the LZW-compressed bytes of one subtree. Go recurses through these
freely, so compress can hold compound, whose parts can be compressed again.

:func:`decode_frame` turns bytes into that tree and :func:`encode_frame` turns the
tree back into bytes. For anything a Go node wrote, those are the same bytes; input
Go would never write (str8 or bin markers, trailing bytes, a compound announcing
parts it does not hold) decodes, but re-encodes in Go's own form.
A compound part that cannot be decoded becomes a :class:`Malformed` leaf instead of
spoiling its siblings, because Go also handles the other parts.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from serfcast.errors import LimitExceededError, LocalProtocolError, RemoteProtocolError
from serfcast.wire import lzw
from serfcast.wire.messages import (
    Ack,
    Alive,
    CompressHeader,
    Dead,
    ErrResp,
    IndirectPing,
    MessageType,
    Nack,
    Ping,
    Struct,
    Suspect,
)

__all__ = [
    "MAX_COMPOUND_PARTS",
    "MAX_DECOMPRESSED",
    "MAX_NESTING",
    "SAFE_COMPOUND_PARTS",
    "Compound",
    "Compressed",
    "Frame",
    "Malformed",
    "UserMsg",
    "compress_frame",
    "decode_frame",
    "encode_compound",
    "encode_frame",
    "iter_messages",
]

MAX_COMPOUND_PARTS: Final = 255
#: memberlist up to v0.2.3 (serf 0.9.4) misreads compounds of 128 parts or more.
SAFE_COMPOUND_PARTS: Final = 127
MAX_PART_LEN: Final = 0xFFFF
#: Decompressed bytes allowed for one packet or stream frame, all layers together.
MAX_DECOMPRESSED: Final = 40 * 1024 * 1024
#: How deep compound and compress frames may nest before decoding gives up.
MAX_NESTING: Final = 16

_UDP_MESSAGES: Final[dict[int, type[Struct]]] = {
    cls.TYPE: cls for cls in (Ping, IndirectPing, Ack, Suspect, Alive, Dead, Nack)
}
# Looking up a member on an enum class costs about as much as decoding a small
# field, and _decode runs for every message of every packet, so keep them at hand.
_COMPOUND: Final = MessageType.COMPOUND
_COMPRESS: Final = MessageType.COMPRESS
_USER: Final = MessageType.USER


@dataclass(frozen=True, slots=True)
class UserMsg:
    """Application bytes carried by memberlist; Serf's messages travel this way."""

    payload: bytes

    def encode(self) -> bytes:
        """``[8]`` then the payload, the datagram form."""
        return b"\x08" + self.payload


@dataclass(frozen=True, slots=True)
class Compound:
    """Several frames in one; ``truncated`` counts parts the sender announced but
    the packet did not hold (Go processes the rest and only logs this)."""

    parts: tuple[Frame, ...]
    truncated: int = 0


@dataclass(frozen=True, slots=True)
class Compressed:
    """A frame that travels LZW-compressed."""

    inner: Frame


@dataclass(frozen=True, slots=True)
class Malformed:
    """A compound part that did not decode: its bytes and the reason."""

    raw: bytes
    error: str


Message = Ping | IndirectPing | Ack | Nack | Suspect | Alive | Dead | ErrResp | UserMsg
Frame = Message | Compound | Compressed | Malformed


# ----------------------------------------------------------------------------
# Encoding


def encode_frame(frame: Frame) -> bytes:
    """The exact bytes of a frame tree."""
    if isinstance(frame, Compound):
        return _encode_compound(frame.parts)
    if isinstance(frame, Compressed):
        return _encode_compressed(encode_frame(frame.inner))
    if isinstance(frame, Malformed):
        return frame.raw
    return frame.encode()


def _encode_compound(parts: tuple[Frame, ...]) -> bytes:
    return encode_compound([encode_frame(part) for part in parts])


def encode_compound(blobs: Sequence[bytes]) -> bytes:
    """A compound frame around already encoded parts."""
    if not 1 <= len(blobs) <= SAFE_COMPOUND_PARTS:
        raise LocalProtocolError(
            f"a compound holds 1 to {SAFE_COMPOUND_PARTS} parts, not {len(blobs)} "
            "(older memberlist misreads more); split the messages over packets"
        )
    too_big = [len(b) for b in blobs if len(b) > MAX_PART_LEN]
    if too_big:
        raise LocalProtocolError(
            f"a compound part is {too_big[0]} bytes; parts must stay under 64 KiB"
        )
    lengths = struct.pack(f">{len(blobs)}H", *(len(b) for b in blobs))
    return bytes((MessageType.COMPOUND, len(blobs))) + lengths + b"".join(blobs)


def _encode_compressed(inner: bytes) -> bytes:
    header = CompressHeader(algo=0, buf=lzw.compress(inner))
    return header.encode()


def compress_frame(encoded: bytes) -> bytes:
    """Wrap already encoded frame bytes in a compress frame."""
    return _encode_compressed(encoded)


# ----------------------------------------------------------------------------
# Decoding


class _Budget:
    """Decompressed bytes still allowed while decoding one packet."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left

    def decompress(self, buf: bytes) -> bytes:
        out = lzw.decompress(buf, max_size=self.left)
        self.left -= len(out)
        return out


def decode_frame(data: bytes, *, max_decompressed: int = MAX_DECOMPRESSED) -> Frame:
    """Decode the logical content of a UDP packet (no label, encryption or CRC)."""
    return _decode(data, _Budget(max_decompressed), 0)


def _decode(data: bytes, budget: _Budget, depth: int) -> Frame:
    if not data:
        raise RemoteProtocolError("empty message")
    if depth > MAX_NESTING:
        raise LimitExceededError(f"frames nested deeper than {MAX_NESTING} levels")
    kind = data[0]
    if kind == _COMPOUND:
        return _decode_compound(data, budget, depth)
    if kind == _COMPRESS:
        return Compressed(_decode(decompress_body(data[1:], budget), budget, depth + 1))
    if kind == _USER:
        return UserMsg(data[1:])
    cls = _UDP_MESSAGES.get(kind)
    if cls is None:
        raise RemoteProtocolError(f"message type {kind} is not supported in a packet")
    return cls.decode_body(data[1:])  # type: ignore[return-value]


def decompress_body(body: bytes, budget: _Budget | int) -> bytes:
    """Decompress the msgpack body of a compress frame."""
    header = CompressHeader.decode_body(body)
    if header.algo != 0:
        raise RemoteProtocolError(f"unknown compression algorithm {header.algo}")
    if isinstance(budget, int):
        return lzw.decompress(header.buf, max_size=budget)
    return budget.decompress(header.buf)


def _decode_compound(data: bytes, budget: _Budget, depth: int) -> Compound:
    if len(data) < 2:
        raise RemoteProtocolError("compound message has no part count")
    count = data[1]
    offset = 2 + 2 * count
    if len(data) < offset:
        raise RemoteProtocolError("compound message is truncated in its length list")
    lengths = struct.unpack_from(f">{count}H", data, 2)
    parts: list[Frame] = []
    for index, length in enumerate(lengths):
        if offset + length > len(data):
            return Compound(tuple(parts), truncated=count - index)
        parts.append(_decode_part(data[offset : offset + length], budget, depth))
        offset += length
    return Compound(tuple(parts))


def _decode_part(part: bytes, budget: _Budget, depth: int) -> Frame:
    try:
        return _decode(part, budget, depth + 1)
    except LimitExceededError:
        raise
    except RemoteProtocolError as exc:
        return Malformed(part, str(exc))


def iter_messages(frame: Frame) -> list[Message | Malformed]:
    """The leaves of a frame tree, in wire order."""
    if isinstance(frame, Compound):
        return [leaf for part in frame.parts for leaf in iter_messages(part)]
    if isinstance(frame, Compressed):
        return iter_messages(frame.inner)
    return [frame]
