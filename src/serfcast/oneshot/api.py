"""The public functions: fire_event_sync, fire_event and make_keyring."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Final

from serfcast.fire import EventSpec, parse_address
from serfcast.oneshot.results import FireResult
from serfcast.oneshot.send import fire
from serfcast.serf.limits import DEFAULT_USER_EVENT_SIZE_LIMIT
from serfcast.wire.keyring import Keyring, load_keyring_file, parse_key

__all__ = ["DEFAULT_JOIN", "fire_event", "fire_event_sync", "make_keyring"]

DEFAULT_JOIN: Final = ("127.0.0.1:8301",)

Key = str | bytes


def make_keyring(
    encrypt: Key | Iterable[Key] | None = None, keyring_file: str | None = None
) -> Keyring | None:
    """A keyring from a keyring file (primary first) and extra keys, or None.

    A key is base64 text as ``serf keygen`` prints it, or the raw key bytes.
    """
    keyring = load_keyring_file(keyring_file) if keyring_file else Keyring()
    keys: Iterable[Key] = (
        () if encrypt is None else [encrypt] if isinstance(encrypt, Key) else encrypt
    )
    for key in keys:
        keyring.add_key(parse_key(key) if isinstance(key, str) else bytes(key))
    return keyring if keyring else None


def fire_event_sync(
    name: str,
    payload: bytes | str = b"",
    *,
    join: str | Sequence[str] = DEFAULT_JOIN,
    encrypt: Key | Iterable[Key] | None = None,
    keyring_file: str | None = None,
    label: str = "",
    consul: bool = True,
    node: str | None = None,
    service: str | None = None,
    tag: str | None = None,
    coalesce: bool = False,
    allow_reserved: bool = False,
    timeout: float = 5.0,
    bind: str | None = None,
    size_limit: int = DEFAULT_USER_EVENT_SIZE_LIMIT,
    member: bool = False,
) -> FireResult:
    """Fire one user event into a Serf or Consul pool without joining it.

    A push/pull with the first seed in ``join`` (``host[:port]``, port 8301 by
    default; serf agents use 7946) that answers learns the pool's event clock
    and members; the event then goes straight to several members over TCP and
    UDP, and gossip does the rest. No member join or leave is left behind.

    By default the event is a Consul event named ``name`` (``node``,
    ``service`` and ``tag`` are its filters, Go regular expressions); with
    ``consul=False`` it is a plain Serf event (``coalesce`` applies only then).
    ``encrypt`` is the pool's gossip key (base64 or raw bytes, or several),
    ``keyring_file`` a JSON list of keys as serf writes it, ``label`` the
    memberlist label. ``timeout`` bounds each seed's connection and reply;
    ``bind`` is a local ``host[:port]`` to send from.

    With ``member=True`` it joins the pool instead, fires, waits until the
    event has been gossiped, and leaves gracefully (the pool then lists a
    ``left`` member); this runs trio in the calling thread.

    Raises :class:`~serfcast.errors.LocalProtocolError` for an event that cannot
    be sent (too large, with the payload budget; a bad filter; a reserved name:
    ``allow_reserved=True`` sends it anyway), :class:`WrongKeyError` when the
    seeds cannot read our gossip key, :class:`NoSeedError` when none answers.
    Nothing is sent in any of these cases.
    """
    data = payload.encode() if isinstance(payload, str) else bytes(payload)
    spec = EventSpec(
        name,
        data,
        consul=consul,
        node_filter=node or "",
        service_filter=service or "",
        tag_filter=tag or "",
        coalesce=coalesce,
        allow_reserved=allow_reserved,
        size_limit=size_limit,
    )
    seeds = [
        parse_address(seed) for seed in ([join] if isinstance(join, str) else join)
    ]
    keyring = make_keyring(encrypt, keyring_file)
    local = None if bind is None else parse_address(bind, default_port=0)
    if member:
        from serfcast.member_fire import fire_as_member_sync

        return fire_as_member_sync(
            spec,
            seeds,
            keyring=keyring,
            label=label.encode(),
            bind=local,
            timeout=timeout,
        )
    return fire(
        spec, seeds, keyring=keyring, label=label.encode(), timeout=timeout, bind=local
    )


async def fire_event(
    name: str,
    payload: bytes | str = b"",
    *,
    join: str | Sequence[str] = DEFAULT_JOIN,
    encrypt: Key | Iterable[Key] | None = None,
    keyring_file: str | None = None,
    label: str = "",
    consul: bool = True,
    node: str | None = None,
    service: str | None = None,
    tag: str | None = None,
    coalesce: bool = False,
    allow_reserved: bool = False,
    timeout: float = 5.0,
    bind: str | None = None,
    size_limit: int = DEFAULT_USER_EVENT_SIZE_LIMIT,
    member: bool = False,
) -> FireResult:
    """:func:`fire_event_sync` for async code, run in a worker thread.

    Works under trio and asyncio alike; the call is bounded by ``timeout`` per
    seed and a second per stream, and is not interrupted by cancellation.
    """
    call = functools.partial(
        fire_event_sync,
        name,
        payload,
        join=join,
        encrypt=encrypt,
        keyring_file=keyring_file,
        label=label,
        consul=consul,
        node=node,
        service=service,
        tag=tag,
        coalesce=coalesce,
        allow_reserved=allow_reserved,
        timeout=timeout,
        bind=bind,
        size_limit=size_limit,
        member=member,
    )
    if _under_trio():
        import trio

        return await trio.to_thread.run_sync(call)
    import asyncio

    return await asyncio.to_thread(call)


def _under_trio() -> bool:
    try:
        import sniffio
    except ImportError:  # pragma: no cover - trio depends on sniffio
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return True
        return False
    try:
        return sniffio.current_async_library() == "trio"
    except sniffio.AsyncLibraryNotFoundError:
        return False
