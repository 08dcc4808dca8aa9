"""The msgpack profile Consul uses for its event map, which is not memberlist's.

Consul encodes its ``UserEvent`` struct with a handle that has ``WriteExt`` on,
so the map follows the newer msgpack spec where Serf's envelope around it
follows the old one:

* strings are ``str``: fixstr below 32 bytes, **str8** (``d9``) up to 255, then
  str16 and str32;
* the payload is ``bin`` (``c4``/``c5``/``c6``) at every length, even one byte;
* integers take the smallest form (non-negative ones unsigned);
* the map is a fixmap whose keys are written sorted by their bytes
  (``ID n nf p sf tf v``), empty optional fields left out.

That is what Python's ``msgpack`` writes with ``use_bin_type=True``, except that
a Go string may hold bytes that are not UTF-8, which ``msgpack`` would write as
``bin``. So the few headers needed are written here by hand.

Reading is lenient in the way Go's decoder is: any key order, unknown keys
skipped, trailing bytes ignored, str8/str16 or old raw strings anywhere, the
payload as ``str`` or ``bin``, and the map also accepted as an array in Go's
field order (``ID n p nf sf tf v``) or as nil. The one divergence: an unknown
key whose value is a malformed msgpack timestamp extension is refused here,
because Python's ``msgpack`` refuses it, where Go would skip it.
"""

from __future__ import annotations

from typing import Any, Final

import msgpack

from serfcast.errors import LimitExceededError, LocalProtocolError, RemoteProtocolError

__all__ = [
    "FIELD_ORDER",
    "MAX_PAYLOAD_SIZE",
    "pack_bin",
    "pack_int",
    "pack_map",
    "pack_str",
    "read_fields",
]

#: The struct's fields in Go's declaration order, which the array form follows.
FIELD_ORDER: Final = ("ID", "n", "p", "nf", "sf", "tf", "v")

#: The largest encoded event map serfcast decodes. Serf never lets a sender
#: fire more than 9 KiB in all; this leaves ample room and still bounds work.
MAX_PAYLOAD_SIZE: Final = 64 * 1024

_FIELDS: Final = frozenset(FIELD_ORDER)


def _sized(small: int, medium: int, large: int, length: int) -> bytes:
    if length < 0x100:
        return bytes((small, length))
    if length < 0x10000:
        return bytes((medium,)) + length.to_bytes(2, "big")
    if length < 0x1_0000_0000:
        return bytes((large,)) + length.to_bytes(4, "big")
    raise LocalProtocolError(f"a {length}-byte field cannot be encoded in msgpack")


def pack_str(raw: bytes) -> bytes:
    """A Go string's bytes as msgpack ``str`` (fixstr, str8, str16 or str32)."""
    if len(raw) < 32:
        return bytes((0xA0 | len(raw),)) + raw
    return _sized(0xD9, 0xDA, 0xDB, len(raw)) + raw


def pack_bin(raw: bytes) -> bytes:
    """A Go byte slice as msgpack ``bin`` (bin8, bin16 or bin32)."""
    return _sized(0xC4, 0xC5, 0xC6, len(raw)) + raw


def pack_int(value: int) -> bytes:
    """A Go ``int`` in its smallest form (Go and Python's ``msgpack`` agree)."""
    return msgpack.packb(value)  # type: ignore[no-any-return]


def pack_map(entries: list[tuple[str, bytes]]) -> bytes:
    """A map of already packed values; the caller orders the keys."""
    if len(entries) > 15:
        raise LocalProtocolError("the Consul event map has at most 7 entries")
    head = bytes((0x80 | len(entries),))
    return head + b"".join(pack_str(key.encode()) + value for key, value in entries)


class _Pairs(list[tuple[Any, Any]]):
    """A decoded map as its key-value pairs, in order and duplicates kept."""


def read_fields(data: bytes, *, strict: bool) -> list[tuple[str, Any]]:
    """The known fields of an encoded event map, in the order they occur.

    Values are as ``msgpack`` decoded them: strings as ``str`` (undecodable
    bytes as lone surrogates), ``bin`` as ``bytes``, maps as lists of pairs, so
    the caller can tell them apart. A repeated key appears each time, as Go
    decodes (and checks) every occurrence. ``strict`` refuses map keys Go's
    decoder refuses (anything but ``str`` or nil); otherwise ``bin`` keys are
    read as text and other keys skipped.
    """
    if len(data) > MAX_PAYLOAD_SIZE:
        raise LimitExceededError(
            f"Consul event payload of {len(data)} bytes is over {MAX_PAYLOAD_SIZE}"
        )
    value = _unpack(data)
    if value is None:
        return []  # Go decodes nil into an all-zero event
    if isinstance(value, _Pairs):
        named = ((_key_name(key, strict), item) for key, item in value)
        return [(name, item) for name, item in named if name in _FIELDS]
    if isinstance(value, list):
        return list(zip(FIELD_ORDER, value, strict=False))
    raise RemoteProtocolError(
        f"Consul event payload is a {type(value).__name__}, not a map"
    )


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            unicode_errors="surrogateescape",
            object_pairs_hook=_Pairs,
            strict_map_key=False,
        )
    except msgpack.ExtraData as extra:
        return extra.unpacked  # Go reads one value and ignores what follows
    except Exception as exc:  # msgpack raises many types for bad input
        detail = str(exc) or type(exc).__name__
        raise RemoteProtocolError(
            f"Consul event payload: bad msgpack: {detail}"
        ) from None


def _key_name(key: Any, strict: bool) -> str | None:
    if isinstance(key, str):
        return key
    if key is None:
        return ""  # Go reads a nil key as the empty string
    if not strict and isinstance(key, bytes):
        return key.decode("utf-8", "surrogateescape")
    if strict:
        raise RemoteProtocolError(
            f"Consul event map has a {type(key).__name__} key; Consul's decoder "
            "accepts only string keys"
        )
    return None
