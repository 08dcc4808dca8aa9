"""serfcast: speak HashiCorp's memberlist/Serf gossip protocol from Python."""

from typing import TYPE_CHECKING, Any

from serfcast.errors import (
    DecryptionError,
    EventTooLargeError,
    LimitExceededError,
    LocalProtocolError,
    RemoteProtocolError,
    SerfcastError,
    TransportError,
)

if TYPE_CHECKING:
    from serfcast.oneshot import (
        FireResult,
        NoSeedError,
        WrongKeyError,
        fire_event,
        fire_event_sync,
    )

__all__ = [
    "DecryptionError",
    "EventTooLargeError",
    "FireResult",
    "LimitExceededError",
    "LocalProtocolError",
    "NoSeedError",
    "RemoteProtocolError",
    "SerfcastError",
    "TransportError",
    "WrongKeyError",
    "fire_event",
    "fire_event_sync",
]

__version__ = "0.1.0"

#: Public names imported only when first used, so ``import serfcast`` stays cheap.
_LAZY = {
    "FireResult": "serfcast.oneshot",
    "NoSeedError": "serfcast.oneshot",
    "WrongKeyError": "serfcast.oneshot",
    "fire_event": "serfcast.oneshot",
    "fire_event_sync": "serfcast.oneshot",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'serfcast' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
