"""Tests for serfcast.wire.lzw: Go vectors, round trips, odd streams and limits."""

from __future__ import annotations

import random
import tracemalloc

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from serfcast.errors import LimitExceededError, LocalProtocolError, RemoteProtocolError
from serfcast.wire.lzw import compress, decompress

CLEAR = 256
EOF = 257
# Codes sent after a Clear before a Go encoder must send the next Clear.
CODES_PER_TABLE = 4095 - 257

# (input, bytes Go's compress/lzw writer produced for it)
GO_VECTORS = [
    (b"testing", "00e9949943278d9b330101"),
    (b"", "000302"),
    (b"a" * 40, "00c3081c48b0a0c18308090604"),
    (
        bytes.fromhex("0082a44e6f6465a0a55365714e6f64"),
        "00010822e5e40d9932a04a4d2913a7209980",
    ),
]

# A whole memberlist compress message (type 9) around the ping above, from Go.
GO_COMPRESS_PACKET = "0982a4416c676f00a3427566b200010822e5e40d9932a04a4d2913a7209980"

# Compressed payloads written by real Serf agents: a UDP gossip packet and a TCP
# push/pull (142 and 750 bytes once decompressed).
CAPTURED_BUFS = [
    "00110c20246ac89061a5985049d3a68c00524ec2345cc5e68d9b3370c2e4a91886cc29281a"
    "3992d106800c94932853aa5cc9b2a5cb973063ca741910",
    "000d0c22a5e44d1a37c34a397943a6cc9c00acaacc2923670a9d3074ca3029e3a6998026874805"
    "2143460ea93f0000045895c4cd983072dc604cf3c64d00524dca5cd406a0c73f41a4e4bc615366"
    "d49d3262449119c393059b376fe0880933664d8b8c73e8b42083912ac78c725ab8a9d3460cc516"
    "35cbb4c0c3b62d5b524ec2b429532a0c1b3868c29082f2460e9d6647c295b288b10c805156e6b8"
    "3115a0800001051c1b5255c4ce572654d2cc0d60aaf2d739dc04000046bab4e9d3a853ab5ecdba"
    "b5ebd7b063cb9e4dbbb6eddbb873ebdecdbbb7efdfc083cb2e85597399951bcdd0c95996e21c48"
    "aaa2d4a198a7f8665684e9d49963dd61a0ba77f3020808",
]


# --- an independent model of the code stream -------------------------------------


def width_for(count: int) -> int:
    """Bit width of a code that follows `count` codes since the last Clear."""
    return max(9, min(12, (257 + count).bit_length()))


def pack_codes(codes: list[int]) -> bytes:
    """Write codes LSB first at the width Go's reader expects for each."""
    bits = nbits = count = 0
    for code in codes:
        bits |= code << nbits
        nbits += width_for(count)
        count = 0 if code == CLEAR else count + 1
    return bits.to_bytes((nbits + 7) // 8, "little")


def split_codes(stream: bytes) -> list[int]:
    """Read codes back out of a stream, up to and including End."""
    value = int.from_bytes(stream, "little")
    codes: list[int] = []
    offset = count = 0
    while not codes or codes[-1] != EOF:
        width = width_for(count)
        assert offset + width <= len(stream) * 8, "stream has no End code"
        codes.append(value >> offset & ((1 << width) - 1))
        offset += width
        count = 0 if codes[-1] == CLEAR else count + 1
    return codes


def distinct_pairs(length: int) -> bytes:
    """Bytes in which no two adjacent-byte pairs repeat, so LZW sends only literals."""
    out = bytearray()
    step = 1
    while len(out) < length:
        out += bytes(i * step % 256 for i in range(256))  # pairs (x, x + step)
        step += 2  # odd steps make each block a permutation with new differences
    return bytes(out[:length])


def make_data(kind: str, size: int, seed: int) -> bytes:
    """Build a test input of `size` bytes from a seed (quick for large sizes)."""
    rng = random.Random(seed)
    if kind == "random":
        return rng.randbytes(size)
    if kind == "alphabet":
        alphabet = rng.randbytes(rng.randint(1, 12))
        return bytes(rng.choices(alphabet, k=size))
    if kind == "periodic":
        period = rng.randbytes(rng.randint(1, 300))
        return (period * (size // len(period) + 1))[:size]
    # Long runs of one byte interrupted now and then.
    out = bytearray(size)
    for _ in range(size // 1000):
        out[rng.randrange(size)] = rng.randrange(256)
    return bytes(out)


# --- Go compatibility ----------------------------------------------------------


@pytest.mark.parametrize(("plain", "go_hex"), GO_VECTORS)
def test_go_vectors(plain: bytes, go_hex: str) -> None:
    assert compress(plain).hex() == go_hex
    assert decompress(bytes.fromhex(go_hex), max_size=len(plain)) == plain


def test_compress_message_buf_round_trip() -> None:
    packet = bytes.fromhex(GO_COMPRESS_PACKET)
    assert packet[0] == 9
    body = msgpack.unpackb(packet[1:], raw=True)
    assert body[b"Algo"] == 0
    ping = decompress(body[b"Buf"], max_size=1024)
    assert ping == GO_VECTORS[3][0]
    assert compress(ping) == body[b"Buf"]


@pytest.mark.parametrize("buf_hex", CAPTURED_BUFS)
def test_captured_serf_payloads_recompress_identically(buf_hex: str) -> None:
    buf = bytes.fromhex(buf_hex)
    plain = decompress(buf, max_size=1 << 20)
    assert len(plain) > len(buf)
    assert compress(plain) == buf


def test_stream_starts_with_clear_and_resets_before_code_4095() -> None:
    data = make_data("random", 12_000, seed=1)
    codes = split_codes(compress(data))
    clears = [i for i, code in enumerate(codes) if code == CLEAR]
    assert clears[:3] == [0, 1 + CODES_PER_TABLE, 2 + 2 * CODES_PER_TABLE]
    assert max(codes) < 4095
    assert decompress(compress(data), max_size=len(data)) == data


# 4093 ends with the 255th code after a Clear that left the bit offset odd, so
# the End code's extra width bit spills into one more byte.
@pytest.mark.parametrize("size", [1, 254, 255, 256, 3837, 3838, 3839, 4093, 7676])
def test_widths_and_reset_at_the_end_of_the_stream(size: int) -> None:
    # Only literals are sent, so the code count is known exactly; the last code
    # can widen the End code or force a Clear just before it, as in Go.
    data = distinct_pairs(size)
    expected = [CLEAR]
    for start in range(0, size, CODES_PER_TABLE):
        chunk = list(data[start : start + CODES_PER_TABLE])
        expected += chunk
        if len(chunk) == CODES_PER_TABLE:
            expected.append(CLEAR)
    stream = compress(data)
    assert split_codes(stream) == [*expected, EOF]
    assert stream == pack_codes([*expected, EOF])
    assert decompress(stream, max_size=size) == data


# --- round trips -----------------------------------------------------------------


@given(st.binary(max_size=4000))
def test_round_trip_small(data: bytes) -> None:
    assert decompress(compress(data), max_size=len(data)) == data


@given(st.binary(min_size=1, max_size=2000), st.integers(1, 8))
def test_round_trip_small_alphabet(raw: bytes, letters: int) -> None:
    data = bytes(b % letters for b in raw) * 4
    assert decompress(compress(data), max_size=len(data)) == data


@given(st.binary(min_size=1, max_size=64), st.integers(1, 400))
def test_round_trip_periodic(period: bytes, repeats: int) -> None:
    data = period * repeats
    assert decompress(compress(data), max_size=len(data)) == data


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["random", "alphabet", "periodic", "runs"]),
    # Plain integers() favours small sizes; the second half keeps big ones common.
    st.integers(0, 300_000) | st.integers(100_000, 300_000),
    st.integers(0, 2**32 - 1),
)
@example("random", 300_000, 1)
@example("alphabet", 300_000, 2)
def test_round_trip_large(kind: str, size: int, seed: int) -> None:
    data = make_data(kind, size, seed)
    assert decompress(compress(data), max_size=len(data)) == data


@given(st.binary(max_size=3000))
def test_stream_without_leading_clear(data: bytes) -> None:
    # Older Go encoders did not start with Clear; the rest of the stream is the
    # same, because the decoder starts in the state a Clear would set.
    codes = split_codes(compress(data))
    assert codes[0] == CLEAR
    assert decompress(pack_codes(codes[1:]), max_size=len(data)) == data


def test_bytes_after_end_are_ignored() -> None:
    stream = compress(b"hello hello hello")
    assert decompress(stream + b"\xff\x00junk", max_size=100) == b"hello hello hello"


# --- a full table without a Clear (Go's deferred clear) --------------------------


def test_full_table_stops_learning_until_clear() -> None:
    literals = [(7 * i + 3) % 256 for i in range(1 + CODES_PER_TABLE)]
    # The last of these literals teaches slot 4095; the table is then full.
    slot_4094 = bytes(literals[-3:-1])
    slot_4095 = bytes(literals[-2:])
    codes = [CLEAR, *literals, 1, 2, 4095, 4094, 4095]
    # After a Clear learning starts again: 258 becomes "pq" and is usable.
    codes += [CLEAR, ord("p"), ord("q"), 258, EOF]
    expected = bytes([*literals, 1, 2]) + slot_4095 + slot_4094 + slot_4095 + b"pqpq"
    assert decompress(pack_codes(codes), max_size=len(expected)) == expected


def test_full_table_stays_at_twelve_bits() -> None:
    literals = [i % 200 for i in range(1 + CODES_PER_TABLE + 50)]
    stream = pack_codes([*literals, EOF])
    assert decompress(stream, max_size=len(literals)) == bytes(literals)


# --- malformed input -------------------------------------------------------------


@pytest.mark.parametrize(
    ("codes", "bad"),
    [
        ([CLEAR, 258, EOF], 258),  # nothing learned yet, so no KwKwK either
        ([CLEAR, ord("a"), 259, EOF], 259),  # beyond the next slot
        ([ord("a"), ord("b"), 300, EOF], 300),
        ([CLEAR, 511, EOF], 511),
    ],
)
def test_invalid_code(codes: list[int], bad: int) -> None:
    with pytest.raises(RemoteProtocolError, match=f"lzw: invalid code {bad}$"):
        decompress(pack_codes(codes), max_size=100)


def test_kwkwk_code() -> None:
    # "a", then 258 before it is fully known: it must be "aa".
    assert decompress(pack_codes([CLEAR, 97, 258, EOF]), max_size=3) == b"aaa"


@given(st.binary(max_size=2000), st.data())
def test_truncated_stream(data: bytes, draw: st.DataObject) -> None:
    stream = compress(data)
    cut = draw.draw(st.integers(0, len(stream) - 1))
    with pytest.raises(RemoteProtocolError, match="without an EOF code"):
        decompress(stream[:cut], max_size=len(data))


def test_missing_end_code() -> None:
    stream = pack_codes([CLEAR, 104, 105, 105])
    with pytest.raises(RemoteProtocolError, match="without an EOF code"):
        decompress(stream, max_size=100)


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_garbage_raises_only_remote_protocol_error(garbage: bytes) -> None:
    try:
        result = decompress(garbage, max_size=1 << 16)
    except RemoteProtocolError:
        return
    assert len(result) <= 1 << 16


# --- the output limit ------------------------------------------------------------


def test_limit_is_inclusive() -> None:
    data = make_data("alphabet", 5000, seed=3)
    stream = compress(data)
    assert decompress(stream, max_size=len(data)) == data
    with pytest.raises(LimitExceededError):
        decompress(stream, max_size=len(data) - 1)


def test_empty_output_fits_a_zero_limit() -> None:
    assert decompress(compress(b""), max_size=0) == b""
    with pytest.raises(LimitExceededError):
        decompress(compress(b"x"), max_size=0)


def test_compression_bomb_stops_at_the_limit() -> None:
    bomb = compress(bytes(1_000_000))
    assert len(bomb) < 3000
    limit = 64 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceededError, match=str(limit)):
            decompress(bomb, max_size=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The output stops at the limit and learned strings are built from it, so
    # memory stays a small multiple of the limit, far below the full megabyte.
    assert peak < 4 * limit


def test_negative_limit_is_caller_error() -> None:
    with pytest.raises(LocalProtocolError, match="max_size"):
        decompress(compress(b"x"), max_size=-1)
