"""Serf's tags, carried in a node's memberlist meta.

Since Serf protocol 3 a node's meta is the byte ``ff`` followed by a msgpack map
of tag names to values, in the same Go profile as every other Serf structure.
Older nodes put a bare role string there instead, so meta that is empty or does
not start with ``ff`` reads as the single tag ``role`` (an empty meta is therefore
``{"role": ""}``). Go writes the map in its random map order; serfcast sorts the
keys so the same tags always give the same bytes, and peers accept any order.

memberlist refuses meta longer than 512 bytes, ``ff`` included, so a node cannot
announce more tags than fit. Serf never validates tag names or values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from serfcast.errors import LimitExceededError, LocalProtocolError
from serfcast.wire import gomsgpack as gm

__all__ = [
    "MAX_META_SIZE",
    "TAG_MAGIC_BYTE",
    "check_meta_size",
    "decode_tags",
    "encode_tags",
    "tag_env_name",
]

TAG_MAGIC_BYTE: Final = 0xFF
MAX_META_SIZE: Final = 512
#: The largest meta decoded at all. Go nodes never send more than 512 bytes, but
#: receivers do not check, so accept anything a datagram can hold.
MAX_DECODED_META_SIZE: Final = 65_536

_TAG_MAP: Final = gm.str_map(gm.STR)
_NOT_ENV_SAFE: Final = re.compile(r"[^A-Z0-9_]")


def encode_tags(tags: Mapping[str, str]) -> bytes:
    """The meta a Serf node announces for ``tags``, refused if over 512 bytes."""
    meta = bytes((TAG_MAGIC_BYTE,)) + gm.pack(_TAG_MAP.encode(dict(tags)))
    check_meta_size(meta)
    return meta


def check_meta_size(meta: bytes) -> None:
    """Refuse meta that memberlist would not carry, with Serf's own wording."""
    if len(meta) > MAX_META_SIZE:
        raise LocalProtocolError(
            f"Encoded length of tags exceeds limit of {MAX_META_SIZE} bytes"
        )


def decode_tags(meta: bytes | None) -> dict[str, str]:
    """A peer's tags from its meta; a bare role string becomes ``{"role": ...}``.

    A malformed tag map raises :class:`~serfcast.errors.RemoteProtocolError`
    (Go logs the error and keeps whatever it had decoded so far).
    """
    if not meta or meta[0] != TAG_MAGIC_BYTE:
        return {"role": gm.decode_str(meta or b"")}
    if len(meta) > MAX_DECODED_META_SIZE:
        raise LimitExceededError(
            f"node meta of {len(meta)} bytes is over {MAX_DECODED_META_SIZE}"
        )
    tags: dict[str, str] = _TAG_MAP.decode(gm.unpack_one(meta[1:], "tags"), "tags")
    return tags


def tag_env_name(key: str) -> str:
    """The environment variable the serf agent gives event handlers for a tag.

    Go upper-cases one character at a time (never turning one into several, as
    Python's ``"ß".upper()`` would) and then replaces anything outside
    ``[A-Z0-9_]`` with one underscore per character.
    """
    upper = "".join(_upper_one(ch) for ch in key)
    return "SERF_TAG_" + _NOT_ENV_SAFE.sub("_", upper)


def _upper_one(ch: str) -> str:
    upper = ch.upper()
    return upper if len(upper) == 1 else ch
