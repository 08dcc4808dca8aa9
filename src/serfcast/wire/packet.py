"""UDP packets: the label, encryption and CRC layers around a frame tree.

Sending, innermost first: the frame (possibly compressed, see :func:`build_packet`),
then ``[12][crc32 big-endian][frame]`` when the receiver speaks protocol 5, then
encryption with the primary key and the label as associated data, then the label
header ``[244][length][label]``. Receiving peels the same layers from the outside
in. The CRC layer exists only at the top of a packet, never inside a compound or a
compressed frame.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from serfcast.errors import DecryptionError, LocalProtocolError, RemoteProtocolError
from serfcast.wire.frames import (
    MAX_DECOMPRESSED,
    SAFE_COMPOUND_PARTS,
    Compound,
    Compressed,
    Frame,
    Message,
    decode_frame,
    encode_frame,
)
from serfcast.wire.keyring import Keyring
from serfcast.wire.messages import MessageType

__all__ = [
    "MAX_LABEL_LEN",
    "UDP_BUFFER_SIZE",
    "Packet",
    "add_label",
    "build_packet",
    "decode_packet",
    "encode_packet",
    "split_label",
]

#: What Go budgets for one gossip packet; the receive buffer is 64 KiB.
UDP_BUFFER_SIZE: Final = 1400
MAX_LABEL_LEN: Final = 255
_CRC_HEADER: Final = 5
# Enum members looked up once: a class attribute read on every packet is not free.
_HAS_LABEL: Final = MessageType.HAS_LABEL
_HAS_CRC: Final = MessageType.HAS_CRC


@dataclass(frozen=True, slots=True)
class Packet:
    """A decoded UDP packet: how it was framed, and what it held."""

    frame: Frame
    label: bytes = b""
    encrypted: bool = False
    encryption_version: int | None = None
    crc: int | None = None


def add_label(data: bytes, label: bytes) -> bytes:
    """Prefix the label header; an empty label means no header at all."""
    if not label:
        return data
    if len(label) > MAX_LABEL_LEN:
        raise LocalProtocolError(f"a label is at most {MAX_LABEL_LEN} bytes")
    return bytes((MessageType.HAS_LABEL, len(label))) + label + data


def split_label(data: bytes) -> tuple[bytes, bytes]:
    """Strip a label header if there is one: ``(label, rest)``."""
    if not data or data[0] != _HAS_LABEL:
        return b"", data
    if len(data) < 2:
        raise RemoteProtocolError("label header is truncated")
    size = data[1]
    if size == 0:
        raise RemoteProtocolError("label header has length 0")
    if len(data) < 2 + size:
        raise RemoteProtocolError("label header is longer than the packet")
    return data[2 : 2 + size], data[2 + size :]


def _crc_wrap(data: bytes) -> bytes:
    return bytes((MessageType.HAS_CRC,)) + zlib.crc32(data).to_bytes(4, "big") + data


def encode_packet(
    frame: Frame | bytes,
    *,
    crc: bool = False,
    keyring: Keyring | None = None,
    label: bytes = b"",
    encryption_version: int = 1,
    nonce: bytes | None = None,
) -> bytes:
    """Wrap a frame tree (or its encoded bytes) in the outer UDP layers."""
    data = frame if isinstance(frame, bytes) else encode_frame(frame)
    if crc:
        data = _crc_wrap(data)
    if keyring:
        data = keyring.encrypt(data, label, version=encryption_version, nonce=nonce)
    return add_label(data, label)


def build_packet(
    messages: Sequence[Message],
    *,
    compress: bool = True,
    crc: bool = False,
    keyring: Keyring | None = None,
    label: bytes = b"",
) -> bytes:
    """Frame messages as a Go sender would and wrap them for UDP.

    One message goes bare and several go in a compound. With ``compress`` the
    frame is compressed only when that makes it strictly shorter, as Go does.
    """
    if not messages:
        raise LocalProtocolError("a packet needs at least one message")
    if len(messages) > SAFE_COMPOUND_PARTS:
        raise LocalProtocolError(
            f"{len(messages)} messages do not fit one compound; "
            f"send at most {SAFE_COMPOUND_PARTS} per packet"
        )
    frame: Frame = messages[0] if len(messages) == 1 else Compound(tuple(messages))
    data = encode_frame(frame)
    if compress:
        packed = encode_frame(Compressed(frame))
        data = packed if len(packed) < len(data) else data
    return encode_packet(data, crc=crc, keyring=keyring, label=label)


def decode_packet(
    data: bytes,
    *,
    keyring: Keyring | None = None,
    label: bytes = b"",
    verify_incoming: bool = True,
    max_decompressed: int = MAX_DECOMPRESSED,
) -> Packet:
    """Peel a received datagram's layers and decode what it carries.

    A packet whose label differs from ``label`` is refused, as is plaintext when
    a keyring is given (unless ``verify_incoming`` is false, Go's migration mode).
    """
    got_label, data = split_label(data)
    if got_label != label:
        raise RemoteProtocolError(
            f"packet label {got_label!r} does not match the expected {label!r}"
        )
    encrypted, version = False, None
    if keyring:
        try:
            version, data = data[0] if data else None, keyring.decrypt(data, got_label)
            encrypted = True
        except DecryptionError:
            if verify_incoming:
                raise
            version = None
    crc = None
    if len(data) >= _CRC_HEADER and data[0] == _HAS_CRC:
        crc = int.from_bytes(data[1:5], "big")
        if zlib.crc32(data[5:]) != crc:
            raise RemoteProtocolError(
                f"invalid checksum: computed {zlib.crc32(data[5:]):08x}, "
                f"packet says {crc:08x}"
            )
        data = data[5:]
    frame = decode_frame(data, max_decompressed=max_decompressed)
    return Packet(frame, got_label, encrypted, version, crc)
