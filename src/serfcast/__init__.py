"""serfcast: speak HashiCorp's memberlist/Serf gossip protocol from Python."""

from serfcast.errors import (
    DecryptionError,
    EventTooLargeError,
    LimitExceededError,
    LocalProtocolError,
    RemoteProtocolError,
    SerfcastError,
    TransportError,
)

__all__ = [
    "DecryptionError",
    "EventTooLargeError",
    "LimitExceededError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "SerfcastError",
    "TransportError",
]

__version__ = "0.1.0"
