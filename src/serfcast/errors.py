"""The one family of errors serfcast raises.

Two halves meet at one boundary. Bytes that arrive from the network and cannot be
understood raise :class:`RemoteProtocolError` (never a ``KeyError``, an
``IndexError`` or a msgpack exception). A caller who asks for something impossible
gets a :class:`LocalProtocolError` whose message says what to do instead.
"""

from __future__ import annotations

__all__ = [
    "DecryptionError",
    "LimitExceededError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "SerfcastError",
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
