"""Turn decoded memberlist traffic into plain JSON-ready dictionaries.

This is what ``serfcast decode`` prints: one object per message, with the framing
path that led to it (label, encryption, CRC, compression, compound position), the
memberlist type and the fields under Go's own names. Byte fields are shown as hex
and, when they are printable, also as text. User messages and push/pull user
state are also decoded as Serf (see :mod:`serfcast.describe_serf`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from serfcast.describe_serf import describe_user_message, describe_user_state
from serfcast.describe_values import go_fields, show_bytes
from serfcast.errors import DecryptionError, RemoteProtocolError
from serfcast.wire.frames import Compound, Compressed, Frame, Malformed, UserMsg
from serfcast.wire.keyring import Keyring
from serfcast.wire.messages import MessageType, Struct
from serfcast.wire.packet import Packet, decode_packet, split_label
from serfcast.wire.stream import PushPull, StreamDecoder, StreamFrame

__all__ = ["describe_datagram", "describe_stream", "show_bytes"]

_TYPE_NAMES: dict[int, str] = {
    MessageType.PING: "ping",
    MessageType.INDIRECT_PING: "indirectPing",
    MessageType.ACK: "ack",
    MessageType.SUSPECT: "suspect",
    MessageType.ALIVE: "alive",
    MessageType.DEAD: "dead",
    MessageType.PUSH_PULL: "pushPull",
    MessageType.USER: "user",
    MessageType.NACK: "nack",
    MessageType.ERR: "err",
}


def _describe_message(message: Struct | UserMsg | PushPull) -> dict[str, Any]:
    if isinstance(message, UserMsg):
        payload = {"Payload": show_bytes(message.payload)}
        serf = describe_user_message(message.payload)
        return {"type": "user", "fields": payload, **serf}
    if isinstance(message, PushPull):
        state, extra = describe_user_state(message.user_state)
        fields: dict[str, Any] = {
            "Join": message.join,
            "Nodes": [go_fields(node) for node in message.nodes],
            "UserStateLen": len(message.user_state),
            "UserState": state,
        }
        return {"type": "pushPull", "fields": fields, **extra}
    return {"type": _TYPE_NAMES[message.TYPE], "fields": go_fields(message)}


def _walk(frame: Frame, path: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if isinstance(frame, Compound):
        for index, part in enumerate(frame.parts):
            inner = {**path, "compound": [*path.get("compound", []), index]}
            yield from _walk(part, inner)
        if frame.truncated:
            yield {"path": path, "error": f"{frame.truncated} compound part(s) cut off"}
        return
    if isinstance(frame, Compressed):
        yield from _walk(frame.inner, {**path, "compressed": path["compressed"] + 1})
        return
    if isinstance(frame, Malformed):
        yield {"path": path, "error": frame.error, "raw": frame.raw.hex()}
        return
    yield {"path": path, **_describe_message(frame)}


def _packet_path(packet: Packet) -> dict[str, Any]:
    return {
        "transport": "udp",
        "label": packet.label.decode("utf-8", "replace"),
        "encrypted": packet.encrypted,
        "crc": None if packet.crc is None else f"{packet.crc:08x}",
        "compressed": 0,
    }


def _decode_maybe_plain(data: bytes, keyring: Keyring | None, label: bytes) -> Packet:
    # With keys given, a packet that does not decrypt is shown as plaintext only
    # when it cannot be ciphertext: byte 0 of a sealed packet is its version, 0 or
    # 1, and guessing there would turn a wrong key into fake messages.
    try:
        return decode_packet(data, keyring=keyring, label=label)
    except DecryptionError:
        _, rest = split_label(data)
        if rest[:1] in (b"\x00", b"\x01"):
            raise
        return decode_packet(data, label=label)


def describe_datagram(
    data: bytes, keyring: Keyring | None = None, label: bytes = b""
) -> list[dict[str, Any]]:
    """Every message in one UDP datagram, or one entry with an ``error`` key.

    A message whose Serf layer did not decode has a ``serf_error`` key.
    """
    try:
        packet = _decode_maybe_plain(data, keyring, label)
    except RemoteProtocolError as exc:
        return [{"path": {"transport": "udp"}, "error": str(exc), "raw": data.hex()}]
    return list(_walk(packet.frame, _packet_path(packet)))


def _stream_path(frame: StreamFrame) -> dict[str, Any]:
    return {
        "transport": "tcp",
        "label": frame.label.decode("utf-8", "replace"),
        "encrypted": frame.encrypted,
        "compressed": int(frame.compressed),
    }


def describe_stream(
    data: bytes, keyring: Keyring | None = None, label: bytes = b""
) -> list[dict[str, Any]]:
    """The message one side of a TCP connection sent, or an ``error`` entry."""
    decoder = StreamDecoder(keyring=keyring, label=label, verify_incoming=False)
    try:
        decoder.feed(data)
        frame = decoder.feed_eof()
    except RemoteProtocolError as exc:
        return [
            {"path": {"transport": "tcp"}, "error": str(exc), "raw": data[:64].hex()}
        ]
    return [{"path": _stream_path(frame), **_describe_message(frame.message)}]
