"""The gossip keyring: AES-GCM keys, the primary key, and memberlist's sealed layout.

A sealed message is ``[version][12-byte nonce][ciphertext][16-byte tag]``. Version 1
(what every current node sends) seals the plaintext as it is; version 0, used only by
nodes speaking memberlist protocol 1, first pads it PKCS7-style to a multiple of 16
bytes. The version byte is not authenticated. The associated data is the label on
UDP and ``[10][u32 length]`` plus the label on streams; callers pass it in.

Only the primary key (the first) encrypts; every key is tried when decrypting, the
primary first. A keyring file is a JSON list of base64 keys, primary first, as Serf
and Consul write them.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from serfcast.errors import DecryptionError, LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "KEY_SIZES",
    "NONCE_SIZE",
    "TAG_SIZE",
    "Keyring",
    "encryption_overhead",
    "generate_key",
    "load_keyring_file",
    "parse_key",
]

KEY_SIZES = (16, 24, 32)
NONCE_SIZE = 12
TAG_SIZE = 16
_BLOCK = 16


def encryption_overhead(version: int = 1) -> int:
    """Bytes sealing adds at most: 29 for version 1, 45 (with padding) for version 0."""
    return 1 + NONCE_SIZE + TAG_SIZE + (_BLOCK if version == 0 else 0)


def parse_key(text: str) -> bytes:
    """Decode a base64 gossip key as ``serf keygen`` prints it."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise LocalProtocolError(
            f"gossip key {text[:8]!r}... is not valid base64; "
            "generate one with `serfcast keygen` or `serf keygen`"
        ) from None
    _check_size(key)
    return key


def _check_size(key: bytes) -> None:
    if len(key) not in KEY_SIZES:
        raise LocalProtocolError(
            f"gossip key is {len(key)} bytes; it must be 16, 24 or 32 bytes "
            "(AES-128, AES-192 or AES-256), e.g. 32 bytes from `serfcast keygen`"
        )


def generate_key() -> str:
    """A new random 32-byte key, base64-encoded."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


def load_keyring_file(path: str | os.PathLike[str]) -> Keyring:
    """Read a keyring file: a JSON list of base64 keys, the primary first."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise LocalProtocolError(f"cannot read keyring file {path}: {exc}") from None
    try:
        entries = json.loads(text)
    except ValueError as exc:
        raise LocalProtocolError(
            f"keyring file {path} is not JSON ({exc}); "
            'it should look like ["<base64 key>", ...]'
        ) from None
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise LocalProtocolError(
            f"keyring file {path} must hold a JSON list of base64 key strings"
        )
    if not entries:
        raise LocalProtocolError(f"keyring file {path} holds no keys")
    return Keyring(parse_key(entry) for entry in entries)


class Keyring:
    """The keys a node can decrypt with; the first one is the primary."""

    def __init__(self, keys: Iterable[bytes] = ()) -> None:
        self._keys: list[bytes] = []
        self._ciphers: dict[bytes, AESGCM] = {}
        for key in keys:
            self.add_key(key)

    @classmethod
    def from_base64(cls, *keys: str) -> Keyring:
        """Build a keyring from base64 keys, the first becoming primary."""
        return cls(parse_key(key) for key in keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __repr__(self) -> str:
        return f"<Keyring with {len(self._keys)} key(s)>"

    @property
    def keys(self) -> tuple[bytes, ...]:
        """Every installed key, primary first."""
        return tuple(self._keys)

    @property
    def primary(self) -> bytes:
        """The key used to encrypt."""
        if not self._keys:
            raise LocalProtocolError("the keyring is empty; add a key first")
        return self._keys[0]

    def add_key(self, key: bytes) -> None:
        """Install a key; the first key installed becomes primary."""
        _check_size(key)
        if key not in self._ciphers:
            self._keys.append(key)
            # Imported here: a pool without encryption never pays for loading it.
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._ciphers[key] = AESGCM(key)

    def use_key(self, key: bytes) -> None:
        """Make an installed key the primary."""
        if key not in self._ciphers:
            raise LocalProtocolError("that key is not installed; install it first")
        self._keys.remove(key)
        self._keys.insert(0, key)

    def remove_key(self, key: bytes) -> None:
        """Remove a key that is not the primary."""
        if self._keys and key == self._keys[0]:
            raise LocalProtocolError(
                "cannot remove the primary key; make another key primary first"
            )
        if key in self._ciphers:
            self._keys.remove(key)
            del self._ciphers[key]

    def encrypt(
        self,
        plaintext: bytes,
        aad: bytes = b"",
        *,
        version: int = 1,
        nonce: bytes | None = None,
    ) -> bytes:
        """Seal with the primary key. ``nonce`` is for tests; leave it random."""
        if version not in (0, 1):
            raise LocalProtocolError(f"encryption version {version} is not 0 or 1")
        nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
        if len(nonce) != NONCE_SIZE:
            raise LocalProtocolError("an AES-GCM nonce is 12 bytes")
        if version == 0:
            pad = _BLOCK - len(plaintext) % _BLOCK
            plaintext += bytes((pad,)) * pad
        sealed = self._ciphers[self.primary].encrypt(nonce, plaintext, aad or None)
        return bytes((version,)) + nonce + sealed

    def decrypt(self, data: bytes, aad: bytes = b"") -> bytes:
        """Open a sealed message with whichever installed key fits."""
        if not self._keys:
            raise DecryptionError("encrypted data received but no key is installed")
        version = data[0] if data else -1
        if version not in (0, 1):
            raise DecryptionError(f"unsupported encryption version {version}")
        if len(data) < encryption_overhead(version):
            raise DecryptionError(f"encrypted message is too short ({len(data)} bytes)")
        nonce, sealed = data[1 : 1 + NONCE_SIZE], data[1 + NONCE_SIZE :]
        for key in self._keys:
            try:
                plain = self._ciphers[key].decrypt(nonce, sealed, aad or None)
            except _invalid_tag():
                continue
            return _unpad(plain) if version == 0 else plain
        raise DecryptionError("no installed key could decrypt the message")


def _invalid_tag() -> type[Exception]:
    from cryptography.exceptions import InvalidTag

    return InvalidTag


def _unpad(plain: bytes) -> bytes:
    # Like Go, trust the last byte without checking the pad bytes; a 0 strips
    # nothing. Only a count beyond the message, which would crash Go, is refused.
    pad = plain[-1] if plain else 0
    if pad > len(plain):
        raise RemoteProtocolError(f"bad padding length {pad} in a version 0 message")
    return plain[: len(plain) - pad]
