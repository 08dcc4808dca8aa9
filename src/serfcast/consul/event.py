"""A Consul user event, and how it rides inside a Serf user event.

The Serf event's name is ``consul:event:`` plus the event's name and its payload
is the map Consul encodes (see :mod:`serfcast.consul.codec`): ``ID``, the name
``n``, the user's payload ``p``, the filters ``nf``, ``sf``, ``tf`` and the
version ``v``. The Lamport time is the Serf envelope's; Consul fires with
``coalesce`` off.

Decoding tolerates what Consul's decoder tolerates and everything a careless
sender may produce (a malformed ID, any version); the name inside the map is
the event's name, as agents use it, even if the Serf name says otherwise.
Encoding is strict, because agents trust what they receive: :meth:`ConsulEvent.
to_serf` makes the checks Consul's API makes, refuses names Consul treats
specially, and refuses an ID that is not a 36-character hex UUID (agents and
watches parse the newest event's ID and can crash on a bad one).
"""

from __future__ import annotations

import os
import random
import re
import uuid
from dataclasses import dataclass
from typing import Any, Final, Self

from serfcast.consul import codec, filters, names
from serfcast.errors import LocalProtocolError, RemoteProtocolError
from serfcast.serf.messages import UserEvent, UserEventRecord

__all__ = ["EVENT_VERSION", "ConsulEvent", "is_event_id", "new_event_id"]

#: The version Consul writes; agents warn about (but still process) newer ones.
EVENT_VERSION: Final = 1

_ID_SHAPE: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_INT64: Final = 1 << 63


def new_event_id(rng: random.Random | None = None) -> str:
    """A fresh random event ID: a lowercase version 4 UUID.

    Pass a seeded ``rng`` for repeatable IDs in tests; the default draws from
    the operating system's secure source.
    """
    raw = rng.randbytes(16) if rng is not None else os.urandom(16)
    return str(uuid.UUID(bytes=raw, version=4))


def is_event_id(text: str) -> bool:
    """Whether ``text`` has the 8-4-4-4-12 hex shape Consul's code relies on."""
    return _ID_SHAPE.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class ConsulEvent:
    """One Consul user event: what ``consul event`` fires and agents ingest."""

    id: str
    name: str
    payload: bytes = b""
    node_filter: str = ""
    service_filter: str = ""
    tag_filter: str = ""
    version: int = EVENT_VERSION

    @classmethod
    def new(
        cls,
        name: str,
        payload: bytes = b"",
        *,
        node_filter: str = "",
        service_filter: str = "",
        tag_filter: str = "",
        rng: random.Random | None = None,
    ) -> Self:
        """An event with a fresh ID (see :func:`new_event_id`) and Consul's version."""
        event_id = new_event_id(rng)
        return cls(event_id, name, payload, node_filter, service_filter, tag_filter)

    def check(self, *, allow_reserved: bool = False) -> None:
        """Make the checks Consul's API makes before firing, and a few more."""
        names.check_event_name(self.name, allow_reserved=allow_reserved)
        filters.check_filters(self.node_filter, self.service_filter, self.tag_filter)
        if not is_event_id(self.id):
            raise LocalProtocolError(
                f"event ID {self.id[:60]!r} is not a 36-character hex UUID, which "
                "Consul agents rely on; make one with new_event_id()"
            )
        if not -_INT64 <= self.version < _INT64:
            raise LocalProtocolError(f"version {self.version} does not fit Go's int")

    def encode_payload(self) -> bytes:
        """The encoded map, byte for byte as Consul writes it (no checks made)."""
        fields = [
            ("ID", _pack_text(self.id, "ID")),
            ("n", _pack_text(self.name, "name")),
        ]
        if self.node_filter:
            fields.append(("nf", _pack_text(self.node_filter, "node filter")))
        if self.payload:
            fields.append(("p", codec.pack_bin(self.payload)))
        if self.service_filter:
            fields.append(("sf", _pack_text(self.service_filter, "service filter")))
        if self.tag_filter:
            fields.append(("tf", _pack_text(self.tag_filter, "tag filter")))
        fields.append(("v", codec.pack_int(self.version)))
        return codec.pack_map(fields)

    def to_serf(
        self, ltime: int, coalesce: bool = False, *, allow_reserved: bool = False
    ) -> UserEvent:
        """The Serf user event that carries this event, after :meth:`check`."""
        self.check(allow_reserved=allow_reserved)
        return UserEvent(
            ltime, names.serf_event_name(self.name), self.encode_payload(), coalesce
        )

    @classmethod
    def decode_payload(cls, data: bytes, *, strict: bool = False) -> Self:
        """Read an encoded map; raises only :class:`RemoteProtocolError`.

        ``strict`` refuses exactly what Consul's decoder refuses (it reads
        string fields only from ``str``); by default ``bin`` is accepted too.
        """
        values: dict[str, Any] = {"version": 0}
        for key, value in codec.read_fields(data, strict=strict):
            if key == "v":
                values["version"] = _read_version(value)
            elif key == "p":
                payload = _read_payload(value)
                # Go keeps an earlier payload when a repeated key brings an
                # empty one, but a nil one clears it.
                if payload or value is None:
                    values["payload"] = payload
            else:
                values[_ATTRIBUTES[key]] = _read_str(value, key, strict)
        values.setdefault("id", "")
        values.setdefault("name", "")
        return cls(**values)

    @classmethod
    def from_serf(
        cls, event: UserEvent | UserEventRecord, *, strict: bool = False
    ) -> Self | None:
        """The Consul event a Serf event carries; None if it is not one."""
        if names.user_event_name(event.name) is None:
            return None
        if not event.payload:
            raise RemoteProtocolError(f"Serf event {event.name[:80]!r} has no payload")
        return cls.decode_payload(event.payload, strict=strict)


_ATTRIBUTES: Final = {
    "ID": "id",
    "n": "name",
    "nf": "node_filter",
    "sf": "service_filter",
    "tf": "tag_filter",
}


def _pack_text(text: str, what: str) -> bytes:
    try:
        return codec.pack_str(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        raise LocalProtocolError(
            f"the event's {what} holds a lone surrogate that stands for no byte"
        ) from None


def _read_str(value: Any, key: str, strict: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes) and not strict:
        return value.decode("utf-8", "surrogateescape")
    raise RemoteProtocolError(
        f"Consul event field {key!r} is a {_kind(value)}, not a string"
    )


def _read_payload(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, list) and all(type(b) is int and 0 <= b <= 255 for b in value):
        # Go fills a byte slice from an array of small ints (or an empty map).
        return bytes(value)
    raise RemoteProtocolError(f"Consul event payload 'p' is a {_kind(value)}")


def _read_version(value: Any) -> int:
    if value is None:
        return 0
    if type(value) is not int:
        raise RemoteProtocolError(f"Consul event version 'v' is a {_kind(value)}")
    # Go reads a uint64 above its int range by wrapping it around.
    return value - (1 << 64) if value >= _INT64 else value


def _kind(value: Any) -> str:
    return {bytes: "bin", str: "str", bool: "bool"}.get(
        type(value), type(value).__name__
    )
