"""What ``serfcast watch`` prints for an event, and what it remembers having seen.

Each user event becomes one JSON object: the Serf ``name``, ``ltime`` and
``payload`` (base64, plus ``text`` when the bytes are printable UTF-8). A Consul
event (``consul:event:*``) also gets ``consul``: its fields as Consul's
``/v1/event/list`` shows them (``ID``, ``Name``, ``Payload``, filters,
``Version``, ``LTime``), or ``consul_error`` when its payload does not decode.

:class:`SeenEvents` is the memory that keeps a restart from printing anything
twice. A Consul event is known by its ID; any other event by its Lamport time,
name and a hash of its payload, which is how Serf itself tells two events
apart. Besides those keys it keeps a *floor*: every event at or below that
Lamport time counts as seen. The floor starts where the first run began
listening (so the pool's earlier history never counts as new) and rises when
the oldest keys are dropped to stay within the cap. The state file is JSON,
replaced atomically on every save.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from serfcast.consul import ConsulEvent
from serfcast.consul.names import user_event_name
from serfcast.errors import LocalProtocolError, RemoteProtocolError
from serfcast.serf.messages import UserEvent

__all__ = [
    "DEFAULT_CAPACITY",
    "SeenEvents",
    "WatchedEvent",
    "is_printable",
    "load_seen",
    "save_seen",
]

#: Keys remembered by default; Serf's ring spans 512 Lamport times.
DEFAULT_CAPACITY: Final = 4096
_FORMAT_VERSION: Final = 1
_PAYLOAD_HASH_HEX: Final = 16


def is_printable(text: str) -> bool:
    """Whether ``text`` shows as itself: printable characters and line breaks."""
    return all(ch.isprintable() or ch in "\n\r\t" for ch in text)


def _text(payload: bytes) -> str | None:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if is_printable(text) else None


def _payload_fields(payload: bytes) -> dict[str, Any]:
    fields: dict[str, Any] = {"payload": base64.b64encode(payload).decode("ascii")}
    text = _text(payload)
    if text is not None:
        fields["text"] = text
    return fields


@dataclass(frozen=True, slots=True)
class WatchedEvent:
    """One user event as the watcher sees it; Consul's content decoded."""

    name: str
    ltime: int
    payload: bytes
    consul: ConsulEvent | None = None
    consul_error: str | None = None

    @classmethod
    def from_serf(cls, name: str, ltime: int, payload: bytes) -> WatchedEvent:
        """Read a Serf user event, decoding Consul's fields when it carries them."""
        if user_event_name(name) is None:
            return cls(name, ltime, payload)
        try:
            consul = ConsulEvent.from_serf(UserEvent(ltime, name, payload))
        except RemoteProtocolError as exc:
            return cls(name, ltime, payload, consul_error=str(exc)[:200])
        return cls(name, ltime, payload, consul)

    @property
    def key(self) -> str:
        """What identifies the event across restarts."""
        if self.consul is not None and self.consul.id:
            return f"consul:{self.consul.id}"
        digest = hashlib.sha256(self.payload).hexdigest()[:_PAYLOAD_HASH_HEX]
        return f"serf:{self.ltime}:{digest}:{self.name}"

    @property
    def user_name(self) -> str:
        """The name a user gave: Consul's for a Consul event, else Serf's."""
        return self.consul.name if self.consul is not None else self.name

    @property
    def user_payload(self) -> bytes:
        """Consul's payload for a Consul event, else the Serf payload."""
        return self.consul.payload if self.consul is not None else self.payload

    def to_json(self) -> dict[str, Any]:
        """The object printed for the event."""
        record: dict[str, Any] = {"name": self.name, "ltime": self.ltime}
        record.update(_payload_fields(self.payload))
        if self.consul is not None:
            record["consul"] = _consul_fields(self.consul, self.ltime)
        elif self.consul_error is not None:
            record["consul_error"] = self.consul_error
        return record


def _consul_fields(event: ConsulEvent, ltime: int) -> dict[str, Any]:
    fields: dict[str, Any] = {"ID": event.id, "Name": event.name}
    payload = _payload_fields(event.payload)
    fields["Payload"] = payload["payload"]
    if "text" in payload:
        fields["PayloadText"] = payload["text"]
    fields.update(
        NodeFilter=event.node_filter,
        ServiceFilter=event.service_filter,
        TagFilter=event.tag_filter,
        Version=event.version,
        LTime=ltime,
    )
    return fields


class SeenEvents:
    """Keys of the events already handled, and the Lamport floor (see above).

    ``floor`` is None until :meth:`begin` says where listening began.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise LocalProtocolError("the state must keep at least one event")
        self.capacity = capacity
        self.floor: int | None = None
        self._keys: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def begin(self, floor: int) -> None:
        """On a first run, count everything up to ``floor`` as seen."""
        if self.floor is None:
            self.floor = max(floor, 0)

    def is_new(self, event: WatchedEvent) -> bool:
        """Whether ``event`` was neither seen nor is at or below the floor."""
        if self.floor is not None and event.ltime <= self.floor:
            return False
        return event.key not in self._keys

    def add(self, event: WatchedEvent) -> None:
        """Remember ``event``; the oldest keys beyond the cap raise the floor."""
        self._keys[event.key] = event.ltime
        while len(self._keys) > self.capacity:
            _, ltime = self._keys.popitem(last=False)
            self.floor = max(self.floor or 0, ltime)

    def to_json(self) -> dict[str, Any]:
        """The state file's content."""
        return {
            "version": _FORMAT_VERSION,
            "floor": self.floor,
            "seen": [[ltime, key] for key, ltime in self._keys.items()],
        }

    @classmethod
    def from_json(cls, data: Any, capacity: int = DEFAULT_CAPACITY) -> SeenEvents:
        """Read :meth:`to_json`'s output; raises ``ValueError`` when it is not."""
        if not isinstance(data, dict) or data.get("version") != _FORMAT_VERSION:
            raise ValueError(f"not a version {_FORMAT_VERSION} watch state")
        seen = cls(capacity)
        floor = data.get("floor")
        if floor is not None and not _is_count(floor):
            raise ValueError("its floor is not a Lamport time")
        seen.floor = floor
        entries = data.get("seen")
        if not isinstance(entries, list):
            raise ValueError("it has no list of seen events")
        for entry in entries:
            seen._load_entry(entry)
        return seen

    def _load_entry(self, entry: Any) -> None:
        if not (isinstance(entry, list) and len(entry) == 2):
            raise ValueError("a seen event is not [ltime, key]")
        ltime, key = entry
        if not (_is_count(ltime) and isinstance(key, str)):
            raise ValueError("a seen event is not [ltime, key]")
        self._keys[key] = ltime
        while len(self._keys) > self.capacity:
            _, dropped = self._keys.popitem(last=False)
            self.floor = max(self.floor or 0, dropped)


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


def load_seen(
    path: str | os.PathLike[str], capacity: int = DEFAULT_CAPACITY
) -> SeenEvents:
    """The state kept in ``path``; a missing file is a first run."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return SeenEvents(capacity)
    except (OSError, UnicodeDecodeError) as exc:
        raise LocalProtocolError(f"cannot read state file {path}: {exc}") from None
    try:
        return SeenEvents.from_json(json.loads(text), capacity)
    except ValueError as exc:
        raise LocalProtocolError(
            f"state file {path} is not a serfcast watch state ({exc}); "
            "remove it to start afresh, or give another -state-file"
        ) from None


def save_seen(path: str | os.PathLike[str], seen: SeenEvents) -> None:
    """Write the state to ``path`` atomically (a new file, then a rename)."""
    target = Path(path)
    text = json.dumps(seen.to_json(), separators=(",", ":"))
    partial: str | None = None
    try:
        fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(partial, target)
    except OSError as exc:
        if partial is not None:
            Path(partial).unlink(missing_ok=True)
        raise LocalProtocolError(f"cannot write state file {path}: {exc}") from None
