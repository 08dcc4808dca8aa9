"""The one family of errors serfcast raises.

Two halves meet at one boundary. Bytes that arrive from the network and cannot be
understood raise :class:`RemoteProtocolError` (never a ``KeyError``, an
``IndexError`` or a msgpack exception). A caller who asks for something impossible
gets a :class:`LocalProtocolError` whose message says what to do instead.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "DecryptionError",
    "EventTooLargeError",
    "LimitExceededError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "SerfcastError",
    "TransportError",
]


class SerfcastError(Exception):
    """Base class of every error serfcast raises on purpose."""


class RemoteProtocolError(SerfcastError):
    """Bytes from the network are not valid memberlist or Serf traffic."""


class LimitExceededError(RemoteProtocolError):
    """A length or count from the network is larger than serfcast accepts."""


class DecryptionError(RemoteProtocolError):
    """No key in the keyring could open an encrypted packet or stream frame."""


class LocalProtocolError(SerfcastError):
    """The caller asked for something that cannot be sent or configured."""


class EventTooLargeError(LocalProtocolError):
    """A user event is over the configured size limit; nothing was sent.

    The message is Serf's own wording, so tools that match on it keep working.
    ``stage`` says which of Serf's two checks failed: the raw name plus payload
    length (``"before encoding"``) or the whole encoded message, type byte
    included (``"after encoding"``). ``size`` is the length that was measured.
    """

    def __init__(
        self, limit: int, size: int, stage: Literal["before encoding", "after encoding"]
    ) -> None:
        prefix = "encoded " if stage == "after encoding" else ""
        super().__init__(
            f"{prefix}user event exceeds configured limit of {limit} bytes {stage}"
        )
        self.limit = limit
        self.size = size
        self.stage = stage

    def __reduce__(self) -> tuple[type[EventTooLargeError], tuple[int, int, str]]:
        # The default would call the class with the message alone, which fails.
        return type(self), (self.limit, self.size, self.stage)


class TransportError(SerfcastError):
    """A socket could not be bound or used; ``errno`` is the OS error number.

    Drivers raise it for failures the caller must act on (the gossip port is
    taken, the socket broke). Failures of single datagrams or streams are counted
    and logged instead, as gossip is built to survive them.
    """

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno

    def __reduce__(self) -> tuple[type[TransportError], tuple[str, int | None]]:
        return type(self), (str(self), self.errno)
