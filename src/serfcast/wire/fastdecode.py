"""Per-class decoders generated once, for the hot receive path.

Reading a message field by field through :func:`gomsgpack.read_fields` costs a
dictionary walk and a function call per field, then a dataclass ``__init__``.
Gossip packets arrive by the thousand, so each message class gets a decoder
written for its own fields (the way :mod:`dataclasses` writes ``__init__``): one
``dict.get`` per Go field name, an inline check for the common, valid form of
each value, and the general field reader only for anything unusual. The result
is identical to the general path, errors included, because every value the
inline checks do not accept goes through the same reader.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from serfcast.wire import gomsgpack as gm

__all__ = ["build_decoder"]

_MISSING = object()

#: The inline test that lets a value through unchanged, per kind.
_PASS_THROUGH = {
    id(gm.BYTES): "v.__class__ is bytes",
    id(gm.NIL_BYTES): "v is None or v.__class__ is bytes",
    id(gm.BOOL): "v is True or v is False",
}
_INT_RANGES = {
    id(gm.U8): (0, 0xFF),
    id(gm.U16): (0, 0xFFFF),
    id(gm.U32): (0, 0xFFFF_FFFF),
    id(gm.U64): (0, (1 << 64) - 1),
    id(gm.INT): (-(1 << 63), (1 << 63) - 1),
}


def _value_lines(index: int, field: gm.Field, attr_default: str) -> list[str]:
    lines = [
        f"    v = get({gm.encode_str(field.go_name)!r}, MISSING)",
        f"    if v is MISSING: v = {attr_default}",
    ]
    kind = id(field.kind)
    if field.kind is gm.STR:
        lines.append(
            "    elif v.__class__ is bytes: v = v.decode('utf-8', 'surrogateescape')"
        )
    elif kind in _PASS_THROUGH:
        lines.append(f"    elif {_PASS_THROUGH[kind]}: pass")
    elif kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        lines.append(f"    elif v.__class__ is int and {low} <= v <= {high}: pass")
    lines.append(f"    else: v = read{index}(v, label{index})")
    lines.append(f"    setattr(obj, {field.attr!r}, v)")
    return lines


def _default_expr(index: int, spec: dataclasses.Field[Any], env: dict[str, Any]) -> str:
    if spec.default_factory is not dataclasses.MISSING:
        env[f"factory{index}"] = spec.default_factory
        return f"factory{index}()"
    env[f"default{index}"] = spec.default
    return f"default{index}"


def build_decoder(cls: type, fields: tuple[gm.Field, ...]) -> Callable[[Any], Any]:
    """A function turning a decoded msgpack map into an instance of ``cls``.

    ``cls`` must be a dataclass whose attributes include every field's ``attr``;
    a value that is not a map goes to ``slow``-path error reporting.
    """
    specs = {spec.name: spec for spec in dataclasses.fields(cls)}
    readers = gm.field_readers(fields, cls.__name__)
    env: dict[str, Any] = {
        "MISSING": _MISSING,
        "cls": cls,
        "new": object.__new__,
        "setattr": object.__setattr__,
        "not_a_map": lambda value: gm.read_fields(value, readers, cls.__name__),
    }
    lines = [
        "def from_go(value):",
        "    if value.__class__ is not dict: not_a_map(value)",
        "    get = value.get",
        "    obj = new(cls)",
    ]
    for index, field in enumerate(fields):
        _, env[f"read{index}"], env[f"label{index}"] = readers[
            gm.encode_str(field.go_name)
        ]
        default = _default_expr(index, specs[field.attr], env)
        lines.extend(_value_lines(index, field, default))
    others = sorted(specs.keys() - {f.attr for f in fields})
    for index, name in enumerate(others, start=len(fields)):
        lines.append(
            f"    setattr(obj, {name!r}, {_default_expr(index, specs[name], env)})"
        )
    lines.append("    return obj")
    exec("\n".join(lines), env)
    decoder: Callable[[Any], Any] = env["from_go"]
    return decoder
