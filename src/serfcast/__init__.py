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
    from serfcast.engine.serf_events import (
        Member,
        MemberEvent,
        MemberFailed,
        MemberJoined,
        MemberLeft,
        MemberReaped,
        MemberStatus,
        MemberUpdated,
        NameConflict,
        NameConflictResolved,
        QueryAck,
        QueryReceived,
        QueryResponse,
        UserEventReceived,
    )
    from serfcast.node import Node
    from serfcast.node_open import open_node
    from serfcast.node_types import FiredEvent, NodeEvent, QueryReply, QueryResult
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
    "FiredEvent",
    "LimitExceededError",
    "LocalProtocolError",
    "Member",
    "MemberEvent",
    "MemberFailed",
    "MemberJoined",
    "MemberLeft",
    "MemberReaped",
    "MemberStatus",
    "MemberUpdated",
    "NameConflict",
    "NameConflictResolved",
    "NoSeedError",
    "Node",
    "NodeEvent",
    "QueryAck",
    "QueryReceived",
    "QueryReply",
    "QueryResponse",
    "QueryResult",
    "RemoteProtocolError",
    "SerfcastError",
    "TransportError",
    "UserEventReceived",
    "WrongKeyError",
    "fire_event",
    "fire_event_sync",
    "open_node",
]

__version__ = "0.1.0"

#: Public names imported only when first used, so ``import serfcast`` stays cheap.
_LAZY = {
    "FireResult": "serfcast.oneshot",
    "NoSeedError": "serfcast.oneshot",
    "WrongKeyError": "serfcast.oneshot",
    "fire_event": "serfcast.oneshot",
    "fire_event_sync": "serfcast.oneshot",
    "Node": "serfcast.node",
    "open_node": "serfcast.node_open",
    "FiredEvent": "serfcast.node_types",
    "NodeEvent": "serfcast.node_types",
    "QueryReply": "serfcast.node_types",
    "QueryResult": "serfcast.node_types",
    **dict.fromkeys(
        (
            "Member",
            "MemberEvent",
            "MemberFailed",
            "MemberJoined",
            "MemberLeft",
            "MemberReaped",
            "MemberStatus",
            "MemberUpdated",
            "NameConflict",
            "NameConflictResolved",
            "QueryAck",
            "QueryReceived",
            "QueryResponse",
            "UserEventReceived",
        ),
        "serfcast.engine.serf_events",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'serfcast' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
