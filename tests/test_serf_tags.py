"""Tags in node meta: Go's bytes, round trips, legacy roles, leniency, limits."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from serfcast.errors import LimitExceededError, LocalProtocolError, RemoteProtocolError
from serfcast.serf.tags import (
    MAX_DECODED_META_SIZE,
    MAX_META_SIZE,
    check_meta_size,
    decode_tags,
    encode_tags,
    tag_env_name,
)
from serfcast.wire.gomsgpack import decode_str

go_strings = st.one_of(
    st.text(max_size=20),
    st.binary(max_size=20).map(decode_str),  # Go strings need not be UTF-8
)


def test_the_captured_meta_is_reproduced_byte_for_byte() -> None:
    meta = encode_tags({"role": "web", "foo": "bar"})
    assert meta == b"\xff\x82\xa3foo\xa3bar\xa4role\xa3web"
    assert decode_tags(meta) == {"foo": "bar", "role": "web"}
    assert encode_tags({}) == b"\xff\x80"
    assert decode_tags(b"\xff\x80") == {}


@given(tags=st.dictionaries(go_strings, go_strings, max_size=8))
def test_tags_round_trip(tags: dict[str, str]) -> None:
    meta = encode_tags(tags)
    assert meta[0] == 0xFF
    assert decode_tags(meta) == tags


@pytest.mark.parametrize(
    ("meta", "tags"),
    [
        (None, {"role": ""}),
        (b"", {"role": ""}),
        (b"web", {"role": "web"}),
        (b"\xc3(", {"role": decode_str(b"\xc3(")}),
    ],
)
def test_empty_or_unmarked_meta_is_a_legacy_role(
    meta: bytes | None, tags: dict[str, str]
) -> None:
    assert decode_tags(meta) == tags


def test_decoding_accepts_what_go_accepts() -> None:
    # str8 keys, bin values, any key order, nil values as "", trailing bytes.
    modern = msgpack.packb({"zone": b"eu", "dc": "x" * 40}, use_bin_type=True)
    assert decode_tags(b"\xff" + modern) == {"zone": "eu", "dc": "x" * 40}
    assert decode_tags(b"\xff\x81\xa1k\xc0") == {"k": ""}
    assert decode_tags(b"\xff\xc0") == {}
    assert decode_tags(b"\xff\x80\x01\x02") == {}


@pytest.mark.parametrize(
    "meta",
    [
        b"\xff",  # marker and nothing else
        b"\xff\x01",  # not a map
        b"\xff\x81\x01\xa1v",  # integer key
        b"\xff\x81\xa1k\x01",  # integer value
        b"\xff\x82\xa1k\xa1v",  # truncated
        b"\xff\x81\xa1k\x91\xa1v",  # list value
        b"\xff\x81\x91\x01\xa1v",  # list key
    ],
)
def test_malformed_tag_maps_are_remote_errors(meta: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_tags(meta)


@given(body=st.binary(max_size=64))
def test_any_meta_decodes_or_raises_a_remote_error(body: bytes) -> None:
    try:
        tags = decode_tags(b"\xff" + body)
    except RemoteProtocolError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())


def test_huge_meta_is_refused_before_decoding() -> None:
    huge = b"\xff" + msgpack.packb({"k": "v" * MAX_DECODED_META_SIZE})
    with pytest.raises(LimitExceededError):
        decode_tags(huge)


def test_meta_over_512_bytes_is_refused_with_serfs_text() -> None:
    # ff, fixmap, "k" (2 bytes), str16 header (3 bytes) and the value.
    fits = {"k": "v" * (MAX_META_SIZE - 7)}
    assert len(encode_tags(fits)) == MAX_META_SIZE
    with pytest.raises(LocalProtocolError) as info:
        encode_tags({"k": "v" * (MAX_META_SIZE - 6)})
    assert str(info.value) == "Encoded length of tags exceeds limit of 512 bytes"
    check_meta_size(bytes(MAX_META_SIZE))
    with pytest.raises(LocalProtocolError):
        check_meta_size(bytes(MAX_META_SIZE + 1))


@pytest.mark.parametrize(
    ("key", "env"),
    [
        ("role", "SERF_TAG_ROLE"),
        ("my-tag.v2", "SERF_TAG_MY_TAG_V2"),
        ("Already_OK_9", "SERF_TAG_ALREADY_OK_9"),
        ("ß", "SERF_TAG__"),  # Go keeps it one character; Python would say "SS"
        ("\u0131\u017f", "SERF_TAG_IS"),  # dotless i, long s: their capitals are ASCII
        ("日本", "SERF_TAG___"),
        (decode_str(b"a\xffb"), "SERF_TAG_A_B"),
        ("", "SERF_TAG_"),
    ],
)
def test_tag_env_names(key: str, env: str) -> None:
    assert tag_env_name(key) == env
