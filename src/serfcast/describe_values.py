"""How ``serfcast decode`` shows decoded values as JSON.

A message becomes a map from Go's field names to values. Byte fields, which may
hold anything, are shown as hex with their length, and also as text when every
byte is printable. Nested structs, lists and maps are shown the same way, all
the way down.
"""

from __future__ import annotations

from typing import Any

from serfcast.wire.messages import Struct

__all__ = ["go_fields", "show_bytes", "show_value"]


def show_bytes(data: bytes) -> dict[str, Any]:
    """Bytes as hex, plus text when every byte is printable."""
    shown: dict[str, Any] = {"hex": data.hex(), "len": len(data)}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return shown
    if text.isprintable():
        shown["text"] = text
    return shown


def show_value(value: Any) -> Any:
    """Any decoded value in its JSON form (see the module docstring)."""
    if isinstance(value, bytes):
        return show_bytes(value)
    if isinstance(value, Struct):
        return go_fields(value)
    if isinstance(value, list | tuple):
        return [show_value(item) for item in value]
    if isinstance(value, dict):
        return {key: show_value(item) for key, item in value.items()}
    return value


def go_fields(message: Struct) -> dict[str, Any]:
    """A message's fields under Go's names, in Go's order."""
    return {f.go_name: show_value(getattr(message, f.attr)) for f in message.FIELDS}
