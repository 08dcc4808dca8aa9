"""The msgpack profile that HashiCorp's Go codec speaks, and a lenient reader for it.

Writing: every memberlist and Serf struct goes out as a map whose keys are the Go
field names in byte order. Strings and byte slices both use the legacy "raw" family
(fixstr, then str16, then str32), never str8 and never bin. Non-negative integers take
the smallest unsigned form, negative ones the smallest signed form. A nil slice is nil
(``c0``); an empty one is an empty raw string (``a0``). Python's ``msgpack`` produces
exactly these bytes when asked for ``use_bin_type=False`` with keys inserted in
sorted order, and strings are handed to it already encoded so that names holding
invalid UTF-8 (Go strings are bytes) survive a round trip.

Reading is as forgiving as Go's decoder: str8 and bin are accepted anywhere a string
or byte slice is expected, any integer width is accepted if the value fits, keys
may come in any order, and unknown keys are skipped. What Go would reject (a float in
an integer field, a negative number in an unsigned one, a value that overflows)
raises :class:`~serfcast.errors.RemoteProtocolError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import msgpack

from serfcast.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "BOOL",
    "BYTES",
    "INT",
    "NIL_BYTES",
    "STR",
    "U8",
    "U16",
    "U32",
    "U64",
    "Field",
    "FieldReader",
    "Kind",
    "decode_str",
    "describe",
    "encode_str",
    "field_readers",
    "list_of",
    "nested",
    "optional",
    "pack",
    "read_fields",
    "read_struct",
    "str_map",
    "unpack_one",
    "unpack_prefix",
    "write_struct",
]

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1


def encode_str(text: str) -> bytes:
    """Turn a Go string held in Python back into its exact bytes."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise LocalProtocolError(
            f"string {text[:40]!r} holds a lone surrogate and has no byte form"
        ) from None


def decode_str(raw: bytes) -> str:
    """Read a Go string's bytes without losing any, valid UTF-8 or not."""
    return raw.decode("utf-8", "surrogateescape")


def pack(obj: Any) -> bytes:
    """Encode a value the way Go's codec would (dict keys must already be sorted)."""
    return msgpack.packb(obj, use_bin_type=False)  # type: ignore[no-any-return]


def unpack_one(data: bytes, what: str) -> Any:
    """Decode the first msgpack object in ``data``; trailing bytes are ignored.

    Go decodes one object from a reader and never looks at what follows, so
    neither does this.
    """
    try:
        return msgpack.unpackb(data, raw=True, strict_map_key=False)
    except msgpack.ExtraData as extra:
        return extra.unpacked
    except Exception as exc:  # msgpack raises a zoo of types for bad input
        raise RemoteProtocolError(f"{what}: invalid msgpack: {describe(exc)}") from None


def describe(exc: Exception) -> str:
    """A msgpack exception as readable text (some carry no message at all)."""
    return str(exc) or type(exc).__name__


def unpack_prefix(data: bytes, what: str) -> tuple[Any, int]:
    """Decode the first msgpack object in ``data`` and say how many bytes it used."""
    unpacker = msgpack.Unpacker(
        raw=True, strict_map_key=False, max_buffer_size=max(len(data), 1)
    )
    try:
        unpacker.feed(data)
        value = unpacker.unpack()
    except Exception as exc:
        raise RemoteProtocolError(f"{what}: invalid msgpack: {describe(exc)}") from None
    return value, unpacker.tell()


# ----------------------------------------------------------------------------
# Field kinds: how one Go-typed field is written and read.


@dataclass(frozen=True, slots=True)
class Kind:
    """How a Go field type maps to msgpack in both directions."""

    name: str
    encode: Callable[[Any], Any]
    decode: Callable[[Any, str], Any]
    is_empty: Callable[[Any], bool]


def _fail(what: str, expected: str, value: Any) -> RemoteProtocolError:
    if isinstance(value, bytes):
        shown = repr(value[:40])  # cut before repr: the value may be megabytes
    elif isinstance(value, int):
        shown = repr(value)
    else:
        shown = type(value).__name__
    return RemoteProtocolError(f"{what}: expected {expected}, got {shown}")


def _read_raw(value: Any, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if value is None:
        return b""
    if isinstance(value, list) and all(
        type(item) is int and 0 <= item <= 255 for item in value
    ):
        return bytes(value)  # Go fills a byte slice from an array of small ints
    raise _fail(what, "a string or bytes", value)


def _read_nil_bytes(value: Any, what: str) -> bytes | None:
    return None if value is None else _read_raw(value, what)


def _read_str(value: Any, what: str) -> str:
    if isinstance(value, bytes):
        return decode_str(value)
    if value is None:
        return ""
    raise _fail(what, "a string", value)


def _read_bool(value: Any, what: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise _fail(what, "a bool", value)


def _int_reader(low: int, high: int, label: str) -> Callable[[Any, str], int]:
    def read(value: Any, what: str) -> int:
        if value is None:
            return 0
        if type(value) is not int:
            raise _fail(what, label, value)
        if not low <= value <= high:
            raise RemoteProtocolError(f"{what}: {value} does not fit in {label}")
        return value

    return read


def _int_writer(low: int, high: int, label: str) -> Callable[[Any], int]:
    def write(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise LocalProtocolError(f"{label} field needs an int, not {value!r}")
        if not low <= value <= high:
            raise LocalProtocolError(f"{value} does not fit a Go {label} field")
        return int(value)

    return write


def _encode_nil_bytes(value: bytes | None) -> bytes | None:
    return value


def _encode_bytes(value: bytes) -> bytes | None:
    # An empty byte field is what Go holds as a nil slice, which it writes as nil.
    return value if value else None


def _empty(value: Any) -> bool:
    return not value


STR: Final = Kind("string", encode_str, _read_str, _empty)
BYTES: Final = Kind("[]byte", _encode_bytes, _read_raw, _empty)
NIL_BYTES: Final = Kind("[]byte", _encode_nil_bytes, _read_nil_bytes, _empty)
BOOL: Final = Kind("bool", bool, _read_bool, _empty)


def _int_kind(label: str, low: int, high: int) -> Kind:
    return Kind(
        label, _int_writer(low, high, label), _int_reader(low, high, label), _empty
    )


U8: Final = _int_kind("uint8", 0, 0xFF)
U16: Final = _int_kind("uint16", 0, 0xFFFF)
U32: Final = _int_kind("uint32", 0, 0xFFFF_FFFF)
U64: Final = _int_kind("uint64", 0, (1 << 64) - 1)
INT: Final = _int_kind("int", _INT64_MIN, _INT64_MAX)


@dataclass(frozen=True, slots=True)
class Field:
    """One struct field: its Python attribute, Go name, kind and omitempty flag."""

    attr: str
    go_name: str
    kind: Kind
    omitempty: bool = False


def write_struct(obj: object, fields: tuple[Field, ...]) -> dict[str, Any]:
    """Build the map Go would write for ``obj`` (``fields`` sorted by Go name)."""
    out: dict[str, Any] = {}
    for field in fields:
        value = getattr(obj, field.attr)
        if field.omitempty and field.kind.is_empty(value):
            continue
        out[field.go_name] = field.kind.encode(value)
    return out


def read_struct(value: Any, fields: Mapping[bytes, Field], what: str) -> dict[str, Any]:
    """Read a decoded msgpack map into keyword arguments for a message class.

    Fields that are absent get no entry, so the class defaults (Go's zero values)
    apply. Keys match Go field names exactly; anything else is skipped, as in Go.
    """
    readers = {
        key: (field.attr, field.kind.decode, f"{what}.{field.go_name}")
        for key, field in fields.items()
    }
    return read_fields(value, readers, what)


#: A field made ready for decoding: attribute name, decoder and error label.
FieldReader = tuple[str, Callable[[Any, str], Any], str]


def field_readers(fields: Iterable[Field], what: str) -> dict[bytes, FieldReader]:
    """Prepare a struct's fields once for :func:`read_fields`."""
    return {
        encode_str(field.go_name): (
            field.attr,
            field.kind.decode,
            f"{what}.{field.go_name}",
        )
        for field in fields
    }


def read_fields(
    value: Any, readers: Mapping[bytes, FieldReader], what: str
) -> dict[str, Any]:
    """:func:`read_struct` for fields prepared by :func:`field_readers`.

    Messages are decoded by the thousand per second, so the per-field work is
    kept to a lookup and a call: labels and attribute chains are built up front.
    """
    if not isinstance(value, dict):
        raise _fail(what, "a map", value)
    kwargs: dict[str, Any] = {}
    for key, item in value.items():
        reader = readers.get(key) if isinstance(key, bytes) else None
        if reader is not None:
            attr, decode, label = reader
            kwargs[attr] = decode(item, label)
    return kwargs


# ----------------------------------------------------------------------------
# Composite kinds: slices, maps and nested structs, as Serf's messages use them.


def list_of(item: Kind) -> Kind:
    """A Go slice: ``None`` is a nil slice (``c0``), a list is written as an array."""

    def encode(value: list[Any] | None) -> list[Any] | None:
        return None if value is None else [item.encode(v) for v in value]

    def decode(value: Any, what: str) -> list[Any] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            raise _fail(what, "an array", value)
        return [item.decode(v, f"{what}[{i}]") for i, v in enumerate(value)]

    return Kind(f"[]{item.name}", encode, decode, _empty)


def optional(inner: Kind) -> Kind:
    """A Go pointer: ``None`` is nil."""

    def encode(value: Any) -> Any:
        return None if value is None else inner.encode(value)

    def decode(value: Any, what: str) -> Any:
        return None if value is None else inner.decode(value, what)

    return Kind(f"*{inner.name}", encode, decode, lambda v: v is None)


def str_map(value_kind: Kind) -> Kind:
    """A Go ``map[string]T``; written with sorted keys so output is repeatable."""

    def encode(value: dict[str, Any] | None) -> dict[bytes, Any] | None:
        if value is None:
            return None
        return {encode_str(k): value_kind.encode(value[k]) for k in sorted(value)}

    def decode(value: Any, what: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _fail(what, "a map", value)
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _read_str(key, f"{what} key")
            out[name] = value_kind.decode(item, f"{what}[{name!r}]")
        return out

    return Kind(f"map[string]{value_kind.name}", encode, decode, _empty)


class _StructLike(Protocol):
    def to_go(self) -> dict[str, Any]: ...


def nested(cls: Any) -> Kind:
    """A struct held inside another, written as its own Go-ordered map."""

    def encode(value: _StructLike) -> dict[str, Any]:
        return value.to_go()

    def decode(value: Any, what: str) -> Any:
        return cls.from_go(value)

    return Kind(getattr(cls, "__name__", "struct"), encode, decode, _empty)
