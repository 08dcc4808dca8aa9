"""LZW exactly as Go's ``compress/lzw`` writes it with LSB order and 8-bit literals.

memberlist compresses UDP packets and TCP push/pull payloads with Go's standard LZW
package, so a peer has to produce and accept that one variant bit for bit.

The code space has 4096 slots. Codes 0-255 stand for single bytes, 256 is Clear
(forget every learned string and start over) and 257 is End; learned strings take
258 upwards. Codes start 9 bits wide and are packed into bytes starting from the
least significant bit. Every code after the first one following a Clear teaches
both sides a new string: the previous code's string plus the first byte of this
code's string, numbered with the next free slot. When that next free number
reaches ``1 << width`` the width grows by one bit, up to 12. Unlike the TIFF/PDF
flavour, the switch happens exactly at that power of two, not one code early.

Our encoder mirrors Go's. It always begins with Clear, even for empty input. Once
the next free number reaches 4095 it sends Clear at the current width and starts
again at 9 bits, so slot 4095 is never handed out. The last pending code is
followed by End and by the leftover bits, zero-padded to a whole byte.

The decoder is as forgiving as Go's reader. A leading Clear is optional, because
older Go encoders left it out. A sender that keeps going once all 4096 slots are
used is not an error: the width stays at 12 and nothing more is learned until the
next Clear. A code naming the slot that is about to be learned is the classic
"KwKwK" case and expands to the previous string plus its own first byte. Bytes
after End are ignored; a stream that runs out before End is refused, as Go
refuses it.

Both directions run one flat loop per call on purpose: a function call per code
or per byte would roughly double the cost, and these run on every compressed
packet and every push/pull.
"""

from __future__ import annotations

from serfcast.errors import LimitExceededError, LocalProtocolError, RemoteProtocolError

__all__ = ["compress", "decompress"]

_CLEAR = 256
_EOF = 257
_FIRST_WIDTH = 9
_MAX_WIDTH = 12
_TABLE_SIZE = 1 << _MAX_WIDTH
# The encoder starts over when its next free code reaches this; it is never used.
_ENCODER_LIMIT = _TABLE_SIZE - 1

# Decoder table template: literals, then None for Clear and End (so one lookup
# both finds a string and spots a control code), then slots to be learned.
_DECODER_TABLE: list[bytes | None] = [bytes((i,)) for i in range(_CLEAR)]
_DECODER_TABLE += [None, None]
_DECODER_TABLE += [b""] * (_TABLE_SIZE - len(_DECODER_TABLE))


def compress(data: bytes) -> bytes:
    """Return ``data`` compressed byte for byte as Go's LSB, 8-bit LZW writer would.

    The result always starts with a Clear code and ends with an End code.
    """
    out = bytearray()
    append = out.append
    bits = _CLEAR  # the leading Clear, already in the bit buffer
    nbits = width = _FIRST_WIDTH
    next_code = _EOF  # the highest code in use; each emitted code claims one more
    boundary = 1 << width  # next_code value at which the width grows or we reset
    table: dict[int, int] = {}  # (code << 8 | byte) -> code of that longer string
    get = table.get

    it = iter(data)
    code = next(it, -1)  # the longest known string so far, or -1 for no input
    for byte in it:
        found = get(code << 8 | byte)
        if found is not None:
            code = found
            continue

        # Emit the code; flushing two bytes at a time keeps the buffer small
        # without an inner loop.
        bits |= code << nbits
        nbits += width
        if nbits >= 16:
            append(bits & 0xFF)
            append(bits >> 8 & 0xFF)
            bits >>= 16
            nbits -= 16

        next_code += 1
        if next_code == boundary:
            if next_code == _ENCODER_LIMIT:
                bits |= _CLEAR << nbits
                nbits += width
                width, next_code, boundary = _FIRST_WIDTH, _EOF, 1 << _FIRST_WIDTH
                table.clear()
                code = byte
                continue
            width += 1
            boundary = _ENCODER_LIMIT if width == _MAX_WIDTH else 1 << width
        table[code << 8 | byte] = next_code
        code = byte

    for tail_code, tail_width in _closing_codes(code, next_code, width):
        bits |= tail_code << nbits
        nbits += tail_width
    out += bits.to_bytes((nbits + 7) // 8, "little")
    return bytes(out)


def _closing_codes(code: int, next_code: int, width: int) -> list[tuple[int, int]]:
    """Return the (code, width) pairs that end a stream: pending code, End."""
    if code < 0:
        return [(_EOF, width)]
    tail = [(code, width)]
    # Go counts this last code as well, which may widen End or even force a Clear.
    next_code += 1
    if next_code == 1 << width:
        width += 1
    if next_code == _ENCODER_LIMIT:
        tail.append((_CLEAR, width))
        width = _FIRST_WIDTH
    tail.append((_EOF, width))
    return tail


def decompress(data: bytes, *, max_size: int) -> bytes:
    """Decode a Go LZW stream (LSB, 8-bit literals) into at most ``max_size`` bytes.

    Raises :class:`LimitExceededError` before the output would grow past
    ``max_size``, and :class:`RemoteProtocolError` if the stream holds an invalid
    code or ends without an End code. Bytes after the End code are ignored.
    """
    if max_size < 0:
        raise LocalProtocolError(f"lzw: max_size must be 0 or more, got {max_size}")
    try:
        return _decode(data, max_size)
    except IndexError:
        # Only reading past the last input byte can raise this: every table index
        # is masked to 12 bits and the table has 4096 slots.
        raise RemoteProtocolError("lzw: stream ended without an EOF code") from None


def _decode(data: bytes, max_size: int) -> bytes:
    """Run the decoding loop; see :func:`decompress`."""
    table = _DECODER_TABLE.copy()  # slots at or above next_code are never read
    out = bytearray()
    size = pos = bits = nbits = 0
    width = _FIRST_WIDTH
    mask = (1 << width) - 1
    # The slot the current code teaches. It starts at End's own number because
    # the first code after a Clear teaches nothing.
    next_code = _EOF
    overflow = 1 << width
    previous: bytes | None = None  # None after a Clear, or while learning is off
    entry: bytes | None

    while True:
        # A code is at most 12 bits and fewer than `width` bits are buffered,
        # so two bytes are always enough.
        if nbits < width:
            bits |= data[pos] << nbits
            pos += 1
            nbits += 8
            if nbits < width:
                bits |= data[pos] << nbits
                pos += 1
                nbits += 8
        code = bits & mask
        bits >>= width
        nbits -= width

        if code < next_code:
            entry = table[code]
            if entry is None:
                if code == _EOF:
                    return bytes(out)
                width = _FIRST_WIDTH
                mask = (1 << width) - 1
                next_code = _EOF
                overflow = 1 << width
                previous = None
                continue
        elif code == next_code and previous is not None:
            entry = previous + previous[:1]  # KwKwK
        elif code == _EOF:
            return bytes(out)  # End straight after a Clear or at the very start
        else:
            raise RemoteProtocolError(f"lzw: invalid code {code}")

        size += len(entry)
        if size > max_size:
            raise LimitExceededError(
                f"lzw: decompressed data would exceed the limit of {max_size} bytes"
            )
        out += entry
        if previous is not None:
            table[next_code] = previous + entry[:1]
        previous = entry

        next_code += 1
        if next_code >= overflow:
            if width == _MAX_WIDTH:
                # Table full and no Clear yet: every code up to 4095 stays valid,
                # and nothing new is learned (Go's "deferred clear").
                next_code = _TABLE_SIZE
                previous = None
            else:
                width += 1
                mask = (1 << width) - 1
                overflow <<= 1
